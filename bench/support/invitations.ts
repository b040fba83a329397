// Invitations for the benchmarks, created in bulk, and the "plain client": the
// API writes and the mail of one invitation done directly, without the
// operator, to measure what the API server and the SMTP sink allow (the limit),
// and to lay down settled invitations quickly (for the memory benchmark).
import { randomBytes } from 'node:crypto';
import type { CoreV1Api, CustomObjectsApi, V1Secret } from '@kubernetes/client-node';
import {
  API_VERSION,
  GROUP,
  INVITATION_KIND,
  INVITATION_PLURAL,
  VERSION,
  type UserInvitation,
  type UserInvitationSpec,
  type UserInvitationStatus,
} from '../../src/api/types.ts';
import type { UsherConfig } from '../../src/config/types.ts';
import { decide, MEMBERSHIP_FINALIZER, type Action } from '../../src/invitation/decide.ts';
import type { InvitationMailer } from '../../src/controller/ports.ts';
import { secretFromRecord, type InvitationRecord } from '../../src/invitation/record.ts';
import { issueToken, linkFor } from '../../src/invitation/token.ts';
import { recordName } from '../../src/invitation/naming.ts';
import { isoSeconds } from '../../src/invitation/time.ts';

export const TENANT = 'bench';

export function emailFor(name: string): string {
  return `${name}@bench.example`;
}

export function invitationBody(namespace: string, name: string, spec: Partial<UserInvitationSpec> = {}): UserInvitation {
  return {
    apiVersion: API_VERSION,
    kind: INVITATION_KIND,
    metadata: { name, namespace },
    spec: { email: emailFor(name), tenant: TENANT, groups: ['data-engineers'], roles: [{ name: 'developer', namespaces: ['company.team'] }], ...spec },
  };
}

/** Runs `task` over `items` with at most `concurrency` at once; resolves with the results in order. */
export async function pool<T, R>(items: readonly T[], concurrency: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      results[i] = await task(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

export async function createInvitation(custom: CustomObjectsApi, body: UserInvitation): Promise<UserInvitation> {
  const namespace = body.metadata.namespace ?? '';
  const deadline = performance.now() + 60_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return (await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: INVITATION_PLURAL, body })) as UserInvitation;
    } catch (err) {
      // 429 (the API server's max in flight), 5xx, or no API server at all (a fault test restarting it): retry for a while.
      const code = (err as { code?: number }).code;
      // A create that went through although its answer was lost (the API server went away meanwhile).
      if (code === 409 && attempt > 1)
        return (await custom.getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace,
          plural: INVITATION_PLURAL,
          name: body.metadata.name,
        })) as UserInvitation;
      if (performance.now() > deadline || (code !== undefined && code !== 429 && code < 500)) throw err;
      await new Promise((r) => setTimeout(r, Math.min(100 * attempt, 1000)));
    }
  }
}

/** Creates the invitations with `concurrency` requests in flight; `onCreated` sees each as its create returns. */
export function createInvitations(
  custom: CustomObjectsApi,
  bodies: readonly UserInvitation[],
  concurrency: number,
  onCreated?: (created: UserInvitation) => void,
): Promise<UserInvitation[]> {
  return pool(bodies, concurrency, async (body) => {
    const created = await createInvitation(custom, body);
    onCreated?.(created);
    return created;
  });
}

export interface PlainClient {
  core: CoreV1Api;
  custom: CustomObjectsApi;
  config: UsherConfig;
  mailer?: InvitationMailer;
}

/**
 * What the operator's reconciles do for a new invitation, in the same order
 * and with the same bodies (records, statuses from the real decide()), minus
 * the informers, the queue and the events: create the record Secret, write
 * the status with the link, mark the mail attempt, send, record the send, write
 * the Sent status. Five API writes and one mail.
 */
export async function deliverPlain(client: PlainClient, invitation: UserInvitation): Promise<void> {
  const { core, custom, config, mailer } = client;
  const namespace = invitation.metadata.namespace ?? '';
  const observe = (inv: UserInvitation, records: InvitationRecord[], link: string | undefined) =>
    decide({ invitation: inv, records, link, namespaceTenant: TENANT, user: undefined, config, now: new Date() });

  const issue = observe(invitation, [], undefined).actions.find((a): a is Extract<Action, { kind: 'issue' }> => a.kind === 'issue');
  if (!issue) throw new Error(`decide() issued nothing for ${invitation.metadata.name}`);
  const token = issueToken(randomBytes);
  let record: InvitationRecord = {
    name: recordName(invitation.metadata.uid ?? '', issue.issuance),
    namespace: config.namespace,
    invitationNamespace: namespace,
    invitationName: invitation.metadata.name,
    invitationUid: invitation.metadata.uid ?? '',
    selector: token.selector,
    verifierHash: token.verifierHash,
    email: issue.email,
    issuance: issue.issuance,
    issuedAt: issue.issuedAt,
    expiresAt: issue.expiresAt,
  };
  const write = async (r: InvitationRecord, create: boolean): Promise<InvitationRecord> => {
    const body = secretFromRecord(r) as V1Secret;
    const saved = create
      ? await core.createNamespacedSecret({ namespace: config.namespace, body })
      : await core.replaceNamespacedSecret({ namespace: config.namespace, name: r.name, body });
    return { ...r, resourceVersion: saved.metadata?.resourceVersion };
  };
  const writeStatus = async (inv: UserInvitation, records: InvitationRecord[], link: string): Promise<UserInvitation> => {
    const status = observe(inv, records, link).status;
    return (await custom.replaceNamespacedCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: INVITATION_PLURAL,
      name: inv.metadata.name,
      body: { ...inv, status },
    })) as UserInvitation;
  };

  record = await write(record, true);
  const link = linkFor(config.baseUrl, token.token);
  const current = await writeStatus(invitation, [record], link);
  if (!mailer) return;
  record = await write({ ...record, mail: { attempts: 1, attemptStartedAt: new Date().toISOString() } }, false);
  const result = await mailer.sendInvitation(current, link, new Date(record.expiresAt));
  if (!result.ok) throw new Error(`mail not sent: ${result.response}`);
  record = await write({ ...record, mail: { attempts: 1, sentAt: isoSeconds(new Date()) } }, false);
  await writeStatus(current, [record], link);
}

/**
 * A settled (Sent) invitation laid down in three writes: the invitation, its
 * record Secret already marked sent, and the status the operator itself would
 * compute for them, so that the operator finds nothing to do.
 */
/**
 * What Usher leaves for an invitation it mailed: the record of its first token, marked sent,
 * and the status decide() computes from it (the record's resourceVersion plays no part in it).
 */
export function settledState(
  invitation: UserInvitation,
  config: UsherConfig,
  now: Date,
): { record: InvitationRecord; status: UserInvitationStatus; token: string } {
  const { name, namespace = '', uid = '' } = invitation.metadata;
  const plan = decide({ invitation, records: [], link: undefined, namespaceTenant: TENANT, user: undefined, config, now });
  const issue = plan.actions.find((a): a is Extract<Action, { kind: 'issue' }> => a.kind === 'issue');
  if (!issue) throw new Error(`decide() issued nothing for ${name}`);
  const token = issueToken(randomBytes);
  const record: InvitationRecord = {
    name: recordName(uid, issue.issuance),
    namespace: config.namespace,
    invitationNamespace: namespace,
    invitationName: name,
    invitationUid: uid,
    selector: token.selector,
    verifierHash: token.verifierHash,
    email: issue.email,
    issuance: issue.issuance,
    issuedAt: issue.issuedAt,
    expiresAt: issue.expiresAt,
    mail: { attempts: 1, sentAt: isoSeconds(now) },
  };
  const link = linkFor(config.baseUrl, token.token);
  const { status } = decide({ invitation, records: [record], link, namespaceTenant: TENANT, user: undefined, config, now });
  return { record, status, token: token.token };
}

export async function seedSettled(client: Omit<PlainClient, 'mailer'>, body: UserInvitation): Promise<{ invitation: UserInvitation; token: string }> {
  const { core, custom, config } = client;
  const namespace = body.metadata.namespace ?? '';
  // With the finalizer, as Usher leaves an invitation it issued a token for: without it,
  // an operator started on these would add it to every one (a write each), which is no restart.
  const invitation = await createInvitation(custom, { ...body, metadata: { ...body.metadata, finalizers: [MEMBERSHIP_FINALIZER] } });
  const { record, status, token } = settledState(invitation, config, new Date());
  await core.createNamespacedSecret({ namespace: config.namespace, body: secretFromRecord(record) });
  const written = (await custom.replaceNamespacedCustomObjectStatus({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: INVITATION_PLURAL,
    name: invitation.metadata.name,
    body: { ...invitation, status },
  })) as UserInvitation;
  return { invitation: written, token };
}

// One UserInvitation in each phase (and each way of being in it), made by the
// real controller running as the chart's `operator` identity against the real
// API server, each read back from the API server while it is in that state:
// what a GitOps tool's health check sees. Two controller runs, since "no mail
// server" is a configuration: first without mail (with the acceptance page, to
// accept one), then with an SMTP server that accepts, refuses (550), defers
// (421) or holds its DATA reply, depending on the recipient.
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { expect, inject } from 'vitest';
import type { UserInvitation, UserInvitationSpec } from '../../src/api/types.ts';
import type { UsherConfig } from '../../src/config/types.ts';
import { Controller } from '../../src/controller/controller.ts';
import { createInvitationMailer } from '../../src/mail/invitation-mailer.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { acceptWithPassword, acceptYaml, startPage } from '../accept/support.ts';
import { kubectl, kubectlOk } from '../support/cluster.ts';
import { mailConfig, smtpError, startSmtp } from '../mail/support/smtp.ts';

/** Each state a GitOps tool may find an invitation in. */
export const CASES = [
  'not-reconciled',
  'pending-sending',
  'pending-mail-retrying',
  'pending-no-mail-server',
  'sent',
  'accepted',
  'user-created',
  'failed-invalid-spec',
  'failed-mail-rejected',
  'expired',
  'edited-not-yet-observed',
] as const;
export type Case = (typeof CASES)[number];

export interface Phases {
  invitations: Record<Case, UserInvitation>;
  /** Users the fixture created (cluster-scoped), for the caller to delete. */
  users: string[];
}

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const PASSWORD = 'violet kettle over the harbour';

async function read(namespace: string, name: string): Promise<UserInvitation> {
  return JSON.parse(await kubectlOk(['get', 'userinvitation', name, '-n', namespace, '-o', 'json'])) as UserInvitation;
}

async function create(namespace: string, name: string, spec: UserInvitationSpec): Promise<void> {
  const doc = { apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', metadata: { name, namespace }, spec };
  await kubectlOk(['create', '-f', '-'], { input: JSON.stringify(doc) });
}

async function waitFor(namespace: string, name: string, what: (inv: UserInvitation) => boolean, description: string): Promise<UserInvitation> {
  let last: UserInvitation | undefined;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    last = await read(namespace, name);
    if (what(last)) return last;
  }
  throw new Error(`${namespace}/${name} never became ${description}: ${JSON.stringify(last?.status)}`);
}

const inPhase = (phase: string) => (inv: UserInvitation) => inv.status?.phase === phase;
const condition = (inv: UserInvitation, type: string) => inv.status?.conditions?.find((c) => c.type === type);

function controller(config: UsherConfig, mailer?: ReturnType<typeof createInvitationMailer>): Controller {
  return new Controller({
    kubeConfig: loadKubeConfig(inject('kubeconfigs').operator),
    config,
    log,
    ...(mailer ? { mailer } : {}),
    // A deferred mail waits long enough to be seen waiting.
    mailBackoffMs: () => 10 * 60_000,
  });
}

/** Makes one invitation per case in `namespace` (labelled for tenant acme) and returns each as read back in that state. */
export async function invitationsInEveryPhase(namespace: string): Promise<Phases> {
  const tag = randomBytes(3).toString('hex');
  const address = (local: string): string => `${local}+${tag}@example.com`;
  const spec = (local: string, extra: Partial<UserInvitationSpec> = {}): UserInvitationSpec => ({
    email: address(local),
    tenant: 'acme',
    groups: ['data-engineers'],
    roles: [{ name: 'developer', namespaces: ['company.team'] }],
    ...extra,
  });
  const got: Partial<Record<Case, UserInvitation>> = {};
  const users: string[] = [];

  // Before any controller runs: an object with no status at all.
  await create(namespace, 'not-reconciled', spec('not-reconciled'));
  got['not-reconciled'] = await read(namespace, 'not-reconciled');

  // Run 1: no mail server; the acceptance page is up to accept one invitation.
  const page = await startPage(() => acceptYaml(namespace));
  const withoutMail = controller(page.config);
  try {
    await withoutMail.start();
    await create(namespace, 'pending-no-mail-server', spec('by-hand'));
    await create(namespace, 'accepted', spec('accepted'));
    await create(namespace, 'user-created', spec('direct', { createUserDirectly: true }));
    await create(namespace, 'failed-invalid-spec', spec('too-long', { expireAfter: 'P1000D' }));
    await create(namespace, 'expired', spec('expired', { expireAfter: 'PT3S' }));

    got['pending-no-mail-server'] = await waitFor(namespace, 'pending-no-mail-server', inPhase('Pending'), 'Pending with its link');
    const toAccept = await waitFor(namespace, 'accepted', (inv) => inv.status?.link !== undefined, 'Pending with its link');
    const answer = await acceptWithPassword(toAccept.status?.link ?? '', { password: PASSWORD });
    expect(answer.status, answer.body).toBe(200);
    got.accepted = await waitFor(namespace, 'accepted', inPhase('Accepted'), 'Accepted');
    got['user-created'] = await waitFor(namespace, 'user-created', inPhase('UserCreated'), 'UserCreated');
    got['failed-invalid-spec'] = await waitFor(namespace, 'failed-invalid-spec', inPhase('Failed'), 'Failed');
    got.expired = await waitFor(namespace, 'expired', inPhase('Expired'), 'Expired');
    for (const c of ['accepted', 'user-created'] as const) users.push(got[c]?.status?.user ?? '');
  } finally {
    await withoutMail.stop();
    await page.server.close();
  }

  // Run 2: a mail server that answers by recipient.
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let held: () => void = () => undefined;
  const holding = new Promise<void>((resolve) => {
    held = resolve;
  });
  const smtp = await startSmtp({
    onRcptTo(rcpt, _session, callback) {
      if (rcpt.address.startsWith('refused+')) callback(smtpError(550, '5.1.1 No such user here'));
      else if (rcpt.address.startsWith('deferred+')) callback(smtpError(421, '4.3.2 Try again later'));
      else callback();
    },
    onData(stream, session, callback) {
      stream.resume();
      stream.on('end', () => {
        if (!session.envelope.rcptTo.some((r) => r.address.startsWith('held+'))) {
          callback();
          return;
        }
        // The message is in; the reply waits until the test has looked.
        held();
        void released.then(() => {
          callback();
        });
      });
    },
  });
  const mailer = createInvitationMailer(mailConfig(smtp.port), undefined, { timeouts: { connectionMs: 5000, greetingMs: 5000, socketMs: 60_000 } });
  const withMail = controller({ ...page.config, mail: mailConfig(smtp.port) }, mailer);
  try {
    await withMail.start();
    await create(namespace, 'sent', spec('sent'));
    await create(namespace, 'failed-mail-rejected', spec('refused'));
    await create(namespace, 'pending-mail-retrying', spec('deferred'));
    await create(namespace, 'pending-sending', spec('held'));

    got.sent = await waitFor(namespace, 'sent', inPhase('Sent'), 'Sent');
    got['failed-mail-rejected'] = await waitFor(namespace, 'failed-mail-rejected', inPhase('Failed'), 'Failed');
    got['pending-mail-retrying'] = await waitFor(
      namespace,
      'pending-mail-retrying',
      (inv) => condition(inv, 'MailDelivered')?.reason === 'MailRetrying',
      'Pending, retrying its mail',
    );
    await holding;
    got['pending-sending'] = await waitFor(
      namespace,
      'pending-sending',
      (inv) => condition(inv, 'MailDelivered')?.reason === 'Sending',
      'Pending, its mail in flight',
    );
    expect(got['pending-sending'].status?.phase).toBe('Pending');
    release();
    await waitFor(namespace, 'pending-sending', inPhase('Sent'), 'Sent once released');
  } finally {
    release();
    await withMail.stop();
    mailer.close();
    await smtp.close();
  }

  // No controller runs now: an edit of the spec that Usher has not seen yet.
  await kubectlOk([
    'patch',
    'userinvitation',
    'sent',
    '-n',
    namespace,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { groups: ['data-engineers', 'analysts'] } }),
  ]);
  got['edited-not-yet-observed'] = await read(namespace, 'sent');

  for (const c of CASES) if (!got[c]) throw new Error(`no invitation for ${c}`);
  return { invitations: got as Record<Case, UserInvitation>, users: users.filter(Boolean) };
}

/** Deletes cluster-scoped Users the fixture made (their credentials go with them, by owner reference). */
export async function deleteUsers(names: readonly string[]): Promise<void> {
  if (names.length) await kubectl(['delete', 'users.usher.dev', ...names, '--ignore-not-found', '--wait=false']);
}

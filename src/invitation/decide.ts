// The reconciler's decision, as a pure function of what was observed:
// (invitation, its records, its link, its namespace's tenant, the User, config, now)
// → the actions to take and the status that should be. No I/O, no clock, no
// randomness: the reconciler performs the actions (issuing a token is one) and
// calls decide() again with the new world until no action is left.
import { normalizeEmail } from './email.ts';
import { forbiddenReason, invalidReason } from './rules.ts';
import { hasMembershipFrom } from './users.ts';
import { REISSUE_ANNOTATION, type Membership, type User, type UserInvitation, type UserInvitationStatus } from '../api/types.ts';
import { parseDuration } from '../config/duration.ts';
import type { UsherConfig } from '../config/types.ts';
import type { InvitationRecord } from './record.ts';
import { selectorOfLink } from './token.ts';
import { MAIL_DELIVERED, mergeConditions, readiness, type DesiredCondition } from './conditions.ts';
import { linkSecretNameFor } from './naming.ts';

export interface Observed {
  invitation: UserInvitation;
  /** Every record owned by this invitation (normally one). */
  records: readonly InvitationRecord[];
  /**
   * The link as last disclosed (status.link or the link Secret), or just issued;
   * only when its token verifies against one of `records` (see verifiedLink), else undefined.
   */
  link: string | undefined;
  /** The tenant named by the invitation's namespace label; undefined when unlabelled. */
  namespaceTenant: string | undefined;
  /** The User for the invitation's email, if one exists. */
  user: User | undefined;
  config: UsherConfig;
  now: Date;
}

export type Action =
  | { kind: 'issue'; issuance: number; issuedAt: string; expiresAt: string; email: string; reason: 'Issued' | 'Reissued' }
  | { kind: 'deleteRecord'; name: string; why: string }
  | { kind: 'sendMail'; record: string }
  | { kind: 'ensureUser'; email: string; membership: Membership };

export interface Plan {
  actions: Action[];
  status: UserInvitationStatus;
  /** Reconcile again after this long (the next deadline), if anything is due. */
  requeueAfterMs?: number;
}

const SECOND = 1000;

function iso(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function membershipOf(invitation: UserInvitation): Membership {
  const { spec, metadata } = invitation;
  const scope = spec.scope ?? 'Tenant';
  return {
    scope,
    ...(scope === 'Tenant' && spec.tenant ? { tenant: spec.tenant } : {}),
    groups: [...(spec.groups ?? [])],
    roles: (spec.roles ?? []).map((r) => ({ name: r.name, ...(r.namespaces?.length ? { namespaces: [...r.namespaces] } : {}) })),
    invitation: { namespace: metadata.namespace ?? '', name: metadata.name, uid: metadata.uid ?? '' },
  };
}

function expireAfterMs(o: Observed): number {
  const { expireAfter } = o.invitation.spec;
  return expireAfter === undefined ? o.config.invitations.expireAfterMs : parseDuration(expireAfter);
}

function reissueCommand(o: Observed): string {
  const { name, namespace } = o.invitation.metadata;
  return `kubectl annotate userinvitation ${name} -n ${namespace ?? 'default'} --overwrite ${REISSUE_ANNOTATION}="$(date -u +%FT%TZ)"`;
}

export function decide(o: Observed): Plan {
  const { invitation, config, now } = o;
  const { spec, metadata } = invitation;
  const previous = invitation.status ?? {};
  const generation = metadata.generation;
  const reissueRequest = metadata.annotations?.[REISSUE_ANNOTATION];
  const email = normalizeEmail(spec.email);
  const scope = spec.scope ?? 'Tenant';
  const base: UserInvitationStatus = {
    tenant: scope === 'Instance' ? '*' : (spec.tenant ?? ''),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    ...(previous.lastHandledReissueAt !== undefined ? { lastHandledReissueAt: previous.lastHandledReissueAt } : {}),
  };
  const finish = (status: UserInvitationStatus, conditions: DesiredCondition[], actions: Action[] = [], requeueAfterMs?: number): Plan => ({
    actions,
    status: withoutUndefined({ ...base, ...status, conditions: mergeConditions(previous.conditions, conditions, generation, now) }),
    ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}),
  });
  const revokeAll = (why: string): Action[] => o.records.map((r) => ({ kind: 'deleteRecord', name: r.name, why }));

  // Accepted is a fact: nothing that happens to the spec afterwards un-accepts it.
  const used = o.records.find((r) => r.usedAt);
  if (used || previous.acceptedAt) {
    const acceptedAt = used?.usedAt ?? previous.acceptedAt;
    const user = used?.user ?? previous.user;
    if (reissueRequest !== undefined) base.lastHandledReissueAt = reissueRequest;
    return finish(
      { phase: 'Accepted', ...(acceptedAt ? { acceptedAt } : {}), ...(user ? { user } : {}), ...pick(previous, 'issuance', 'issuedAt', 'expiresAt', 'sentAt') },
      readiness('ready', 'Accepted', `Accepted by ${email}${user ? ` as User ${user}` : ''}.`),
    );
  }

  const forbidden = forbiddenReason(invitation, o.namespaceTenant, config);
  if (forbidden) return finish({ phase: 'Failed' }, readiness('stalled', 'Forbidden', `${forbidden} Nothing was issued.`), revokeAll('forbidden'));
  const invalid = invalidReason(invitation, config);
  if (invalid) return finish({ phase: 'Failed' }, readiness('stalled', 'InvalidSpec', `${invalid} Nothing was issued.`), revokeAll('invalid spec'));

  if (spec.createUserDirectly) {
    const hasMembership = hasMembershipFrom(o.user, metadata.uid);
    const actions: Action[] = revokeAll('user created directly');
    if (!hasMembership) {
      actions.push({ kind: 'ensureUser', email, membership: membershipOf(invitation) });
      return finish({ phase: previous.phase ?? 'Pending' }, readiness('progressing', 'CreatingUser', `Creating User for ${email}.`), actions);
    }
    return finish(
      { phase: 'UserCreated', user: o.user?.metadata.name ?? '' },
      readiness('ready', 'UserCreated', `User ${o.user?.metadata.name ?? ''} was created directly for ${email}; they sign in through the identity provider.`),
      actions,
    );
  }

  // The current record is the one whose link we hold; with no link to hold (an expired
  // invitation's is withdrawn from status), the one status names by issuance. A record
  // matching neither was created by a reconcile that died before it could disclose the link.
  const linkSelector = selectorOfLink(o.link);
  const current = o.records.find((r) => (o.link ? r.selector === linkSelector : r.issuance === previous.issuance));
  const stale = o.records.filter((r) => r !== current);
  const reissueRequested = reissueRequest !== undefined && reissueRequest !== previous.lastHandledReissueAt;
  const emailChanged = current !== undefined && current.email !== email;
  // The raw token exists only in the link. A link that no longer verifies against its
  // record (a link Secret rewritten by someone who may write Secrets in the namespace)
  // is never mailed: while mail is still to be sent, a new token replaces it.
  const linkLost = current !== undefined && o.link === undefined && !current.mail?.sentAt && !current.mail?.failedPermanently && Date.parse(current.expiresAt) > now.getTime();

  if (!current || reissueRequested || emailChanged || linkLost) {
    const issuance = Math.max(previous.issuance ?? 0, ...o.records.map((r) => r.issuance)) + 1;
    if (reissueRequested) base.lastHandledReissueAt = reissueRequest;
    const reason = o.records.length > 0 || previous.issuance ? 'Reissued' : 'Issued';
    return finish(
      { phase: 'Pending' },
      readiness('progressing', reason === 'Issued' ? 'Issuing' : 'Reissuing', `Issuing a new invitation link for ${email}.`),
      [
        ...o.records.map((r): Action => ({ kind: 'deleteRecord', name: r.name, why: 'superseded by a new token' })),
        { kind: 'issue', issuance, issuedAt: iso(now), expiresAt: iso(new Date(now.getTime() + expireAfterMs(o))), email, reason },
      ],
    );
  }

  const cleanup: Action[] = stale.map((r) => ({ kind: 'deleteRecord', name: r.name, why: 'superseded by a new token' }));
  const disclosed = config.invitations.linkDisclosure === 'Secret' ? { linkSecretName: linkSecretNameFor(metadata.name) } : { link: o.link ?? '' };
  const issued = { ...disclosed, issuance: current.issuance, issuedAt: current.issuedAt, expiresAt: current.expiresAt };
  const msLeft = Date.parse(current.expiresAt) - now.getTime();
  if (msLeft <= 0) {
    return finish({ phase: 'Expired', issuance: current.issuance, issuedAt: current.issuedAt, expiresAt: current.expiresAt, ...sentAtOf(current) }, [...readiness('stalled', 'Expired', `The invitation expired at ${current.expiresAt}. Reissue it with: ${reissueCommand(o)}`), ...(current.mail?.sentAt ? [delivered('True', 'Sent', `Mailed to ${email} at ${current.mail.sentAt}.`)] : [])], cleanup);
  }

  if (!config.mail) {
    return finish(
      { phase: 'Pending', ...issued },
      [
        ...readiness('ready', 'LinkReady', `No mail server is configured: share the link in ${'link' in disclosed ? 'status.link' : `Secret ${disclosed.linkSecretName}`} with ${email} by hand. It expires at ${current.expiresAt}.`),
        delivered('False', 'NoMailServer', 'No mail server is configured (usher.mail): the link must be shared by hand.'),
      ],
      cleanup,
      msLeft,
    );
  }
  const mail = current.mail;
  if (mail?.sentAt) {
    return finish({ phase: 'Sent', ...issued, sentAt: mail.sentAt }, [...readiness('ready', 'Sent', `Invitation mailed to ${email} at ${mail.sentAt}; it expires at ${current.expiresAt}.`), delivered('True', 'Sent', `Mailed to ${email} at ${mail.sentAt}.`)], cleanup, msLeft);
  }
  if (mail?.failedPermanently) {
    return finish({ phase: 'Failed', ...issued }, [
        ...readiness('stalled', 'MailRejected', `The mail server refused the invitation for ${email}: ${mail.lastError ?? 'no reply'}. Fix the address or the server, then reissue: ${reissueCommand(o)}`),
        delivered('False', 'MailRejected', `Refused by the mail server: ${mail.lastError ?? 'no reply'}`),
      ], cleanup, msLeft);
  }
  const waitMs = mail?.nextAttemptAt ? Date.parse(mail.nextAttemptAt) - now.getTime() : 0;
  if (waitMs > 0) {
    return finish(
      { phase: 'Pending', ...issued },
      [
        ...readiness('progressing', 'MailRetrying', `Sending the invitation to ${email} failed (attempt ${mail?.attempts ?? 0}): ${mail?.lastError ?? ''}. Retrying in ${Math.ceil(waitMs / SECOND)}s.`),
        delivered('False', 'MailRetrying', `Attempt ${mail?.attempts ?? 0} failed: ${mail?.lastError ?? ''}`),
      ],
      cleanup,
      Math.min(waitMs, msLeft),
    );
  }
  return finish({ phase: 'Pending', ...issued }, [...readiness('progressing', 'Sending', `Sending the invitation to ${email}.`), delivered('Unknown', 'Sending', `Sending to ${email}.`)], [...cleanup, { kind: 'sendMail', record: current.name }]);
}

/** MailDelivered: what became of the mail for the current token. */
function delivered(status: DesiredCondition['status'], reason: string, message: string): DesiredCondition {
  return { type: MAIL_DELIVERED, status, reason, message };
}

function sentAtOf(record: InvitationRecord): { sentAt?: string } {
  return record.mail?.sentAt ? { sentAt: record.mail.sentAt } : {};
}

function pick<K extends keyof UserInvitationStatus>(status: UserInvitationStatus, ...keys: K[]): Pick<UserInvitationStatus, K> {
  const out: Partial<UserInvitationStatus> = {};
  for (const key of keys) if (status[key] !== undefined) out[key] = status[key];
  return out;
}

/** Status as it will read back from the API server: no keys holding undefined. */
function withoutUndefined(status: UserInvitationStatus): UserInvitationStatus {
  return Object.fromEntries(Object.entries(status).filter(([, v]) => v !== undefined));
}

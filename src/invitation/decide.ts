// The reconciler's decision, as a pure function of what was observed:
// (invitation, its records, its link, its namespace's tenant, the User, config, now)
// → the actions to take and the status that should be. No I/O, no clock, no
// randomness: the reconciler performs the actions (issuing a token is one) and
// calls decide() again with the new world until no action is left.
//
// decide() is a chain of small named checks (accepted, forbidden, invalid, ...),
// each a Plan or undefined, reading facts computed once and never changed. What
// makes the current record's link dead is link-state.ts's checks, the same ones
// the acceptance page's linkState() is made of (its module comment maps one to
// the other).
//
// The invitation keeps owning the membership it granted (docs/adr/0007): once
// accepted (or its User created directly), the User must carry
// membershipOf(invitation), so an edit of spec.groups or spec.roles is a
// syncMembership, and Ready says True only once the User carries it. With
// usher.access.onInvitationDelete RemoveMembership, the usher.dev/membership
// finalizer goes on before anything that can grant (a token, a direct User),
// and deleting the invitation revokes its records, takes the membership off
// the User (deletes a User left with none, if so configured), and only then
// lets the invitation go.
import { normalizeEmail } from './email.ts';
import { forbiddenReason, invalidReason } from './rules.ts';
import { ACCEPTING_RECORD_ANNOTATION, describeMembership, membershipFrom, sameMembership, withoutMembership } from './users.ts';
import { REISSUE_ANNOTATION, type Membership, type User, type UserInvitation, type UserInvitationStatus } from '../api/types.ts';
import { parseDuration } from '../config/duration.ts';
import type { UsherConfig } from '../config/types.ts';
import type { InvitationRecord } from './record.ts';
import { selectorOfLink } from './token.ts';
import { MAIL_DELIVERED, mergeConditions, readiness, type DesiredCondition } from './conditions.ts';
import { linkSecretNameFor } from './naming.ts';
import { createsUserDirectly, hasExpired, isForAddress, isUsed, msUntilExpiry, pendingReissue } from './link-state.ts';
import { isoSeconds } from './time.ts';

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
  /**
   * The User the invitation's membership is on, or goes to: once accepted, the
   * one the used record or status.user names; otherwise the User of spec.email.
   * Undefined when there is none.
   */
  user: User | undefined;
  config: UsherConfig;
  now: Date;
  /**
   * The mail server's last outage, once it answers again: from the first failure it
   * caused to the moment it recovered. A transient failure inside it does not wait out
   * its backoff: the attempt is made again at once (docs: what an SMTP outage costs).
   */
  mailOutage?: MailOutage;
}

export interface MailOutage {
  from: Date;
  to: Date;
}

export type Action =
  | { kind: 'issue'; issuance: number; issuedAt: string; expiresAt: string; email: string; reason: 'Issued' | 'Reissued' }
  | { kind: 'deleteRecord'; name: string; why: string }
  | { kind: 'sendMail'; record: string }
  | { kind: 'ensureUser'; email: string; membership: Membership }
  /** Put the usher.dev/membership finalizer on the invitation (before anything that can grant a membership). */
  | { kind: 'addFinalizer' }
  /** Take it off: the membership is gone (or is to be kept), so the invitation may go. */
  | { kind: 'removeFinalizer' }
  /**
   * Make the User's membership from this invitation `membership` (an edit of groups or roles; `previous` when it had one).
   * `settle`: in the same write, drop the acceptance's provisional marks (see settleUser).
   */
  | { kind: 'syncMembership'; user: string; membership: Membership; previous?: Membership; settle?: true }
  /** The invitation is deleted: take its membership off the User (and, `settle`, the marks of its used record). */
  | { kind: 'removeMembership'; user: string; membership: Membership; settle?: true }
  /**
   * Drop the provisional marks the acceptance page left on the User when its own
   * last step (best effort) did not: they name this invitation's used record, so
   * they mean nothing; but once the record is gone (the invitation deleted) the
   * identity controller would take them for an acceptance still under way.
   */
  | { kind: 'settleUser'; user: string }
  /** The invitation is deleted and its membership was the User's last: delete the User, if it is still the version seen. */
  | { kind: 'deleteUser'; user: string; uid: string; resourceVersion: string; membership: Membership };

/** Held by an invitation whose membership Usher must take off the User before the invitation goes (usher.access.onInvitationDelete). */
export const MEMBERSHIP_FINALIZER = 'usher.dev/membership';

export interface Plan {
  actions: Action[];
  status: UserInvitationStatus;
  /** Reconcile again after this long (the next deadline), if anything is due. */
  requeueAfterMs?: number;
}

const SECOND = 1000;
/** How long after an acceptance a User the caches do not show yet is waited for, rather than reported missing. */
export const USER_WAIT_MS = 30 * SECOND;
/** How often to look again while waiting for a User. */
const USER_POLL_MS = 2 * SECOND;

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

/**
 * A chain of small named checks, in order; the first that applies makes the plan.
 * First those in which the invitation holds no link, then, when a token is held
 * and still alive (the link-state checks of link-state.ts), what became of its mail.
 */
export function decide(o: Observed): Plan {
  const f = factsOf(o);
  if (o.invitation.metadata.deletionTimestamp) return deletion(f);
  return withFinalizer(f, live(f));
}

function live(f: Facts): Plan {
  const linkless = accepted(f) ?? forbidden(f) ?? invalid(f) ?? directCreation(f);
  if (linkless) return linkless;
  const held = liveToken(f);
  if (!held) return newToken(f);
  return expired(f, held) ?? noMailServer(f, held) ?? mailSent(f, held) ?? mailRejected(f, held) ?? mailRetrying(f, held) ?? sendMail(f, held);
}

export function holdsMembershipFinalizer(invitation: UserInvitation): boolean {
  return invitation.metadata.finalizers?.includes(MEMBERSHIP_FINALIZER) ?? false;
}

/**
 * The finalizer goes on before the first thing that can grant a membership: a
 * token (whoever holds the link may accept) or a direct User. So an invitation
 * deleted the moment after it was accepted still holds it, and no membership
 * outlives its invitation unseen. Invitations that never held a token (refused
 * ones) carry none. With onInvitationDelete Keep, none at all.
 */
function withFinalizer(f: Facts, p: Plan): Plan {
  const holds = holdsMembershipFinalizer(f.o.invitation);
  if (f.o.config.access.onInvitationDelete === 'Keep') return holds ? { ...p, actions: [{ kind: 'removeFinalizer' }, ...p.actions] } : p;
  if (holds) return p;
  const grants =
    f.o.records.length > 0 ||
    f.granted !== undefined ||
    p.status.phase === 'Accepted' ||
    p.status.phase === 'UserCreated' ||
    p.actions.some((a) => a.kind === 'issue' || a.kind === 'ensureUser' || a.kind === 'syncMembership');
  return grants ? { ...p, actions: [{ kind: 'addFinalizer' }, ...p.actions] } : p;
}

/**
 * A deleted invitation that holds the finalizer: its records first (no link
 * opens any more, and an acceptance under way finds its record gone and rolls
 * back), then its membership off the User, then the finalizer. Status is not
 * written: the invitation is going.
 */
function deletion(f: Facts): Plan {
  const { o, previous } = f;
  if (!holdsMembershipFinalizer(o.invitation)) return { actions: [], status: previous };
  const actions = revokeAll(f, 'invitation deleted');
  const { liveUser: user, granted } = f;
  if (o.config.access.onInvitationDelete === 'RemoveMembership' && user && granted) {
    const uid = o.invitation.metadata.uid ?? '';
    const others = withoutMembership(user, uid).spec.memberships ?? [];
    if (others.length === 0 && o.config.access.deleteUserWithoutMemberships) {
      actions.push({
        kind: 'deleteUser',
        user: user.metadata.name,
        uid: user.metadata.uid ?? '',
        resourceVersion: user.metadata.resourceVersion ?? '',
        membership: granted,
      });
    } else {
      actions.push({ kind: 'removeMembership', user: user.metadata.name, membership: granted, ...(f.staleMarks ? { settle: true as const } : {}) });
    }
  }
  actions.push({ kind: 'removeFinalizer' });
  return { actions, status: previous };
}

/** What every check reads, computed once from the observation and never changed. */
interface Facts {
  readonly o: Observed;
  /** The status as stored. */
  readonly previous: UserInvitationStatus;
  readonly email: string;
  /** The reissue annotation's value, handled or not. */
  readonly reissueRequest: string | undefined;
  /** What every status carries: the tenant, observedGeneration, the last reissue request handled. */
  readonly base: Readonly<UserInvitationStatus>;
  /** What the invitation grants as it reads now. */
  readonly membership: Membership;
  /** The User, unless it is being deleted (then its memberships go with it). */
  readonly liveUser: User | undefined;
  /** The membership this invitation granted, as the User carries it now. */
  readonly granted: Membership | undefined;
  /** The User still carries the provisional marks of this invitation's used record. */
  readonly staleMarks: boolean;
}

function factsOf(o: Observed): Facts {
  const { spec, metadata } = o.invitation;
  const previous = o.invitation.status ?? {};
  const generation = metadata.generation;
  const liveUser = o.user?.metadata.deletionTimestamp ? undefined : o.user;
  return {
    o,
    previous,
    membership: membershipOf(o.invitation),
    liveUser,
    granted: membershipFrom(liveUser, metadata.uid),
    staleMarks: o.records.some((r) => isUsed(r) && r.name === liveUser?.metadata.annotations?.[ACCEPTING_RECORD_ANNOTATION]),
    email: normalizeEmail(spec.email),
    reissueRequest: metadata.annotations?.[REISSUE_ANNOTATION],
    base: {
      tenant: (spec.scope ?? 'Tenant') === 'Instance' ? '*' : (spec.tenant ?? ''),
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      ...(previous.lastHandledReissueAt !== undefined ? { lastHandledReissueAt: previous.lastHandledReissueAt } : {}),
    },
  };
}

/** What a check concludes; plan() turns it into the Plan. */
interface Outcome {
  status: UserInvitationStatus;
  conditions: DesiredCondition[];
  actions?: Action[];
  requeueAfterMs?: number;
  /** The reissue request this plan answers, recorded as status.lastHandledReissueAt. */
  handlesReissue?: string;
}

function plan(f: Facts, out: Outcome): Plan {
  const { previous, o } = f;
  const base = out.handlesReissue === undefined ? f.base : { ...f.base, lastHandledReissueAt: out.handlesReissue };
  return {
    actions: out.actions ?? [],
    status: withoutUndefined({
      ...base,
      ...out.status,
      conditions: mergeConditions(previous.conditions, out.conditions, o.invitation.metadata.generation, o.now),
    }),
    ...(out.requeueAfterMs !== undefined ? { requeueAfterMs: out.requeueAfterMs } : {}),
  };
}

function revokeAll(f: Facts, why: string): Action[] {
  return f.o.records.map((r) => ({ kind: 'deleteRecord', name: r.name, why }));
}

/**
 * Accepted is a fact: nothing that happens to the spec afterwards un-accepts it.
 * From then on the invitation owns the membership it granted (owned()).
 */
function accepted(f: Facts): Plan | undefined {
  const { previous, email } = f;
  const used = f.o.records.find(isUsed);
  if (!used && !previous.acceptedAt) return undefined;
  const acceptedAt = used?.usedAt ?? previous.acceptedAt;
  const user = used?.user ?? previous.user;
  return plan(f, {
    status: {
      phase: 'Accepted',
      ...(acceptedAt ? { acceptedAt } : {}),
      ...(user ? { user } : {}),
      ...pick(previous, 'issuance', 'issuedAt', 'expiresAt', 'sentAt'),
    },
    ...owned(f, user ?? '', acceptedAt, readiness('ready', 'Accepted', `Accepted by ${email}${user ? ` as User ${user}` : ''}.`)),
    ...(f.reissueRequest !== undefined ? { handlesReissue: f.reissueRequest } : {}),
  });
}

/**
 * A granted membership, kept as the invitation reads: the User must carry
 * membershipOf(invitation), so an edit of groups or roles becomes a
 * syncMembership, and `done` (Ready) holds only once the User carries it.
 * What the membership is bound to (the User's address, the scope and the
 * tenant) never changes here: the CRD refuses such an edit once accepted, and
 * should one come through anyway (an older CRD, the moment before status says
 * Accepted) it is reported, not applied. Nor is an edit the rules forbid.
 */
function owned(
  f: Facts,
  userName: string,
  acceptedAt: string | undefined,
  done: DesiredCondition[],
): Pick<Outcome, 'conditions' | 'actions' | 'requeueAfterMs'> {
  const { liveUser: user, granted, membership: want, email, o } = f;
  if (!user) {
    const recent = acceptedAt !== undefined && o.now.getTime() - Date.parse(acceptedAt) < USER_WAIT_MS;
    if (recent) {
      return { conditions: readiness('progressing', 'WaitingForUser', `Waiting for User ${userName} to appear.`), requeueAfterMs: USER_POLL_MS };
    }
    return {
      conditions: readiness(
        'stalled',
        'UserMissing',
        `User ${userName} no longer exists, so ${email} has none of this invitation’s access. Invite them again with a new invitation, or delete this one.`,
      ),
    };
  }
  const fixed = fixedChange(f, user, granted);
  if (fixed) {
    return {
      conditions: readiness(
        'stalled',
        'FixedAfterAcceptance',
        `${fixed} once the invitation is accepted; the change is not applied and User ${user.metadata.name} keeps ${granted ? describeMembership(granted) : 'its memberships'}. Invite with a new invitation instead (and delete this one to end the old access).`,
      ),
    };
  }
  if (granted && sameMembership(granted, want)) {
    return { conditions: done, ...(f.staleMarks ? { actions: [{ kind: 'settleUser', user: user.metadata.name }] } : {}) };
  }
  const forbiddenWhy = forbiddenReason(o.invitation, o.namespaceTenant, o.config);
  const invalidWhy = forbiddenWhy ? undefined : invalidReason(o.invitation, o.config);
  if (forbiddenWhy ?? invalidWhy) {
    const keeps = granted ? `keeps ${describeMembership(granted)}` : 'gets nothing from it';
    return {
      conditions: readiness(
        'stalled',
        forbiddenWhy ? 'Forbidden' : 'InvalidSpec',
        `${forbiddenWhy ?? invalidWhy ?? ''} The change is not applied: User ${user.metadata.name} ${keeps}.`,
      ),
    };
  }
  return {
    conditions: readiness('progressing', 'UpdatingMembership', `Updating the membership of User ${user.metadata.name} to ${describeMembership(want)}.`),
    actions: [
      {
        kind: 'syncMembership',
        user: user.metadata.name,
        membership: want,
        ...(granted ? { previous: granted } : {}),
        ...(f.staleMarks ? { settle: true as const } : {}),
      },
    ],
  };
}

/** What changed of the fields an accepted membership is bound to, in words; undefined when none did. */
function fixedChange(f: Facts, user: User, granted: Membership | undefined): string | undefined {
  const { membership: want, email } = f;
  if (normalizeEmail(user.spec.email) !== email) return `spec.email cannot change from ${user.spec.email} to ${email}`;
  if (!granted) return undefined;
  if (granted.scope !== want.scope) return `spec.scope cannot change from ${granted.scope} to ${want.scope}`;
  if ((granted.tenant ?? '') !== (want.tenant ?? '')) return `spec.tenant cannot change from ${granted.tenant ?? '(none)'} to ${want.tenant ?? '(none)'}`;
  return undefined;
}

function forbidden(f: Facts): Plan | undefined {
  const reason = forbiddenReason(f.o.invitation, f.o.namespaceTenant, f.o.config);
  if (!reason) return undefined;
  return plan(f, {
    status: { phase: 'Failed' },
    conditions: readiness('stalled', 'Forbidden', `${reason} Nothing was issued.`),
    actions: revokeAll(f, 'forbidden'),
  });
}

function invalid(f: Facts): Plan | undefined {
  const reason = invalidReason(f.o.invitation, f.o.config);
  if (!reason) return undefined;
  return plan(f, {
    status: { phase: 'Failed' },
    conditions: readiness('stalled', 'InvalidSpec', `${reason} Nothing was issued.`),
    actions: revokeAll(f, 'invalid spec'),
  });
}

/** createUserDirectly: no link, no mail; the User gets the membership at once, and keeps it as the invitation reads. */
function directCreation(f: Facts): Plan | undefined {
  const { invitation, user } = f.o;
  if (!createsUserDirectly(invitation)) return undefined;
  const { email, previous, granted } = f;
  const revoked = revokeAll(f, 'user created directly');
  if (user?.metadata.deletionTimestamp) {
    // Deleted (by hand, or when its last invitation went): made again once it is gone.
    return plan(f, {
      status: { phase: previous.phase ?? 'Pending' },
      conditions: readiness('progressing', 'WaitingForUser', `User ${user.metadata.name} is being deleted; it is made again for ${email} once it is gone.`),
      actions: revoked,
      requeueAfterMs: USER_POLL_MS,
    });
  }
  if (!granted) {
    return plan(f, {
      status: { phase: previous.phase ?? 'Pending' },
      conditions: readiness('progressing', 'CreatingUser', `Creating User for ${email}.`),
      actions: [...revoked, { kind: 'ensureUser', email, membership: f.membership }],
    });
  }
  const name = user?.metadata.name ?? '';
  const kept = owned(
    f,
    name,
    undefined,
    readiness('ready', 'UserCreated', `User ${name} was created directly for ${email}; they sign in through the identity provider.`),
  );
  return plan(f, { status: { phase: 'UserCreated', user: name }, ...kept, actions: [...revoked, ...(kept.actions ?? [])] });
}

/** The token the invitation holds and still stands behind. */
interface Held {
  readonly current: InvitationRecord;
  /** Deleting the other records, superseded by the current one. */
  readonly cleanup: Action[];
  /** Where the link is disclosed (status.link or the link Secret), and the issuance it shows. */
  readonly issued: UserInvitationStatus;
  readonly disclosedIn: string;
  readonly msLeft: number;
}

/**
 * The current record and what status shows of it, unless a new token is needed:
 * none is held, a reissue is requested, the address changed, or the link was lost.
 */
function liveToken(f: Facts): Held | undefined {
  const { o, previous } = f;
  // The current record is the one whose link we hold; with no link to hold (an expired
  // invitation's is withdrawn from status), the one status names by issuance. A record
  // matching neither was created by a reconcile that died before it could disclose the link.
  const linkSelector = selectorOfLink(o.link);
  const current = o.records.find((r) => (o.link ? r.selector === linkSelector : r.issuance === previous.issuance));
  if (!current || pendingReissue(o.invitation) !== undefined || !isForAddress(current, o.invitation) || linkLost(o, current)) return undefined;
  const disclosed =
    o.config.invitations.linkDisclosure === 'Secret' ? { linkSecretName: linkSecretNameFor(o.invitation.metadata.name) } : { link: o.link ?? '' };
  return {
    current,
    cleanup: o.records.filter((r) => r !== current).map((r) => ({ kind: 'deleteRecord', name: r.name, why: 'superseded by a new token' })),
    issued: { ...disclosed, issuance: current.issuance, issuedAt: current.issuedAt, expiresAt: current.expiresAt },
    disclosedIn: 'link' in disclosed ? 'status.link' : `Secret ${disclosed.linkSecretName}`,
    msLeft: msUntilExpiry(current, o.now),
  };
}

/**
 * The raw token exists only in the link. A link that no longer verifies against its
 * record (a link Secret rewritten by someone who may write Secrets in the namespace)
 * is never mailed: while mail is still to be sent, a new token replaces it.
 */
function linkLost(o: Observed, current: InvitationRecord): boolean {
  return o.link === undefined && !current.mail?.sentAt && !current.mail?.failedPermanently && msUntilExpiry(current, o.now) > 0;
}

function newToken(f: Facts): Plan {
  const { o, previous, email } = f;
  const issuance = Math.max(previous.issuance ?? 0, ...o.records.map((r) => r.issuance)) + 1;
  const reason = o.records.length > 0 || previous.issuance ? 'Reissued' : 'Issued';
  const reissue = pendingReissue(o.invitation);
  return plan(f, {
    status: { phase: 'Pending' },
    conditions: readiness('progressing', reason === 'Issued' ? 'Issuing' : 'Reissuing', `Issuing a new invitation link for ${email}.`),
    actions: [
      ...o.records.map((r): Action => ({ kind: 'deleteRecord', name: r.name, why: 'superseded by a new token' })),
      { kind: 'issue', issuance, issuedAt: isoSeconds(o.now), expiresAt: isoSeconds(new Date(o.now.getTime() + expireAfterMs(o))), email, reason },
    ],
    ...(reissue !== undefined ? { handlesReissue: reissue } : {}),
  });
}

function expired(f: Facts, h: Held): Plan | undefined {
  const { current } = h;
  if (!hasExpired(current, f.o.now)) return undefined;
  return plan(f, {
    status: { phase: 'Expired', issuance: current.issuance, issuedAt: current.issuedAt, expiresAt: current.expiresAt, ...sentAtOf(current) },
    conditions: [
      ...readiness('stalled', 'Expired', `The invitation expired at ${current.expiresAt}. Reissue it with: ${reissueCommand(f.o)}`),
      ...(current.mail?.sentAt ? [delivered('True', 'Sent', `Mailed to ${f.email} at ${current.mail.sentAt}.`)] : []),
    ],
    actions: h.cleanup,
  });
}

function noMailServer(f: Facts, h: Held): Plan | undefined {
  if (f.o.config.mail) return undefined;
  return plan(f, {
    status: { phase: 'Pending', ...h.issued },
    conditions: [
      ...readiness(
        'ready',
        'LinkReady',
        `No mail server is configured: share the link in ${h.disclosedIn} with ${f.email} by hand. It expires at ${h.current.expiresAt}.`,
      ),
      delivered('False', 'NoMailServer', 'No mail server is configured (usher.mail): the link must be shared by hand.'),
    ],
    actions: h.cleanup,
    requeueAfterMs: h.msLeft,
  });
}

function mailSent(f: Facts, h: Held): Plan | undefined {
  const sentAt = h.current.mail?.sentAt;
  if (!sentAt) return undefined;
  return plan(f, {
    status: { phase: 'Sent', ...h.issued, sentAt },
    conditions: [
      ...readiness('ready', 'Sent', `Invitation mailed to ${f.email} at ${sentAt}; it expires at ${h.current.expiresAt}.`),
      delivered('True', 'Sent', `Mailed to ${f.email} at ${sentAt}.`),
    ],
    actions: h.cleanup,
    requeueAfterMs: h.msLeft,
  });
}

function mailRejected(f: Facts, h: Held): Plan | undefined {
  const mail = h.current.mail;
  if (!mail?.failedPermanently) return undefined;
  return plan(f, {
    status: { phase: 'Failed', ...h.issued },
    conditions: [
      ...readiness(
        'stalled',
        'MailRejected',
        `The mail server refused the invitation for ${f.email}: ${mail.lastError ?? 'no reply'}. Fix the address or the server, then reissue: ${reissueCommand(f.o)}`,
      ),
      delivered('False', 'MailRejected', `Refused by the mail server: ${mail.lastError ?? 'no reply'}`),
    ],
    actions: h.cleanup,
    requeueAfterMs: h.msLeft,
  });
}

/**
 * A transient failure: wait for the retry the mail's backoff set, unless the failure
 * happened during a mail server outage that has ended since (then retry now).
 */
function mailRetrying(f: Facts, h: Held): Plan | undefined {
  const mail = h.current.mail;
  const waitMs = mail?.nextAttemptAt && !failedInEndedOutage(mail, f.o.mailOutage) ? Date.parse(mail.nextAttemptAt) - f.o.now.getTime() : 0;
  return waitMs > 0
    ? plan(f, {
        status: { phase: 'Pending', ...h.issued },
        conditions: [
          ...readiness(
            'progressing',
            'MailRetrying',
            `Sending the invitation to ${f.email} failed (attempt ${mail?.attempts ?? 0}): ${mail?.lastError ?? ''}. Retrying in ${Math.ceil(waitMs / SECOND)}s.`,
          ),
          delivered('False', 'MailRetrying', `Attempt ${mail?.attempts ?? 0} failed: ${mail?.lastError ?? ''}`),
        ],
        actions: h.cleanup,
        requeueAfterMs: Math.min(waitMs, h.msLeft),
      })
    : undefined;
}

/** Whether a mail attempt failed inside this outage (the controller queues those when it ends, decide() retries them). */
export function failedInEndedOutage(mail: InvitationRecord['mail'], outage: MailOutage | undefined): boolean {
  if (!outage || !mail?.failedAt) return false;
  const failedAt = Date.parse(mail.failedAt);
  return failedAt >= outage.from.getTime() && failedAt <= outage.to.getTime();
}

function sendMail(f: Facts, h: Held): Plan {
  return plan(f, {
    status: { phase: 'Pending', ...h.issued },
    conditions: [...readiness('progressing', 'Sending', `Sending the invitation to ${f.email}.`), delivered('Unknown', 'Sending', `Sending to ${f.email}.`)],
    actions: [...h.cleanup, { kind: 'sendMail', record: h.current.name }],
  });
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

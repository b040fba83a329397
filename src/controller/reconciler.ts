// One reconcile of one UserInvitation, in controller-runtime's mould: read the
// world (from caches), decide (a pure function), act, and write status only if
// it changed. Acting changes the world, so decide runs again on the new world
// until it asks for nothing more; then the status is written once. A deleted
// invitation that holds the usher.dev/membership finalizer is finalized in one
// round (its records, its membership on the User, the finalizer), no status.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { User, UserInvitation, UserInvitationStatus } from '../api/types.ts';
import {
  ACCEPTING_CLAIM_ANNOTATION,
  ACCEPTING_RECORD_ANNOTATION,
  describeMembership,
  findUser,
  withMembership,
  withoutMembership,
} from '../invitation/users.ts';
import type { UsherConfig } from '../config/types.ts';
import { type InvitationRecord, type MailState } from '../invitation/record.ts';
import { linkFor, parseToken, SELECTOR_BYTES, selectorOfLink, tokenFromBytes, VERIFIER_BYTES, verifierMatches } from '../invitation/token.ts';
import { isConflict, isNotFound } from '../runtime/client.ts';
import { decide, MEMBERSHIP_FINALIZER, type Action, type MailOutage, type Observed } from '../invitation/decide.ts';
import { isUsed } from '../invitation/link-state.ts';
import type { ClusterReader, ClusterWriter, InvitationMailer } from './ports.ts';
import { recordName } from '../invitation/naming.ts';
import { isoSeconds } from '../invitation/time.ts';

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface ReconcilerDeps {
  reader: ClusterReader;
  writer: ClusterWriter;
  config: UsherConfig;
  mailer?: InvitationMailer;
  log: Logger;
  now?: () => Date;
  /** Where token bytes come from (crypto.randomBytes); the domain draws none. */
  randomBytes?: (size: number) => Uint8Array;
  /** Delay before the next mail attempt after `attempts` transient failures. */
  mailBackoffMs?: (attempts: number) => number;
  /** With usher.identity: whether the identity provider has an account for an address. */
  accounts?: AccountLookup;
}

export interface AccountLookup {
  exists(email: string): Promise<boolean>;
}

/** How often an open invitation's address is looked up at the identity provider, at most. */
export const ACCOUNT_CHECK_INTERVAL_MS = 60_000;

/** decide() converges in a few rounds; more means a bug, not a slow world. */
export const MAX_ROUNDS = 8;

export function defaultMailBackoffMs(attempts: number): number {
  const base = Math.min(30_000 * 2 ** Math.max(0, attempts - 1), 60 * 60_000);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export class Reconciler {
  private readonly deps: ReconcilerDeps;
  /** When each open record's address was last looked up at the identity provider (by record name). */
  private readonly accountChecks = new Map<string, number>();
  private accountChecksPrunedAt = 0;

  constructor(deps: ReconcilerDeps) {
    this.deps = deps;
  }

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const { reader, config } = this.deps;
    const now = this.deps.now ?? (() => new Date());
    let invitation = reader.invitation(namespace, name);
    // Gone: the controller deletes its records (Controller.removeOrphanRecords); nothing to reconcile.
    // Being deleted: decide() finalizes it, if it holds the finalizer.
    if (!invitation) return {};
    const uid = invitation.metadata.uid ?? '';
    let freshLink: string | undefined;
    let asked: readonly Action[] = [];
    // The outcome Event compares the status at the end with the status now, so that a
    // reconcile that issues, discloses and mails records one Event, not one per step.
    const before = invitation.status ?? {};
    // Records this reconcile created with their first mail attempt already marked.
    const premarked = new Set<string>();

    for (let round = 0; round < MAX_ROUNDS; round++) {
      const records = reader.records(uid);
      const observed: Observed = {
        invitation,
        records,
        link:
          freshLink ??
          verifiedLink(config.invitations.linkDisclosure === 'Secret' ? reader.linkSecret(namespace, name) : invitation.status?.link, records, config.baseUrl),
        namespaceTenant: reader.namespaceTenant(namespace),
        user: this.userOf(invitation, records),
        config,
        now: now(),
        ...this.mailOutage(),
      };
      const plan = decide(observed);
      if (invitation.metadata.deletionTimestamp) {
        // The invitation is going: act once (records, membership, finalizer), write no status.
        for (const action of plan.actions) await this.act(invitation, action, observed, premarked);
        return {};
      }
      if (plan.actions.length === 0) {
        await this.checkAccount(records, now());
        await this.writeStatusIfChanged(invitation, plan.status);
        this.recordOutcome(invitation, before, plan.status);
        return plan.requeueAfterMs !== undefined ? { requeueAfterMs: plan.requeueAfterMs } : {};
      }
      asked = plan.actions;
      for (const action of plan.actions) {
        const done = await this.act(invitation, action, observed, premarked);
        if (done.link) freshLink = done.link;
        // A finalizer written: later writes in this round (the status) carry its resourceVersion.
        if (done.invitation) invitation = done.invitation;
      }
      // A fresh token's link must reach status before anything else can go wrong:
      // the raw token exists nowhere else.
      if (freshLink) {
        if (config.invitations.linkDisclosure === 'Secret') await this.deps.writer.writeLinkSecret(invitation, freshLink);
        const disclosed = await this.discloseLink(invitation, observed, freshLink, plan.status.lastHandledReissueAt);
        if (!disclosed) return {};
        invitation = disclosed;
        freshLink = undefined;
      }
    }
    throw new Error(
      `reconcile of ${namespace}/${name} did not converge after ${MAX_ROUNDS} rounds: decide() still asks for ${asked.map(describeAction).join(', ')} (a bug, not a slow world)`,
    );
  }

  private mailOutage(): { mailOutage?: MailOutage } {
    const outage = this.deps.mailer?.lastOutage?.();
    return outage ? { mailOutage: outage } : {};
  }

  /**
   * Notes in the open record whether the identity provider already has an
   * account for the address, so that the page asks the person to sign in to it
   * instead of offering a new password. At most once a minute per record; the
   * record is written only when the answer changes. A provider that is down
   * leaves the note as it is: the identity controller never overwrites an
   * account it did not create, whatever the page did (docs/security.md).
   */
  private async checkAccount(records: readonly InvitationRecord[], now: Date): Promise<void> {
    const { accounts, writer, log } = this.deps;
    if (!accounts) return;
    this.pruneAccountChecks(now.getTime());
    const open = records.find((r) => !r.usedAt && Date.parse(r.expiresAt) > now.getTime());
    if (!open) return;
    const last = this.accountChecks.get(open.name);
    if (last !== undefined && now.getTime() - last < ACCOUNT_CHECK_INTERVAL_MS) return;
    let exists: boolean;
    try {
      exists = await accounts.exists(open.email);
    } catch (err) {
      log.warn({ record: open.name, err: err instanceof Error ? err.message : String(err) }, 'could not look the address up at the identity provider');
      return;
    }
    this.accountChecks.set(open.name, now.getTime());
    if ((open.accountExists ?? false) === exists) return;
    try {
      await writer.updateRecord({ ...open, accountExists: exists });
    } catch (err) {
      // Someone wrote the record meanwhile (the page, a mail attempt): look again next time.
      if (!isConflict(err)) throw err;
      this.accountChecks.delete(open.name);
    }
  }

  /** Forgets lookups old enough to be made again anyway (at most once an interval: a sweep is O(entries)). */
  private pruneAccountChecks(now: number): void {
    if (now - this.accountChecksPrunedAt < ACCOUNT_CHECK_INTERVAL_MS) return;
    this.accountChecksPrunedAt = now;
    for (const [name, at] of this.accountChecks) if (now - at >= ACCOUNT_CHECK_INTERVAL_MS) this.accountChecks.delete(name);
  }

  /**
   * Writes the status that shows a freshly issued link. A conflict here (someone
   * edited the invitation meanwhile) must not lose the link, so it re-reads the
   * invitation from the API server and tries again. Undefined if it was deleted.
   */
  private async discloseLink(
    invitation: UserInvitation,
    observed: Observed,
    link: string,
    handledReissueAt: string | undefined,
  ): Promise<UserInvitation | undefined> {
    const { reader, writer } = this.deps;
    const now = this.deps.now ?? (() => new Date());
    const { namespace = '', name } = invitation.metadata;
    let latest = invitation;
    const selector = selectorOfLink(link);
    const ourIssuance = reader.records(invitation.metadata.uid ?? '').find((r) => r.selector === selector)?.issuance ?? 0;
    for (let attempt = 1; ; attempt++) {
      // The reissue request this token answered counts as handled, though status does not say so yet.
      const asIssued: UserInvitation =
        handledReissueAt === undefined ? latest : { ...latest, status: { ...latest.status, lastHandledReissueAt: handledReissueAt } };
      const next = decide({ ...observed, invitation: asIssued, records: reader.records(latest.metadata.uid ?? ''), link, now: now() });
      try {
        return await this.writeStatusIfChanged(latest, next.status);
      } catch (err) {
        if (!isConflict(err) || attempt >= 5) throw err;
        const fresh = await writer.readInvitation(namespace, name);
        if (!fresh || fresh.metadata.uid !== invitation.metadata.uid) return undefined;
        // Another replica (a leader that took over while this one stalled) disclosed a token of its
        // own meanwhile: ours is superseded, and putting it back would have it mailed as a dead link.
        if (supersedes(fresh.status, ourIssuance, link)) return undefined;
        latest = fresh;
      }
    }
  }

  /**
   * The User the invitation's membership is on: once accepted, the one the used
   * record (or status.user) names, so that an address changed after acceptance
   * cannot move the membership to another User; before, the User of spec.email.
   */
  private userOf(invitation: UserInvitation, records: readonly InvitationRecord[]): User | undefined {
    const { reader } = this.deps;
    const named = records.find(isUsed)?.user ?? invitation.status?.user;
    if (named) return reader.user(named);
    return findUser(invitation.spec.email, (n) => reader.user(n));
  }

  /**
   * Performs one action; returns the link when it issued a token, the invitation when it wrote it.
   * `premarked` collects the records created with their first mail attempt already marked.
   */
  private async act(
    invitation: UserInvitation,
    action: Action,
    observed: Observed,
    premarked: Set<string>,
  ): Promise<{ link?: string; invitation?: UserInvitation }> {
    const { writer, log } = this.deps;
    const { namespace = '', name } = invitation.metadata;
    const subject = `${namespace}/${name}`;
    switch (action.kind) {
      case 'deleteRecord':
        await writer.deleteRecord(action.name);
        log.debug({ invitation: subject, record: action.name, why: action.why }, 'deleted invitation record');
        return {};
      case 'addFinalizer':
      case 'removeFinalizer': {
        const others = (invitation.metadata.finalizers ?? []).filter((f) => f !== MEMBERSHIP_FINALIZER);
        const finalizers = action.kind === 'addFinalizer' ? [...others, MEMBERSHIP_FINALIZER] : others;
        let written: UserInvitation;
        try {
          written = await writer.updateInvitation({ ...invitation, metadata: { ...invitation.metadata, finalizers } });
        } catch (err) {
          // Taken off already (the cache lagged behind our own last write, or by hand): the invitation is gone.
          if (action.kind === 'removeFinalizer' && invitation.metadata.deletionTimestamp && isNotFound(err)) return {};
          throw err;
        }
        log.debug({ invitation: subject, finalizer: MEMBERSHIP_FINALIZER }, action.kind === 'addFinalizer' ? 'added the finalizer' : 'removed the finalizer');
        return { invitation: written };
      }
      case 'syncMembership': {
        const user = observed.user;
        if (!user || user.metadata.name !== action.user) return {};
        // Optimistic: the User as read, so a membership added meanwhile (an acceptance) is a conflict, and the worker retries.
        const updated = withMembership(user, user.spec.email, action.membership);
        const saved = await writer.saveUser(action.settle ? settled(updated) : updated);
        const what = describeMembership(action.membership);
        const reason = action.previous ? 'MembershipUpdated' : 'MembershipRestored';
        writer.event(invitation, 'Normal', reason, `User ${action.user} now has ${what} from this invitation.`);
        writer.userEvent(
          saved,
          'Normal',
          reason,
          `The membership from invitation ${subject} is now ${what}${action.previous ? ` (was ${describeMembership(action.previous)})` : ''}.`,
        );
        log.info({ invitation: subject, user: action.user }, 'updated the membership on the User');
        return {};
      }
      case 'removeMembership': {
        const user = observed.user;
        if (!user || user.metadata.name !== action.user) return {};
        const updated = withoutMembership(user, invitation.metadata.uid ?? '');
        const saved = await writer.saveUser(action.settle ? settled(updated) : updated);
        const what = describeMembership(action.membership);
        writer.event(invitation, 'Normal', 'MembershipRemoved', `Removed ${what} from User ${action.user}: the invitation was deleted.`);
        writer.userEvent(saved, 'Normal', 'MembershipRemoved', `Removed ${what}: invitation ${subject} was deleted.`);
        log.info({ invitation: subject, user: action.user }, 'removed the membership of a deleted invitation');
        return {};
      }
      case 'settleUser': {
        const user = observed.user;
        if (!user || user.metadata.name !== action.user) return {};
        await writer.saveUser(settled(user));
        log.debug({ invitation: subject, user: action.user }, 'dropped the provisional marks of an accepted invitation from the User');
        return {};
      }
      case 'deleteUser': {
        const user = observed.user;
        if (!user || user.metadata.name !== action.user) return {};
        await writer.deleteUser(action.user, { uid: action.uid, resourceVersion: action.resourceVersion });
        const why = `its last membership (${describeMembership(action.membership)}) came from invitation ${subject}, which was deleted`;
        writer.event(invitation, 'Normal', 'UserDeleted', `Deleted User ${action.user} with its credentials: ${why}.`);
        writer.userEvent(user, 'Normal', 'UserDeleted', `Deleting this User and its credentials: ${why} (usher.access.deleteUserWithoutMemberships).`);
        log.info({ invitation: subject, user: action.user }, 'deleted a User left without memberships');
        return {};
      }
      case 'issue': {
        const random = this.deps.randomBytes ?? randomBytes;
        const token = tokenFromBytes({ selector: random(SELECTOR_BYTES), verifier: random(VERIFIER_BYTES) });
        const record = recordName(invitation.metadata.uid ?? '', action.issuance);
        // With a mail server, a fresh token's mail follows in this reconcile, right after the
        // link is disclosed: the record is created with that first attempt already marked,
        // which saves the write that would mark it (issue 15). Should the reconcile stop
        // before the send, the mark reads as "maybe sent" and the next one sends: the same
        // as a crash during the send, one mail at most, with the same link.
        const markAttempt = this.deps.mailer !== undefined && this.deps.config.mail !== undefined;
        await writer.createRecord({
          name: record,
          namespace: this.deps.config.namespace,
          invitationNamespace: namespace,
          invitationName: name,
          invitationUid: invitation.metadata.uid ?? '',
          selector: token.selector,
          verifierHash: token.verifierHash,
          email: action.email,
          issuance: action.issuance,
          issuedAt: action.issuedAt,
          expiresAt: action.expiresAt,
          ...(markAttempt ? { mail: { attempts: 1, attemptStartedAt: (this.deps.now ?? (() => new Date()))().toISOString() } } : {}),
        });
        if (markAttempt) premarked.add(record);
        log.info(
          { invitation: subject, issuance: action.issuance, expiresAt: action.expiresAt },
          action.reason === 'Issued' ? 'issued invitation' : 'reissued invitation',
        );
        return { link: linkFor(this.deps.config.baseUrl, token.token) };
      }
      case 'ensureUser': {
        const existing = observed.user?.metadata.deletionTimestamp ? undefined : observed.user;
        // The phase change to UserCreated is the outcome recordOutcome() records as an Event.
        await writer.saveUser(withMembership(existing, action.email, action.membership, existing ? {} : { authentication: 'External' }));
        return {};
      }
      case 'sendMail':
        await this.sendMail(invitation, action.record, observed, premarked.has(action.record));
        return {};
    }
  }

  /**
   * Records the attempt before sending and the outcome after, both in the
   * record: a crash between the two can cause one duplicate mail, never a lost one.
   * A record this reconcile created carries its first attempt's mark already (`premarked`).
   */
  private async sendMail(invitation: UserInvitation, recordName: string, observed: Observed, premarked: boolean): Promise<void> {
    const { writer, mailer, log } = this.deps;
    const record = observed.records.find((r) => r.name === recordName);
    if (!record || !mailer || !observed.link) return;
    const now = this.deps.now ?? (() => new Date());
    const marked = premarked && record.mail?.attempts === 1 && record.mail.attemptStartedAt !== undefined && !record.mail.sentAt && !record.mail.lastError;
    const attempts = marked ? 1 : (record.mail?.attempts ?? 0) + 1;
    const started = marked ? record : await writer.updateRecord({ ...record, mail: { ...record.mail, attempts, attemptStartedAt: now().toISOString() } });
    const result = await mailer.sendInvitation(invitation, observed.link, new Date(record.expiresAt));
    let mail: MailState;
    if (result.ok) {
      // Success and permanent refusal change the phase: recordOutcome() records the Event.
      mail = { attempts, sentAt: isoSeconds(now()) };
    } else if (result.permanent) {
      mail = { attempts, failedPermanently: true, lastError: result.response };
    } else {
      const delay = (this.deps.mailBackoffMs ?? defaultMailBackoffMs)(attempts);
      const failedAt = now();
      mail = { attempts, lastError: result.response, nextAttemptAt: new Date(failedAt.getTime() + delay).toISOString(), failedAt: failedAt.toISOString() };
      writer.event(
        invitation,
        'Warning',
        'MailRetrying',
        `Sending the invitation failed (attempt ${attempts}), retrying in ${Math.ceil(delay / 1000)}s: ${result.response}`,
      );
    }
    log.info({ invitation: `${invitation.metadata.namespace ?? ''}/${invitation.metadata.name}`, attempts, ok: result.ok }, 'invitation mail attempt');
    await writer.updateRecord({ ...started, mail });
  }

  /** Writes status through the status subresource only when it differs. */
  private async writeStatusIfChanged(invitation: UserInvitation, status: UserInvitationStatus): Promise<UserInvitation> {
    const previous = invitation.status ?? {};
    if (sameStatus(previous, status)) return invitation;
    return this.deps.writer.writeStatus(invitation, status);
  }

  /**
   * One Event per outcome: when a reconcile leaves the invitation in another phase, or
   * on another link, than it found it in. The steps in between (issued, link disclosed,
   * sending) are not Events of their own; the Ready condition's reason and message say
   * where it ended. A failed attempt's Warning (MailRetrying) was recorded by the send.
   */
  private recordOutcome(invitation: UserInvitation, before: UserInvitationStatus, after: UserInvitationStatus): void {
    if (!after.phase || (before.phase === after.phase && before.issuance === after.issuance)) return;
    const ready = after.conditions?.find((c) => c.type === 'Ready');
    if (ready?.reason === 'MailRetrying') return;
    const warning = after.phase === 'Failed' || after.phase === 'Expired';
    const message = ready?.message ?? `Phase is now ${after.phase}.`;
    const reissued = before.issuance !== undefined && after.issuance !== undefined && after.issuance !== before.issuance;
    this.deps.writer.event(
      invitation,
      warning ? 'Warning' : 'Normal',
      ready?.reason ?? after.phase,
      reissued ? `Link #${after.issuance}: ${message}` : message,
    );
  }
}

/**
 * The link to use for this invitation: the disclosed one, rebuilt from baseUrl,
 * when its token verifies against one of the records; otherwise undefined. So a
 * link Secret rewritten to another host or another token is never mailed.
 */
export function verifiedLink(disclosed: string | undefined, records: readonly InvitationRecord[], baseUrl: string): string | undefined {
  if (disclosed === undefined) return undefined;
  const token = parseToken(disclosed.slice(disclosed.lastIndexOf('/') + 1));
  if (!token || disclosed !== linkFor(baseUrl, `${token.selector}.${token.verifier}`)) return undefined;
  const vouched = records.some((r) => r.selector === token.selector && verifierMatches(token.verifier, r.verifierHash));
  return vouched ? linkFor(baseUrl, `${token.selector}.${token.verifier}`) : undefined;
}

/** Whether a status read back shows a later issuance than ours, or the same one with another link. */
function supersedes(status: UserInvitationStatus | undefined, ourIssuance: number, link: string): boolean {
  const theirs = status?.issuance ?? 0;
  return theirs > ourIssuance || (theirs === ourIssuance && status?.link !== undefined && status.link !== link);
}

/** The User without the provisional marks of an acceptance (the page's last step, when it did not happen). */
function settled(user: User): User {
  const annotations = Object.fromEntries(
    Object.entries(user.metadata.annotations ?? {}).filter(([key]) => key !== ACCEPTING_RECORD_ANNOTATION && key !== ACCEPTING_CLAIM_ANNOTATION),
  );
  return { ...user, metadata: { ...user.metadata, annotations } };
}

/** An action in a few words, for the round-limit error (no address, no token). */
function describeAction(action: Action): string {
  switch (action.kind) {
    case 'issue':
      return `issue #${action.issuance}`;
    case 'deleteRecord':
      return `deleteRecord ${action.name}`;
    case 'sendMail':
      return `sendMail ${action.record}`;
    case 'ensureUser':
    case 'addFinalizer':
    case 'removeFinalizer':
      return action.kind;
    case 'syncMembership':
    case 'removeMembership':
    case 'settleUser':
    case 'deleteUser':
      return `${action.kind} ${action.user}`;
  }
}

/** Deep equality of two statuses as JSON (key order aside). */
export function sameStatus<T extends object>(a: T, b: T): boolean {
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>)
            .filter(([, x]) => x !== undefined)
            .sort(([x], [y]) => x.localeCompare(y)),
        )
      : v,
  );
}

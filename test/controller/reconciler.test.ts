// The reconciler with the real decide() and in-memory ports (test/controller/fakes.ts),
// no control plane: the moments the integration tests cannot stop at. A conflict
// on the write that discloses a fresh link, the round limit, the mail attempt
// recorded before the send, retries, refusals, crashes, and what is written
// (and not written) to the cluster.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Membership, User, UserInvitation, UserInvitationSpec } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { UsherConfig } from '../../src/config/types.ts';
import { defaultMailBackoffMs, MAX_ROUNDS, Reconciler, verifiedLink } from '../../src/controller/reconciler.ts';
import { MEMBERSHIP_FINALIZER, membershipOf } from '../../src/invitation/decide.ts';
import { userNameFor } from '../../src/invitation/naming.ts';
import { ACCEPTING_CLAIM_ANNOTATION, ACCEPTING_RECORD_ANNOTATION } from '../../src/invitation/users.ts';
import type { InvitationRecord } from '../../src/invitation/record.ts';
import { apiError, FakeCluster, FakeMailer, type WriteOp } from './fakes.ts';

const NOW = new Date('2026-11-25T12:00:00Z');
const SECOND = 1000;
const DAY = 86_400_000;
const BASE_URL = 'https://usher.example';

const noMail: UsherConfig = parseConfig(`usher:\n  baseUrl: ${BASE_URL}\n`, { source: 'test', env: {} });
const withMail: UsherConfig = {
  ...noMail,
  mail: { host: 'smtp', port: 25, tls: 'none', allowSelfSigned: false, from: 'x@example.com', pool: { maxConnections: 1 }, rateLimitPerSecond: 0 },
};

interface World {
  cluster: FakeCluster;
  mailer: FakeMailer;
  clock: { now: Date };
  uid: string;
  reconcile: () => Promise<{ requeueAfterMs?: number }>;
  invitation: () => UserInvitation | undefined;
  record: () => InvitationRecord | undefined;
  ops: () => WriteOp[];
}

function world(opts: { config?: UsherConfig; mailer?: 'none'; spec?: Partial<UserInvitationSpec> } = {}): World {
  const cluster = new FakeCluster();
  cluster.labelNamespace('acme-ns', 'acme');
  const applied = cluster.apply({
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'UserInvitation',
    metadata: { name: 'jane', namespace: 'acme-ns' },
    spec: { email: 'Jane.Doe@Example.com', tenant: 'acme', groups: ['devs'], ...opts.spec },
  });
  const mailer = new FakeMailer();
  const clock = { now: NOW };
  let drawn = 0;
  const reconciler = new Reconciler({
    reader: cluster,
    writer: cluster,
    config: opts.config ?? withMail,
    ...(opts.mailer === 'none' ? {} : { mailer }),
    log: pino({ level: 'silent' }),
    now: () => new Date(clock.now),
    // Deterministic token bytes: each draw a new fill byte.
    randomBytes: (size) => new Uint8Array(size).fill(++drawn),
    mailBackoffMs: (attempts) => 30 * SECOND * 2 ** (attempts - 1),
  });
  const uid = applied.metadata.uid ?? '';
  return {
    cluster,
    mailer,
    clock,
    uid,
    reconcile: () => reconciler.reconcile('acme-ns', 'jane'),
    invitation: () => cluster.stored('acme-ns', 'jane'),
    record: () => cluster.records(uid).at(-1),
    ops: () => cluster.writes.map((w) => w.op),
  };
}

const condition = (invitation: UserInvitation | undefined, type: string) => invitation?.status?.conditions?.find((c) => c.type === type);
const iso = (date: Date): string => date.toISOString().replace(/\.\d{3}Z$/, 'Z');

describe('Reconciler, with in-memory ports', () => {
  it('issues a link, discloses it in status, and settles: a second reconcile writes nothing', async () => {
    const w = world({ config: noMail });
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 7 * DAY });
    // The finalizer first: a link can be accepted, so the membership it grants must be removable.
    // One Event for the outcome (the link is ready to share), none for the steps on the way.
    expect(w.ops()).toEqual(['updateInvitation', 'createRecord', 'writeStatus', 'event']);
    expect(w.cluster.events.map((e) => [e.type, e.reason])).toEqual([['Normal', 'LinkReady']]);
    expect(w.invitation()?.metadata.finalizers).toEqual([MEMBERSHIP_FINALIZER]);
    // No mail server: nothing is sent, so no attempt is marked.
    expect(w.record()?.mail).toBeUndefined();
    const invitation = w.invitation();
    expect(invitation?.status).toMatchObject({ phase: 'Pending', issuance: 1, issuedAt: iso(NOW), expiresAt: iso(new Date(NOW.getTime() + 7 * DAY)) });
    expect(verifiedLink(invitation?.status?.link, w.cluster.records(w.uid), BASE_URL)).toBe(invitation?.status?.link);

    const before = w.cluster.writes.length;
    w.clock.now = new Date(NOW.getTime() + 60 * SECOND);
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 7 * DAY - 60 * SECOND });
    expect(w.cluster.writes).toHaveLength(before);
  });

  it('a conflict on the status write because another replica disclosed a token of its own: ours is not put back, and not mailed', async () => {
    const w = world();
    let raced = false;
    w.cluster.beforeWrite = (op) => {
      if (op !== 'writeStatus' || raced) return;
      raced = true;
      // A leader that took over while this one stalled issued #2 and disclosed it.
      w.cluster.edit('acme-ns', 'jane', (i) => {
        i.status = { phase: 'Pending', issuance: 2, link: 'https://usher.example/accept/' + 'c'.repeat(32) + '.' + 'd'.repeat(43) };
      });
    };
    expect(await w.reconcile()).toEqual({});
    expect(w.cluster.writesOf('writeStatus').map((s) => s.failed)).toEqual([409]);
    expect(w.invitation()?.status).toMatchObject({ issuance: 2 });
    expect(w.mailer.sends).toHaveLength(0);
  });

  it('a conflict on the status write that discloses a fresh link: re-reads the invitation and still writes the link', async () => {
    const w = world({ config: noMail });
    // Someone labels the invitation between our read and our status write.
    let edited = false;
    w.cluster.beforeWrite = (op) => {
      if (op !== 'writeStatus' || edited) return;
      edited = true;
      w.cluster.edit('acme-ns', 'jane', (i) => {
        i.metadata.labels = { team: 'data' };
      });
    };
    await w.reconcile();

    expect(w.cluster.writesOf('writeStatus').map((s) => s.failed)).toEqual([409, undefined]);
    expect(w.cluster.writesOf('createRecord')).toHaveLength(1);
    const invitation = w.invitation();
    // The link reached status, and it is the link of the one record: the raw token was not lost.
    expect(invitation?.status?.link).toMatch(/^https:\/\/usher\.example\/accept\/[0-9a-f]{32}\.[A-Za-z0-9_-]{43}$/);
    expect(verifiedLink(invitation?.status?.link, w.cluster.records(w.uid), BASE_URL)).toBe(invitation?.status?.link);
    expect(invitation?.status).toMatchObject({ phase: 'Pending', issuance: 1 });
    // One fresh read from the API server after the conflict.
    expect(w.cluster.reads.readInvitation).toBe(1);
    // The other writer's change stands.
    expect(invitation?.metadata.labels).toEqual({ team: 'data' });

    const before = w.cluster.writes.length;
    await w.reconcile();
    expect(w.cluster.writes).toHaveLength(before);
  });

  it('a status write that keeps conflicting gives up after 5 tries; the next reconcile replaces the undisclosed token', async () => {
    const w = world({ config: noMail });
    for (let i = 0; i < 5; i++) w.cluster.failNext('writeStatus', apiError(409, 'Conflict'));
    await expect(w.reconcile()).rejects.toThrow(/Conflict/);
    expect(w.invitation()?.status).toBeUndefined();
    expect(w.cluster.records(w.uid).map((r) => r.issuance)).toEqual([1]);

    // Its link was never disclosed (nor mailed): a new token supersedes it.
    await w.reconcile();
    expect(w.cluster.writesOf('deleteRecord').map((d) => d.target)).toEqual([`usher-invitation-${w.uid}-1`]);
    expect(w.cluster.records(w.uid).map((r) => r.issuance)).toEqual([2]);
    const invitation = w.invitation();
    expect(invitation?.status).toMatchObject({ phase: 'Pending', issuance: 2 });
    expect(verifiedLink(invitation?.status?.link, w.cluster.records(w.uid), BASE_URL)).toBe(invitation?.status?.link);
  });

  it('with mail: a record created with its attempt marked whose link never reached status is superseded, not mailed', async () => {
    const w = world();
    for (let i = 0; i < 5; i++) w.cluster.failNext('writeStatus', apiError(409, 'Conflict'));
    await expect(w.reconcile()).rejects.toThrow(/Conflict/);
    expect(w.record()?.mail).toEqual({ attempts: 1, attemptStartedAt: NOW.toISOString() });
    expect(w.mailer.sends).toHaveLength(0);

    await w.reconcile();
    expect(w.cluster.records(w.uid).map((r) => r.issuance)).toEqual([2]);
    // One mail, with the link of #2, the one status shows.
    expect(w.mailer.sends.map((m) => m.link)).toEqual([w.invitation()?.status?.link]);
    expect(w.invitation()?.status).toMatchObject({ phase: 'Sent', issuance: 2 });
  });

  it(`throws after ${MAX_ROUNDS} rounds when decide never converges, saying what it still asks for`, async () => {
    // Mail configured but no mailer wired: decide() asks for the send every round, and nothing changes.
    const w = world({ config: withMail, mailer: 'none' });
    await expect(w.reconcile()).rejects.toThrow(
      new RegExp(
        `^reconcile of acme-ns/jane did not converge after ${MAX_ROUNDS} rounds: decide\\(\\) still asks for sendMail usher-invitation-${w.uid}-1 \\(a bug, not a slow world\\)$`,
      ),
    );
    // One look at the world per round (the namespace's tenant is read once a round).
    expect(w.cluster.reads.namespaceTenant).toBe(MAX_ROUNDS);
    // The link was disclosed before the loop ran out: nothing is lost.
    expect(w.invitation()?.status?.link).toBeDefined();
    expect(w.cluster.writesOf('updateRecord')).toHaveLength(0);
  });

  it('records the attempt in the record before the send (a fresh record is created marked) and the outcome after', async () => {
    const w = world();
    const atSend: { mail: InvitationRecord['mail']; lastWrite: string | undefined }[] = [];
    w.mailer.onSend = () => {
      const last = w.cluster.writes.at(-1);
      atSend.push({ mail: w.record()?.mail, lastWrite: last?.op });
    };
    await w.reconcile();

    expect(w.mailer.sends).toHaveLength(1);
    // The record was created with the attempt marked, and the link disclosed, before the send.
    expect(atSend).toEqual([{ mail: { attempts: 1, attemptStartedAt: NOW.toISOString() }, lastWrite: 'writeStatus' }]);
    expect(w.record()?.mail).toEqual({ attempts: 1, sentAt: iso(NOW) });
    expect(w.mailer.sends[0]).toMatchObject({
      to: 'Jane.Doe@Example.com',
      link: w.invitation()?.status?.link,
      expiresAt: new Date(NOW.getTime() + 7 * DAY).toISOString(),
    });
    expect(w.invitation()?.status).toMatchObject({ phase: 'Sent', sentAt: iso(NOW) });
    expect(condition(w.invitation(), 'MailDelivered')).toMatchObject({ status: 'True', reason: 'Sent' });
    // Six writes: the finalizer, the record (attempt marked), the link in status, the send, the
    // outcome in the record, the status, and one Event for it.
    expect(w.ops()).toEqual(['updateInvitation', 'createRecord', 'writeStatus', 'updateRecord', 'writeStatus', 'event']);
  });

  it('a crash of the mailer call leaves the attempt recorded, and the next reconcile sends again', async () => {
    const w = world();
    w.mailer.crash();
    await expect(w.reconcile()).rejects.toThrow(/connection was reset/);
    expect(w.record()?.mail).toEqual({ attempts: 1, attemptStartedAt: NOW.toISOString() });
    expect(w.invitation()?.status?.phase).toBe('Pending');

    await w.reconcile();
    // At most one duplicate per crash, with the same link.
    expect(w.mailer.sends.map((s) => s.link)).toEqual([w.invitation()?.status?.link, w.invitation()?.status?.link]);
    expect(w.record()?.mail).toEqual({ attempts: 2, sentAt: iso(NOW) });
    expect(w.invitation()?.status?.phase).toBe('Sent');
  });

  it('a transient failure schedules a retry with backoff; the retry, when due, sends', async () => {
    const w = world();
    w.mailer.transient('421 busy').transient('421 still busy');
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 30 * SECOND });
    expect(w.record()?.mail).toEqual({
      attempts: 1,
      lastError: '421 busy',
      nextAttemptAt: new Date(NOW.getTime() + 30 * SECOND).toISOString(),
      failedAt: NOW.toISOString(),
    });
    expect(w.invitation()?.status?.phase).toBe('Pending');
    expect(condition(w.invitation(), 'MailDelivered')).toMatchObject({ status: 'False', reason: 'MailRetrying' });
    expect(condition(w.invitation(), 'Reconciling')).toMatchObject({ status: 'True', reason: 'MailRetrying' });
    expect(w.cluster.events.filter((e) => e.type === 'Warning')).toEqual([
      expect.objectContaining({ reason: 'MailRetrying', message: expect.stringMatching(/attempt 1\), retrying in 30s: 421 busy/) as unknown }),
    ]);

    // Not due yet: nothing is sent, nothing written.
    const before = w.cluster.writes.length;
    w.clock.now = new Date(NOW.getTime() + 10 * SECOND);
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 20 * SECOND });
    expect(w.mailer.sends).toHaveLength(1);
    expect(w.cluster.writes.map((x) => x.op).slice(before)).toEqual(['writeStatus']); // the retry countdown in the message moved on

    // Due: the second attempt fails again, and the backoff doubles.
    w.clock.now = new Date(NOW.getTime() + 30 * SECOND);
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 60 * SECOND });
    expect(w.record()?.mail).toMatchObject({ attempts: 2, lastError: '421 still busy', nextAttemptAt: new Date(NOW.getTime() + 90 * SECOND).toISOString() });

    w.clock.now = new Date(NOW.getTime() + 90 * SECOND);
    await w.reconcile();
    expect(w.mailer.sends).toHaveLength(3);
    expect(w.record()?.mail).toEqual({ attempts: 3, sentAt: iso(w.clock.now) });
    expect(w.invitation()?.status?.phase).toBe('Sent');
  });

  it('an attempt that failed during a mail server outage is made again once the server is back, its backoff notwithstanding', async () => {
    const w = world();
    w.mailer.transient('connect ECONNREFUSED 127.0.0.1:25');
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 30 * SECOND });
    // Still inside the backoff, but the server was down from just before that failure until now.
    w.clock.now = new Date(NOW.getTime() + 5 * SECOND);
    w.mailer.outage = { from: new Date(NOW.getTime() - 1), to: w.clock.now };
    await w.reconcile();
    expect(w.mailer.sends).toHaveLength(2);
    expect(w.record()?.mail).toEqual({ attempts: 2, sentAt: iso(w.clock.now) });
    expect(w.invitation()?.status?.phase).toBe('Sent');
  });

  it('a permanent refusal fails the invitation, and nothing is sent again', async () => {
    const w = world();
    w.mailer.permanent('550 5.1.1 No such user');
    await w.reconcile();
    expect(w.record()?.mail).toEqual({ attempts: 1, failedPermanently: true, lastError: '550 5.1.1 No such user' });
    const invitation = w.invitation();
    expect(invitation?.status?.phase).toBe('Failed');
    expect(condition(invitation, 'Stalled')).toMatchObject({
      status: 'True',
      reason: 'MailRejected',
      message: expect.stringContaining('550 5.1.1 No such user') as unknown,
    });
    expect(w.cluster.events.at(-1)).toMatchObject({ type: 'Warning', reason: 'MailRejected' });

    const before = w.cluster.writes.length;
    await w.reconcile();
    expect(w.mailer.sends).toHaveLength(1);
    expect(w.cluster.writes).toHaveLength(before);
  });

  it('records one Event per outcome, and none when nothing changes', async () => {
    const w = world();
    await w.reconcile();
    // One per outcome: issuing, disclosing and sending in one reconcile end in Sent.
    expect(w.cluster.events.map((e) => [e.type, e.reason])).toEqual([['Normal', 'Sent']]);
    await w.reconcile();
    expect(w.cluster.events).toHaveLength(1);

    w.clock.now = new Date(NOW.getTime() + 7 * DAY);
    await w.reconcile();
    expect(w.invitation()?.status?.phase).toBe('Expired');
    expect(w.cluster.events.at(-1)).toMatchObject({
      type: 'Warning',
      reason: 'Expired',
      message: expect.stringContaining('kubectl annotate userinvitation jane -n acme-ns') as unknown,
    });
    expect(w.cluster.events).toHaveLength(2);
  });

  it('an Event that cannot be recorded does not fail the reconcile', async () => {
    const w = world({ config: noMail });
    w.cluster.failNext('event', apiError(500, 'InternalError'));
    await w.reconcile();
    expect(w.cluster.writesOf('event').map((e) => e.failed)).toEqual([500]);
    expect(w.invitation()?.status?.phase).toBe('Pending');
    // The next outcome is recorded as usual.
    w.clock.now = new Date(NOW.getTime() + 8 * DAY);
    await w.reconcile();
    expect(w.cluster.writesOf('event').map((e) => e.failed)).toEqual([500, undefined]);
  });

  it('a changed address gets a new link, mailed once more, and the old record is deleted', async () => {
    const w = world();
    await w.reconcile();
    const first = w.invitation();
    w.cluster.apply({ ...(first as UserInvitation), spec: { ...(first as UserInvitation).spec, email: 'jane@example.org' } });
    await w.reconcile();

    const invitation = w.invitation();
    expect(invitation?.status).toMatchObject({ phase: 'Sent', issuance: 2, observedGeneration: 2 });
    expect(invitation?.status?.link).not.toBe(first?.status?.link);
    expect(w.cluster.records(w.uid).map((r) => [r.issuance, r.email])).toEqual([[2, 'jane@example.org']]);
    expect(w.mailer.sends.map((m) => [m.to, m.link])).toEqual([
      ['Jane.Doe@Example.com', first?.status?.link],
      ['jane@example.org', invitation?.status?.link],
    ]);
    // One Event per outcome; the second names the new link.
    expect(w.cluster.events.map((e) => [e.reason, e.message.slice(0, 8)])).toEqual([
      ['Sent', 'Invitati'],
      ['Sent', 'Link #2:'],
    ]);
  });

  it('creates the User directly, then settles as UserCreated', async () => {
    const w = world({ spec: { createUserDirectly: true } });
    await w.reconcile();
    expect(w.ops()).toEqual(['updateInvitation', 'saveUser', 'writeStatus', 'event']);
    const [user] = w.cluster.store.users.values();
    expect(user?.spec).toMatchObject({
      email: 'jane.doe@example.com',
      authentication: 'External',
      memberships: [{ scope: 'Tenant', tenant: 'acme', invitation: { namespace: 'acme-ns', name: 'jane', uid: w.uid } }],
    });
    expect(w.invitation()?.status).toMatchObject({ phase: 'UserCreated', user: user?.metadata.name });
    expect(w.mailer.sends).toHaveLength(0);

    const before = w.cluster.writes.length;
    await w.reconcile();
    expect(w.cluster.writes).toHaveLength(before);
  });
});

describe('Reconciler: the invitation keeps owning its membership', () => {
  const userName = userNameFor('jane.doe@example.com');
  const other: Membership = { scope: 'Tenant', tenant: 'globex', groups: ['ops'], invitation: { namespace: 'globex-ns', name: 'jane', uid: 'uid-other' } };

  /** Reconciled to Pending, then accepted as the page does it: the User with the membership, then the record marked used. */
  async function acceptedWorld(opts: { config?: UsherConfig; others?: Membership[]; finalizers?: string[]; marks?: boolean } = {}): Promise<World> {
    const w = world({ config: opts.config ?? noMail });
    await w.reconcile();
    const invitation = w.invitation() as UserInvitation;
    w.cluster.putUser({
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'User',
      metadata: {
        name: userName,
        ...(opts.finalizers ? { finalizers: opts.finalizers } : {}),
        // The page's provisional marks, as its last (best-effort) step leaves them when it loses a race.
        ...(opts.marks
          ? { annotations: { [ACCEPTING_RECORD_ANNOTATION]: w.record()?.name ?? '', [ACCEPTING_CLAIM_ANNOTATION]: 'claim-1', team: 'data' } }
          : {}),
      },
      spec: { email: 'jane.doe@example.com', authentication: 'Password', memberships: [...(opts.others ?? []), membershipOf(invitation)] },
    });
    w.cluster.editRecord(w.record()?.name ?? '', (r) => {
      r.usedAt = iso(NOW);
      r.user = userName;
    });
    await w.reconcile();
    expect(w.invitation()?.status).toMatchObject({ phase: 'Accepted', user: userName });
    return w;
  }

  const user = (w: World): User | undefined => w.cluster.store.users.get(userName);
  const editGroups = (w: World, groups: string[]): void => {
    const current = w.invitation() as UserInvitation;
    w.cluster.apply({ ...current, spec: { ...current.spec, groups } });
  };

  it('an edit of groups reaches the User, and only then is the invitation Ready for its generation', async () => {
    const w = await acceptedWorld({ others: [other] });
    editGroups(w, ['devs', 'analysts']);
    const before = w.cluster.writes.length;
    await w.reconcile();

    expect(w.ops().slice(before)).toEqual(['saveUser', 'event', 'userEvent', 'writeStatus']);
    // The other invitation's membership untouched, and in its place.
    expect(user(w)?.spec.memberships?.map((m) => m.groups)).toEqual([['ops'], ['devs', 'analysts']]);
    const invitation = w.invitation();
    expect(invitation?.status?.observedGeneration).toBe(2);
    expect(condition(invitation, 'Ready')).toMatchObject({ status: 'True', reason: 'Accepted', observedGeneration: 2 });
    expect(w.cluster.events.at(-1)).toMatchObject({
      reason: 'MembershipUpdated',
      message: `User ${userName} now has tenant acme, groups devs, analysts, roles (none) from this invitation.`,
    });
    expect(w.cluster.userEvents).toEqual([
      expect.objectContaining({
        target: userName,
        reason: 'MembershipUpdated',
        message:
          'The membership from invitation acme-ns/jane is now tenant acme, groups devs, analysts, roles (none) (was tenant acme, groups devs, roles (none)).',
      }),
    ]);

    const settled = w.cluster.writes.length;
    await w.reconcile();
    expect(w.cluster.writes).toHaveLength(settled);
  });

  it('a conflict on the User (an acceptance wrote it meanwhile): nothing else written, observedGeneration stays behind, and the retry keeps both', async () => {
    const w = await acceptedWorld();
    editGroups(w, ['analysts']);
    let raced = false;
    w.cluster.beforeWrite = (op) => {
      if (op !== 'saveUser' || raced) return;
      raced = true;
      const current = user(w) as User;
      w.cluster.putUser({ ...current, spec: { ...current.spec, memberships: [...(current.spec.memberships ?? []), other] } });
    };
    await expect(w.reconcile()).rejects.toThrow(/the object has been modified/);
    expect(w.cluster.writesOf('saveUser').map((x) => x.failed)).toEqual([409]);
    expect(w.invitation()?.status?.observedGeneration).toBe(1);

    await w.reconcile();
    expect(user(w)?.spec.memberships?.map((m) => m.groups)).toEqual([['analysts'], ['ops']]);
    expect(w.invitation()?.status?.observedGeneration).toBe(2);
    expect(condition(w.invitation(), 'Ready')).toMatchObject({ status: 'True' });
  });

  it('deleting it takes its membership off the User, then lets it go', async () => {
    const w = await acceptedWorld({ others: [other] });
    const before = w.cluster.writes.length;
    w.cluster.deleteInvitation('acme-ns', 'jane');
    expect(w.invitation()?.metadata.deletionTimestamp).toBeDefined();
    await w.reconcile();

    expect(w.ops().slice(before)).toEqual(['deleteRecord', 'saveUser', 'event', 'userEvent', 'updateInvitation']);
    expect(w.invitation()).toBeUndefined();
    expect(w.cluster.records(w.uid)).toEqual([]);
    expect(user(w)?.spec.memberships).toEqual([other]);
    expect(w.cluster.events.at(-1)).toMatchObject({
      reason: 'MembershipRemoved',
      message: `Removed tenant acme, groups devs, roles (none) from User ${userName}: the invitation was deleted.`,
    });
    expect(w.cluster.userEvents.at(-1)).toMatchObject({
      reason: 'MembershipRemoved',
      message: 'Removed tenant acme, groups devs, roles (none): invitation acme-ns/jane was deleted.',
    });
  });

  it('deleting the invitation of a User’s last membership deletes the User, if it is still the version seen', async () => {
    const w = await acceptedWorld({ finalizers: ['usher.dev/identity-account'] });
    const seen = user(w);
    w.cluster.deleteInvitation('acme-ns', 'jane');
    await w.reconcile();
    expect(w.cluster.writesOf('deleteUser')).toEqual([
      expect.objectContaining({ target: userName, body: { uid: seen?.metadata.uid, resourceVersion: seen?.metadata.resourceVersion } }),
    ]);
    // The identity controller's finalizer holds it until the account is released.
    expect(user(w)?.metadata.deletionTimestamp).toBeDefined();
    expect(w.invitation()).toBeUndefined();
    expect(w.cluster.events.at(-1)).toMatchObject({ reason: 'UserDeleted' });
    expect(w.cluster.events.at(-1)?.message).toMatch(
      new RegExp(`^Deleted User ${userName} with its credentials: its last membership .* came from invitation acme-ns/jane, which was deleted[.]$`),
    );
  });

  it('a membership added while the User was being deleted: a conflict, and the retry only removes this one', async () => {
    const w = await acceptedWorld();
    w.cluster.deleteInvitation('acme-ns', 'jane');
    w.cluster.beforeWrite = (op) => {
      if (op !== 'deleteUser') return;
      w.cluster.beforeWrite = () => undefined;
      const current = user(w) as User;
      w.cluster.putUser({ ...current, spec: { ...current.spec, memberships: [...(current.spec.memberships ?? []), other] } });
    };
    await expect(w.reconcile()).rejects.toThrow(/the object has been modified/);
    // Nothing let go yet: the invitation still holds its finalizer.
    expect(w.invitation()?.metadata.finalizers).toEqual([MEMBERSHIP_FINALIZER]);

    await w.reconcile();
    expect(user(w)?.spec.memberships).toEqual([other]);
    expect(user(w)?.metadata.deletionTimestamp).toBeUndefined();
    expect(w.invitation()).toBeUndefined();
  });

  it('with onInvitationDelete Keep: no finalizer, and a deletion leaves the membership', async () => {
    const keep: UsherConfig = { ...noMail, access: { onInvitationDelete: 'Keep', deleteUserWithoutMemberships: true } };
    const w = await acceptedWorld({ config: keep });
    expect(w.cluster.writesOf('updateInvitation')).toEqual([]);
    expect(w.invitation()?.metadata.finalizers).toBeUndefined();
    w.cluster.deleteInvitation('acme-ns', 'jane');
    expect(w.invitation()).toBeUndefined();
    expect(user(w)?.spec.memberships).toHaveLength(1);
  });

  it('drops the provisional marks the page left for the used record, keeping the User’s other annotations', async () => {
    const w = await acceptedWorld({ marks: true });
    expect(user(w)?.metadata.annotations).toEqual({ team: 'data' });
    expect(w.cluster.writesOf('saveUser')).toHaveLength(1);
  });

  it('a conflict on the finalizer write issues no token', async () => {
    const w = world({ config: noMail });
    w.cluster.failNext('updateInvitation', apiError(409, 'Conflict'));
    await expect(w.reconcile()).rejects.toThrow(/Conflict/);
    expect(w.ops()).toEqual(['updateInvitation']);
    await w.reconcile();
    expect(w.ops().slice(1, 3)).toEqual(['updateInvitation', 'createRecord']);
  });
});

describe('defaultMailBackoffMs', () => {
  it('doubles from 30 s to a cap of 1 h, with ±20% jitter', () => {
    for (const [attempts, base] of [
      [1, 30 * SECOND],
      [2, 60 * SECOND],
      [3, 120 * SECOND],
      [8, 3_600 * SECOND],
      [20, 3_600 * SECOND],
    ] as const) {
      for (let i = 0; i < 50; i++) {
        const ms = defaultMailBackoffMs(attempts);
        expect(ms).toBeGreaterThanOrEqual(Math.round(base * 0.8));
        expect(ms).toBeLessThanOrEqual(Math.round(base * 1.2));
      }
    }
  });
});

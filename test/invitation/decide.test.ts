// Table-driven tests of the reconciler's pure decision.
import { describe, expect, it } from 'vitest';
import {
  REISSUE_ANNOTATION,
  type Membership,
  type User,
  type UserInvitation,
  type UserInvitationSpec,
  type UserInvitationStatus,
} from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { UsherConfig } from '../../src/config/types.ts';
import { decide, MEMBERSHIP_FINALIZER, membershipOf, type Action, type Observed } from '../../src/invitation/decide.ts';
import { verifiedLink } from '../../src/controller/reconciler.ts';
import { hashVerifier } from '../../src/invitation/token.ts';
import type { InvitationRecord } from '../../src/invitation/record.ts';
import { ACCEPTING_CLAIM_ANNOTATION, ACCEPTING_RECORD_ANNOTATION } from '../../src/invitation/users.ts';

const NOW = new Date('2026-11-25T12:00:00Z');
const DAY = 86_400_000;
const SELECTOR = 'a'.repeat(32);
const LINK = `https://usher.example/accept/${SELECTOR}.${'v'.repeat(43)}`;

const config: UsherConfig = parseConfig('usher:\n  baseUrl: https://usher.example\n  tenancy:\n    instanceNamespaces: [usher-system]\n', {
  source: 'test',
  env: {},
});
const withMail: UsherConfig = {
  ...config,
  mail: { host: 'smtp', port: 25, tls: 'none', allowSelfSigned: false, from: 'x@example.com', pool: { maxConnections: 1 }, rateLimitPerSecond: 0 },
};

function invitation(spec: Partial<UserInvitationSpec> = {}, status?: UserInvitationStatus, annotations?: Record<string, string>): UserInvitation {
  return {
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'UserInvitation',
    // Holding the finalizer, as after the first reconcile (its own tests are below).
    metadata: { name: 'jane', namespace: 'acme-ns', uid: 'uid-1', generation: 2, finalizers: [MEMBERSHIP_FINALIZER], ...(annotations ? { annotations } : {}) },
    spec: { email: 'Jane.Doe@Example.com', scope: 'Tenant', tenant: 'acme', groups: ['devs'], ...spec },
    ...(status ? { status } : {}),
  };
}

function record(overrides: Partial<InvitationRecord> = {}): InvitationRecord {
  return {
    name: 'usher-invitation-uid-1-1',
    namespace: 'usher-system',
    invitationNamespace: 'acme-ns',
    invitationName: 'jane',
    invitationUid: 'uid-1',
    selector: SELECTOR,
    verifierHash: 'h',
    email: 'jane.doe@example.com',
    issuance: 1,
    issuedAt: '2026-11-24T12:00:00Z',
    expiresAt: '2026-12-01T12:00:00Z',
    ...overrides,
  };
}

function userWith(memberships: Membership[], metadata: Partial<User['metadata']> = {}): User {
  return {
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'User',
    metadata: { name: 'jane-doe-1', uid: 'user-uid', resourceVersion: '42', ...metadata },
    spec: { email: 'jane.doe@example.com', authentication: 'Password', memberships },
  };
}

function observe(o: Partial<Observed>): Observed {
  return { invitation: invitation(), records: [], link: undefined, namespaceTenant: 'acme', user: undefined, config, now: NOW, ...o };
}

const kinds = (actions: Action[]): string[] => actions.map((a) => a.kind);
const ready = (status: UserInvitationStatus) => status.conditions?.find((c) => c.type === 'Ready');
const stalled = (status: UserInvitationStatus) => status.conditions?.find((c) => c.type === 'Stalled');

describe('decide', () => {
  it.each<[string, Partial<Observed>, { phase?: string; actions: string[]; reason: string; message?: RegExp; requeue?: number }]>([
    ['a new invitation gets a token', {}, { phase: 'Pending', actions: ['issue'], reason: 'Issuing' }],
    [
      'an issued invitation without mail waits for manual sharing until expiry',
      { records: [record()], link: LINK },
      { phase: 'Pending', actions: [], reason: 'LinkReady', message: /share the link in status.link/, requeue: 6 * DAY },
    ],
    [
      'with mail configured, an unsent token is mailed',
      { config: withMail, records: [record()], link: LINK },
      { phase: 'Pending', actions: ['sendMail'], reason: 'Sending' },
    ],
    [
      'a mailed token is Sent',
      { config: withMail, records: [record({ mail: { attempts: 1, sentAt: '2026-11-24T12:00:01Z' } })], link: LINK },
      { phase: 'Sent', actions: [], reason: 'Sent', requeue: 6 * DAY },
    ],
    [
      'a transient mail failure waits for its retry',
      { config: withMail, records: [record({ mail: { attempts: 1, lastError: '421 busy', nextAttemptAt: '2026-11-25T12:00:30Z' } })], link: LINK },
      { phase: 'Pending', actions: [], reason: 'MailRetrying', requeue: 30_000 },
    ],
    [
      'a due retry sends again',
      { config: withMail, records: [record({ mail: { attempts: 1, lastError: '421 busy', nextAttemptAt: '2026-11-25T11:59:00Z' } })], link: LINK },
      { phase: 'Pending', actions: ['sendMail'], reason: 'Sending' },
    ],
    [
      'a transient failure during a mail server outage that has ended is retried at once',
      {
        config: withMail,
        records: [record({ mail: { attempts: 1, lastError: 'ECONNREFUSED', nextAttemptAt: '2026-11-25T12:00:30Z', failedAt: '2026-11-25T11:59:50.000Z' } })],
        link: LINK,
        mailOutage: { from: new Date('2026-11-25T11:59:45Z'), to: new Date('2026-11-25T11:59:58Z') },
      },
      { phase: 'Pending', actions: ['sendMail'], reason: 'Sending' },
    ],
    [
      'a transient failure after the outage ended waits for its retry (a flapping server gets the backoff)',
      {
        config: withMail,
        records: [record({ mail: { attempts: 2, lastError: 'ECONNREFUSED', nextAttemptAt: '2026-11-25T12:00:30Z', failedAt: '2026-11-25T11:59:59.000Z' } })],
        link: LINK,
        mailOutage: { from: new Date('2026-11-25T11:59:45Z'), to: new Date('2026-11-25T11:59:58Z') },
      },
      { phase: 'Pending', actions: [], reason: 'MailRetrying', requeue: 30_000 },
    ],
    [
      'a transient failure before the outage (a refusal of that one address) waits for its retry',
      {
        config: withMail,
        records: [
          record({ mail: { attempts: 1, lastError: '450 mailbox busy', nextAttemptAt: '2026-11-25T12:00:30Z', failedAt: '2026-11-25T11:59:00.000Z' } }),
        ],
        link: LINK,
        mailOutage: { from: new Date('2026-11-25T11:59:45Z'), to: new Date('2026-11-25T11:59:58Z') },
      },
      { phase: 'Pending', actions: [], reason: 'MailRetrying', requeue: 30_000 },
    ],
    [
      'a permanent mail refusal fails',
      { config: withMail, records: [record({ mail: { attempts: 1, failedPermanently: true, lastError: '550 no such user' } })], link: LINK },
      { phase: 'Failed', actions: [], reason: 'MailRejected', message: /550 no such user/ },
    ],
    [
      'a crash mid-send (attempt started, not recorded) sends again',
      { config: withMail, records: [record({ mail: { attempts: 1, attemptStartedAt: '2026-11-25T11:59:59Z' } })], link: LINK },
      { phase: 'Pending', actions: ['sendMail'], reason: 'Sending' },
    ],
    [
      'a past expiry is Expired and stalls with the reissue command',
      { records: [record({ expiresAt: '2026-11-25T11:59:59Z' })], link: LINK },
      {
        phase: 'Expired',
        actions: [],
        reason: 'Expired',
        message: /kubectl annotate userinvitation jane -n acme-ns --overwrite usher.dev\/reissue-requested-at=/,
      },
    ],
    [
      'a used record is Accepted',
      { records: [record({ usedAt: '2026-11-25T10:00:00Z', user: 'jane-doe-1' })], link: LINK, user: userWith([membershipOf(invitation())]) },
      { phase: 'Accepted', actions: [], reason: 'Accepted' },
    ],
    [
      'a record without its link (crash before status) is replaced',
      { records: [record()], link: undefined },
      { phase: 'Pending', actions: ['deleteRecord', 'issue'], reason: 'Reissuing' },
    ],
    [
      'a changed email needs a new token',
      { invitation: invitation({ email: 'other@example.com' }), records: [record()], link: LINK },
      { phase: 'Pending', actions: ['deleteRecord', 'issue'], reason: 'Reissuing' },
    ],
    [
      'an unlabelled namespace may not invite',
      { namespaceTenant: undefined },
      { phase: 'Failed', actions: [], reason: 'Forbidden', message: /has no usher.dev\/tenant label/ },
    ],
    [
      'another tenant is forbidden and the live link revoked',
      { namespaceTenant: 'globex', records: [record()], link: LINK },
      { phase: 'Failed', actions: ['deleteRecord'], reason: 'Forbidden', message: /belongs to tenant globex/ },
    ],
    [
      'instance scope from an ordinary namespace is forbidden',
      { invitation: invitation({ scope: 'Instance', tenant: undefined }) },
      { phase: 'Failed', actions: [], reason: 'Forbidden', message: /usher.tenancy.instanceNamespaces/ },
    ],
    [
      'no group or role is invalid',
      { invitation: invitation({ groups: [] }) },
      { phase: 'Failed', actions: [], reason: 'InvalidSpec', message: /spec.groups, spec.roles/ },
    ],
    [
      'expireAfter beyond the maximum is invalid',
      { invitation: invitation({ expireAfter: 'P400D' }) },
      { phase: 'Failed', actions: [], reason: 'InvalidSpec', message: /spec.expireAfter: P400D is longer than the maximum P90D/ },
    ],
    ['direct creation makes a User', { invitation: invitation({ createUserDirectly: true }) }, { actions: ['ensureUser'], reason: 'CreatingUser' }],
    [
      'a link that no longer verifies (a rewritten link Secret) is never mailed: a new token replaces it',
      { config: withMail, invitation: invitation({}, { issuance: 1 }), records: [record()], link: undefined },
      { phase: 'Pending', actions: ['deleteRecord', 'issue'], reason: 'Reissuing' },
    ],
    [
      'a link lost after its mail went out changes nothing',
      {
        config: withMail,
        invitation: invitation({}, { issuance: 1 }),
        records: [record({ mail: { attempts: 1, sentAt: '2026-11-24T12:00:01Z' } })],
        link: undefined,
      },
      { phase: 'Sent', actions: [], reason: 'Sent', requeue: 6 * DAY },
    ],
    [
      'an address not in Unicode NFC (the Kelvin sign) is invalid',
      { invitation: invitation({ email: '\u212Aim@example.com' }) },
      { phase: 'Failed', actions: [], reason: 'InvalidSpec', message: /spec.email: .* is not in Unicode normal form C/ },
    ],
  ])('%s', (_name, observed, want) => {
    const plan = decide(observe(observed));
    expect(kinds(plan.actions)).toEqual(want.actions);
    if (want.phase) expect(plan.status.phase).toBe(want.phase);
    const condition =
      plan.status.phase === 'Failed' || plan.status.phase === 'Expired' ? stalled(plan.status) : plan.status.conditions?.find((c) => c.status === 'True');
    expect(condition?.reason).toBe(want.reason);
    if (want.message) expect(condition?.message).toMatch(want.message);
    if (want.requeue !== undefined) expect(plan.requeueAfterMs).toBe(want.requeue);
    expect(plan.status.observedGeneration).toBe(2);
  });

  it.each<[string, Partial<Observed>, string, string]>([
    ['no mail server', { records: [record()], link: LINK }, 'False', 'NoMailServer'],
    ['sending', { config: withMail, records: [record()], link: LINK }, 'Unknown', 'Sending'],
    ['sent', { config: withMail, records: [record({ mail: { attempts: 2, sentAt: '2026-11-25T11:00:00Z' } })], link: LINK }, 'True', 'Sent'],
    [
      'retrying',
      { config: withMail, records: [record({ mail: { attempts: 1, lastError: '421 busy', nextAttemptAt: '2026-11-25T12:01:00Z' } })], link: LINK },
      'False',
      'MailRetrying',
    ],
    [
      'rejected',
      { config: withMail, records: [record({ mail: { attempts: 1, failedPermanently: true, lastError: '550 no' } })], link: LINK },
      'False',
      'MailRejected',
    ],
  ])('reports MailDelivered when %s', (_name, observed, status, reason) => {
    const condition = decide(observe(observed)).status.conditions?.find((c) => c.type === 'MailDelivered');
    expect(condition).toMatchObject({ status, reason });
  });

  it('issues with the default lifetime, or the invitation own expireAfter', () => {
    const byDefault = decide(observe({})).actions[0];
    expect(byDefault).toMatchObject({
      kind: 'issue',
      issuance: 1,
      issuedAt: '2026-11-25T12:00:00Z',
      expiresAt: '2026-12-02T12:00:00Z',
      email: 'jane.doe@example.com',
      reason: 'Issued',
    });
    const custom = decide(observe({ invitation: invitation({ expireAfter: 'P30D' }) })).actions[0];
    expect(custom).toMatchObject({ kind: 'issue', expiresAt: '2026-12-25T12:00:00Z' });
  });

  it('reissues once per new annotation value, with the next issuance number', () => {
    const requested = invitation({}, { issuance: 1, lastHandledReissueAt: 'first' }, { [REISSUE_ANNOTATION]: 'second' });
    const plan = decide(observe({ invitation: requested, records: [record()], link: LINK }));
    expect(kinds(plan.actions)).toEqual(['deleteRecord', 'issue']);
    expect(plan.actions[1]).toMatchObject({ issuance: 2, reason: 'Reissued' });
    expect(plan.status.lastHandledReissueAt).toBe('second');

    const handled = invitation({}, { issuance: 2, lastHandledReissueAt: 'second' }, { [REISSUE_ANNOTATION]: 'second' });
    const settled = decide(observe({ invitation: handled, records: [record({ issuance: 2 })], link: LINK }));
    expect(settled.actions).toEqual([]);
  });

  it('reissues an expired invitation when asked, and otherwise leaves it expired', () => {
    const expired = record({ expiresAt: '2026-11-20T00:00:00Z' });
    const asked = invitation({}, { phase: 'Expired', issuance: 1 }, { [REISSUE_ANNOTATION]: '2026-11-25T12:00:00Z' });
    expect(kinds(decide(observe({ invitation: asked, records: [expired], link: LINK })).actions)).toEqual(['deleteRecord', 'issue']);
    const notAsked = invitation({}, { phase: 'Expired', issuance: 1 });
    expect(decide(observe({ invitation: notAsked, records: [expired], link: LINK })).status.phase).toBe('Expired');
  });

  it('is idempotent: deciding again on its own status changes nothing', () => {
    const first = decide(observe({ records: [record()], link: LINK }));
    const again = decide(observe({ invitation: invitation({}, first.status), records: [record()], link: LINK, now: new Date(NOW.getTime() + 60_000) }));
    expect(again.actions).toEqual([]);
    expect(again.status).toEqual(first.status);
  });

  it('keeps lastTransitionTime while a condition holds, and moves it on change', () => {
    const first = decide(observe({ records: [record()], link: LINK }));
    const later = new Date(NOW.getTime() + 7 * DAY);
    const expired = decide(observe({ invitation: invitation({}, first.status), records: [record()], link: LINK, now: later }));
    expect(ready(expired.status)?.status).toBe('False');
    expect(ready(expired.status)?.lastTransitionTime).toBe(later.toISOString().replace(/\.\d{3}Z$/, 'Z'));
    expect(expired.status.conditions?.find((c) => c.type === 'Reconciling')?.lastTransitionTime).toBe(
      first.status.conditions?.find((c) => c.type === 'Reconciling')?.lastTransitionTime,
    );
  });

  it('shows * as the tenant of an instance invitation, and discloses links in a Secret when configured', () => {
    const instance = invitation({ scope: 'Instance', tenant: undefined, roles: [{ name: 'admin' }], groups: [] });
    instance.metadata.namespace = 'usher-system';
    const secretMode = { ...config, invitations: { ...config.invitations, linkDisclosure: 'Secret' as const } };
    const plan = decide(observe({ invitation: instance, records: [record({ namespace: 'usher-system' })], link: LINK, config: secretMode }));
    expect(plan.status.tenant).toBe('*');
    expect(plan.status.link).toBeUndefined();
    expect(plan.status.linkSecretName).toBe('jane-invitation-link');
  });

  it('direct creation is done once the User has the membership', () => {
    const direct = invitation({ createUserDirectly: true });
    const user: User = {
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'User',
      metadata: { name: 'jane-doe-1' },
      spec: {
        email: 'jane.doe@example.com',
        memberships: [{ scope: 'Tenant', tenant: 'acme', groups: ['devs'], roles: [], invitation: { namespace: 'acme-ns', name: 'jane', uid: 'uid-1' } }],
      },
    };
    expect(membershipOf(direct)).toEqual(user.spec.memberships?.[0]);
    const plan = decide(observe({ invitation: direct, user }));
    expect(plan.actions).toEqual([]);
    expect(plan.status).toMatchObject({ phase: 'UserCreated', user: 'jane-doe-1' });
  });
});

describe('decide: the invitation keeps owning its membership', () => {
  const used = record({ usedAt: '2026-11-20T10:00:00Z', user: 'jane-doe-1' });
  const acceptedStatus: UserInvitationStatus = { phase: 'Accepted', acceptedAt: '2026-11-20T10:00:00Z', user: 'jane-doe-1', issuance: 1 };
  const accepted = (spec: Partial<UserInvitationSpec> = {}): UserInvitation => invitation(spec, acceptedStatus);
  const granted = membershipOf(invitation());
  const otherMembership: Membership = {
    scope: 'Tenant',
    tenant: 'globex',
    groups: ['ops'],
    invitation: { namespace: 'globex-ns', name: 'jane', uid: 'uid-9' },
  };
  const direct = (spec: Partial<UserInvitationSpec> = {}): UserInvitation =>
    invitation({ createUserDirectly: true, ...spec }, { phase: 'UserCreated', user: 'jane-doe-1' });

  it.each<[string, Partial<Observed>, { phase: string; actions: string[]; ready: string; reason: string; message?: RegExp; requeue?: number }]>([
    [
      'the User carries the membership as the invitation reads: Ready',
      { user: userWith([granted]) },
      { phase: 'Accepted', actions: [], ready: 'True', reason: 'Accepted' },
    ],
    [
      'groups edited: the membership is updated, and Ready waits for it',
      { invitation: accepted({ groups: ['devs', 'analysts'] }), user: userWith([otherMembership, granted]) },
      { phase: 'Accepted', actions: ['syncMembership'], ready: 'False', reason: 'UpdatingMembership', message: /groups devs, analysts/ },
    ],
    [
      'roles edited: the membership is updated',
      { invitation: accepted({ roles: [{ name: 'developer', namespaces: ['company.team'] }] }), user: userWith([granted]) },
      { phase: 'Accepted', actions: ['syncMembership'], ready: 'False', reason: 'UpdatingMembership', message: /roles developer@company.team/ },
    ],
    [
      'the membership taken off the User by hand: put back, as the invitation still says',
      { user: userWith([otherMembership]) },
      { phase: 'Accepted', actions: ['syncMembership'], ready: 'False', reason: 'UpdatingMembership' },
    ],
    [
      'the User not in the caches yet, moments after acceptance: waited for',
      { user: undefined, now: new Date('2026-11-20T10:00:10Z') },
      { phase: 'Accepted', actions: [], ready: 'False', reason: 'WaitingForUser', requeue: 2000 },
    ],
    [
      'the User gone long after acceptance: stalled, saying so',
      { user: undefined },
      { phase: 'Accepted', actions: [], ready: 'False', reason: 'UserMissing', message: /User jane-doe-1 no longer exists/ },
    ],
    [
      'the User being deleted counts as gone',
      { user: userWith([granted], { deletionTimestamp: '2026-11-25T11:00:00Z' }) },
      { phase: 'Accepted', actions: [], ready: 'False', reason: 'UserMissing' },
    ],
    [
      'the address changed after acceptance (an older CRD): not applied',
      { invitation: accepted({ email: 'someone.else@example.com' }), user: userWith([granted]) },
      {
        phase: 'Accepted',
        actions: [],
        ready: 'False',
        reason: 'FixedAfterAcceptance',
        message: /^spec.email cannot change from jane.doe@example.com to someone.else@example.com/,
      },
    ],
    [
      'the tenant changed after acceptance: not applied',
      { invitation: accepted({ tenant: 'globex' }), namespaceTenant: 'globex', user: userWith([granted]) },
      {
        phase: 'Accepted',
        actions: [],
        ready: 'False',
        reason: 'FixedAfterAcceptance',
        message: /^spec.tenant cannot change from acme to globex.*keeps tenant acme, groups devs/,
      },
    ],
    [
      'an edit the rules forbid now (the namespace moved to another tenant): not applied',
      { invitation: accepted({ groups: ['admins'] }), namespaceTenant: 'globex', user: userWith([granted]) },
      {
        phase: 'Accepted',
        actions: [],
        ready: 'False',
        reason: 'Forbidden',
        message: /belongs to tenant globex.*not applied: User jane-doe-1 keeps tenant acme, groups devs/,
      },
    ],
    [
      'an edit leaving no group or role: not applied (delete the invitation to end the access)',
      { invitation: accepted({ groups: [] }), user: userWith([granted]) },
      { phase: 'Accepted', actions: [], ready: 'False', reason: 'InvalidSpec', message: /at least one group or role/ },
    ],
    [
      'a directly created User follows an edit of groups',
      { invitation: direct({ groups: ['devs', 'sre'] }), records: [], user: userWith([membershipOf(direct())]) },
      { phase: 'UserCreated', actions: ['syncMembership'], ready: 'False', reason: 'UpdatingMembership' },
    ],
    [
      'a directly created User being deleted is made again once it is gone',
      { invitation: direct(), records: [], user: userWith([membershipOf(direct())], { deletionTimestamp: '2026-11-25T11:00:00Z' }) },
      { phase: 'UserCreated', actions: [], ready: 'False', reason: 'WaitingForUser', requeue: 2000 },
    ],
  ])('%s', (_name, observed, want) => {
    const plan = decide(observe({ invitation: accepted(), records: [used], ...observed }));
    expect(kinds(plan.actions)).toEqual(want.actions);
    expect(plan.status.phase).toBe(want.phase);
    expect(ready(plan.status)).toMatchObject({ status: want.ready, reason: want.reason, observedGeneration: 2 });
    if (want.message) expect(ready(plan.status)?.message).toMatch(want.message);
    expect(plan.requeueAfterMs).toBe(want.requeue);
    expect(plan.status.observedGeneration).toBe(2);
  });

  it('drops the provisional marks the page left on the User for this invitation’s used record, and no one else’s', () => {
    const marked = (recordName: string): User =>
      userWith([granted], { annotations: { [ACCEPTING_RECORD_ANNOTATION]: recordName, [ACCEPTING_CLAIM_ANNOTATION]: 'c' } });
    const plain = decide(observe({ invitation: accepted(), records: [used], user: marked(used.name) }));
    expect(plain.actions).toEqual([{ kind: 'settleUser', user: 'jane-doe-1' }]);
    expect(ready(plain.status)).toMatchObject({ status: 'True', reason: 'Accepted' });
    // With an edit, in the same write.
    const edited = decide(observe({ invitation: accepted({ groups: ['ops'] }), records: [used], user: marked(used.name) }));
    expect(edited.actions).toEqual([expect.objectContaining({ kind: 'syncMembership', settle: true })]);
    // Another acceptance under way (another record): its marks are its own.
    expect(decide(observe({ invitation: accepted(), records: [used], user: marked('usher-invitation-uid-7-1') })).actions).toEqual([]);
    // Deleted: off with the membership, since the record they name is deleted first.
    const gone: UserInvitation = { ...accepted(), metadata: { ...accepted().metadata, deletionTimestamp: '2026-11-25T11:59:00Z' } };
    const withOther = { ...marked(used.name), spec: { ...marked(used.name).spec, memberships: [otherMembership, granted] } };
    expect(decide(observe({ invitation: gone, records: [used], user: withOther })).actions).toContainEqual({
      kind: 'removeMembership',
      user: 'jane-doe-1',
      membership: granted,
      settle: true,
    });
  });

  it('asks for exactly the membership the invitation now reads, and says what the User had', () => {
    const edited = accepted({ groups: ['analysts'], roles: [{ name: 'viewer' }] });
    const plan = decide(observe({ invitation: edited, records: [used], user: userWith([granted]) }));
    expect(plan.actions).toEqual([
      {
        kind: 'syncMembership',
        user: 'jane-doe-1',
        membership: {
          scope: 'Tenant',
          tenant: 'acme',
          groups: ['analysts'],
          roles: [{ name: 'viewer' }],
          invitation: { namespace: 'acme-ns', name: 'jane', uid: 'uid-1' },
        },
        previous: granted,
      },
    ]);
    // Once the User carries it: Ready, and a status equal to what a later reconcile computes.
    const synced = decide(observe({ invitation: edited, records: [used], user: userWith([membershipOf(edited)]) }));
    expect(synced.actions).toEqual([]);
    expect(ready(synced.status)).toMatchObject({ status: 'True', reason: 'Accepted' });
  });

  it.each<[string, Partial<Observed>, string[]]>([
    ['a new invitation: before its first token', { invitation: invitation({}, undefined), records: [] }, ['addFinalizer', 'issue']],
    [
      'an open link issued before the finalizer existed (an upgrade)',
      { invitation: invitation({}, { issuance: 1 }), records: [record()], link: LINK },
      ['addFinalizer'],
    ],
    ['an accepted invitation (an upgrade)', { user: userWith([granted]) }, ['addFinalizer']],
    ['a direct creation: before the User', { invitation: invitation({ createUserDirectly: true }), records: [] }, ['addFinalizer', 'ensureUser']],
    ['a refused invitation that never held a token: none', { invitation: invitation({}, undefined), records: [], namespaceTenant: 'globex' }, []],
  ])('puts the finalizer on %s', (_name, observed, actions) => {
    const base = observed.invitation ?? accepted();
    const bare: UserInvitation = { ...base, metadata: { ...base.metadata, finalizers: [] } };
    expect(kinds(decide(observe({ records: [used], ...observed, invitation: bare })).actions)).toEqual(actions);
  });

  it('with onInvitationDelete Keep, puts none on and takes an earlier one off', () => {
    const keep = { ...config, access: { ...config.access, onInvitationDelete: 'Keep' as const } };
    const bare: UserInvitation = { ...invitation({}, undefined), metadata: { ...invitation().metadata, finalizers: [] } };
    expect(kinds(decide(observe({ config: keep, invitation: bare })).actions)).toEqual(['issue']);
    expect(kinds(decide(observe({ config: keep, invitation: invitation({}, undefined) })).actions)).toEqual(['removeFinalizer', 'issue']);
  });

  describe('a deleted invitation', () => {
    const deleting = (inv: UserInvitation, finalizers = [MEMBERSHIP_FINALIZER]): UserInvitation => ({
      ...inv,
      metadata: { ...inv.metadata, deletionTimestamp: '2026-11-25T11:59:00Z', finalizers },
    });
    const keepAll = { ...config, access: { onInvitationDelete: 'Keep' as const, deleteUserWithoutMemberships: true } };
    const keepUsers = { ...config, access: { onInvitationDelete: 'RemoveMembership' as const, deleteUserWithoutMemberships: false } };

    it.each<[string, Partial<Observed>, Action[]]>([
      [
        'without the finalizer: nothing (the controller deletes its records once it is gone)',
        { invitation: deleting(accepted(), []), user: userWith([granted]) },
        [],
      ],
      [
        'never accepted: its open link revoked, then let go',
        { invitation: deleting(invitation({}, { issuance: 1 })), records: [record()], user: undefined },
        [{ kind: 'deleteRecord', name: 'usher-invitation-uid-1-1', why: 'invitation deleted' }, { kind: 'removeFinalizer' }],
      ],
      [
        'accepted, the User has other memberships: this one comes off',
        { user: userWith([otherMembership, granted]) },
        [
          { kind: 'deleteRecord', name: 'usher-invitation-uid-1-1', why: 'invitation deleted' },
          { kind: 'removeMembership', user: 'jane-doe-1', membership: granted },
          { kind: 'removeFinalizer' },
        ],
      ],
      [
        'accepted, the User’s last membership: the User is deleted, if it is still the version seen',
        { user: userWith([granted]) },
        [
          { kind: 'deleteRecord', name: 'usher-invitation-uid-1-1', why: 'invitation deleted' },
          { kind: 'deleteUser', user: 'jane-doe-1', uid: 'user-uid', resourceVersion: '42', membership: granted },
          { kind: 'removeFinalizer' },
        ],
      ],
      [
        'the last membership, with deleteUserWithoutMemberships false: the User stays, with none',
        { user: userWith([granted]), config: keepUsers },
        [
          { kind: 'deleteRecord', name: 'usher-invitation-uid-1-1', why: 'invitation deleted' },
          { kind: 'removeMembership', user: 'jane-doe-1', membership: granted },
          { kind: 'removeFinalizer' },
        ],
      ],
      [
        'with onInvitationDelete Keep: the membership stays',
        { user: userWith([granted]), config: keepAll },
        [{ kind: 'deleteRecord', name: 'usher-invitation-uid-1-1', why: 'invitation deleted' }, { kind: 'removeFinalizer' }],
      ],
      [
        'the User already being deleted: its memberships go with it',
        { user: userWith([granted], { deletionTimestamp: '2026-11-25T11:00:00Z' }) },
        [{ kind: 'deleteRecord', name: 'usher-invitation-uid-1-1', why: 'invitation deleted' }, { kind: 'removeFinalizer' }],
      ],
      [
        'a direct creation: its User’s last membership',
        { invitation: deleting(direct()), records: [], user: userWith([membershipOf(direct())]) },
        [{ kind: 'deleteUser', user: 'jane-doe-1', uid: 'user-uid', resourceVersion: '42', membership: membershipOf(direct()) }, { kind: 'removeFinalizer' }],
      ],
    ])('%s', (_name, observed, actions) => {
      const plan = decide(observe({ invitation: deleting(accepted()), records: [used], ...observed }));
      expect(plan.actions).toEqual(actions);
    });
  });
});

describe('verifiedLink', () => {
  const verifier = 'v'.repeat(43);
  const records = [record({ verifierHash: hashVerifier(verifier) })];

  it('gives back the link, rebuilt from baseUrl, when its token verifies against a record', () => {
    expect(verifiedLink(LINK, records, 'https://usher.example')).toBe(LINK);
  });

  it.each([
    ['another host with the real token', LINK.replace('https://usher.example', 'https://evil.example')],
    ['another path', LINK.replace('/accept/', '/accept/x/')],
    ['the real selector with another verifier', `https://usher.example/accept/${SELECTOR}.${'w'.repeat(43)}`],
    ['another selector', `https://usher.example/accept/${'b'.repeat(32)}.${verifier}`],
    ['something that is no link', 'javascript:alert(1)'],
  ])('refuses %s', (_what, link) => {
    expect(verifiedLink(link, records, 'https://usher.example')).toBeUndefined();
  });
});

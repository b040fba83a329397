import { describe, expect, it } from 'vitest';
import type { Membership, User } from '../../src/api/types.ts';
import { accessOf, accountStatus, IDENTITY_FINALIZER, planAccount, type AccountObserved, type AccountView } from '../../src/invitation/identity.ts';

const acme: Membership = {
  scope: 'Tenant',
  tenant: 'acme',
  groups: ['developers'],
  roles: [{ name: 'developer', namespaces: ['acme.dev', 'acme.test'] }, { name: 'viewer' }],
};
const instance: Membership = { scope: 'Instance', groups: ['ops'], roles: [{ name: 'admin' }] };

describe('accessOf: memberships become groups and roles', () => {
  it.each<[string, Membership[], { groups: string[]; roles: string[] }]>([
    ['none', [], { groups: [], roles: [] }],
    [
      'a tenant with a group, a limited and an unlimited role',
      [acme],
      {
        groups: ['/tenants/acme', '/tenants/acme/developers'],
        roles: ['acme/developer@acme.dev', 'acme/developer@acme.test', 'acme/viewer'],
      },
    ],
    ['the instance', [instance], { groups: ['/instance', '/instance/ops'], roles: ['*/admin'] }],
    ['a tenant without groups or roles still joins the tenant', [{ scope: 'Tenant', tenant: 'globex' }], { groups: ['/tenants/globex'], roles: [] }],
    [
      'two memberships, overlapping, deduplicated and sorted',
      [acme, instance, { scope: 'Tenant', tenant: 'acme', groups: ['developers', 'qa'] }],
      {
        groups: ['/instance', '/instance/ops', '/tenants/acme', '/tenants/acme/developers', '/tenants/acme/qa'],
        roles: ['*/admin', 'acme/developer@acme.dev', 'acme/developer@acme.test', 'acme/viewer'],
      },
    ],
  ])('%s', (_name, memberships, expected) => {
    expect(accessOf(memberships)).toEqual(expected);
  });
});

const UID = 'uid-1';
function user(over: { spec?: Partial<User['spec']>; finalizer?: boolean; deleting?: boolean; joined?: boolean } = {}): User {
  return {
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'User',
    metadata: {
      name: 'u-1',
      uid: UID,
      generation: 3,
      ...(over.finalizer === false ? {} : { finalizers: [IDENTITY_FINALIZER] }),
      ...(over.deleting ? { deletionTimestamp: '2026-12-01T10:00:00Z' } : {}),
    },
    spec: { email: 'jane@example.com', authentication: 'Password', memberships: [acme], ...over.spec },
    // Joined: the status names the account (someone else's) this User was given access on.
    ...(over.joined ? { status: { identity: { provider: 'keycloak', id: 'kc-1', username: 'jane@example.com', managed: false } } } : {}),
  };
}
const synced = accessOf([acme]);
const account = (over: Partial<AccountView> = {}): AccountView => ({
  id: 'kc-1',
  username: 'jane@example.com',
  email: 'jane@example.com',
  enabled: true,
  emailVerified: true,
  usherUserUid: UID,
  groups: [...synced.groups, '/staff'],
  roles: synced.roles,
  ...over,
});
const observed = (over: Partial<AccountObserved>): AccountObserved => ({
  user: user(),
  account: undefined,
  hasPasswordHash: true,
  accepting: false,
  onUserDelete: 'Disable',
  ...over,
});

describe('planAccount', () => {
  it.each<[string, Partial<AccountObserved>, string[], string | undefined]>([
    // name, observed, step kinds, Provisioned reason
    ['new Password User: finalizer first, then create with the password', { user: user({ finalizer: false }) }, ['addFinalizer', 'create'], 'Created'],
    ['new External User: created without a password', { user: user({ spec: { authentication: 'External' } }) }, ['create'], 'Created'],
    ['acceptance still in progress: wait', { accepting: true }, [], 'AcceptanceInProgress'],
    ['password hash not written yet: wait', { hasPasswordHash: false }, [], 'WaitingForPassword'],
    ['our account, in sync (a non-Usher group does not count)', { account: account() }, [], 'Created'],
    ['our account, a group missing', { account: account({ groups: ['/tenants/acme'] }) }, ['setAccess'], 'Created'],
    ['our account, an extra role', { account: account({ roles: [...synced.roles, 'acme/admin'] }) }, ['setAccess'], 'Created'],
    ['someone else\u2019s account, Password User: never touched', { account: account({ usherUserUid: undefined, groups: [] }) }, [], 'AccountExists'],
    ['an account another User made, Password User: never touched', { account: account({ usherUserUid: 'other' }) }, [], 'AccountExists'],
    [
      'someone else\u2019s account, External User (signed in to it): joined',
      { user: user({ spec: { authentication: 'External' } }), account: account({ usherUserUid: undefined, groups: ['/staff'], roles: [] }) },
      ['setAccess'],
      'Joined',
    ],
    [
      'deleting, Disable: access off, then disabled',
      { user: user({ deleting: true }), account: account() },
      ['setAccess', 'disable', 'removeFinalizer'],
      undefined,
    ],
    ['deleting, Delete', { user: user({ deleting: true }), account: account(), onUserDelete: 'Delete' }, ['delete', 'removeFinalizer'], undefined],
    [
      'deleting, already disabled and bare',
      { user: user({ deleting: true }), account: account({ enabled: false, groups: ['/staff'], roles: [] }) },
      ['removeFinalizer'],
      undefined,
    ],
    [
      'deleting a joined account, Delete: only Usher access goes',
      { user: user({ deleting: true, joined: true }), account: account({ usherUserUid: undefined }), onUserDelete: 'Delete' },
      ['setAccess', 'removeFinalizer'],
      undefined,
    ],
    ['deleting, no account', { user: user({ deleting: true }) }, ['removeFinalizer'], undefined],
    ['deleting without the finalizer: nothing', { user: user({ deleting: true, finalizer: false }), account: account() }, [], undefined],
    [
      'an account whose address differs beyond A-Z case (\u00c9lodie@ vs \u00e9lodie@): someone else\u2019s, even for an External User',
      {
        user: user({ spec: { email: '\u00c9lodie@example.com', authentication: 'External' } }),
        account: account({ email: '\u00e9lodie@example.com', usherUserUid: undefined }),
      },
      [],
      'AccountExists',
    ],
    [
      'an External User (made directly) and an account whose address its holder never verified: not joined',
      { user: user({ spec: { authentication: 'External' } }), account: account({ usherUserUid: undefined, emailVerified: false, groups: [], roles: [] }) },
      [],
      'AccountExists',
    ],
    [
      'deleting a User kept away from someone else\u2019s account: the account is not touched',
      { user: user({ deleting: true }), account: account({ usherUserUid: undefined }) },
      ['removeFinalizer'],
      undefined,
    ],
  ])('%s', (_name, over, steps, reason) => {
    const plan = planAccount(observed(over));
    expect(plan.steps.map((s) => s.kind)).toEqual(steps);
    expect(plan.provisioned?.reason).toBe(reason);
  });

  it('removes Usher access but keeps other groups when a joined account leaves', () => {
    const plan = planAccount(observed({ user: user({ deleting: true, joined: true }), account: account({ usherUserUid: undefined }) }));
    expect(plan.steps[0]).toEqual({ kind: 'setAccess', access: { groups: [], roles: [] } });
  });

  it('creates with exactly the access of the memberships', () => {
    const plan = planAccount(observed({}));
    expect(plan.steps).toEqual([{ kind: 'create', withPassword: true, access: synced }]);
  });

  it('names the existing account in the message and stalls (kstatus Failed), not progressing', () => {
    const plan = planAccount(observed({ account: account({ usherUserUid: undefined }) }));
    expect(plan.provisioned?.message).toContain('jane@example.com');
    const status = accountStatus(user(), plan, undefined, new Date('2026-12-01T10:00:00Z'));
    expect(status.conditions?.find((c) => c.type === 'Stalled')?.status).toBe('True');
    expect(status.observedGeneration).toBe(3);
  });

  it('a status computed twice from the same world is the same (no write)', () => {
    const plan = planAccount(observed({ account: account() }));
    const identity = { provider: 'keycloak', id: 'kc-1', username: 'jane@example.com', managed: true };
    const first = accountStatus(user(), plan, identity, new Date('2026-12-01T10:00:00Z'));
    const again = accountStatus({ ...user(), status: first }, plan, identity, new Date('2026-12-01T11:00:00Z'));
    expect(again).toEqual(first);
    expect(first.conditions?.map((c) => [c.type, c.status])).toEqual([
      ['Provisioned', 'True'],
      ['Ready', 'True'],
      ['Reconciling', 'False'],
      ['Stalled', 'False'],
    ]);
  });
});

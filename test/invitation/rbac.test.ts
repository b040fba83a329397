import { describe, expect, it } from 'vitest';
import type { Condition, Membership, User, UserInvitation } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { RbacConfig } from '../../src/config/types.ts';
import {
  boundCondition,
  grantedMemberships,
  projectUser,
  usernameOf,
  type DesiredBinding,
  type NamespaceView,
  type ProjectionNote,
} from '../../src/invitation/rbac.ts';
import { withOwnedCondition } from '../../src/invitation/user-status.ts';

const rbac: RbacConfig = {
  roleMap: { developer: 'edit', viewer: 'view' },
  groupMap: { developers: 'view' },
  username: { from: 'Email', prefix: 'oidc:' },
  groups: { prefix: 'oidc:' },
};

const namespaces: NamespaceView = {
  tenantOf: new Map<string, string | undefined>([
    ['acme-dev', 'acme'],
    ['acme-prod', 'acme'],
    ['globex', 'globex'],
    ['shared', undefined],
  ]),
};

function user(memberships: Membership[], identityUsername?: string): User {
  return {
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'User',
    metadata: { name: 'jane-0123', uid: 'u1' },
    spec: { email: 'jane@example.com', memberships },
    ...(identityUsername ? { status: { identity: { provider: 'keycloak', id: 'k1', username: identityUsername, managed: true } } } : {}),
  };
}

const rb = (namespace: string, clusterRole: string, subject = 'oidc:jane@example.com'): Partial<DesiredBinding> => ({
  kind: 'RoleBinding',
  namespace,
  clusterRole,
  subject: { kind: 'User', name: subject },
  shared: false,
  name: `usher:jane-0123:${clusterRole}`,
});
const crb = (clusterRole: string): Partial<DesiredBinding> => ({
  kind: 'ClusterRoleBinding',
  clusterRole,
  subject: { kind: 'User', name: 'oidc:jane@example.com' },
  shared: false,
});
const groupRb = (namespace: string, path: string, clusterRole = 'view'): Partial<DesiredBinding> => ({
  kind: 'RoleBinding',
  namespace,
  clusterRole,
  subject: { kind: 'Group', name: `oidc:${path}` },
  shared: true,
});

describe('projectUser: memberships × namespaces × roleMap → bindings', () => {
  it.each<[string, Membership[], Partial<DesiredBinding>[], ProjectionNote[]]>([
    ['no memberships, nothing bound', [], [], []],
    [
      'a tenant role without namespaces: every namespace of the tenant',
      [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer' }] }],
      [rb('acme-dev', 'edit'), rb('acme-prod', 'edit')],
      [],
    ],
    [
      'a tenant role limited to one of its namespaces',
      [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer', namespaces: ['acme-dev'] }] }],
      [rb('acme-dev', 'edit')],
      [],
    ],
    [
      'a listed namespace of another tenant is not bound, and named',
      [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer', namespaces: ['acme-dev', 'globex', 'shared'] }] }],
      [rb('acme-dev', 'edit')],
      [
        { kind: 'NamespaceOutsideTenant', role: 'developer', namespace: 'globex', tenant: 'acme', actualTenant: 'globex' },
        { kind: 'NamespaceOutsideTenant', role: 'developer', namespace: 'shared', tenant: 'acme', actualTenant: undefined },
      ],
    ],
    [
      'a listed namespace that does not exist is not bound, and named',
      [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer', namespaces: ['acme.dev'] }] }],
      [],
      [{ kind: 'NamespaceNotFound', role: 'developer', namespace: 'acme.dev' }],
    ],
    [
      'an unmapped role binds nothing and is named; a mapped one beside it is bound',
      [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'auditor' }, { name: 'viewer', namespaces: ['acme-prod'] }] }],
      [rb('acme-prod', 'view')],
      [{ kind: 'UnmappedRole', role: 'auditor' }],
    ],
    ['a tenant with no namespaces yet binds nothing', [{ scope: 'Tenant', tenant: 'initech', roles: [{ name: 'developer' }] }], [], []],
    ['the instance scope: a ClusterRoleBinding', [{ scope: 'Instance', roles: [{ name: 'viewer' }] }], [crb('view')], []],
    [
      'the instance scope with listed namespaces: RoleBindings there, in any tenant',
      [{ scope: 'Instance', roles: [{ name: 'developer', namespaces: ['globex', 'nowhere'] }] }],
      [rb('globex', 'edit')],
      [{ kind: 'NamespaceNotFound', role: 'developer', namespace: 'nowhere' }],
    ],
    [
      'a mapped group: a shared Group binding in every tenant namespace; an unmapped group: nothing',
      [{ scope: 'Tenant', tenant: 'acme', groups: ['developers', 'qa'] }],
      [groupRb('acme-dev', '/tenants/acme/developers'), groupRb('acme-prod', '/tenants/acme/developers')],
      [],
    ],
    [
      'an instance group: a shared ClusterRoleBinding',
      [{ scope: 'Instance', groups: ['developers'] }],
      [{ kind: 'ClusterRoleBinding', clusterRole: 'view', subject: { kind: 'Group', name: 'oidc:/instance/developers' }, shared: true }],
      [],
    ],
    [
      'two memberships granting the same role in the same namespace: one binding',
      [
        { scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer', namespaces: ['acme-dev'] }] },
        { scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer' }] },
      ],
      [rb('acme-dev', 'edit'), rb('acme-prod', 'edit')],
      [],
    ],
  ])('%s', (_name, memberships, bindings, notes) => {
    const projection = projectUser(user(memberships), namespaces, rbac);
    expect(projection.bindings).toHaveLength(bindings.length);
    expect(projection.bindings).toEqual(expect.arrayContaining(bindings.map((b) => expect.objectContaining(b) as unknown)));
    expect(projection.notes).toEqual(notes);
    expect(projection.waitingFor).toBeUndefined();
  });

  it("names the person as the API server does: the identity provider's username, with the prefix, once it is known", () => {
    const byIdentity: RbacConfig = { ...rbac, username: { from: 'IdentityUsername', prefix: '' } };
    const m: Membership[] = [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer', namespaces: ['acme-dev'] }] }];
    const before = projectUser(user(m), namespaces, byIdentity);
    expect(before.bindings).toEqual([]);
    expect(before.waitingFor).toMatch(/status\.identity\.username/);
    expect(boundCondition(before, [])).toMatchObject({ status: 'False', reason: 'WaitingForAccount' });
    expect(boundCondition(before, []).message).toMatch(/0 group bindings in place/);
    const after = projectUser(user(m, 'jane@example.com'), namespaces, byIdentity);
    expect(after.bindings).toEqual([expect.objectContaining(rb('acme-dev', 'edit', 'jane@example.com'))]);
    expect(usernameOf(user(m, 'jsmith'), byIdentity)).toBe('jsmith');
    // An account found with the address but left alone (AccountExists) is someone else's: never bound,
    // even if a status.identity were there.
    const foreign = user(m, 'mallory');
    foreign.status = {
      ...foreign.status,
      conditions: [{ type: 'Provisioned', status: 'False', reason: 'AccountExists', message: '', lastTransitionTime: '' }],
    };
    expect(usernameOf(foreign, byIdentity)).toBeUndefined();
    expect(projectUser(foreign, namespaces, byIdentity).bindings).toEqual([]);
  });

  it('gives every binding a valid RBAC name, hashed when the readable one is too long', () => {
    const long = 'x'.repeat(250);
    const projection = projectUser(user([{ scope: 'Instance', roles: [{ name: 'developer' }] }]), namespaces, { ...rbac, roleMap: { developer: long } });
    const name = projection.bindings[0]?.name ?? '';
    expect(name.length).toBeLessThanOrEqual(253);
    expect(name).toMatch(/^usher:[0-9a-f]{40}$/);
    for (const b of projectUser(user([{ scope: 'Tenant', tenant: 'acme', groups: ['developers'], roles: [{ name: 'developer' }] }]), namespaces, rbac).bindings)
      expect(b.name).not.toMatch(/[/%]/);
  });
});

describe('boundCondition', () => {
  const projection = (memberships: Membership[]) => projectUser(user(memberships), namespaces, rbac);
  it.each<[string, Membership[], { refused?: boolean }, { status: string; reason: string; message: RegExp }]>([
    [
      'all bound',
      [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer' }] }],
      {},
      { status: 'True', reason: 'Bound', message: /^2 bindings in place\.$/ },
    ],
    ['nothing to bind', [], {}, { status: 'True', reason: 'Bound', message: /No bindings needed/ }],
    [
      'an unmapped role: True, named',
      [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'auditor' }] }],
      {},
      { status: 'True', reason: 'PartlyMapped', message: /roleMap \(not bound\): auditor/ },
    ],
    [
      'a namespace outside the tenant: False, named',
      [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer', namespaces: ['globex'] }] }],
      {},
      { status: 'False', reason: 'NamespaceOutsideTenant', message: /namespace globex, which belongs to tenant globex, not acme/ },
    ],
    [
      'a refused binding: False, with the API server’s answer',
      [{ scope: 'Instance', roles: [{ name: 'developer' }] }],
      { refused: true },
      { status: 'False', reason: 'BindForbidden', message: /ClusterRoleBinding usher:jane-0123:edit .*forbidden: not allowed.*roleMap/ },
    ],
    [
      'a listed namespace that does not exist: False, NamespaceNotFound',
      [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer', namespaces: ['acme-qa'] }] }],
      {},
      { status: 'False', reason: 'NamespaceNotFound', message: /namespace acme-qa, which does not exist/ },
    ],
  ])('%s', (_name, memberships, { refused }, expected) => {
    const p = projection(memberships);
    const c = boundCondition(
      p,
      refused && p.bindings[0] ? [{ binding: p.bindings[0], reason: 'BindForbidden' as const, message: 'forbidden: not allowed' }] : [],
    );
    expect(c).toMatchObject({ type: 'Bound', status: expected.status, reason: expected.reason });
    expect(c.message).toMatch(expected.message);
  });
});

it('a retryable failure says Retrying, which is Reconciling, not Stalled', () => {
  const p = projectUser(user([{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer' }] }]), namespaces, rbac);
  const c = boundCondition(p, [], ['Operation cannot be fulfilled: the object has been modified']);
  expect(c).toMatchObject({ status: 'False', reason: 'Retrying' });
  const summary = withOwnedCondition(undefined, c, 1, new Date());
  expect(summary.find((x) => x.type === 'Reconciling')?.status).toBe('True');
  expect(summary.find((x) => x.type === 'Stalled')?.status).toBe('False');
});

describe("a User's summary covers every controller's condition", () => {
  const now = new Date('2026-12-02T00:00:00Z');
  const provisioned = { type: 'Provisioned', status: 'True' as const, reason: 'Created', message: 'The account has the groups.' };
  const summary = (conditions: Condition[]) => Object.fromEntries(conditions.map((c) => [c.type, `${c.status}/${c.reason}`]));

  it('keeps the other controller’s condition and recomputes Ready from both', () => {
    const afterIdentity = withOwnedCondition(undefined, provisioned, 1, now);
    expect(summary(afterIdentity)).toEqual({ Provisioned: 'True/Created', Ready: 'True/Created', Reconciling: 'False/Settled', Stalled: 'False/NotStalled' });
    const afterRbac = withOwnedCondition(afterIdentity, { type: 'Bound', status: 'False', reason: 'BindForbidden', message: 'refused' }, 1, now);
    expect(summary(afterRbac)).toMatchObject({
      Provisioned: 'True/Created',
      Bound: 'False/BindForbidden',
      Ready: 'False/BindForbidden',
      Stalled: 'True/BindForbidden',
    });
    const waiting = withOwnedCondition(afterRbac, { type: 'Bound', status: 'False', reason: 'WaitingForAccount', message: 'waiting' }, 1, now);
    expect(summary(waiting)).toMatchObject({ Ready: 'False/WaitingForAccount', Reconciling: 'True/WaitingForAccount', Stalled: 'False/NotStalled' });
    // The identity controller writing again keeps Bound.
    expect(summary(withOwnedCondition(waiting, provisioned, 2, now))).toMatchObject({ Bound: 'False/WaitingForAccount', Ready: 'False/WaitingForAccount' });
  });

  it('is stable: the same inputs give an equal list, transition times kept', () => {
    const once = withOwnedCondition(undefined, provisioned, 1, now);
    expect(withOwnedCondition(once, provisioned, 1, new Date('2026-12-03T00:00:00Z'))).toEqual(once);
  });
});

describe('grantedMemberships: only what an accepted invitation grants now', () => {
  const config = parseConfig('usher:\n  baseUrl: http://127.0.0.1:9\n', { env: {}, component: 'controller' });
  const ref = { namespace: 'acme-team', name: 'jane', uid: 'inv-1' };
  const membership: Membership = {
    scope: 'Tenant',
    tenant: 'acme',
    groups: ['developers', 'qa'],
    roles: [{ name: 'developer', namespaces: ['acme-dev'] }],
    invitation: ref,
  };
  const invitation = (over: { spec?: Partial<UserInvitation['spec']>; phase?: string; uid?: string } = {}): UserInvitation => ({
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'UserInvitation',
    metadata: { name: 'jane', namespace: 'acme-team', uid: over.uid ?? 'inv-1' },
    spec: { email: 'Jane@example.com', tenant: 'acme', groups: ['developers', 'qa'], roles: [{ name: 'developer', namespaces: ['acme-dev'] }], ...over.spec },
    status: { phase: (over.phase ?? 'Accepted') as never },
  });
  it.each<[string, UserInvitation | undefined, string | undefined, Partial<Membership> | undefined, RegExp | undefined]>([
    ['an accepted invitation that says the same: all of it', invitation(), 'acme', membership, undefined],
    ['createUserDirectly (UserCreated) counts too', invitation({ phase: 'UserCreated' }), 'acme', membership, undefined],
    ['no such invitation', undefined, 'acme', undefined, /no such invitation/],
    ['another invitation of that name (another uid)', invitation({ uid: 'inv-2' }), 'acme', undefined, /no such invitation/],
    ['not accepted yet', invitation({ phase: 'Sent' }), 'acme', undefined, /is Sent, not Accepted/],
    ['for another address', invitation({ spec: { email: 'john@example.com' } }), 'acme', undefined, /another address/],
    ['for another tenant', invitation({ spec: { tenant: 'globex' } }), 'globex', undefined, /another scope or tenant/],
    ['from a namespace that no longer belongs to the tenant', invitation(), 'globex', undefined, /belongs to tenant globex/],
    [
      'an edit took a group and changed a role: only what both say',
      invitation({ spec: { groups: ['developers'], roles: [{ name: 'developer', namespaces: ['acme-prod'] }] } }),
      'acme',
      { ...membership, groups: ['developers'], roles: [] },
      undefined,
    ],
  ])('%s', (_name, inv, namespaceTenant, expected, why) => {
    const u: User = {
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'User',
      metadata: { name: 'jane' },
      spec: { email: 'jane@example.com', memberships: [membership] },
    };
    const result = grantedMemberships(u, () => (inv ? { invitation: inv, namespaceTenant } : undefined), config);
    if (expected) expect(result.memberships).toEqual([expected]);
    else expect(result.memberships).toEqual([]);
    if (why) expect(result.notes).toEqual([expect.objectContaining({ kind: 'NotGranted', why: expect.stringMatching(why) as unknown })]);
    else expect(result.notes).toEqual([]);
  });
});

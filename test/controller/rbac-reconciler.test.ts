import type { V1Namespace } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { InvitationPhase, Membership, User, UserInvitation } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { RbacConfig } from '../../src/config/types.ts';
import { RbacReconciler } from '../../src/controller/rbac-reconciler.ts';
import { silentLogger } from '../../src/runtime/log.ts';
import { FakeBindings } from './fake-bindings.ts';
import { FakeUserStore } from './fake-identity.ts';

const rbac: RbacConfig = {
  roleMap: { developer: 'edit', viewer: 'view', root: 'cluster-admin' },
  groupMap: { developers: 'view' },
  username: { from: 'Email', prefix: 'oidc:' },
  groups: { prefix: 'oidc:' },
};

function world(
  namespaces: Record<string, string | undefined> = { 'acme-dev': 'acme', 'acme-prod': 'acme', globex: 'globex' },
  rbacConfig: RbacConfig = rbac,
  stores: { users: FakeUserStore; bindings: FakeBindings } = { users: new FakeUserStore(), bindings: new FakeBindings() },
) {
  const { users, bindings } = stores;
  const spaces: V1Namespace[] = Object.entries(namespaces).map(([name, tenant]) => ({
    metadata: { name, ...(tenant ? { labels: { 'usher.dev/tenant': tenant } } : {}) },
  }));
  /** Invitations whose phase is not Accepted (by name); every other membership's invitation is accepted, as it says. */
  const phases = new Map<string, InvitationPhase | 'gone'>();
  const reconciler = new RbacReconciler({
    users,
    namespaces: () => spaces,
    bindings,
    // Each membership's invitation, as the membership describes it (the world where the two agree).
    invitations: (namespace, name) => {
      const phase = phases.get(name) ?? 'Accepted';
      if (phase === 'gone') return undefined;
      for (const user of users.users.values()) {
        const m = user.spec.memberships?.find((x) => x.invitation?.namespace === namespace && x.invitation.name === name);
        if (!m?.invitation) continue;
        const invitation: UserInvitation = {
          apiVersion: 'usher.dev/v1alpha1',
          kind: 'UserInvitation',
          metadata: { name, namespace, uid: m.invitation.uid },
          spec: { email: user.spec.email, scope: m.scope, ...(m.tenant ? { tenant: m.tenant } : {}), groups: m.groups ?? [], roles: m.roles ?? [] },
          status: { phase },
        };
        return { invitation, namespaceTenant: m.tenant };
      }
      return undefined;
    },
    config,
    rbac: rbacConfig,
    log: silentLogger as never,
    now: () => new Date('2026-12-02T10:00:00Z'),
  });
  return { users, bindings, reconciler, spaces, phases };
}

const config = parseConfig('usher:\n  baseUrl: http://127.0.0.1:9\n  tenancy:\n    instanceNamespaces: [platform]\n', { env: {}, component: 'controller' });

/** The memberships as invitations grant them: each names its own (accepted) invitation, `<user>-<n>`. */
function granted(name: string, memberships: Membership[]): Membership[] {
  return memberships.map((m, i) => ({
    ...m,
    invitation: { namespace: m.scope === 'Instance' ? 'platform' : `${m.tenant ?? ''}-team`, name: `${name}-${i}`, uid: `uid-${name}-${i}` },
  }));
}

function person(name: string, memberships: Membership[]): User {
  return {
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'User',
    metadata: { name },
    spec: { email: `${name}@example.com`, memberships: granted(name, memberships) },
  };
}

const developerInDev: Membership = { scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer', namespaces: ['acme-dev'] }] };
const bound = (users: FakeUserStore, name: string) => users.users.get(name)?.status?.conditions?.find((c) => c.type === 'Bound');
const names = (bindings: FakeBindings) => [...bindings.objects.keys()].sort();

describe('RbacReconciler', () => {
  it('binds the role where the membership says, owned by the User, then has nothing more to do', async () => {
    const { users, bindings, reconciler } = world();
    users.put(person('jane', [developerInDev]));
    await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:edit']);
    const rb = bindings.binding('RoleBinding', 'acme-dev', 'usher:jane:edit')?.object;
    expect(rb).toMatchObject({
      metadata: {
        labels: { 'app.kubernetes.io/managed-by': 'usher', 'usher.dev/binding': 'person' },
        ownerReferences: [{ kind: 'User', name: 'jane', uid: 'uid-jane' }],
      },
      roleRef: { kind: 'ClusterRole', name: 'edit' },
      subjects: [{ kind: 'User', name: 'oidc:jane@example.com', apiGroup: 'rbac.authorization.k8s.io' }],
    });
    expect(bound(users, 'jane')).toMatchObject({ status: 'True', reason: 'Bound' });
    expect(users.events.map((e) => e.reason)).toEqual(['AccessBound', 'Bound']);
    const before = [...bindings.writes, ...users.writes].length;
    await reconciler.reconcile('jane');
    expect([...bindings.writes, ...users.writes]).toHaveLength(before);
  });

  it('follows a membership change: the removed role’s binding goes, the new one comes', async () => {
    const { users, bindings, reconciler } = world();
    users.put(person('jane', [developerInDev]));
    await reconciler.reconcile('jane');
    const stored = users.users.get('jane');
    if (!stored) throw new Error('no user');
    users.put({ ...stored, spec: { ...stored.spec, memberships: granted('jane', [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'viewer' }] }]) } });
    await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:view', 'RoleBinding/acme-prod/usher:jane:view']);
  });

  it('removes its bindings as soon as the User’s deletion starts, before other finalizers are done', async () => {
    const { users, bindings, reconciler } = world();
    users.put({ ...person('jane', [developerInDev]), metadata: { name: 'jane', finalizers: ['usher.dev/identity-account'] } });
    await reconciler.reconcile('jane');
    users.delete('jane');
    await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual([]);
  });

  it('refuses nothing silently: a ClusterRole it may not bind is named in Bound, the others are still made, and it retries later', async () => {
    const { users, bindings, reconciler } = world();
    users.put(person('jane', [{ scope: 'Instance', roles: [{ name: 'root' }] }, developerInDev]));
    const result = await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:edit']);
    expect(bound(users, 'jane')).toMatchObject({ status: 'False', reason: 'BindForbidden' });
    expect(bound(users, 'jane')?.message).toMatch(/ClusterRoleBinding usher:jane:cluster-admin .*attempting to grant RBAC permissions not currently held/);
    expect(users.users.get('jane')?.status?.conditions?.find((c) => c.type === 'Stalled')?.status).toBe('True');
    expect(result.requeueAfterMs).toBe(60_000);
    expect(users.events.find((e) => e.reason === 'BindForbidden')?.type).toBe('Warning');
  });

  it('a namespace of another tenant is not bound, and the condition says which', async () => {
    const { users, bindings, reconciler } = world();
    users.put(person('jane', [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer', namespaces: ['acme-dev', 'globex'] }] }]));
    await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:edit']);
    expect(bound(users, 'jane')).toMatchObject({ status: 'False', reason: 'NamespaceOutsideTenant' });
    expect(bound(users, 'jane')?.message).toContain('namespace globex, which belongs to tenant globex, not acme');
  });

  it('puts back a binding someone edited', async () => {
    const { users, bindings, reconciler } = world();
    users.put(person('jane', [developerInDev]));
    await reconciler.reconcile('jane');
    const k = 'RoleBinding/acme-dev/usher:jane:edit';
    const stored = bindings.objects.get(k);
    if (!stored) throw new Error('no binding');
    stored.object.subjects = [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'mallory@example.com' }];
    await reconciler.reconcile('jane');
    expect(bindings.objects.get(k)?.object.subjects?.[0]?.name).toBe('oidc:jane@example.com');
  });

  it('shares a Group binding between its Users: the second joins as an owner, the last to leave deletes it', async () => {
    const { users, bindings, reconciler } = world({ 'acme-dev': 'acme' });
    const devs: Membership = { scope: 'Tenant', tenant: 'acme', groups: ['developers'] };
    users.put(person('jane', [devs]));
    users.put(person('john', [devs]));
    await reconciler.reconcile('jane');
    await reconciler.reconcile('john');
    const k = 'RoleBinding/acme-dev/usher:group:tenant:acme:developers:view';
    expect(names(bindings)).toEqual([k]);
    expect(bindings.objects.get(k)?.object.metadata?.ownerReferences?.map((o) => o.name)).toEqual(['jane', 'john']);
    expect(bindings.objects.get(k)?.object.subjects).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'oidc:/tenants/acme/developers' }]);

    const jane = users.users.get('jane');
    if (!jane) throw new Error('no user');
    users.put({ ...jane, spec: { ...jane.spec, memberships: [] } });
    await reconciler.reconcile('jane');
    expect(bindings.objects.get(k)?.object.metadata?.ownerReferences?.map((o) => o.name)).toEqual(['john']);
    // john is deleted with no finalizer: the garbage collector does the rest.
    bindings.collectGarbage('uid-john');
    expect(names(bindings)).toEqual([]);
  });

  it('a conflict on a shared binding fails the reconcile (to be retried) and the retry converges', async () => {
    const { users, bindings, reconciler } = world({ 'acme-dev': 'acme' });
    const devs: Membership = { scope: 'Tenant', tenant: 'acme', groups: ['developers'] };
    users.put(person('jane', [devs]));
    users.put(person('john', [devs]));
    await reconciler.reconcile('jane');
    bindings.conflictOnce.add('usher:group:tenant:acme:developers:view');
    await expect(reconciler.reconcile('john')).rejects.toThrow(/Conflict/);
    await reconciler.reconcile('john');
    expect(bindings.objects.get('RoleBinding/acme-dev/usher:group:tenant:acme:developers:view')?.object.metadata?.ownerReferences).toHaveLength(2);
  });

  it('a namespace gaining the tenant label gets the tenant’s bindings; losing it takes them away', async () => {
    const { users, bindings, reconciler, spaces } = world({ 'acme-dev': 'acme', 'acme-new': undefined });
    users.put(person('jane', [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer' }] }]));
    await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:edit']);
    const fresh = spaces.find((s) => s.metadata?.name === 'acme-new');
    if (!fresh?.metadata) throw new Error('no namespace');
    fresh.metadata.labels = { 'usher.dev/tenant': 'acme' };
    await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:edit', 'RoleBinding/acme-new/usher:jane:edit']);
    fresh.metadata.labels = {};
    await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:edit']);
  });

  it('a binding it cannot write never holds up the others, least of all a removal (attack 10)', async () => {
    const { users, bindings, reconciler } = world();
    users.put(person('jane', [developerInDev, { scope: 'Tenant', tenant: 'globex', roles: [{ name: 'developer' }] }]));
    await reconciler.reconcile('jane');
    expect(names(bindings)).toContain('RoleBinding/globex/usher:jane:edit');
    // Someone with rights in acme-prod takes the name her next binding will have (an object without Usher's labels),
    // and the globex membership ends.
    bindings.foreign.add('RoleBinding/acme-prod/usher:jane:edit');
    const stored = users.users.get('jane');
    if (!stored) throw new Error('no user');
    users.put({ ...stored, spec: { ...stored.spec, memberships: granted('jane', [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer' }] }]) } });
    const result = await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:edit']);
    expect(bound(users, 'jane')).toMatchObject({ status: 'False', reason: 'NameTaken' });
    expect(bound(users, 'jane')?.message).toContain("RoleBinding usher:jane:edit exists and is not one of Usher's");
    expect(result.requeueAfterMs).toBe(2_000);
  });

  it('an error a retry may clear: the rest is done, Bound says Retrying, and the reconcile fails so the queue backs off', async () => {
    const { users, bindings, reconciler } = world();
    users.put(person('jane', [{ scope: 'Tenant', tenant: 'acme', roles: [{ name: 'developer' }, { name: 'viewer' }] }]));
    bindings.unavailable.add('usher:jane:view');
    await expect(reconciler.reconcile('jane')).rejects.toThrow(/ServiceUnavailable/);
    expect(names(bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:edit', 'RoleBinding/acme-prod/usher:jane:edit']);
    expect(bound(users, 'jane')).toMatchObject({ status: 'False', reason: 'Retrying' });
    bindings.unavailable.clear();
    await reconciler.reconcile('jane');
    expect(bound(users, 'jane')).toMatchObject({ status: 'True', reason: 'Bound' });
  });

  it('binds only what an accepted invitation grants: a membership written into the User by anyone else binds nothing (a compromised page)', async () => {
    const { users, bindings, reconciler, phases } = world();
    // No invitation behind it at all.
    users.put({ ...person('mallory', []), spec: { email: 'mallory@example.com', memberships: [{ scope: 'Instance', roles: [{ name: 'developer' }] }] } });
    await reconciler.reconcile('mallory');
    expect(names(bindings)).toEqual([]);
    expect(bound(users, 'mallory')).toMatchObject({ status: 'False', reason: 'NotGranted' });
    // An invitation that exists but is not accepted yet: waiting, not stalled.
    users.put(person('jane', [developerInDev]));
    phases.set('jane-0', 'Sent');
    await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual([]);
    expect(bound(users, 'jane')).toMatchObject({ status: 'False', reason: 'WaitingForInvitation' });
    phases.delete('jane-0');
    await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:edit']);
    // The invitation deleted: its membership binds nothing any more (the controller also takes the membership off).
    phases.set('jane-0', 'gone');
    await reconciler.reconcile('jane');
    expect(names(bindings)).toEqual([]);
  });

  it('a roleMap change (a restart with the new configuration) moves the bindings: the old ClusterRole’s go, the new one’s come', async () => {
    const before = world();
    before.users.put(person('jane', [developerInDev]));
    await before.reconciler.reconcile('jane');
    expect(names(before.bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:edit']);
    const after = world(undefined, { ...rbac, roleMap: { developer: 'view' } }, before);
    await after.reconciler.reconcile('jane');
    expect(names(after.bindings)).toEqual(['RoleBinding/acme-dev/usher:jane:view']);
    // Unmapped altogether: nothing bound, the role named.
    const none = world(undefined, { ...rbac, roleMap: {} }, before);
    await none.reconciler.reconcile('jane');
    expect(names(none.bindings)).toEqual([]);
    expect(bound(none.users, 'jane')).toMatchObject({ status: 'True', reason: 'PartlyMapped' });
  });
});

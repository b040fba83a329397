// Memberships become Kubernetes access (usher.rbac), on the real API server:
// the real controller as the chart's `operator` identity, holding exactly the
// chart's RBAC (rendered with roleMap developer: edit, viewer: view and
// groupMap developers: view, so `bind` on edit and view only). What a person
// may do is asked of the API server itself (`kubectl auth can-i --as`), and
// an escalation (a roleMap naming cluster-admin) is refused by the API server
// while the controller keeps working.
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { User, UserInvitationSpec } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { RbacConfig, UsherConfig } from '../../src/config/types.ts';
import { Controller } from '../../src/controller/controller.ts';
import { userNameFor } from '../../src/invitation/naming.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { actor } from '../support/actors.ts';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const tag = randomBytes(3).toString('hex');
const tenant = `rbac-acme-${tag}`;
const other = `rbac-globex-${tag}`;
const ns = { dev: `rbac-acme-dev-${tag}`, prod: `rbac-acme-prod-${tag}`, globex: `rbac-globex-${tag}`, later: `rbac-acme-later-${tag}` };
const address = (local: string): string => `${local}+${tag}@example.com`;

const rbac: RbacConfig = {
  // root → cluster-admin is what a mistaken (or malicious) roleMap would say; the chart grants no bind on it.
  roleMap: { developer: 'edit', viewer: 'view', root: 'cluster-admin' },
  groupMap: { developers: 'view' },
  username: { from: 'Email', prefix: 'oidc:' },
  groups: { prefix: 'oidc:' },
};

let controller: Controller;

beforeAll(async () => {
  if (!inject('localControlPlane')) return;
  await kubectlOk(['create', 'namespace', ns.dev]);
  await kubectlOk(['create', 'namespace', ns.prod]);
  await kubectlOk(['create', 'namespace', ns.globex]);
  await kubectlOk(['label', 'namespace', ns.dev, ns.prod, `usher.dev/tenant=${tenant}`]);
  await kubectlOk(['label', 'namespace', ns.globex, `usher.dev/tenant=${other}`]);
  const base = parseConfig(`usher:\n  baseUrl: http://127.0.0.1:9\n`, { source: 'test-config.yaml', env: {}, component: 'controller' });
  const config: UsherConfig = { ...base, rbac };
  controller = new Controller({ kubeConfig: loadKubeConfig(inject('kubeconfigs').operator), config, log });
  await controller.start();
}, 120_000);

afterAll(async () => {
  await (controller as Controller | undefined)?.stop();
  await deleteNamespaces(...Object.values(ns));
});

async function invite(name: string, email: string, spec: Omit<UserInvitationSpec, 'email' | 'tenant'>, namespace = ns.dev): Promise<void> {
  const doc = {
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'UserInvitation',
    metadata: { name, namespace },
    spec: { email, tenant, createUserDirectly: true, ...spec },
  };
  await kubectlOk(['create', '-f', '-'], { input: JSON.stringify(doc) });
}

/** What the API server answers for this person (impersonated as the token would name them). */
async function canI(email: string, verb: string, resource: string, namespace: string, groups: string[] = []): Promise<boolean> {
  const result = await kubectl(['auth', 'can-i', verb, resource, '-n', namespace, '--as', `oidc:${email}`, ...groups.flatMap((g) => ['--as-group', g])]);
  return result.stdout.trim() === 'yes';
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    const got = await probe();
    if (got !== undefined && got !== false) return got;
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function user(email: string): Promise<User | undefined> {
  const got = await kubectl(['get', 'users.usher.dev', userNameFor(email), '-o', 'json']);
  return got.code === 0 ? (JSON.parse(got.stdout) as User) : undefined;
}

const bound = (u: User | undefined) => u?.status?.conditions?.find((c) => c.type === 'Bound');

describe.skipIf(!inject('localControlPlane'))('memberships become RoleBindings', () => {
  it('binds a tenant role only in its listed namespace of the tenant; removing the invitation takes the access away', async () => {
    const jane = address('jane');
    const started = performance.now();
    await invite('jane', jane, { roles: [{ name: 'developer', namespaces: [ns.dev] }] });
    await until('jane may create deployments in the dev namespace', () => canI(jane, 'create', 'deployments', ns.dev));
    const grantedMs = performance.now() - started;
    expect(await canI(jane, 'create', 'deployments', ns.prod)).toBe(false);
    expect(await canI(jane, 'create', 'deployments', ns.globex)).toBe(false);
    expect(await canI(jane, 'create', 'rolebindings', ns.dev)).toBe(false); // edit does not let her grant access on
    const u = await until('Bound', async () => {
      const got = await user(jane);
      return bound(got)?.status === 'True' ? got : undefined;
    });
    expect(u.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    const rb = JSON.parse(await kubectlOk(['get', 'rolebinding', `usher:${userNameFor(jane)}:edit`, '-n', ns.dev, '-o', 'json'])) as {
      metadata: { labels: Record<string, string>; ownerReferences: { kind: string; name: string }[] };
    };
    expect(rb.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'usher', 'usher.dev/binding': 'person' });
    expect(rb.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'User', name: userNameFor(jane) })]);

    const removing = performance.now();
    await kubectlOk(['delete', 'userinvitation', 'jane', '-n', ns.dev, '--wait=false']);
    await until('jane no longer may', async () => !(await canI(jane, 'create', 'deployments', ns.dev)));
    const revokedMs = performance.now() - removing;
    console.log(`rbac: invitation created → first allowed can-i ${Math.round(grantedMs)} ms; invitation deleted → first denied ${Math.round(revokedMs)} ms`);
  });

  it('a role without listed namespaces covers every namespace of the tenant, including one labelled later; unlabelling takes it away', async () => {
    const vic = address('vic');
    await invite('vic', vic, { roles: [{ name: 'viewer' }] });
    await until('vic may list pods in both tenant namespaces', async () => (await canI(vic, 'list', 'pods', ns.dev)) && canI(vic, 'list', 'pods', ns.prod));
    expect(await canI(vic, 'list', 'pods', ns.globex)).toBe(false);
    expect(await canI(vic, 'create', 'deployments', ns.dev)).toBe(false);
    await kubectlOk(['create', 'namespace', ns.later]);
    expect(await canI(vic, 'list', 'pods', ns.later)).toBe(false);
    await kubectlOk(['label', 'namespace', ns.later, `usher.dev/tenant=${tenant}`]);
    await until('vic may list pods in the newly labelled namespace', () => canI(vic, 'list', 'pods', ns.later));
    await kubectlOk(['label', 'namespace', ns.later, 'usher.dev/tenant-']);
    await until('vic no longer may there', async () => !(await canI(vic, 'list', 'pods', ns.later)));
  });

  it('attack 10: a tenant admin lists another tenant\u2019s namespace, or a namespace of no tenant, in a role; neither is bound, and the User and an Event say so', async () => {
    // Only what the chart's admin aggregates for invitations, in the dev namespace alone.
    const tenantAdmin = await actor('rbac-tenant-admin', ns.dev, [
      { apiGroups: ['usher.dev'], resources: ['userinvitations'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
    ]);
    const eve = address('eve');
    const doc = {
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'UserInvitation',
      metadata: { name: 'eve', namespace: ns.dev },
      spec: { email: eve, tenant, createUserDirectly: true, roles: [{ name: 'developer', namespaces: [ns.dev, ns.globex, 'default'] }] },
    };
    const created = await tenantAdmin.kubectl(['create', '-f', '-'], JSON.stringify(doc));
    expect(created.code, created.stderr).toBe(0);
    // The tenant admin cannot write RoleBindings there, nor label a namespace into the tenant.
    expect((await tenantAdmin.kubectl(['create', 'rolebinding', 'mine', '-n', ns.globex, '--clusterrole=edit', `--user=oidc:${eve}`])).code).not.toBe(0);
    expect((await tenantAdmin.kubectl(['label', 'namespace', ns.globex, `usher.dev/tenant=${tenant}`, '--overwrite'])).code).not.toBe(0);
    const u = await until('Bound False', async () => {
      const got = await user(eve);
      return bound(got)?.reason === 'NamespaceOutsideTenant' ? got : undefined;
    });
    expect(bound(u)?.message).toContain(`namespace ${ns.globex}, which belongs to tenant ${other}, not ${tenant}`);
    expect(bound(u)?.message).toContain(`namespace default, which belongs to no tenant, not ${tenant}`);
    expect(await canI(eve, 'create', 'deployments', ns.dev)).toBe(true);
    expect(await canI(eve, 'create', 'deployments', ns.globex)).toBe(false);
    expect(await canI(eve, 'create', 'deployments', 'default')).toBe(false);
    const events = await kubectlOk([
      'get',
      'events.events.k8s.io',
      '-A',
      '--field-selector',
      `regarding.name=${userNameFor(eve)}`,
      '-o',
      'jsonpath={.items[*].reason}',
    ]);
    expect(events.split(' ')).toContain('NamespaceOutsideTenant');
  });

  it('a group binding is shared by the group’s members and goes with the last of them', async () => {
    const [ann, bob] = [address('ann'), address('bob')];
    const group = `oidc:/tenants/${tenant}/developers`;
    await invite('ann', ann, { groups: ['developers'] });
    await invite('bob', bob, { groups: ['developers'] });
    const name = `usher:group:tenant:${tenant}:developers:view`;
    const owners = async (): Promise<string[]> => {
      const got = await kubectl(['get', 'rolebinding', name, '-n', ns.dev, '-o', 'jsonpath={.metadata.ownerReferences[*].name}']);
      return got.code === 0 ? got.stdout.split(' ').filter(Boolean).sort() : [];
    };
    await until('both own it', async () => (await owners()).length === 2);
    expect(await canI('someone-else@example.com', 'list', 'pods', ns.prod, [group])).toBe(true);
    expect(await canI('someone-else@example.com', 'list', 'pods', ns.globex, [group])).toBe(false);
    await kubectlOk(['delete', 'userinvitation', 'ann', '-n', ns.dev]);
    await until('only bob owns it', async () => (await owners()).join() === userNameFor(bob));
    await kubectlOk(['delete', 'userinvitation', 'bob', '-n', ns.dev]);
    await until('the group binding is gone', async () => (await kubectl(['get', 'rolebinding', name, '-n', ns.dev])).code !== 0);
    expect(await canI('someone-else@example.com', 'list', 'pods', ns.prod, [group])).toBe(false);
  });

  it('no escalation: a roleMap naming cluster-admin is refused by the API server, said so on the User, and the controller keeps working', async () => {
    const mallory = address('mallory');
    await invite('mallory', mallory, { roles: [{ name: 'root' }, { name: 'viewer', namespaces: [ns.prod] }] });
    const u = await until('BindForbidden', async () => {
      const got = await user(mallory);
      return bound(got)?.reason === 'BindForbidden' ? got : undefined;
    });
    console.log(`rbac: refused binding: ${bound(u)?.message ?? ''}`);
    expect(bound(u)?.message).toMatch(/cluster-admin.*is forbidden.*attempting to grant RBAC permissions not currently held/s);
    expect(u.status?.conditions?.find((c) => c.type === 'Stalled')?.status).toBe('True');
    expect((await kubectl(['get', 'rolebinding', `usher:${userNameFor(mallory)}:cluster-admin`, '-n', ns.dev])).code).not.toBe(0);
    expect(await canI(mallory, 'delete', 'namespaces', 'default')).toBe(false);
    // The other role of the same membership was bound, and the next invitation is handled as ever.
    expect(await canI(mallory, 'list', 'pods', ns.prod)).toBe(true);
    const next = address('next');
    await invite('next', next, { roles: [{ name: 'viewer', namespaces: [ns.dev] }] });
    await until('the next one is bound', () => canI(next, 'list', 'pods', ns.dev));
  });

  it('a compromised page (the accept identity, which may write Users) writes a membership no invitation granted: nothing is bound', async () => {
    const forged = address('forged');
    const name = userNameFor(forged);
    const doc = {
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'User',
      metadata: { name },
      spec: {
        email: forged,
        authentication: 'External',
        memberships: [
          { scope: 'Instance', roles: [{ name: 'developer' }] },
          // Naming a real, accepted invitation of someone else does not help either.
          { scope: 'Tenant', tenant, roles: [{ name: 'developer' }], invitation: { namespace: ns.dev, name: 'next', uid: 'not-its-uid' } },
        ],
      },
    };
    const created = await kubectl(['create', '-f', '-'], { as: 'accept', input: JSON.stringify(doc) });
    expect(created.code, created.stderr).toBe(0);
    const u = await until('Bound False', async () => {
      const got = await user(forged);
      return bound(got)?.reason === 'NotGranted' ? got : undefined;
    });
    expect(bound(u)?.message).toMatch(/Usher binds only what an accepted invitation grants/);
    expect(await canI(forged, 'create', 'deployments', ns.dev)).toBe(false);
    expect(await canI(forged, 'list', 'pods', 'kube-system')).toBe(false);
    expect((await kubectl(['get', 'clusterrolebinding', `usher:${name}:edit`])).code).not.toBe(0);
    await kubectlOk(['delete', 'users.usher.dev', name]);
  });
});

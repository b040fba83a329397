// The chart's ClusterRoles for people (templates/aggregated-roles.yaml), as
// people hold them: identities bound to nothing but Kubernetes' built-in admin,
// edit or view ClusterRole through a RoleBinding in one namespace, which pick up
// Usher's rules by aggregation. admin creates and reads invitations there and
// nowhere else; edit reads but cannot create, change or delete; view reads
// nothing while links are in status (the default) and reads invitations once
// linkDisclosure=Secret moves them out (docs/security.md, "The actors").
//
// The harness's kube-controller-manager runs the ClusterRole aggregation
// controller, as every real cluster does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actor, type Actor } from '../support/actors.ts';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';
import { CHART, helmOk, useHelm } from './support.ts';

const suffix = Math.random().toString(16).slice(2, 8);
// A release name of its own, so that its ClusterRoles are this file's alone.
const RELEASE = `people-${suffix}`;
const ROLES = ['admin', 'editor', 'viewer'].map((r) => `${RELEASE}-usher-invitation-${r}`);
const home = `team-${suffix}`;
const elsewhere = `other-${suffix}`;
useHelm();

const people: Partial<Record<'admin' | 'edit' | 'view', Actor>> = {};

async function applyRoles(sets: string[] = []): Promise<void> {
  const rendered = await helmOk([
    'template',
    RELEASE,
    CHART,
    '-n',
    'usher-system',
    ...sets.flatMap((s) => ['--set', s]),
    '--show-only',
    'templates/aggregated-roles.yaml',
  ]);
  await kubectlOk(['apply', '-f', '-'], { input: rendered });
}

/** The rules a built-in ClusterRole holds on invitations, as aggregated into it. */
async function invitationVerbs(builtIn: string): Promise<string[]> {
  const role = JSON.parse(await kubectlOk(['get', 'clusterrole', builtIn, '-o', 'json'])) as { rules?: { resources?: string[]; verbs: string[] }[] };
  return (role.rules ?? [])
    .filter((r) => r.resources?.includes('userinvitations'))
    .flatMap((r) => r.verbs)
    .sort();
}

/** A ServiceAccount in `home` that holds only the built-in `clusterRole` there (RoleBinding), and its kubectl. */
async function person(clusterRole: 'admin' | 'edit' | 'view'): Promise<Actor> {
  const name = `holds-${clusterRole}`;
  const who = await actor(name, home, []); // its own Role is empty
  await kubectlOk(['create', 'rolebinding', `${name}-builtin`, '-n', home, `--clusterrole=${clusterRole}`, `--serviceaccount=${home}:${name}`]);
  return who;
}

function invitation(name: string, namespace: string): string {
  return JSON.stringify({
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'UserInvitation',
    metadata: { name, namespace },
    spec: { email: `${name}@example.com`, tenant: 'acme', groups: ['data-engineers'] },
  });
}

/** Polls until `done` holds for the value (hooks cannot use expect.poll). */
async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean): Promise<void> {
  let last: T | undefined;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    last = await read();
    if (done(last)) return;
  }
  throw new Error(`${what}: still ${JSON.stringify(last)} after 30s`);
}

async function can(who: Actor, verb: string, namespace: string, subresource?: string): Promise<boolean> {
  const result = await who.kubectl([
    'auth',
    'can-i',
    verb,
    'userinvitations.usher.dev',
    '-n',
    namespace,
    ...(subresource ? [`--subresource=${subresource}`] : []),
  ]);
  return result.stdout.trim() === 'yes';
}

beforeAll(async () => {
  for (const ns of [home, elsewhere]) {
    await kubectlOk(['create', 'namespace', ns]);
    await kubectlOk(['label', 'namespace', ns, 'usher.dev/tenant=acme']);
  }
  await applyRoles();
  await until(
    'the built-in admin role aggregating invitations',
    () => invitationVerbs('admin'),
    (verbs) => verbs.includes('create'),
  );
  people.admin = await person('admin');
  people.edit = await person('edit');
  people.view = await person('view');
});

afterAll(async () => {
  await kubectl(['delete', 'clusterrole', ...ROLES, '--ignore-not-found']);
  // Leave the built-in roles as they were: wait until aggregation has taken the rules out again.
  await until(
    'the built-in admin role without invitations',
    () => invitationVerbs('admin'),
    (verbs) => verbs.length === 0,
  );
  await deleteNamespaces(home, elsewhere);
});

describe('the built-in roles, with the chart’s ClusterRoles aggregated into them', () => {
  it('admin in one namespace creates and reads invitations there, and nowhere else', async () => {
    const admin = people.admin as Actor;
    const created = await admin.kubectl(['create', '-f', '-'], invitation('by-admin', home));
    expect(created.code, created.stderr).toBe(0);
    const read = await admin.kubectl(['get', 'userinvitation', 'by-admin', '-n', home, '-o', 'jsonpath={.spec.email}']);
    expect(read.stdout).toBe('by-admin@example.com');
    expect((await admin.kubectl(['get', 'userinvitations', '-n', home, '-o', 'name'])).stdout).toContain('by-admin');
    expect((await admin.kubectl(['annotate', 'userinvitation', 'by-admin', '-n', home, 'usher.dev/reissue-requested-at=now'])).code).toBe(0);

    const outside = await admin.kubectl(['create', '-f', '-'], invitation('by-admin', elsewhere));
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toMatch(/forbidden/i);
    expect((await admin.kubectl(['get', 'userinvitations', '-n', elsewhere])).stderr).toMatch(/forbidden/i);
    expect((await admin.kubectl(['get', 'userinvitations', '-A'])).stderr).toMatch(/forbidden/i);
    // Status is Usher's to write, the link in it included.
    expect(await can(admin, 'get', home, 'status')).toBe(true);
    expect(await can(admin, 'update', home, 'status')).toBe(false);
    expect(await can(admin, 'patch', home, 'status')).toBe(false);
  });

  it('edit reads invitations but cannot create, change or delete one (that would grant or end access)', async () => {
    const edit = people.edit as Actor;
    await kubectlOk(['create', '-f', '-'], { input: invitation('for-edit', home) });
    expect((await edit.kubectl(['get', 'userinvitation', 'for-edit', '-n', home, '-o', 'name'])).code).toBe(0);
    const answers = Object.fromEntries(
      await Promise.all(['get', 'list', 'watch', 'delete', 'create', 'update', 'patch'].map(async (v) => [v, await can(edit, v, home)] as const)),
    );
    expect(answers).toEqual({ get: true, list: true, watch: true, delete: false, create: false, update: false, patch: false });
    expect((await edit.kubectl(['create', '-f', '-'], invitation('by-edit', home))).stderr).toMatch(/forbidden/i);
    expect((await edit.kubectl(['delete', 'userinvitation', 'for-edit', '-n', home])).stderr).toMatch(/forbidden/i);
    expect(await can(edit, 'get', elsewhere)).toBe(false);
  });

  it('view reads no invitation while links are in status, and reads them once linkDisclosure=Secret takes links out', async () => {
    const view = people.view as Actor;
    await kubectlOk(['create', '-f', '-'], { input: invitation('for-view', home) });
    expect(await invitationVerbs('view')).toEqual([]);
    expect((await view.kubectl(['get', 'userinvitation', 'for-view', '-n', home])).stderr).toMatch(/forbidden/i);

    await applyRoles(['config.security.invitations.linkDisclosure=Secret']);
    await expect.poll(() => invitationVerbs('view'), { timeout: 30_000, interval: 250 }).toEqual(['get', 'list', 'watch']);
    expect((await view.kubectl(['get', 'userinvitation', 'for-view', '-n', home, '-o', 'name'])).code).toBe(0);
    for (const verb of ['create', 'update', 'patch', 'delete']) expect(await can(view, verb, home), verb).toBe(false);
    expect(await can(view, 'get', elsewhere)).toBe(false);
    // And back: without linkDisclosure=Secret the label goes, and with it view's access.
    await applyRoles();
    await expect.poll(() => invitationVerbs('view'), { timeout: 30_000, interval: 250 }).toEqual([]);
  });
});

// The CRDs, proved against the real API server: the shared examples are
// accepted as they are, invalid objects are refused by the server itself with
// a message naming the field, and RBAC is really on.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { describe, expect, inject, it } from 'vitest';
import { kubectl, kubectlOk, useNamespace } from '../support/cluster.ts';

const root = join(import.meta.dirname, '..', '..');

/** The example invitations: ../shared/examples when present (CI, the team's checkout), else the repo's copy. */
function exampleInvitations(): { file: string; doc: Record<string, unknown> }[] {
  const shared = join(root, '..', 'shared', 'examples');
  const dir = existsSync(shared) ? shared : join(root, 'examples');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((file) => ({ file: join(dir, file), doc: load(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown> }))
    .filter(({ doc }) => doc.kind === 'UserInvitation');
}

function invitation(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', metadata: { name }, spec });
}

describe('UserInvitation CRD', () => {
  const ns = useNamespace('crds');

  it('applies idempotently with kubectl and is established', async () => {
    const out = await kubectlOk(['apply', '--server-side', '-f', join(root, 'crds')]);
    expect(out).toContain('userinvitations.usher.dev');
    expect(out).toContain('users.usher.dev');
    const established = await kubectlOk(['get', 'crd', 'userinvitations.usher.dev', '-o', "jsonpath={.status.conditions[?(@.type=='Established')].status}"]);
    expect(established).toBe('True');
  });

  it('accepts every shared example as it is and reads it back', async () => {
    const examples = exampleInvitations();
    expect(examples.length).toBeGreaterThanOrEqual(4);
    for (const { file, doc } of examples) {
      await kubectlOk(['apply', '-n', ns(), '-f', file]);
      const name = (doc.metadata as { name: string }).name;
      const stored = JSON.parse(await kubectlOk(['get', 'userinvitation', name, '-n', ns(), '-o', 'json'])) as { spec: Record<string, unknown> };
      expect(stored.spec.email).toBe((doc.spec as { email: string }).email);
      // Defaults are applied by the server.
      expect(stored.spec.scope).toBe((doc.spec as { scope?: string }).scope ?? 'Tenant');
      expect(stored.spec.createUserDirectly).toBe((doc.spec as { createUserDirectly?: boolean }).createUserDirectly ?? false);
    }
    const table = await kubectlOk(['get', 'uinv', '-n', ns()]);
    expect(table.split('\n')[0]).toMatch(/NAME\s+EMAIL\s+TENANT\s+PHASE\s+EXPIRES\s+AGE/);
    expect(table).toContain('jane.doe@example.com');
  });

  it.each([
    ['a malformed email', { email: 'not-an-email', tenant: 'acme' }, 'spec.email', 'must be a single email address'],
    ['an email with a line break', { email: 'a@example.com\r\nBcc: x@evil.example', tenant: 'acme' }, 'spec.email', 'must be a single email address'],
    ['two addresses', { email: 'a@example.com,b@example.com', tenant: 'acme' }, 'spec.email', 'must be a single email address'],
    ['a display name', { email: 'Jane <jane@example.com>', tenant: 'acme' }, 'spec.email', 'must be a single email address'],
    ['tenant scope without a tenant', { email: 'a@example.com' }, 'spec.tenant', 'required when scope is Tenant'],
    ['instance scope with a tenant', { email: 'a@example.com', scope: 'Instance', tenant: 'acme' }, 'spec.tenant', 'must not be set when scope is Instance'],
    ['an unknown scope', { email: 'a@example.com', scope: 'Galaxy' }, 'spec.scope', 'Unsupported value'],
    ['a malformed expireAfter', { email: 'a@example.com', tenant: 'acme', expireAfter: '30 days' }, 'spec.expireAfter', 'should match'],
    ['an empty expireAfter duration', { email: 'a@example.com', tenant: 'acme', expireAfter: 'P' }, 'spec.expireAfter', 'ISO-8601 duration'],
    ['a role without a name', { email: 'a@example.com', tenant: 'acme', roles: [{ namespaces: ['x'] }] }, 'spec.roles[0].name', 'Required value'],
    [
      'a bad platform namespace',
      { email: 'a@example.com', tenant: 'acme', roles: [{ name: 'dev', namespaces: ['Company Team'] }] },
      'spec.roles[0].namespaces[0]',
      'should match',
    ],
  ])('refuses %s, naming the field', async (_what, spec, field, reason) => {
    const result = await kubectl(['create', '-n', ns(), '-f', '-'], { input: invitation('invalid', spec) });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('is invalid');
    expect(result.stderr).toContain(field);
    expect(result.stderr).toContain(reason);
  });

  it('fixes createUserDirectly once the invitation is UserCreated (it would otherwise fall back to Pending, where the address may change)', async () => {
    await kubectlOk(['create', '-n', ns(), '-f', '-'], {
      input: invitation('direct', { email: 'sam@example.com', tenant: 'acme', groups: ['sre'], createUserDirectly: true }),
    });
    await kubectlOk([
      'patch',
      'userinvitation',
      'direct',
      '-n',
      ns(),
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { phase: 'UserCreated' } }),
    ]);
    const result = await kubectl([
      'patch',
      'userinvitation',
      'direct',
      '-n',
      ns(),
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { createUserDirectly: false } }),
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('spec.createUserDirectly: Forbidden: cannot change once the invitation is UserCreated');
    // Other edits still go through (the groups follow onto the User).
    await kubectlOk(['patch', 'userinvitation', 'direct', '-n', ns(), '--type=merge', '-p', JSON.stringify({ spec: { groups: ['sre', 'oncall'] } })]);
  });
});

describe('the test control plane', () => {
  const ns = useNamespace('harness');

  it('has RBAC on: an authenticated user with no bindings is refused', async () => {
    if (!inject('localControlPlane')) return; // an existing cluster's user may hold any rights
    const result = await kubectl(['get', 'userinvitations', '-n', ns()], { as: 'unprivileged' });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/forbidden.*usher-test-user/i);
    const allowed = await kubectlOk(['auth', 'can-i', 'create', 'userinvitations', '-n', ns()]);
    expect(allowed.trim()).toBe('yes');
  });

  it('collects garbage: a dependent goes when its owner is deleted', async () => {
    const owner = JSON.parse(await kubectlOk(['create', 'configmap', 'owner', '-n', ns(), '-o', 'json'])) as { metadata: { uid: string } };
    const dependent = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'dependent', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid }] },
    };
    await kubectlOk(['create', '-n', ns(), '-f', '-'], { input: JSON.stringify(dependent) });
    await kubectlOk(['delete', 'configmap', 'owner', '-n', ns()]);
    const gone = await kubectl(['wait', '--for=delete', 'configmap/dependent', '-n', ns(), '--timeout=30s']);
    expect(gone.code, gone.stderr).toBe(0);
  });
});

// The UserInvitation CRD's selectableFields and printer columns on the real API
// server: one person's invitations across namespaces by field selector (CRD
// field selectors are GA since Kubernetes 1.32; the harness runs 1.36), for
// lists and watches alike; by status.phase too; and the READY and MESSAGE columns.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';

const suffix = Math.random().toString(16).slice(2, 8);
const first = `people-a-${suffix}`;
const second = `people-b-${suffix}`;
const jane = `jane+${suffix}@example.com`;

function invitation(name: string, namespace: string, email: string): string {
  return JSON.stringify({
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'UserInvitation',
    metadata: { name, namespace },
    spec: { email, tenant: 'acme', groups: ['g'] },
  });
}

beforeAll(async () => {
  for (const ns of [first, second]) await kubectlOk(['create', 'namespace', ns]);
  await kubectlOk(['create', '-f', '-'], { input: invitation('jane', first, jane) });
  await kubectlOk(['create', '-f', '-'], { input: invitation('jane-again', second, jane) });
  await kubectlOk(['create', '-f', '-'], { input: invitation('sam', first, `sam+${suffix}@example.com`) });
});

afterAll(async () => {
  await deleteNamespaces(first, second);
});

describe('selecting invitations by spec.email', () => {
  it('kubectl get -A --field-selector spec.email=… finds exactly that person’s invitations', async () => {
    const found = await kubectlOk([
      'get',
      'userinvitations',
      '-A',
      '--field-selector',
      `spec.email=${jane}`,
      '-o',
      'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}',
    ]);
    expect(found.trim().split(' ').sort()).toEqual([`${first}/jane`, `${second}/jane-again`]);
    const others = await kubectlOk(['get', 'userinvitations', '-n', first, '--field-selector', `spec.email!=${jane}`, '-o', 'name']);
    expect(others.trim()).toBe('userinvitation.usher.dev/sam');
  });

  it('and by status.phase: every invitation in one phase', async () => {
    const status = { phase: 'Failed' };
    await kubectlOk(['patch', 'userinvitation', 'jane-again', '-n', second, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
    const failed = await kubectlOk(['get', 'userinvitations', '-A', '--field-selector', `status.phase=Failed,spec.email=${jane}`, '-o', 'name']);
    expect(failed.trim()).toBe('userinvitation.usher.dev/jane-again');
  });

  it('refuses a field that is not selectable', async () => {
    const result = await kubectl(['get', 'userinvitations', '-A', '--field-selector', 'spec.tenant=acme']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/field label not supported: spec\.tenant/);
  });

  it('selects in a watch too: only that person’s invitations arrive', async () => {
    const kubeconfig = inject('kubeconfigs').admin;
    const watch = spawn('kubectl', [
      '--kubeconfig',
      kubeconfig,
      'get',
      'userinvitations',
      '-A',
      '--watch',
      '-o',
      'name',
      '--field-selector',
      `spec.email=${jane}`,
    ]);
    let out = '';
    watch.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    try {
      await expect.poll(() => out.split('\n').filter(Boolean).length, { timeout: 10_000 }).toBe(2);
      await kubectlOk(['create', '-f', '-'], { input: invitation('sam-again', second, `sam+${suffix}@example.com`) });
      await kubectlOk(['create', '-f', '-'], { input: invitation('jane-third', second, jane) });
      await expect.poll(() => out, { timeout: 10_000 }).toContain('jane-third');
      expect(out).not.toContain('sam');
    } finally {
      watch.kill();
    }
  });
});

describe('printer columns', () => {
  it('shows READY after AGE, and the Ready message with -o wide', async () => {
    const status = {
      phase: 'Failed',
      conditions: [
        { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'spec.expireAfter: too long.', lastTransitionTime: '2026-12-01T12:00:00Z' },
      ],
    };
    await kubectlOk(['patch', 'userinvitation', 'sam', '-n', first, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
    const table = await kubectlOk(['get', 'userinvitation', 'sam', '-n', first]);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+EMAIL\s+TENANT\s+PHASE\s+EXPIRES\s+AGE\s+READY$/);
    expect(table.split('\n')[1]).toMatch(/\sFailed\s.*\sFalse$/);
    const wide = await kubectlOk(['get', 'userinvitation', 'sam', '-n', first, '-o', 'wide']);
    expect(wide.split('\n')[0]).toMatch(/\sREADY\s+MESSAGE$/);
    expect(wide).toContain('spec.expireAfter: too long.');
  });
});

// The watches against the real API server: a User deleted or changed behind a
// UserCreated invitation is noticed at once (the User informer enqueues the
// invitations it has memberships from), not at the next resync, which is an
// hour away here.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { User, UserInvitation } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import { Controller } from '../../src/controller/controller.ts';
import { userNameFor } from '../../src/invitation/naming.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { kubectl, kubectlOk, useNamespace } from '../support/cluster.ts';

const suffix = Math.random().toString(16).slice(2, 8);
const email = `watched-${suffix}@example.com`;
const userName = userNameFor(email);

async function getUser(): Promise<User | undefined> {
  const result = await kubectl(['get', 'users.usher.dev', userName, '-o', 'json']);
  return result.code === 0 ? (JSON.parse(result.stdout) as User) : undefined;
}

async function phaseOf(ns: string, name: string): Promise<string | undefined> {
  return (JSON.parse(await kubectlOk(['get', 'userinvitation', name, '-n', ns, '-o', 'json'])) as UserInvitation).status?.phase;
}

describe('the watches', () => {
  const namespace = useNamespace('watches');
  let controller: Controller;

  beforeAll(async () => {
    await kubectlOk(['label', 'namespace', namespace(), 'usher.dev/tenant=acme']);
    const config = parseConfig(`usher:\n  baseUrl: http://usher.test\n  controller:\n    workers: 2\n    resyncPeriod: PT1H\n`, {
      source: 'watches.yaml',
      env: {},
    });
    controller = new Controller({
      kubeConfig: loadKubeConfig(inject('kubeconfigs').operator),
      config,
      log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    });
    await controller.start();
    const invitation = {
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'UserInvitation',
      metadata: { name: 'direct', namespace: namespace() },
      spec: { email, tenant: 'acme', groups: ['analysts'], createUserDirectly: true },
    };
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(invitation) });
    await kubectlOk(['wait', '--for=jsonpath={.status.phase}=UserCreated', 'userinvitation/direct', '-n', namespace(), '--timeout=30s']);
  });

  afterAll(async () => {
    await controller.stop();
    await kubectl(['delete', 'users.usher.dev', userName, '--ignore-not-found']);
  });

  it('re-creates at once the User deleted behind a UserCreated invitation', async () => {
    const before = await getUser();
    expect(before?.spec.memberships?.[0]?.invitation).toMatchObject({ namespace: namespace(), name: 'direct' });
    await kubectlOk(['delete', 'users.usher.dev', userName, '--wait=true']);
    const deletedAt = performance.now();
    await expect.poll(async () => (await getUser())?.metadata.uid, { timeout: 5000, interval: 100 }).not.toBeOneOf([undefined, before?.metadata.uid]);
    const after = await getUser();
    expect(performance.now() - deletedAt).toBeLessThan(5000);
    expect(after?.spec).toMatchObject({ email, authentication: 'External' });
    expect(after?.spec.memberships).toHaveLength(1);
    expect(after?.spec.memberships?.[0]).toMatchObject({
      scope: 'Tenant',
      tenant: 'acme',
      groups: ['analysts'],
      invitation: { namespace: namespace(), name: 'direct' },
    });
    expect(await phaseOf(namespace(), 'direct')).toBe('UserCreated');
  });

  it('gives the membership back at once when the User is changed to drop it', async () => {
    await kubectlOk(['patch', 'users.usher.dev', userName, '--type=merge', '-p', JSON.stringify({ spec: { memberships: [] } })]);
    await expect.poll(async () => (await getUser())?.spec.memberships?.map((m) => m.invitation?.name), { timeout: 5000, interval: 100 }).toEqual(['direct']);
    expect(await phaseOf(namespace(), 'direct')).toBe('UserCreated');
  });
});

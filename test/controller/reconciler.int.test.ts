// The reconciler end to end against the real API server: the shared examples
// reach their phases, expiry is on time, reissue and deletion revoke links,
// direct creation makes Users, forbidden tenants are refused, and a restart
// with everything settled writes nothing.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { User, UserInvitation } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import { Controller } from '../../src/controller/controller.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';
import { readFileSync } from 'node:fs';
import { userNameFor } from '../../src/invitation/naming.ts';

const root = join(import.meta.dirname, '..', '..');
const suffix = Math.random().toString(16).slice(2, 8);
const tenantNs = `acme-${suffix}`;
const otherNs = `globex-${suffix}`;
const adminNs = `platform-${suffix}`;

function startController(): Controller {
  const config = parseConfig(`usher:\n  baseUrl: http://usher.test\n  tenancy:\n    instanceNamespaces: [${adminNs}]\n  controller:\n    workers: 4\n`, {
    source: 'test-config.yaml',
    env: {},
  });
  return new Controller({ kubeConfig: loadKubeConfig(inject('kubeconfigs').operator), config, log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }) });
}

async function getInvitation(ns: string, name: string): Promise<UserInvitation> {
  return JSON.parse(await kubectlOk(['get', 'userinvitation', name, '-n', ns, '-o', 'json'])) as UserInvitation;
}

async function waitForPhase(ns: string, name: string, phase: string, timeout = '30s'): Promise<UserInvitation> {
  const result = await kubectl(['wait', `--for=jsonpath={.status.phase}=${phase}`, `userinvitation/${name}`, '-n', ns, `--timeout=${timeout}`]);
  expect(result.code, `${name} did not reach ${phase}: ${result.stderr} ${JSON.stringify((await getInvitation(ns, name)).status)}`).toBe(0);
  return getInvitation(ns, name);
}

/** The records of the invitation with this uid: in Usher's namespace, never the invitation's. */
async function recordsOf(
  uid: string,
): Promise<{ metadata: { name: string; namespace: string; ownerReferences?: { uid: string }[] }; data: Record<string, string> }[]> {
  const list = JSON.parse(await kubectlOk(['get', 'secrets', '-A', '-l', `usher.dev/invitation-uid=${uid}`, '-o', 'json'])) as { items: [] };
  return list.items;
}

function applyExample(file: string, ns: string, mutate?: (doc: UserInvitation) => void): Promise<string> {
  const doc = load(readFileSync(join(root, 'examples', file), 'utf8')) as UserInvitation;
  mutate?.(doc);
  return kubectlOk(['apply', '-n', ns, '-f', '-'], { input: JSON.stringify(doc) });
}

function recordPayload(secret: { data: Record<string, string> }): { verifierHash: string; selector: string; expiresAt: string; issuance: number } {
  return JSON.parse(Buffer.from(secret.data['record.json'] ?? '', 'base64').toString('utf8')) as {
    verifierHash: string;
    selector: string;
    expiresAt: string;
    issuance: number;
  };
}

describe('the UserInvitation controller', () => {
  let controller: Controller;

  beforeAll(async () => {
    for (const [ns, tenant] of [
      [tenantNs, 'acme'],
      [otherNs, 'globex'],
      [adminNs, undefined],
    ] as const) {
      await kubectlOk(['create', 'namespace', ns]);
      if (tenant) await kubectlOk(['label', 'namespace', ns, `usher.dev/tenant=${tenant}`]);
    }
    controller = startController();
    await controller.start();
  });

  afterAll(async () => {
    await controller.stop();
    await deleteNamespaces(tenantNs, otherNs, adminNs);
  });

  it('issues a link for each example and shows it at a glance', async () => {
    await applyExample('tenant-developer.yaml', tenantNs);
    await applyExample('long-expiry.yaml', tenantNs);
    await applyExample('instance-admin.yaml', adminNs);
    const jane = await waitForPhase(tenantNs, 'jane-doe', 'Pending');
    expect(jane.status?.link).toMatch(/^http:\/\/usher\.test\/accept\/[0-9a-f]{32}\.[A-Za-z0-9_-]{43}$/);
    expect(jane.status?.tenant).toBe('acme');
    expect(jane.status?.observedGeneration).toBe(jane.metadata.generation);
    const ready = jane.status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'True', reason: 'LinkReady' });
    expect(ready?.message).toContain('share the link in status.link');
    // Default lifetime: 7 days from issuance.
    expect(Date.parse(jane.status?.expiresAt ?? '') - Date.parse(jane.status?.issuedAt ?? '')).toBe(7 * 86_400_000);

    const contractor = await waitForPhase(tenantNs, 'contractor', 'Pending');
    expect(Date.parse(contractor.status?.expiresAt ?? '') - Date.parse(contractor.status?.issuedAt ?? '')).toBe(30 * 86_400_000);
    const ops = await waitForPhase(adminNs, 'ops-lead', 'Pending');
    expect(ops.status?.tenant).toBe('*');

    const table = await kubectlOk(['get', 'userinvitations', '-n', tenantNs]);
    expect(table).toMatch(/jane-doe\s+jane\.doe@example\.com\s+acme\s+Pending\s+\d{4}-\d\d-\d\dT/);
  });

  it('keeps only a hash of the token, in a record in Usher’s namespace bound to the invitation', async () => {
    const jane = await getInvitation(tenantNs, 'jane-doe');
    const [selector = '', verifier = ''] = (jane.status?.link ?? '').split('/').pop()?.split('.') ?? [];
    const records = await recordsOf(jane.metadata.uid ?? '');
    expect(records).toHaveLength(1);
    const [record] = records;
    expect(record?.metadata.namespace).toBe('usher-system');
    expect(record?.metadata.ownerReferences).toBeUndefined();
    const payload = recordPayload(record ?? { data: {} }) as ReturnType<typeof recordPayload> & {
      invitationNamespace?: string;
      invitationName?: string;
      invitationUid?: string;
    };
    expect(payload).toMatchObject({ invitationNamespace: tenantNs, invitationName: 'jane-doe', invitationUid: jane.metadata.uid });
    expect(payload.selector).toBe(selector);
    expect(payload.verifierHash).toBe(createHash('sha256').update(verifier).digest('hex'));
    expect(JSON.stringify(record)).not.toContain(verifier);
  });

  it('refuses to invite into another namespace tenant, and issues nothing', async () => {
    await applyExample('tenant-developer.yaml', otherNs); // tenant acme, from globex's namespace
    const refused = await waitForPhase(otherNs, 'jane-doe', 'Failed');
    const stalled = refused.status?.conditions?.find((c) => c.type === 'Stalled');
    expect(stalled).toMatchObject({ status: 'True', reason: 'Forbidden' });
    expect(stalled?.message).toContain(`belongs to tenant globex`);
    expect(refused.status?.link).toBeUndefined();
    expect(await recordsOf(refused.metadata.uid ?? '')).toHaveLength(0);
    const events = await kubectlOk([
      'get',
      'events.events.k8s.io',
      '-n',
      otherNs,
      '--field-selector',
      'regarding.name=jane-doe',
      '-o',
      'jsonpath={.items[*].reason}',
    ]);
    expect(events).toContain('Forbidden');
  });

  it('turns Expired within a second of expiresAt', async () => {
    await applyExample('tenant-developer.yaml', tenantNs, (doc) => {
      doc.metadata.name = 'short-lived';
      doc.spec.expireAfter = 'PT4S';
    });
    const pending = await waitForPhase(tenantNs, 'short-lived', 'Pending');
    const expiresAt = Date.parse(pending.status?.expiresAt ?? '');
    const expired = await waitForPhase(tenantNs, 'short-lived', 'Expired', '20s');
    const turnedAt = Date.parse(expired.status?.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime ?? '');
    // lastTransitionTime has one-second resolution, so "within a second" is <= 1000 ms here.
    expect(turnedAt - expiresAt).toBeGreaterThanOrEqual(0);
    expect(turnedAt - expiresAt).toBeLessThanOrEqual(1000);
    expect(expired.status?.link).toBeUndefined();
    const stalled = expired.status?.conditions?.find((c) => c.type === 'Stalled');
    expect(stalled?.message).toContain('kubectl annotate userinvitation short-lived');
  });

  it('reissues on a new annotation value: new link, next issuance, old record gone', async () => {
    const before = await getInvitation(tenantNs, 'short-lived');
    const [oldRecord] = await recordsOf(before.metadata.uid ?? '');
    // A longer lifetime first (so the reissued link outlives this file), then the reissue request.
    await kubectlOk(['patch', 'userinvitation', 'short-lived', '-n', tenantNs, '--type=merge', '-p', '{"spec":{"expireAfter":"P1D"}}']);
    await kubectlOk(['annotate', 'userinvitation', 'short-lived', '-n', tenantNs, '--overwrite', 'usher.dev/reissue-requested-at=2026-11-25T12:00:00Z']);
    const reissued = await waitForPhase(tenantNs, 'short-lived', 'Pending');
    expect(reissued.status?.lastHandledReissueAt).toBe('2026-11-25T12:00:00Z');
    expect(reissued.status?.issuance).toBe(2);
    expect(reissued.status?.link).toBeDefined();
    expect(reissued.status?.link).not.toBe(before.status?.link);
    const records = await recordsOf(before.metadata.uid ?? '');
    expect(records.map((r) => r.metadata.name)).not.toContain(oldRecord?.metadata.name);
    expect(records.map((r) => recordPayload(r).issuance)).toEqual([2]);
    expect(Date.parse(reissued.status?.expiresAt ?? '') - Date.parse(reissued.status?.issuedAt ?? '')).toBe(86_400_000);
  });

  it('revokes on deletion: the controller deletes the record with the invitation', async () => {
    const contractor = await getInvitation(tenantNs, 'contractor');
    expect(await recordsOf(contractor.metadata.uid ?? '')).toHaveLength(1);
    await kubectlOk(['delete', 'userinvitation', 'contractor', '-n', tenantNs]);
    await expect.poll(async () => (await recordsOf(contractor.metadata.uid ?? '')).length, { timeout: 20_000 }).toBe(0);
  });

  it('deletes at start the records of invitations deleted while no controller ran', async () => {
    await applyExample('tenant-developer.yaml', tenantNs, (doc) => {
      doc.metadata.name = 'deleted-while-down';
    });
    const pending = await waitForPhase(tenantNs, 'deleted-while-down', 'Pending');
    expect(pending.metadata.finalizers).toEqual(['usher.dev/membership']);
    await controller.stop();
    // With no controller, the deletion waits on Usher's finalizer, until it is taken off by hand (the README's escape).
    await kubectlOk(['delete', 'userinvitation', 'deleted-while-down', '-n', tenantNs, '--wait=false']);
    expect((await getInvitation(tenantNs, 'deleted-while-down')).metadata.deletionTimestamp).toBeDefined();
    await kubectlOk(['patch', 'userinvitation', 'deleted-while-down', '-n', tenantNs, '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
    expect((await kubectl(['get', 'userinvitation', 'deleted-while-down', '-n', tenantNs])).code).not.toBe(0);
    expect(await recordsOf(pending.metadata.uid ?? '')).toHaveLength(1);
    controller = startController();
    await controller.start();
    expect(await recordsOf(pending.metadata.uid ?? '')).toHaveLength(0);
  });

  it('creates the User directly, and adds a second invitation to the same User', async () => {
    await applyExample('sso-direct.yaml', tenantNs);
    const done = await waitForPhase(tenantNs, 'sam-sso', 'UserCreated');
    const userName = userNameFor('sam@example.com');
    expect(done.status?.user).toBe(userName);
    expect(done.status?.link).toBeUndefined();
    await applyExample('sso-direct.yaml', tenantNs, (doc) => {
      doc.metadata.name = 'sam-sso-again';
      doc.spec.email = 'SAM@Example.com';
      doc.spec.groups = ['auditors'];
    });
    await waitForPhase(tenantNs, 'sam-sso-again', 'UserCreated');
    const user = JSON.parse(await kubectlOk(['get', 'users.usher.dev', userName, '-o', 'json'])) as User;
    expect(user.spec.email).toBe('sam@example.com');
    expect(user.spec.authentication).toBe('External');
    expect(user.spec.memberships?.map((m) => m.groups)).toEqual([['analysts'], ['auditors']]);
    expect(user.spec.memberships?.[0]).toMatchObject({ scope: 'Tenant', tenant: 'acme', invitation: { namespace: tenantNs, name: 'sam-sso' } });
  });

  it('writes nothing when restarted with everything settled', async () => {
    const snapshot = async (): Promise<string> => {
      const [invitations, secrets, users, events] = await Promise.all([
        kubectlOk(['get', 'userinvitations', '-A', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}']),
        kubectlOk([
          'get',
          'secrets',
          '-A',
          '-l',
          'app.kubernetes.io/managed-by=usher',
          '-o',
          'jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}',
        ]),
        kubectlOk(['get', 'users.usher.dev', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}']),
        kubectlOk(['get', 'events.events.k8s.io', '-A', '-o', 'jsonpath={.items[*].metadata.name}']),
      ]);
      return [invitations, secrets, users, String(events.split(' ').length)].join('\n');
    };
    // Let everything in flight settle first.
    await expect.poll(() => controller.queue.len(), { timeout: 10_000 }).toBe(0);
    await new Promise((r) => setTimeout(r, 1000));
    const before = await snapshot();
    await controller.stop();
    controller = startController();
    await controller.start();
    await expect.poll(() => controller.stats.reconciles, { timeout: 10_000 }).toBeGreaterThanOrEqual(6);
    await new Promise((r) => setTimeout(r, 2000));
    expect(await snapshot()).toBe(before);
    expect(controller.stats.errors).toBe(0);
  });
});

describe('usher start-up', () => {
  it('stops on an invalid config with a message naming the key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'usher-config-'));
    const path = join(dir, 'usher.yaml');
    writeFileSync(path, 'usher:\n  security:\n    invitations:\n      expireAfter: 30 days\n');
    const result = await promisify(execFile)(join(root, 'node_modules', '.bin', 'node'), [
      join(root, 'src', 'main.ts'),
      '--config',
      path,
      '--kubeconfig',
      inject('kubeconfigs').admin,
    ]).catch((err: unknown) => err as { code: number; stderr: string });
    expect('code' in result ? result.code : 0).toBe(2);
    expect(result.stderr).toContain('usher.security.invitations.expireAfter');
    expect(result.stderr).toContain('30 days');
  });
});

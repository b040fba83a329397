// LeaderElector against the real API server: one leader among two, takeover
// after the leader is killed (and how long it takes), fast handover on a
// graceful stop, and the leader stopping at once when its Lease is taken or
// when it cannot renew within renewDeadline.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { DEFAULT_TIMINGS, LeaderElector, type LeaderElectorOptions } from '../../src/runtime/leader-election.ts';
import { kubectlOk, useNamespace } from '../support/cluster.ts';

const ns = useNamespace('leader');
let admin: KubeConfig;
let leases: CoordinationV1Api;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(() => {
  admin = loadKubeConfig(inject('kubeconfigs').admin);
  leases = admin.makeApiClient(CoordinationV1Api);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Short timings for the tests that do not measure the defaults: same ratios as controller-runtime's. */
const FAST = { leaseDurationMs: 6000, renewDeadlineMs: 4000, retryPeriodMs: 1000 };

interface Candidate {
  elector: LeaderElector;
  identity: string;
  /** performance.now() of each onStartedLeading / onStoppedLeading. */
  startedAt: number[];
  stoppedAt: number[];
  signals: AbortSignal[];
}

let leaseCount = 0;
const newLeaseName = (): string => `usher-leader-${String(++leaseCount)}`;

function candidate(lease: string, identity: string, extra: Partial<LeaderElectorOptions> = {}): Candidate {
  const c: Candidate = { identity, startedAt: [], stoppedAt: [], signals: [], elector: undefined as unknown as LeaderElector };
  c.elector = new LeaderElector({
    kubeConfig: admin,
    namespace: ns(),
    name: lease,
    identity,
    onStartedLeading: (signal) => {
      c.startedAt.push(performance.now());
      c.signals.push(signal);
    },
    onStoppedLeading: () => {
      c.stoppedAt.push(performance.now());
    },
    ...extra,
  });
  void c.elector.run();
  cleanups.push(() => c.elector.stop());
  return c;
}

async function until(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await predicate()) return performance.now();
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const readLease = (name: string): Promise<V1Lease> => leases.readNamespacedLease({ namespace: ns(), name });
const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
/** Acquire attempts come every retryPeriod plus up to 20 % jitter. */
const maxRetryGap = (retryPeriodMs: number): number => retryPeriodMs * 1.2;

describe('LeaderElector against the API server', () => {
  it('lets exactly one of two candidates lead, and records it in the Lease', async () => {
    const lease = newLeaseName();
    const a = candidate(lease, 'pod-a');
    const b = candidate(lease, 'pod-b');
    await until('a leader', () => a.elector.isLeader() || b.elector.isLeader(), 10_000);
    // Several renew periods later, still exactly one, and the other never led.
    await new Promise((r) => setTimeout(r, 2.5 * DEFAULT_TIMINGS.retryPeriodMs));
    const [leader, standby] = a.elector.isLeader() ? [a, b] : [b, a];
    expect(leader.elector.isLeader()).toBe(true);
    expect(standby.elector.isLeader()).toBe(false);
    expect(standby.startedAt).toHaveLength(0);
    expect(leader.startedAt).toHaveLength(1);
    expect(standby.elector.leader()).toBe(leader.identity);

    const stored = await readLease(lease);
    expect(stored.spec?.holderIdentity).toBe(leader.identity);
    expect(stored.spec?.leaseDurationSeconds).toBe(15);
    expect(stored.spec?.leaseTransitions).toBe(0);
    // MicroTime on the wire: six fractional digits, as client-go writes them.
    const raw = JSON.parse(await kubectlOk(['get', 'lease', lease, '-n', ns(), '-o', 'json'])) as { spec: { renewTime: string; acquireTime: string } };
    expect(raw.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(raw.spec.acquireTime).toMatch(/\.\d{6}Z$/);
    // Renewed: renewTime moves on while acquireTime stays.
    expect(Date.parse(raw.spec.renewTime)).toBeGreaterThan(Date.parse(raw.spec.acquireTime));
  });

  it('hands over within one retry period when the leader stops gracefully (the Lease is released)', async () => {
    const lease = newLeaseName();
    const a = candidate(lease, 'pod-a');
    await until('pod-a to lead', () => a.elector.isLeader(), 10_000);
    const b = candidate(lease, 'pod-b');
    await until('pod-b to see pod-a hold the lease', () => b.elector.leader() === 'pod-a', 10_000);

    const stopping = performance.now();
    await a.elector.stop();
    expect(a.signals[0]?.aborted).toBe(true);
    expect(a.stoppedAt).toHaveLength(1);
    const tookOver = await until('pod-b to take over', () => b.elector.isLeader(), DEFAULT_TIMINGS.leaseDurationMs);
    const handover = tookOver - stopping;
    process.stdout.write(`leader election: takeover after a graceful stop (lease released) took ${seconds(handover)}\n`);
    // Without the release pod-b would wait out the 15 s lease; with it, its next attempt wins.
    expect(handover).toBeLessThan(maxRetryGap(DEFAULT_TIMINGS.retryPeriodMs) + 1000);
    const stored = await readLease(lease);
    expect(stored.spec?.holderIdentity).toBe('pod-b');
    expect(stored.spec?.leaseDurationSeconds).toBe(15);
    expect(stored.spec?.leaseTransitions).toBe(1);
  });

  it('takes over from a killed leader once the lease duration has passed, and no sooner', async () => {
    const lease = newLeaseName();
    const child = spawnLeader(lease, 'pod-killed');
    cleanups.push(() => {
      child.process.kill('SIGKILL');
    });
    await until('the child process to lead', () => child.events.includes('started'), 15_000);
    const b = candidate(lease, 'pod-b');
    await until('pod-b to see the child hold the lease', () => b.elector.leader() === 'pod-killed', 10_000);
    // Let pod-b watch a few renewals, as a standby in a running Deployment would have.
    await new Promise((r) => setTimeout(r, 3000));
    expect(b.elector.isLeader()).toBe(false);

    const killed = performance.now();
    child.process.kill('SIGKILL');
    const tookOver = await until('pod-b to take over', () => b.elector.isLeader(), DEFAULT_TIMINGS.leaseDurationMs + 10_000);
    const takeover = tookOver - killed;
    process.stdout.write(
      `leader election: takeover after SIGKILL of the leader took ${seconds(takeover)} (leaseDuration ${seconds(DEFAULT_TIMINGS.leaseDurationMs)}, retryPeriod ${seconds(DEFAULT_TIMINGS.retryPeriodMs)})\n`,
    );
    // The last renewal came at most one retry period before the kill, and pod-b saw it at most one
    // (jittered) attempt later; it then waits leaseDuration and wins at its next attempt.
    const { leaseDurationMs, retryPeriodMs } = DEFAULT_TIMINGS;
    expect(takeover).toBeGreaterThan(leaseDurationMs - retryPeriodMs - 500);
    expect(takeover).toBeLessThan(leaseDurationMs + 2 * maxRetryGap(retryPeriodMs) + 1000);
    const stored = await readLease(lease);
    expect(stored.spec?.holderIdentity).toBe('pod-b');
    expect(stored.spec?.leaseTransitions).toBe(1);
    expect(Date.parse(String(stored.spec?.acquireTime))).toBeGreaterThan(Date.now() - 10_000);
  });

  it('stops leading at once when someone else overwrites the Lease, and leaves it to them', async () => {
    const lease = newLeaseName();
    const a = candidate(lease, 'pod-a', FAST);
    await until('pod-a to lead', () => a.elector.isLeader(), 10_000);

    const current = await readLease(lease);
    const now = new V1MicroTime();
    await leases.replaceNamespacedLease({
      namespace: ns(),
      name: lease,
      body: {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: current.metadata,
        spec: { holderIdentity: 'intruder', leaseDurationSeconds: 15, acquireTime: now, renewTime: now, leaseTransitions: 1 },
      },
    });
    const overwritten = performance.now();
    const stopped = await until('pod-a to stop leading', () => !a.elector.isLeader(), FAST.renewDeadlineMs);
    process.stdout.write(`leader election: the leader stopped ${seconds(stopped - overwritten)} after its lease was overwritten\n`);
    // At its very next renewal, well before renewDeadline.
    expect(stopped - overwritten).toBeLessThan(FAST.retryPeriodMs + 500);
    expect(a.signals[0]?.aborted).toBe(true);
    expect(a.stoppedAt).toHaveLength(1);
    // It does not fight for the Lease: the intruder keeps it.
    await new Promise((r) => setTimeout(r, 2 * FAST.retryPeriodMs));
    expect((await readLease(lease)).spec?.holderIdentity).toBe('intruder');
  });

  it('keeps leading when its Lease is deleted, by creating it again', async () => {
    const lease = newLeaseName();
    const a = candidate(lease, 'pod-a', FAST);
    await until('pod-a to lead', () => a.elector.isLeader(), 10_000);
    await leases.deleteNamespacedLease({ namespace: ns(), name: lease });
    await until(
      'the lease to be created again',
      async () => (await readLease(lease).catch(() => undefined))?.spec?.holderIdentity === 'pod-a',
      3 * FAST.retryPeriodMs,
    );
    // Past a whole renew deadline: the recreation counted as a renewal.
    await new Promise((r) => setTimeout(r, FAST.renewDeadlineMs + FAST.retryPeriodMs));
    expect(a.elector.isLeader()).toBe(true);
    expect(a.stoppedAt).toHaveLength(0);
  });

  it.skipIf(!inject('localControlPlane'))('stops leading within renewDeadline when renewals fail (RBAC revoked), before the lease could expire', async () => {
    const lease = newLeaseName();
    // The chart's Role for the Lease, bound to the operator identity in this namespace only.
    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'Role',
            metadata: { name: 'lease', namespace: ns() },
            rules: [
              { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [lease], verbs: ['get', 'update', 'patch'] },
              { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
            ],
          },
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'RoleBinding',
            metadata: { name: 'lease', namespace: ns() },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'lease' },
            subjects: [{ kind: 'User', name: 'system:serviceaccount:usher-system:usher', apiGroup: 'rbac.authorization.k8s.io' }],
          },
        ],
      }),
    });
    const a = candidate(lease, 'pod-a', { ...FAST, kubeConfig: loadKubeConfig(inject('kubeconfigs').operator) });
    await until('pod-a (as the operator) to lead', () => a.elector.isLeader(), 10_000);
    // Renewing works with exactly these permissions.
    await new Promise((r) => setTimeout(r, 2 * FAST.retryPeriodMs));
    expect(a.elector.isLeader()).toBe(true);

    await kubectlOk(['delete', 'rolebinding', 'lease', '-n', ns()]);
    const revoked = performance.now();
    const stopped = await until('pod-a to stop leading', () => !a.elector.isLeader(), FAST.leaseDurationMs);
    const after = stopped - revoked;
    process.stdout.write(
      `leader election: the leader stopped ${seconds(after)} after it lost the right to renew (renewDeadline ${seconds(FAST.renewDeadlineMs)})\n`,
    );
    // The last successful renewal was at most one retry period before the revocation.
    expect(after).toBeGreaterThan(FAST.renewDeadlineMs - FAST.retryPeriodMs - 300);
    expect(after).toBeLessThan(FAST.renewDeadlineMs + 300);
    // …which is before anyone else could take the lease over.
    expect(after).toBeLessThan(FAST.leaseDurationMs);
    expect(a.signals[0]?.aborted).toBe(true);
    expect(a.stoppedAt).toHaveLength(1);
  });
});

function spawnLeader(lease: string, identity: string): { process: ChildProcess; events: string[] } {
  const script = fileURLToPath(new URL('./leader-election-child.ts', import.meta.url));
  const child = spawn(process.execPath, [script, inject('kubeconfigs').admin, ns(), lease, identity], { stdio: ['ignore', 'pipe', 'inherit'] });
  const events: string[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    events.push((JSON.parse(line) as { event: string }).event);
  });
  return { process: child, events };
}

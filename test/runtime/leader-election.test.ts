// LeaderElector's guards against timings that would let two replicas lead at
// once. (Where it finds its Lease and identity: test/options.test.ts.)
import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TIMINGS, LeaderElector, type LeaderElectorOptions } from '../../src/runtime/leader-election.ts';

function options(extra: Partial<LeaderElectorOptions>): LeaderElectorOptions {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return {
    kubeConfig,
    namespace: 'usher-system',
    name: 'usher-leader',
    identity: 'pod-a',
    onStartedLeading: () => undefined,
    onStoppedLeading: () => undefined,
    ...extra,
  };
}

describe('LeaderElector timings', () => {
  it('defaults to controller-runtime’s 15 s / 10 s / 2 s', () => {
    expect(DEFAULT_TIMINGS).toEqual({ leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 });
    expect(() => new LeaderElector(options({}))).not.toThrow();
  });

  it('refuses a renew deadline that is not shorter than the lease (the old leader could overlap the new one)', () => {
    expect(() => new LeaderElector(options({ leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }))).toThrow(/leaseDuration must be greater than renewDeadline/);
  });

  it('refuses a renew deadline that leaves no room for a retry', () => {
    expect(() => new LeaderElector(options({ renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }))).toThrow(/renewDeadline must be greater than retryPeriod/);
  });

  it('refuses a lease duration the Lease cannot hold (whole seconds) and an empty identity', () => {
    expect(() => new LeaderElector(options({ leaseDurationMs: 15_500 }))).toThrow(/whole seconds/);
    expect(() => new LeaderElector(options({ identity: '' }))).toThrow(/identity/);
  });

  it('can run only once', async () => {
    const elector = new LeaderElector(options({}));
    const stopped = elector.stop();
    void elector.run();
    expect(() => elector.run()).toThrow(/already called/);
    await stopped;
    expect(elector.isLeader()).toBe(false);
  });
});

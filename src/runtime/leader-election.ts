// Leader election on a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection package does it (client-node has none): several replicas run,
// one holds the Lease and reconciles, the others wait to take over.
//
// - Acquire and renew are compare-and-swap writes: the Lease is replaced with
//   the resourceVersion just read (409 when someone wrote in between), or
//   created when absent.
// - A Lease held by another counts as expired only once leaseDuration has
//   passed since *this process saw it change* (its resourceVersion), never by
//   comparing renewTime with the local clock: clocks of two nodes may differ.
// - The leader stops leading the moment it learns it lost the Lease (another
//   holder in it) or when renewDeadline passes without a successful renewal
//   (a timer, so a hung request cannot delay it). renewDeadline < leaseDuration,
//   so it has stopped before anyone else may take over.
// - stop() gives the Lease up as client-go's ReleaseOnCancel does (empty
//   holder, leaseDurationSeconds 1), so a successor need not wait out the lease.
import { setTimeout as delay } from 'node:timers/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { apiErrorOf } from './client.ts';
import { microTime, RestClient } from './rest-client.ts';
import { restResource } from './typed-client.ts';

/** A coordination.k8s.io/v1 Lease's spec; the times are MicroTimes (RFC 3339, six fractional digits). */
export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease {
  apiVersion?: string;
  kind?: string;
  /** Sent back as read: the resourceVersion (for the compare-and-swap), labels and annotations. */
  metadata?: { name?: string; namespace?: string; resourceVersion?: string } & Record<string, unknown>;
  spec?: LeaseSpec;
}

/** The Lease calls the elector makes; tests pass one that fails on purpose. */
export interface LeaseApi {
  readNamespacedLease(param: { namespace: string; name: string }): Promise<Lease>;
  createNamespacedLease(param: { namespace: string; body: Lease }): Promise<Lease>;
  replaceNamespacedLease(param: { namespace: string; name: string; body: Lease }): Promise<Lease>;
}

/** Leases through `rest`. */
export function restLeaseApi(rest: RestClient): LeaseApi {
  const leases = restResource<Lease>(rest, 'Lease', { apiPath: '/apis/coordination.k8s.io/v1', plural: 'leases', namespaced: 'required' });
  return {
    readNamespacedLease: ({ namespace, name }) => leases.read(namespace, name),
    createNamespacedLease: ({ namespace, body }) => leases.create(namespace, body),
    replaceNamespacedLease: ({ namespace, name, body }) => leases.replace(namespace, name, body),
  };
}

export interface LeaderElectionTimings {
  /** How long a standby waits, after it last saw the Lease change, before it takes the Lease over. */
  leaseDurationMs: number;
  /** How long the leader keeps leading without a successful renewal. Must be below leaseDurationMs. */
  renewDeadlineMs: number;
  /** Time between attempts to acquire or renew. */
  retryPeriodMs: number;
}

/** controller-runtime's defaults. */
export const DEFAULT_TIMINGS: Readonly<LeaderElectionTimings> = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/**
 * Acquire attempts wait retryPeriod plus up to this fraction of it, so that
 * replicas started together do not hit the API server in step. (client-go
 * uses 1.2, i.e. up to 2.2 × retryPeriod; a smaller one makes takeover faster
 * and a handful of replicas need little spreading.)
 */
const JITTER = 0.2;

export interface LeaderElectorOptions extends Partial<LeaderElectionTimings> {
  kubeConfig: KubeConfig;
  /** The Lease calls to make instead of restLeaseApi(rest) (tests inject failures here). */
  coordinationApi?: LeaseApi;
  /** The process's one client (its pool opens several connections, so a busy controller does not hold up renewals); default: one of its own. */
  rest?: RestClient;
  /** Namespace and name of the Lease (the chart's Role grants access to this name only). */
  namespace: string;
  name: string;
  /** This replica's identity in holderIdentity: its pod name. */
  identity: string;
  /**
   * Called once this replica leads. `signal` aborts the moment leadership ends
   * (Lease lost, renewal failed, stop()): stop reconciling then.
   */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called once when leadership ends, after `signal` aborted (not called if this replica never led). Awaited before the Lease is released on stop(). */
  onStoppedLeading: () => void | Promise<void>;
  /** Called when the observed holder changes (including to this replica); '' when the Lease was released. */
  onNewLeader?: (identity: string) => void;
  /** Give the Lease up on stop() (client-go's ReleaseOnCancel); default true. */
  releaseOnStop?: boolean;
  log?: Logger;
}

type Attempt = 'acquired' | 'renewed' | 'held' | 'failed';

interface Observed {
  resourceVersion: string;
  spec: LeaseSpec;
  /** performance.now() when this resourceVersion was first seen. */
  at: number;
}

export class LeaderElector {
  private readonly api: LeaseApi;
  private readonly options: LeaderElectorOptions;
  private readonly timings: LeaderElectionTimings;
  private readonly stopping = new AbortController();
  private observed: Observed | undefined;
  private leadership: AbortController | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stoppedLeading: Promise<void> | undefined;

  constructor(options: LeaderElectorOptions) {
    this.options = options;
    this.timings = {
      leaseDurationMs: options.leaseDurationMs ?? DEFAULT_TIMINGS.leaseDurationMs,
      renewDeadlineMs: options.renewDeadlineMs ?? DEFAULT_TIMINGS.renewDeadlineMs,
      retryPeriodMs: options.retryPeriodMs ?? DEFAULT_TIMINGS.retryPeriodMs,
    };
    const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = this.timings;
    // The same checks as client-go's NewLeaderElector: otherwise two replicas could lead at once.
    if (leaseDurationMs <= renewDeadlineMs) throw new Error('leader election: leaseDuration must be greater than renewDeadline');
    if (renewDeadlineMs <= retryPeriodMs * (1 + JITTER)) throw new Error(`leader election: renewDeadline must be greater than retryPeriod × ${1 + JITTER}`);
    if (leaseDurationMs % 1000 !== 0) throw new Error('leader election: leaseDuration must be whole seconds (Lease.spec.leaseDurationSeconds)');
    if (!options.identity) throw new Error('leader election: identity must not be empty');
    this.api = options.coordinationApi ?? restLeaseApi(options.rest ?? new RestClient(options.kubeConfig));
  }

  /** Whether this replica leads right now. */
  isLeader(): boolean {
    return this.leadership !== undefined && !this.leadership.signal.aborted;
  }

  /** The holder last seen in the Lease ('' when released, undefined before the first read). */
  leader(): string | undefined {
    return this.observed?.spec.holderIdentity;
  }

  /**
   * Campaigns until this replica leads, then renews the Lease until leadership
   * ends. Resolves when it ended (or when stop() was called first). One run per elector.
   */
  run(): Promise<void> {
    if (this.running) throw new Error('leader election: run() was already called');
    this.running = this.campaign();
    return this.running;
  }

  /**
   * Ends the campaign or the leadership: the signal aborts, onStoppedLeading
   * runs (and is awaited), then the Lease is released if this replica held it.
   * Stop the leader's work (drain the controller) before calling it, so that
   * the successor never overlaps it.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
    if (this.options.releaseOnStop ?? true) await this.release();
  }

  /**
   * Gives the Lease up (holderIdentity '', leaseDurationSeconds 1) if this
   * replica holds it; a standby then takes over at its next attempt.
   * Returns whether it did. Call it only once this replica stopped leading.
   */
  async release(): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    try {
      const lease = await this.call(this.api.readNamespacedLease({ namespace, name }));
      if (lease.spec?.holderIdentity !== identity) return false;
      const now = microTime();
      const spec: LeaseSpec = {
        holderIdentity: '',
        leaseDurationSeconds: 1,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: lease.spec.leaseTransitions ?? 0,
      };
      await this.call(this.api.replaceNamespacedLease({ namespace, name, body: leaseWith(lease, spec) }));
      this.options.log?.info({ lease: `${namespace}/${name}` }, 'leader election: released the lease');
      return true;
    } catch (err) {
      // Not fatal: the Lease then expires after leaseDuration.
      this.options.log?.warn({ err: apiErrorOf(err).message }, 'leader election: could not release the lease');
      return false;
    }
  }

  // A method, not a property read, so that the compiler does not assume it unchanged across awaits.
  private isStopping(): boolean {
    return this.stopping.signal.aborted;
  }

  private async campaign(): Promise<void> {
    const { log, namespace, name, identity } = this.options;
    log?.info({ lease: `${namespace}/${name}`, identity }, 'leader election: waiting to acquire the lease');
    for (;;) {
      if (this.isStopping()) return;
      const attempt = await this.tryAcquireOrRenew();
      if (attempt === 'acquired' || attempt === 'renewed') break;
      await sleep(this.timings.retryPeriodMs * (1 + Math.random() * JITTER), this.stopping.signal);
    }
    // stop() came while the Lease was being acquired: do not start leading; stop() releases it.
    if (this.isStopping()) return;
    const started = performance.now();
    this.leadership = new AbortController();
    const signal = this.leadership.signal;
    this.armDeadline(started);
    log?.info({ lease: `${namespace}/${name}`, identity }, 'leader election: acquired the lease, leading');
    // Not awaited: it runs for as long as this replica leads (client-go runs it in a goroutine).
    void (async () => {
      await this.options.onStartedLeading(signal);
    })().catch((err: unknown) => {
      log?.error({ err }, 'leader election: onStartedLeading failed');
    });
    await this.renewLoop(signal);
  }

  private async renewLoop(signal: AbortSignal): Promise<void> {
    const either = AbortSignal.any([signal, this.stopping.signal]);
    const ended = (): boolean => either.aborted;
    while (!ended()) {
      await sleep(this.timings.retryPeriodMs, either);
      if (ended()) break;
      const started = performance.now();
      const attempt = await this.tryAcquireOrRenew();
      if (signal.aborted) break;
      // 'acquired' while leading: the Lease had been deleted and this replica created it afresh.
      if (attempt === 'renewed' || attempt === 'acquired') this.armDeadline(started);
      else if (attempt === 'held') await this.stopLeading(`the lease is now held by ${this.observed?.spec.holderIdentity ?? 'someone else'}`);
      // 'failed': try again after retryPeriod; the deadline timer ends leadership if it keeps failing.
    }
    await this.stopLeading('stopped');
  }

  /** Ends leadership at renewDeadline after the start of the last successful acquire or renew. */
  private armDeadline(lastSuccessStarted: number): void {
    clearTimeout(this.deadlineTimer);
    const remaining = lastSuccessStarted + this.timings.renewDeadlineMs - performance.now();
    this.deadlineTimer = setTimeout(
      () => {
        void this.stopLeading(`could not renew the lease within renewDeadline (${this.timings.renewDeadlineMs} ms)`);
      },
      Math.max(0, remaining),
    );
  }

  /** Idempotent: aborts the signal and calls onStoppedLeading once. */
  private stopLeading(why: string): Promise<void> {
    if (this.stoppedLeading) return this.stoppedLeading;
    clearTimeout(this.deadlineTimer);
    const leadership = this.leadership;
    if (!leadership) return Promise.resolve();
    leadership.abort(new Error(`leadership lost: ${why}`));
    const level = why === 'stopped' ? 'info' : 'error';
    this.options.log?.[level]({ lease: `${this.options.namespace}/${this.options.name}`, why }, 'leader election: stopped leading');
    this.stoppedLeading = (async () => {
      try {
        await this.options.onStoppedLeading();
      } catch (err) {
        this.options.log?.error({ err }, 'leader election: onStoppedLeading failed');
      }
    })();
    return this.stoppedLeading;
  }

  /** One read and at most one write, as client-go's tryAcquireOrRenew. */
  private async tryAcquireOrRenew(): Promise<Attempt> {
    const { namespace, name, identity, log } = this.options;
    const now = microTime();
    const leaseDurationSeconds = this.timings.leaseDurationMs / 1000;
    try {
      let lease: Lease;
      try {
        lease = await this.call(this.api.readNamespacedLease({ namespace, name }));
      } catch (err) {
        if (apiErrorOf(err).code !== 404) throw err;
        const spec: LeaseSpec = { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 };
        const created = await this.call(
          this.api.createNamespacedLease({ namespace, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec } }),
        );
        this.observe(created);
        return 'acquired';
      }

      this.observe(lease);
      const observed = this.observed as Observed;
      const holder = lease.spec?.holderIdentity ?? '';
      if (holder !== identity) {
        // A leader that finds someone else in the Lease has lost it, expired or not: that one may be leading now.
        if (this.isLeader()) return 'held';
        const durationMs = (lease.spec?.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
        if (holder !== '' && performance.now() < observed.at + durationMs) return 'held';
      }
      const renewing = holder === identity;
      const spec: LeaseSpec = {
        holderIdentity: identity,
        leaseDurationSeconds,
        acquireTime: renewing ? (lease.spec?.acquireTime ?? now) : now,
        renewTime: now,
        leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + (renewing ? 0 : 1),
      };
      // Compare-and-swap: `lease` carries the resourceVersion just read, so a write in between makes this a 409.
      const written = await this.call(this.api.replaceNamespacedLease({ namespace, name, body: leaseWith(lease, spec) }));
      this.observe(written);
      return renewing && this.isLeader() ? 'renewed' : 'acquired';
    } catch (err) {
      const error = apiErrorOf(err);
      // A conflict is the normal outcome of a race with another replica.
      log?.[error.code === 409 ? 'debug' : 'warn']({ code: error.code, err: error.message }, 'leader election: could not acquire or renew the lease');
      return 'failed';
    }
  }

  private observe(lease: Lease): void {
    const resourceVersion = lease.metadata?.resourceVersion ?? '';
    if (this.observed?.resourceVersion === resourceVersion) return;
    const before = this.observed?.spec.holderIdentity;
    this.observed = { resourceVersion, spec: lease.spec ?? {}, at: performance.now() };
    const holder = lease.spec?.holderIdentity ?? '';
    if (holder !== before) {
      this.options.log?.info({ lease: `${this.options.namespace}/${this.options.name}`, holder }, 'leader election: new holder');
      this.options.onNewLeader?.(holder);
    }
  }

  /**
   * An API call that gives up after half the renew deadline, so that a hung
   * connection cannot stall the loop (the request itself may still land; the
   * compare-and-swap makes that harmless).
   */
  private call<T>(request: Promise<T>): Promise<T> {
    const timeoutMs = this.timings.renewDeadlineMs / 2;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`no answer from the API server within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    return Promise.race([request, timeout]).finally(() => {
      clearTimeout(timer);
    });
  }
}

/**
 * The Lease as read, with a new spec: its metadata (resourceVersion included,
 * for the compare-and-swap; labels and annotations kept) goes back unchanged.
 */
function leaseWith(lease: Lease, spec: LeaseSpec): Lease {
  return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: lease.metadata, spec };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  // node:timers/promises rejects on abort; here an abort only ends the wait early.
  return delay(ms, undefined, { signal }).catch(() => undefined);
}

// Usher's Prometheus metrics: one registry per process holding the
// controller's counters (reconciles, mails), gauges computed at scrape time
// from callbacks (invitations per phase, work-queue depth) and prom-client's
// default process metrics. The controller only calls the small methods below;
// it never touches prom-client itself.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { InvitationPhase } from '../api/types.ts';
import type { InvitationMailer } from '../controller/ports.ts';

/** How a reconcile ended: done, done with a deadline to come back at, or failed (retried with backoff). */
export type ReconcileOutcome = 'success' | 'requeue_after' | 'error';

/** The phase label of an invitation that has no status yet (not reconciled since it was created). */
export const NO_PHASE = 'None';

/** Every phase is exported, 0 included, so a phase that empties shows 0 rather than a vanished series. */
const PHASES: readonly (InvitationPhase | typeof NO_PHASE)[] = ['Pending', 'Sent', 'Accepted', 'Expired', 'Failed', 'UserCreated', NO_PHASE];

/**
 * Reconcile durations in seconds: from a cache-only no-op (milliseconds) to a
 * reconcile that waits on a slow SMTP server (tens of seconds).
 */
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface MetricsOptions {
  /** Invitations per phase, read at each scrape (e.g. `() => controller.invitationsByPhase()`). */
  invitationsByPhase?: () => Readonly<Record<string, number>>;
  /** Keys waiting in the work queue, read at each scrape (e.g. `() => controller.queueDepth()`). */
  workqueueDepth?: () => number;
  /** prom-client's process metrics (CPU, memory, event loop lag, handles…); default true. */
  defaultMetrics?: boolean;
}

export class UsherMetrics {
  readonly registry = new Registry();
  private readonly reconciles: Counter<'result'>;
  private readonly reconcileErrors: Counter;
  private readonly reconcileDuration: Histogram;
  private readonly mailsSent: Counter;
  private readonly mailsFailed: Counter<'permanent'>;
  private readonly leader: Gauge;
  private invitationsByPhase: (() => Readonly<Record<string, number>>) | undefined;
  private workqueueDepth: (() => number) | undefined;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    this.invitationsByPhase = options.invitationsByPhase;
    this.workqueueDepth = options.workqueueDepth;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    this.reconciles = new Counter({
      name: 'usher_reconcile_total',
      help: 'Reconciles of UserInvitations, by result (success, requeue_after, error).',
      labelNames: ['result'],
      registers,
    });
    this.reconcileErrors = new Counter({ name: 'usher_reconcile_errors_total', help: 'Reconciles that failed and were retried with backoff.', registers });
    this.reconcileDuration = new Histogram({
      name: 'usher_reconcile_duration_seconds',
      help: 'How long one reconcile of a UserInvitation took.',
      buckets: RECONCILE_BUCKETS,
      registers,
    });
    this.mailsSent = new Counter({ name: 'usher_mails_sent_total', help: 'Invitation mails the SMTP server accepted.', registers });
    this.mailsFailed = new Counter({
      name: 'usher_mails_failed_total',
      help: 'Invitation mails that failed; permanent="true" when the server refused them for good (no retry).',
      labelNames: ['permanent'],
      registers,
    });
    this.leader = new Gauge({ name: 'usher_leader', help: '1 while this replica holds the leader-election lease and reconciles, else 0.', registers });
    this.leader.set(0);
    // Pre-create the series so that rate() sees them from the first scrape on, not from the first event.
    for (const result of ['success', 'requeue_after', 'error'] as const) this.reconciles.inc({ result }, 0);
    for (const permanent of ['true', 'false']) this.mailsFailed.inc({ permanent }, 0);

    // Read through arrows, so that setSources() can replace the callbacks later.
    const phases = (): MetricsOptions['invitationsByPhase'] => this.invitationsByPhase;
    const depth = (): MetricsOptions['workqueueDepth'] => this.workqueueDepth;
    new Gauge({
      name: 'usher_invitations',
      help: `UserInvitations in this replica's cache, by status.phase (${NO_PHASE}: not reconciled yet). Only the leader's cache is kept current: aggregate with max, or filter on usher_leader == 1.`,
      labelNames: ['phase'],
      registers,
      collect() {
        this.reset();
        const counts = safely(phases());
        if (counts === undefined) return;
        for (const phase of PHASES) this.set({ phase }, 0);
        for (const [phase, count] of Object.entries(counts)) this.set({ phase }, count);
      },
    });
    new Gauge({
      name: 'usher_workqueue_depth',
      help: 'Invitation keys waiting for a worker (not those being reconciled or scheduled for later).',
      registers,
      collect() {
        this.reset();
        const value = safely(depth());
        if (value !== undefined) this.set(value);
      },
    });
  }

  /** Records one reconcile; call it in the worker's finally block with the time it took. */
  observeReconcile(durationMs: number, result: ReconcileOutcome): void {
    this.reconciles.inc({ result });
    if (result === 'error') this.reconcileErrors.inc();
    this.reconcileDuration.observe(durationMs / 1000);
  }

  /** An invitation mail the SMTP server accepted. */
  mailSent(): void {
    this.mailsSent.inc();
  }

  /** An invitation mail that failed: `permanent` when it will not be retried (5xx, a refused address). */
  mailFailed(permanent: boolean): void {
    this.mailsFailed.inc({ permanent: String(permanent) });
  }

  /** Whether this replica leads (reconciles); see LeaderElector's callbacks. */
  setLeader(leading: boolean): void {
    this.leader.set(leading ? 1 : 0);
  }

  /** Sets (or replaces) the callbacks read at scrape time, for when the controller is created after the metrics. */
  setSources(sources: Pick<MetricsOptions, 'invitationsByPhase' | 'workqueueDepth'>): void {
    if (sources.invitationsByPhase) this.invitationsByPhase = sources.invitationsByPhase;
    if (sources.workqueueDepth) this.workqueueDepth = sources.workqueueDepth;
  }

  /** The exposition text, as served on /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Invitations counted by status.phase, those without one under NO_PHASE. */
export function countByPhase(invitations: Iterable<{ status?: { phase?: string } | undefined }>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const invitation of invitations) {
    const phase = invitation.status?.phase ?? NO_PHASE;
    counts[phase] = (counts[phase] ?? 0) + 1;
  }
  return counts;
}

/**
 * A failing callback must not fail the whole scrape (prom-client would answer
 * 500 and every other metric would be lost with it): its gauge is left empty instead.
 */
function safely<T>(callback: (() => T) | undefined): T | undefined {
  if (callback === undefined) return undefined;
  try {
    return callback();
  } catch {
    return undefined;
  }
}

/**
 * The mailer, counting what becomes of each invitation mail: accepted by the
 * server (usher_mails_sent_total) or not (usher_mails_failed_total, permanent
 * or to be retried; a thrown error counts as a failure to retry).
 */
export function withMailMetrics(mailer: InvitationMailer, metrics: UsherMetrics): InvitationMailer {
  return {
    async sendInvitation(...args) {
      let result: Awaited<ReturnType<InvitationMailer['sendInvitation']>>;
      try {
        result = await mailer.sendInvitation(...args);
      } catch (err) {
        metrics.mailFailed(false);
        throw err;
      }
      if (result.ok) metrics.mailSent();
      else metrics.mailFailed(result.permanent);
      return result;
    },
    // The outage watch's, passed through: without them the controller would never hear the server is back.
    ...(mailer.lastOutage ? { lastOutage: mailer.lastOutage.bind(mailer) } : {}),
    ...(mailer.onRecovered ? { onRecovered: mailer.onRecovered.bind(mailer) } : {}),
  };
}

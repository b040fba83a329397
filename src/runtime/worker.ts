// The worker runner shared by controllers, in the manner of cert-manager's
// controller.NewController(syncFunc) and controller-runtime's reconcileHandler:
// the controller supplies sync(key), the runner owns the queue bookkeeping so
// that sync never touches the queue.
//
//   - N workers take keys from one WorkQueue; the queue never hands a key to two
//     workers at once, and a key added while it is being synced is synced again after.
//   - success: the key's backoff is forgotten; a requested requeue (requeueAfterMs)
//     adds it again after that delay.
//   - error: the key is added again after its per-key exponential backoff; a 409
//     (a cache that was behind) is logged at debug, anything else at warn.
//   - stop(): no new keys are taken; resolves once the syncs in flight are done.
import { apiErrorOf, isConflictOrAlreadyExists } from './client.ts';
import { silentLogger, type Logger } from './log.ts';
import { WorkQueue } from './workqueue.ts';

/** What one sync asks for: nothing, or to come back after a delay (a deadline). */
export interface SyncResult {
  requeueAfterMs?: number;
}

/** How a sync ended, for metrics: done, done with a requeue requested, or failed (retried with backoff). */
export type SyncOutcome = 'success' | 'requeue_after' | 'error';

export interface WorkerRunnerOptions {
  sync: (key: string) => Promise<SyncResult | undefined>;
  /** How many keys are synced at once. */
  workers: number;
  /** The queue to take keys from; default a new WorkQueue. */
  queue?: WorkQueue;
  log?: Logger;
  /** The log field that carries the key (default `key`). */
  keyField?: string;
  /** Called after every sync with its duration and outcome (metrics). */
  observe?: (durationMs: number, outcome: SyncOutcome) => void;
  /** Added to every requested requeue: a deadline is reached when now >= it, and timers may fire early. Default 50 ms. */
  requeueSlackMs?: number;
}

export interface WorkerStats {
  /** Syncs started. */
  syncs: number;
  /** Syncs that failed. */
  errors: number;
}

export class WorkerRunner {
  readonly queue: WorkQueue;
  readonly stats: WorkerStats = { syncs: 0, errors: 0 };
  readonly #opts: WorkerRunnerOptions;
  readonly #log: Logger;
  readonly #keyField: string;
  #workers: Promise<void>[] = [];

  constructor(options: WorkerRunnerOptions) {
    this.#opts = options;
    this.queue = options.queue ?? new WorkQueue();
    this.#log = options.log ?? silentLogger;
    this.#keyField = options.keyField ?? 'key';
  }

  /** Queues the key (once, however often it is added before a worker takes it). */
  add(key: string): void {
    this.queue.add(key);
  }

  /** Queues the key after `ms`. */
  addAfter(key: string, ms: number): void {
    this.queue.addAfter(key, ms);
  }

  /** Starts the workers; keys added before are synced now. Once only. */
  start(): void {
    if (this.#workers.length > 0) return;
    for (let i = 0; i < this.#opts.workers; i++) this.#workers.push(this.#work());
  }

  /** Stops taking keys (waiting and delayed ones are dropped) and resolves once every sync in flight is done. */
  async stop(): Promise<void> {
    await this.queue.shutDownWithDrain();
    await Promise.all(this.#workers);
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.#process(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  async #process(key: string): Promise<void> {
    const log = this.#log;
    const queue = this.queue;
    const started = performance.now();
    this.stats.syncs++;
    try {
      const result = await this.#opts.sync(key);
      const requeueAfterMs = result?.requeueAfterMs;
      this.#opts.observe?.(performance.now() - started, requeueAfterMs !== undefined ? 'requeue_after' : 'success');
      log.debug({ [this.#keyField]: key, requeueAfterMs }, 'reconciled');
      queue.forget(key);
      if (requeueAfterMs !== undefined) queue.addAfter(key, Math.max(0, requeueAfterMs) + (this.#opts.requeueSlackMs ?? 50));
    } catch (err) {
      this.stats.errors++;
      this.#opts.observe?.(performance.now() - started, 'error');
      const error = apiErrorOf(err);
      // A conflict only means our cache was behind: retry soon, quietly.
      const level = isConflictOrAlreadyExists(err) ? 'debug' : 'warn';
      log[level]({ [this.#keyField]: key, code: error.code, err: error.message, retries: queue.numRequeues(key) }, 'reconcile failed, retrying with backoff');
      queue.addRateLimited(key);
    }
  }
}

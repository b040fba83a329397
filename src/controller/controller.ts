// The controller: informer events feed a work queue of invitation keys;
// N workers take keys and reconcile them, one worker per key at a time;
// errors back off per key; every invitation with a deadline (expiry, a mail
// retry) is re-queued for that moment, so phases change on time.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { UsherConfig } from '../config/types.ts';
import { apiErrorOf } from '../runtime/client.ts';
import { KubeCluster } from './kube-store.ts';
import { WorkQueue } from '../runtime/workqueue.ts';
import type { UsherMetrics } from '../metrics/metrics.ts';
import type { InvitationMailer } from './ports.ts';
import { Reconciler } from './reconciler.ts';

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  config: UsherConfig;
  log: Logger;
  mailer?: InvitationMailer;
  /** Delay before the next mail attempt after n transient failures (tests shorten it). */
  mailBackoffMs?: (attempts: number) => number;
  metrics?: UsherMetrics;
  /** This replica's name in the Events it records (the pod's name). */
  instance?: string;
}

export interface ControllerStats {
  reconciles: number;
  errors: number;
}

export class Controller {
  readonly cluster: KubeCluster;
  readonly queue = new WorkQueue();
  readonly stats: ControllerStats = { reconciles: 0, errors: 0 };
  private readonly reconciler: Reconciler;
  private readonly options: ControllerOptions;
  private workers: Promise<void>[] = [];
  private running = false;

  constructor(options: ControllerOptions) {
    this.options = options;
    this.cluster = new KubeCluster(options.kubeConfig, options.config, options.log, {
      onInvitation: (namespace, name) => {
        this.queue.add(`${namespace}/${name}`);
      },
      onInvitationDeleted: () => {
        if (this.running) void this.removeOrphanRecords();
      },
    }, options.instance);
    this.reconciler = new Reconciler({
      reader: this.cluster,
      writer: this.cluster,
      config: options.config,
      log: options.log.child({ component: 'reconciler' }),
      ...(options.mailer ? { mailer: options.mailer } : {}),
      ...(options.mailBackoffMs ? { mailBackoffMs: options.mailBackoffMs } : {}),
    });
  }

  /** Fills the caches, then starts the workers. Resolves once caches are synced. */
  async start(): Promise<void> {
    await this.cluster.start();
    this.options.log.info({ invitations: this.cluster.invitations.list().length }, 'caches synced, starting workers');
    this.running = true;
    await this.removeOrphanRecords();
    for (let i = 0; i < this.options.config.controller.workers; i++) this.workers.push(this.work());
  }

  /**
   * Deletes the records of invitations that are gone. Records live in Usher's
   * namespace, so no ownerReference can take them with their invitation; a
   * record without its invitation opens nothing (the page checks the binding),
   * this only keeps the namespace clean. Runs at start (deletions while Usher
   * was down) and on every invitation deletion.
   */
  private async removeOrphanRecords(): Promise<void> {
    for (const record of this.cluster.orphanRecords()) {
      try {
        await this.cluster.deleteRecord(record.name);
        this.options.log.info({ record: record.name, invitation: `${record.invitationNamespace}/${record.invitationName}` }, 'deleted the record of a deleted invitation');
      } catch (err) {
        this.options.log.warn({ record: record.name, err: apiErrorOf(err).message }, 'could not delete an orphaned invitation record; retrying at the next deletion or restart');
      }
    }
  }

  /** Stops taking new keys and waits for in-flight reconciles to finish (graceful shutdown). */
  async stop(): Promise<void> {
    this.running = false;
    await this.queue.shutDownWithDrain();
    await Promise.all(this.workers);
    this.cluster.stop();
  }

  private async work(): Promise<void> {
    const { log } = this.options;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const slash = key.indexOf('/');
      const namespace = key.slice(0, slash);
      const name = key.slice(slash + 1);
      const started = performance.now();
      try {
        this.stats.reconciles++;
        const result = await this.reconciler.reconcile(namespace, name);
        this.options.metrics?.observeReconcile(performance.now() - started, result.requeueAfterMs !== undefined ? 'requeue_after' : 'success');
        log.debug({ invitation: key, requeueAfterMs: result.requeueAfterMs }, 'reconciled');
        this.queue.forget(key);
        // A little past the deadline: it is reached when now >= it, and timers may fire early.
        if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, Math.max(0, result.requeueAfterMs) + 50);
      } catch (err) {
        this.stats.errors++;
        this.options.metrics?.observeReconcile(performance.now() - started, 'error');
        const error = apiErrorOf(err);
        // A conflict only means our cache was behind: retry soon, quietly.
        const level = error.code === 409 ? 'debug' : 'warn';
        log[level]({ invitation: key, code: error.code, err: error.message, retries: this.queue.numRequeues(key) }, 'reconcile failed, retrying with backoff');
        this.queue.addRateLimited(key);
      } finally {
        this.queue.done(key);
      }
    }
  }
}

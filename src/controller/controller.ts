// The controller: the watches (watches.ts) feed a work queue of invitation
// keys; the worker runner hands each key to the reconciler, one worker per key
// at a time; errors back off per key; every invitation with a deadline (expiry,
// a mail retry) is re-queued for that moment, so phases change on time.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { UsherConfig } from '../config/types.ts';
import { apiErrorOf } from '../runtime/client.ts';
import { objectKey, splitObjectKey } from '../runtime/informer.ts';
import type { WorkQueue } from '../runtime/workqueue.ts';
import { WorkerRunner } from '../runtime/worker.ts';
import { countByPhase, type UsherMetrics } from '../metrics/metrics.ts';
import { KubeCluster } from './kube-store.ts';
import type { InvitationMailer } from './ports.ts';
import { Reconciler } from './reconciler.ts';
import { setUpRbacWatches, setUpUserWatches, setUpWatches } from './watches.ts';
import { KubeBindings } from './rbac-store.ts';
import { RbacReconciler } from './rbac-reconciler.ts';
import type { RestClient } from '../runtime/rest-client.ts';
import type { InvitationRecord } from '../invitation/record.ts';
import type { IdentityProvider } from '../identity/provider.ts';
import { IdentityReconciler } from './identity-reconciler.ts';
import { failedInEndedOutage } from '../invitation/decide.ts';
import { EchoFilter, notingOwnWrites, OwnWrites } from './own-writes.ts';

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
  /** The process's one API client (shared with the page and leader election); a new one when absent. */
  rest?: RestClient;
  /** Where accepted people get their account (usher.identity); without it Users end at the User resource. */
  identity?: IdentityProvider;
}

export interface ControllerStats {
  reconciles: number;
  errors: number;
}

export class Controller {
  readonly cluster: KubeCluster;
  readonly queue: WorkQueue;
  private readonly runner: WorkerRunner;
  /** Users → their identity provider accounts (only with usher.identity). */
  private readonly userRunner: WorkerRunner | undefined;
  /** Users → their RoleBindings (only with usher.rbac). */
  private readonly rbacRunner: WorkerRunner | undefined;
  private readonly bindings: KubeBindings | undefined;
  private readonly reconciler: Reconciler;
  private readonly options: ControllerOptions;
  private running = false;

  constructor(options: ControllerOptions) {
    this.options = options;
    const identityProvider = options.config.identity ? options.identity : undefined;
    this.cluster = new KubeCluster(options.kubeConfig, options.config, options.log, options.instance, options.rest);
    const ownWrites = new OwnWrites();
    const echoes = new EchoFilter(ownWrites, (key) => {
      this.runner.add(key);
    });
    this.reconciler = new Reconciler({
      reader: this.cluster,
      writer: notingOwnWrites(this.cluster, ownWrites),
      config: options.config,
      log: options.log.child({ component: 'reconciler' }),
      ...(options.mailer ? { mailer: options.mailer } : {}),
      ...(options.mailBackoffMs ? { mailBackoffMs: options.mailBackoffMs } : {}),
      ...(identityProvider ? { accounts: { exists: async (email: string) => (await identityProvider.findByEmail(email)) !== undefined } } : {}),
    });
    const { metrics } = options;
    this.runner = new WorkerRunner({
      workers: options.config.controller.workers,
      sync: async (key) => {
        const { namespace = '', name } = splitObjectKey(key);
        echoes.started(key);
        try {
          return await this.reconciler.reconcile(namespace, name);
        } finally {
          echoes.finished(key);
        }
      },
      log: options.log,
      keyField: 'invitation',
      ...(metrics
        ? {
            observe: (durationMs, outcome) => {
              metrics.observeReconcile(durationMs, outcome);
            },
          }
        : {}),
    });
    this.queue = this.runner.queue;
    const identityConfig = options.config.identity;
    if (options.identity && identityConfig) {
      const identity = new IdentityReconciler({
        store: this.cluster,
        provider: options.identity,
        config: identityConfig,
        log: options.log.child({ component: 'identity' }),
      });
      const userRunner = new WorkerRunner({
        workers: options.config.controller.workers,
        sync: (name) => identity.reconcile(name),
        log: options.log,
        keyField: 'user',
      });
      setUpUserWatches(this.cluster, (name) => {
        userRunner.add(name);
      });
      this.userRunner = userRunner;
    }
    const rbac = options.config.rbac;
    if (rbac) {
      const bindings = new KubeBindings(options.kubeConfig, options.log, options.config.controller.resyncPeriodMs, options.rest);
      const reconciler = new RbacReconciler({
        users: this.cluster,
        namespaces: () => this.cluster.namespaces.list(),
        bindings,
        invitations: (namespace, name) => {
          const invitation = this.cluster.invitation(namespace, name);
          return invitation ? { invitation, namespaceTenant: this.cluster.namespaceTenant(namespace) } : undefined;
        },
        config: options.config,
        rbac,
        log: options.log.child({ component: 'rbac' }),
      });
      const rbacRunner = new WorkerRunner({
        workers: options.config.controller.workers,
        sync: (name) => reconciler.reconcile(name),
        log: options.log,
        keyField: 'user',
      });
      setUpRbacWatches(
        {
          users: this.cluster.users,
          namespaces: this.cluster.namespaces,
          invitations: this.cluster.invitations,
          roleBindings: bindings.roleBindings,
          clusterRoleBindings: bindings.clusterRoleBindings,
        },
        options.config.tenancy.namespaceLabel,
        (name) => {
          rbacRunner.add(name);
        },
      );
      this.bindings = bindings;
      this.rbacRunner = rbacRunner;
    }
    // After a mail server outage, the invitations that failed meanwhile are mailed now,
    // not when each one's backoff runs out (decide() retries an attempt that failed inside it).
    // Only those whose last attempt failed inside the outage: the others have nothing to gain.
    options.mailer?.onRecovered?.((outage) => {
      for (const invitation of this.cluster.invitations.list()) {
        if (invitation.status?.phase !== 'Pending') continue;
        const failed = this.cluster.records(invitation.metadata.uid ?? '').some((r) => !r.mail?.sentAt && failedInEndedOutage(r.mail, outage));
        if (failed) this.runner.add(objectKey(invitation.metadata.namespace, invitation.metadata.name));
      }
    });
    setUpWatches(this.cluster, {
      enqueue: (namespace, name) => {
        this.runner.add(objectKey(namespace, name));
      },
      changed: (kind, key, resourceVersion, invitation) => {
        echoes.event(kind, key, resourceVersion, objectKey(invitation.namespace, invitation.name));
      },
      invitationDeleted: (uid) => {
        // Only that invitation's records, found by index: a namespace deleted with thousands of
        // invitations must not rescan every record once per invitation.
        if (this.running) void this.removeRecords(this.cluster.records(uid));
      },
    });
  }

  /** Reconciles started and failed so far. */
  get stats(): ControllerStats {
    return { reconciles: this.runner.stats.syncs, errors: this.runner.stats.errors };
  }

  /** User reconciles against the identity provider started and failed so far (zero without usher.identity). */
  get identityStats(): ControllerStats {
    return { reconciles: this.userRunner?.stats.syncs ?? 0, errors: this.userRunner?.stats.errors ?? 0 };
  }

  /** User reconciles of their RoleBindings started and failed so far (zero without usher.rbac). */
  get rbacStats(): ControllerStats {
    return { reconciles: this.rbacRunner?.stats.syncs ?? 0, errors: this.rbacRunner?.stats.errors ?? 0 };
  }

  /** Fills the caches, then starts the workers. Resolves once caches are synced. */
  async start(): Promise<void> {
    await Promise.all([this.cluster.start(), ...(this.bindings?.informers().map((i) => i.start()) ?? [])]);
    this.options.log.info({ invitations: this.cluster.invitations.list().length }, 'caches synced, starting workers');
    this.running = true;
    await this.removeRecords(this.cluster.orphanRecords());
    this.runner.start();
    this.userRunner?.start();
    this.rbacRunner?.start();
  }

  /**
   * Deletes the records of invitations that are gone. Records live in Usher's
   * namespace, so no ownerReference can take them with their invitation; a
   * record without its invitation opens nothing (the page checks the binding),
   * this only keeps the namespace clean. At start: every orphan (deletions while
   * Usher was down); on an invitation's deletion: its own records.
   */
  private async removeRecords(records: readonly InvitationRecord[]): Promise<void> {
    for (const record of records) {
      try {
        await this.cluster.deleteRecord(record.name);
        this.options.log.info(
          { record: record.name, invitation: `${record.invitationNamespace}/${record.invitationName}` },
          'deleted the record of a deleted invitation',
        );
      } catch (err) {
        this.options.log.warn(
          { record: record.name, err: apiErrorOf(err).message },
          'could not delete an orphaned invitation record; retrying at the next restart',
        );
      }
    }
  }

  /** Stops taking new keys and waits for in-flight reconciles to finish (graceful shutdown). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all([this.runner.stop(), this.userRunner?.stop(), this.rbacRunner?.stop()]);
    for (const informer of this.bindings?.informers() ?? []) informer.stop();
    this.cluster.stop();
  }

  /** Whether every cache has been filled (readiness). */
  synced(): boolean {
    return this.cluster.hasSynced() && (this.bindings?.informers().every((i) => i.hasSynced()) ?? true);
  }

  /** Invitation keys waiting for a worker (the work-queue depth metric). */
  queueDepth(): number {
    return this.queue.len();
  }

  /** Cached invitations by status.phase (metrics). */
  invitationsByPhase(): Record<string, number> {
    return countByPhase(this.cluster.invitations.list());
  }
}

// The informer against the real API server: initial sync, live events, a
// connection cut mid-watch (through a TCP proxy the test controls), a stop and
// restart, server-side watch ends, the watchdog and the resync. The 410 path
// needs etcd compaction to provoke; test/runtime/informer.test.ts covers it.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { CoreV1Api, KubeConfig, V1ConfigMap, V1ObjectMeta, Watch } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { Informer, type InformerOptions, type WatchLike } from '../../src/runtime/informer.ts';
import type { Logger } from '../../src/runtime/log.ts';
import { useNamespace } from '../support/cluster.ts';

const ns = useNamespace('informer');
let kc: KubeConfig;
let core: CoreV1Api;

beforeAll(() => {
  kc = loadKubeConfig(inject('kubeconfigs').admin);
  core = kc.makeApiClient(CoreV1Api);
});

const informers: Informer<V1ConfigMap>[] = [];
afterEach(() => {
  for (const informer of informers.splice(0)) informer.stop();
});

interface Watched {
  informer: Informer<V1ConfigMap>;
  events: string[];
  /** Each event with the old and new resourceVersions, for the resync test. */
  updates: { name: string; from: string; to: string }[];
  lists: () => number;
  logs: { level: string; msg: string }[];
}

/** An informer on the file's namespace's ConfigMaps (optionally only those with `label`), recording what it emits. */
function watchConfigMaps(options: Partial<InformerOptions<V1ConfigMap>> & { api?: CoreV1Api; label?: string } = {}): Watched {
  const { api = core, label, ...rest } = options;
  let lists = 0;
  const logs: { level: string; msg: string }[] = [];
  const record =
    (level: string) =>
    (_obj: object, msg?: string): void => {
      logs.push({ level, msg: msg ?? '' });
    };
  const log: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
  const informer = new Informer<V1ConfigMap>({
    kubeConfig: kc,
    path: `/api/v1/namespaces/${ns()}/configmaps`,
    list: (page) => {
      lists++;
      return api.listNamespacedConfigMap({ namespace: ns(), labelSelector: label, limit: page.limit, _continue: page.continue });
    },
    labelSelector: label,
    log,
    ...rest,
  });
  informers.push(informer);
  const events: string[] = [];
  const updates: { name: string; from: string; to: string }[] = [];
  const name = (cm: V1ConfigMap): string => cm.metadata?.name ?? '?';
  informer.on('add', (cm) => events.push(`add ${name(cm)}`));
  informer.on('update', (cm, old) => {
    events.push(`update ${name(cm)}`);
    updates.push({ name: name(cm), from: old.metadata?.resourceVersion ?? '', to: cm.metadata?.resourceVersion ?? '' });
  });
  informer.on('delete', (cm) => events.push(`delete ${name(cm)}`));
  return { informer, events, updates, lists: () => lists, logs };
}

async function createConfigMap(name: string, data: Record<string, string> = { k: 'v' }, labels?: Record<string, string>): Promise<void> {
  // The generated client wants its own class instances, not look-alike literals.
  const body = new V1ConfigMap();
  body.metadata = new V1ObjectMeta();
  body.metadata.name = name;
  if (labels) body.metadata.labels = labels;
  body.data = data;
  await core.createNamespacedConfigMap({ namespace: ns(), body });
}

async function replaceData(name: string, data: Record<string, string>, labels?: Record<string, string>): Promise<void> {
  const current = await core.readNamespacedConfigMap({ namespace: ns(), name });
  current.data = data;
  if (labels && current.metadata) current.metadata.labels = labels;
  await core.replaceNamespacedConfigMap({ namespace: ns(), name, body: current });
}

async function deleteConfigMap(name: string): Promise<void> {
  await core.deleteNamespacedConfigMap({ namespace: ns(), name });
}

const eventually = (fn: () => void, timeout = 15_000): Promise<void> => vi.waitFor(fn, { timeout, interval: 50 });

/** Counts the watches started, around client-node's real Watch. */
function countingWatch(): WatchLike & { count: number } {
  const real = new Watch(kc);
  const counter = {
    count: 0,
    watch: (...args: Parameters<WatchLike['watch']>) => {
      counter.count++;
      return real.watch(...args);
    },
  };
  return counter;
}

describe('Informer against the API server', () => {
  it('syncs existing objects, then sees adds, updates and deletes', async () => {
    // Labelled, so that a ConfigMap some controller adds to new namespaces (kube-root-ca.crt) cannot interfere.
    await createConfigMap('sync-1', { a: '1' }, { sync: 'yes' });
    await createConfigMap('sync-2', { k: 'v' }, { sync: 'yes' });
    const { informer, events } = watchConfigMaps({ label: 'sync=yes' });
    await informer.start();
    expect(informer.hasSynced()).toBe(true);
    expect(informer.get(ns(), 'sync-1')?.data).toEqual({ a: '1' });
    expect(
      informer
        .list(ns())
        .map((cm) => cm.metadata?.name)
        .sort(),
    ).toEqual(['sync-1', 'sync-2']);
    expect(events.sort()).toEqual(['add sync-1', 'add sync-2']);
    // The server sends managedFields; the cache does not keep them.
    expect(informer.get(ns(), 'sync-1')?.metadata?.managedFields).toBeUndefined();

    events.length = 0;
    await createConfigMap('sync-3', { k: 'v' }, { sync: 'yes' });
    await replaceData('sync-1', { a: '2' });
    await deleteConfigMap('sync-2');
    await eventually(() => {
      expect(events).toEqual(['add sync-3', 'update sync-1', 'delete sync-2']);
    });
    expect(informer.get(ns(), 'sync-1')?.data).toEqual({ a: '2' });
    expect(informer.get(ns(), 'sync-2')).toBeUndefined();
    expect(informer.get(ns(), 'sync-3')?.metadata?.managedFields).toBeUndefined();
  });

  it('with a label selector sees only matching objects, and one relabelled away as deleted', async () => {
    await createConfigMap('sel-in', { k: 'v' }, { team: 'usher' });
    await createConfigMap('sel-out', { k: 'v' }, { team: 'other' });
    const { informer, events } = watchConfigMaps({ label: 'team=usher' });
    await informer.start();
    expect(informer.list(ns()).map((cm) => cm.metadata?.name)).toEqual(['sel-in']);
    events.length = 0;
    await replaceData('sel-out', { k: 'v' }, { team: 'usher' });
    await replaceData('sel-in', { k: 'v' }, { team: 'gone' });
    await eventually(() => {
      expect(events).toEqual(['add sel-out', 'delete sel-in']);
    });
    expect(informer.list(ns()).map((cm) => cm.metadata?.name)).toEqual(['sel-out']);
  });

  describe('when the connection fails', () => {
    let proxy: CuttableProxy;
    beforeAll(async () => {
      proxy = await CuttableProxy.start(new URL(kc.getCurrentCluster()?.server ?? ''));
    });
    afterAll(async () => {
      await proxy.close();
    });

    it('backs off, reconnects, and sees what happened meanwhile, resuming without a relist', async () => {
      const viaProxy = withServer(kc, proxy.url);
      const watched = watchConfigMaps({ kubeConfig: viaProxy, api: viaProxy.makeApiClient(CoreV1Api), label: 'cut=yes' });
      const { informer, events, logs } = watched;
      await createConfigMap('cut-before', { k: 'v' }, { cut: 'yes' });
      await informer.start();
      await eventually(() => {
        expect(events).toEqual(['add cut-before']);
      });

      proxy.cut();
      // Changes made while the informer cannot reach the server.
      await createConfigMap('cut-during', { k: 'v' }, { cut: 'yes' });
      await replaceData('cut-before', { k: 'changed' }, { cut: 'yes' });
      await eventually(() => {
        expect(logs.filter((l) => l.msg === 'watch failed; resuming after backoff').length).toBeGreaterThanOrEqual(2);
      });
      expect(events).toEqual(['add cut-before']);

      proxy.restore();
      await eventually(() => {
        expect(events).toEqual(['add cut-before', 'add cut-during', 'update cut-before']);
      });
      expect(informer.get(ns(), 'cut-before')?.data).toEqual({ k: 'changed' });
      expect(watched.lists()).toBe(1);
      // And it keeps watching.
      await deleteConfigMap('cut-during');
      await eventually(() => {
        expect(events.at(-1)).toBe('delete cut-during');
      });
    });

    it('retries the initial list while the server is unreachable and syncs once it is back', async () => {
      await createConfigMap('down-1', { k: 'v' }, { down: 'yes' });
      proxy.cut();
      const viaProxy = withServer(kc, proxy.url);
      const watched = watchConfigMaps({ kubeConfig: viaProxy, api: viaProxy.makeApiClient(CoreV1Api), label: 'down=yes' });
      let synced = false;
      const started = watched.informer.start().then(() => {
        synced = true;
      });
      await eventually(() => {
        expect(watched.lists()).toBeGreaterThanOrEqual(2);
      });
      expect(synced).toBe(false);
      expect(watched.logs.some((l) => l.msg === 'list failed')).toBe(true);
      proxy.restore();
      await started;
      expect(watched.events).toEqual(['add down-1']);
    });
  });

  it('after stop() and start() emits what changed while stopped', async () => {
    await createConfigMap('restart-keep', { k: 'v' }, { restart: 'yes' });
    await createConfigMap('restart-drop', { k: 'v' }, { restart: 'yes' });
    const { informer, events } = watchConfigMaps({ label: 'restart=yes' });
    await informer.start();
    informer.stop();
    events.length = 0;
    await deleteConfigMap('restart-drop');
    await createConfigMap('restart-new', { k: 'v' }, { restart: 'yes' });
    await replaceData('restart-keep', { k: 'w' });
    await informer.start();
    expect(events.sort()).toEqual(['add restart-new', 'delete restart-drop', 'update restart-keep']);
    // Watching again.
    await createConfigMap('restart-after', { k: 'v' }, { restart: 'yes' });
    await eventually(() => {
      expect(events).toContain('add restart-after');
    });
  });

  it('resumes without a relist when the server ends each watch (timeoutSeconds)', async () => {
    const watch = countingWatch();
    const watched = watchConfigMaps({ watch, watchTimeoutSeconds: 1, label: 'short=yes' });
    await watched.informer.start();
    await eventually(() => {
      expect(watch.count).toBeGreaterThanOrEqual(3);
    });
    await createConfigMap('short-1', { k: 'v' }, { short: 'yes' });
    await eventually(() => {
      expect(watched.events).toEqual(['add short-1']);
    });
    expect(watched.lists()).toBe(1);
  });

  it('restarts a silent watch after watchdogMs', async () => {
    const watch = countingWatch();
    const watched = watchConfigMaps({ watch, watchdogMs: 500, label: 'quiet=yes' });
    await watched.informer.start();
    await eventually(() => {
      expect(watch.count).toBeGreaterThanOrEqual(3);
    });
    expect(watched.logs.filter((l) => l.msg === 'watch silent for too long; restarting it').length).toBeGreaterThanOrEqual(2);
    expect(watched.lists()).toBe(1);
    await createConfigMap('quiet-1', { k: 'v' }, { quiet: 'yes' });
    await eventually(() => {
      expect(watched.events).toEqual(['add quiet-1']);
    });
  });

  // client-node's Watch gives up on a stream after 30 s without data, and the
  // server sends bookmarks only about once a minute: unless the informer raises
  // that limit, a quiet watch never sees a bookmark and its resourceVersion
  // goes stale. Slow (a minute), because that is the server's bookmark rhythm.
  it('keeps a quiet watch open past 30 s and follows the server’s bookmarks', { timeout: 120_000 }, async () => {
    const watched = watchConfigMaps({ label: 'bookmarks=yes' });
    await watched.informer.start();
    const listed = Number(watched.informer.lastResourceVersion());
    // Other ConfigMaps changing move the server's resourceVersion on, which only a bookmark brings to this watch.
    let n = 0;
    const churn = setInterval(() => {
      void createConfigMap(`churn-${n++}`);
    }, 5000);
    try {
      await eventually(() => {
        expect(Number(watched.informer.lastResourceVersion())).toBeGreaterThan(listed);
      }, 100_000);
    } finally {
      clearInterval(churn);
    }
    expect(watched.logs.map((l) => l.msg)).not.toContain('watch ended; resuming');
    expect(watched.logs.map((l) => l.msg)).not.toContain('watch closed; resuming');
    expect(watched.lists()).toBe(1);
    expect(watched.events).toEqual([]);
  });

  it('lists in pages of pageSize with the API server’s continue tokens, every object into the cache, then watches', async () => {
    for (let i = 0; i < 7; i++) await createConfigMap(`paged-${i}`, { k: 'v' }, { paged: 'yes' });
    const watched = watchConfigMaps({ pageSize: 3, label: 'paged=yes' });
    await watched.informer.start();
    expect(watched.lists()).toBe(3);
    expect(
      watched.informer
        .list()
        .map((cm) => cm.metadata?.name)
        .sort(),
    ).toEqual(Array.from({ length: 7 }, (_, i) => `paged-${i}`));
    await createConfigMap('paged-7', { k: 'v' }, { paged: 'yes' });
    await eventually(() => {
      expect(watched.events).toContain('add paged-7');
    });
  });

  it('resyncs from the cache: every resyncPeriodMs an update for every object, unchanged ones too, and no list', async () => {
    await createConfigMap('resync-1', { k: 'v' }, { resync: 'yes' });
    await createConfigMap('resync-2', { k: 'v' }, { resync: 'yes' });
    const watched = watchConfigMaps({ resyncPeriodMs: 1000, label: 'resync=yes' });
    await watched.informer.start();
    await eventually(() => {
      const unchanged = watched.updates.filter((u) => u.from === u.to).map((u) => u.name);
      expect(unchanged).toEqual(expect.arrayContaining(['resync-1', 'resync-2']));
    });
    expect(watched.lists()).toBe(1);
    // Events still flow between resyncs.
    await createConfigMap('resync-3', { k: 'v' }, { resync: 'yes' });
    await eventually(() => {
      expect(watched.events).toContain('add resync-3');
    });
  });
});

/** A copy of the kubeconfig whose current cluster's server is `server`. */
function withServer(base: KubeConfig, server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: base.clusters.map((c) => (c.name === base.getCurrentCluster()?.name ? { ...c, server } : c)),
    users: base.users,
    contexts: base.contexts,
    currentContext: base.currentContext,
  });
  return kc;
}

/** A TCP pass-through (TLS goes through untouched) whose connections the test can reset, and refuse until restored. */
class CuttableProxy {
  readonly #target: URL;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #up = true;
  url = '';

  private constructor(target: URL) {
    this.#target = target;
    this.#server = createServer((client) => {
      this.#accept(client);
    });
  }

  static async start(target: URL): Promise<CuttableProxy> {
    const proxy = new CuttableProxy(target);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    const address = proxy.#server.address();
    if (!address || typeof address !== 'object') throw new Error('proxy has no address');
    proxy.url = `https://127.0.0.1:${address.port}`;
    return proxy;
  }

  /** Resets every open connection and refuses new ones. */
  cut(): void {
    this.#up = false;
    for (const socket of this.#sockets) socket.resetAndDestroy();
  }

  restore(): void {
    this.#up = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }

  #accept(client: Socket): void {
    if (!this.#up) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(Number(this.#target.port), this.#target.hostname);
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.#sockets.add(from);
      from.on('error', () => {
        to.destroy();
      });
      from.on('close', () => {
        this.#sockets.delete(from);
        to.destroy();
      });
      from.pipe(to);
    }
  }
}

// A list+watch cache of one resource path with client-go reflector semantics,
// because client-node's own informer can stop for good on an error, never asks
// for bookmarks and has no watchdog (see shared notes, kubernetes-client-pitfalls).
//
// One loop per start(): list (fills the cache, emits the differences), then
// watch from the list's resourceVersion, resuming from the newest version seen
// (bookmarks included) whenever a watch ends. Only a 410 Gone lists again.
// Errors back off with jitter and never end the loop.
//
// The list is paged (limit/continue, PAGE_SIZE objects a page, as client-go's
// reflector through its ListPager) and each page goes into the cache as it
// arrives, so no response holds the whole collection: an unpaged LIST of
// 200,000 invitations is one string V8 cannot hold. Paging rather than a
// watch-list (sendInitialEvents=true): a paged LIST works with any API server
// and every list function here (the typed clients take limit and continue),
// needs no new stream handling, and its expired-token case (410 on a continue)
// is just "list again"; a watch-list would also need the watch to pass
// sendInitialEvents and resourceVersionMatch and to recognise the
// initial-events-end bookmark.
//
// The periodic resync does not list: as client-go's, it re-emits `update` for
// every cached object (obj and old the same), so handlers get a second look at
// everything without the API server paying for a full LIST every period.
//
// Indexers as client-go's cache.Indexers: addIndex(name, fn) keeps, for every
// value fn returns, the cached objects that have it, through every add, update,
// delete and relist; byIndex(name, value) reads them without a scan.
import type { KubeConfig } from '@kubernetes/client-node';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { apiErrorOf } from './client.ts';
import { silentLogger, type Logger } from './log.ts';
import { KubeWatch } from './watch.ts';

/**
 * What the informer needs of an object. Looser than client-node's
 * KubernetesObject (whose V1ObjectMeta has Date timestamps), so that both
 * client-node's classes and the plain JSON types of src/api fit.
 */
export interface ObjectLike {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

/** One page of a list; `metadata.continue` is set when more pages follow. */
export interface ListResult<T> {
  items: T[];
  /** `_continue`: client-node's typed lists (V1ListMeta) spell the token so; either is read. */
  metadata?: { resourceVersion?: string; continue?: string; _continue?: string };
}

/** Which page to list: at most `limit` objects (none: all), from `continue` (none: the first page). */
export interface ListPageOptions {
  limit?: number;
  continue?: string;
}

/** Objects per list page by default (client-go's pager and reflector use 500). */
export const PAGE_SIZE = 500;

/** The part of client-node's Watch the informer uses; tests pass a fake. */
export interface WatchLike {
  watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController>;
}

/**
 * T is what the cache holds; R what the API server sends (list items, watch
 * objects): the same unless a transform turns one into the other.
 */
export interface InformerOptions<T extends ObjectLike, R extends ObjectLike = T> {
  kubeConfig: KubeConfig;
  /** Collection path to watch, e.g. `/apis/usher.dev/v1alpha1/userinvitations` or `/api/v1/namespaces/x/configmaps`. */
  path: string;
  /**
   * Lists one page of the same collection (same namespace and selectors as path
   * and the options below): at most `limit` objects, from the `continue` token of
   * the page before; its metadata.continue says whether more follow.
   */
  list: (page: ListPageOptions) => Promise<ListResult<R>>;
  /** Objects per list page (the `limit` passed to list()); default PAGE_SIZE. 0: one unpaged list. */
  pageSize?: number;
  labelSelector?: string;
  fieldSelector?: string;
  /** Re-emits `update` for every cached object (no list); 0 turns it off. Default 30 min. */
  resyncPeriodMs?: number;
  /** Restart the watch when nothing (no event, no bookmark) arrived for this long; 0 turns it off. Default 5 min. */
  watchdogMs?: number;
  /** Server-side watch timeout; default random 300–600 s per watch, as client-go. */
  watchTimeoutSeconds?: number;
  /** A list() call (one page) taking longer counts as failed (its late result is ignored). Default 2 min. */
  listTimeoutMs?: number;
  /** Retry delays after errors. Default 800 ms doubling to 30 s, reset after 2 min. */
  backoff?: BackoffOptions;
  /**
   * Applied to every object before it is cached (after managedFields are
   * dropped): keep only what the handlers and readers use. It must keep
   * metadata.name, namespace and resourceVersion (the cache's key and version).
   * Without one the objects are cached as they come, so R must then be T.
   */
  transform?: (obj: R) => T;
  log?: Logger;
  /** Replaces the KubeWatch of src/runtime/watch.ts (tests). */
  watch?: WatchLike;
}

/**
 * add(obj), update(obj, old), delete(obj). A delete found by a relist carries
 * the last state seen; during a resync update's obj and old are the same object.
 */
export type InformerEvent = 'add' | 'update' | 'delete';

type Handler<T> = (obj: T, old?: T) => void;

/** The values an object is filed under in one index (client-go's IndexFunc); [] files it under none. */
export type IndexFunc<T> = (obj: T) => string[];

/** What onRelisted() handlers learn about a full relist (the first list, or one after 410 Gone). */
export interface RelistInfo {
  /** performance.now() when its first page was requested: whatever was written before then is in the cache now. */
  requestedAt: number;
}

interface Index<T> {
  fn: IndexFunc<T>;
  /** value → keys of the objects filed under it. */
  keys: Map<string, Set<string>>;
  /** key → the values its object is filed under now, to unfile it on update and delete. */
  values: Map<string, string[]>;
}

/** client-go's MetaNamespaceKeyFunc: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

/** The inverse of objectKey(). */
export function splitObjectKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

// How long a started watch may stay quiet (no event, no bookmark) before it is
// abandoned and resumed: above the API server's bookmark period (about a minute),
// so quiet watches do not churn. A watch whose response never starts is given up
// much sooner, by KubeWatch's header timeout (src/runtime/watch.ts); client-node's
// Watch had one timer for both. The informer's own watchdog still catches stalls.
const WATCH_INACTIVITY_MS = 150_000;

/** Why one watch ended. */
type WatchEnd =
  { kind: 'closed' | 'timeout' | 'gone' | 'watchdog' | 'stopped'; events: number; ms: number } | { kind: 'error'; err: unknown; events: number; ms: number };

interface Attempt {
  ended: boolean;
  events: number;
  lastActivity: number;
  finish: (kind: Exclude<WatchEnd['kind'], 'error'>) => void;
  fail: (err: unknown) => void;
}

/** State of one start()…stop(); a later start() gets a new one, so a winding-down loop cannot touch the cache. */
interface Run {
  stopped: boolean;
  /** A resync pass is under way (passes never overlap). */
  resyncing: boolean;
  synced: Promise<undefined>;
  resolveSynced: (value: undefined) => void;
  rejectSynced: (err: Error) => void;
  attempt?: Attempt;
  wake?: () => void;
  resyncTimer?: NodeJS.Timeout;
}

const now = (): number => performance.now();

export class Informer<T extends ObjectLike, R extends ObjectLike = T> {
  readonly #opts: InformerOptions<T, R>;
  readonly #watch: WatchLike;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  readonly #cache = new Map<string, T>();
  readonly #handlers: Record<InformerEvent, Handler<T>[]> = { add: [], update: [], delete: [] };
  readonly #relistHandlers: ((info: RelistInfo) => void)[] = [];
  readonly #resyncHandlers: (() => void)[] = [];
  readonly #indexes = new Map<string, Index<T>>();
  #resourceVersion = '';
  #synced = false;
  #run: Run | undefined;

  constructor(options: InformerOptions<T, R>) {
    this.#opts = options;
    this.#log = options.log ?? silentLogger;
    this.#backoff = new Backoff(options.backoff);
    this.#watch = options.watch ?? new KubeWatch(options.kubeConfig, { inactivityTimeoutMs: WATCH_INACTIVITY_MS });
  }

  on(event: 'add' | 'delete', handler: (obj: T) => void): this;
  on(event: 'update', handler: (obj: T, old: T) => void): this;
  on(event: InformerEvent, handler: (obj: T, old?: T) => void): this;
  on(event: InformerEvent, handler: (obj: T, old: T) => void): this {
    // Only update handlers may require `old`, and #emit always passes it for updates.
    this.#handlers[event].push(handler as Handler<T>);
    return this;
  }

  off(event: InformerEvent, handler: (obj: T, old: T) => void): this {
    const list = this.#handlers[event];
    const i = list.indexOf(handler as Handler<T>);
    if (i >= 0) list.splice(i, 1);
    return this;
  }

  /**
   * Calls `handler` after every full relist (the first list, one after 410 Gone;
   * a resync lists nothing), once the last page is in the cache and the
   * differences were emitted.
   */
  onRelisted(handler: (info: RelistInfo) => void): this {
    this.#relistHandlers.push(handler);
    return this;
  }

  /** Calls `handler` after every resync pass, once every cached object was emitted as an update. */
  onResynced(handler: () => void): this {
    this.#resyncHandlers.push(handler);
    return this;
  }

  /**
   * Adds an index (client-go's AddIndexers): from now on the cache keeps, for
   * each value `fn` returns for an object, the objects filed under it; objects
   * already cached are filed at once. Names are unique per informer.
   */
  addIndex(name: string, fn: IndexFunc<T>): this {
    if (this.#indexes.has(name)) throw new Error(`informer for ${this.#opts.path} already has an index named ${name}`);
    const index: Index<T> = { fn, keys: new Map(), values: new Map() };
    this.#indexes.set(name, index);
    for (const [key, obj] of this.#cache) this.#file(name, index, key, obj);
    return this;
  }

  /** Cached objects filed under `value` in the index `name` (client-go's ByIndex); read-only like get()'s. */
  byIndex(name: string, value: string): T[] {
    const index = this.#indexes.get(name);
    if (!index) throw new Error(`informer for ${this.#opts.path} has no index named ${name}`);
    const objects: T[] = [];
    for (const key of index.keys.get(value) ?? []) {
      const obj = this.#cache.get(key);
      if (obj) objects.push(obj);
    }
    return objects;
  }

  /**
   * Starts listing and watching; resolves once the first list is in the cache
   * (rejects if stop() comes first). List failures are retried, not thrown.
   * A start() after stop() relists and emits what changed meanwhile.
   */
  start(): Promise<void> {
    if (this.#run && !this.#run.stopped) return this.#run.synced;
    const { promise: synced, resolve: resolveSynced, reject: rejectSynced } = Promise.withResolvers<undefined>();
    // Marks it handled: a caller that never awaits start() gets no unhandled rejection.
    synced.catch(() => undefined);
    const run: Run = { stopped: false, resyncing: false, synced, resolveSynced, rejectSynced };
    this.#run = run;
    this.#synced = false;
    this.#backoff.reset();
    this.#spawn(run);
    return synced;
  }

  /** Stops watching; the cache keeps its last state. */
  stop(): void {
    const run = this.#run;
    if (!run || run.stopped) return;
    run.stopped = true;
    run.attempt?.finish('stopped');
    run.wake?.();
    clearTimeout(run.resyncTimer);
    run.rejectSynced(new Error(`informer for ${this.#opts.path} stopped before it synced`));
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  /** The newest resourceVersion seen (list, event or bookmark). */
  lastResourceVersion(): string {
    return this.#resourceVersion;
  }

  /** The cached object; treat it as read-only, it is shared with every handler. */
  get(namespace: string | undefined, name: string): T | undefined {
    return this.#cache.get(objectKey(namespace, name));
  }

  /** Cached objects, all or of one namespace ('' for cluster-scoped ones); read-only like get()'s. */
  list(namespace?: string): T[] {
    const all = [...this.#cache.values()];
    return namespace === undefined ? all : all.filter((obj) => (obj.metadata?.namespace ?? '') === namespace);
  }

  /** Runs the loop; should it ever throw (a bug), says so and starts it again rather than stop silently. */
  #spawn(run: Run): void {
    this.#loop(run).catch((err: unknown) => {
      if (isStopped(run)) return;
      const delay = this.#backoff.next();
      this.#log.error({ path: this.#opts.path, err, retryInMs: Math.round(delay) }, 'informer loop crashed; restarting it');
      void this.#sleep(run, delay).then(() => {
        if (!isStopped(run)) this.#spawn(run);
      });
    });
  }

  async #loop(run: Run): Promise<void> {
    let relist = true;
    while (!isStopped(run)) {
      if (relist) {
        try {
          await this.#relist(run);
        } catch (err) {
          if (isStopped(run)) break;
          const delay = this.#backoff.next();
          this.#log.warn({ path: this.#opts.path, err: apiErrorOf(err), retryInMs: Math.round(delay) }, 'list failed');
          await this.#sleep(run, delay);
          continue;
        }
        if (isStopped(run)) break;
        if (!run.resyncTimer) this.#armResync(run);
        if (!this.#synced) {
          this.#synced = true;
          run.resolveSynced(undefined);
        }
      }
      const end = await this.#watchOnce(run);
      if (isStopped(run)) break;
      relist = await this.#afterWatch(run, end);
    }
    clearTimeout(run.resyncTimer);
  }

  /** Logs why the watch ended and waits if it failed; true when a relist is needed. */
  async #afterWatch(run: Run, end: WatchEnd): Promise<boolean> {
    const path = this.#opts.path;
    switch (end.kind) {
      case 'gone':
        this.#log.info({ path, resourceVersion: this.#resourceVersion }, 'resourceVersion expired (410 Gone); relisting');
        this.#resourceVersion = '';
        return true;
      case 'watchdog':
        this.#log.warn({ path, silentMs: this.#opts.watchdogMs ?? 300_000 }, 'watch silent for too long; restarting it');
        return false;
      case 'closed':
        // A watch the server ends at once without a single event is a failure in disguise (client-go's "very short watch").
        if (end.events === 0 && end.ms < 1000) {
          await this.#sleep(run, this.#backoff.next());
        }
        this.#log.debug({ path, events: end.events }, 'watch closed; resuming');
        return false;
      case 'error': {
        const delay = this.#backoff.next();
        this.#log.warn({ path, err: apiErrorOf(end.err), retryInMs: Math.round(delay) }, 'watch failed; resuming after backoff');
        await this.#sleep(run, delay);
        return false;
      }
      default: // timeout (no data for WATCH_INACTIVITY_MS), stopped
        this.#log.debug({ path, reason: end.kind }, 'watch ended; resuming');
        return false;
    }
  }

  /**
   * Lists page by page into the cache, emitting what changed as each page
   * arrives (add, or update when the resourceVersion moved), then deletes what
   * no page had. A continue token that expired (410: etcd compacted the
   * list's revision meanwhile) starts the list over, as client-go's reflector
   * does; so does the rare second time, then the error goes to the loop's backoff.
   */
  async #relist(run: Run): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#listPages(run);
        return;
      } catch (err) {
        if (!(err instanceof ExpiredContinue) || attempt >= MAX_LIST_RESTARTS || run.stopped) throw err instanceof ExpiredContinue ? err.cause : err;
        this.#log.info({ path: this.#opts.path, pages: err.pages, attempt }, 'list continue token expired (410 Gone); listing again from the start');
      }
    }
  }

  async #listPages(run: Run): Promise<void> {
    const requestedAt = now();
    const pageSize = this.#opts.pageSize ?? PAGE_SIZE;
    const timeoutMs = this.#opts.listTimeoutMs ?? 120_000;
    const seen = new Set<string>();
    let token: string | undefined;
    let resourceVersion = '';
    let pages = 0;
    do {
      const page: ListPageOptions = { ...(pageSize > 0 ? { limit: pageSize } : {}), ...(token ? { continue: token } : {}) };
      let result: ListResult<R>;
      try {
        result = await withTimeout(this.#opts.list(page), timeoutMs, 'list');
      } catch (err) {
        if (token && apiErrorOf(err).code === 410) throw new ExpiredContinue(err, pages);
        throw err;
      }
      if (run.stopped) return;
      pages++;
      for (const item of result.items) {
        const obj = this.#prepare(item);
        if (!obj) continue;
        const key = objectKey(obj.metadata?.namespace, obj.metadata?.name ?? '');
        seen.add(key);
        const old = this.#cache.get(key);
        this.#put(key, obj);
        if (!old) this.#emit('add', obj);
        else if (versionOf(old) !== versionOf(obj)) this.#emit('update', obj, old);
      }
      // Every page of one list carries the revision of its first (the continue token pins it).
      resourceVersion = result.metadata?.resourceVersion ?? resourceVersion;
      token = continueOf(result) || undefined;
    } while (token);
    for (const [key, old] of this.#cache) {
      if (!seen.has(key)) {
        this.#remove(key);
        this.#emit('delete', old);
      }
    }
    this.#resourceVersion = resourceVersion;
    this.#log.debug({ path: this.#opts.path, objects: seen.size, pages, resourceVersion }, 'listed');
    for (const handler of this.#relistHandlers.slice()) {
      try {
        handler({ requestedAt });
      } catch (err) {
        this.#log.error({ path: this.#opts.path, err }, 'informer relist handler threw');
      }
    }
  }

  /** Runs one watch; resolves with why it ended. */
  #watchOnce(run: Run): Promise<WatchEnd> {
    return new Promise((resolve) => {
      const startedAt = now();
      let controller: AbortController | undefined;
      let watchdog: NodeJS.Timeout | undefined;
      const end = (result: WatchEnd): void => {
        if (attempt.ended) return;
        attempt.ended = true;
        clearTimeout(watchdog);
        if (run.attempt === attempt) run.attempt = undefined;
        controller?.abort();
        resolve(result);
      };
      const attempt: Attempt = {
        ended: false,
        events: 0,
        lastActivity: startedAt,
        finish: (kind) => {
          end({ kind, events: attempt.events, ms: now() - startedAt });
        },
        fail: (err) => {
          end({ kind: 'error', err, events: attempt.events, ms: now() - startedAt });
        },
      };
      run.attempt = attempt;

      // One timer per watch, re-armed for the remainder rather than on every event.
      const watchdogMs = this.#opts.watchdogMs ?? 300_000;
      const check = (): void => {
        const idle = now() - attempt.lastActivity;
        if (idle >= watchdogMs) attempt.finish('watchdog');
        else arm(watchdogMs - idle);
      };
      const arm = (ms: number): void => {
        watchdog = setTimeout(check, ms);
        watchdog.unref(); // the watch's own request keeps the process alive
      };
      if (watchdogMs > 0 && Number.isFinite(watchdogMs)) arm(watchdogMs);

      const params = {
        resourceVersion: this.#resourceVersion || undefined,
        allowWatchBookmarks: true,
        timeoutSeconds: this.#opts.watchTimeoutSeconds ?? Math.floor(300 * (1 + Math.random())),
        labelSelector: this.#opts.labelSelector,
        fieldSelector: this.#opts.fieldSelector,
      };
      const done = (err: unknown): void => {
        if (err === null || err === undefined) attempt.finish('closed');
        else if (apiErrorOf(err).code === 410) attempt.finish('gone');
        else if ((err as { name?: unknown }).name === 'TimeoutError') attempt.finish('timeout');
        else attempt.fail(err);
      };
      let started: Promise<AbortController>;
      try {
        started = this.#watch.watch(
          this.#opts.path,
          params,
          (type, obj) => {
            this.#onEvent(attempt, type, obj);
          },
          done,
        );
      } catch (err) {
        attempt.fail(err);
        return;
      }
      started.then(
        (c) => {
          // watch() resolves only once the response has started; the watch may have ended meanwhile.
          controller = c;
          if (attempt.ended) c.abort();
        },
        (err: unknown) => {
          attempt.fail(err);
        },
      );
    });
  }

  #onEvent(attempt: Attempt, type: string, raw: unknown): void {
    // Lines already read may still arrive after the watch was aborted.
    if (attempt.ended) return;
    try {
      this.#handleEvent(attempt, type, raw);
    } catch (err) {
      // client-node's Watch would swallow this; end the watch instead, so the
      // event is retried from the last resourceVersion rather than lost unseen.
      attempt.fail(err);
    }
  }

  #handleEvent(attempt: Attempt, type: string, raw: unknown): void {
    attempt.lastActivity = now();
    attempt.events++;
    if (type === 'ERROR') {
      // A Status object; 410 means our resourceVersion left the server's window.
      if (apiErrorOf(raw).code === 410) attempt.finish('gone');
      else attempt.fail(raw);
      return;
    }
    const version = (raw as R | null)?.metadata?.resourceVersion;
    if (type === 'ADDED' || type === 'MODIFIED') {
      const obj = this.#prepare(raw as R);
      if (obj) this.#upsert(obj);
    } else if (type === 'DELETED') {
      const obj = this.#prepare(raw as R);
      if (obj) {
        this.#remove(objectKey(obj.metadata?.namespace, obj.metadata?.name ?? ''));
        this.#emit('delete', obj);
      }
    } else if (type !== 'BOOKMARK') {
      this.#log.warn({ path: this.#opts.path, type }, 'unknown watch event type ignored');
      return;
    }
    if (version) this.#resourceVersion = version;
  }

  #upsert(obj: T): void {
    const key = objectKey(obj.metadata?.namespace, obj.metadata?.name ?? '');
    const old = this.#cache.get(key);
    // After a reconnect the server may replay an object we already hold (client-node #2424).
    if (old && versionOf(old) !== undefined && versionOf(old) === versionOf(obj)) return;
    this.#put(key, obj);
    if (old) this.#emit('update', obj, old);
    else this.#emit('add', obj);
  }

  /** Caches the object and files it in every index. */
  #put(key: string, obj: T): void {
    this.#cache.set(key, obj);
    for (const [name, index] of this.#indexes) {
      this.#unfile(index, key);
      this.#file(name, index, key, obj);
    }
  }

  #remove(key: string): void {
    this.#cache.delete(key);
    for (const index of this.#indexes.values()) this.#unfile(index, key);
  }

  #file(name: string, index: Index<T>, key: string, obj: T): void {
    let values: string[];
    try {
      values = [...new Set(index.fn(obj))];
    } catch (err) {
      // A bug in an index function files the object nowhere rather than break the cache.
      this.#log.error({ path: this.#opts.path, index: name, key, err }, 'informer index function threw');
      return;
    }
    if (values.length === 0) return;
    index.values.set(key, values);
    for (const value of values) {
      const keys = index.keys.get(value);
      if (keys) keys.add(key);
      else index.keys.set(value, new Set([key]));
    }
  }

  #unfile(index: Index<T>, key: string): void {
    const values = index.values.get(key);
    if (!values) return;
    index.values.delete(key);
    for (const value of values) {
      const keys = index.keys.get(value);
      keys?.delete(key);
      if (keys?.size === 0) index.keys.delete(value);
    }
  }

  /** Drops managedFields (often the bulk of an object, and never read here) and applies the transform. */
  #prepare(obj: R): T | undefined {
    if (!obj.metadata?.name) {
      this.#log.warn({ path: this.#opts.path }, 'object without metadata.name ignored');
      return undefined;
    }
    delete (obj.metadata as { managedFields?: unknown }).managedFields;
    // Without a transform R is T (see InformerOptions.transform).
    return this.#opts.transform ? this.#opts.transform(obj) : (obj as unknown as T);
  }

  #emit(event: InformerEvent, obj: T, old?: T): void {
    for (const handler of this.#handlers[event].slice()) {
      try {
        handler(obj, old);
      } catch (err) {
        // One handler's bug must not starve the others or break the cache.
        this.#log.error({ path: this.#opts.path, event, err }, 'informer handler threw');
      }
    }
  }

  #armResync(run: Run): void {
    clearTimeout(run.resyncTimer);
    const period = this.#opts.resyncPeriodMs ?? 30 * 60_000;
    if (!(period > 0) || !Number.isFinite(period)) return;
    run.resyncTimer = setTimeout(() => {
      void this.#resync(run).finally(() => {
        if (!run.stopped) this.#armResync(run);
      });
    }, period);
    run.resyncTimer.unref();
  }

  /**
   * client-go's resync: `update(obj, obj)` for every cached object, from the
   * cache, in slices of RESYNC_SLICE with a turn of the event loop between them
   * so that 200,000 objects do not block it. The watch goes on meanwhile; an
   * object it changed or deleted since the pass began is emitted as it is now,
   * or not at all.
   */
  async #resync(run: Run): Promise<void> {
    if (run.resyncing || run.stopped) return;
    run.resyncing = true;
    try {
      const keys = [...this.#cache.keys()];
      for (let i = 0; i < keys.length; i++) {
        if (i > 0 && i % RESYNC_SLICE === 0) {
          await new Promise((resolve) => setImmediate(resolve));
          if (isStopped(run) || this.#run !== run) return;
        }
        const obj = this.#cache.get(keys[i] ?? '');
        if (obj) this.#emit('update', obj, obj);
      }
      this.#log.debug({ path: this.#opts.path, objects: keys.length }, 'resynced from the cache');
      for (const handler of this.#resyncHandlers.slice()) {
        try {
          handler();
        } catch (err) {
          this.#log.error({ path: this.#opts.path, err }, 'informer resync handler threw');
        }
      }
    } finally {
      run.resyncing = false;
    }
  }

  /** Waits, unless stop() comes first. Kept referenced: a backing-off informer is still running. */
  #sleep(run: Run, ms: number): Promise<void> {
    if (run.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        if (run.wake === wake) run.wake = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      run.wake = wake;
    });
  }
}

/** Read through a call: TypeScript would otherwise keep `stopped` narrowed across awaits, while stop() changes it meanwhile. */
function isStopped(run: Run): boolean {
  return run.stopped;
}

/** Objects emitted per turn of the event loop during a resync. */
const RESYNC_SLICE = 1000;

/** Starts over after an expired continue token at most this many times in a row before it counts as a failed list. */
const MAX_LIST_RESTARTS = 3;

/** A 410 on a continue token: the list's revision was compacted away (the list restarts). */
class ExpiredContinue extends Error {
  readonly pages: number;
  constructor(cause: unknown, pages: number) {
    super('list continue token expired', { cause });
    this.pages = pages;
  }
}

/**
 * The page's continue token. client-node's typed lists (V1ListMeta) spell it
 * `_continue`, the plain JSON of custom objects `continue`: a list function
 * passed straight from client-node must not end the list after its first page.
 */
function continueOf(result: ListResult<unknown>): string | undefined {
  return result.metadata?.continue ?? result.metadata?._continue;
}

function versionOf(obj: ObjectLike): string | undefined {
  return obj.metadata?.resourceVersion;
}

function withTimeout<V>(promise: Promise<V>, ms: number, what: string): Promise<V> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what} timed out after ${ms} ms`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    clearTimeout(timer);
  });
}

// The informer's reflector rules, against a fake watch the test drives: what
// the API server only does rarely (410 Gone, errors, silence) on demand.
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Backoff } from '../../src/runtime/backoff.ts';
import {
  Informer,
  objectKey,
  PAGE_SIZE,
  splitObjectKey,
  type InformerOptions,
  type ListPageOptions,
  type ListResult,
  type WatchLike,
} from '../../src/runtime/informer.ts';
import type { Logger } from '../../src/runtime/log.ts';

interface Obj {
  metadata: { name: string; namespace?: string; resourceVersion?: string; managedFields?: unknown[] };
  data?: Record<string, string>;
}

const obj = (name: string, rv: string, data?: Record<string, string>): Obj => ({
  metadata: { name, namespace: 'ns', resourceVersion: rv, managedFields: [{ manager: 'kubectl', fieldsV1: { f: 1 } }] },
  ...(data ? { data } : {}),
});

const listOf = (rv: string, ...items: Obj[]): ListResult<Obj> => ({ items, metadata: { resourceVersion: rv } });

interface WatchCall {
  path: string;
  params: Record<string, string | number | boolean | undefined>;
  emit: (type: string, o: unknown) => void;
  /** Ends the stream as client-node's Watch does: done(null) for a clean end, done(err) otherwise. */
  end: (err?: unknown) => void;
  controller: AbortController;
}

/** Stands in for client-node's Watch: records each watch and lets the test push events and end it. */
class FakeWatch implements WatchLike {
  readonly calls: WatchCall[] = [];

  watch(
    path: string,
    params: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const controller = new AbortController();
    let ended = false;
    const end = (err?: unknown): void => {
      if (ended) return;
      ended = true;
      done(err ?? null);
    };
    // Like the real one: aborting the request ends the watch with an AbortError.
    controller.signal.addEventListener('abort', () => {
      end(new DOMException('This operation was aborted', 'AbortError'));
    });
    this.calls.push({
      path,
      params,
      emit: (type, o) => {
        if (!ended) callback(type, o);
      },
      end,
      controller,
    });
    return Promise.resolve(controller);
  }

  get last(): WatchCall {
    const call = this.calls.at(-1);
    if (!call) throw new Error('no watch started');
    return call;
  }
}

/** Lets promises and zero-delay timers run without moving the clock. */
const settle = (): Promise<void> => vi.advanceTimersByTimeAsync(0).then(() => undefined);

interface Harness {
  informer: Informer<Obj>;
  watch: FakeWatch;
  list: ReturnType<typeof vi.fn<() => Promise<ListResult<Obj>>>>;
  events: string[];
}

function harness(lists: (ListResult<Obj> | Error)[], options: Partial<InformerOptions<Obj>> = {}): Harness {
  const watch = new FakeWatch();
  const queue = [...lists];
  const list = vi.fn(() => {
    const next = queue.length > 1 ? queue.shift() : queue[0];
    if (next === undefined) throw new Error('no list result left');
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(structuredClone(next));
  });
  const informer = new Informer<Obj>({
    kubeConfig: new KubeConfig(),
    path: '/api/v1/namespaces/ns/configmaps',
    list,
    watch,
    backoff: { random: () => 0 }, // delays are exactly half the step: 400, 800, 1600 ms…
    ...options,
  });
  const events: string[] = [];
  informer.on('add', (o) => events.push(`add ${o.metadata.name}@${o.metadata.resourceVersion ?? ''}`));
  informer.on('update', (o, old) => events.push(`update ${o.metadata.name}@${old.metadata.resourceVersion ?? ''}->${o.metadata.resourceVersion ?? ''}`));
  informer.on('delete', (o) => events.push(`delete ${o.metadata.name}`));
  return { informer, watch, list, events };
}

describe('Informer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('lists into the cache, emits adds, resolves start() and then watches from the list’s resourceVersion with bookmarks', async () => {
    const { informer, watch, events } = harness([listOf('10', obj('a', '5'), obj('b', '7'))], { labelSelector: 'x=y', fieldSelector: 'metadata.name!=z' });
    expect(informer.hasSynced()).toBe(false);
    await informer.start();
    expect(informer.hasSynced()).toBe(true);
    expect(events).toEqual(['add a@5', 'add b@7']);
    expect(informer.get('ns', 'a')?.metadata.resourceVersion).toBe('5');
    expect(informer.get('other', 'a')).toBeUndefined();
    expect(
      informer
        .list()
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['a', 'b']);
    expect(informer.list('ns')).toHaveLength(2);
    expect(informer.list('other')).toEqual([]);
    await settle();
    expect(watch.calls).toHaveLength(1);
    const { path, params } = watch.last;
    expect(path).toBe('/api/v1/namespaces/ns/configmaps');
    expect(params).toMatchObject({ resourceVersion: '10', allowWatchBookmarks: true, labelSelector: 'x=y', fieldSelector: 'metadata.name!=z' });
    expect(params.timeoutSeconds).toBeGreaterThanOrEqual(300);
    expect(params.timeoutSeconds).toBeLessThan(600);
    informer.stop();
  });

  it('drops managedFields from cached objects, from lists and watch events alike, and applies the transform', async () => {
    const { informer, watch } = harness([listOf('10', obj('a', '5'))], {
      transform: (o) => ({ ...o, data: { trimmed: 'yes' } }),
    });
    await informer.start();
    await settle();
    watch.last.emit('ADDED', obj('b', '11'));
    for (const name of ['a', 'b']) {
      const cached = informer.get('ns', name);
      expect(cached?.metadata).not.toHaveProperty('managedFields');
      expect(cached?.data).toEqual({ trimmed: 'yes' });
    }
    informer.stop();
  });

  it('applies ADDED, MODIFIED and DELETED events and passes the old object to update handlers', async () => {
    const { informer, watch, events } = harness([listOf('10', obj('a', '5'))]);
    await informer.start();
    await settle();
    events.length = 0;
    watch.last.emit('ADDED', obj('b', '11'));
    watch.last.emit('MODIFIED', obj('a', '12', { k: 'v' }));
    watch.last.emit('DELETED', obj('b', '13'));
    expect(events).toEqual(['add b@11', 'update a@5->12', 'delete b']);
    expect(informer.get('ns', 'a')?.data).toEqual({ k: 'v' });
    expect(informer.get('ns', 'b')).toBeUndefined();
    expect(informer.lastResourceVersion()).toBe('13');
    informer.stop();
  });

  it('skips a MODIFIED event that carries the cached resourceVersion (client-node #2424)', async () => {
    const { informer, watch, events } = harness([listOf('10', obj('a', '5'))]);
    await informer.start();
    await settle();
    watch.last.emit('MODIFIED', obj('a', '5'));
    watch.last.emit('ADDED', obj('a', '5'));
    expect(events).toEqual(['add a@5']);
    informer.stop();
  });

  it('resumes from the newest resourceVersion, bookmarks included, when the stream ends; no relist', async () => {
    const { informer, watch, list } = harness([listOf('10', obj('a', '5'))]);
    await informer.start();
    await settle();
    watch.last.emit('MODIFIED', obj('a', '15'));
    watch.last.emit('BOOKMARK', { metadata: { resourceVersion: '20' } });
    expect(informer.lastResourceVersion()).toBe('20');
    await vi.advanceTimersByTimeAsync(5000);
    watch.last.end(); // the server's timeoutSeconds ran out
    await settle();
    expect(watch.calls).toHaveLength(2);
    expect(watch.last.params.resourceVersion).toBe('20');
    expect(list).toHaveBeenCalledTimes(1);
    informer.stop();
  });

  it('reconnects at once after client-node’s inactivity TimeoutError', async () => {
    const { informer, watch } = harness([listOf('10')]);
    await informer.start();
    await settle();
    watch.last.end(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
    await settle();
    expect(watch.calls).toHaveLength(2);
    informer.stop();
  });

  describe('410 Gone', () => {
    it('relists on an ERROR event with code 410: deletes what vanished, adds what is new, updates what changed', async () => {
      const { informer, watch, list, events } = harness([
        listOf('10', obj('a', '1'), obj('b', '1'), obj('c', '1')),
        listOf('50', obj('a', '1'), obj('b', '2'), obj('d', '1')),
      ]);
      await informer.start();
      await settle();
      events.length = 0;
      const first = watch.last;
      first.emit('ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version: 10 (40)', reason: 'Expired', code: 410 });
      await settle();
      expect(first.controller.signal.aborted).toBe(true);
      expect(list).toHaveBeenCalledTimes(2);
      expect(events).toEqual(['update b@1->2', 'add d@1', 'delete c']);
      expect(
        informer
          .list()
          .map((o) => o.metadata.name)
          .sort(),
      ).toEqual(['a', 'b', 'd']);
      expect(watch.calls).toHaveLength(2);
      expect(watch.last.params.resourceVersion).toBe('50');
      // Events still buffered on the old stream are ignored.
      first.emit('ADDED', obj('zombie', '9'));
      expect(informer.get('ns', 'zombie')).toBeUndefined();
      informer.stop();
    });

    it('relists when the watch request itself answers HTTP 410', async () => {
      const { informer, watch, list, events } = harness([listOf('10', obj('a', '1')), listOf('60')]);
      await informer.start();
      await settle();
      watch.last.end(Object.assign(new Error('Gone'), { statusCode: 410 }));
      await settle();
      expect(list).toHaveBeenCalledTimes(2);
      expect(events).toEqual(['add a@1', 'delete a']);
      expect(watch.last.params.resourceVersion).toBe('60');
      informer.stop();
    });

    it('keeps retrying the relist with backoff when it fails', async () => {
      const { informer, watch, list } = harness([listOf('10'), new Error('boom'), listOf('70', obj('n', '70'))]);
      await informer.start();
      await settle();
      watch.last.emit('ERROR', { kind: 'Status', code: 410, reason: 'Gone' });
      await settle();
      expect(list).toHaveBeenCalledTimes(2);
      await vi.advanceTimersByTimeAsync(400);
      expect(list).toHaveBeenCalledTimes(3);
      await settle();
      expect(informer.get('ns', 'n')).toBeDefined();
      expect(watch.last.params.resourceVersion).toBe('70');
      informer.stop();
    });
  });

  describe('errors', () => {
    it('backs off with growing jittered delays and resumes from the last resourceVersion without relisting', async () => {
      const { informer, watch, list } = harness([listOf('10')]);
      await informer.start();
      await settle();
      watch.last.emit('BOOKMARK', { metadata: { resourceVersion: '11' } });
      for (const delay of [400, 800, 1600]) {
        const calls = watch.calls.length;
        watch.last.end(new TypeError('fetch failed'));
        await vi.advanceTimersByTimeAsync(delay - 1);
        expect(watch.calls).toHaveLength(calls);
        await vi.advanceTimersByTimeAsync(1);
        expect(watch.calls).toHaveLength(calls + 1);
        expect(watch.last.params.resourceVersion).toBe('11');
      }
      expect(list).toHaveBeenCalledTimes(1);
      informer.stop();
    });

    it('treats an ERROR event other than 410 as a failure: backoff, then resume', async () => {
      const { informer, watch, list } = harness([listOf('10')]);
      await informer.start();
      await settle();
      const first = watch.last;
      first.emit('ERROR', { kind: 'Status', code: 500, reason: 'InternalError', message: 'etcd is down' });
      await settle();
      expect(first.controller.signal.aborted).toBe(true);
      expect(watch.calls).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(400);
      expect(watch.calls).toHaveLength(2);
      expect(watch.last.params.resourceVersion).toBe('10');
      expect(list).toHaveBeenCalledTimes(1);
      informer.stop();
    });

    it('backs off when the server closes a watch at once without an event', async () => {
      const { informer, watch } = harness([listOf('10')]);
      await informer.start();
      await settle();
      watch.last.end();
      await settle();
      expect(watch.calls).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(400);
      expect(watch.calls).toHaveLength(2);
      informer.stop();
    });

    it('retries a failing initial list until it succeeds; start() resolves then', async () => {
      const { informer, list } = harness([new Error('connection refused'), new Error('again'), listOf('10', obj('a', '1'))]);
      let synced = false;
      void informer.start().then(() => {
        synced = true;
      });
      await settle();
      expect(list).toHaveBeenCalledTimes(1);
      await vi.advanceTimersByTimeAsync(400);
      expect(list).toHaveBeenCalledTimes(2);
      expect(synced).toBe(false);
      await vi.advanceTimersByTimeAsync(800);
      expect(list).toHaveBeenCalledTimes(3);
      expect(synced).toBe(true);
      expect(informer.hasSynced()).toBe(true);
      informer.stop();
    });

    it('gives up on a list that hangs past listTimeoutMs and tries again', async () => {
      const watch = new FakeWatch();
      let calls = 0;
      const informer = new Informer<Obj>({
        kubeConfig: new KubeConfig(),
        path: '/p',
        watch,
        listTimeoutMs: 1000,
        backoff: { random: () => 0 },
        list: () => (++calls === 1 ? new Promise<never>(() => undefined) : Promise.resolve(listOf('3'))),
      });
      const started = informer.start();
      await vi.advanceTimersByTimeAsync(1000 + 400);
      await started;
      expect(calls).toBe(2);
      informer.stop();
    });

    it('logs failures through the given logger and goes on', async () => {
      const lines: { level: string; msg?: string; obj: object }[] = [];
      const record =
        (level: string) =>
        (obj: object, msg?: string): void => {
          lines.push({ level, obj, ...(msg ? { msg } : {}) });
        };
      const log: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
      const { informer, watch } = harness([listOf('10')], { log });
      await informer.start();
      await settle();
      watch.last.end(Object.assign(new Error('Forbidden'), { statusCode: 403 }));
      await settle();
      const warning = lines.find((l) => l.level === 'warn' && l.msg === 'watch failed; resuming after backoff');
      expect(warning?.obj).toMatchObject({ path: '/api/v1/namespaces/ns/configmaps', err: { code: 403, message: 'Forbidden' }, retryInMs: 400 });
      informer.stop();
    });

    it('a throwing handler neither stops the other handlers nor the cache', async () => {
      const { informer, watch, events } = harness([listOf('10')]);
      informer.on('add', () => {
        throw new Error('handler bug');
      });
      const after: string[] = [];
      informer.on('add', (o) => after.push(o.metadata.name));
      await informer.start();
      await settle();
      watch.last.emit('ADDED', obj('a', '11'));
      watch.last.emit('ADDED', obj('b', '12'));
      expect(after).toEqual(['a', 'b']);
      expect(events).toEqual(['add a@11', 'add b@12']);
      expect(watch.calls).toHaveLength(1);
      informer.stop();
    });

    it('a throwing transform ends the watch instead of losing the event, and the event comes again', async () => {
      let fail = true;
      const { informer, watch, events } = harness([listOf('10')], {
        transform: (o) => {
          if (fail && o.metadata.name === 'bad') throw new Error('transform bug');
          return o;
        },
      });
      await informer.start();
      await settle();
      watch.last.emit('ADDED', obj('bad', '11'));
      await settle();
      expect(watch.last.controller.signal.aborted).toBe(true);
      fail = false;
      await vi.advanceTimersByTimeAsync(400);
      expect(watch.last.params.resourceVersion).toBe('10'); // the event's version was not recorded
      watch.last.emit('ADDED', obj('bad', '11'));
      expect(events).toEqual(['add bad@11']);
      informer.stop();
    });
  });

  describe('watchdog', () => {
    it('restarts a watch that stays silent for watchdogMs; any event or bookmark counts as life', async () => {
      const { informer, watch, list } = harness([listOf('10')], { watchdogMs: 1000 });
      await informer.start();
      await settle();
      await vi.advanceTimersByTimeAsync(800);
      watch.last.emit('BOOKMARK', { metadata: { resourceVersion: '12' } });
      await vi.advanceTimersByTimeAsync(900);
      expect(watch.calls).toHaveLength(1);
      const first = watch.last;
      await vi.advanceTimersByTimeAsync(100);
      expect(first.controller.signal.aborted).toBe(true);
      expect(watch.calls).toHaveLength(2); // at once, no backoff
      expect(watch.last.params.resourceVersion).toBe('12');
      expect(list).toHaveBeenCalledTimes(1);
      informer.stop();
    });

    it('is off with watchdogMs 0', async () => {
      const { informer, watch } = harness([listOf('10')], { watchdogMs: 0, resyncPeriodMs: 0 });
      await informer.start();
      await settle();
      await vi.advanceTimersByTimeAsync(3_600_000);
      expect(watch.calls).toHaveLength(1);
      informer.stop();
    });

    it('defaults to 5 minutes', async () => {
      const { informer, watch } = harness([listOf('10')], { resyncPeriodMs: 0 });
      await informer.start();
      await settle();
      await vi.advanceTimersByTimeAsync(299_999);
      expect(watch.calls).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(watch.calls).toHaveLength(2);
      informer.stop();
    });
  });

  describe('resync', () => {
    it('re-emits every cached object as an update (obj and old the same) every resyncPeriodMs, from the cache: no list, the watch goes on', async () => {
      const { informer, watch, list, events } = harness([listOf('10', obj('a', '1'), obj('b', '1'))], { resyncPeriodMs: 10_000, watchdogMs: 0 });
      const updates: [Obj, Obj][] = [];
      informer.on('update', (o, old) => updates.push([o, old]));
      const resynced: string[][] = [];
      informer.onResynced(() => resynced.push([...events]));
      const relisted = vi.fn();
      informer.onRelisted(relisted);
      await informer.start();
      await settle();
      events.length = 0;
      const first = watch.last;
      // What the watch delivers meanwhile is what the resync emits.
      first.emit('MODIFIED', obj('b', '2'));
      first.emit('ADDED', obj('c', '3'));
      events.length = 0;
      await vi.advanceTimersByTimeAsync(10_000);
      expect(list).toHaveBeenCalledTimes(1);
      expect(relisted).toHaveBeenCalledTimes(1);
      expect(events).toEqual(['update a@1->1', 'update b@2->2', 'update c@3->3']);
      expect(updates.at(-1)?.[0]).toBe(updates.at(-1)?.[1]);
      expect(resynced).toEqual([['update a@1->1', 'update b@2->2', 'update c@3->3']]);
      expect(first.controller.signal.aborted).toBe(false);
      expect(watch.calls).toHaveLength(1);
      // And again a period later, without what was deleted meanwhile.
      first.emit('DELETED', obj('a', '4'));
      events.length = 0;
      await vi.advanceTimersByTimeAsync(10_000);
      expect(list).toHaveBeenCalledTimes(1);
      expect(events).toEqual(['update b@2->2', 'update c@3->3']);
      expect(first.controller.signal.aborted).toBe(false);
      informer.stop();
    });

    it('emits a large cache in slices, yielding to the event loop between them, and stops with stop()', async () => {
      const many = Array.from({ length: 2500 }, (_, i) => obj(`o${i}`, '1'));
      const whole = harness([listOf('10', ...many)], { resyncPeriodMs: 10_000, watchdogMs: 0 });
      await whole.informer.start();
      whole.events.length = 0;
      await vi.advanceTimersByTimeAsync(10_000);
      // Each slice's turn of the event loop is a (fake) setImmediate.
      for (let turn = 0; turn < 3; turn++) await vi.advanceTimersByTimeAsync(1);
      expect(whole.events).toHaveLength(2500);
      whole.informer.stop();

      const { informer, events } = harness([listOf('10', ...many)], { resyncPeriodMs: 10_000, watchdogMs: 0 });
      await informer.start();
      events.length = 0;
      // Synchronously: the timer fires and the first slice goes out; the rest waits for a turn of the event loop.
      vi.advanceTimersByTime(10_000);
      expect(events).toHaveLength(1000);
      informer.stop();
      await vi.advanceTimersByTimeAsync(60_000);
      expect(events).toHaveLength(1000);
    });

    it('is off with resyncPeriodMs 0', async () => {
      const { informer, events } = harness([listOf('10', obj('a', '1'))], { resyncPeriodMs: 0, watchdogMs: 0 });
      await informer.start();
      events.length = 0;
      await vi.advanceTimersByTimeAsync(24 * 3600_000);
      expect(events).toEqual([]);
      informer.stop();
    });
  });

  describe('paged list', () => {
    /** A collection served in pages of `limit`, the continue token being the index of the next object. */
    function pagedList(
      items: Obj[],
      rv: string,
      options: { expireOnce?: number } = {},
    ): { list: (page: ListPageOptions) => Promise<ListResult<Obj>>; calls: ListPageOptions[] } {
      const calls: ListPageOptions[] = [];
      let expire = options.expireOnce;
      const list = (page: ListPageOptions): Promise<ListResult<Obj>> => {
        calls.push(page);
        const from = page.continue === undefined ? 0 : Number(page.continue);
        if (page.continue !== undefined && expire === from) {
          expire = undefined;
          return Promise.reject(
            Object.assign(new Error('HTTP-Code: 410'), {
              code: 410,
              body: JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired', message: 'The provided continue parameter is too old' }),
            }),
          );
        }
        const to = page.limit ? from + page.limit : items.length;
        const next = to < items.length ? String(to) : undefined;
        return Promise.resolve(structuredClone({ items: items.slice(from, to), metadata: { resourceVersion: rv, ...(next ? { continue: next } : {}) } }));
      };
      return { list, calls };
    }

    it('lists page by page with limit and continue, feeding each page into the cache as it comes, and watches from the list’s resourceVersion', async () => {
      const items = Array.from({ length: 7 }, (_, i) => obj(`o${i}`, String(i + 1)));
      const { list, calls } = pagedList(items, '42');
      const { informer, watch, events } = harness([], { list, pageSize: 3 });
      await informer.start();
      expect(calls).toEqual([{ limit: 3 }, { limit: 3, continue: '3' }, { limit: 3, continue: '6' }]);
      expect(events).toEqual(items.map((o) => `add ${o.metadata.name}@${o.metadata.resourceVersion ?? ''}`));
      expect(informer.list()).toHaveLength(7);
      await settle();
      expect(watch.last.params.resourceVersion).toBe('42');
      informer.stop();
    });

    it('reads client-node’s _continue spelling of the token too (its typed lists), not just continue', async () => {
      const pages: Record<string, ListResult<Obj>> = {
        first: { items: [obj('a', '1')], metadata: { resourceVersion: '5', _continue: 'second' } },
        second: { items: [obj('b', '1')], metadata: { resourceVersion: '5' } },
      };
      const { informer } = harness([], { pageSize: 1, list: (page) => Promise.resolve(structuredClone(pages[page.continue ?? 'first'] ?? listOf('5'))) });
      await informer.start();
      expect(informer.list()).toHaveLength(2);
      informer.stop();
    });

    it('has each page in the cache before the next one is asked for', async () => {
      const items = Array.from({ length: 5 }, (_, i) => obj(`o${i}`, '1'));
      const paged = pagedList(items, '9');
      const cachedWhenAsked: number[] = [];
      const h = harness([], {
        pageSize: 2,
        list: (page) => {
          cachedWhenAsked.push(h.informer.list().length);
          return paged.list(page);
        },
      });
      const { informer } = h;
      await informer.start();
      expect(cachedWhenAsked).toEqual([0, 2, 4]);
      informer.stop();
    });

    it('defaults to pages of 500, and lists unpaged with pageSize 0', async () => {
      const paged = pagedList([obj('a', '1')], '5');
      const { informer } = harness([], { list: paged.list });
      await informer.start();
      expect(paged.calls).toEqual([{ limit: PAGE_SIZE }]);
      expect(PAGE_SIZE).toBe(500);
      informer.stop();
      const unpaged = pagedList([obj('a', '1'), obj('b', '1')], '5');
      const second = harness([], { list: unpaged.list, pageSize: 0 });
      await second.informer.start();
      expect(unpaged.calls).toEqual([{}]);
      expect(second.informer.list()).toHaveLength(2);
      second.informer.stop();
    });

    it('starts the list over when a continue token expired (410), and deletes only what the complete list lacks', async () => {
      const items = Array.from({ length: 6 }, (_, i) => obj(`o${i}`, '1'));
      const paged = pagedList(items, '77', { expireOnce: 4 });
      const { informer, watch, events } = harness([], { list: paged.list, pageSize: 2 });
      await informer.start();
      expect(paged.calls).toEqual([
        { limit: 2 },
        { limit: 2, continue: '2' },
        { limit: 2, continue: '4' }, // 410 Expired
        { limit: 2 },
        { limit: 2, continue: '2' },
        { limit: 2, continue: '4' },
      ]);
      // The objects of the first attempt are not emitted twice; nothing was deleted.
      expect(events).toEqual(items.map((o) => `add ${o.metadata.name}@1`));
      expect(informer.list()).toHaveLength(6);
      await settle();
      expect(watch.last.params.resourceVersion).toBe('77');
      informer.stop();
    });

    it('relists after 410 Gone page by page: updates what changed as its page comes, then deletes what no page had', async () => {
      let pages: ListResult<Obj>[] = [listOf('10', obj('a', '1'), obj('b', '1'), obj('c', '1'))];
      const h = harness([], {
        pageSize: 2,
        list: (page) => {
          const i = page.continue === undefined ? 0 : Number(page.continue);
          return Promise.resolve(structuredClone(pages[i] ?? listOf('0')));
        },
      });
      await h.informer.start();
      await settle();
      h.events.length = 0;
      pages = [
        { items: [obj('b', '5'), obj('d', '6')], metadata: { resourceVersion: '60', continue: '1' } },
        { items: [obj('c', '1')], metadata: { resourceVersion: '60' } },
      ];
      h.watch.last.emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
      await settle();
      expect(h.events).toEqual(['update b@1->5', 'add d@6', 'delete a']);
      expect(h.watch.last.params.resourceVersion).toBe('60');
      h.informer.stop();
    });

    it('gives up after repeated expired continue tokens: the list failed, backoff, then a fresh list', async () => {
      let calls = 0;
      const { informer } = harness([], {
        pageSize: 1,
        list: (page) => {
          calls++;
          if (page.continue) return Promise.reject(Object.assign(new Error('expired'), { code: 410 }));
          return Promise.resolve({ items: [obj('a', '1')], metadata: { resourceVersion: '3', continue: 'x' } });
        },
      });
      const synced = informer.start();
      await settle();
      expect(informer.hasSynced()).toBe(false);
      expect(calls).toBe(6); // three attempts of two pages each
      await vi.advanceTimersByTimeAsync(400);
      expect(calls).toBe(12);
      informer.stop();
      await expect(synced).rejects.toThrow(/stopped before it synced/);
    });
  });

  describe('stop and start', () => {
    it('stop() aborts the watch; nothing is applied afterwards and no timer is left', async () => {
      const { informer, watch, events } = harness([listOf('10', obj('a', '1'))], { resyncPeriodMs: 1000, watchdogMs: 1000 });
      await informer.start();
      await settle();
      const call = watch.last;
      informer.stop();
      expect(call.controller.signal.aborted).toBe(true);
      call.emit('ADDED', obj('late', '2'));
      await vi.advanceTimersByTimeAsync(10_000);
      expect(watch.calls).toHaveLength(1);
      expect(events).toEqual(['add a@1']);
      expect(informer.get('ns', 'a')).toBeDefined(); // the cache keeps its last state
      expect(vi.getTimerCount()).toBe(0);
    });

    it('start() rejects when stop() comes before the first list succeeds', async () => {
      const { informer, list } = harness([new Error('down')]);
      const started = informer.start();
      await settle();
      informer.stop();
      await expect(started).rejects.toThrow(/stopped before it synced/);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(list).toHaveBeenCalledTimes(1);
    });

    it('start() while running returns the same promise and starts nothing new', async () => {
      const { informer, list } = harness([listOf('10')]);
      const a = informer.start();
      const b = informer.start();
      expect(a).toBe(b);
      await a;
      expect(list).toHaveBeenCalledTimes(1);
      informer.stop();
    });

    it('start() after stop() relists and emits what changed meanwhile', async () => {
      const { informer, watch, events } = harness([listOf('10', obj('a', '1'), obj('b', '1')), listOf('40', obj('b', '3'), obj('c', '4'))]);
      await informer.start();
      informer.stop();
      events.length = 0;
      await informer.start();
      expect(events).toEqual(['update b@1->3', 'add c@4', 'delete a']);
      await settle();
      expect(watch.last.params.resourceVersion).toBe('40');
      informer.stop();
    });
  });

  describe('indexers', () => {
    /** Files an object under each comma-separated value of its data.tags. */
    const byTag = (o: Obj): string[] => (o.data?.tags ? o.data.tags.split(',') : []);
    const names = (objects: Obj[]): string[] => objects.map((o) => o.metadata.name).sort();

    it('files listed objects, and keeps the index through adds, updates and deletes', async () => {
      const { informer, watch } = harness([listOf('10', obj('a', '1', { tags: 'x' }), obj('b', '1', { tags: 'x,y' }), obj('c', '1'))]);
      informer.addIndex('tag', byTag);
      await informer.start();
      await settle();
      expect(names(informer.byIndex('tag', 'x'))).toEqual(['a', 'b']);
      expect(names(informer.byIndex('tag', 'y'))).toEqual(['b']);
      expect(informer.byIndex('tag', 'z')).toEqual([]);

      watch.last.emit('ADDED', obj('d', '11', { tags: 'z' }));
      watch.last.emit('MODIFIED', obj('b', '12', { tags: 'y,z' })); // leaves x
      watch.last.emit('MODIFIED', obj('c', '13', { tags: 'x' })); // was filed nowhere
      watch.last.emit('DELETED', obj('a', '14', { tags: 'x' }));
      expect(names(informer.byIndex('tag', 'x'))).toEqual(['c']);
      expect(names(informer.byIndex('tag', 'y'))).toEqual(['b']);
      expect(names(informer.byIndex('tag', 'z'))).toEqual(['b', 'd']);
      // The objects are the cached ones, current version.
      expect(informer.byIndex('tag', 'y')[0]).toBe(informer.get('ns', 'b'));
      informer.stop();
    });

    it('follows a relist: vanished objects leave the index, changed ones are filed anew', async () => {
      const { informer, watch } = harness([
        listOf('10', obj('a', '1', { tags: 'x' }), obj('b', '1', { tags: 'x' })),
        listOf('50', obj('b', '2', { tags: 'y' }), obj('c', '1', { tags: 'x' })),
      ]);
      informer.addIndex('tag', byTag);
      await informer.start();
      await settle();
      watch.last.emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
      await settle();
      expect(names(informer.byIndex('tag', 'x'))).toEqual(['c']);
      expect(names(informer.byIndex('tag', 'y'))).toEqual(['b']);
      informer.stop();
    });

    it('files what is cached already when an index is added late, and refuses a second index of the same name', async () => {
      const { informer } = harness([listOf('10', obj('a', '1', { tags: 'x' }))]);
      await informer.start();
      informer.addIndex('tag', byTag);
      expect(names(informer.byIndex('tag', 'x'))).toEqual(['a']);
      expect(() => informer.addIndex('tag', byTag)).toThrow(/already has an index named tag/);
      expect(() => informer.byIndex('nope', 'x')).toThrow(/has no index named nope/);
      informer.stop();
    });

    it('files an object once per value, and nowhere when the index function throws (the cache and the handlers carry on)', async () => {
      const errors: unknown[] = [];
      const log: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: (o) => errors.push(o) };
      const { informer, watch, events } = harness([listOf('10', obj('a', '1', { tags: 'x,x' }))], { log });
      informer.addIndex('tag', byTag);
      informer.addIndex('fragile', (o) => {
        if (o.metadata.name === 'bad') throw new Error('bug');
        return ['all'];
      });
      await informer.start();
      await settle();
      expect(informer.byIndex('tag', 'x')).toHaveLength(1);
      watch.last.emit('ADDED', obj('bad', '11', { tags: 'x' }));
      expect(names(informer.byIndex('tag', 'x'))).toEqual(['a', 'bad']);
      expect(names(informer.byIndex('fragile', 'all'))).toEqual(['a']);
      expect(informer.get('ns', 'bad')).toBeDefined();
      expect(events.at(-1)).toBe('add bad@11');
      expect(errors).toHaveLength(1);
      informer.stop();
    });
  });

  describe('relist hook', () => {
    it('runs after every full relist, once the cache is replaced and the differences were emitted, saying when the list was requested', async () => {
      const { informer, watch, events } = harness([listOf('10', obj('a', '1')), listOf('50', obj('b', '1')), listOf('60', obj('b', '1'))], {
        resyncPeriodMs: 60_000,
        watchdogMs: 0,
      });
      const relists: { requestedAt: number; events: string[]; cached: string[] }[] = [];
      informer.onRelisted((info) => {
        relists.push({ ...info, events: [...events], cached: informer.list().map((o) => o.metadata.name) });
      });
      const startedAt = performance.now();
      await informer.start();
      expect(relists).toEqual([{ requestedAt: startedAt, events: ['add a@1'], cached: ['a'] }]);
      await settle();

      // Watch events are no relist.
      watch.last.emit('ADDED', obj('c', '11'));
      expect(relists).toHaveLength(1);

      await vi.advanceTimersByTimeAsync(1000);
      const goneAt = performance.now();
      watch.last.emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
      await settle();
      expect(relists[1]).toEqual({ requestedAt: goneAt, events: ['add a@1', 'add c@11', 'add b@1', 'delete a', 'delete c'], cached: ['b'] });

      // A resync lists nothing, so it is no relist either.
      events.length = 0;
      await vi.advanceTimersByTimeAsync(60_000);
      expect(events).toEqual(['update b@1->1']);
      expect(relists).toHaveLength(2);
      informer.stop();
    });

    it('is not run for a list that failed, and a throwing hook does not stop the informer', async () => {
      const { informer, watch, list } = harness([new Error('boom'), listOf('10', obj('a', '1'))]);
      const calls: number[] = [];
      informer.onRelisted(() => {
        calls.push(list.mock.calls.length);
        throw new Error('bug in a hook');
      });
      const synced = informer.start();
      await settle();
      expect(calls).toEqual([]);
      await vi.advanceTimersByTimeAsync(400);
      await synced;
      expect(calls).toEqual([2]);
      await settle();
      expect(watch.calls).toHaveLength(1);
      informer.stop();
    });
  });

  it('takes a pino logger as it is', async () => {
    const { informer } = harness([listOf('1')], { log: pino({ level: 'silent' }) });
    await expect(informer.start()).resolves.toBeUndefined();
    informer.stop();
  });
});

describe('object keys', () => {
  it('are namespace/name, or name for cluster-scoped objects, and split back', () => {
    expect(objectKey('ns', 'a')).toBe('ns/a');
    expect(objectKey(undefined, 'a')).toBe('a');
    expect(objectKey('', 'a')).toBe('a');
    expect(splitObjectKey('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(splitObjectKey('a')).toEqual({ name: 'a' });
  });
});

describe('Backoff', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('doubles from 800 ms to a 30 s cap, jittered between half and all of each step', () => {
    const low = new Backoff({ random: () => 0 });
    expect(Array.from({ length: 8 }, () => low.next())).toEqual([400, 800, 1600, 3200, 6400, 12_800, 15_000, 15_000]);
    const high = new Backoff({ random: () => 0.999_999 });
    const delays = Array.from({ length: 8 }, () => high.next());
    expect(delays[0]).toBeCloseTo(800, 0);
    expect(delays[7]).toBeCloseTo(30_000, 0);
  });

  it('starts over after a healthy period without failures', async () => {
    const b = new Backoff({ random: () => 0, resetAfterMs: 120_000 });
    b.next();
    b.next();
    expect(b.next()).toBe(1600);
    await vi.advanceTimersByTimeAsync(119_000);
    expect(b.next()).toBe(3200); // not long enough
    await vi.advanceTimersByTimeAsync(120_001);
    expect(b.next()).toBe(400);
  });
});

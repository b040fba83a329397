// KubeWatch against a local HTTP server that the test scripts: one that
// accepts and never answers, one that answers and then stays quiet, one that
// keeps sending bookmarks, errors, garbage; and the informer recovering through it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { apiErrorOf } from '../../src/runtime/client.ts';
import { Informer, type ListResult } from '../../src/runtime/informer.ts';
import { KubeWatch, WatchHeaderTimeoutError, WatchStatusError } from '../../src/runtime/watch.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Local {
  kubeConfig: KubeConfig;
  requests: IncomingMessage[];
  /** Handles the next request; later requests use the last handler given. */
  handlers: Handler[];
  close(): Promise<void>;
}

const servers: Server[] = [];

async function local(...handlers: Handler[]): Promise<Local> {
  const requests: IncomingMessage[] = [];
  const queue = [...handlers];
  const server = createServer((req, res) => {
    requests.push(req);
    const handler = queue.length > 1 ? queue.shift() : queue[0];
    handler?.(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'local', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'secret-token' }],
    contexts: [{ name: 'c', cluster: 'local', user: 'u' }],
    currentContext: 'c',
  });
  return {
    kubeConfig,
    requests,
    handlers: queue,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((resolve) => {
          s.closeAllConnections();
          s.close(() => {
            resolve();
          });
        }),
    ),
  );
});

const neverAnswer: Handler = () => undefined;
const answerThenSilence: Handler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.flushHeaders();
};
const line = (type: string, object: unknown): string => `${JSON.stringify({ type, object })}\n`;

interface Outcome {
  events: { type: string; object: unknown }[];
  done: Promise<unknown>;
  doneCalls: () => number;
  started: Promise<AbortController>;
}

function run(watch: KubeWatch, path = '/api/v1/namespaces/ns/configmaps', params: Record<string, string | number | boolean | undefined> = {}): Outcome {
  const events: { type: string; object: unknown }[] = [];
  let calls = 0;
  const { promise: done, resolve } = Promise.withResolvers<unknown>();
  const started = watch.watch(
    path,
    params,
    (type, object) => {
      events.push({ type, object });
    },
    (err) => {
      calls++;
      resolve(err);
    },
  );
  return { events, done, doneCalls: () => calls, started };
}

const sleep = (ms: number): Promise<void> =>
  new Promise((r) => {
    setTimeout(r, ms);
  });

describe('KubeWatch', () => {
  it('abandons a request whose response never starts after the header timeout, as a failure', async () => {
    const server = await local(neverAnswer);
    const t0 = performance.now();
    const w = run(new KubeWatch(server.kubeConfig, { headerTimeoutMs: 200, inactivityTimeoutMs: 60_000 }));
    const err = await w.done;
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(WatchHeaderTimeoutError);
    // Not a TimeoutError: the informer must count it as a failed watch (and back off), not a quiet one.
    expect((err as Error).name).not.toBe('TimeoutError');
    expect(ms).toBeGreaterThanOrEqual(190);
    expect(ms).toBeLessThan(2000);
    await expect(w.started).resolves.toBeInstanceOf(AbortController);
    await sleep(50);
    expect(w.doneCalls()).toBe(1);
    expect(server.requests).toHaveLength(1);
  });

  it('keeps a quiet watch whose response started well past the header timeout, until the inactivity timeout', async () => {
    const server = await local(answerThenSilence);
    const t0 = performance.now();
    const w = run(new KubeWatch(server.kubeConfig, { headerTimeoutMs: 100, inactivityTimeoutMs: 600 }));
    await w.started;
    await sleep(400);
    expect(w.doneCalls()).toBe(0);
    const err = await w.done;
    const ms = performance.now() - t0;
    // The informer resumes a TimeoutError at once, without backoff (a quiet watch is not a failure).
    expect((err as Error).name).toBe('TimeoutError');
    expect(ms).toBeGreaterThanOrEqual(590);
    expect(ms).toBeLessThan(3000);
  });

  it('delivers events and bookmarks, and every chunk received restarts the inactivity clock', async () => {
    let ticker: NodeJS.Timeout | undefined;
    const server = await local((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line('ADDED', { metadata: { name: 'a', resourceVersion: '5' } }));
      let rv = 5;
      ticker = setInterval(() => {
        rv++;
        res.write(line('BOOKMARK', { metadata: { resourceVersion: String(rv) } }));
      }, 50);
    });
    const w = run(new KubeWatch(server.kubeConfig, { headerTimeoutMs: 100, inactivityTimeoutMs: 200 }));
    await sleep(700);
    clearInterval(ticker);
    // More than three inactivity periods went by, but data kept coming.
    expect(w.doneCalls()).toBe(0);
    expect(w.events[0]).toEqual({ type: 'ADDED', object: { metadata: { name: 'a', resourceVersion: '5' } } });
    expect(w.events.filter((e) => e.type === 'BOOKMARK').length).toBeGreaterThanOrEqual(5);
    // Once the bookmarks stop, the watch times out.
    expect(((await w.done) as Error).name).toBe('TimeoutError');
  });

  it('sends the watch query and the kubeconfig credentials', async () => {
    const server = await local((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end();
    });
    const w = run(new KubeWatch(server.kubeConfig), '/apis/usher.dev/v1alpha1/userinvitations', {
      resourceVersion: '42',
      allowWatchBookmarks: true,
      timeoutSeconds: 300,
      labelSelector: undefined,
    });
    expect(await w.done).toBeNull();
    const req = server.requests[0];
    const url = new URL(req?.url ?? '', 'http://x');
    expect(url.pathname).toBe('/apis/usher.dev/v1alpha1/userinvitations');
    expect(Object.fromEntries(url.searchParams)).toEqual({ watch: 'true', resourceVersion: '42', allowWatchBookmarks: 'true', timeoutSeconds: '300' });
    expect(req?.headers.authorization).toBe('Bearer secret-token');
  });

  it('reports a watch the server ends as done(null), after every line (a last one without newline included)', async () => {
    const server = await local((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line('ADDED', { metadata: { name: 'a' } }));
      res.end(JSON.stringify({ type: 'MODIFIED', object: { metadata: { name: 'a' } } }));
    });
    const w = run(new KubeWatch(server.kubeConfig));
    expect(await w.done).toBeNull();
    expect(w.events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED']);
  });

  it('turns a non-200 answer into an error apiErrorOf reads (410 Gone)', async () => {
    const status = { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version: 1 (2112)', reason: 'Expired', code: 410 };
    const server = await local((_req, res) => {
      res.writeHead(410, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status));
    });
    const w = run(new KubeWatch(server.kubeConfig));
    const err = await w.done;
    expect(err).toBeInstanceOf(WatchStatusError);
    expect(apiErrorOf(err)).toEqual({ code: 410, reason: 'Expired', message: 'too old resource version: 1 (2112)' });
  });

  it('fails on a 429 from an API server whose watch cache is initialising', async () => {
    const server = await local((_req, res) => {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end(JSON.stringify({ kind: 'Status', code: 429, reason: 'TooManyRequests', message: 'storage is (re)initializing' }));
    });
    const err = await run(new KubeWatch(server.kubeConfig)).done;
    expect(apiErrorOf(err)).toMatchObject({ code: 429, reason: 'TooManyRequests' });
  });

  it('fails on a connection refused', async () => {
    const server = await local(neverAnswer);
    await server.close();
    const err = await run(new KubeWatch(server.kubeConfig, { headerTimeoutMs: 5000 })).done;
    expect((err as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });

  it('fails on a connection cut mid-response, and on a garbled line', async () => {
    const cut = await local((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line('ADDED', { metadata: { name: 'a' } }));
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const w = run(new KubeWatch(cut.kubeConfig));
    const err = await w.done;
    expect(err).toBeInstanceOf(Error);
    // Names the watch (Node's own error says only "aborted").
    expect((err as Error).message).toMatch(/^watch \/api\/v1\/namespaces\/ns\/configmaps: /);
    expect(w.events).toHaveLength(1);

    const garbled = await local((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED","obj\n');
      res.write(line('ADDED', { metadata: { name: 'b' } }));
    });
    const g = run(new KubeWatch(garbled.kubeConfig));
    expect(String(await g.done)).toMatch(/unreadable event line/);
    // Nothing after the garbled line is delivered: the informer resumes from the last version instead.
    expect(g.events).toEqual([]);
  });

  it('ends with the callback error when the callback throws', async () => {
    const server = await local((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line('ADDED', { metadata: { name: 'a' } }) + line('ADDED', { metadata: { name: 'b' } }));
    });
    const boom = new Error('handler bug');
    let calls = 0;
    const done = new Promise<unknown>((resolve) => {
      void new KubeWatch(server.kubeConfig).watch(
        '/x',
        {},
        () => {
          calls++;
          throw boom;
        },
        resolve,
      );
    });
    expect(await done).toBe(boom);
    expect(calls).toBe(1);
  });

  it('an abort through the returned controller ends it once, and no event follows', async () => {
    let res: ServerResponse | undefined;
    const server = await local((_req, r) => {
      res = r;
      r.writeHead(200, { 'content-type': 'application/json' });
      r.flushHeaders();
    });
    const w = run(new KubeWatch(server.kubeConfig));
    const controller = await w.started;
    controller.abort();
    const err = await w.done;
    expect((err as Error).name).toBe('AbortError');
    res?.write(line('ADDED', { metadata: { name: 'late' } }));
    await sleep(50);
    expect(w.events).toEqual([]);
    expect(w.doneCalls()).toBe(1);
  });
});

describe('Informer over KubeWatch', () => {
  it('recovers from a watch the server accepts and never answers within the header timeout plus one backoff', async () => {
    let attempts = 0;
    const server = await local((_req, res) => {
      attempts++;
      // The first watch hangs (an API server whose watch is not served yet); the next one answers.
      if (attempts === 1) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line('ADDED', { metadata: { name: 'late', namespace: 'ns', resourceVersion: '11' } }));
    });
    interface Obj {
      metadata: { name: string; namespace?: string; resourceVersion?: string };
    }
    const list = (): Promise<ListResult<Obj>> => Promise.resolve({ items: [], metadata: { resourceVersion: '10' } });
    const informer = new Informer<Obj>({
      kubeConfig: server.kubeConfig,
      path: '/api/v1/namespaces/ns/configmaps',
      list,
      watch: new KubeWatch(server.kubeConfig, { headerTimeoutMs: 300 }),
      backoff: { initialMs: 100, maxMs: 200 },
      resyncPeriodMs: 0,
    });
    const added = new Promise<number>((resolve) => {
      informer.on('add', () => {
        resolve(performance.now());
      });
    });
    const t0 = performance.now();
    await informer.start();
    const at = await added;
    informer.stop();
    expect(attempts).toBe(2);
    expect(new URL(server.requests[1]?.url ?? '', 'http://x').searchParams.get('resourceVersion')).toBe('10');
    // 300 ms header timeout + a backoff of at most 200 ms (jitter), well under the 150 s inactivity timeout.
    expect(at - t0).toBeGreaterThanOrEqual(290);
    expect(at - t0).toBeLessThan(2000);
    expect(informer.get('ns', 'late')?.metadata.resourceVersion).toBe('11');
  });
});

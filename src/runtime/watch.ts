// A Kubernetes watch request (newline-delimited JSON events) with two separate
// deadlines, for the informer (its WatchLike):
//
//  - headers: a watch whose response does not start within `headerTimeoutMs`
//    is abandoned and reported as failed, so the informer retries it. A
//    kube-apiserver that is still starting (or a connection that was accepted
//    but is never answered) would otherwise hold the request until the
//    inactivity deadline, minutes later, while changes pile up unseen.
//  - inactivity: once the response has started, a watch that receives nothing
//    (no event, no bookmark) for `inactivityTimeoutMs` is abandoned and
//    reported as a TimeoutError (the informer resumes at once, from the newest
//    resourceVersion). It must be longer than the API server's bookmark period
//    (about a minute), or quiet watches would churn.
//
// client-node's Watch has one timer for both (requestTimeoutMs, 30 s by
// default), so it can be either quick to give up on a request that is never
// answered, or patient with a quiet watch, not both.
//
// Connection settings (TLS, client certificates, proxy agent, bearer or exec
// token) come from the kubeconfig's applyToHTTPSOptions, read again for every
// watch so that rotated credentials are picked up. Each watch is a plain
// HTTP/1.1 request on a connection of its own (client-node's Watch goes through
// undici, which negotiates HTTP/2): when that connection closes, the watch ends.
import { request as httpRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders, type RequestOptions } from 'node:http';
import { request as httpsRequest, type RequestOptions as HttpsRequestOptions } from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';
import type { WatchLike } from './informer.ts';

export interface KubeWatchOptions {
  /** Abandon a watch whose response has not started within this long. Default 5 s. */
  headerTimeoutMs?: number;
  /** Abandon a watch that received nothing for this long once its response started. Default 150 s. */
  inactivityTimeoutMs?: number;
}

/** The response of a watch did not start in time; retried by the informer like any failed watch. */
export class WatchHeaderTimeoutError extends Error {
  override readonly name = 'WatchHeaderTimeoutError';
  readonly path: string;
  readonly timeoutMs: number;
  constructor(path: string, timeoutMs: number) {
    super(`watch ${path}: no response within ${timeoutMs} ms; abandoned`);
    this.path = path;
    this.timeoutMs = timeoutMs;
  }
}

/** A watch answered with a status other than 200; `statusCode` and the Status `body` as apiErrorOf() reads them. */
export class WatchStatusError extends Error {
  override readonly name = 'WatchStatusError';
  readonly statusCode: number;
  readonly body: string;
  constructor(statusCode: number, body: string) {
    super(`watch failed: HTTP ${statusCode}`);
    this.statusCode = statusCode;
    this.body = body;
  }
}

/** The longest error body kept (a Status object is a few hundred bytes). */
const MAX_ERROR_BODY = 64 * 1024;

export class KubeWatch implements WatchLike {
  readonly #kubeConfig: KubeConfig;
  readonly #headerTimeoutMs: number;
  readonly #inactivityTimeoutMs: number;

  constructor(kubeConfig: KubeConfig, options: KubeWatchOptions = {}) {
    this.#kubeConfig = kubeConfig;
    this.#headerTimeoutMs = options.headerTimeoutMs ?? 5_000;
    this.#inactivityTimeoutMs = options.inactivityTimeoutMs ?? 150_000;
  }

  /**
   * Starts a watch of `path`. `callback` gets each event's type and object;
   * `done` is called exactly once: with null when the server ended the watch,
   * else with the error (an abort through the returned controller included).
   * Resolves, with that controller, once the response has started or the
   * watch has ended, whichever comes first.
   */
  async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const cluster = this.#kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('No currently active cluster');
    const url = new URL(cluster.server + path);
    url.searchParams.set('watch', 'true');
    for (const [key, value] of Object.entries(queryParams)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    // applyToHTTPSOptions adds Authorization (and impersonation) to this object.
    const headers: OutgoingHttpHeaders = { Accept: 'application/json' };
    const options: HttpsRequestOptions = { method: 'GET', headers };
    await this.#kubeConfig.applyToHTTPSOptions(options);
    // applyToHTTPSOptions hands out one Agent per cluster and user, built with the
    // certificates of the first call; without a proxy, a one-off agent instead takes
    // the CA and client certificate just read (above) into these options, so that
    // certificates rotated on disk are used by the next watch. A watch holds its
    // connection for minutes, so pooling would gain nothing.
    if (!cluster.proxyUrl) options.agent = false;

    const controller = new AbortController();
    const { promise: started, resolve: resolveStarted } = Promise.withResolvers<AbortController>();
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    let req: ClientRequest | undefined;
    let res: IncomingMessage | undefined;
    const finish = (err: unknown): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      res?.destroy();
      req?.destroy();
      resolveStarted(controller);
      done(err);
    };
    // One timer, re-armed lazily: `lastData` moves on every chunk and the timer
    // only looks at it when it fires, rather than being reset per chunk.
    let lastData = 0;
    const armInactivity = (ms: number): void => {
      timer = setTimeout(() => {
        const idle = performance.now() - lastData;
        if (idle >= this.#inactivityTimeoutMs) {
          finish(new DOMException(`watch ${path}: nothing received for ${this.#inactivityTimeoutMs} ms`, 'TimeoutError'));
        } else armInactivity(this.#inactivityTimeoutMs - idle);
      }, ms);
      timer.unref();
    };
    controller.signal.addEventListener(
      'abort',
      () => {
        finish(controller.signal.reason);
      },
      { once: true },
    );

    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    try {
      req = send(url, options as RequestOptions);
    } catch (err) {
      finish(err);
      return started;
    }
    timer = setTimeout(() => {
      finish(new WatchHeaderTimeoutError(path, this.#headerTimeoutMs));
    }, this.#headerTimeoutMs);
    timer.unref();
    req.on('error', finish);
    req.on('response', (response) => {
      res = response;
      clearTimeout(timer);
      lastData = performance.now();
      armInactivity(this.#inactivityTimeoutMs);
      response.on('data', () => {
        lastData = performance.now();
      });
      // A cut connection comes as Node's bare "aborted" (ECONNRESET): say which watch.
      // (The cause is kept as a property, not as `cause`, which apiErrorOf would append again.)
      const cut = (err: Error): void => {
        finish(Object.assign(new Error(`watch ${path}: connection cut (${err.message})`), { code: (err as NodeJS.ErrnoException).code, original: err }));
      };
      response.on('error', cut);
      if (response.statusCode !== 200) {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (body.length < MAX_ERROR_BODY) body += chunk;
        });
        response.on('end', () => {
          finish(new WatchStatusError(response.statusCode ?? 0, body));
        });
        response.on('close', () => {
          finish(new WatchStatusError(response.statusCode ?? 0, body));
        });
        return;
      }
      resolveStarted(controller);
      const lines = createInterface({ input: response, crlfDelay: Infinity });
      // readline re-emits the response's errors (a cut connection) on itself.
      lines.on('error', cut);
      lines.on('line', (line) => {
        if (finished || line.length === 0) return;
        let event: { type?: unknown; object?: unknown };
        try {
          event = JSON.parse(line) as { type?: unknown; object?: unknown };
        } catch (err) {
          // A cut or garbled line: end the watch, so that it resumes from the last
          // resourceVersion rather than skip an event unseen.
          finish(new Error(`watch ${path}: unreadable event line (${(err as Error).message})`));
          return;
        }
        if (typeof event.type !== 'string') {
          finish(new Error(`watch ${path}: event without a type`));
          return;
        }
        // A callback that throws ends the watch with its error (not swallowed).
        try {
          callback(event.type, event.object);
        } catch (err) {
          finish(err);
        }
      });
      // The server ended the watch (its timeoutSeconds, or a shutdown); an abort
      // or error before that has already called done.
      response.on('end', () => {
        finish(response.complete ? null : new Error(`watch ${path}: connection closed mid-response`));
      });
      response.on('close', () => {
        finish(response.complete ? null : new Error(`watch ${path}: connection closed mid-response`));
      });
    });
    req.end();
    return started;
  }
}

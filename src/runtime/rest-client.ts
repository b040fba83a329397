// A plain JSON client for the Kubernetes API: every read and write Usher makes
// goes through one of these. src/main.ts makes one for the controller and the
// acceptance page to share, and a small one of its own for leader election.
//
// Why not client-node's generated API classes (CoreV1Api, CustomObjectsApi…):
// on the controller's hot path they cost more than the work itself. Each call
// ran client-node's ObjectSerializer over the body and the answer (a walk of
// the generated model classes, turning every timestamp into a Date and back),
// and its authentication step read the kubeconfig's certificate files and built
// a fresh undici Agent for every request. A profile of the benchmark put about a
// third of the operator's CPU there (docs/adr/0010). Here a request is
// JSON.stringify, one HTTP/1.1 request on a keep-alive connection, and
// JSON.parse: the objects are the plain JSON the API server sent, timestamps
// included as strings.
//
// What still comes from client-node: the kubeconfig itself (KubeConfig, with its
// exec, token-file and OIDC authenticators), read through applyToHTTPSOptions,
// the same call the watches make (src/runtime/watch.ts). Its result (TLS
// material and the Authorization header) is kept for CONNECTION_TTL_MS, so
// that rotated certificates and tokens are picked up within that time; a 401
// reads it again at once and retries the request once.
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions as HttpsRequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/** An answer other than 2xx: `code` and `body` (the Status object, or the raw text) as apiErrorOf() reads them. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  readonly code: number;
  readonly body: unknown;
  constructor(method: string, path: string, code: number, body: unknown) {
    const message =
      typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string' ? (body as { message: string }).message : '';
    super(`${method} ${path}: HTTP ${code}${message ? `: ${message}` : ''}`);
    this.code = code;
    this.body = body;
  }
}

export interface RestClientOptions {
  /** Connections kept open to the API server at most (HTTP/1.1: one request each at a time). Default 16. */
  maxSockets?: number;
  /** A request whose connection stays silent this long is abandoned with an error. Default 60 s (the API server's own request timeout). */
  requestTimeoutMs?: number;
  /** The User-Agent header. */
  userAgent?: string;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  /** Sent as JSON. */
  body?: unknown;
  /** Default application/json; merge patches send application/merge-patch+json. */
  contentType?: string;
}

/** Requests that may be sent again after a connection reset: repeating them changes nothing (a PUT carries its resourceVersion). */
const IDEMPOTENT = new Set(['GET', 'PUT', 'DELETE']);
/** How long the kubeconfig's TLS material and headers are used before they are read again. */
const CONNECTION_TTL_MS = 10_000;
/** How long an Agent replaced by a new identity stays open for the requests still on it. */
const RETIRE_AFTER_MS = 60_000;
/** Idle keep-alive connections are closed after this long, before the API server's own idle timeout can race a request. */
const IDLE_SOCKET_MS = 30_000;
/** The longest answer kept: far above any object or list page Usher reads (pages are 500 objects). */
const MAX_BODY = 256 * 1024 * 1024;

interface Connection {
  /** The cluster's server URL without a trailing slash. */
  server: string;
  agent: HttpAgent;
  headers: OutgoingHttpHeaders;
  /** user:password for basic authentication, when the kubeconfig has one. */
  auth?: string;
  /** What the Agent was built from; a new one means a new Agent. */
  identity: string;
  at: number;
}

export class RestClient {
  readonly #kubeConfig: KubeConfig;
  readonly #maxSockets: number;
  readonly #requestTimeoutMs: number;
  readonly #userAgent: string;
  #connection: Connection | undefined;
  #reading: Promise<Connection> | undefined;
  #closed = false;

  constructor(kubeConfig: KubeConfig, options: RestClientOptions = {}) {
    this.#kubeConfig = kubeConfig;
    this.#maxSockets = options.maxSockets ?? 16;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
    this.#userAgent = options.userAgent ?? 'usher';
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, query ? { query } : {});
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, { body });
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }

  delete<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('DELETE', path, body === undefined ? {} : { body });
  }

  /**
   * One request; resolves with the parsed answer (undefined for an empty one),
   * rejects with a KubeApiError for any status other than 2xx, or with the
   * connection's error. Retried once: after a 401 (with the kubeconfig read
   * again: a token that expired), and, for GET, PUT and DELETE only, when a
   * kept-alive connection turns out to have been closed by the server. (A POST
   * is not sent again: the reset may have come after the server committed it.)
   */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    if (this.#closed) throw new Error(`${method} ${path}: the client is closed`);
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    let connection = await this.#connect(false);
    try {
      return await this.#send<T>(connection, method, path, options, payload);
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 401) {
        connection = await this.#connect(true);
        return this.#send<T>(connection, method, path, options, payload);
      }
      if ((err as { staleSocket?: boolean }).staleSocket && IDEMPOTENT.has(method)) return this.#send<T>(connection, method, path, options, payload);
      throw err;
    }
  }

  /** Closes the connections; later requests fail. */
  close(): void {
    this.#closed = true;
    this.#connection?.agent.destroy();
    this.#connection = undefined;
  }

  #send<T>(connection: Connection, method: string, path: string, options: RequestOptions, payload: Buffer | undefined): Promise<T> {
    const url = new URL(connection.server + path);
    for (const [key, value] of Object.entries(options.query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value));
    const headers: OutgoingHttpHeaders = { ...connection.headers, Accept: 'application/json', 'User-Agent': this.#userAgent };
    if (payload) {
      headers['Content-Type'] = options.contentType ?? 'application/json';
      headers['Content-Length'] = payload.length;
    }
    const requestOptions: HttpsRequestOptions = { method, agent: connection.agent, headers, ...(connection.auth ? { auth: connection.auth } : {}) };
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    return new Promise<T>((resolve, reject) => {
      let req: ClientRequest;
      try {
        req = send(url, requestOptions);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      let answered = false;
      req.setTimeout(this.#requestTimeoutMs, () => {
        req.destroy(new Error(`${method} ${path}: no answer from the API server within ${this.#requestTimeoutMs} ms`));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        // Node's advice for keep-alive: a reused connection the server had closed fails at once with ECONNRESET, before any answer.
        if (!answered && req.reusedSocket && err.code === 'ECONNRESET') Object.assign(err, { staleSocket: true });
        reject(err);
      });
      req.on('response', (res: IncomingMessage) => {
        answered = true;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY) {
            res.destroy(new Error(`${method} ${path}: answer larger than ${MAX_BODY} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks, size).toString('utf8');
          const status = res.statusCode ?? 0;
          let body: unknown = text;
          if (text.length > 0 && (res.headers['content-type'] ?? '').includes('json')) {
            try {
              body = JSON.parse(text) as unknown;
            } catch (err) {
              reject(new Error(`${method} ${path}: HTTP ${status} with unreadable JSON (${(err as Error).message})`));
              return;
            }
          }
          if (status >= 200 && status < 300) resolve((text.length > 0 ? body : undefined) as T);
          else reject(new KubeApiError(method, path, status, body));
        });
      });
      req.end(payload);
    });
  }

  /** The kubeconfig's connection settings, read again when older than CONNECTION_TTL_MS (or now, when `fresh`). */
  #connect(fresh: boolean): Promise<Connection> {
    const current = this.#connection;
    if (!fresh && current && performance.now() - current.at < CONNECTION_TTL_MS) return Promise.resolve(current);
    // One read at a time: the requests that find it stale meanwhile wait for the same one.
    this.#reading ??= this.#read().finally(() => {
      this.#reading = undefined;
    });
    return this.#reading;
  }

  async #read(): Promise<Connection> {
    const cluster = this.#kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    // applyToHTTPSOptions fills in the TLS material, the Authorization header (running an exec plugin or reading a token file when needed) and basic auth.
    const options: HttpsRequestOptions & { headers: OutgoingHttpHeaders } = { headers: {} };
    await this.#kubeConfig.applyToHTTPSOptions(options);
    const server = cluster.server.replace(/\/+$/, '');
    const material = (value: unknown): string => (Buffer.isBuffer(value) ? value.toString('base64') : typeof value === 'string' ? value : '');
    const identity = JSON.stringify([
      server,
      cluster.proxyUrl ?? '',
      material(options.ca),
      material(options.cert),
      material(options.key),
      options.rejectUnauthorized ?? null,
      options.servername ?? '',
    ]);
    const previous = this.#connection;
    let agent: HttpAgent;
    if (previous?.identity === identity) agent = previous.agent;
    else if (cluster.proxyUrl)
      agent = options.agent as HttpAgent; // client-node's proxy agent for this cluster and user
    else if (server.startsWith('http:')) agent = new HttpAgent({ keepAlive: true, maxSockets: this.#maxSockets, timeout: IDLE_SOCKET_MS });
    else {
      agent = new HttpsAgent({
        keepAlive: true,
        maxSockets: this.#maxSockets,
        timeout: IDLE_SOCKET_MS,
        ...pick(options, ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername']),
      });
    }
    if (previous && previous.agent !== agent) {
      const old = previous.agent;
      // Later, not now: requests may still be on the old connections.
      setTimeout(() => {
        old.destroy();
      }, RETIRE_AFTER_MS).unref();
    }
    const connection: Connection = { server, agent, headers: options.headers, identity, at: performance.now() };
    if (typeof options.auth === 'string') connection.auth = options.auth;
    if (this.#closed) agent.destroy();
    else this.#connection = connection;
    return connection;
  }
}

function pick<T extends object, K extends keyof T>(from: T, keys: K[]): Partial<Pick<T, K>> {
  const picked: Partial<Pick<T, K>> = {};
  for (const key of keys) if (from[key] !== undefined) picked[key] = from[key];
  return picked;
}

/**
 * A Kubernetes MicroTime (RFC 3339 with six fractional digits), as the API
 * server requires for an Event's eventTime and a Lease's times; JavaScript
 * knows milliseconds only, so the last three digits are zeros.
 */
export function microTime(date: Date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

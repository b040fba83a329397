// The metrics port's HTTP server: /metrics for Prometheus, /healthz for the
// kubelet's liveness probe (the process answers, so its event loop runs) and
// /readyz for the readiness probe (ready once the caller says so, typically
// once the informer caches have synced). node:http is enough for three GET
// routes, and keeps this server apart from the acceptance page's fastify
// instance: a slow or overloaded page never makes the probes fail.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { UsherMetrics } from './metrics.ts';

export interface MetricsServerOptions {
  metrics: UsherMetrics;
  /** Port to listen on (9090 in the chart; 0 picks a free one, for tests). */
  port: number;
  /** Address to listen on; default all interfaces, as a pod needs. */
  host?: string;
  /**
   * Whether this replica is ready; /readyz answers 503 until it returns true.
   * A string means not ready and says why (it becomes the 503's body, which
   * `kubectl describe pod` shows in the probe's failure event).
   */
  ready: () => boolean | string | Promise<boolean | string>;
}

export interface MetricsServer {
  /** The port actually listened on. */
  port: number;
  /** http://127.0.0.1:PORT (or the given host), for tests and logs. */
  url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    handle(options, req, res).catch((err: unknown) => {
      reply(res, 500, `error: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host === undefined || options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  return {
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => {
          if (err) reject(err);
          else resolve();
        });
        // Scrapers keep connections alive; do not wait for them to go.
        server.closeAllConnections();
      }),
  };
}

async function handle(options: MetricsServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    reply(res, 405, 'method not allowed\n');
    return;
  }
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  switch (path) {
    case '/metrics':
      reply(res, 200, await options.metrics.text(), options.metrics.registry.contentType);
      return;
    case '/healthz':
      reply(res, 200, 'ok\n');
      return;
    case '/readyz': {
      const ready = await options.ready();
      if (ready === true) reply(res, 200, 'ok\n');
      else reply(res, 503, `not ready${typeof ready === 'string' ? `: ${ready}` : ''}\n`);
      return;
    }
    default:
      reply(res, 404, 'not found: try /metrics, /healthz or /readyz\n');
  }
}

function reply(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

// A plain-HTTP proxy in front of the test API server that counts what one
// client asks of it: the acceptance page is given a kubeconfig pointing here,
// so a test can say exactly how many API requests a burst of page views cost.
// Watches are counted apart (they are opened once and then stream).
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface CountingProxy {
  /** A copy of the kubeconfig that talks through the proxy. */
  kubeConfig: KubeConfig;
  /** Requests other than watches, since the start, as `VERB path`. */
  requests: string[];
  watches: number;
  close(): Promise<void>;
}

export async function countingProxy(kubeconfigPath: string): Promise<CountingProxy> {
  const original = new KubeConfig();
  original.loadFromFile(kubeconfigPath);
  const cluster = original.getCurrentCluster();
  if (!cluster) throw new Error(`no cluster in ${kubeconfigPath}`);
  const target = new URL(cluster.server);
  const ca = cluster.caFile ? readFileSync(cluster.caFile) : undefined;
  const state = { requests: [] as string[], watches: 0 };
  const server: Server = createServer((req: IncomingMessage, res) => {
    const url = req.url ?? '/';
    if (/[?&]watch=(true|1)/.test(url)) state.watches++;
    else state.requests.push(`${req.method ?? 'GET'} ${url.split('?')[0] ?? url}`);
    const upstream = httpsRequest(
      {
        host: target.hostname,
        port: target.port,
        path: url,
        method: req.method,
        headers: { ...req.headers, host: target.host },
        ca,
        rejectUnauthorized: ca !== undefined,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const user = original.getCurrentUser();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'proxy', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: user?.name ?? 'user', ...(user?.token ? { token: user.token } : {}) }],
    contexts: [{ name: 'proxy', cluster: 'proxy', user: user?.name ?? 'user' }],
    currentContext: 'proxy',
  });
  return {
    kubeConfig,
    get requests() {
      return state.requests;
    },
    get watches() {
      return state.watches;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

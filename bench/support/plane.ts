// A fresh control plane for one benchmark or fault test: the envtest-style
// kube-apiserver + etcd + kube-controller-manager of tools/control-plane, with
// Usher's CRDs installed, API clients for the bench itself (on keep-alive
// connections, so that the bench's own traffic costs the API server as little
// as possible) and the API server's request counters.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { makePooledApiClient, PooledAuthentication } from './pooled-client.ts';
import { startControlPlane, type ControlPlane } from '../../tools/control-plane/control-plane.ts';

export const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

export interface Plane {
  plane: ControlPlane;
  kubeconfig: string;
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  kubectl(...args: string[]): Promise<string>;
  /** apiserver_request_total, summed per "VERB resource[/subresource]". */
  requestCounts(): Promise<Map<string, number>>;
  /** CPU seconds (user + system) used so far by etcd, kube-apiserver and kube-controller-manager. */
  cpu(): { etcd: number; apiserver: number; kcm: number };
  /** Creates a namespace labelled for tenant `tenant`. */
  namespace(name: string, tenant?: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startPlane(log: (line: string) => void = () => undefined): Promise<Plane> {
  const plane = await startControlPlane({ log });
  const kubeconfig = plane.kubeconfigs.admin;
  const kubectl = async (...args: string[]): Promise<string> =>
    (await run('kubectl', ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 })).stdout;
  try {
    await kubectl('apply', '--server-side', '-f', join(root, 'crds'));
    await kubectl('wait', '--for=condition=Established', '--timeout=60s', '-f', join(root, 'crds'));
    // Usher's own namespace: its invitation records live there.
    await kubectl('create', 'namespace', 'usher-system');
  } catch (err) {
    await plane.stop();
    throw err;
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfig);
  const auth = new PooledAuthentication(kubeConfig);
  const core = makePooledApiClient(kubeConfig, CoreV1Api, auth);
  const custom = makePooledApiClient(kubeConfig, CustomObjectsApi, auth);
  const token = kubeConfig.getCurrentUser()?.token ?? '';
  const caFile = kubeConfig.getCurrentCluster()?.caFile;
  const ca = caFile ? readFileSync(caFile) : undefined;
  return {
    plane,
    kubeconfig,
    kubeConfig,
    core,
    custom,
    kubectl,
    requestCounts: () => requestCounts(plane.server, token, ca),
    cpu() {
      // Launch order: etcd, kube-apiserver, kube-controller-manager (the pids file lists them so).
      const [etcd = 0, apiserver = 0, kcm = 0] = readFileSync(join(plane.dir, 'pids'), 'utf8')
        .split('\n')
        .map((pid) => cpuSeconds(Number(pid)));
      return { etcd, apiserver, kcm };
    },
    async namespace(name, tenant) {
      await core.createNamespace({ body: { metadata: { name, ...(tenant ? { labels: { 'usher.dev/tenant': tenant } } : {}) } } });
    },
    stop: () => plane.stop(),
  };
}

/** utime + stime of a process from /proc/PID/stat, in seconds; 0 if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat(5), counted after the command name: utime, stime in clock ticks (100 Hz on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

function get(url: string, token: string, ca: Buffer | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { Authorization: `Bearer ${token}` }, ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode === 200) resolve(Buffer.concat(chunks).toString('utf8'));
        else reject(new Error(`GET ${url}: HTTP ${res.statusCode ?? '?'}`));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The API server's own count of requests it served, per verb and resource (every client, the bench's included). */
async function requestCounts(server: string, token: string, ca: Buffer | undefined): Promise<Map<string, number>> {
  const text = await get(`${server}/metrics`, token, ca);
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const close = line.lastIndexOf('}');
    const labels: Record<string, string | undefined> = {};
    for (const m of line.slice(line.indexOf('{') + 1, close).matchAll(/(\w+)="([^"]*)"/g)) labels[m[1] ?? ''] = m[2];
    const value = Number(line.slice(close + 1).trim());
    const key = `${labels.verb ?? '?'} ${labels.resource ?? '?'}${labels.subresource ? `/${labels.subresource}` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + value);
  }
  return counts;
}

/** after − before, only what changed. */
export function countsDelta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [key, value] of after) {
    const d = value - (before.get(key) ?? 0);
    if (d > 0) delta.set(key, d);
  }
  return delta;
}

/** The writes among request counts: POST, PUT, PATCH, DELETE (and DELETECOLLECTION). */
export function writesOf(counts: Map<string, number>, resources?: readonly string[]): number {
  let total = 0;
  for (const [key, value] of counts) {
    const [verb = '', resource = ''] = key.split(' ');
    if (!/^(POST|PUT|PATCH|DELETE|DELETECOLLECTION|CREATE|UPDATE|APPLY)$/.test(verb)) continue;
    if (resources && !resources.some((r) => resource === r || resource.startsWith(`${r}/`))) continue;
    total += value;
  }
  return total;
}

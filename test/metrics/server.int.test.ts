// The metrics server scraped over HTTP, wired as Usher wires it: readiness
// from an informer's sync on the real API server, and the invitation gauge
// counted from that informer's cache at each scrape.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { API_VERSION, GROUP, INVITATION_KIND, INVITATION_PLURAL, VERSION, type UserInvitation } from '../../src/api/types.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { Informer } from '../../src/runtime/informer.ts';
import { countByPhase, UsherMetrics } from '../../src/metrics/metrics.ts';
import { startMetricsServer, type MetricsServer } from '../../src/metrics/server.ts';
import { kubectlOk, useNamespace } from '../support/cluster.ts';

const ns = useNamespace('metrics');
let kc: KubeConfig;
let custom: CustomObjectsApi;
let informer: Informer<UserInvitation>;
let metrics: UsherMetrics;
let server: MetricsServer;
let depth = 0;

beforeAll(async () => {
  kc = loadKubeConfig(inject('kubeconfigs').admin);
  custom = kc.makeApiClient(CustomObjectsApi);
  informer = new Informer<UserInvitation>({
    kubeConfig: kc,
    path: `/apis/${GROUP}/${VERSION}/namespaces/${ns()}/${INVITATION_PLURAL}`,
    list: async () =>
      (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns(), plural: INVITATION_PLURAL })) as { items: UserInvitation[] },
  });
  metrics = new UsherMetrics({ invitationsByPhase: () => countByPhase(informer.list()), workqueueDepth: () => depth });
  server = await startMetricsServer({ metrics, port: 0, host: '127.0.0.1', ready: () => informer.hasSynced() });
});

afterAll(async () => {
  informer.stop();
  await server.close();
});

async function get(path: string, init?: RequestInit): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(`${server.url}${path}`, init);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

async function scrape(): Promise<string> {
  const { status, body, type } = await get('/metrics');
  expect(status).toBe(200);
  expect(type).toBe('text/plain; version=0.0.4; charset=utf-8');
  return body;
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function eventually(check: () => Promise<void>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function invite(name: string): Promise<void> {
  const body: UserInvitation = {
    apiVersion: API_VERSION,
    kind: INVITATION_KIND,
    metadata: { name },
    spec: { email: `${name}@example.com`, tenant: 'acme', groups: ['g'] },
  };
  await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns(), plural: INVITATION_PLURAL, body });
}

/** Accepted is the one phase a controller never moves an invitation out of (another test file may run one). */
async function accept(name: string): Promise<void> {
  const status = JSON.stringify({ status: { phase: 'Accepted', acceptedAt: '2025-01-01T00:00:00Z', tenant: 'acme' } });
  await kubectlOk(['patch', 'userinvitation', name, '-n', ns(), '--subresource=status', '--type=merge', '-p', status]);
}

describe('the metrics server', () => {
  it('answers /healthz at once, and /readyz only once the caches have synced', async () => {
    expect(await get('/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get('/readyz')).toMatchObject({ status: 503, body: 'not ready\n' });
    await invite('alice');
    await invite('bob');
    await invite('carol');
    await informer.start();
    expect(await get('/readyz')).toMatchObject({ status: 200, body: 'ok\n' });
  });

  it('serves the invitation gauge from the cache, following the API server', async () => {
    await accept('alice');
    await accept('bob');
    await eventually(async () => {
      const text = await scrape();
      expect(sample(text, 'usher_invitations{phase="Accepted"}')).toBe(2);
      const total = [...text.matchAll(/^usher_invitations\{phase="[^"]+"\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
      expect(total).toBe(3);
    });
    await accept('carol');
    await eventually(async () => {
      expect(sample(await scrape(), 'usher_invitations{phase="Accepted"}')).toBe(3);
    });
    await kubectlOk(['delete', 'userinvitation', 'carol', '-n', ns()]);
    await eventually(async () => {
      expect(sample(await scrape(), 'usher_invitations{phase="Accepted"}')).toBe(2);
    });
  });

  it('serves the controller’s counters, the work-queue depth and the process metrics', async () => {
    metrics.observeReconcile(12, 'success');
    metrics.observeReconcile(80, 'error');
    metrics.mailFailed(true);
    depth = 5;
    const text = await scrape();
    expect(sample(text, 'usher_reconcile_total{result="success"}')).toBe(1);
    expect(sample(text, 'usher_reconcile_errors_total')).toBe(1);
    expect(sample(text, 'usher_reconcile_duration_seconds_count')).toBe(2);
    expect(sample(text, 'usher_mails_failed_total{permanent="true"}')).toBe(1);
    expect(sample(text, 'usher_workqueue_depth')).toBe(5);
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  });

  it('answers HEAD without a body, and refuses other methods and paths', async () => {
    expect(await get('/metrics', { method: 'HEAD' })).toMatchObject({ status: 200, body: '' });
    const post = await fetch(`${server.url}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect(await get('/metricz')).toMatchObject({ status: 404, body: 'not found: try /metrics, /healthz or /readyz\n' });
    // A query string does not change the route (Prometheus may add one).
    expect((await get('/healthz?verbose')).status).toBe(200);
  });
});

// 5. The acceptance page (src/accept's createAcceptServer, in this process on
// loopback, against a fresh control plane): requests per second and latency of
// the invitation page (GET /accept/<token>, which reads the record, the
// invitation and the namespace from the API server), then accepts per second:
// GET the page for its CSRF token, POST the password form, which hashes with
// the production argon2id parameters and writes the record, the User and the
// credentials Secret. Load: `connections` loops of fetch (undici, keep-alive)
// for a bounded time and a bounded number of invitations. The page's rate
// limits are raised out of the way: this measures the page, not the limiter.
import { randomBytes } from 'node:crypto';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';
import { pino } from 'pino';
import { createAcceptServer } from '../src/accept/index.ts';
import { parseConfig } from '../src/config/load.ts';
import { PooledAuthentication } from '../src/kube/pooled-client.ts';
import { freePort } from '../tools/control-plane/control-plane.ts';
import { invitationBody, pool, seedSettled, TENANT } from './support/invitations.ts';
import { startPlane } from './support/plane.ts';
import { percentile } from './support/stats.ts';

export interface AcceptOptions {
  seconds: number;
  connections: number;
  /** Give the page's API clients one keep-alive pool (an experiment: src/accept makes its own clients). */
  pooled?: boolean;
  log: (line: string) => void;
}

export interface LoadFigures {
  requests: number;
  errors: number;
  seconds: number;
  rate: number;
  p50: number;
  p99: number;
  statuses: Record<string, number>;
}

export interface AcceptResult {
  connections: number;
  page: LoadFigures;
  accepts: LoadFigures;
}

/** A KubeConfig whose API clients share one keep-alive connection pool (bench experiment only). */
class PooledKubeConfig extends KubeConfig {
  #pooled: PooledAuthentication | undefined;

  override applySecurityAuthentication(context: RequestContext): Promise<void> {
    if (!this.#pooled) {
      const plain = new KubeConfig();
      plain.loadFromString(this.exportConfig());
      this.#pooled = new PooledAuthentication(plain);
    }
    return this.#pooled.applySecurityAuthentication(context);
  }
}

function figures(latencies: number[], errors: number, seconds: number, statuses: Map<number, number>): LoadFigures {
  return {
    requests: latencies.length,
    errors,
    seconds,
    rate: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    statuses: Object.fromEntries([...statuses].map(([k, v]) => [String(k), v])),
  };
}

/** Runs `connections` loops of `step` until `seconds` pass or a step returns false; latencies of the steps that counted. */
async function load(connections: number, seconds: number, step: (latencies: number[], statuses: Map<number, number>) => Promise<boolean>): Promise<{ latencies: number[]; errors: number; seconds: number; statuses: Map<number, number> }> {
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  let errors = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) {
        try {
          if (!(await step(latencies, statuses))) return;
        } catch {
          errors++;
        }
      }
    }),
  );
  return { latencies, errors, seconds: (performance.now() - t0) / 1000, statuses };
}

const count = (statuses: Map<number, number>, status: number): void => {
  statuses.set(status, (statuses.get(status) ?? 0) + 1);
};

export async function acceptBench(options: AcceptOptions): Promise<AcceptResult> {
  const { log, connections } = options;
  const plane = await startPlane();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const config = parseConfig(
    ['usher:', `  baseUrl: ${base}`, '  accept:', '    credentialsNamespace: accept-credentials', '    rateLimit: { perClientPerMinute: 100000000, perTokenPerMinute: 100000000 }', ''].join('\n'),
    { source: 'bench' },
  );
  const kubeConfig = options.pooled ? new PooledKubeConfig() : new KubeConfig();
  kubeConfig.loadFromFile(plane.kubeconfig);
  const server = createAcceptServer({ kubeConfig, config, log: pino({ level: 'warn' }) });
  try {
    await plane.namespace('accept', TENANT);
    await plane.namespace('accept-credentials');
    // Invitations for the page views (read only) and for accepting (each accepted once).
    const pageInvitations = 100;
    const acceptInvitations = Math.max(200, Math.ceil(options.seconds * 60));
    const seeded = await pool(Array.from({ length: pageInvitations + acceptInvitations }, (_, i) => i), 32, (i) =>
      seedSettled({ core: plane.core, custom: plane.custom, config }, invitationBody('accept', `inv-${i}`)),
    );
    const pageLinks = seeded.slice(0, pageInvitations).map((s) => `${base}/accept/${s.token}`);
    const acceptLinks = seeded.slice(pageInvitations).map((s) => `${base}/accept/${s.token}`);
    await server.listen(port, '127.0.0.1');

    const getPage = async (latencies: number[], statuses: Map<number, number>): Promise<boolean> => {
      const link = pageLinks[Math.floor(Math.random() * pageLinks.length)] ?? '';
      const t = performance.now();
      const res = await fetch(link);
      await res.text();
      count(statuses, res.status);
      if (res.status !== 200) throw new Error(`page: HTTP ${res.status}`);
      latencies.push(performance.now() - t);
      return true;
    };
    // Warm-up: connections, JIT, the page's first API connections.
    await load(connections, 1, getPage);
    const page = await load(connections, options.seconds, getPage);
    const pageFigures = figures(page.latencies, page.errors, page.seconds, page.statuses);
    log(`  page: ${pageFigures.rate.toFixed(0)}/s over ${pageFigures.seconds.toFixed(1)} s with ${connections} connections, p50 ${pageFigures.p50.toFixed(1)} ms, p99 ${pageFigures.p99.toFixed(1)} ms, ${pageFigures.errors} errors`);

    let next = 0;
    const accept = async (latencies: number[], statuses: Map<number, number>): Promise<boolean> => {
      const link = acceptLinks[next++];
      if (!link) return false;
      const shown = await fetch(link);
      const html = await shown.text();
      const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
      const cookie = shown.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
      if (!csrf) throw new Error(`no CSRF field on the page (HTTP ${shown.status})`);
      const password = `${randomBytes(12).toString('base64url')}-q7`;
      const t = performance.now();
      const res = await fetch(link, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
        body: new URLSearchParams({ csrf, intent: 'password', firstName: 'Jane', lastName: 'Doe', password, confirm: password }).toString(),
        redirect: 'manual',
      });
      const body = await res.text();
      count(statuses, res.status);
      if (res.status !== 200 || !/accepted|welcome/i.test(body)) throw new Error(`accept: HTTP ${res.status}`);
      latencies.push(performance.now() - t);
      return true;
    };
    const accepts = await load(connections, options.seconds, accept);
    const acceptFigures = figures(accepts.latencies, accepts.errors, accepts.seconds, accepts.statuses);
    log(`  accepts: ${acceptFigures.rate.toFixed(1)}/s (${acceptFigures.requests} in ${acceptFigures.seconds.toFixed(1)} s, ${connections} at once), POST p50 ${acceptFigures.p50.toFixed(0)} ms, p99 ${acceptFigures.p99.toFixed(0)} ms, ${acceptFigures.errors} errors (statuses ${JSON.stringify(acceptFigures.statuses)})`);
    return { connections, page: pageFigures, accepts: acceptFigures };
  } finally {
    await server.close();
    await plane.stop();
  }
}

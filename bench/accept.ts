// 5. The acceptance page (src/accept's createAcceptServer, in this process on
// loopback, against a fresh control plane), side by side with the page before
// its caches (bench/support/old-page.ts: src/ of commit 9895e65 from git
// history, the page that read the API server on every view), in one run:
//
//   - page views: GET /accept/<valid token> with `connections` keep-alive
//     fetch loops for `seconds`, old page then current page; views/s, p50,
//     p99, and the API server's request counters over each window;
//   - API requests per 1,000 requests, counted by the API server itself
//     (apiserver_request_total before and after; WATCH, the metrics scrape and
//     resources the page never reads are left out of the count and printed
//     apart): 1,000 unknown tokens (well-shaped, random), 1,000 malformed
//     tokens, 1,000 valid-link views, on each page;
//   - accepts (current page only): GET the page for its CSRF token, POST the
//     password form, which hashes with the production argon2id parameters and
//     writes the record, the User and the credentials Secret; each invitation
//     (and so each email) accepted once.
//
// The page's rate limits are raised out of the way: this measures the page,
// not the limiter. The load generator shares the page's process and event
// loop, as in the earlier runs.
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';
import { pino } from 'pino';
import { createAcceptServer } from '../src/accept/index.ts';
import { parseConfig } from '../src/config/load.ts';
import { PooledAuthentication } from './support/pooled-client.ts';
import { issueToken } from '../src/invitation/token.ts';
import { freePort } from '../tools/control-plane/control-plane.ts';
import { invitationBody, pool, seedSettled, TENANT } from './support/invitations.ts';
import { loadOldPage, type OldAcceptServer, type OldPage } from './support/old-page.ts';
import { countsDelta, startPlane, type Plane } from './support/plane.ts';
import { percentile } from './support/stats.ts';

export interface AcceptOptions {
  seconds: number;
  connections: number;
  /** Give the page's API clients one keep-alive pool (an experiment: src/accept makes its own clients). */
  pooled?: boolean;
  /** Also measure the old page (commit 9895e65 from git history) side by side; default true. */
  before?: boolean;
  /** Requests in each API-cost window (unknown, malformed, valid); default 1000. */
  costRequests?: number;
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

/** What the API server counted while a window of requests ran. */
export interface ApiCost {
  /** Page requests sent in the window. */
  sent: number;
  /** API requests counted: the page's resources (secrets, userinvitations, namespaces, users), WATCH excluded. */
  apiRequests: number;
  /** apiRequests per 1,000 page requests. */
  perThousand: number;
  /** The counted ones by "VERB resource". */
  counted: Record<string, number>;
  /** Left out of the count: other resources (the controller-manager's leases…), non-resource URLs (the metrics scrape), WATCH. */
  other: Record<string, number>;
  statuses: Record<string, number>;
  errors: number;
}

export interface PageSide {
  /** Which code: "current" or the old commit. */
  code: string;
  page: LoadFigures;
  /** The API server's counters over the page-view window. */
  pageApi: ApiCost;
  unknownTokens: ApiCost;
  malformedTokens: ApiCost;
  validViews: ApiCost;
  loadAverage: string;
}

export interface AcceptResult {
  connections: number;
  /** Secrets in the whole cluster while the pages were measured (what the old page's cluster-wide LIST filtered). */
  secretsInCluster: number;
  /** Current code (cached page). `page` is its page-view figures, kept at the top level as before. */
  page: LoadFigures;
  after: PageSide;
  /** The old page (commit 9895e65), same cluster, same connections, same run. */
  before?: PageSide;
  accepts: LoadFigures;
  loadAverage: { start: string; accepts: string };
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

type Step = (latencies: number[], statuses: Map<number, number>) => Promise<boolean>;

/** Runs `connections` loops of `step` until `seconds` pass or a step returns false; latencies of the steps that counted. */
async function load(
  connections: number,
  seconds: number,
  step: Step,
): Promise<{ latencies: number[]; errors: number; seconds: number; statuses: Map<number, number> }> {
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

const loadAverage = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** What the page reads; anything else in the counters is someone else's (kube-controller-manager, the scrape). */
const PAGE_RESOURCES = new Set(['secrets', 'userinvitations', 'namespaces', 'users']);

function splitCounts(delta: Map<number | string, number>): { counted: Record<string, number>; other: Record<string, number>; total: number } {
  const counted: Record<string, number> = {};
  const other: Record<string, number> = {};
  let total = 0;
  for (const [key, value] of delta) {
    const [verb = '', resource = ''] = String(key).split(' ');
    if (verb !== 'WATCH' && PAGE_RESOURCES.has(resource.split('/')[0] ?? '')) {
      counted[String(key)] = value;
      total += value;
    } else {
      other[String(key)] = value;
    }
  }
  return { counted, other, total };
}

/** Runs `run` between two reads of the API server's counters. */
async function counting<T extends { sent: number; statuses: Map<number, number>; errors: number }>(
  plane: Plane,
  run: () => Promise<T>,
): Promise<{ result: T; cost: ApiCost }> {
  const before = await plane.requestCounts();
  const result = await run();
  const after = await plane.requestCounts();
  const { counted, other, total } = splitCounts(countsDelta(before, after));
  return {
    result,
    cost: {
      sent: result.sent,
      apiRequests: total,
      perThousand: result.sent ? (1000 * total) / result.sent : NaN,
      counted,
      other,
      statuses: Object.fromEntries([...result.statuses].map(([k, v]) => [String(k), v])),
      errors: result.errors,
    },
  };
}

/** Links that are not ours in ways the router, the token parser or the lookup each catch. */
function malformedToken(i: number): string {
  const { selector, verifier } = issueToken(randomBytes);
  const shapes = [
    () => `${selector}.${verifier.slice(1)}`, // verifier one character short
    () => `${selector.toUpperCase()}.${verifier}`, // selector not lower-case hex
    () => `${selector}${verifier}`, // no dot
    () => `${selector}.${verifier}.x`, // trailing part
    () => randomBytes(24).toString('base64url'), // plain junk
    () => `%zz${selector}`, // bad percent-encoding (the router refuses it)
    () => `${selector}.${verifier}${'A'.repeat(200)}`, // over-long (past the router's parameter limit)
    () => `${selector}.${verifier.replace(/^./, '~')}`, // a character outside base64url
  ];
  return (shapes[i % shapes.length] ?? shapes[0])?.() ?? '';
}

interface Measured {
  page: LoadFigures;
  pageApi: ApiCost;
  unknownTokens: ApiCost;
  malformedTokens: ApiCost;
  validViews: ApiCost;
  loadAverage: string;
}

/** One page's figures: page views for `seconds`, then the three API-cost windows of `costRequests` requests each. */
async function measurePage(plane: Plane, label: string, base: string, links: readonly string[], options: AcceptOptions): Promise<Measured> {
  const { connections, seconds, log } = options;
  const costRequests = options.costRequests ?? 1000;
  const getPage: Step = async (latencies, statuses) => {
    const link = links[Math.floor(Math.random() * links.length)] ?? '';
    const t = performance.now();
    const res = await fetch(link);
    const html = await res.text();
    count(statuses, res.status);
    if (res.status !== 200 || !html.includes('name="csrf"')) throw new Error(`page: HTTP ${res.status}`);
    latencies.push(performance.now() - t);
    return true;
  };
  // Warm-up: connections, JIT, the page's first API connections.
  await load(connections, 1, getPage);
  const la = loadAverage();
  const views = await counting(plane, async () => {
    const r = await load(connections, seconds, getPage);
    return { ...r, sent: r.latencies.length + r.errors };
  });
  const page = figures(views.result.latencies, views.result.errors, views.result.seconds, views.result.statuses);
  log(
    `  ${label} page: ${page.rate.toFixed(0)} views/s over ${page.seconds.toFixed(1)} s with ${connections} connections, p50 ${page.p50.toFixed(1)} ms, p99 ${page.p99.toFixed(1)} ms, ${page.errors} errors; ` +
      `${views.cost.perThousand.toFixed(0)} API requests per 1,000 views (${describe(views.cost.counted)}); load average ${la}`,
  );

  /** Exactly `n` requests of `url(i)`, `connections` at once, each expected to answer `status`. */
  const fixed = (n: number, url: (i: number) => string, status: number, check?: (html: string) => boolean) =>
    counting(plane, async () => {
      let next = 0;
      const r = await load(connections, 3600, async (latencies, statuses) => {
        const i = next++;
        if (i >= n) return false;
        const t = performance.now();
        const res = await fetch(url(i));
        const html = await res.text();
        count(statuses, res.status);
        if (res.status !== status || (check && !check(html))) throw new Error(`HTTP ${res.status}, expected ${status}`);
        latencies.push(performance.now() - t);
        return true;
      });
      return { ...r, sent: n };
    });
  const unknown = await fixed(costRequests, () => `${base}/accept/${issueToken(randomBytes).token}`, 404);
  const malformed = await fixed(costRequests, (i) => `${base}/accept/${malformedToken(i)}`, 404);
  const valid = await fixed(
    costRequests,
    (i) => links[i % links.length] ?? '',
    200,
    (html) => html.includes('name="csrf"'),
  );
  for (const [what, cost] of [
    ['unknown tokens', unknown.cost],
    ['malformed tokens', malformed.cost],
    ['valid-link views', valid.cost],
  ] as const) {
    log(
      `  ${label} page: ${cost.apiRequests} API requests for ${cost.sent} ${what} (${cost.perThousand.toFixed(0)} per 1,000: ${describe(cost.counted)}), ` +
        `statuses ${JSON.stringify(cost.statuses)}, ${cost.errors} errors; left out: ${describe(cost.other)}`,
    );
  }
  return { page, pageApi: views.cost, unknownTokens: unknown.cost, malformedTokens: malformed.cost, validViews: valid.cost, loadAverage: la };
}

function describe(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(', ') : 'none';
}

const rateLimits = '    rateLimit: { perClientPerMinute: 100000000, perTokenPerMinute: 100000000 }';

export async function acceptBench(options: AcceptOptions): Promise<AcceptResult> {
  const { log, connections } = options;
  const startLoad = loadAverage();
  const plane = await startPlane();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const config = parseConfig(['usher:', `  baseUrl: ${base}`, '  accept:', '    credentialsNamespace: accept-credentials', rateLimits, ''].join('\n'), {
    source: 'bench',
    env: {},
  });
  const kubeConfig = options.pooled ? new PooledKubeConfig() : new KubeConfig();
  kubeConfig.loadFromFile(plane.kubeconfig);
  const server = createAcceptServer({ kubeConfig, config, log: pino({ level: 'warn' }) });
  let old: OldPage | undefined;
  let oldServer: OldAcceptServer | undefined;
  try {
    await plane.namespace('accept', TENANT);
    await plane.namespace('accept-credentials');
    // Invitations for the page views (read only) and for accepting (each accepted once, so each email is new).
    const pageInvitations = 100;
    const acceptInvitations = Math.max(200, Math.ceil(options.seconds * 60));
    const seeded = await pool(
      Array.from({ length: pageInvitations + acceptInvitations }, (_, i) => i),
      32,
      (i) => seedSettled({ core: plane.core, custom: plane.custom, config }, invitationBody('accept', `inv-${i}`)),
    );
    const pageLinks = seeded.slice(0, pageInvitations).map((s) => `${base}/accept/${s.token}`);
    const acceptLinks = seeded.slice(pageInvitations).map((s) => `${base}/accept/${s.token}`);

    // The old page, on its own port, with the same number of invitations of its own (records in its old format, beside them).
    let oldBase = '';
    let oldLinks: string[] = [];
    if (options.before ?? true) {
      old = await loadOldPage();
      const oldPort = await freePort();
      oldBase = `http://127.0.0.1:${oldPort}`;
      const oldConfig = old.parseConfig(
        ['usher:', `  baseUrl: ${oldBase}`, '  accept:', '    credentialsNamespace: accept-credentials', rateLimits, ''].join('\n'),
      );
      await plane.namespace('accept-before', TENANT);
      const oldPage = old;
      const oldSeeded = await pool(
        Array.from({ length: pageInvitations }, (_, i) => i),
        32,
        (i) => oldPage.seedSettled({ core: plane.core, custom: plane.custom, config: oldConfig }, 'accept-before', `old-inv-${i}`),
      );
      oldLinks = oldSeeded.map((s) => `${oldBase}/accept/${s.token}`);
      oldServer = old.createAcceptServer({ kubeConfig, config: oldConfig, log: pino({ level: 'warn' }) });
      await oldServer.listen(oldPort, '127.0.0.1');
    }
    await server.listen(port, '127.0.0.1');
    if (!server.ready()) throw new Error('the page listens but its caches are not synced');
    const secretsInCluster = (await plane.core.listSecretForAllNamespaces()).items.length;
    log(
      `  ${secretsInCluster} Secrets in the cluster (${pageInvitations + acceptInvitations} records in usher-system${oldLinks.length ? `, ${oldLinks.length} old-format records in accept-before` : ''}); load average ${loadAverage()}`,
    );

    let before: PageSide | undefined;
    if (oldServer && old) {
      before = { code: old.commit, ...(await measurePage(plane, `before (${old.commit.slice(0, 7)})`, oldBase, oldLinks, options)) };
    }
    const after: PageSide = { code: 'current', ...(await measurePage(plane, 'after (current)', base, pageLinks, options)) };
    if (before) {
      log(
        `  page views/s after / before: ${(after.page.rate / before.page.rate).toFixed(1)}× (${after.page.rate.toFixed(0)} vs ${before.page.rate.toFixed(0)}); ` +
          `API requests per 1,000 unknown tokens ${after.unknownTokens.perThousand.toFixed(0)} vs ${before.unknownTokens.perThousand.toFixed(0)}, ` +
          `malformed ${after.malformedTokens.perThousand.toFixed(0)} vs ${before.malformedTokens.perThousand.toFixed(0)}, valid views ${after.validViews.perThousand.toFixed(0)} vs ${before.validViews.perThousand.toFixed(0)}`,
      );
    }

    let next = 0;
    const accept: Step = async (latencies, statuses) => {
      const link = acceptLinks[next++];
      if (!link) return false;
      const shown = await fetch(link);
      const html = await shown.text();
      const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
      const cookie = shown.headers
        .getSetCookie()
        .map((c) => c.split(';')[0])
        .join('; ');
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
    const acceptsLoad = loadAverage();
    const accepts = await load(connections, options.seconds, accept);
    const acceptFigures = figures(accepts.latencies, accepts.errors, accepts.seconds, accepts.statuses);
    log(
      `  accepts (current): ${acceptFigures.rate.toFixed(1)}/s (${acceptFigures.requests} in ${acceptFigures.seconds.toFixed(1)} s, ${connections} at once), POST p50 ${acceptFigures.p50.toFixed(0)} ms, p99 ${acceptFigures.p99.toFixed(0)} ms, ${acceptFigures.errors} errors (statuses ${JSON.stringify(acceptFigures.statuses)}); load average ${acceptsLoad}`,
    );
    return {
      connections,
      secretsInCluster,
      page: after.page,
      after,
      ...(before ? { before } : {}),
      accepts: acceptFigures,
      loadAverage: { start: startLoad, accepts: acceptsLoad },
    };
  } finally {
    await oldServer?.close();
    await server.close();
    old?.dispose();
    await plane.stop();
  }
}

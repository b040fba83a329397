// 7. Signing in after acceptance: the real operator (`node src/main.ts`, controller
// and page in one process, as the demo runs it) with usher.identity pointed at a real
// Keycloak (tools/keycloak, the cached 26.7 install; started once for this benchmark,
// realm set up by tools/demo-keycloak.ts as the README's steps say), against a fresh
// control plane and an SMTP sink, each side with its own.
//
//   - accept → sign-in: invitations accepted one at a time (GET the form, POST a
//     password); from the page's 200 the bench asks Keycloak's token endpoint for a
//     token (password grant on usher-accept) every `pollMs` until one succeeds with an
//     ID token carrying the invitation's groups (/tenants/bench,
//     /tenants/bench/data-engineers): p50/p99 over `signIns` accepts, after 3
//     unmeasured ones (the realm's groups made, the JVM warm). Beside it, the moment the
//     bench's watch saw the User Provisioned.
//   - accepts per second, end to end: `accepts` invitations accepted all at once, the
//     clock from the first GET until every invitation is Accepted and, with Keycloak,
//     every User Provisioned=True; the same without usher.identity (no Keycloak) on a
//     control plane of its own in the same run, for the ratio. Then a sample of the
//     accepted people sign in, to show the accounts work.
//
// The page's rate limits are raised out of the way, as in the accept benchmark.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { GROUP, USER_PLURAL, VERSION, type User } from '../src/api/types.ts';
import { Informer, type ListResult } from '../src/runtime/informer.ts';
import { freePort } from '../tools/control-plane/control-plane.ts';
import { startDemoKeycloak, type DemoKeycloak } from '../tools/demo-keycloak.ts';
import { createInvitations, invitationBody, pool, TENANT } from './support/invitations.ts';
import { startOperator, summariseProblems, type LogLine, type Operator } from './support/operator.ts';
import { wallNow, watchPhases, type PhaseWatch } from './support/phases.ts';
import { cpuSeconds, startPlane, type Plane } from './support/plane.ts';
import { startSink, type Sink } from './support/sink.ts';
import { percentile } from './support/stats.ts';

export interface KeycloakBenchOptions {
  /** Accepts measured one at a time for accept → sign-in (30). */
  signIns: number;
  /** Accepts at once for the end-to-end rate (100). */
  accepts: number;
  workers: number;
  /** Between two token requests while waiting for the first sign-in (25 ms). */
  pollMs?: number;
  /**
   * Keycloak's JIT: 'c1' (the default: -XX:TieredStopAtLevel=1, as tools/keycloak starts it for
   * the tests and the demo) or 'full' (C1 then C2, as a production Keycloak runs). In a run of a
   * minute or two C2 is still compiling, and its compiler threads cost Keycloak more CPU per
   * accept than the faster argon2id check saves (BENCHMARKS.md has both).
   */
  jit?: 'full' | 'c1';
  log: (line: string) => void;
}

export interface SignInFigures {
  n: number;
  pollMs: number;
  /** accept's 200 → first token with the groups, ms, in order. */
  samples: number[];
  p50: number;
  p99: number;
  max: number;
  /** accept's 200 → the bench's watch sees the User Provisioned=True, ms. */
  provisioned: { p50: number; p99: number; max: number };
  /** Token requests per sign-in, the successful one included (mean). */
  grantsPerSignIn: number;
  /** How long the successful token request itself took (Keycloak checking the argon2id hash, issuing the tokens), ms. */
  grant: { p50: number; p99: number };
  loadAverage: string;
}

export interface AcceptSide {
  keycloak: boolean;
  n: number;
  /** First GET → the last invitation Accepted (and, with Keycloak, the last User Provisioned). */
  seconds: number;
  rate: number;
  /** First GET → the page's last 200. */
  pageSeconds: number;
  /** First GET → the last invitation seen Accepted. */
  acceptedSeconds: number;
  /** First GET → the last User seen Provisioned=True (with Keycloak only). */
  provisionedSeconds?: number;
  /** Each person's own accept (the page's 200) → their User seen Provisioned=True, ms (with Keycloak only). */
  acceptToProvisioned?: { p50: number; p99: number };
  /** The Users' Provisioned condition as the bench's watch saw it, "status reason" → how many Users went through it (with Keycloak only). */
  provisionedReasons?: Record<string, number>;
  post: { p50: number; p99: number };
  errors: number;
  statuses: Record<string, number>;
  /** With Keycloak: of a sample of the accepted people, how many signed in with their groups. */
  signInCheck?: { tried: number; ok: number };
  /** CPU seconds per accept over the batch (first GET to the end): the operator (page and controller), the control plane, Keycloak (its JVM). */
  cpuPerAccept: { operator: number; apiserver: number; etcd: number; keycloak?: number };
  problems: string;
  loadAverage: string;
}

export interface KeycloakResult {
  keycloakVersion: string;
  jit: 'full' | 'c1';
  keycloakStartSeconds: number;
  signIn: SignInFigures;
  with: AcceptSide;
  without: AcceptSide;
  /** with.rate / without.rate */
  ratio: number;
  loadAverage: { start: string; end: string };
}

const loadAverage = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const NAMESPACE = 'keycloak-bench';
const GROUPS = [`/tenants/${TENANT}`, `/tenants/${TENANT}/data-engineers`];
const rateLimits = '    rateLimit: { perClientPerMinute: 100000000, perTokenPerMinute: 100000000 }';

/** Users by email: when the bench's watch first saw each, and first saw it Provisioned=True (wall-clock ms). */
async function watchUsers(plane: Plane): Promise<{ provisionedAt: Map<string, number>; reasons: Map<string, number>; stop(): void }> {
  const provisionedAt = new Map<string, number>();
  /** Provisioned condition reasons seen, each User counted once per reason it went through. */
  const reasons = new Map<string, number>();
  const seenReasons = new Set<string>();
  const informer = new Informer<User>({
    kubeConfig: plane.kubeConfig,
    path: `/apis/${GROUP}/${VERSION}/${USER_PLURAL}`,
    list: async () => (await plane.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: USER_PLURAL })) as ListResult<User>,
    resyncPeriodMs: 0,
    backoff: { initialMs: 200, maxMs: 2000 },
  });
  const note = (user: User): void => {
    const condition = user.status?.conditions?.find((c) => c.type === 'Provisioned');
    const reason = `${condition?.status ?? 'none'} ${condition?.reason ?? ''}`.trim();
    if (!seenReasons.has(`${user.spec.email} ${reason}`)) {
      seenReasons.add(`${user.spec.email} ${reason}`);
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    const provisioned = condition?.status === 'True';
    if (provisioned && !provisionedAt.has(user.spec.email)) provisionedAt.set(user.spec.email, wallNow());
  };
  informer.on('add', note);
  informer.on('update', note);
  await informer.start();
  return {
    provisionedAt,
    reasons,
    stop: () => {
      informer.stop();
    },
  };
}

/** CPU seconds (user + system) of every process in a process group (Keycloak runs in one of its own: kc.sh and its JVM). */
function groupCpuSeconds(pgid: number): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // After the command name: state, ppid, pgrp, …; utime and stime are fields 14 and 15 of stat(5).
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) total += cpuSeconds(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** summariseProblems, with the path of an informer's failed list (which watch it was). */
function describeProblems(problems: readonly LogLine[]): string {
  return summariseProblems(problems.map((p) => (typeof p.path === 'string' ? { ...p, msg: `${p.msg} (${p.path})` } : p)));
}

async function until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(10);
  }
}

interface Accepted {
  status: number;
  /** wall-clock ms at the POST's answer */
  at: number;
  postMs: number;
}

/** GET the form, POST a password: what a new person does on the page. */
async function accept(link: string, password: string): Promise<Accepted> {
  const shown = await fetch(link);
  const html = await shown.text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!csrf) throw new Error(`no CSRF field on the page (HTTP ${shown.status})`);
  const cookie = shown.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const t = performance.now();
  const res = await fetch(link, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ csrf, intent: 'password', firstName: 'Jane', lastName: 'Doe', password, confirm: password }).toString(),
    redirect: 'manual',
  });
  const body = await res.text();
  const at = wallNow();
  if (res.status !== 200 || !/welcome/i.test(body)) throw new Error(`accept: HTTP ${res.status}`);
  return { status: res.status, at, postMs: performance.now() - t };
}

/** One password grant at the realm's token endpoint: whether it gave an ID token with the invitation's groups. */
async function signsIn(kc: DemoKeycloak, username: string, password: string): Promise<boolean> {
  return (await timedSignIn(kc, username, password)).ok;
}

async function timedSignIn(kc: DemoKeycloak, username: string, password: string): Promise<{ ok: boolean; ms: number }> {
  const t = performance.now();
  const ok = await grantWithGroups(kc, username, password);
  return { ok, ms: performance.now() - t };
}

async function grantWithGroups(kc: DemoKeycloak, username: string, password: string): Promise<boolean> {
  const response = await fetch(`${kc.realm.issuer}/protocol/openid-connect/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'password',
      client_id: kc.realm.accept.clientId,
      client_secret: kc.realm.accept.clientSecret,
      username,
      password,
      scope: 'openid',
    }),
  });
  const body = (await response.json()) as { id_token?: string };
  if (response.status !== 200 || !body.id_token) return false;
  const claims = JSON.parse(Buffer.from(body.id_token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { groups?: unknown };
  return Array.isArray(claims.groups) && GROUPS.every((g) => (claims.groups as unknown[]).includes(g));
}

const newPassword = (): string => `${randomBytes(12).toString('base64url')}-q7`;

interface Side {
  plane: Plane;
  sink: Sink;
  op: Operator;
  phases: PhaseWatch;
  users: Awaited<ReturnType<typeof watchUsers>>;
  /** Creates the invitations and waits until they are Sent; their links. */
  invite(names: string[]): Promise<string[]>;
  stop(): Promise<void>;
}

async function startSide(kc: DemoKeycloak | undefined, acceptPort: number, workers: number): Promise<Side> {
  const plane = await startPlane();
  const sink = await startSink();
  const stops: (() => Promise<void> | void)[] = [() => plane.stop(), () => sink.close()];
  const stop = async (): Promise<void> => {
    for (const s of stops.reverse()) await s();
  };
  try {
    await plane.namespace(NAMESPACE, TENANT);
    const op = await startOperator({
      kubeconfig: plane.kubeconfig,
      smtpPort: sink.port,
      workers,
      baseUrl: `http://127.0.0.1:${acceptPort}`,
      acceptPort,
      acceptConfig: [rateLimits, ...(kc?.oidcYaml ?? [])],
      extraConfig: kc?.identityYaml ?? [],
    });
    stops.push(() => op.stop());
    await op.running;
    const phases = await watchPhases(plane.kubeConfig, plane.custom, NAMESPACE);
    stops.push(() => {
      phases.stop();
    });
    const users = await watchUsers(plane);
    stops.push(() => {
      users.stop();
    });
    return {
      plane,
      sink,
      op,
      phases,
      users,
      async invite(names) {
        await createInvitations(
          plane.custom,
          names.map((name) => invitationBody(NAMESPACE, name)),
          16,
        );
        await phases.waitFor('Sent', names, 60_000 + names.length * 200);
        return names.map((name) => {
          const link = phases.informer.get(NAMESPACE, name)?.status?.link;
          if (!link) throw new Error(`${name} is Sent without a link in its status`);
          return link;
        });
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** `n` accepts at once, end to end: Accepted, and Provisioned with Keycloak. */
async function acceptsAtOnce(side: Side, kc: DemoKeycloak | undefined, n: number, prefix: string, log: (line: string) => void): Promise<AcceptSide> {
  const names = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  const links = await side.invite(names);
  const passwords = names.map(() => newPassword());
  const la = loadAverage();
  const statuses: Record<string, number> = {};
  let errors = 0;
  const cpu = (): { operator: number; apiserver: number; etcd: number; keycloak: number } => ({
    operator: side.op.cpuSeconds(),
    ...side.plane.cpu(),
    keycloak: kc ? groupCpuSeconds(kc.keycloak.pid) : 0,
  });
  const cpu0 = cpu();
  const t0 = wallNow();
  const reasonsBefore = new Map(side.users.reasons);
  const answers = await Promise.all(
    links.map(async (link, i) => {
      try {
        const a = await accept(link, passwords[i] ?? '');
        statuses[a.status] = (statuses[a.status] ?? 0) + 1;
        return a;
      } catch (err) {
        errors++;
        const status = /HTTP (\d+)/.exec(String(err))?.[1] ?? 'error';
        statuses[status] = (statuses[status] ?? 0) + 1;
        return undefined;
      }
    }),
  );
  const done = answers.filter((a): a is Accepted => a !== undefined);
  const pageSeconds = (Math.max(...done.map((a) => a.at)) - t0) / 1000;
  const emails = names.map((name) => invitationBody(NAMESPACE, name).spec.email);
  await side.phases.waitFor('Accepted', names, 120_000);
  const acceptedSeconds = (Math.max(...names.map((name) => side.phases.seen.get('Accepted')?.get(name) ?? NaN)) - t0) / 1000;
  let provisionedSeconds: number | undefined;
  if (kc) {
    await until(`${n} Users Provisioned`, () => emails.every((e) => side.users.provisionedAt.has(e)), 120_000);
    provisionedSeconds = (Math.max(...emails.map((e) => side.users.provisionedAt.get(e) ?? NaN)) - t0) / 1000;
  }
  const seconds = Math.max(acceptedSeconds, provisionedSeconds ?? 0);
  const acceptToProvisioned = kc ? answers.flatMap((a, i) => (a ? [(side.users.provisionedAt.get(emails[i] ?? '') ?? NaN) - a.at] : [])) : undefined;
  const provisionedReasons = kc
    ? Object.fromEntries([...side.users.reasons].map(([k, v]): [string, number] => [k, v - (reasonsBefore.get(k) ?? 0)]).filter(([, v]) => v > 0))
    : undefined;
  const cpu1 = cpu();
  const per = (key: 'operator' | 'apiserver' | 'etcd' | 'keycloak'): number => (cpu1[key] - cpu0[key]) / n;
  const cpuPerAccept = { operator: per('operator'), apiserver: per('apiserver'), etcd: per('etcd'), ...(kc ? { keycloak: per('keycloak') } : {}) };
  const post = done.map((a) => a.postMs);
  let signInCheck: AcceptSide['signInCheck'];
  if (kc) {
    const sample = names.map((_, i) => i).filter((i) => i % Math.max(1, Math.floor(n / 10)) === 0);
    const ok = await pool(sample, 2, (i) => signsIn(kc, emails[i] ?? '', passwords[i] ?? ''));
    signInCheck = { tried: sample.length, ok: ok.filter(Boolean).length };
  }
  const result: AcceptSide = {
    keycloak: kc !== undefined,
    n,
    seconds,
    rate: n / seconds,
    pageSeconds,
    acceptedSeconds,
    ...(provisionedSeconds !== undefined ? { provisionedSeconds } : {}),
    ...(acceptToProvisioned ? { acceptToProvisioned: { p50: percentile(acceptToProvisioned, 50), p99: percentile(acceptToProvisioned, 99) } } : {}),
    ...(provisionedReasons ? { provisionedReasons } : {}),
    post: { p50: percentile(post, 50), p99: percentile(post, 99) },
    errors,
    statuses,
    ...(signInCheck ? { signInCheck } : {}),
    problems: describeProblems(side.op.problems),
    cpuPerAccept,
    loadAverage: la,
  };
  log(
    `  ${kc ? 'with Keycloak' : 'without Keycloak'}: ${n} accepts at once, ${result.rate.toFixed(1)}/s end to end (${seconds.toFixed(2)} s: page's last 200 at ${pageSeconds.toFixed(2)} s, ` +
      `all Accepted at ${acceptedSeconds.toFixed(2)} s${provisionedSeconds !== undefined ? `, all Provisioned at ${provisionedSeconds.toFixed(2)} s` : ''}); ` +
      (result.acceptToProvisioned
        ? `each accept → its User Provisioned p50 ${result.acceptToProvisioned.p50.toFixed(0)} ms, p99 ${result.acceptToProvisioned.p99.toFixed(0)} ms (Provisioned as seen: ${JSON.stringify(result.provisionedReasons)}); `
        : '') +
      `POST p50 ${result.post.p50.toFixed(0)} ms, p99 ${result.post.p99.toFixed(0)} ms; ${errors} errors (statuses ${JSON.stringify(statuses)})` +
      `${signInCheck ? `; ${signInCheck.ok} of ${signInCheck.tried} sampled people signed in with their groups` : ''}; ` +
      `CPU ms per accept: operator ${(1000 * cpuPerAccept.operator).toFixed(0)}, apiserver ${(1000 * cpuPerAccept.apiserver).toFixed(0)}, etcd ${(1000 * cpuPerAccept.etcd).toFixed(0)}` +
      `${cpuPerAccept.keycloak !== undefined ? `, Keycloak ${(1000 * cpuPerAccept.keycloak).toFixed(0)}` : ''}; operator problems: ${result.problems}; load average ${la}`,
  );
  return result;
}

export async function keycloakBench(options: KeycloakBenchOptions): Promise<KeycloakResult> {
  const { log, workers } = options;
  const pollMs = options.pollMs ?? 25;
  const startLoad = loadAverage();

  // Without Keycloak first, before the JVM exists: Usher alone on its path.
  log(`  without Keycloak: a control plane, the operator (usher.identity none); load average ${loadAverage()}`);
  const plain = await startSide(undefined, await freePort(), workers);
  let without: AcceptSide;
  try {
    without = await acceptsAtOnce(plain, undefined, options.accepts, 'plain', log);
  } finally {
    await plain.stop();
  }

  const dir = mkdtempSync(join(tmpdir(), 'usher-bench-kc-'));
  const acceptPort = await freePort();
  const jit = options.jit ?? 'c1';
  const kcStarted = performance.now();
  let kc: DemoKeycloak | undefined;
  // tools/keycloak starts the JVM with -XX:TieredStopAtLevel=1 and then JAVA_OPTS_APPEND: a later flag wins.
  const javaOpts = process.env.JAVA_OPTS_APPEND;
  if (jit === 'full') process.env.JAVA_OPTS_APPEND = ['-XX:TieredStopAtLevel=4', javaOpts].filter(Boolean).join(' ');
  try {
    const started = await startDemoKeycloak({
      acceptPort,
      dir,
      realm: 'usher-bench',
      directAccessGrants: true,
      log: (line) => {
        log(`  ${line}`);
      },
    }).finally(() => {
      if (javaOpts === undefined) delete process.env.JAVA_OPTS_APPEND;
      else process.env.JAVA_OPTS_APPEND = javaOpts;
    });
    kc = started;
    const keycloakStartSeconds = (performance.now() - kcStarted) / 1000;
    log(
      `  with Keycloak ${kc.keycloak.version} (started and realm set up in ${keycloakStartSeconds.toFixed(1)} s): a control plane, the operator (usher.identity keycloak)`,
    );
    const side = await startSide(kc, acceptPort, workers);
    try {
      // accept → first sign-in, one at a time.
      const warm = 3;
      const names = Array.from({ length: warm + options.signIns }, (_, i) => `one-${i}`);
      const links = await side.invite(names);
      const la = loadAverage();
      const samples: number[] = [];
      const provisioned: number[] = [];
      const grantMs: number[] = [];
      let grants = 0;
      for (const [i, name] of names.entries()) {
        const email = invitationBody(NAMESPACE, name).spec.email;
        const password = newPassword();
        const accepted = await accept(links[i] ?? '', password);
        let tries = 0;
        let last = 0;
        const deadline = performance.now() + 60_000;
        for (;;) {
          tries++;
          const answer = await timedSignIn(kc, email, password);
          last = answer.ms;
          if (answer.ok) break;
          if (performance.now() > deadline) throw new Error(`${email} could not sign in 60 s after accepting`);
          await sleep(pollMs);
        }
        const signedIn = wallNow() - accepted.at;
        await until(`${email} Provisioned`, () => side.users.provisionedAt.has(email), 30_000);
        if (i < warm) continue;
        samples.push(signedIn);
        provisioned.push((side.users.provisionedAt.get(email) ?? NaN) - accepted.at);
        grantMs.push(last);
        grants += tries;
      }
      const signIn: SignInFigures = {
        n: samples.length,
        pollMs,
        samples,
        p50: percentile(samples, 50),
        p99: percentile(samples, 99),
        max: Math.max(...samples),
        provisioned: { p50: percentile(provisioned, 50), p99: percentile(provisioned, 99), max: Math.max(...provisioned) },
        grantsPerSignIn: grants / samples.length,
        grant: { p50: percentile(grantMs, 50), p99: percentile(grantMs, 99) },
        loadAverage: la,
      };
      log(
        `  accept → first sign-in with the groups (n=${signIn.n}, one at a time, a token request every ${pollMs} ms): p50 ${signIn.p50.toFixed(0)} ms, p99 ${signIn.p99.toFixed(0)} ms, max ${signIn.max.toFixed(0)} ms; ` +
          `accept → User Provisioned (the bench's watch): p50 ${signIn.provisioned.p50.toFixed(0)} ms, p99 ${signIn.provisioned.p99.toFixed(0)} ms; ${signIn.grantsPerSignIn.toFixed(1)} token requests per sign-in, the successful one taking p50 ${signIn.grant.p50.toFixed(0)} ms, p99 ${signIn.grant.p99.toFixed(0)} ms; load average ${la}`,
      );

      const withKc = await acceptsAtOnce(side, kc, options.accepts, 'many', log);
      const ratio = withKc.rate / without.rate;
      log(`  end-to-end accepts/s with / without Keycloak: ${(100 * ratio).toFixed(0)}% (${withKc.rate.toFixed(1)} vs ${without.rate.toFixed(1)})`);
      return {
        keycloakVersion: kc.keycloak.version,
        jit,
        keycloakStartSeconds,
        signIn,
        with: withKc,
        without,
        ratio,
        loadAverage: { start: startLoad, end: loadAverage() },
      };
    } finally {
      await side.stop();
    }
  } finally {
    await kc?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// `npm run bench`: Usher's benchmarks against fresh local control planes
// (kube-apiserver + etcd + kube-controller-manager on loopback) and an SMTP
// sink on loopback, the operator running as its own process. Prints progress,
// then one table; writes every figure to bench/results/latest.json (read by
// bench/plot.ts for BENCHMARKS.md's images).
//
//   npm run bench                                  # everything, the default sizes
//   npm run bench -- --only throughput,latency     # some of them
//   npm run bench -- --n 500 --sweep none --memory 0,2000 --restart-n 2000 --expiry-n 200   # a quick run
//   npm run bench -- --only keycloak                # signing in after acceptance (starts Keycloak)
//   npm run bench -- --only peer --n 2000           # Usher beside a Go controller-runtime peer and the Go bound, one control plane
//   npm run bench -- --only peer --n 200 --peer-memory 0,2000   # the same, quick
//
// Benchmarks: throughput (N at once, operator against the limit, plus a sweep
// of smaller N for the plot), latency, memory, restart, accept, expiry, keycloak,
// peer (Usher, bench/peer-go and its bound one after the other on one control
// plane: throughput, latency, writes, CPU, restart, memory at --peer-memory).
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { acceptBench, type AcceptResult } from './accept.ts';
import { expiry, type ExpiryResult } from './expiry.ts';
import { keycloakBench, type KeycloakResult } from './keycloak.ts';
import { latency, type LatencyResult } from './latency.ts';
import { peerBench, PROGRAMS, type PeerResult, type Program } from './peer.ts';
import { root } from './support/plane.ts';
import { bytes, mib, ms, perSecond, table, type Row } from './support/stats.ts';
import { state, type StateResult } from './state.ts';
import { limitBatch, operatorBatch, type BatchResult } from './throughput.ts';

const ALL = ['throughput', 'latency', 'memory', 'restart', 'accept', 'expiry', 'keycloak', 'peer'] as const;
type BenchName = (typeof ALL)[number];

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: ALL.join(',') },
    n: { type: 'string', default: '2000' },
    sweep: { type: 'string', default: '250,500,1000' },
    workers: { type: 'string', default: '4' },
    'create-concurrency': { type: 'string', default: '16' },
    'latency-n': { type: 'string', default: '200' },
    memory: { type: 'string', default: '0,10000,50000' },
    'restart-n': { type: 'string', default: '10000' },
    'seed-concurrency': { type: 'string', default: '48' },
    'accept-seconds': { type: 'string', default: '10' },
    'accept-connections': { type: 'string', default: '16' },
    'accept-pooled': { type: 'boolean', default: false },
    'accept-skip-before': { type: 'boolean', default: false },
    'accept-cost-requests': { type: 'string', default: '1000' },
    'expiry-n': { type: 'string', default: '1000' },
    'expiry-start': { type: 'string', default: '45' },
    'expiry-spread': { type: 'string', default: '45' },
    'keycloak-sign-ins': { type: 'string', default: '30' },
    'keycloak-accepts': { type: 'string', default: '100' },
    'keycloak-jit': { type: 'string', default: 'c1' },
    'peer-sequential-n': { type: 'string', default: '50' },
    'peer-order': { type: 'string', default: 'usher,peer,bound' },
    'peer-memory': { type: 'string', default: '0,10000,50000' },
    'operator-root': { type: 'string' },
    'skip-limit': { type: 'boolean', default: false },
    profile: { type: 'string' },
    out: { type: 'string', default: join(root, 'bench', 'results', 'latest.json') },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(`usage: npm run bench -- [--only ${ALL.join(',')}] [--n 2000] [--sweep 250,500,1000|none]
  [--workers 4] [--create-concurrency 16] [--latency-n 200] [--memory 0,10000,50000] [--restart-n 10000]
  [--seed-concurrency 48] [--accept-seconds 10] [--accept-connections 16] [--accept-pooled]
  [--accept-skip-before] [--accept-cost-requests 1000] [--expiry-n 1000] [--expiry-start 45]
  [--expiry-spread 45] [--keycloak-sign-ins 30] [--keycloak-accepts 100] [--keycloak-jit c1|full] [--peer-sequential-n 50] [--peer-order usher,peer,bound (any order)] [--peer-memory 0,10000,50000|none]
  [--operator-root DIR] [--skip-limit] [--profile DIR] [--out FILE]\n`);
  process.exit(0);
}

const int = (name: string, text: string | undefined): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, not ${JSON.stringify(text)}`);
  return n;
};
const list = (name: string, text: string | undefined): number[] => (text === 'none' || !text ? [] : text.split(',').map((t) => int(name, t.trim())));
const only = new Set(
  values.only
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
for (const name of only) if (!(ALL as readonly string[]).includes(name)) throw new Error(`--only: unknown benchmark ${name} (known: ${ALL.join(', ')})`);
const wants = (name: BenchName): boolean => only.has(name);

const workers = int('workers', values.workers);
const operatorRoot = values['operator-root'];
/** Everything printed, also saved beside the figures (FILE.txt next to FILE.json). */
const printed: string[] = [];
const log = (line: string): void => {
  printed.push(line);
  process.stdout.write(`${line}\n`);
};

const results: {
  machine: Record<string, string | number>;
  startedAt: string;
  finishedAt?: string;
  args: string[];
  throughput?: { operator: BatchResult[]; limit: BatchResult[] };
  latency?: LatencyResult;
  state?: StateResult;
  accept?: AcceptResult;
  expiry?: ExpiryResult;
  keycloak?: KeycloakResult;
  peer?: PeerResult;
} = {
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? '?',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadAverageAtStart: loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  },
  startedAt: new Date().toISOString(),
  args: process.argv.slice(2),
};
const rows: Row[] = [];
const started = performance.now();
const save = (): void => {
  mkdirSync(join(values.out, '..'), { recursive: true });
  writeFileSync(values.out, `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync(values.out.replace(/(\.json)?$/, '.txt'), `${printed.join('\n')}\n`);
};

log(
  `Usher benchmarks on ${results.machine.cpus} cores, ${results.machine.memoryGiB} GiB, Node ${process.version}; load average ${results.machine.loadAverageAtStart}`,
);

if (wants('throughput')) {
  const n = int('n', values.n);
  const sizes = [...new Set([...list('sweep', values.sweep), n])].sort((a, b) => a - b);
  log(`\n[throughput] N = ${sizes.join(', ')}: operator (${workers} workers) against the limit (plain client, same concurrency)`);
  const operator: BatchResult[] = [];
  const limit: BatchResult[] = [];
  for (const size of sizes) {
    const batch = {
      n: size,
      createConcurrency: int('create-concurrency', values['create-concurrency']),
      workers,
      log,
      ...(operatorRoot ? { operatorRoot } : {}),
    };
    operator.push(await operatorBatch({ ...batch, restartCheck: size === n, ...(values.profile && size === n ? { profileDir: values.profile } : {}) }));
    if (!values['skip-limit']) limit.push(await limitBatch(batch));
    results.throughput = { operator, limit };
    save();
  }
  for (const o of operator) {
    if (o.n !== n) continue;
    rows.push({
      bench: '1 throughput',
      metric: `operator, N=${o.n}`,
      value: perSecond(o.rate),
      note: `${o.seconds.toFixed(1)} s to all Sent; ${o.mails} mails, ${o.duplicateMails} duplicates; ${o.reconciles?.toFixed(2) ?? '?'} reconciles per invitation`,
    });
    const l = limit.find((x) => x.n === o.n);
    if (!l) continue;
    rows.push(
      {
        bench: '1 throughput',
        metric: `limit (plain client), N=${l.n}`,
        value: perSecond(l.rate),
        note: `${l.seconds.toFixed(1)} s; same writes and sends, ${workers} at once`,
      },
      { bench: '1 throughput', metric: 'operator / limit', value: `${((100 * o.rate) / l.rate).toFixed(0)}%`, note: '' },
      { bench: '1 throughput', metric: 'API writes per invitation', value: writesPer(o), note: `limit: ${writesPer(l)} (events are the difference)` },
      ...(o.restart
        ? [
            {
              bench: '1 throughput',
              metric: 'then restarted: writes / mails',
              value: `${o.restart.apiWrites} / ${o.restart.mails}`,
              note: `on the ${o.n} it settled; ready ${o.restart.readySeconds.toFixed(2)} s, ${o.restart.changedObjects} objects changed`,
            },
          ]
        : []),
      {
        bench: '1 throughput',
        metric: 'CPU s per 1000 invitations',
        value: (o.cpu.operator + o.cpu.apiserver + o.cpu.etcd).toFixed(1),
        note: `operator ${o.cpu.operator.toFixed(1)}, apiserver ${o.cpu.apiserver.toFixed(1)}, etcd ${o.cpu.etcd.toFixed(1)} (limit: apiserver ${l.cpu.apiserver.toFixed(1)}, etcd ${l.cpu.etcd.toFixed(1)}, client ${l.cpu.bench.toFixed(1)})`,
      },
    );
  }
  const others = operator.filter((o) => o.n !== n);
  if (others.length) {
    rows.push({
      bench: '1 throughput',
      metric: `sweep N=${others.map((o) => o.n).join('/')}`,
      value: others.map((o) => o.rate.toFixed(0)).join('/'),
      note: `per s; limit ${others.map((o) => (limit.find((l) => l.n === o.n)?.rate ?? NaN).toFixed(0)).join('/')}`,
    });
  }
}

function writesPer(r: BatchResult): string {
  let total = 0;
  for (const [key, value] of Object.entries(r.requests)) {
    const [verb = '', resource = ''] = key.split(' ');
    if (/^(POST|PUT|PATCH|DELETE)$/.test(verb) && resource !== 'userinvitations' && !resource.startsWith('leases')) total += value;
  }
  return total.toFixed(2);
}

if (wants('latency')) {
  const n = int('latency-n', values['latency-n']);
  log(`\n[latency] ${n} invitations one after another, create → Sent`);
  const r = await latency({ n, workers, log, ...(operatorRoot ? { operatorRoot } : {}) });
  results.latency = r;
  save();
  rows.push(
    { bench: '2 latency', metric: `create → Sent p50 (n=${n})`, value: ms(r.p50), note: `one at a time; limit ${ms(r.limit.p50)}` },
    { bench: '2 latency', metric: 'create → Sent p95', value: ms(r.p95), note: `limit ${ms(r.limit.p95)}` },
    { bench: '2 latency', metric: 'create → Sent p99', value: ms(r.p99), note: `max ${ms(r.max)}; limit ${ms(r.limit.p99)}, max ${ms(r.limit.max)}` },
  );
}

if (wants('memory') || wants('restart')) {
  const memoryPoints = wants('memory') ? list('memory', values.memory) : [];
  const restartN = wants('restart') ? int('restart-n', values['restart-n']) : 0;
  log(`\n[memory/restart] memory at ${memoryPoints.join(', ') || '–'} invitations; restart with ${restartN || '–'}`);
  const r = await state({
    memoryPoints,
    restartN,
    seedConcurrency: int('seed-concurrency', values['seed-concurrency']),
    log,
    ...(operatorRoot ? { operatorRoot } : {}),
  });
  results.state = r;
  save();
  for (const m of r.memory) {
    rows.push({
      bench: '3 memory',
      metric: `${m.invitations} invitations: RSS / heap used`,
      value: `${mib(m.rss)} / ${mib(m.heapUsed)}`,
      note: `heap total ${mib(m.heapTotal)}, external ${mib(m.external)}`,
    });
  }
  if (r.perInvitation)
    rows.push({
      bench: '3 memory',
      metric: 'per invitation: heap / RSS',
      value: `${bytes(r.perInvitation.heap)} / ${bytes(r.perInvitation.rss)}`,
      note: 'invitation + record Secret in cache',
    });
  for (const x of r.restarts) {
    rows.push(
      {
        bench: '4 restart',
        metric: `${x.invitations} settled: time to ready`,
        value: `${x.readySeconds.toFixed(2)} s`,
        note: 'spawn → caches synced, workers running',
      },
      { bench: '4 restart', metric: 'time until all reconciled', value: `${x.resyncSeconds.toFixed(2)} s`, note: '' },
      {
        bench: '4 restart',
        metric: 'API writes / mails during resync',
        value: `${x.apiWrites} / ${x.mails}`,
        note: `${x.changedObjects} objects changed resourceVersion`,
      },
    );
  }
}

if (wants('accept')) {
  log('\n[accept] the acceptance page: the current (cached) page and, side by side, the old page of commit 9895e65 (every view read from the API server)');
  const r = await acceptBench({
    seconds: int('accept-seconds', values['accept-seconds']),
    connections: int('accept-connections', values['accept-connections']),
    pooled: values['accept-pooled'],
    before: !values['accept-skip-before'],
    costRequests: int('accept-cost-requests', values['accept-cost-requests']),
    log,
  });
  results.accept = r;
  save();
  const b = r.before;
  const per = (x: { perThousand: number } | undefined): string => (x ? x.perThousand.toFixed(0) : '–');
  rows.push(
    ...(b
      ? [
          {
            bench: '5 accept',
            metric: `page GET before (${r.connections} connections)`,
            value: perSecond(b.page.rate),
            note: `old page ${b.code.slice(0, 7)}: p50 ${ms(b.page.p50)}, p99 ${ms(b.page.p99)}, ${b.page.requests} requests, ${b.page.errors} errors`,
          },
        ]
      : []),
    {
      bench: '5 accept',
      metric: `page GET (${r.connections} connections)`,
      value: perSecond(r.after.page.rate),
      note: `current page: p50 ${ms(r.after.page.p50)}, p99 ${ms(r.after.page.p99)}, ${r.after.page.requests} requests, ${r.after.page.errors} errors`,
    },
    ...(b
      ? [
          {
            bench: '5 accept',
            metric: 'page GET after / before',
            value: `${(r.after.page.rate / b.page.rate).toFixed(1)}x`,
            note: `same run, same cluster (${r.secretsInCluster} Secrets)`,
          },
        ]
      : []),
    { bench: '5 accept', metric: 'API requests / 1000 unknown tokens', value: per(r.after.unknownTokens), note: `before: ${per(b?.unknownTokens)}` },
    { bench: '5 accept', metric: 'API requests / 1000 malformed tokens', value: per(r.after.malformedTokens), note: `before: ${per(b?.malformedTokens)}` },
    { bench: '5 accept', metric: 'API requests / 1000 valid views', value: per(r.after.validViews), note: `before: ${per(b?.validViews)}` },
    {
      bench: '5 accept',
      metric: 'accepts (argon2id m=19456 t=2 p=1)',
      value: perSecond(r.accepts.rate),
      note: `current page: POST p50 ${ms(r.accepts.p50)}, p99 ${ms(r.accepts.p99)}, ${r.accepts.requests} accepted, ${r.accepts.errors} errors`,
    },
  );
}

if (wants('expiry')) {
  const n = int('expiry-n', values['expiry-n']);
  const startS = int('expiry-start', values['expiry-start']);
  const spreadS = int('expiry-spread', values['expiry-spread']);
  log(`\n[expiry] ${n} invitations expiring ${startS}–${startS + spreadS} s after creation`);
  const r = await expiry({ n, startS, spreadS, workers, log, ...(operatorRoot ? { operatorRoot } : {}) });
  results.expiry = r;
  save();
  rows.push(
    { bench: '6 expiry', metric: `Expired after expiresAt p50 (n=${n})`, value: ms(r.p50), note: `${r.sentFirst} of ${n} were Sent first` },
    { bench: '6 expiry', metric: 'Expired after expiresAt p99', value: ms(r.p99), note: `max ${ms(r.max)}` },
  );
}

if (wants('keycloak')) {
  const signIns = int('keycloak-sign-ins', values['keycloak-sign-ins']);
  const accepts = int('keycloak-accepts', values['keycloak-accepts']);
  log(`\n[keycloak] signing in after acceptance: the operator with usher.identity keycloak (a real Keycloak, started once), and without it for the ratio`);
  const jit = values['keycloak-jit'];
  if (jit !== 'full' && jit !== 'c1') throw new Error(`--keycloak-jit must be c1 or full, not ${JSON.stringify(jit)}`);
  const r = await keycloakBench({ signIns, accepts, workers, jit, log });
  results.keycloak = r;
  save();
  const side = (s: KeycloakResult['with']): string =>
    `${s.seconds.toFixed(2)} s to all Accepted${s.provisionedSeconds !== undefined ? ' and Provisioned' : ''}; POST p50 ${ms(s.post.p50)}, p99 ${ms(s.post.p99)}; ${s.errors} errors; ` +
    `CPU ms/accept: operator ${(1000 * s.cpuPerAccept.operator).toFixed(0)}${s.cpuPerAccept.keycloak !== undefined ? `, Keycloak ${(1000 * s.cpuPerAccept.keycloak).toFixed(0)}` : ''}; load average ${s.loadAverage}`;
  rows.push(
    {
      bench: '7 keycloak',
      metric: `accept → first sign-in p50 (n=${r.signIn.n})`,
      value: ms(r.signIn.p50),
      note: `token with the groups; polled every ${r.signIn.pollMs} ms; target ≤ 2 s; load average ${r.signIn.loadAverage}`,
    },
    {
      bench: '7 keycloak',
      metric: 'accept → first sign-in p99',
      value: ms(r.signIn.p99),
      note: `max ${ms(r.signIn.max)}; accept → Provisioned p50 ${ms(r.signIn.provisioned.p50)}, p99 ${ms(r.signIn.provisioned.p99)}; the token request itself p50 ${ms(r.signIn.grant.p50)}`,
    },
    { bench: '7 keycloak', metric: `accepts end to end, ${r.with.n} at once, Keycloak`, value: perSecond(r.with.rate), note: side(r.with) },
    { bench: '7 keycloak', metric: `accepts end to end, ${r.without.n} at once, none`, value: perSecond(r.without.rate), note: side(r.without) },
    {
      bench: '7 keycloak',
      metric: 'with / without Keycloak',
      value: `${(100 * r.ratio).toFixed(0)}%`,
      note: `Keycloak ${r.keycloakVersion} (JIT ${r.jit}); ${r.with.signInCheck ? `${r.with.signInCheck.ok}/${r.with.signInCheck.tried} sampled people signed in` : ''}`,
    },
  );
}

if (wants('peer')) {
  const n = int('n', values.n);
  const sequentialN = int('peer-sequential-n', values['peer-sequential-n']);
  const memoryPoints = list('peer-memory', values['peer-memory']);
  log(
    `\n[peer] Usher, the Go controller-runtime peer (bench/peer-go) and the Go bound (bench/peer-go/bound, a plain client), one after the other on one control plane: N=${n} at once, ${sequentialN} one at a time; memory at ${memoryPoints.join(', ') || '–'} settled`,
  );
  const order = values['peer-order'].split(',').map((s) => s.trim());
  if (order.length !== PROGRAMS.length || !PROGRAMS.every((p) => order.includes(p)))
    throw new Error(`--peer-order must name usher, peer and bound once each, not ${values['peer-order']}`);
  const r = await peerBench({
    n,
    sequentialN,
    createConcurrency: int('create-concurrency', values['create-concurrency']),
    order: order as Program[],
    memoryPoints,
    seedConcurrency: int('seed-concurrency', values['seed-concurrency']),
    log,
  });
  results.peer = r;
  save();
  const { usher: u, peer: p, bound: b } = r;
  const ratio = (x: number, y: number): string => (x / y).toFixed(2);
  const three = (x: string, y: string, z: string): string => `${x} / ${y} / ${z}`;
  rows.push(
    {
      bench: '8 peer',
      metric: `throughput, N=${n}: Usher / peer / bound`,
      value: three(perSecond(u.rate), perSecond(p.rate), perSecond(b.rate)),
      note: `Usher ÷ peer ${ratio(u.rate, p.rate)}, ÷ bound ${ratio(u.rate, b.rate)}; mails ${u.mails} / ${p.mails} / ${b.mails}, duplicates ${u.duplicateMails} / ${p.duplicateMails} / ${b.duplicateMails}`,
    },
    {
      bench: '8 peer',
      metric: 'created → Sent in the batch p50',
      value: three(ms(u.batch.p50), ms(p.batch.p50), ms(b.batch.p50)),
      note: `÷ peer ${ratio(u.batch.p50, p.batch.p50)}, ÷ bound ${ratio(u.batch.p50, b.batch.p50)} (queueing included)`,
    },
    {
      bench: '8 peer',
      metric: 'created → Sent in the batch p99',
      value: three(ms(u.batch.p99), ms(p.batch.p99), ms(b.batch.p99)),
      note: `÷ peer ${ratio(u.batch.p99, p.batch.p99)}, ÷ bound ${ratio(u.batch.p99, b.batch.p99)}`,
    },
    {
      bench: '8 peer',
      metric: `create → Sent one at a time p50 / p99 (n=${u.sequential.n})`,
      value: three(
        `${ms(u.sequential.p50)}, ${ms(u.sequential.p99)}`,
        `${ms(p.sequential.p50)}, ${ms(p.sequential.p99)}`,
        `${ms(b.sequential.p50)}, ${ms(b.sequential.p99)}`,
      ),
      note: `p99 ÷ peer ${ratio(u.sequential.p99, p.sequential.p99)}, ÷ bound ${ratio(u.sequential.p99, b.sequential.p99)}`,
    },
    {
      bench: '8 peer',
      metric: 'API writes per invitation',
      value: three(u.writesPerInvitation.toFixed(2), p.writesPerInvitation.toFixed(2), b.writesPerInvitation.toFixed(2)),
      note: 'POST/PUT/PATCH/DELETE in the batch, without the creates and Lease renewals',
    },
    {
      bench: '8 peer',
      metric: 'CPU s per 1000: program / apiserver / etcd',
      value: three(
        `${u.cpu.operator.toFixed(1)}, ${u.cpu.apiserver.toFixed(1)}, ${u.cpu.etcd.toFixed(1)}`,
        `${p.cpu.operator.toFixed(1)}, ${p.cpu.apiserver.toFixed(1)}, ${p.cpu.etcd.toFixed(1)}`,
        `${b.cpu.operator.toFixed(1)}, ${b.cpu.apiserver.toFixed(1)}, ${b.cpu.etcd.toFixed(1)}`,
      ),
      note: 'Usher / peer / bound, each: its own process, kube-apiserver, etcd',
    },
    ...(['usher', 'peer', 'bound'] as const).flatMap((program) =>
      r.memory[program].map((m) => ({
        bench: '8 peer',
        metric: `${program}: ${m.invitations} settled, RSS / heap`,
        value: `${mib(m.rss)} / ${mib(m.heap)}`,
        note: `ready ${m.readySeconds.toFixed(2)} s, all reconciled ${m.settleSeconds.toFixed(1)} s; writes ${m.apiWrites}, changed ${m.changedObjects}, mails ${m.mails}`,
      })),
    ),
    {
      bench: '8 peer',
      metric: 'restarted: writes / changed / mails',
      value: `${u.restart?.apiWrites ?? '–'}/${u.restart?.changedObjects ?? '–'}/${u.restart?.mails ?? '–'} / ${p.restart?.apiWrites ?? '–'}/${p.restart?.changedObjects ?? '–'}/${p.restart?.mails ?? '–'}`,
      note: `Usher / peer; ready ${u.restart?.readySeconds.toFixed(2) ?? '–'} s / ${p.restart?.readySeconds.toFixed(2) ?? '–'} s`,
    },
    {
      bench: '8 peer',
      metric: "Usher on the peer's invitations",
      value: `${r.usherOnPeer.apiWrites}/${r.usherOnPeer.changedObjects}/${r.usherOnPeer.mails}`,
      note: `writes / changed objects / mails on ${r.usherOnPeer.invitations} the peer settled (0/0/0: its statuses and records read as Usher's own)`,
    },
    {
      bench: '8 peer',
      metric: 'seq-10: Pending, Sent, Events alike',
      value: `${r.same.pending ? 'yes' : 'no'}, ${r.same.sent ? 'yes' : 'no'}, ${r.same.events ? 'yes' : 'no'}`,
      note: 'Usher against the peer and the bound: the statuses the watch saw and the Events, times and token masked',
    },
    {
      bench: '8 peer',
      metric: 'load average before (Usher / peer / bound)',
      value: three(u.loadAverage.before, p.loadAverage.before, b.loadAverage.before),
      note: `at the peer bench's start ${r.loadAverageAtStart}`,
    },
  );
}

results.finishedAt = new Date().toISOString();
save();
log(
  `\nUsher benchmarks, ${results.startedAt} (${((performance.now() - started) / 60_000).toFixed(1)} min; ${results.machine.cpus} cores ${results.machine.cpuModel}, ${results.machine.memoryGiB} GiB, Node ${process.version}; load average at start ${results.machine.loadAverageAtStart})\n`,
);
log(table(rows));
log(`\nfigures: ${values.out}`);
save();

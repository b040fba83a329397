// A cold sync of many invitations: one control plane filled with N settled
// invitations (each with its record Secret marked sent and the status the
// operator itself would write: three writes, seedSettled), then the operator
// started as a process on it, as in a pod (`node src/main.ts`, leader election
// on, the acceptance page in the same process, component "all"). Measured:
// spawn → "controller running" (it leads, every informer of the controller has
// listed its collection into the cache, the workers start), the RSS then and
// the process's peak RSS (VmHWM) up to then, and, after two full GCs (the
// memory probe), the live heap holding the caches.
//
//   node bench/sync.ts --n 200000
//   node bench/sync.ts --n 200000 --compare /tmp/usher-before   # the same plane, then the tree bench/before-tree.sh built
//   node bench/sync.ts --n 2000 --settle                        # also wait until every invitation was reconciled once
//   node bench/sync.ts --n 0,10000,50000 --settle --compare /tmp/usher-before   # memory at each count, side by side
//
// With several counts (--n 0,10000,50000) the plane is filled up to each in
// turn and every operator measured there. --settle adds, as the memory
// benchmark (bench/state.ts) measures it: once every invitation was reconciled
// and 2 s later, RSS and the heap after two full GCs.
//
// Seeding 200,000 invitations through the API server (600,000 writes) takes
// most of an hour on two shared cores, so by default (--seed etcd) the same
// objects are put straight into etcd, as the API server would store them (JSON,
// which its storage decoder reads for every kind, protobuf-stored core kinds
// included), in transactions of 128 puts; the API server's watch cache picks
// them up from etcd. Each invitation's status is the one decide() computes for
// it and its record, as in seedSettled(); `--seed api` uses seedSettled()
// itself. Either way the bench checks, through the API server, that all N
// invitations and records are there before it starts an operator.
//
// Several operators (--compare) run one after the other on the one seeded
// plane, so their figures are side by side; an operator that does not sync
// within --timeout seconds (the unpaged list of an older tree may never) is
// reported as such, with its last stderr line.
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, loadavg, tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { GROUP, INVITATION_PLURAL, VERSION, type UserInvitation } from '../src/api/types.ts';
import { parseConfig } from '../src/config/load.ts';
import type { UsherConfig } from '../src/config/types.ts';
import { MEMBERSHIP_FINALIZER } from '../src/invitation/decide.ts';
import { RECORD_SELECTOR, secretFromRecord } from '../src/invitation/record.ts';
import { isoSeconds } from '../src/invitation/time.ts';
import { invitationBody, pool, seedSettled, settledState, TENANT } from './support/invitations.ts';
import { configYaml, startOperator, summariseProblems, type Operator } from './support/operator.ts';
import { startPlane, type Plane } from './support/plane.ts';
import { startSink } from './support/sink.ts';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '200000' },
    namespaces: { type: 'string', default: '10' },
    'seed-concurrency': { type: 'string', default: '48' },
    seed: { type: 'string', default: 'etcd' },
    compare: { type: 'string', multiple: true, default: [] },
    timeout: { type: 'string', default: '300' },
    settle: { type: 'boolean', default: false },
    'heap-snapshot': { type: 'string' },
    component: { type: 'string', default: 'all' },
    'no-gc': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(`node bench/sync.ts [--n 200000] [--namespaces 10] [--seed etcd|api] [--seed-concurrency 48] [--compare OPERATOR_ROOT]... [--timeout 300] [--settle] [--out FILE.json]

  --seed etcd     put the seeded objects straight into etcd (fast); api: through the API server, 3 writes each (seedSettled)
  --compare DIR   also start the operator of DIR (a tree such as bench/before-tree.sh builds) on the same plane, after this one
  --settle        keep each operator until every invitation was reconciled once (debug log; slower)
  --component controller|accept|all   the operator's --component (default all, as the bench runs it; the chart runs
                  the controller and the page as two Deployments)
  --no-gc         no forced GCs for the heap figures (at 200,000 they block the operator past its lease's renewDeadline)
  --heap-snapshot DIR   with --settle: a V8 heap snapshot of each operator once settled, into DIR, summarised by what holds the memory`);
  process.exit(0);
}

// A heap snapshot on SIGUSR2 (--heap-snapshot), into the folder given: the operator inherits this environment.
// The operator inherits this environment. bench/support/operator.ts passes no --component, so a preload adds
// it to the operator's argv before src/main.ts reads it.
const nodeOptions = [process.env.NODE_OPTIONS ?? ''];
if (values['heap-snapshot']) nodeOptions.push(`--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${values['heap-snapshot']}`);
if (values.component !== 'all') {
  const preload = join(mkdtempSync(join(tmpdir(), 'usher-sync-')), 'component.mjs');
  writeFileSync(preload, `process.argv.push('--component', ${JSON.stringify(values.component)});\n`);
  nodeOptions.push(`--import=${preload}`);
}
process.env.NODE_OPTIONS = nodeOptions.join(' ').trim();

const points = values.n
  .split(',')
  .map(Number)
  .sort((a, b) => a - b);
/** The invitation count being measured. */
let n = 0;
const namespaceCount = Number(values.namespaces);
const timeoutMs = Number(values.timeout) * 1000;
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
const log = (line: string): void => {
  console.log(line);
};

export interface SyncRun {
  operator: string;
  invitations: number;
  synced: boolean;
  /** Spawn → "controller running" (leader, caches synced, workers started). */
  syncSeconds?: number;
  rssAtSync?: number;
  /** VmHWM: the process's peak RSS up to sync (up to the timeout when it never synced). */
  peakRss: number;
  /** After two full GCs, at sync. */
  heapUsed?: number;
  heapTotal?: number;
  /** Spawn → every invitation reconciled once (--settle). */
  settleSeconds?: number;
  peakRssAfterSettle?: number;
  /** 2 s after every invitation was reconciled, after two full GCs (--settle): as bench/state.ts measures memory. */
  settled?: { rss: number; heapUsed: number; heapTotal: number; external: number };
  /** --heap-snapshot: the snapshot's file and its self sizes by kind, largest first. */
  heap?: { file: string; total: number; top: { what: string; count: number; bytes: number }[] };
  cpuSecondsToSync?: number;
  loadAverageAtStart: number[];
  problems: string;
  failure?: string;
}

/**
 * Asks the operator for a heap snapshot (SIGUSR2), waits until the file stops
 * growing, and sums its nodes' self sizes by kind (a string, or an object by its
 * constructor): where the heap goes.
 */
async function heapSnapshot(op: Operator, dir: string): Promise<NonNullable<SyncRun['heap']>> {
  mkdirSync(dir, { recursive: true });
  const before = new Set(readdirSync(dir));
  process.kill(op.pid, 'SIGUSR2');
  const written = (): string | undefined => readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
  for (let last = -1; ;) {
    await new Promise((r) => setTimeout(r, 1000));
    const found = written();
    const size = found ? statSync(join(dir, found)).size : 0;
    if (size > 0 && size === last) break;
    last = size;
  }
  const file = written() ?? '';
  const snapshot = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const by = new Map<string, { count: number; bytes: number }>();
  let total = 0;
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt] ?? 0] ?? '?';
    const bytes = snapshot.nodes[i + sizeAt] ?? 0;
    total += bytes;
    const what = type === 'object' || type === 'closure' || type === 'native' ? `${type} ${snapshot.strings[snapshot.nodes[i + nameAt] ?? 0] ?? '?'}` : type;
    const entry = by.get(what) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += bytes;
    by.set(what, entry);
  }
  const top = [...by]
    .map(([what, e]) => ({ what, ...e }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 15);
  log(`  heap snapshot ${file}: ${mib(total)} in all; ${top.map((t) => `${t.what} ${mib(t.bytes)} (${t.count})`).join('; ')}`);
  return { file: join(dir, file), total, top };
}

/** The operator's memory after two full GCs; fails, rather than waits for good, if it exits meanwhile. */
async function memoryOf(op: Operator): Promise<Awaited<ReturnType<Operator['memory']>>> {
  const exited = op.exited.then((e) => {
    throw new Error(`operator exited (${e.code ?? e.signal ?? '?'}) while its memory was measured: ${op.stderr().trim().split('\n').slice(-3).join(' | ')}`);
  });
  return Promise.race([op.memory(), exited]);
}

/** VmHWM and VmRSS of a process, in bytes (0 once it is gone). */
function procMemory(pid: number): { rss: number; hwm: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

async function measure(kubeconfig: string, smtpPort: number, operatorRoot: string | undefined): Promise<SyncRun> {
  const loadAverageAtStart = loadavg().map((l) => Math.round(l * 100) / 100);
  const op: Operator = await startOperator({
    kubeconfig,
    smtpPort,
    memoryProbe: true,
    logFile: join(logDir, `operator-${runs.length + 1}.log`),
    logLevel: values.settle ? 'debug' : 'info',
    ...(operatorRoot ? { operatorRoot } : {}),
  });
  const name = operatorRoot ?? 'this tree';
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, procMemory(op.pid).hwm);
  }, 200);
  try {
    const timeout = new Promise<'timeout'>((resolve) =>
      setTimeout(() => {
        resolve('timeout');
      }, timeoutMs).unref(),
    );
    const outcome = await Promise.race([op.running.then((at) => ({ at })), timeout, op.exited.then((e) => ({ exited: e }))]);
    if (outcome === 'timeout' || 'exited' in outcome) {
      peak = Math.max(peak, procMemory(op.pid).hwm);
      const failure =
        outcome === 'timeout'
          ? `not synced after ${timeoutMs / 1000} s`
          : `exited (${outcome.exited.code ?? outcome.exited.signal ?? '?'}) before it synced: ${op.stderr().trim().split('\n').slice(-3).join(' | ')}`;
      log(`  ${name}: ${failure}; peak RSS ${mib(peak)}`);
      return { operator: name, invitations: n, synced: false, peakRss: peak, loadAverageAtStart, problems: summariseProblems(op.problems), failure };
    }
    const syncSeconds = (outcome.at - op.spawnedAt) / 1000;
    const cpuSecondsToSync = op.cpuSeconds();
    const { rss: rssAtSync, hwm } = procMemory(op.pid);
    peak = Math.max(peak, hwm);
    const peakRss = peak;
    log(
      `  ${name}: synced ${n} invitations in ${syncSeconds.toFixed(1)} s (CPU ${cpuSecondsToSync.toFixed(1)} s); RSS then ${mib(rssAtSync)}, peak ${mib(peakRss)}`,
    );
    const run: SyncRun = {
      operator: name,
      invitations: n,
      synced: true,
      syncSeconds,
      rssAtSync,
      peakRss,
      cpuSecondsToSync,
      loadAverageAtStart,
      problems: '',
    };
    // Two forced full GCs of a heap of a gigabyte or more block the operator for longer than its lease's
    // renewDeadline (10 s): it then exits, as a replica that lost its lease must. --no-gc skips them.
    if (!values['no-gc']) {
      const memory = await memoryOf(op);
      run.heapUsed = memory.heapUsed;
      run.heapTotal = memory.heapTotal;
      log(`  ${name}: after two full GCs heap used ${mib(memory.heapUsed)} of ${mib(memory.heapTotal)}`);
    }
    if (values.settle) {
      await new Promise<void>((resolve) => {
        const check = (): void => {
          if ((op.counts.get('reconciled') ?? 0) >= n) resolve();
        };
        op.onLine = check;
        check();
      });
      run.settleSeconds = (performance.now() - op.spawnedAt) / 1000;
      run.peakRssAfterSettle = Math.max(peak, procMemory(op.pid).hwm);
      await new Promise((r) => setTimeout(r, 2000));
      const settled = values['no-gc'] ? undefined : await memoryOf(op);
      run.settled = { rss: procMemory(op.pid).rss, heapUsed: settled?.heapUsed ?? 0, heapTotal: settled?.heapTotal ?? 0, external: settled?.external ?? 0 };
      if (values['heap-snapshot']) run.heap = await heapSnapshot(op, values['heap-snapshot']);
      log(
        `  ${name}: every invitation reconciled ${run.settleSeconds.toFixed(1)} s after spawn; peak RSS ${mib(run.peakRssAfterSettle)}; then RSS ${mib(run.settled.rss)}, heap used ${settled ? `${mib(settled.heapUsed)} of ${mib(settled.heapTotal)}` : 'not measured (--no-gc)'}`,
      );
      const top = [...op.counts].sort((a, b) => b[1] - a[1]).slice(0, 8);
      log(`  ${name}: log lines ${top.map(([msg, count]) => `${msg} ×${count}`).join('; ')}`);
    }
    run.problems = summariseProblems(op.problems);
    return run;
  } finally {
    clearInterval(sampler);
    // Gracefully, so that it hands its Lease back: the next operator must not wait for it to expire (15 s).
    const stopping = op.stop();
    const killer = setTimeout(() => void op.kill(), 10_000);
    await stopping;
    clearTimeout(killer);
  }
}

/** The invitation (with the status the operator would write) and its record Secret, as the API server would store them. */
function settledPair(config: UsherConfig, namespace: string, name: string, now: Date): { invitation: UserInvitation; secret: object } {
  const created = invitationBody(namespace, name);
  const uid = randomUUID();
  const invitation: UserInvitation = {
    ...created,
    // With the finalizer the operator adds (usher.access.onInvitationDelete RemoveMembership): settled means no write at all.
    metadata: { ...created.metadata, uid, generation: 1, creationTimestamp: isoSeconds(now), finalizers: [MEMBERSHIP_FINALIZER] },
  };
  const { record, status } = settledState(invitation, config, now);
  const secret = secretFromRecord(record);
  return {
    invitation: { ...invitation, status },
    secret: { ...secret, metadata: { ...secret.metadata, uid: randomUUID(), creationTimestamp: isoSeconds(now) } },
  };
}

/** Puts N settled invitations and their records into etcd, 64 pairs (128 puts) per transaction. */
async function seedThroughEtcd(
  plane: Plane,
  config: UsherConfig,
  namespaceOf: (i: number) => string,
  from: number,
  to: number,
  onDone: (count: number) => void,
): Promise<void> {
  const etcd = plane.plane.etcdUrl;
  if (!etcd) throw new Error('--seed etcd needs a local control plane (its etcd URL)');
  const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
  const now = new Date();
  const batches = Array.from({ length: Math.ceil((to - from) / 64) }, (_, b) => from + b * 64);
  await pool(batches, 4, async (b) => {
    const success: object[] = [];
    for (let i = b; i < Math.min(to, b + 64); i++) {
      const namespace = namespaceOf(i);
      const name = `inv-${i}`;
      const { invitation, secret } = settledPair(config, namespace, name, now);
      const recordSecretName = (secret as { metadata: { name: string } }).metadata.name;
      success.push(
        { requestPut: { key: b64(`/registry/${GROUP}/${INVITATION_PLURAL}/${namespace}/${name}`), value: b64(JSON.stringify(invitation)) } },
        { requestPut: { key: b64(`/registry/secrets/${config.namespace}/${recordSecretName}`), value: b64(JSON.stringify(secret)) } },
      );
    }
    const response = await fetch(`${etcd}/v3/kv/txn`, { method: 'POST', body: JSON.stringify({ success }) });
    if (!response.ok) throw new Error(`etcd txn: HTTP ${response.status} ${await response.text()}`);
    onDone(success.length / 2);
  });
}

/** How many invitations and records the API server lists (paged, so that the check itself holds no huge response). */
async function countThroughApi(plane: Plane, config: UsherConfig): Promise<{ invitations: number; records: number }> {
  let invitations = 0;
  let records = 0;
  let token: string | undefined;
  do {
    const page = (await plane.custom.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: INVITATION_PLURAL,
      limit: 5000,
      ...(token ? { _continue: token } : {}),
    })) as { items: unknown[]; metadata?: { continue?: string } };
    invitations += page.items.length;
    token = page.metadata?.continue || undefined;
  } while (token);
  do {
    const page = await plane.core.listNamespacedSecret({
      namespace: config.namespace,
      labelSelector: RECORD_SELECTOR,
      limit: 5000,
      ...(token ? { _continue: token } : {}),
    });
    records += page.items.length;
    token = page.metadata?._continue || undefined;
  } while (token);
  return { invitations, records };
}

const startedAt = new Date().toISOString();
/** Each operator's log (JSON lines), for a look afterwards. */
const logDir = mkdtempSync(join(tmpdir(), 'usher-sync-logs-'));
log(`operators' logs in ${logDir}`);
log(
  `cold sync of ${points.join(', ')} invitations (--component ${values.component}${process.env.NODE_OPTIONS ? `, NODE_OPTIONS ${process.env.NODE_OPTIONS}` : ''}${process.env.MALLOC_ARENA_MAX ? `, MALLOC_ARENA_MAX ${process.env.MALLOC_ARENA_MAX}` : ''}); ${cpus().length} cores, Node ${process.version}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
const plane = await startPlane();
const sink = await startSink();
const runs: SyncRun[] = [];
const seeding: { invitations: number; seconds: number }[] = [];
try {
  const config = parseConfig(configYaml({ kubeconfig: '', smtpPort: sink.port }), { source: 'bench', env: {} });
  const namespaceOf = (i: number): string => `sync-${i % namespaceCount}`;
  for (let i = 0; i < namespaceCount; i++) await plane.namespace(namespaceOf(i), TENANT);
  let seeded = 0;
  for (const point of points) {
    n = point;
    const t0 = performance.now();
    let done = seeded;
    const progress = setInterval(() => {
      log(`  seeding: ${done}/${n}`);
    }, 15_000);
    try {
      if (values.seed === 'api') {
        await pool(
          Array.from({ length: n - seeded }, (_, i) => seeded + i),
          Number(values['seed-concurrency']),
          async (i) => {
            await seedSettled({ core: plane.core, custom: plane.custom, config }, invitationBody(namespaceOf(i), `inv-${i}`));
            done++;
          },
        );
      } else {
        await seedThroughEtcd(plane, config, namespaceOf, seeded, n, (count) => {
          done += count;
        });
      }
    } finally {
      clearInterval(progress);
    }
    const seconds = (performance.now() - t0) / 1000;
    seeding.push({ invitations: n - seeded, seconds });
    log(
      `  seeded ${n - seeded} more settled invitations with their records (${values.seed === 'api' ? 'through the API server, 3 writes each' : 'straight into etcd'}) in ${seconds.toFixed(1)} s`,
    );
    seeded = n;
    // The API server's watch cache takes a moment to catch up with etcd.
    for (let attempt = 0; ; attempt++) {
      // Until it has caught up it may also answer 504 (ResourceVersionTooLarge): ask again.
      const seen = await countThroughApi(plane, config).catch(() => ({ invitations: -1, records: -1 }));
      if (seen.invitations === n && seen.records === n) break;
      if (attempt >= 30) throw new Error(`the API server lists ${seen.invitations} invitations and ${seen.records} records, not ${n}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    log(`  the API server lists ${n} invitations and ${n} records`);
    for (const root of [undefined, ...values.compare]) runs.push(await measure(plane.kubeconfig, sink.port, root));
  }
  const result = {
    startedAt,
    points,
    component: values.component,
    nodeOptions: process.env.NODE_OPTIONS,
    mallocArenaMax: process.env.MALLOC_ARENA_MAX,
    seeding,
    machine: { cpus: cpus().length, node: process.version },
    runs,
  };
  if (values.out) writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
  log('');
  log('| invitations | operator | synced in | RSS at sync | peak RSS to sync | heap used at sync (after GC) | settled: RSS / heap used | load at start |');
  log('| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const r of runs) {
    log(
      `| ${r.invitations} | ${r.operator} | ${r.synced ? `${r.syncSeconds?.toFixed(1)} s` : (r.failure ?? 'no')} | ${r.rssAtSync ? mib(r.rssAtSync) : '–'} | ${mib(r.peakRss)} | ${r.heapUsed ? mib(r.heapUsed) : '–'} | ${r.settled ? `${mib(r.settled.rss)} / ${mib(r.settled.heapUsed)}` : '–'} | ${r.loadAverageAtStart.join(' ')} |`,
    );
  }
} finally {
  await sink.close();
  await plane.stop();
}

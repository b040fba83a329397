// Usher side by side with a Go controller-runtime peer (bench/peer-go), on ONE
// control plane in one run, one operator at a time: start it, measure, stop it,
// clean up after it (the bench strips the finalizers and deletes the
// invitations, their record Secrets and Events with no operator running), then
// the other. Each side: the time to running, RSS idle, create → Sent one at a
// time (after 10 unmeasured), N invitations at once (as bench/throughput.ts
// creates them, 16 requests in flight) until the last is seen Sent, with the
// API requests, the CPU of the operator, kube-apiserver and etcd, and the RSS
// (sampled every 200 ms); then a restart on the settled invitations (writes,
// changed objects, mails). Last, Usher is started on the invitations the peer
// settled: what it writes there says whether the peer's statuses and records
// read as Usher's own.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { GROUP, INVITATION_PLURAL, VERSION, type UserInvitation } from '../src/api/types.ts';
import { RECORD_SELECTOR } from '../src/invitation/record.ts';
import { ensureBuilt } from '../tools/control-plane/binaries.ts';
import { createInvitation, createInvitations, invitationBody, pool, TENANT } from './support/invitations.ts';
import { startOperator, summariseProblems, type LogLine } from './support/operator.ts';
import { wallNow, watchPhases } from './support/phases.ts';
import { countsDelta, cpuSeconds, root, startPlane, writesOf, type Plane } from './support/plane.ts';
import { changed, startAndSettle, versions } from './support/restart.ts';
import { startSink } from './support/sink.ts';
import { percentile, perInvitation } from './support/stats.ts';

/** The versions bench/peer-go/go.mod pins (the cache folder's name; its hash follows go.mod/go.sum/main.go). */
export const PEER_PINS = { controllerRuntime: 'v0.24.1', clientGo: 'v0.36.3' } as const;

/** Builds (once, into the cache) the Go peer and returns the binary's path; progress lines as the control plane's build. */
export async function ensurePeer(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<string> {
  const dir = await ensureBuilt({
    name: `usher-peer-go-controller-runtime-${PEER_PINS.controllerRuntime}`,
    moduleDir: join(root, 'bench', 'peer-go'),
    packages: ['.'],
    outputs: ['peer-go'],
    log,
  });
  return join(dir, 'peer-go');
}

/** What the bench needs of a running operator, Usher's or the peer's. */
interface Proc {
  pid: number;
  running: Promise<number>;
  counts: Map<string, number>;
  problems: LogLine[];
  onLine: ((line: LogLine) => void) | undefined;
  rss(): number;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

let peers = 0;

/** The peer as a process: flags for Usher's namespace, base URL, SMTP and From; its JSON lines read as Usher's are. */
export function startPeer(binary: string, options: { kubeconfig: string; smtpPort: number; logReconciles?: boolean }): Proc {
  const child = spawn(
    binary,
    [
      '--kubeconfig',
      options.kubeconfig,
      '--namespace',
      'usher-system',
      '--base-url',
      'https://usher.bench.example',
      '--smtp',
      `127.0.0.1:${options.smtpPort}`,
      '--from',
      'Usher bench <usher@bench.example>',
      '--workers',
      '4',
      '--smtp-connections',
      '5',
      '--lease-namespace',
      'default',
      ...(options.logReconciles ? ['--log-reconciles'] : []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, POD_NAME: `usher-peer-${process.pid}-${peers++}` } },
  );
  const pid = child.pid ?? 0;
  let stderrTail = '';
  child.stderr.on('data', (c: Buffer) => {
    stderrTail = (stderrTail + c.toString('utf8')).slice(-8000);
  });
  const { promise: running, resolve, reject } = Promise.withResolvers<number>();
  running.catch(() => undefined);
  const exited = new Promise<void>((done) => {
    child.once('exit', (code, signal) => {
      reject(new Error(`peer exited (${code ?? signal ?? '?'}) before it was running:\n${stderrTail}`));
      done();
    });
  });
  const proc: Proc = {
    pid,
    running,
    counts: new Map(),
    problems: [],
    onLine: undefined,
    rss: () => rssOf(pid),
    cpuSeconds: () => cpuSeconds(pid),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  createInterface({ input: child.stdout }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      return;
    }
    proc.counts.set(line.msg, (proc.counts.get(line.msg) ?? 0) + 1);
    if (typeof line.error === 'string' || (typeof line.level === 'number' && line.level >= 40)) proc.problems.push(line);
    if (line.msg === 'controller running') resolve(performance.now());
    proc.onLine?.(line);
  });
  const onExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', onExit);
  void exited.then(() => process.off('exit', onExit));
  return proc;
}

/** VmRSS from /proc/PID/status, in bytes; 0 once the process is gone. */
function rssOf(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

export interface SideResult {
  operator: 'usher' | 'peer';
  n: number;
  /** seq-10's first Pending and first Sent status as the bench's watch saw them, and its Events (sorted), with times and the token masked. */
  sample: { pending: string | undefined; sent: string | undefined; events: string[] };
  readySeconds: number;
  rssIdle: number;
  rssPeak: number;
  rssSettled: number;
  /** Created one at a time, create request → Sent seen by the bench's watch, ms. */
  sequential: { n: number; p50: number; p99: number; max: number };
  seconds: number;
  rate: number;
  createSeconds: number;
  /** In the batch: the create's answer → Sent seen, ms (queueing included). */
  batch: { p50: number; p99: number; max: number };
  mails: number;
  duplicateMails: number;
  /** POST/PUT/PATCH/DELETE per invitation during the batch, without the bench's creates and the Lease renewals. */
  writesPerInvitation: number;
  /** Every request per invitation during the batch, "VERB resource" (GETs included). */
  requests: Record<string, number>;
  requestsText: string;
  /** CPU seconds per 1000 invitations in the batch. */
  cpu: { operator: number; apiserver: number; etcd: number };
  restart: { readySeconds: number; resyncSeconds: number; apiWrites: number; changedObjects: number; mails: number; requests: string; otherEvents: string[] };
  loadAverage: { before: string; after: string };
  problems: string;
}

export interface PeerResult {
  n: number;
  usher: SideResult;
  peer: SideResult;
  /** Usher started on the peer's settled invitations. */
  usherOnPeer: { invitations: number; apiWrites: number; changedObjects: number; mails: number; resyncSeconds: number };
  /** The sample statuses and Events of both sides, compared (times and tokens masked). */
  same: { pending: boolean; sent: boolean; events: boolean };
  /** Which ran first. */
  order: ('usher' | 'peer')[];
  pins: typeof PEER_PINS;
}

const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** JSON with sorted keys, every RFC 3339 time and every token masked: what two operators should agree on for the same input. */
function normalised(value: unknown): string {
  const text = JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => x.localeCompare(y)))
      : v,
  );
  return text.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>').replace(/\/accept\/[0-9a-f]{32}\.[A-Za-z0-9_-]{43}/g, '/accept/<token>');
}

/** Waits until `proc` has logged `reconciled` `expected` times (10 min at most). */
function reconciled(proc: Proc, expected: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`reconciled ${proc.counts.get('reconciled') ?? 0} of ${expected} in 10 min`));
    }, 600_000);
    const check = (): void => {
      if ((proc.counts.get('reconciled') ?? 0) >= expected) {
        proc.onLine = undefined;
        clearTimeout(timer);
        resolve(performance.now());
      }
    };
    proc.onLine = check;
    check();
  });
}

/** With no operator running: the finalizers off, then the invitations, their records and the namespace's Events deleted. */
async function clean(plane: Plane, namespace: string): Promise<void> {
  const list = (await plane.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: INVITATION_PLURAL })) as {
    items: UserInvitation[];
  };
  await pool(list.items, 16, async (inv) => {
    if (!inv.metadata.finalizers?.length) return;
    await plane.custom.replaceNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: INVITATION_PLURAL,
      name: inv.metadata.name,
      body: { ...inv, metadata: { ...inv.metadata, finalizers: [] } },
    });
  });
  await plane.custom.deleteCollectionNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: INVITATION_PLURAL });
  await plane.core.deleteCollectionNamespacedSecret({ namespace: 'usher-system', labelSelector: RECORD_SELECTOR });
  await plane.core.deleteCollectionNamespacedEvent({ namespace });
  for (let i = 0; i < 600; i++) {
    const left = (await plane.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: INVITATION_PLURAL })) as {
      items: unknown[];
    };
    if (left.items.length === 0) return;
    await sleep(100);
  }
  throw new Error(`invitations in ${namespace} still there a minute after they were deleted`);
}

function writesPerInvitation(delta: Map<string, number>, n: number): number {
  let total = 0;
  for (const [key, value] of delta) {
    if (key === 'POST userinvitations' || key.includes('leases')) continue;
    total += writesOf(new Map([[key, value]]));
  }
  return total / n;
}

async function side(
  operator: 'usher' | 'peer',
  plane: Plane,
  start: (logReconciles: boolean, smtpPort: number) => Proc | Promise<Proc>,
  options: { n: number; sequentialN: number; createConcurrency: number; log: (line: string) => void },
): Promise<SideResult> {
  const { n, sequentialN, log } = options;
  const sink = await startSink();
  try {
    const ns = `peer-${operator}`;
    await plane.namespace(ns, TENANT);
    const loadBefore = load();
    const spawned = performance.now();
    let op = await start(false, sink.port);
    const readySeconds = ((await op.running) - spawned) / 1000;
    await sleep(2000);
    const rssIdle = op.rss();
    const watch = await watchPhases(plane.kubeConfig, plane.custom, ns);
    // The statuses one invitation went through (seq-10, the first measured), kept to compare the sides.
    const sampleName = 'seq-10';
    const sampled = new Map<string, string>();
    const grab = (inv: UserInvitation): void => {
      const phase = inv.status?.phase;
      if (inv.metadata.name === sampleName && phase && !sampled.has(phase)) sampled.set(phase, normalised(inv.status));
    };
    watch.informer.on('add', grab);
    watch.informer.on('update', grab);

    const warmup = 10;
    const sequential: number[] = [];
    for (let i = 0; i < warmup + sequentialN; i++) {
      const name = `seq-${i}`;
      const t0 = wallNow();
      await createInvitation(plane.custom, invitationBody(ns, name));
      await watch.waitFor('Sent', [name], 30_000);
      if (i >= warmup) sequential.push((watch.seen.get('Sent')?.get(name) ?? NaN) - t0);
    }

    const sampleEvents = (await plane.core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${sampleName}` })).items
      .map((e) => normalised(`${e.type ?? ''} ${e.reason ?? ''}: ${e.message ?? ''}`))
      // As a set: two Events of one reconcile can carry the same time.
      .sort();
    const sample = { pending: sampled.get('Pending'), sent: sampled.get('Sent'), events: sampleEvents };

    const bodies = Array.from({ length: n }, (_, i) => invitationBody(ns, `inv-${i}`));
    const createdAt = new Map<string, number>();
    let rssPeak = op.rss();
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, op.rss());
    }, 200);
    const before = await plane.requestCounts();
    const cpu0 = { plane: plane.cpu(), op: op.cpuSeconds() };
    const mails0 = sink.total;
    const t0 = wallNow();
    let createdAll = t0;
    const creating = createInvitations(plane.custom, bodies, options.createConcurrency, (c) => createdAt.set(c.metadata.name, wallNow())).then(() => {
      createdAll = wallNow();
    });
    await watch.waitFor(
      'Sent',
      bodies.map((b) => b.metadata.name),
      60_000 + n * 200,
    );
    await creating;
    const sent = watch.seen.get('Sent') ?? new Map<string, number>();
    const t1 = Math.max(...bodies.map((b) => sent.get(b.metadata.name) ?? NaN));
    const cpu1 = { plane: plane.cpu(), op: op.cpuSeconds() };
    const after = await plane.requestCounts();
    clearInterval(sampler);
    rssPeak = Math.max(rssPeak, op.rss());
    await sleep(2000);
    const rssSettled = op.rss();
    const mails = sink.total - mails0;
    watch.stop();
    const delta = countsDelta(before, after);
    const batchMs = bodies.map((b) => (sent.get(b.metadata.name) ?? NaN) - (createdAt.get(b.metadata.name) ?? NaN));
    const k = 1000 / n;
    const seconds = (t1 - t0) / 1000;
    const problems = summariseProblems(op.problems);

    // Restart on what it settled: stop, start again, wait for a reconcile of each, then 3 s more.
    await op.stop();
    const total = warmup + sequentialN + n;
    const rvBefore = await versions(plane);
    const reqBefore = await plane.requestCounts();
    const mailsBefore = sink.total;
    const restarted = performance.now();
    op = await start(true, sink.port);
    const readyAt = await op.running;
    const settledAt = await reconciled(op, total);
    await sleep(3000);
    const reqAfter = await plane.requestCounts();
    const rvAfter = await versions(plane);
    await op.stop();
    const restartDelta = countsDelta(reqBefore, reqAfter);
    // The Events in namespace default so far (client-go's leader election records one on its Lease when it leads; Usher's does not).
    const otherEvents = (await plane.core.listNamespacedEvent({ namespace: 'default' })).items.map(
      (e) => `${e.involvedObject.kind ?? '?'}/${e.involvedObject.name ?? '?'} ${e.reason ?? '?'}: ${e.message ?? ''}`,
    );
    const restart = {
      readySeconds: (readyAt - restarted) / 1000,
      resyncSeconds: (settledAt - restarted) / 1000,
      apiWrites: writesOf(restartDelta, ['secrets', 'userinvitations', 'users', 'events']),
      changedObjects: changed(rvBefore, rvAfter),
      mails: sink.total - mailsBefore,
      otherEvents,
      requests: perInvitation(
        restartDelta,
        1,
        (key) => !key.includes('leases') && !key.startsWith('GET') && !key.startsWith('LIST') && !key.startsWith('WATCH'),
      ),
    };

    const result: SideResult = {
      operator,
      n,
      sample,
      readySeconds,
      rssIdle,
      rssPeak,
      rssSettled,
      sequential: { n: sequential.length, p50: percentile(sequential, 50), p99: percentile(sequential, 99), max: Math.max(...sequential) },
      seconds,
      rate: n / seconds,
      createSeconds: (createdAll - t0) / 1000,
      batch: { p50: percentile(batchMs, 50), p99: percentile(batchMs, 99), max: Math.max(...batchMs) },
      mails,
      duplicateMails: sink.duplicates().extra,
      writesPerInvitation: writesPerInvitation(delta, n),
      requests: Object.fromEntries([...delta].map(([key, v]) => [key, v / n])),
      requestsText: perInvitation(delta, n, (key) => !key.includes('leases')),
      cpu: {
        operator: (cpu1.op - cpu0.op) * k,
        apiserver: (cpu1.plane.apiserver - cpu0.plane.apiserver) * k,
        etcd: (cpu1.plane.etcd - cpu0.plane.etcd) * k,
      },
      restart,
      loadAverage: { before: loadBefore, after: load() },
      problems,
    };
    const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
    log(
      `  ${operator.padEnd(5)} N=${n}: ${seconds.toFixed(1)} s, ${result.rate.toFixed(1)}/s (creates took ${result.createSeconds.toFixed(1)} s); created→Sent in the batch p50 ${result.batch.p50.toFixed(0)} ms, p99 ${result.batch.p99.toFixed(0)} ms; ` +
        `one at a time p50 ${result.sequential.p50.toFixed(1)} ms, p99 ${result.sequential.p99.toFixed(1)} ms; mails ${mails} (${result.duplicateMails} duplicates); ` +
        `RSS idle ${mib(rssIdle)}, peak ${mib(rssPeak)}, settled ${mib(rssSettled)}; CPU s/1000 inv: operator ${result.cpu.operator.toFixed(1)}, apiserver ${result.cpu.apiserver.toFixed(1)}, etcd ${result.cpu.etcd.toFixed(1)}; ` +
        `writes per invitation ${result.writesPerInvitation.toFixed(2)} (${result.requestsText}); load average ${loadBefore} → ${result.loadAverage.after}; log problems: ${problems}`,
    );
    log(
      `  ${operator.padEnd(5)} restarted on ${total} settled: ready in ${restart.readySeconds.toFixed(2)} s, all reconciled in ${restart.resyncSeconds.toFixed(2)} s; API writes ${restart.apiWrites} (${restart.requests}; Events in default so far: ${restart.otherEvents.join('; ') || 'none'}), changed objects ${restart.changedObjects}, mails ${restart.mails}`,
    );
    return result;
  } finally {
    await sink.close();
  }
}

/** Usher started on the invitations and records the peer settled: anything it writes there is a difference. */
async function usherOnPeerCheck(plane: Plane, total: number, log: (line: string) => void): Promise<PeerResult['usherOnPeer']> {
  const sink = await startSink();
  try {
    const rvBefore = await versions(plane);
    const reqBefore = await plane.requestCounts();
    const spawned = performance.now();
    const { op, settledAt } = await startAndSettle(plane, sink.port, total);
    await sleep(3000);
    const reqAfter = await plane.requestCounts();
    const rvAfter = await versions(plane);
    await op.stop();
    const r = {
      invitations: total,
      apiWrites: writesOf(countsDelta(reqBefore, reqAfter), ['secrets', 'userinvitations', 'users', 'events']),
      changedObjects: changed(rvBefore, rvAfter),
      mails: sink.total,
      resyncSeconds: (settledAt - spawned) / 1000,
    };
    log(
      `  Usher started on the peer's ${total} settled invitations: all reconciled in ${r.resyncSeconds.toFixed(2)} s; API writes ${r.apiWrites}, changed objects ${r.changedObjects}, mails ${r.mails}; log problems: ${summariseProblems(op.problems)}`,
    );
    return r;
  } finally {
    await sink.close();
  }
}

/** Both sides on one control plane, in `order`; after the peer's side, Usher on what the peer settled, then the clean-up. */
export async function peerBench(options: {
  n: number;
  sequentialN: number;
  createConcurrency: number;
  order: readonly ('usher' | 'peer')[];
  log: (line: string) => void;
}): Promise<PeerResult> {
  const { log } = options;
  const binary = await ensurePeer(log);
  const plane = await startPlane();
  try {
    const results: Partial<Record<'usher' | 'peer', SideResult>> = {};
    let usherOnPeer: PeerResult['usherOnPeer'] | undefined;
    for (const [i, which] of options.order.entries()) {
      const last = i === options.order.length - 1;
      if (which === 'usher') {
        results.usher = await side(
          'usher',
          plane,
          (debug, smtpPort) => startOperator({ kubeconfig: plane.kubeconfig, smtpPort, workers: 4, ...(debug ? { logLevel: 'debug' } : {}) }),
          options,
        );
      } else {
        results.peer = await side(
          'peer',
          plane,
          (logReconciles, smtpPort) => startPeer(binary, { kubeconfig: plane.kubeconfig, smtpPort, logReconciles }),
          options,
        );
        usherOnPeer = await usherOnPeerCheck(plane, 10 + options.sequentialN + options.n, log);
      }
      if (!last) await clean(plane, `peer-${which}`);
    }
    if (!results.usher || !results.peer || !usherOnPeer) throw new Error('--peer-order must name usher and peer');
    const u = results.usher.sample;
    const p = results.peer.sample;
    const same = {
      pending: u.pending !== undefined && u.pending === p.pending,
      sent: u.sent !== undefined && u.sent === p.sent,
      events: u.events.join('\n') === p.events.join('\n'),
    };
    for (const [what, a, b] of [
      ['Pending status', u.pending, p.pending],
      ['Sent status', u.sent, p.sent],
      ['Events', u.events.join(' | '), p.events.join(' | ')],
    ] as const) {
      log(
        a === b && a !== undefined
          ? `  seq-10's ${what}, Usher and peer alike (times and token masked): ${a}`
          : `  seq-10's ${what} differs:\n    Usher ${a ?? '(none seen)'}\n    peer  ${b ?? '(none seen)'}`,
      );
    }
    return { n: options.n, order: [...options.order], usher: results.usher, peer: results.peer, usherOnPeer, same, pins: PEER_PINS };
  } finally {
    await plane.stop();
  }
}

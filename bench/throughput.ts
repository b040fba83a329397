// 1. Throughput against the limit. N invitations are applied at once (the bench
// creates them with a fixed number of requests in flight) and the clock runs
// until the last one is seen Sent. The limit: the same API writes (record
// Secret, status, attempt mark, sent mark, status) and the same SMTP sends by a
// plain client with the operator's concurrency (its worker count and mail
// pool), no informers, queue or events. Each run gets a fresh control plane.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../src/config/load.ts';
import { createInvitationMailer } from '../src/mail/invitation-mailer.ts';
import type { UserInvitation } from '../src/api/types.ts';
import { createInvitations, deliverPlain, invitationBody, TENANT } from './support/invitations.ts';
import { configYaml, startOperator, summariseProblems } from './support/operator.ts';
import { wallNow, watchPhases } from './support/phases.ts';
import { countsDelta, startPlane } from './support/plane.ts';
import { restartSettled, type RestartResult } from './support/restart.ts';
import { formatProfile, summariseProfile } from './support/profile.ts';
import { startSink } from './support/sink.ts';
import { perInvitation } from './support/stats.ts';

export interface BatchOptions {
  n: number;
  /** Create requests the bench keeps in flight. */
  createConcurrency: number;
  /** Operator workers (and the limit's concurrency); the operator's default is 4. */
  workers: number;
  /** Run src/main.ts of this checkout instead (before/after comparisons). */
  operatorRoot?: string;
  /** Write the operator's CPU profile here and summarise it. */
  profileDir?: string;
  /** Afterwards, restart the operator on the N invitations it settled and count its writes and mails. */
  restartCheck?: boolean;
  log: (line: string) => void;
}

export interface BatchResult {
  n: number;
  seconds: number;
  rate: number;
  /** Time the bench took to create the N invitations. */
  createSeconds: number;
  mails: number;
  duplicateMails: number;
  /** API requests per invitation by "VERB resource" during the batch (the bench's own creates and watch included). */
  requests: Record<string, number>;
  /** CPU seconds per 1000 invitations during the batch, per process. */
  cpu: { operator: number; apiserver: number; etcd: number; bench: number };
  problems?: string;
  profile?: string;
  restart?: RestartResult;
  /** Reconciles per invitation (the operator's usher_reconcile_total), and how many of them wrote nothing. */
  reconciles?: number;
}

interface CpuMark {
  plane: { etcd: number; apiserver: number; kcm: number };
  operator: number;
  bench: number;
}

function cpuMark(plane: { cpu(): CpuMark['plane'] }, operatorCpu: () => number): CpuMark {
  const usage = process.cpuUsage();
  return { plane: plane.cpu(), operator: operatorCpu(), bench: (usage.user + usage.system) / 1e6 };
}

function cpuPerThousand(a: CpuMark, b: CpuMark, n: number): BatchResult['cpu'] {
  const k = 1000 / n;
  return {
    operator: (b.operator - a.operator) * k,
    apiserver: (b.plane.apiserver - a.plane.apiserver) * k,
    etcd: (b.plane.etcd - a.plane.etcd) * k,
    bench: (b.bench - a.bench) * k,
  };
}

const cpuText = (c: BatchResult['cpu']): string =>
  `CPU s/1000 inv: operator ${c.operator.toFixed(1)}, apiserver ${c.apiserver.toFixed(1)}, etcd ${c.etcd.toFixed(1)}, bench ${c.bench.toFixed(1)}`;

export async function operatorBatch(options: BatchOptions): Promise<BatchResult> {
  const { n, log } = options;
  const plane = await startPlane();
  const sink = await startSink();
  try {
    const ns = 'throughput';
    await plane.namespace(ns, TENANT);
    const op = await startOperator({
      kubeconfig: plane.kubeconfig,
      smtpPort: sink.port,
      workers: options.workers,
      ...(options.operatorRoot ? { operatorRoot: options.operatorRoot } : {}),
      ...(options.profileDir ? { cpuProfDir: options.profileDir } : {}),
    });
    await op.running;
    const watch = await watchPhases(plane.kubeConfig, plane.custom, ns);
    const bodies = Array.from({ length: n }, (_, i) => invitationBody(ns, `inv-${i}`));
    const before = await plane.requestCounts();
    const cpu0 = cpuMark(plane, () => op.cpuSeconds());
    const t0 = wallNow();
    let createdAt = t0;
    const creating = createInvitations(plane.custom, bodies, options.createConcurrency).then(() => {
      createdAt = wallNow();
    });
    await watch.waitFor(
      'Sent',
      bodies.map((b) => b.metadata.name),
      60_000 + n * 200,
    );
    await creating;
    const sentTimes = [...(watch.seen.get('Sent')?.values() ?? [])];
    const t1 = Math.max(...sentTimes);
    const cpu1 = cpuMark(plane, () => op.cpuSeconds());
    const after = await plane.requestCounts();
    const reconciles = op.metricsPort ? (await op.metric('usher_reconcile_total')) / n : undefined;
    watch.stop();
    const restart = options.restartCheck
      ? await restartSettled(plane, sink, op, n, { log, ...(options.operatorRoot ? { operatorRoot: options.operatorRoot } : {}) })
      : undefined;
    await op.stop();
    const delta = countsDelta(before, after);
    const seconds = (t1 - t0) / 1000;
    const result: BatchResult = {
      n,
      seconds,
      rate: n / seconds,
      createSeconds: (createdAt - t0) / 1000,
      mails: sink.total,
      duplicateMails: sink.duplicates().extra,
      requests: Object.fromEntries([...delta].map(([k, v]) => [k, v / n])),
      cpu: cpuPerThousand(cpu0, cpu1, n),
      problems: summariseProblems(op.problems),
      ...(restart ? { restart } : {}),
      ...(reconciles !== undefined ? { reconciles } : {}),
    };
    log(
      `  operator N=${n}: ${seconds.toFixed(1)} s, ${result.rate.toFixed(1)}/s (creates took ${result.createSeconds.toFixed(1)} s); mails ${sink.total}; ${cpuText(result.cpu)}; ${reconciles?.toFixed(2) ?? '?'} reconciles per invitation; per invitation: ${perInvitation(delta, n, (k) => !k.startsWith('GET') && !k.includes('leases'))}; log problems: ${result.problems ?? ''}`,
    );
    if (options.profileDir) {
      const profiles = readdirSync(options.profileDir)
        .filter((f) => f.endsWith('.cpuprofile'))
        .sort();
      const latest = profiles.at(-1);
      if (latest) {
        result.profile = formatProfile(summariseProfile(join(options.profileDir, latest)));
        log(`  profile ${join(options.profileDir, latest)}:\n${result.profile.replace(/^/gm, '    ')}`);
      }
    }
    return result;
  } finally {
    await sink.close();
    await plane.stop();
  }
}

/** The limit: the operator's writes and sends for N invitations, done directly with the same concurrency. */
export async function limitBatch(options: BatchOptions): Promise<BatchResult> {
  const { n, log } = options;
  const plane = await startPlane();
  const sink = await startSink();
  const config = parseConfig(configYaml({ kubeconfig: '', smtpPort: sink.port, workers: options.workers }), { source: 'bench', env: {} });
  if (!config.mail) throw new Error('no mail config');
  const mailer = createInvitationMailer(config.mail);
  try {
    const ns = 'limit';
    await plane.namespace(ns, TENANT);
    const bodies = Array.from({ length: n }, (_, i) => invitationBody(ns, `inv-${i}`));
    const client = { core: plane.core, custom: plane.custom, config, mailer };
    // A queue the creates fill and `workers` consumers drain, as the operator's informer and work queue would.
    const ready: UserInvitation[] = [];
    const waiting: ((inv: UserInvitation) => void)[] = [];
    const push = (inv: UserInvitation): void => {
      const w = waiting.shift();
      if (w) w(inv);
      else ready.push(inv);
    };
    const take = (): Promise<UserInvitation> => {
      const inv = ready.shift();
      return inv ? Promise.resolve(inv) : new Promise((resolve) => waiting.push(resolve));
    };
    let remaining = n;
    const before = await plane.requestCounts();
    const cpu0 = cpuMark(plane, () => 0);
    const t0 = wallNow();
    let createdAt = t0;
    const creating = createInvitations(plane.custom, bodies, options.createConcurrency, push).then(() => {
      createdAt = wallNow();
    });
    const worker = async (): Promise<void> => {
      while (remaining > 0) {
        remaining--;
        await deliverPlain(client, await take());
      }
    };
    await Promise.all(Array.from({ length: options.workers }, worker));
    const t1 = wallNow();
    const cpu1 = cpuMark(plane, () => 0);
    await creating;
    const after = await plane.requestCounts();
    const delta = countsDelta(before, after);
    const seconds = (t1 - t0) / 1000;
    const result: BatchResult = {
      n,
      seconds,
      rate: n / seconds,
      createSeconds: (createdAt - t0) / 1000,
      mails: sink.total,
      duplicateMails: sink.duplicates().extra,
      requests: Object.fromEntries([...delta].map(([k, v]) => [k, v / n])),
      cpu: cpuPerThousand(cpu0, cpu1, n),
    };
    log(
      `  limit    N=${n}: ${seconds.toFixed(1)} s, ${result.rate.toFixed(1)}/s (creates took ${result.createSeconds.toFixed(1)} s); mails ${sink.total}; ${cpuText(result.cpu)}; per invitation: ${perInvitation(delta, n, (k) => !k.startsWith('GET') && !k.includes('leases'))}`,
    );
    return result;
  } finally {
    mailer.close();
    await sink.close();
    await plane.stop();
  }
}

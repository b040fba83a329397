// 2. Latency: invitations created one after another (each create waits for the
// previous invitation to be Sent), timed from just before the create request
// to the moment the bench's watch sees phase Sent. The same for the limit: the
// plain client doing the operator's writes and send right after each create,
// timed the same way (through the same watch).
import { parseConfig } from '../src/config/load.ts';
import { createInvitationMailer } from '../src/mail/invitation-mailer.ts';
import { createInvitation, deliverPlain, invitationBody, TENANT } from './support/invitations.ts';
import { configYaml, startOperator, summariseProblems } from './support/operator.ts';
import { wallNow, watchPhases } from './support/phases.ts';
import { startPlane } from './support/plane.ts';
import { startSink } from './support/sink.ts';
import { percentile } from './support/stats.ts';

export interface LatencyOptions {
  n: number;
  workers: number;
  operatorRoot?: string;
  log: (line: string) => void;
}

export interface LatencyResult {
  n: number;
  /** create → Sent, ms, in creation order. */
  latenciesMs: number[];
  p50: number;
  p95: number;
  p99: number;
  max: number;
  problems: string;
  /** The plain client's create → Sent, the same way. */
  limit: { latenciesMs: number[]; p50: number; p95: number; p99: number; max: number };
}

export async function latency(options: LatencyOptions): Promise<LatencyResult> {
  const { n, log } = options;
  const plane = await startPlane();
  const sink = await startSink();
  try {
    const ns = 'latency';
    await plane.namespace(ns, TENANT);
    const op = await startOperator({
      kubeconfig: plane.kubeconfig,
      smtpPort: sink.port,
      workers: options.workers,
      ...(options.operatorRoot ? { operatorRoot: options.operatorRoot } : {}),
    });
    await op.running;
    const watch = await watchPhases(plane.kubeConfig, plane.custom, ns);
    // A few unmeasured rounds first: connections, JIT.
    const warmup = 10;
    const latenciesMs: number[] = [];
    for (let i = 0; i < warmup + n; i++) {
      const name = `inv-${i}`;
      const t0 = wallNow();
      await createInvitation(plane.custom, invitationBody(ns, name));
      await watch.waitFor('Sent', [name], 30_000);
      const sentAt = watch.seen.get('Sent')?.get(name) ?? NaN;
      if (i >= warmup) latenciesMs.push(sentAt - t0);
    }
    await op.stop();

    // The limit, in a namespace of its own, with the operator gone.
    const limitNs = 'latency-limit';
    await plane.namespace(limitNs, TENANT);
    const limitWatch = await watchPhases(plane.kubeConfig, plane.custom, limitNs);
    const config = parseConfig(configYaml({ kubeconfig: '', smtpPort: sink.port }), { source: 'bench', env: {} });
    if (!config.mail) throw new Error('no mail config');
    const mailer = createInvitationMailer(config.mail);
    const limitMs: number[] = [];
    for (let i = 0; i < warmup + n; i++) {
      const name = `inv-${i}`;
      const t0 = wallNow();
      await deliverPlain({ core: plane.core, custom: plane.custom, config, mailer }, await createInvitation(plane.custom, invitationBody(limitNs, name)));
      await limitWatch.waitFor('Sent', [name], 30_000);
      if (i >= warmup) limitMs.push((limitWatch.seen.get('Sent')?.get(name) ?? NaN) - t0);
    }
    mailer.close();
    limitWatch.stop();
    watch.stop();
    const result: LatencyResult = {
      n,
      latenciesMs,
      p50: percentile(latenciesMs, 50),
      p95: percentile(latenciesMs, 95),
      p99: percentile(latenciesMs, 99),
      max: Math.max(...latenciesMs),
      problems: summariseProblems(op.problems),
      limit: { latenciesMs: limitMs, p50: percentile(limitMs, 50), p95: percentile(limitMs, 95), p99: percentile(limitMs, 99), max: Math.max(...limitMs) },
    };
    log(
      `  create→Sent over ${n}: p50 ${result.p50.toFixed(1)} ms, p95 ${result.p95.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, max ${result.max.toFixed(1)} ms; log problems: ${result.problems}`,
    );
    log(
      `  limit, the same way: p50 ${result.limit.p50.toFixed(1)} ms, p95 ${result.limit.p95.toFixed(1)} ms, p99 ${result.limit.p99.toFixed(1)} ms, max ${result.limit.max.toFixed(1)} ms; mails ${sink.total} in all`,
    );
    return result;
  } finally {
    await sink.close();
    await plane.stop();
  }
}

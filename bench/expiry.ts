// 6. Expiry precision: N invitations with staggered lifetimes (spec.expireAfter
// from `startS` to `startS + spreadS` seconds, evenly), all created at once and
// mailed; the lateness of each is the moment the bench's watch sees it Expired
// minus the status.expiresAt the operator wrote when it issued the link.
import type { InvitationPhase } from '../src/api/types.ts';
import { createInvitations, invitationBody, TENANT } from './support/invitations.ts';
import { startOperator, summariseProblems } from './support/operator.ts';
import { watchPhases } from './support/phases.ts';
import { startPlane } from './support/plane.ts';
import { startSink } from './support/sink.ts';
import { percentile } from './support/stats.ts';

export interface ExpiryOptions {
  n: number;
  startS: number;
  spreadS: number;
  workers: number;
  operatorRoot?: string;
  log: (line: string) => void;
}

export interface ExpiryResult {
  n: number;
  latenessMs: number[];
  p50: number;
  p99: number;
  max: number;
  /** Invitations that were Sent before they expired. */
  sentFirst: number;
  problems: string;
}

export async function expiry(options: ExpiryOptions): Promise<ExpiryResult> {
  const { n, log } = options;
  const plane = await startPlane();
  const sink = await startSink();
  try {
    const ns = 'expiry';
    await plane.namespace(ns, TENANT);
    const op = await startOperator({
      kubeconfig: plane.kubeconfig,
      smtpPort: sink.port,
      workers: options.workers,
      ...(options.operatorRoot ? { operatorRoot: options.operatorRoot } : {}),
    });
    await op.running;
    const watch = await watchPhases(plane.kubeConfig, plane.custom, ns);
    const bodies = Array.from({ length: n }, (_, i) =>
      invitationBody(ns, `inv-${i}`, { expireAfter: `PT${options.startS + Math.floor((i * options.spreadS) / n)}S` }),
    );
    await createInvitations(plane.custom, bodies, 16);
    const names = bodies.map((b) => b.metadata.name);
    await watch.waitFor('Expired', names, (options.startS + options.spreadS + 120) * 1000);
    const expiredAt = watch.seen.get('Expired' satisfies InvitationPhase) ?? new Map<string, number>();
    const sent = watch.seen.get('Sent') ?? new Map<string, number>();
    const latenessMs = names.map((name) => {
      const expiresAt = watch.informer.get(ns, name)?.status?.expiresAt;
      return (expiredAt.get(name) ?? NaN) - Date.parse(expiresAt ?? '');
    });
    watch.stop();
    await op.stop();
    const result: ExpiryResult = {
      n,
      latenessMs,
      p50: percentile(latenessMs, 50),
      p99: percentile(latenessMs, 99),
      max: Math.max(...latenessMs),
      sentFirst: names.filter((name) => (sent.get(name) ?? Infinity) < (expiredAt.get(name) ?? 0)).length,
      problems: summariseProblems(op.problems),
    };
    log(
      `  Expired after expiresAt over ${n}: p50 ${result.p50.toFixed(0)} ms, p99 ${result.p99.toFixed(0)} ms, max ${result.max.toFixed(0)} ms (${result.sentFirst} were Sent first); log problems: ${result.problems}`,
    );
    return result;
  } finally {
    await sink.close();
    await plane.stop();
  }
}

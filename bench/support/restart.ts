// Restarting the operator on settled invitations: time to ready, time until
// every invitation was reconciled once (counted from the operator's debug log
// line "reconciled"), and the writes and mails meanwhile, counted twice: by the
// API server's request counters and by comparing the resourceVersion of every
// invitation and record Secret before and after.
import { GROUP, INVITATION_PLURAL, VERSION, type UserInvitation } from '../../src/api/types.ts';
import { MANAGED_SELECTOR } from '../../src/invitation/record.ts';
import { startOperator, summariseProblems, type Operator } from './operator.ts';
import { countsDelta, writesOf, type Plane } from './plane.ts';

export interface RestartResult {
  invitations: number;
  /** Spawn → "usher is running" (caches synced, workers started). */
  readySeconds: number;
  /** Spawn → every invitation reconciled once. */
  resyncSeconds: number;
  /** Writes the API server counted (POST/PUT/PATCH/DELETE) on secrets, userinvitations, users and events. */
  apiWrites: number;
  /** Invitations and record Secrets whose resourceVersion changed. */
  changedObjects: number;
  mails: number;
  problems: string;
}

/** resourceVersion of every invitation and record Secret, by kind/namespace/name. */
export async function versions(plane: Plane): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  const invitations = (await plane.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: INVITATION_PLURAL })) as {
    items: UserInvitation[];
  };
  for (const inv of invitations.items) map.set(`inv/${inv.metadata.namespace ?? ''}/${inv.metadata.name}`, inv.metadata.resourceVersion ?? '');
  const secrets = await plane.core.listSecretForAllNamespaces({ labelSelector: MANAGED_SELECTOR });
  for (const s of secrets.items) map.set(`secret/${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`, s.metadata?.resourceVersion ?? '');
  return map;
}

export function changed(a: Map<string, string>, b: Map<string, string>): number {
  let n = 0;
  for (const [key, rv] of b) if (a.get(key) !== rv) n++;
  for (const key of a.keys()) if (!b.has(key)) n++;
  return n;
}

/** Starts an operator (debug log, to count reconciles) and resolves once it has reconciled `expected` invitations. */
export async function startAndSettle(
  plane: Plane,
  smtpPort: number,
  expected: number,
  options: { memoryProbe?: boolean; operatorRoot?: string } = {},
): Promise<{ op: Operator; readyAt: number; settledAt: number }> {
  const op = await startOperator({ kubeconfig: plane.kubeconfig, smtpPort, logLevel: 'debug', ...options });
  const settled = new Promise<number>((resolve) => {
    const check = (): void => {
      if ((op.counts.get('reconciled') ?? 0) >= expected) {
        op.onLine = undefined;
        resolve(performance.now());
      }
    };
    op.onLine = check;
    check();
  });
  const readyAt = await op.running;
  const settledAt = await Promise.race([
    settled,
    new Promise<never>((_, reject) =>
      setTimeout(() => {
        reject(new Error(`operator reconciled ${op.counts.get('reconciled') ?? 0} of ${expected} in 10 min`));
      }, 600_000).unref(),
    ),
  ]);
  return { op, readyAt, settledAt };
}

/**
 * Stops `running` (SIGTERM) and starts a new operator on the same cluster,
 * which holds `count` settled invitations: how long until it is ready and has
 * reconciled each once, and what it wrote and mailed meanwhile.
 */
export async function restartSettled(
  plane: Plane,
  sink: { port: number; total: number },
  running: Operator,
  count: number,
  options: { log: (line: string) => void; operatorRoot?: string },
): Promise<RestartResult> {
  await running.stop();
  const rvBefore = await versions(plane);
  const requestsBefore = await plane.requestCounts();
  const mailsBefore = sink.total;
  const spawned = performance.now();
  const { op, readyAt, settledAt } = await startAndSettle(plane, sink.port, count, options.operatorRoot ? { operatorRoot: options.operatorRoot } : {});
  // Anything the resync was going to write has been written a moment after the last reconcile.
  await new Promise((r) => setTimeout(r, 3000));
  const requestsAfter = await plane.requestCounts();
  const rvAfter = await versions(plane);
  await op.stop();
  const delta = countsDelta(requestsBefore, requestsAfter);
  const r: RestartResult = {
    invitations: count,
    readySeconds: (readyAt - spawned) / 1000,
    resyncSeconds: (settledAt - spawned) / 1000,
    apiWrites: writesOf(delta, ['secrets', 'userinvitations', 'users', 'events']),
    changedObjects: changed(rvBefore, rvAfter),
    mails: sink.total - mailsBefore,
    problems: summariseProblems(op.problems),
  };
  options.log(
    `  restart with ${count} settled: ready in ${r.readySeconds.toFixed(2)} s, all reconciled in ${r.resyncSeconds.toFixed(2)} s; API writes ${r.apiWrites}, changed objects ${r.changedObjects}, mails ${r.mails}; log problems: ${r.problems}`,
  );
  return r;
}

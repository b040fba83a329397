// Restart the API server in the middle of a batch: kube-apiserver is stopped
// once a third of the mails are out, stays down `downMs`, and comes back on the
// same port. Every invitation must still reach Sent. Two cases:
//   - a short outage (killed, back within the leader's renew deadline of 10 s):
//     the operator's watches fail, back off and resume, in the same process;
//   - a long one (stopped gracefully, down longer than the renew deadline): the
//     leader can no longer renew its Lease and exits, as designed; it is
//     started again (as the kubelet would) and lists afresh.
// Sends that straddle the outage may be repeated (their sent mark could not be
// written), at most one per worker busy at that moment.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GROUP, INVITATION_PLURAL, VERSION, type UserInvitation } from '../src/api/types.ts';
import { createInvitations, invitationBody, TENANT } from '../bench/support/invitations.ts';
import { startOperator } from '../bench/support/operator.ts';
import { watchPhases } from '../bench/support/phases.ts';
import { startPlane } from '../bench/support/plane.ts';
import { startSink } from '../bench/support/sink.ts';
import { Checks, records, sleep, supervise } from './support.ts';

export interface ApiServerRestartOptions {
  n: number;
  downMs: number;
  signal: 'SIGTERM' | 'SIGKILL';
  /** Whether the operator is expected to survive the outage (short) or exit and be restarted (long). */
  expectExit: boolean;
  workers: number;
  log: (line: string) => void;
}

export interface ApiServerRestartResult {
  n: number;
  downSeconds: number;
  /** From the API server being back to every invitation Sent, as a LIST reads it. */
  drainSeconds: number;
  /** The same, as the harness's own watch (through the same restart) saw it. */
  harnessDrainSeconds: number;
  /** From the API server being back (its /readyz) to the next mail; about 0 when mails were flowing again before /readyz said so. */
  firstMailSeconds: number;
  /** What the backlog left at the outage would take at the batch's pace before it. */
  paceDrainSeconds: number;
  mails: number;
  duplicates: number;
  /** The operator's log: failed watches, lists and reconciles. */
  watchFailures: number;
  relists: number;
  reconcileFailures: number;
  /** Times the operator exited on its own (and was started again). */
  operatorRestarts: number;
  ok: boolean;
}

export async function restartApiServerMidBatch(options: ApiServerRestartOptions): Promise<ApiServerRestartResult> {
  const { n, log } = options;
  const checks = new Checks(log);
  const plane = await startPlane();
  const restartApiServer = plane.plane.restartApiServer;
  if (!restartApiServer) throw new Error('this control plane cannot restart its API server');
  const sink = await startSink();
  const ns = 'apiserver';
  try {
    await plane.namespace(ns, TENANT);
    // Kept for a look afterwards (USHER_CHAOS_LOG_LEVEL=debug shows every watch and list); every process of the run appends to it.
    const logFile = join(tmpdir(), `usher-chaos-apiserver-${process.pid}-${options.signal}.log`);
    const op = await supervise(() =>
      startOperator({
        kubeconfig: plane.kubeconfig,
        smtpPort: sink.port,
        workers: options.workers,
        logLevel: process.env.USHER_CHAOS_LOG_LEVEL ?? 'info',
        logFile,
      }),
    );
    const watch = await watchPhases(plane.kubeConfig, plane.custom, ns);
    const bodies = Array.from({ length: n }, (_, i) => invitationBody(ns, `inv-${i}`));
    const batchAt = performance.now();
    await createInvitations(plane.custom, bodies, 16);
    while (sink.total < n / 3) await sleep(5);
    const mailsAtStop = sink.total;
    const stoppedAt = performance.now();
    const timing = await restartApiServer({ downMs: options.downMs, signal: options.signal });
    const backAt = performance.now();
    const mailsAtBack = sink.total;
    // The first mail after the outage, and the rate before it: the drain is the backlog at
    // the operator's own pace, so the time to the first mail says how soon it was working again.
    const firstMailAt = (async (): Promise<number> => {
      while (sink.total === mailsAtBack && performance.now() < backAt + 180_000) await sleep(20);
      return performance.now();
    })();
    const ratePerSecond = mailsAtStop / ((stoppedAt - batchAt) / 1000);
    // When every invitation is Sent as the API server reads it (a LIST every 250 ms), apart
    // from when the harness's own watch, which went through the same restart, saw it.
    const allSentAt = (async (): Promise<number> => {
      const deadline = backAt + 180_000;
      while (performance.now() < deadline) {
        try {
          const list = (await plane.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: INVITATION_PLURAL })) as {
            items: UserInvitation[];
          };
          if (list.items.length === n && list.items.every((inv) => inv.status?.phase === 'Sent')) return performance.now();
        } catch {
          // Still settling; read again.
        }
        await sleep(250);
      }
      return NaN;
    })();
    log(
      `    API server stopped (${options.signal}) at ${mailsAtStop} mails: ${(timing.stopMs / 1000).toFixed(1)} s to stop, ${options.downMs / 1000} s down, ${(timing.startMs / 1000).toFixed(1)} s to be ready again; ${((backAt - stoppedAt) / 1000).toFixed(1)} s in all`,
    );
    let missing = 0;
    try {
      await watch.waitFor(
        'Sent',
        bodies.map((b) => b.metadata.name),
        180_000,
      );
    } catch (err) {
      missing = n - watch.count('Sent');
      log(`    ${(err as Error).message}`);
    }
    const lastSent = Math.max(...(watch.seen.get('Sent')?.values() ?? [])) - performance.timeOrigin;
    const apiSentSeconds = ((await allSentAt) - backAt) / 1000;
    const firstMailSeconds = ((await firstMailAt) - backAt) / 1000;
    await sleep(2000);
    const finalRecords = await records(plane.core, ns);
    watch.stop();
    await op.stop();
    const count = (msg: string): number => op.count(msg);
    const result: ApiServerRestartResult = {
      n,
      downSeconds: (backAt - stoppedAt) / 1000,
      drainSeconds: apiSentSeconds,
      firstMailSeconds,
      paceDrainSeconds: (n - mailsAtBack) / ratePerSecond,
      harnessDrainSeconds: (lastSent - backAt) / 1000,
      mails: sink.total,
      duplicates: sink.duplicates().extra,
      watchFailures: count('watch failed; resuming after backoff'),
      relists: count('resourceVersion expired (410 Gone); relisting') + count('list failed'),
      reconcileFailures: count('reconcile failed, retrying with backoff'),
      operatorRestarts: op.exits.length,
      ok: false,
    };
    log(
      `    ${result.mails} mails for ${n} invitations (${result.duplicates} duplicates); operator log: ${result.watchFailures} watch failures, ${count('resourceVersion expired (410 Gone); relisting')} relists after 410, ${count('list failed')} failed lists, ${result.reconcileFailures} failed reconciles (retried), ${op.exits.length} operator exits${op.exits.length ? ` (${op.exits.join('; ')})` : ''}; drained ${result.drainSeconds.toFixed(1)} s after the API server was back (the harness's watch saw it ${result.harnessDrainSeconds.toFixed(1)} s after; the ${n - mailsAtBack} left at ${ratePerSecond.toFixed(1)}/s, the pace before the outage, take ${result.paceDrainSeconds.toFixed(1)} s); first mail ${firstMailSeconds.toFixed(1)} s after it was back; operator log: ${logFile}`,
    );
    checks.check('every invitation reached Sent', missing === 0, `${watch.count('Sent')} of ${n}`);
    checks.check('one record per invitation', finalRecords.length === n, `${finalRecords.length} records`);
    if (options.expectExit)
      checks.check(
        'the leader exited when it could not renew its Lease, and its successor finished',
        op.exits.length > 0 && missing === 0,
        op.exits.join('; '),
      );
    else
      checks.check(
        'the operator stayed up; its watches failed and recovered',
        op.exits.length === 0 && result.watchFailures + result.relists > 0 && missing === 0,
        `${result.watchFailures} failed watches, ${op.exits.length} exits`,
      );
    checks.check(`duplicates ≤ workers busy at the outage (${options.workers})`, result.duplicates <= options.workers, `${result.duplicates}`);
    result.ok = checks.ok;
    return result;
  } finally {
    await sink.close();
    await plane.stop();
  }
}

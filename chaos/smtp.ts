// The mail server goes away for `downMs` in the middle of a batch (stops
// listening, its sessions dropped) and comes back on the same port. Sends
// fail, the operator backs off per invitation (30 s doubling, jittered); once
// the server is back the backlog drains. Counted: attempts per invitation
// (from the records), mails, duplicates, and how long the drain took.
import { createInvitations, invitationBody, TENANT } from '../bench/support/invitations.ts';
import { startOperator } from '../bench/support/operator.ts';
import { watchPhases } from '../bench/support/phases.ts';
import { startPlane } from '../bench/support/plane.ts';
import { startSink } from '../bench/support/sink.ts';
import { Checks, records, sleep, supervise } from './support.ts';

export interface SmtpDownOptions {
  n: number;
  downMs: number;
  log: (line: string) => void;
}

export interface SmtpDownResult {
  n: number;
  downSeconds: number;
  drainSeconds: number;
  /** attempts → invitations with that many attempts. */
  attempts: Record<string, number>;
  maxAttempts: number;
  mails: number;
  duplicates: number;
  ok: boolean;
}

/** The most attempts an invitation can need when the server is down for `downMs`: with retries 30 s·2^(k-1) ±20 %, the k-th retry comes no sooner than 24·(2^k − 1) s after the first failure. */
function attemptsBound(downMs: number): number {
  let k = 0;
  while (24_000 * (2 ** k - 1) < downMs) k++;
  return k + 1;
}

export async function smtpDownMidBatch(options: SmtpDownOptions): Promise<SmtpDownResult> {
  const { n, log } = options;
  const checks = new Checks(log);
  const plane = await startPlane();
  const sink = await startSink();
  const ns = 'smtp';
  try {
    await plane.namespace(ns, TENANT);
    const op = await supervise(() => startOperator({ kubeconfig: plane.kubeconfig, smtpPort: sink.port }));
    const watch = await watchPhases(plane.kubeConfig, plane.custom, ns);
    const bodies = Array.from({ length: n }, (_, i) => invitationBody(ns, `inv-${i}`));
    const creating = createInvitations(plane.custom, bodies, 16);
    while (sink.total < n / 5) await sleep(5);
    await sink.down();
    const downAt = performance.now();
    log(`    SMTP down at ${sink.total} mails for ${options.downMs / 1000} s`);
    await sleep(options.downMs);
    await sink.up();
    const upAt = performance.now();
    await creating;
    let missing = 0;
    try {
      await watch.waitFor(
        'Sent',
        bodies.map((b) => b.metadata.name),
        300_000,
      );
    } catch (err) {
      missing = n - watch.count('Sent');
      log(`    ${(err as Error).message}`);
    }
    const lastSent = Math.max(...(watch.seen.get('Sent')?.values() ?? [])) - performance.timeOrigin;
    const final = await records(plane.core, ns);
    watch.stop();
    await op.stop();
    const attempts: Record<string, number> = {};
    let maxAttempts = 0;
    for (const r of final) {
      const a = r.mail?.attempts ?? 0;
      attempts[a] = (attempts[a] ?? 0) + 1;
      maxAttempts = Math.max(maxAttempts, a);
    }
    const bound = attemptsBound(options.downMs);
    const result: SmtpDownResult = {
      n,
      downSeconds: (upAt - downAt) / 1000,
      drainSeconds: (lastSent - upAt) / 1000,
      attempts,
      maxAttempts,
      mails: sink.total,
      duplicates: sink.duplicates().extra,
      ok: false,
    };
    log(
      `    attempts per invitation: ${Object.entries(attempts)
        .map(([a, k]) => `${a}: ${k}`)
        .join(
          ', ',
        )} (max ${maxAttempts}); ${result.mails} mails, ${result.duplicates} duplicates; backlog drained ${result.drainSeconds.toFixed(1)} s after the server came back; failed sends in the operator log: ${op.count('invitation mail not sent')}; operator exits: ${op.exits.length}`,
    );
    checks.check('the operator stayed up', op.exits.length === 0, op.exits.join('; '));
    checks.check('every invitation reached Sent (backlog drained)', missing === 0, `${watch.count('Sent')} of ${n}`);
    checks.check(`attempts per invitation bounded (≤ ${bound} for ${options.downMs / 1000} s down)`, maxAttempts <= bound, `max ${maxAttempts}`);
    checks.check('duplicates only from sessions cut mid-reply (≤ mail pool size, 5)', result.duplicates <= 5, `${result.duplicates}`);
    result.ok = checks.ok;
    return result;
  } finally {
    await sink.close();
    await plane.stop();
  }
}

// SIGKILL the operator at random moments during a batch, `kills` times.
//
// The batch is applied at once; the operator is killed when the SMTP sink has
// received a random number of mails (spread over the batch) plus a random few
// hundred milliseconds, and started again at once. Right after each kill the
// records tell which sends were in flight (attempt marked, no sent mark). At
// the end: every invitation is Sent (none lost), one record each (no leaked
// token), and each invitation got at most one duplicate mail per kill that
// caught its send in flight, the README's guarantee.
import { createInvitations, invitationBody, TENANT } from '../bench/support/invitations.ts';
import { startOperator, summariseProblems, type Operator } from '../bench/support/operator.ts';
import { watchPhases } from '../bench/support/phases.ts';
import { startPlane } from '../bench/support/plane.ts';
import { startSink } from '../bench/support/sink.ts';
import { Checks, records, sleep } from './support.ts';

export interface KillOptions {
  n: number;
  kills: number;
  log: (line: string) => void;
}

export interface KillResult {
  n: number;
  kills: number;
  /** Sends in flight at each kill. */
  inFlightAtKill: number[];
  mails: number;
  duplicates: number;
  /** Duplicate mails beyond the guarantee (must be 0). */
  beyondGuarantee: number;
  lost: number;
  seconds: number;
  ok: boolean;
}

export async function killDuringBatch(options: KillOptions): Promise<KillResult> {
  const { n, kills, log } = options;
  const checks = new Checks(log);
  const plane = await startPlane();
  const sink = await startSink();
  // A slow provider widens the window in which a send is in flight.
  sink.replyDelayMs = 20;
  const ns = 'kill';
  try {
    await plane.namespace(ns, TENANT);
    const start = (): Promise<Operator> => startOperator({ kubeconfig: plane.kubeconfig, smtpPort: sink.port });
    let op = await start();
    await op.running;
    const watch = await watchPhases(plane.kubeConfig, plane.custom, ns);
    const bodies = Array.from({ length: n }, (_, i) => invitationBody(ns, `inv-${i}`));
    const email = new Map(bodies.map((b) => [b.metadata.name, b.spec.email.toLowerCase()]));
    // Kill points: mail counts spread at random over the batch.
    const thresholds = Array.from({ length: kills }, () => Math.floor(5 + Math.random() * (n - 25))).sort((a, b) => a - b);
    const t0 = performance.now();
    const creating = createInvitations(plane.custom, bodies, 16);
    const inFlightAtKill: number[] = [];
    const inFlightKills = new Map<string, number>();
    const problems: string[] = [];
    for (const threshold of thresholds) {
      while (sink.total < threshold) await sleep(5);
      await sleep(Math.random() * 300);
      await op.kill();
      problems.push(summariseProblems(op.problems));
      const inFlight = (await records(plane.core, ns)).filter((r) => r.mail?.attemptStartedAt && !r.mail.sentAt);
      for (const r of inFlight) inFlightKills.set(r.invitationName, (inFlightKills.get(r.invitationName) ?? 0) + 1);
      inFlightAtKill.push(inFlight.length);
      op = await start();
      await op.running;
    }
    await creating;
    log(`    killed ${kills} times at ${thresholds.join(', ')} mails; sends in flight at each kill: ${inFlightAtKill.join(', ')}`);
    let lost = 0;
    try {
      await watch.waitFor('Sent', email.keys(), 180_000);
    } catch (err) {
      lost = n - watch.count('Sent');
      log(`    ${(err as Error).message}`);
    }
    const seconds = (performance.now() - t0) / 1000;
    await sleep(2000);
    const finalRecords = await records(plane.core, ns);
    watch.stop();
    await op.stop();
    problems.push(summariseProblems(op.problems));

    let duplicates = 0;
    let beyond = 0;
    let worst = 0;
    for (const [name, address] of email) {
      const extra = (sink.perRecipient.get(address) ?? 0) - 1;
      if (extra > 0) duplicates += extra;
      worst = Math.max(worst, extra);
      beyond += Math.max(0, extra - (inFlightKills.get(name) ?? 0));
    }
    const inFlightTotal = inFlightAtKill.reduce((a, b) => a + b, 0);
    log(
      `    ${sink.total} mails for ${n} invitations: ${duplicates} duplicates (at most ${worst} for one invitation), ${inFlightTotal} sends were in flight at a kill; ${seconds.toFixed(1)} s; operator log problems: ${[...new Set(problems)].join(' | ')}`,
    );
    checks.check('every invitation reached Sent (none lost)', lost === 0, `${watch.count('Sent')} of ${n}`);
    checks.check('one record per invitation (no leaked token)', finalRecords.length === n, `${finalRecords.length} records`);
    checks.check(
      'no invitation without a mail',
      [...email.values()].every((a) => (sink.perRecipient.get(a) ?? 0) >= 1),
    );
    checks.check('duplicates within the guarantee (≤ 1 per kill that caught the send in flight)', beyond === 0, `${duplicates} duplicates, ${beyond} beyond`);
    return { n, kills, inFlightAtKill, mails: sink.total, duplicates, beyondGuarantee: beyond, lost, seconds, ok: checks.ok };
  } finally {
    await sink.close();
    await plane.stop();
  }
}

// A watch that expires: the operator's watches must come back with 410 Gone,
// relist, and miss nothing that happened while they were away.
//
// With `n` invitations Sent, the operator is frozen (SIGSTOP). Meanwhile new
// invitations are created, some deleted, some asked to reissue; then etcd is
// compacted to its current revision (nothing older can be watched from), and
// kube-apiserver is restarted so that every watch, the operator's included,
// must be re-established: its watch cache now starts after the operator's
// last resourceVersion. The operator is thawed (SIGCONT) and must answer 410
// with a relist (its informers log it), then handle every change it missed.
// It runs without leader election (USHER_LEADER_ELECTION=false, the single-
// replica setting): a leader frozen longer than its renew deadline rightly
// exits on waking (as controller-runtime does) and its successor simply lists.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GROUP, INVITATION_PLURAL, REISSUE_ANNOTATION, VERSION } from '../src/api/types.ts';
import { mergePatchOptions } from '../src/runtime/client.ts';
import { createInvitations, invitationBody, pool, TENANT } from '../bench/support/invitations.ts';
import { startOperator } from '../bench/support/operator.ts';
import { watchPhases } from '../bench/support/phases.ts';
import { startPlane } from '../bench/support/plane.ts';
import { startSink } from '../bench/support/sink.ts';
import { Checks, compactEtcd, etcdRevision, records, sleep } from './support.ts';

export interface GoneOptions {
  n: number;
  /** Invitations created, deleted and reissued while the operator is frozen (each). */
  changes: number;
  /** Run src/main.ts of this checkout instead (experiments). */
  operatorRoot?: string;
  /** How long after the thaw every change must have been handled. */
  deadlineMs: number;
  log: (line: string) => void;
}

export interface GoneResult {
  n: number;
  relists410: number;
  /** Informer paths that relisted after 410, and those the watchdog found silent. */
  relisted: string[];
  silentWatches: string[];
  /** Thaw → every missed change handled. */
  caughtUpSeconds: number;
  compactedAt: number;
  created: number;
  deleted: number;
  reissued: number;
  missed: number;
  ok: boolean;
}

export async function watchExpires(options: GoneOptions): Promise<GoneResult> {
  const { n, changes, log } = options;
  const checks = new Checks(log);
  const plane = await startPlane();
  const { restartApiServer, etcdUrl } = plane.plane;
  if (!restartApiServer || !etcdUrl) throw new Error('this control plane cannot restart its API server or reach etcd');
  const sink = await startSink();
  const ns = 'gone';
  try {
    await plane.namespace(ns, TENANT);
    const logFile = join(tmpdir(), `usher-chaos-gone-${process.pid}.log`);
    const op = await startOperator({
      kubeconfig: plane.kubeconfig,
      smtpPort: sink.port,
      leaderElection: false,
      logLevel: process.env.USHER_CHAOS_LOG_LEVEL ?? 'info',
      logFile,
      ...(options.operatorRoot ? { operatorRoot: options.operatorRoot } : {}),
    });
    await op.running;
    const watch = await watchPhases(plane.kubeConfig, plane.custom, ns);
    const first = Array.from({ length: n }, (_, i) => invitationBody(ns, `inv-${i}`));
    await createInvitations(plane.custom, first, 16);
    await watch.waitFor(
      'Sent',
      first.map((b) => b.metadata.name),
      120_000,
    );
    const mailsBefore = sink.total;

    process.kill(op.pid, 'SIGSTOP');
    const created = Array.from({ length: changes }, (_, i) => invitationBody(ns, `late-${i}`));
    const deleted = first.slice(0, changes).map((b) => b.metadata.name);
    const reissued = first.slice(changes, 2 * changes).map((b) => b.metadata.name);
    // The deleted invitations' uids from the invitations themselves, and their records
    // before the freeze: without them "records gone" below could not fail.
    const deletedUids = new Set(deleted.map((name) => watch.informer.get(ns, name)?.metadata.uid).filter((uid) => uid !== undefined));
    const recordsBefore = (await records(plane.core, ns)).filter((r) => deletedUids.has(r.invitationUid)).length;
    await createInvitations(plane.custom, created, 16);
    await pool(deleted, 16, (name) =>
      plane.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: INVITATION_PLURAL, name }),
    );
    const at = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    await pool(reissued, 16, (name) =>
      plane.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace: ns, plural: INVITATION_PLURAL, name, body: { metadata: { annotations: { [REISSUE_ANNOTATION]: at } } } },
        mergePatchOptions(),
      ),
    );
    const revision = await etcdRevision(etcdUrl);
    await compactEtcd(etcdUrl, revision);
    await restartApiServer();
    log(`    operator frozen; ${changes} created, ${changes} deleted, ${changes} reissued; etcd compacted at revision ${revision}; API server restarted`);
    const relists: string[] = [];
    const silent: string[] = [];
    op.onLine = (line) => {
      if (line.msg === 'resourceVersion expired (410 Gone); relisting') relists.push(String(line.path));
      if (line.msg === 'watch silent for too long; restarting it') silent.push(String(line.path));
    };
    const thawedAt = performance.now();
    process.kill(op.pid, 'SIGCONT');

    // Every change handled: the new ones Sent, the reissued ones Sent again on a second
    // issuance, the deleted ones' records (in Usher's namespace) removed by the operator
    // when it learns of the deletion. The deadline allows
    // for the informer's watchdog (5 min), should a watch hang.
    const sentNew = (): number => created.filter((b) => watch.seen.get('Sent')?.has(b.metadata.name)).length;
    const reissueDone = (): number =>
      reissued.filter((name) => {
        const inv = watch.informer.get(ns, name);
        return inv?.status?.phase === 'Sent' && (inv.status.issuance ?? 0) >= 2;
      }).length;
    const leftovers = async (): Promise<number> => (await records(plane.core, ns)).filter((r) => deletedUids.has(r.invitationUid)).length;
    const deadline = thawedAt + options.deadlineMs;
    let leftover = Infinity;
    let caughtUpAt = NaN;
    while (performance.now() < deadline) {
      leftover = await leftovers();
      if (sentNew() === changes && reissueDone() === changes && leftover === 0) {
        caughtUpAt = performance.now();
        break;
      }
      await sleep(250);
    }
    const caughtUpS = (caughtUpAt - thawedAt) / 1000;
    const reissuedOk = reissueDone();
    const missed = changes - sentNew() + (changes - reissuedOk) + (leftover === 0 ? 0 : 1);
    await sleep(1000);
    watch.stop();
    const alive = op.child.exitCode === null && op.child.signalCode === null;
    await op.stop();
    const relists410 = relists.length;
    const extraMails = sink.total - mailsBefore;
    log(
      `    after the thaw: relists after 410 Gone: ${relists.map((p) => p.replace(/^.*\//, '')).join(', ') || 'none'}; watches found silent by the watchdog: ${silent.map((p) => p.replace(/^.*\//, '')).join(', ') || 'none'}; every change handled ${Number.isNaN(caughtUpS) ? 'never' : `${caughtUpS.toFixed(1)} s`} after the thaw; ${extraMails} mails after the freeze (expected ${2 * changes}: the new and the reissued)`,
    );
    checks.check('the operator stayed up', alive, alive ? '' : op.stderr().slice(-300));
    checks.check('the operator got 410 Gone and relisted', relists410 > 0, `${relists410} relists`);
    checks.check('invitations created while it was away: all Sent', sentNew() === changes, `${sentNew()} of ${changes}`);
    checks.check('reissues requested while it was away: all reissued and Sent', reissuedOk === changes, `${reissuedOk} of ${changes}`);
    checks.check(
      'deleted while it was away: records gone',
      deletedUids.size === changes && recordsBefore === changes && leftover === 0,
      `${recordsBefore} of ${changes} had a record before the freeze, ${leftover} left`,
    );
    checks.check('mails after the freeze: exactly one per new or reissued invitation', extraMails === 2 * changes, `${extraMails}`);
    if (!(caughtUpS <= 60)) {
      log(
        `    WARN caught up only ${Number.isNaN(caughtUpS) ? 'never' : `after ${caughtUpS.toFixed(0)} s`}: a watch hung silently after the API server restart${silent.length ? ` (${silent.join(', ')}) until the informer's watchdog restarted it` : ''}`,
      );
    }
    log(`    operator log: ${logFile}`);
    return {
      n,
      relists410,
      relisted: relists,
      silentWatches: silent,
      caughtUpSeconds: caughtUpS,
      compactedAt: revision,
      created: changes,
      deleted: changes,
      reissued: changes,
      missed,
      ok: checks.ok,
    };
  } finally {
    await sink.close();
    await plane.stop();
  }
}

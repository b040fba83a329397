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
import { GROUP, INVITATION_PLURAL, REISSUE_ANNOTATION, VERSION, type UserInvitation } from '../src/api/types.ts';
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
  /** Thaw → the harness's own watch (through the same restart) showed every change. */
  harnessSeenSeconds: number;
  compactedAt: number;
  created: number;
  deleted: number;
  reissued: number;
  missed: number;
  ok: boolean;
}

/** Thaw → every missed change handled, at most (issue 15: watches back < 10 s after an API server restart). */
const CAUGHT_UP_TARGET_S = 10;

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
    const readyAt = performance.now();
    log(`    operator frozen; ${changes} created, ${changes} deleted, ${changes} reissued; etcd compacted at revision ${revision}; API server restarted`);
    const relists: string[] = [];
    const silent: string[] = [];
    op.onLine = (line) => {
      if (line.msg === 'resourceVersion expired (410 Gone); relisting') relists.push(String(line.path));
      if (line.msg === 'watch silent for too long; restarting it') silent.push(String(line.path));
    };
    const thawedAt = performance.now();
    const readyToThawS = (thawedAt - readyAt) / 1000;
    process.kill(op.pid, 'SIGCONT');

    // Every change handled: the new ones Sent, the reissued ones Sent again on a second
    // issuance, the deleted ones' records (in Usher's namespace) removed by the operator
    // when it learns of the deletion. Read from the API server itself (a LIST every
    // 250 ms), so that the figure is the operator's; the harness's own watch (which
    // also went through the restart) is timed apart. The deadline allows for the
    // informer's watchdog (5 min), should a watch hang.
    const handled = (items: readonly UserInvitation[]): { sentNew: number; reissued: number } => {
      const byName = new Map(items.map((inv) => [inv.metadata.name, inv]));
      return {
        sentNew: created.filter((b) => byName.get(b.metadata.name)?.status?.phase === 'Sent').length,
        reissued: reissued.filter((name) => {
          const inv = byName.get(name);
          return inv?.status?.phase === 'Sent' && (inv.status.issuance ?? 0) >= 2;
        }).length,
      };
    };
    const listed = async (): Promise<UserInvitation[]> =>
      (
        (await plane.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: INVITATION_PLURAL })) as {
          items: UserInvitation[];
        }
      ).items;
    const leftovers = async (): Promise<number> => (await records(plane.core, ns)).filter((r) => deletedUids.has(r.invitationUid)).length;
    const seenByHarness = (): boolean => handled(watch.informer.list(ns)).sentNew === changes && handled(watch.informer.list(ns)).reissued === changes;
    const deadline = thawedAt + options.deadlineMs;
    let state = { sentNew: 0, reissued: 0 };
    let leftover = Infinity;
    let caughtUpAt = NaN;
    let harnessAt = NaN;
    while (performance.now() < deadline && (Number.isNaN(caughtUpAt) || Number.isNaN(harnessAt))) {
      if (Number.isNaN(harnessAt) && seenByHarness()) harnessAt = performance.now();
      if (Number.isNaN(caughtUpAt)) {
        try {
          [state, leftover] = await Promise.all([listed().then(handled), leftovers()]);
        } catch {
          // The API server may still be settling; the next round reads again.
        }
        if (state.sentNew === changes && state.reissued === changes && leftover === 0) caughtUpAt = performance.now();
      }
      await sleep(250);
    }
    const caughtUpS = (caughtUpAt - thawedAt) / 1000;
    const harnessS = (harnessAt - thawedAt) / 1000;
    const missed = changes - state.sentNew + (changes - state.reissued) + (leftover === 0 ? 0 : 1);
    await sleep(1000);
    watch.stop();
    const alive = op.child.exitCode === null && op.child.signalCode === null;
    await op.stop();
    const relists410 = relists.length;
    const extraMails = sink.total - mailsBefore;
    log(
      `    after the thaw: relists after 410 Gone: ${relists.map((p) => p.replace(/^.*\//, '')).join(', ') || 'none'}; watches found silent by the watchdog: ${silent.map((p) => p.replace(/^.*\//, '')).join(', ') || 'none'}; every change handled ${Number.isNaN(caughtUpS) ? 'never' : `${caughtUpS.toFixed(1)} s`} after the thaw (as the API server reads; the harness's own watch saw it ${Number.isNaN(harnessS) ? 'never' : `${harnessS.toFixed(1)} s`} after); API server ready ${readyToThawS.toFixed(1)} s before the thaw; ${extraMails} mails after the freeze (expected ${2 * changes}: the new and the reissued)`,
    );
    checks.check('the operator stayed up', alive, alive ? '' : op.stderr().slice(-300));
    checks.check('the operator got 410 Gone and relisted', relists410 > 0, `${relists410} relists`);
    checks.check('invitations created while it was away: all Sent', state.sentNew === changes, `${state.sentNew} of ${changes}`);
    checks.check('reissues requested while it was away: all reissued and Sent', state.reissued === changes, `${state.reissued} of ${changes}`);
    checks.check(
      'deleted while it was away: records gone',
      deletedUids.size === changes && recordsBefore === changes && leftover === 0,
      `${recordsBefore} of ${changes} had a record before the freeze, ${leftover} left`,
    );
    checks.check('mails after the freeze: exactly one per new or reissued invitation', extraMails === 2 * changes, `${extraMails}`);
    // Issue 15's target: every watch back, and what was missed handled, within 10 s.
    checks.check(
      `caught up within ${CAUGHT_UP_TARGET_S} s of the thaw (watches back after the restart)`,
      caughtUpS <= CAUGHT_UP_TARGET_S,
      `${Number.isNaN(caughtUpS) ? 'never' : `${caughtUpS.toFixed(1)} s`}${silent.length ? `; silent until the watchdog: ${silent.join(', ')}` : ''}`,
    );
    log(`    operator log: ${logFile}`);
    return {
      n,
      relists410,
      relisted: relists,
      silentWatches: silent,
      caughtUpSeconds: caughtUpS,
      harnessSeenSeconds: harnessS,
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

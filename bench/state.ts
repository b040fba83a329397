// 3. Memory and 4. Restart, on one control plane that fills up with settled
// invitations.
//
// Settled (Sent) invitations are laid down by the plain client in three
// writes each (invitation, record Secret marked sent, status computed by the
// real decide()), because mailing 50,000 through the operator would take the
// whole time budget; the restart figure then also checks that the operator
// agrees they are settled. (The throughput benchmark restarts the operator on
// invitations it settled itself, too.)
//
// Memory: the operator process started with the memory probe preloaded reports
// process.memoryUsage() after two full GCs, once it has reconciled everything
// in its cache; RSS is VmRSS from /proc. Restart: SIGTERM, then a new operator
// process; time to ready (spawn → caches synced and workers running), time
// until every invitation was reconciled once, and the writes (API server's own
// request counters, and resourceVersions of every invitation and record) and
// mails during that.
import { parseConfig } from '../src/config/load.ts';
import { invitationBody, pool, seedSettled, TENANT } from './support/invitations.ts';
import { configYaml, type MemoryUsage, type Operator } from './support/operator.ts';
import { startPlane } from './support/plane.ts';
import { restartSettled, startAndSettle, type RestartResult } from './support/restart.ts';
import { startSink } from './support/sink.ts';

export interface StateOptions {
  /** Invitation counts to measure memory at, ascending (e.g. 0, 10000, 50000); empty: no memory figures. */
  memoryPoints: number[];
  /** Settled invitations to restart with (0: no restart figure). */
  restartN: number;
  seedConcurrency: number;
  operatorRoot?: string;
  log: (line: string) => void;
}

export interface MemoryPoint {
  invitations: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** Seconds from spawn until every invitation was reconciled once. */
  settleSeconds: number;
}

export interface StateResult {
  memory: MemoryPoint[];
  /** Bytes per invitation between the first and last memory point (heap, RSS). */
  perInvitation?: { heap: number; rss: number };
  restarts: RestartResult[];
}

const NS_COUNT = 10;
const namespaceOf = (i: number): string => `state-${i % NS_COUNT}`;

async function memoryOf(op: Operator, invitations: number, settleSeconds: number): Promise<MemoryPoint> {
  // Let the last reconciles' garbage and timers settle before the probe's GC.
  await new Promise((r) => setTimeout(r, 2000));
  const usage: MemoryUsage = await op.memory();
  return { invitations, rss: op.rss(), heapUsed: usage.heapUsed, heapTotal: usage.heapTotal, external: usage.external, settleSeconds };
}

export async function state(options: StateOptions): Promise<StateResult> {
  const { log } = options;
  const plane = await startPlane();
  const sink = await startSink();
  const config = parseConfig(configYaml({ kubeconfig: '', smtpPort: sink.port }), { source: 'bench', env: {} });
  const result: StateResult = { memory: [], restarts: [] };
  let seeded = 0;
  const seedTo = async (total: number): Promise<void> => {
    if (total <= seeded) return;
    const t0 = performance.now();
    const indexes = Array.from({ length: total - seeded }, (_, i) => seeded + i);
    await pool(indexes, options.seedConcurrency, (i) =>
      seedSettled({ core: plane.core, custom: plane.custom, config }, invitationBody(namespaceOf(i), `inv-${i}`)),
    );
    log(`  seeded ${total - seeded} settled invitations (3 writes each) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    seeded = total;
  };
  try {
    for (let i = 0; i < NS_COUNT; i++) await plane.namespace(namespaceOf(i), TENANT);
    const points = [...options.memoryPoints].sort((a, b) => a - b);
    const stops = [...new Set([...points, ...(options.restartN > 0 ? [options.restartN] : [])])].sort((a, b) => a - b);
    for (const count of stops) {
      await seedTo(count);
      const spawned = performance.now();
      const { op } = await startAndSettle(plane, sink.port, count, {
        memoryProbe: true,
        ...(options.operatorRoot ? { operatorRoot: options.operatorRoot } : {}),
      });
      const settleSeconds = (performance.now() - spawned) / 1000;
      if (points.includes(count)) {
        const point = await memoryOf(op, count, settleSeconds);
        result.memory.push(point);
        log(
          `  memory with ${count} invitations: RSS ${(point.rss / 2 ** 20).toFixed(1)} MiB, heap used ${(point.heapUsed / 2 ** 20).toFixed(1)} MiB (of ${(point.heapTotal / 2 ** 20).toFixed(1)}), external ${(point.external / 2 ** 20).toFixed(1)} MiB; all reconciled ${settleSeconds.toFixed(1)} s after spawn`,
        );
      }
      if (count === options.restartN)
        result.restarts.push(await restartSettled(plane, sink, op, count, { log, ...(options.operatorRoot ? { operatorRoot: options.operatorRoot } : {}) }));
      else await op.stop();
    }
    const first = result.memory[0];
    const last = result.memory.at(-1);
    if (first && last && last.invitations > first.invitations) {
      const n = last.invitations - first.invitations;
      result.perInvitation = { heap: (last.heapUsed - first.heapUsed) / n, rss: (last.rss - first.rss) / n };
      log(
        `  per invitation (${first.invitations} → ${last.invitations}): heap ${result.perInvitation.heap.toFixed(0)} B, RSS ${result.perInvitation.rss.toFixed(0)} B`,
      );
    }
    return result;
  } finally {
    await sink.close();
    await plane.stop();
  }
}

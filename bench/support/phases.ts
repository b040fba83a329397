// Watches the invitations of one namespace (with the project's own informer,
// which survives watch failures and API server restarts) and notes the moment
// each one is first seen in each phase.
import type { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { GROUP, INVITATION_PLURAL, VERSION, type InvitationPhase, type UserInvitation } from '../../src/api/types.ts';
import { Informer, type ListResult } from '../../src/runtime/informer.ts';

/** Wall-clock milliseconds with sub-millisecond resolution. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

interface Waiter {
  phase: string;
  names: Set<string>;
  resolve: () => void;
}

export interface PhaseWatch {
  informer: Informer<UserInvitation>;
  /** phase → name → wall time first seen in that phase. */
  seen: Map<string, Map<string, number>>;
  /** How many invitations have been seen in the phase. */
  count(phase: InvitationPhase): number;
  /** Resolves once every named invitation has been seen in the phase; rejects after timeoutMs. */
  waitFor(phase: InvitationPhase, names: Iterable<string>, timeoutMs: number): Promise<void>;
  stop(): void;
}

export async function watchPhases(kubeConfig: KubeConfig, custom: CustomObjectsApi, namespace: string): Promise<PhaseWatch> {
  const seen = new Map<string, Map<string, number>>();
  const waiters: Waiter[] = [];
  const informer = new Informer<UserInvitation>({
    kubeConfig,
    path: `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${INVITATION_PLURAL}`,
    list: async () =>
      (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: INVITATION_PLURAL })) as ListResult<UserInvitation>,
    resyncPeriodMs: 0,
    backoff: { initialMs: 200, maxMs: 2000 },
  });
  const note = (inv: UserInvitation): void => {
    const phase = inv.status?.phase;
    if (!phase) return;
    let names = seen.get(phase);
    if (!names) seen.set(phase, (names = new Map<string, number>()));
    if (names.has(inv.metadata.name)) return;
    names.set(inv.metadata.name, wallNow());
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (!w || w.phase !== phase || !w.names.delete(inv.metadata.name)) continue;
      if (w.names.size === 0) {
        waiters.splice(i, 1);
        w.resolve();
      }
    }
  };
  informer.on('add', note);
  informer.on('update', note);
  await informer.start();
  return {
    informer,
    seen,
    count: (phase) => seen.get(phase)?.size ?? 0,
    waitFor(phase, names, timeoutMs) {
      const already = seen.get(phase);
      const pending = new Set([...names].filter((n) => !already?.has(n)));
      if (pending.size === 0) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const waiter: Waiter = {
          phase,
          names: pending,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`${pending.size} invitation(s) not ${phase} after ${timeoutMs / 1000}s, e.g. ${[...pending].slice(0, 3).join(', ')}`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    stop: () => {
      informer.stop();
    },
  };
}

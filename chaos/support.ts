// Shared pieces of the fault tests: reading the invitation records as the
// operator left them (in Usher's namespace), etcd's revision and compaction (its v3 HTTP gateway, as
// etcdctl is not installed), and a check list that prints what it counted.
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Operator } from '../bench/support/operator.ts';
import {
  INVITATION_UID_LABEL,
  MANAGED_SELECTOR,
  recordFromSecret,
  RECORD_COMPONENT,
  COMPONENT_LABEL,
  type InvitationRecord,
} from '../src/invitation/record.ts';

/**
 * Usher's own namespace as the harness runs it (startOperator leaves
 * usher.namespace at its default): the records of every invitation live here,
 * not beside the invitations (docs/adr/0001).
 */
export const USHER_NAMESPACE = 'usher-system';

/**
 * The records Usher holds for the invitations of `invitationNamespace`, read
 * from its own namespace and matched by the invitation namespace the record
 * names, so that a check sees exactly the records of its own invitations.
 */
export async function records(core: CoreV1Api, invitationNamespace: string, usherNamespace = USHER_NAMESPACE): Promise<InvitationRecord[]> {
  const list = await core.listNamespacedSecret({
    namespace: usherNamespace,
    labelSelector: `${MANAGED_SELECTOR},${COMPONENT_LABEL}=${RECORD_COMPONENT}`,
  });
  return list.items.flatMap((s) => {
    const r = recordFromSecret(s);
    return r && s.metadata?.labels?.[INVITATION_UID_LABEL] && r.invitationNamespace === invitationNamespace ? [r] : [];
  });
}

async function etcdPost(etcdUrl: string, path: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${etcdUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as unknown;
}

/** etcd's current revision (the header of any range request). */
export async function etcdRevision(etcdUrl: string): Promise<number> {
  const reply = (await etcdPost(etcdUrl, '/v3/kv/range', { key: Buffer.from('\0').toString('base64'), limit: 1 })) as { header?: { revision?: string } };
  return Number(reply.header?.revision ?? NaN);
}

/** Compacts etcd up to `revision`: every older revision is gone, so watches from before it get 410 Gone. */
export async function compactEtcd(etcdUrl: string, revision: number): Promise<void> {
  await etcdPost(etcdUrl, '/v3/kv/compaction', { revision: String(revision), physical: true });
}

export interface Check {
  what: string;
  ok: boolean;
  detail: string;
}

export class Checks {
  readonly list: Check[] = [];
  readonly #log: (line: string) => void;

  constructor(log: (line: string) => void) {
    this.#log = log;
  }

  check(what: string, ok: boolean, detail = ''): void {
    this.list.push({ what, ok, detail });
    this.#log(`    ${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ` (${detail})` : ''}`);
  }

  get ok(): boolean {
    return this.list.every((c) => c.ok);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * An operator that is started again when it exits on its own, as the kubelet
 * would restart its container (after a second here, not kubelet's backoff).
 * Log counts are summed over every process it ran.
 */
export interface Supervised {
  readonly current: Operator;
  /** Exits the bench did not ask for, with the operator's last words. */
  readonly exits: string[];
  count(msg: string): number;
  stop(): Promise<void>;
}

export async function supervise(start: () => Promise<Operator>): Promise<Supervised> {
  const all: Operator[] = [];
  const exits: string[] = [];
  const state = { stopping: false };
  // Read through a call: TypeScript would keep the flag narrowed across the await below.
  const stopping = (): boolean => state.stopping;
  let current = await start();
  all.push(current);
  const watchExit = (op: Operator): void => {
    void op.exited.then(async ({ code, signal }) => {
      if (stopping()) return;
      const last = op.problems.at(-1);
      exits.push(`exit ${code ?? signal ?? '?'}${last ? `: ${last.msg}` : ''}`);
      await sleep(1000);
      if (stopping()) return;
      current = await start();
      all.push(current);
      watchExit(current);
    });
  };
  watchExit(current);
  await current.running;
  return {
    get current() {
      return current;
    },
    exits,
    count: (msg) => all.reduce((sum, op) => sum + (op.counts.get(msg) ?? 0), 0),
    async stop() {
      state.stopping = true;
      await current.stop();
    },
  };
}

// The invitation controller's own writes, remembered by resourceVersion until
// the watch brings them back. Every write (finalizer, record, status) comes back
// as a watch event, and each event would queue the invitation once more for a
// reconcile that finds nothing to do: about one extra reconcile per invitation,
// for nothing (issue 15). An event carrying exactly the version a reconcile
// wrote is the result of that reconcile's own decision, so it queues nothing.
// Any other version (someone else's write, or a later one) queues as before.
//
// Only the invitation controller's queue skips them: the RBAC controller, for
// one, must hear of the status.user the invitation controller writes.
import type { UserInvitation } from '../api/types.ts';
import type { InvitationRecord } from '../invitation/record.ts';
import type { ClusterWriter } from './ports.ts';

/** What a write is of: the invitation itself, or one of its records. */
export type WrittenKind = 'invitation' | 'record';

export class OwnWrites {
  readonly #ttlMs: number;
  readonly #clock: () => number;
  /**
   * kind/key@resourceVersion → when it was written, for every version written, not only
   * the last: a reconcile writes an invitation two or three times before the first event
   * is back. Insertion order is write order.
   */
  readonly #written = new Map<string, number>();

  /** @param ttlMs how long a write waits for its event (a relist may skip over it). */
  constructor(options: { ttlMs?: number; clock?: () => number } = {}) {
    this.#ttlMs = options.ttlMs ?? 60_000;
    this.#clock = options.clock ?? (() => performance.now());
  }

  wrote(kind: WrittenKind, key: string, resourceVersion: string | undefined): void {
    if (!resourceVersion) return;
    const now = this.#clock();
    this.#written.set(`${kind}/${key}@${resourceVersion}`, now);
    this.#sweep(now);
  }

  /** Whether a watch event shows exactly a version we wrote; true once per write. */
  isEcho(kind: WrittenKind, key: string, resourceVersion: string | undefined): boolean {
    if (resourceVersion === undefined) return false;
    return this.#written.delete(`${kind}/${key}@${resourceVersion}`);
  }

  get size(): number {
    return this.#written.size;
  }

  /** Drops writes whose events never came (oldest first: the map is in write order). */
  #sweep(now: number): void {
    for (const [id, at] of this.#written) {
      if (now - at <= this.#ttlMs) return;
      this.#written.delete(id);
    }
  }
}

/** The writer, noting in `own` the version each invitation and record write returned. */
export function notingOwnWrites(writer: ClusterWriter, own: OwnWrites): ClusterWriter {
  const invitationKey = (i: UserInvitation): string => `${i.metadata.namespace ?? ''}/${i.metadata.name}`;
  const recordKey = (r: InvitationRecord): string => `${r.namespace}/${r.name}`;
  return {
    createRecord: async (record) => {
      const created = await writer.createRecord(record);
      own.wrote('record', recordKey(created), created.resourceVersion);
      return created;
    },
    updateRecord: async (record) => {
      const updated = await writer.updateRecord(record);
      own.wrote('record', recordKey(updated), updated.resourceVersion);
      return updated;
    },
    writeStatus: async (invitation, status) => {
      const written = await writer.writeStatus(invitation, status);
      own.wrote('invitation', invitationKey(written), written.metadata.resourceVersion);
      return written;
    },
    updateInvitation: async (invitation) => {
      const written = await writer.updateInvitation(invitation);
      own.wrote('invitation', invitationKey(written), written.metadata.resourceVersion);
      return written;
    },
    deleteRecord: (name) => writer.deleteRecord(name),
    writeLinkSecret: (owner, link) => writer.writeLinkSecret(owner, link),
    readInvitation: (namespace, name) => writer.readInvitation(namespace, name),
    saveUser: (user) => writer.saveUser(user),
    deleteUser: (name, preconditions) => writer.deleteUser(name, preconditions),
    event: (invitation, type, reason, message) => {
      writer.event(invitation, type, reason, message);
    },
    userEvent: (user, type, reason, message) => {
      writer.userEvent(user, type, reason, message);
    },
  };
}

interface HeldEvent {
  kind: WrittenKind;
  key: string;
  resourceVersion: string | undefined;
}

/**
 * Decides which watch events queue an invitation. On loopback the watch event of a
 * write often arrives before the write's own response, that is before wrote() could
 * note its version; so an event for an invitation whose reconcile is under way is
 * held until that reconcile ends, and queues it only if it shows a version the
 * reconcile did not write. Events for invitations at rest are judged at once.
 */
export class EchoFilter {
  readonly #own: OwnWrites;
  readonly #enqueue: (invitationKey: string) => void;
  /** Invitation key → the events held while its reconcile runs. */
  readonly #inFlight = new Map<string, HeldEvent[]>();

  constructor(own: OwnWrites, enqueue: (invitationKey: string) => void) {
    this.#own = own;
    this.#enqueue = enqueue;
  }

  /** A reconcile of the invitation starts. */
  started(invitationKey: string): void {
    this.#inFlight.set(invitationKey, []);
  }

  /** It ended (done or failed: a failure is retried by the queue anyway). */
  finished(invitationKey: string): void {
    const held = this.#inFlight.get(invitationKey);
    this.#inFlight.delete(invitationKey);
    if (held?.some((e) => !this.#own.isEcho(e.kind, e.key, e.resourceVersion))) this.#enqueue(invitationKey);
  }

  /** A watch event of an invitation or record, for the invitation `invitationKey`. */
  event(kind: WrittenKind, key: string, resourceVersion: string | undefined, invitationKey: string): void {
    if (this.#own.isEcho(kind, key, resourceVersion)) return;
    const held = this.#inFlight.get(invitationKey);
    if (held) held.push({ kind, key, resourceVersion });
    else this.#enqueue(invitationKey);
  }
}

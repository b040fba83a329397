// In-memory fakes of the reconciler's ports (src/controller/ports.ts), for unit
// tests without a control plane. FakeCluster keeps the API server's optimistic
// concurrency: every object has a resourceVersion, a write carrying a stale one
// is a 409 Conflict (shaped as src/runtime/client.ts's apiErrorOf reads it), a
// create of an existing name is a 409 AlreadyExists. Its reads are its store
// (a cache that has caught up), each returning a copy. Every write is recorded
// in order, failed ones too, and any write can be made to fail or be preceded
// by someone else's edit. FakeMailer records the sends and answers with queued
// results (or throws, as a crashed call).
import type { User, UserInvitation, UserInvitationStatus } from '../../src/api/types.ts';
import type { ClusterReader, ClusterWriter, InvitationMailer } from '../../src/controller/ports.ts';
import { linkSecretNameFor } from '../../src/invitation/naming.ts';
import type { InvitationRecord } from '../../src/invitation/record.ts';

export type WriteOp =
  'createRecord' | 'updateRecord' | 'deleteRecord' | 'writeLinkSecret' | 'writeStatus' | 'updateInvitation' | 'saveUser' | 'deleteUser' | 'event' | 'userEvent';

export type ReadOp = 'invitation' | 'records' | 'namespaceTenant' | 'user' | 'linkSecret' | 'readInvitation';

export interface Write {
  op: WriteOp;
  /** `namespace/name` of what was written (a record's or User's name alone). */
  target: string;
  /** What was sent: the record, the status, the User, the link, or the Event. */
  body: unknown;
  /** The error's `code` when the write failed (409, 404, 500, ...). */
  failed?: number;
}

export interface RecordedEvent {
  target: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** An error shaped like the API server's Status, as @kubernetes/client-node throws it. */
export function apiError(code: number, reason: string, message = reason): Error {
  return Object.assign(new Error(message), { code, body: { kind: 'Status', code, reason, message } });
}

const key = (namespace: string | undefined, name: string): string => `${namespace ?? ''}/${name}`;

export class FakeCluster implements ClusterReader, ClusterWriter {
  /** What the API server holds, by `namespace/name` (records and Users by name). */
  readonly store = {
    invitations: new Map<string, UserInvitation>(),
    records: new Map<string, InvitationRecord>(),
    /** Namespace → its tenant label. */
    tenants: new Map<string, string | undefined>(),
    users: new Map<string, User>(),
    /** `namespace/<name>-invitation-link` → the link it holds. */
    linkSecrets: new Map<string, string>(),
  };
  /** How often each read was made (the ClusterReader's, and readInvitation's from the API server). */
  readonly reads: Record<ReadOp, number> = { invitation: 0, records: 0, namespaceTenant: 0, user: 0, linkSecret: 0, readInvitation: 0 };
  /** Every write, in order, failed ones included. */
  readonly writes: Write[] = [];
  /**
   * Called before each write is applied; may throw (the write fails with that
   * error and is recorded as failed) or change the store (someone else's write
   * landing first).
   */
  beforeWrite: (op: WriteOp, target: string) => void = () => undefined;
  private readonly failures: { op: WriteOp; error: Error }[] = [];
  private version = 0;

  // ---- setting up the world and changing it behind the reconciler's back

  /**
   * Stores an invitation as `kubectl apply` would: a new one gets a uid and
   * generation 1; applying again keeps the uid and status, and moves the
   * generation only when the spec changed. Always a new resourceVersion.
   */
  apply(invitation: UserInvitation): UserInvitation {
    const previous = this.store.invitations.get(key(invitation.metadata.namespace, invitation.metadata.name));
    const generation = previous ? (previous.metadata.generation ?? 1) + (JSON.stringify(previous.spec) === JSON.stringify(invitation.spec) ? 0 : 1) : 1;
    const stored: UserInvitation = structuredClone({
      ...invitation,
      metadata: {
        ...invitation.metadata,
        uid: previous?.metadata.uid ?? invitation.metadata.uid ?? `uid-${this.next()}`,
        generation,
        resourceVersion: this.next(),
        // Fields apply does not own stay as the server has them.
        ...(previous?.metadata.finalizers ? { finalizers: previous.metadata.finalizers } : {}),
        ...(previous?.metadata.deletionTimestamp ? { deletionTimestamp: previous.metadata.deletionTimestamp } : {}),
      },
      ...(previous?.status ? { status: previous.status } : {}),
    });
    this.store.invitations.set(key(stored.metadata.namespace, stored.metadata.name), stored);
    return structuredClone(stored);
  }

  /** Someone else edits the stored invitation (its resourceVersion moves on). */
  edit(namespace: string, name: string, change: (invitation: UserInvitation) => void): UserInvitation {
    const current = this.store.invitations.get(key(namespace, name));
    if (!current) throw new Error(`no invitation ${namespace}/${name}`);
    const edited = structuredClone(current);
    change(edited);
    edited.metadata.resourceVersion = this.next();
    this.store.invitations.set(key(namespace, name), edited);
    return structuredClone(edited);
  }

  /** Someone else changes a stored record (the acceptance page marking it used, say). */
  editRecord(name: string, change: (record: InvitationRecord) => void): void {
    const current = this.store.records.get(name);
    if (!current) throw new Error(`no record ${name}`);
    const edited = structuredClone(current);
    change(edited);
    this.store.records.set(name, { ...edited, resourceVersion: this.next() });
  }

  /**
   * Someone deletes the invitation, as the API server does it: with finalizers it
   * only gets a deletionTimestamp (and a new resourceVersion); without, it is gone.
   */
  deleteInvitation(namespace: string, name: string, at = '2026-11-25T12:00:00Z'): void {
    const current = this.store.invitations.get(key(namespace, name));
    if (!current) throw new Error(`no invitation ${namespace}/${name}`);
    if (!current.metadata.finalizers?.length) {
      this.store.invitations.delete(key(namespace, name));
      return;
    }
    this.edit(namespace, name, (i) => {
      i.metadata.deletionTimestamp ??= at;
    });
  }

  /** Someone else stores a User (the acceptance page, an admin), with a new resourceVersion. */
  putUser(user: User): User {
    const current = this.store.users.get(user.metadata.name);
    const stored = structuredClone({
      ...user,
      metadata: { ...user.metadata, uid: current?.metadata.uid ?? user.metadata.uid ?? `uid-${this.next()}`, resourceVersion: this.next() },
    });
    this.store.users.set(user.metadata.name, stored);
    return structuredClone(stored);
  }

  labelNamespace(namespace: string, tenant: string | undefined): void {
    this.store.tenants.set(namespace, tenant);
  }

  /** The next write of this kind fails with `error` (queued: call again for several). */
  failNext(op: WriteOp, error: Error): void {
    this.failures.push({ op, error });
  }

  /** The stored invitation, as the API server has it now. */
  stored(namespace: string, name: string): UserInvitation | undefined {
    return structuredClone(this.store.invitations.get(key(namespace, name)));
  }

  writesOf(op: WriteOp): Write[] {
    return this.writes.filter((w) => w.op === op);
  }

  get events(): RecordedEvent[] {
    return this.writesOf('event').map((w) => w.body as RecordedEvent);
  }

  // ---- ClusterReader

  invitation(namespace: string, name: string): UserInvitation | undefined {
    this.reads.invitation += 1;
    return this.stored(namespace, name);
  }

  records(invitationUid: string): InvitationRecord[] {
    this.reads.records += 1;
    return [...this.store.records.values()]
      .filter((r) => r.invitationUid === invitationUid)
      .sort((a, b) => a.issuance - b.issuance)
      .map((r) => structuredClone(r));
  }

  namespaceTenant(namespace: string): string | undefined {
    this.reads.namespaceTenant += 1;
    return this.store.tenants.get(namespace);
  }

  user(name: string): User | undefined {
    this.reads.user += 1;
    return structuredClone(this.store.users.get(name));
  }

  linkSecret(namespace: string, invitationName: string): string | undefined {
    this.reads.linkSecret += 1;
    return this.store.linkSecrets.get(key(namespace, linkSecretNameFor(invitationName)));
  }

  // ---- ClusterWriter

  createRecord(record: InvitationRecord): Promise<InvitationRecord> {
    return this.write('createRecord', record.name, record, () => {
      if (this.store.records.has(record.name)) throw apiError(409, 'AlreadyExists', `secrets "${record.name}" already exists`);
      return this.putRecord(record);
    });
  }

  updateRecord(record: InvitationRecord): Promise<InvitationRecord> {
    return this.write('updateRecord', record.name, record, () => {
      const current = this.store.records.get(record.name);
      if (!current) throw apiError(404, 'NotFound', `secrets "${record.name}" not found`);
      this.checkVersion(current.resourceVersion, record.resourceVersion, `secrets "${record.name}"`);
      return this.putRecord(record);
    });
  }

  deleteRecord(name: string): Promise<void> {
    // As the Kubernetes store: a record already gone is not an error.
    return this.write('deleteRecord', name, undefined, () => {
      this.store.records.delete(name);
    });
  }

  writeLinkSecret(owner: UserInvitation, link: string): Promise<void> {
    const target = key(owner.metadata.namespace, linkSecretNameFor(owner.metadata.name));
    return this.write('writeLinkSecret', target, link, () => {
      this.store.linkSecrets.set(target, link);
    });
  }

  writeStatus(invitation: UserInvitation, status: UserInvitationStatus): Promise<UserInvitation> {
    const target = key(invitation.metadata.namespace, invitation.metadata.name);
    return this.write('writeStatus', target, status, () => {
      const current = this.store.invitations.get(target);
      if (!current) throw apiError(404, 'NotFound', `userinvitations "${invitation.metadata.name}" not found`);
      this.checkVersion(current.metadata.resourceVersion, invitation.metadata.resourceVersion, `userinvitations "${invitation.metadata.name}"`);
      // The status subresource: only status changes (and the resourceVersion).
      const written: UserInvitation = { ...structuredClone(current), status: structuredClone(status) };
      written.metadata.resourceVersion = this.next();
      this.store.invitations.set(target, written);
      return structuredClone(written);
    });
  }

  readInvitation(namespace: string, name: string): Promise<UserInvitation | undefined> {
    this.reads.readInvitation += 1;
    return Promise.resolve(this.stored(namespace, name));
  }

  saveUser(user: User): Promise<User> {
    return this.write('saveUser', user.metadata.name, user, () => {
      const current = this.store.users.get(user.metadata.name);
      if (user.metadata.resourceVersion === undefined && current) throw apiError(409, 'AlreadyExists', `users "${user.metadata.name}" already exists`);
      if (user.metadata.resourceVersion !== undefined) {
        if (!current) throw apiError(404, 'NotFound', `users "${user.metadata.name}" not found`);
        this.checkVersion(current.metadata.resourceVersion, user.metadata.resourceVersion, `users "${user.metadata.name}"`);
      }
      const saved: User = structuredClone({
        ...user,
        metadata: { ...user.metadata, uid: current?.metadata.uid ?? `uid-${this.next()}`, resourceVersion: this.next() },
      });
      this.store.users.set(user.metadata.name, saved);
      return structuredClone(saved);
    });
  }

  deleteUser(name: string, preconditions: { uid: string; resourceVersion: string }): Promise<void> {
    return this.write('deleteUser', name, preconditions, () => {
      const current = this.store.users.get(name);
      if (!current) return;
      if (preconditions.uid && preconditions.uid !== current.metadata.uid) {
        throw apiError(409, 'Conflict', `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${current.metadata.uid ?? ''}`);
      }
      this.checkVersion(current.metadata.resourceVersion, preconditions.resourceVersion || undefined, `users "${name}"`);
      if (current.metadata.finalizers?.length) {
        this.store.users.set(name, { ...current, metadata: { ...current.metadata, deletionTimestamp: '2026-11-25T12:00:00Z', resourceVersion: this.next() } });
      } else {
        this.store.users.delete(name);
      }
    });
  }

  updateInvitation(invitation: UserInvitation): Promise<UserInvitation> {
    const target = key(invitation.metadata.namespace, invitation.metadata.name);
    return this.write('updateInvitation', target, invitation.metadata.finalizers ?? [], () => {
      const current = this.store.invitations.get(target);
      if (!current) throw apiError(404, 'NotFound', `userinvitations "${invitation.metadata.name}" not found`);
      this.checkVersion(current.metadata.resourceVersion, invitation.metadata.resourceVersion, `userinvitations "${invitation.metadata.name}"`);
      // The main resource: status stays as stored; a changed spec moves the generation.
      const written: UserInvitation = {
        apiVersion: invitation.apiVersion,
        kind: invitation.kind,
        metadata: structuredClone(invitation.metadata),
        spec: structuredClone(invitation.spec),
      };
      if (current.status) written.status = structuredClone(current.status);
      if (JSON.stringify(current.spec) !== JSON.stringify(invitation.spec)) written.metadata.generation = (current.metadata.generation ?? 1) + 1;
      written.metadata.resourceVersion = this.next();
      // The last finalizer off a deleted object: the API server removes it.
      if (written.metadata.deletionTimestamp && !written.metadata.finalizers?.length) {
        this.store.invitations.delete(target);
      } else {
        this.store.invitations.set(target, written);
      }
      return structuredClone(written);
    });
  }

  event(invitation: UserInvitation, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const target = key(invitation.metadata.namespace, invitation.metadata.name);
    // Best effort, as in the Kubernetes store: a failed Event is recorded, never thrown.
    void this.write('event', target, { target, type, reason, message } satisfies RecordedEvent, () => undefined).catch(() => undefined);
  }

  userEvent(user: User, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const target = user.metadata.name;
    void this.write('userEvent', target, { target, type, reason, message } satisfies RecordedEvent, () => undefined).catch(() => undefined);
  }

  get userEvents(): RecordedEvent[] {
    return this.writesOf('userEvent').map((w) => w.body as RecordedEvent);
  }

  // ---- plumbing

  private next(): string {
    this.version += 1;
    return String(this.version);
  }

  private putRecord(record: InvitationRecord): InvitationRecord {
    const stored = { ...structuredClone(record), resourceVersion: this.next() };
    this.store.records.set(record.name, stored);
    return structuredClone(stored);
  }

  /** A write without a resourceVersion is unconditional, as a PUT without one is. */
  private checkVersion(current: string | undefined, presented: string | undefined, what: string): void {
    if (presented !== undefined && presented !== current) {
      throw apiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${what}: the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
  }

  private write<T>(op: WriteOp, target: string, body: unknown, apply: () => T): Promise<T> {
    const entry: Write = { op, target, body: structuredClone(body) };
    this.writes.push(entry);
    try {
      const index = this.failures.findIndex((f) => f.op === op);
      const failure = index >= 0 ? this.failures.splice(index, 1)[0] : undefined;
      if (failure) throw failure.error;
      this.beforeWrite(op, target);
      return Promise.resolve(apply());
    } catch (err) {
      entry.failed = (err as { code?: number }).code ?? 0;
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

export type MailResult = Awaited<ReturnType<InvitationMailer['sendInvitation']>>;

export interface Send {
  invitation: string;
  to: string;
  link: string;
  expiresAt: string;
  /** What the mailer answered; undefined when the call threw. */
  result?: MailResult;
}

export class FakeMailer implements InvitationMailer {
  /** Every call, in order, whatever its outcome. */
  readonly sends: Send[] = [];
  /** Called at the start of each send: the moment the SMTP server would be talked to. */
  onSend: (send: Send) => void = () => undefined;
  private readonly answers: (MailResult | Error)[] = [];
  /** What lastOutage() answers: the mail server's last outage it recovered from. */
  outage: { from: Date; to: Date } | undefined;

  lastOutage(): { from: Date; to: Date } | undefined {
    return this.outage;
  }

  /** The next sends answer these, in order (an Error is thrown, as a crashed call); afterwards every send succeeds. */
  answer(...answers: (MailResult | Error)[]): this {
    this.answers.push(...answers);
    return this;
  }

  transient(response = '421 4.3.2 Service not available, try again later'): this {
    return this.answer({ ok: false, permanent: false, response });
  }

  permanent(response = '550 5.1.1 No such user'): this {
    return this.answer({ ok: false, permanent: true, response });
  }

  crash(message = 'the connection was reset mid-send'): this {
    return this.answer(new Error(message));
  }

  sendInvitation(invitation: UserInvitation, link: string, expiresAt: Date): Promise<MailResult> {
    const send: Send = {
      invitation: key(invitation.metadata.namespace, invitation.metadata.name),
      to: invitation.spec.email,
      link,
      expiresAt: expiresAt.toISOString(),
    };
    this.sends.push(send);
    this.onSend(send);
    const answer = this.answers.shift() ?? { ok: true };
    if (answer instanceof Error) return Promise.reject(answer);
    send.result = answer;
    return Promise.resolve(answer);
  }
}

// An in-memory AcceptStore with the API server's optimistic concurrency: every
// object has a resourceVersion, a replace must carry the current one (else a
// 409 Conflict), a create of an existing name is a 409 AlreadyExists. Hooks
// let a test stall one attempt at an exact point, so that the claim and
// fencing protocol of src/accept/acceptance.ts can be driven step by step.
import type { AcceptStore, CachedReads, StoredCredentials } from '../../src/accept/store.ts';
import type { User, UserInvitation } from '../../src/api/types.ts';
import type { InvitationRecord } from '../../src/invitation/record.ts';

export type Operation = 'replaceRecord' | 'createUser' | 'replaceUser' | 'deleteUser' | 'writeCredentials';

function status(code: number, reason: string): Error {
  return Object.assign(new Error(reason), { code, body: { kind: 'Status', code, reason, message: reason } });
}

export class MemoryAcceptStore implements AcceptStore {
  readonly records = new Map<string, InvitationRecord>();
  readonly invitations = new Map<string, UserInvitation>();
  readonly namespaces = new Map<string, Record<string, string>>();
  readonly users = new Map<string, User>();
  readonly credentialSecrets = new Map<string, StoredCredentials & { owner: string }>();
  /** Called before each write; may wait (stall) or throw. */
  beforeWrite: (op: Operation, name: string) => Promise<void> = () => Promise.resolve();
  private version = 0;

  readonly cached: CachedReads = {
    recordsBySelector: (selector) => [...this.records.values()].filter((r) => r.selector === selector).map((r) => structuredClone(r)),
    invitation: (namespace, name) => structuredClone(this.invitations.get(`${namespace}/${name}`)),
    namespaceLabels: (name) => structuredClone(this.namespaces.get(name)),
    user: (name) => structuredClone(this.users.get(name)),
  };

  private next(): string {
    this.version += 1;
    return String(this.version);
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): void {
    // Nothing to stop.
  }

  hasSynced(): boolean {
    return true;
  }

  putRecord(record: InvitationRecord): InvitationRecord {
    const stored = { ...structuredClone(record), resourceVersion: this.next() };
    this.records.set(record.name, stored);
    return stored;
  }

  putUser(user: User): User {
    const stored: User = {
      ...structuredClone(user),
      metadata: { ...user.metadata, uid: user.metadata.uid ?? `uid-${this.next()}`, resourceVersion: this.next() },
    };
    this.users.set(user.metadata.name, stored);
    return stored;
  }

  record(name: string): Promise<InvitationRecord | undefined> {
    return Promise.resolve(structuredClone(this.records.get(name)));
  }

  invitation(namespace: string, name: string): Promise<UserInvitation | undefined> {
    return Promise.resolve(this.cached.invitation(namespace, name));
  }

  namespaceLabels(name: string): Promise<Record<string, string> | undefined> {
    return Promise.resolve(this.cached.namespaceLabels(name));
  }

  user(name: string): Promise<User | undefined> {
    return Promise.resolve(this.cached.user(name));
  }

  credentials(userName: string): Promise<StoredCredentials | undefined> {
    const stored = this.credentialSecrets.get(userName);
    if (!stored) return Promise.resolve(undefined);
    return Promise.resolve({
      passwordHash: stored.passwordHash,
      ...(stored.claim ? { claim: stored.claim } : {}),
      ...(stored.resourceVersion ? { resourceVersion: stored.resourceVersion } : {}),
    });
  }

  async replaceRecord(record: InvitationRecord): Promise<InvitationRecord> {
    await this.beforeWrite('replaceRecord', record.name);
    const current = this.records.get(record.name);
    if (!current) throw status(404, 'NotFound');
    if (current.resourceVersion !== record.resourceVersion) throw status(409, 'Conflict');
    return structuredClone(this.putRecord(record));
  }

  async createUser(user: User): Promise<User> {
    await this.beforeWrite('createUser', user.metadata.name);
    if (this.users.has(user.metadata.name)) throw status(409, 'AlreadyExists');
    return structuredClone(this.putUser({ ...user, metadata: { ...user.metadata, uid: `uid-${this.next()}` } }));
  }

  async replaceUser(user: User): Promise<User> {
    await this.beforeWrite('replaceUser', user.metadata.name);
    const current = this.users.get(user.metadata.name);
    if (!current) throw status(404, 'NotFound');
    if (current.metadata.resourceVersion !== user.metadata.resourceVersion) throw status(409, 'Conflict');
    return structuredClone(this.putUser({ ...user, metadata: { ...user.metadata, uid: current.metadata.uid ?? '' } }));
  }

  async deleteUser(name: string, uid: string): Promise<void> {
    await this.beforeWrite('deleteUser', name);
    if (this.users.get(name)?.metadata.uid !== uid) return;
    this.users.delete(name);
    // Garbage collection: the credentials are owned by the User.
    if (this.credentialSecrets.get(name)?.owner === uid) this.credentialSecrets.delete(name);
  }

  async writeCredentials(user: User, passwordHash: string, claim: string, resourceVersion: string | undefined): Promise<void> {
    await this.beforeWrite('writeCredentials', user.metadata.name);
    const current = this.credentialSecrets.get(user.metadata.name);
    if (resourceVersion === undefined && current) throw status(409, 'AlreadyExists');
    if (resourceVersion !== undefined && current?.resourceVersion !== resourceVersion) throw status(409, 'Conflict');
    this.credentialSecrets.set(user.metadata.name, { passwordHash, claim, resourceVersion: this.next(), owner: user.metadata.uid ?? '' });
  }
}

// In-memory fakes of the identity controller's ports: an identity provider
// that keeps accounts (with the password hash they were given) and can be made
// to fail, and a User store with the API server's optimistic concurrency and
// finalizer semantics (a deleted User with no finalizer left is gone).
import type { User, UserStatus } from '../../src/api/types.ts';
import type { UserStore } from '../../src/controller/ports.ts';
import { IdentityProviderError, type Health, type IdentityAccount, type IdentityProvider, type NewAccount } from '../../src/identity/provider.ts';
import type { InvitationRecord } from '../../src/invitation/record.ts';
import { isManagedGroup } from '../../src/invitation/identity.ts';
import { apiError, type RecordedEvent } from './fakes.ts';

export interface StoredAccount extends IdentityAccount {
  /** Every group, Usher's and others'. */
  allGroups: string[];
  passwordHash?: string;
  firstName?: string;
  lastName?: string;
  emailVerified: boolean;
}

export class FakeIdentityProvider implements IdentityProvider {
  readonly name = 'keycloak';
  readonly accounts = new Map<string, StoredAccount>();
  readonly calls: string[] = [];
  /** Errors thrown by the next calls, in order. */
  readonly failures: Error[] = [];
  private next = 0;

  /** An account someone else made (no Usher marker). */
  addForeign(email: string, groups: string[] = [], passwordHash = 'their-own-hash'): StoredAccount {
    const account: StoredAccount = {
      id: `kc-${++this.next}`,
      username: email,
      email,
      enabled: true,
      groups: [],
      roles: [],
      allGroups: groups,
      passwordHash,
      emailVerified: true,
    };
    this.accounts.set(account.id, account);
    return account;
  }

  private call(what: string): void {
    this.calls.push(what);
    const failure = this.failures.shift();
    if (failure) throw failure;
  }

  private view(a: StoredAccount): IdentityAccount {
    return structuredClone({
      id: a.id,
      username: a.username,
      email: a.email,
      enabled: a.enabled,
      emailVerified: a.emailVerified,
      ...(a.usherUserUid !== undefined ? { usherUserUid: a.usherUserUid } : {}),
      groups: a.allGroups.filter(isManagedGroup),
      roles: a.roles,
    });
  }

  check(): Promise<Health> {
    return Promise.resolve({ ok: true });
  }

  findByEmail(email: string): Promise<IdentityAccount | undefined> {
    this.call('findByEmail');
    const found = [...this.accounts.values()].find((a) => a.email.toLowerCase() === email.toLowerCase());
    return Promise.resolve(found && this.view(found));
  }

  get(id: string): Promise<IdentityAccount | undefined> {
    this.call('get');
    const found = this.accounts.get(id);
    return Promise.resolve(found && this.view(found));
  }

  create(account: NewAccount): Promise<IdentityAccount> {
    this.call('create');
    if ([...this.accounts.values()].some((a) => a.email === account.email))
      throw new IdentityProviderError('keycloak: an account with this username exists', false);
    const stored: StoredAccount = {
      id: `kc-${++this.next}`,
      username: account.email,
      email: account.email,
      enabled: true,
      usherUserUid: account.usherUserUid,
      groups: [],
      roles: [...account.roles],
      allGroups: [...account.groups],
      emailVerified: account.emailVerified,
      ...(account.passwordHash ? { passwordHash: account.passwordHash } : {}),
      ...(account.firstName ? { firstName: account.firstName } : {}),
      ...(account.lastName ? { lastName: account.lastName } : {}),
    };
    this.accounts.set(stored.id, stored);
    return Promise.resolve(this.view(stored));
  }

  setAccess(id: string, groups: string[], roles: string[]): Promise<void> {
    this.call('setAccess');
    const account = this.accounts.get(id);
    if (!account) throw new IdentityProviderError('keycloak: no such account', false);
    account.allGroups = [...account.allGroups.filter((g) => !isManagedGroup(g)), ...groups];
    account.roles = [...roles];
    return Promise.resolve();
  }

  setEnabled(id: string, enabled: boolean): Promise<void> {
    this.call(enabled ? 'enable' : 'disable');
    const account = this.accounts.get(id);
    if (account) account.enabled = enabled;
    return Promise.resolve();
  }

  remove(id: string): Promise<void> {
    this.call('remove');
    this.accounts.delete(id);
    return Promise.resolve();
  }
}

export class FakeUserStore implements UserStore {
  readonly users = new Map<string, User>();
  readonly records = new Map<string, InvitationRecord>();
  readonly hashes = new Map<string, string>();
  readonly events: RecordedEvent[] = [];
  readonly writes: string[] = [];
  private version = 0;

  put(user: User): User {
    const stored = structuredClone({
      ...user,
      metadata: { uid: `uid-${user.metadata.name}`, generation: 1, ...user.metadata, resourceVersion: String(++this.version) },
    });
    this.users.set(user.metadata.name, stored);
    return stored;
  }

  /** `kubectl delete`: with finalizers the User stays, marked; without, it is gone. */
  delete(name: string): void {
    const user = this.users.get(name);
    if (!user) return;
    if ((user.metadata.finalizers ?? []).length === 0) this.users.delete(name);
    else this.put({ ...user, metadata: { ...user.metadata, deletionTimestamp: '2026-12-01T12:00:00Z' } });
  }

  user(name: string): User | undefined {
    const user = this.users.get(name);
    return user && structuredClone(user);
  }

  record(name: string): InvitationRecord | undefined {
    return this.records.get(name);
  }

  passwordHash(userName: string): Promise<string | undefined> {
    return Promise.resolve(this.hashes.get(userName));
  }

  private current(user: User): User {
    const stored = this.users.get(user.metadata.name);
    if (!stored) throw apiError(404, 'NotFound');
    if (stored.metadata.resourceVersion !== user.metadata.resourceVersion) throw apiError(409, 'Conflict');
    return stored;
  }

  saveUser(user: User): Promise<User> {
    this.writes.push('saveUser');
    const stored = this.current(user);
    const next = { ...user, status: stored.status };
    if (next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
      this.users.delete(user.metadata.name);
      return Promise.resolve(next);
    }
    return Promise.resolve(this.put(next));
  }

  writeUserStatus(user: User, status: UserStatus): Promise<User> {
    this.writes.push('writeUserStatus');
    const stored = this.current(user);
    return Promise.resolve(this.put({ ...stored, status }));
  }

  userEvent(user: User, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.events.push({ target: user.metadata.name, type, reason, message });
  }
}

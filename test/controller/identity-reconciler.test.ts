import { describe, expect, it } from 'vitest';
import type { User } from '../../src/api/types.ts';
import { IdentityReconciler } from '../../src/controller/identity-reconciler.ts';
import { IdentityProviderError } from '../../src/identity/provider.ts';
import { IDENTITY_FINALIZER } from '../../src/invitation/identity.ts';
import type { InvitationRecord } from '../../src/invitation/record.ts';
import { ACCEPTING_CLAIM_ANNOTATION, ACCEPTING_RECORD_ANNOTATION } from '../../src/invitation/users.ts';
import { silentLogger } from '../../src/runtime/log.ts';
import { FakeIdentityProvider, FakeUserStore } from './fake-identity.ts';

const HASH = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g';

function world(onUserDelete: 'Disable' | 'Delete' = 'Disable') {
  const store = new FakeUserStore();
  const provider = new FakeIdentityProvider();
  const reconciler = new IdentityReconciler({
    store,
    provider,
    config: { provider: 'keycloak', keycloak: { url: 'http://kc', realm: 'r', clientId: 'usher', clientSecret: 's' }, onUserDelete },
    log: silentLogger as never,
    now: () => new Date('2026-12-01T10:00:00Z'),
  });
  return { store, provider, reconciler };
}

function jane(over: Partial<User['spec']> = {}, annotations?: Record<string, string>): User {
  return {
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'User',
    metadata: { name: 'jane', ...(annotations ? { annotations } : {}) },
    spec: {
      email: 'jane@example.com',
      firstName: 'Jane',
      authentication: 'Password',
      emailVerified: true,
      memberships: [{ scope: 'Tenant', tenant: 'acme', groups: ['developers'], roles: [{ name: 'developer', namespaces: ['acme.dev'] }] }],
      ...over,
    },
  };
}

const provisioned = (store: FakeUserStore) => store.users.get('jane')?.status?.conditions?.find((c) => c.type === 'Provisioned');

describe('IdentityReconciler', () => {
  it('creates the account with the imported hash and the User\u2019s access, then has nothing more to do', async () => {
    const { store, provider, reconciler } = world();
    store.put(jane());
    store.hashes.set('jane', HASH);
    await reconciler.reconcile('jane');
    const [account] = [...provider.accounts.values()];
    expect(account).toMatchObject({
      email: 'jane@example.com',
      usherUserUid: 'uid-jane',
      passwordHash: HASH,
      emailVerified: true,
      firstName: 'Jane',
      allGroups: ['/tenants/acme', '/tenants/acme/developers'],
      roles: ['acme/developer@acme.dev'],
    });
    const user = store.users.get('jane');
    expect(user?.metadata.finalizers).toEqual([IDENTITY_FINALIZER]);
    expect(user?.status?.identity).toEqual({ provider: 'keycloak', id: account?.id, username: 'jane@example.com', managed: true });
    expect(provisioned(store)).toMatchObject({ status: 'True', reason: 'Created', observedGeneration: 1 });
    expect(store.events.map((e) => e.reason)).toEqual(['AccountCreated', 'Provisioned']);

    // Level-triggered: the same world again asks for nothing (one lookup, no writes).
    provider.calls.length = 0;
    store.writes.length = 0;
    await reconciler.reconcile('jane');
    expect(provider.calls).toEqual(['findByEmail']);
    expect(store.writes).toEqual([]);
  });

  it('waits while the acceptance is still writing the User, and creates once its record is used', async () => {
    const { store, provider, reconciler } = world();
    store.put(jane({}, { [ACCEPTING_RECORD_ANNOTATION]: 'rec-1', [ACCEPTING_CLAIM_ANNOTATION]: 'c' }));
    store.hashes.set('jane', HASH);
    store.records.set('rec-1', { name: 'rec-1' } as InvitationRecord);
    expect(await reconciler.reconcile('jane')).toEqual({ requeueAfterMs: 2000 });
    expect(provider.calls).not.toContain('create');
    expect(provisioned(store)).toMatchObject({ status: 'False', reason: 'AcceptanceInProgress' });

    store.records.set('rec-1', { name: 'rec-1', usedAt: '2026-12-01T10:00:00Z', user: 'jane' } as InvitationRecord);
    await reconciler.reconcile('jane');
    expect(provider.accounts.size).toBe(1);
    expect(provisioned(store)?.status).toBe('True');
  });

  it('waits for the password hash of a Password User', async () => {
    const { store, provider, reconciler } = world();
    store.put(jane());
    expect(await reconciler.reconcile('jane')).toEqual({ requeueAfterMs: 2000 });
    expect(provider.accounts.size).toBe(0);
    expect(provisioned(store)?.reason).toBe('WaitingForPassword');
  });

  it('never touches an account someone else made for the address (Password User)', async () => {
    const { store, provider, reconciler } = world();
    const theirs = provider.addForeign('jane@example.com', ['/staff']);
    const before = structuredClone(theirs);
    store.put(jane());
    store.hashes.set('jane', HASH);
    await reconciler.reconcile('jane');
    expect(provider.accounts.get(theirs.id)).toEqual(before);
    expect(provider.calls).toEqual(['findByEmail']);
    expect(provisioned(store)).toMatchObject({ status: 'False', reason: 'AccountExists' });
    expect(store.events.at(-1)).toMatchObject({ type: 'Warning', reason: 'AccountExists' });
    // Not this User's account: not recorded (so never released for it, nor given its RoleBindings).
    expect(store.users.get('jane')?.status?.identity).toBeUndefined();
  });

  it('joins the existing account of an External User (who signed in to it): groups only, its own kept', async () => {
    const { store, provider, reconciler } = world();
    const theirs = provider.addForeign('jane@example.com', ['/staff']);
    store.put(jane({ authentication: 'External' }));
    await reconciler.reconcile('jane');
    expect(provider.accounts.get(theirs.id)).toMatchObject({
      allGroups: ['/staff', '/tenants/acme', '/tenants/acme/developers'],
      passwordHash: 'their-own-hash',
    });
    expect(provider.accounts.get(theirs.id)?.usherUserUid).toBeUndefined();
    expect(provisioned(store)).toMatchObject({ status: 'True', reason: 'Joined' });
  });

  it('follows a membership removed from the User', async () => {
    const { store, provider, reconciler } = world();
    store.put(jane());
    store.hashes.set('jane', HASH);
    await reconciler.reconcile('jane');
    const user = store.users.get('jane') as User;
    store.put({ ...user, spec: { ...user.spec, memberships: [{ scope: 'Instance' }] } });
    await reconciler.reconcile('jane');
    expect([...provider.accounts.values()][0]).toMatchObject({ allGroups: ['/instance'], roles: [] });
    expect(store.events.map((e) => e.reason)).toContain('AccessUpdated');
  });

  it.each([
    ['Disable', { enabled: false, allGroups: [], roles: [] }, 'AccountDisabled'],
    ['Delete', undefined, 'AccountDeleted'],
  ] as const)('on deletion (%s) takes the access back, then lets the User go', async (mode, expected, event) => {
    const { store, provider, reconciler } = world(mode);
    store.put(jane());
    store.hashes.set('jane', HASH);
    await reconciler.reconcile('jane');
    const id = [...provider.accounts.keys()][0] ?? '';
    store.delete('jane');
    expect(store.users.has('jane')).toBe(true);
    await reconciler.reconcile('jane');
    expect(store.users.has('jane')).toBe(false);
    if (expected) expect(provider.accounts.get(id)).toMatchObject(expected);
    else expect(provider.accounts.has(id)).toBe(false);
    expect(store.events.map((e) => e.reason)).toContain(event);
  });

  it('a deleted User whose account someone else made only loses Usher\u2019s groups', async () => {
    const { store, provider, reconciler } = world('Delete');
    const theirs = provider.addForeign('jane@example.com', ['/staff']);
    store.put(jane({ authentication: 'External' }));
    await reconciler.reconcile('jane');
    store.delete('jane');
    await reconciler.reconcile('jane');
    expect(provider.accounts.get(theirs.id)).toMatchObject({ enabled: true, allGroups: ['/staff'], roles: [] });
    expect(store.users.has('jane')).toBe(false);
  });

  it('reports an unreachable provider and retries (throws for backoff) until it answers', async () => {
    const { store, provider, reconciler } = world();
    store.put(jane());
    store.hashes.set('jane', HASH);
    provider.failures.push(new IdentityProviderError('keycloak at http://kc is unreachable: ECONNREFUSED', true));
    await expect(reconciler.reconcile('jane')).rejects.toThrow('unreachable');
    expect(provisioned(store)).toMatchObject({ status: 'False', reason: 'ProviderUnavailable' });
    expect(provisioned(store)?.message).toContain('ECONNREFUSED');
    expect(store.users.get('jane')?.status?.conditions?.find((c) => c.type === 'Reconciling')?.status).toBe('True');
    await reconciler.reconcile('jane');
    expect(provisioned(store)?.status).toBe('True');
    expect(provider.accounts.size).toBe(1);
  });

  it('a crash after the account was made: the next reconcile finds it by its marker and does not make another', async () => {
    const { store, provider, reconciler } = world();
    store.put(jane());
    store.hashes.set('jane', HASH);
    // create succeeds, then the status write "crashes".
    const write = store.writeUserStatus.bind(store);
    store.writeUserStatus = () => Promise.reject(new Error('connection reset'));
    await expect(reconciler.reconcile('jane')).rejects.toThrow('connection reset');
    store.writeUserStatus = write;
    await reconciler.reconcile('jane');
    expect(provider.calls.filter((c) => c === 'create')).toHaveLength(1);
    expect(provisioned(store)?.status).toBe('True');
  });

  it('a refusal (misconfiguration) is reported and looked at again in a minute', async () => {
    const { store, provider, reconciler } = world();
    store.put(jane());
    store.hashes.set('jane', HASH);
    provider.failures.push(new IdentityProviderError('keycloak refused client usher (403): it needs the manage-users role', false));
    expect(await reconciler.reconcile('jane')).toEqual({ requeueAfterMs: 60_000 });
    expect(provisioned(store)).toMatchObject({ status: 'False', reason: 'ProviderRefused' });
    expect(store.users.get('jane')?.status?.conditions?.find((c) => c.type === 'Stalled')?.status).toBe('True');
  });
});

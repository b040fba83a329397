// The acceptance protocol (src/accept/acceptance.ts) against an in-memory
// store with the API server's optimistic concurrency: the crash and race
// paths that an integration test can reach only by luck, driven step by step.
import { describe, expect, it } from 'vitest';
import { ACCEPTING_CLAIM_ANNOTATION, ACCEPTING_RECORD_ANNOTATION, acceptInvitation, CLAIM_TTL_MS, type AcceptAs } from '../../src/accept/acceptance.ts';
import type { Found } from '../../src/accept/lookup.ts';
import type { User, UserInvitation } from '../../src/api/types.ts';
import type { InvitationRecord } from '../../src/invitation/record.ts';
import { MemoryAcceptStore } from './memory-store.ts';
import { userNameFor } from '../../src/invitation/naming.ts';

const EMAIL = 'jane.doe@example.com';

function world(): { store: MemoryAcceptStore; found: Found; clock: { now: Date } } {
  const store = new MemoryAcceptStore();
  const invitation: UserInvitation = {
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'UserInvitation',
    metadata: { name: 'jane', namespace: 'acme', uid: 'inv-1', generation: 1 },
    spec: { email: EMAIL, tenant: 'acme', groups: ['devs'] },
    status: { issuance: 1 },
  };
  store.invitations.set('acme/jane', invitation);
  store.namespaces.set('acme', { 'usher.dev/tenant': 'acme' });
  const record: InvitationRecord = {
    name: 'usher-invitation-inv-1-1',
    namespace: 'usher-system',
    invitationNamespace: 'acme',
    invitationName: 'jane',
    invitationUid: 'inv-1',
    selector: 'a'.repeat(32),
    verifierHash: 'h',
    email: EMAIL,
    issuance: 1,
    issuedAt: '2026-12-01T00:00:00Z',
    expiresAt: '2026-12-08T00:00:00Z',
  };
  const stored = store.putRecord(record);
  return { store, found: { token: 't', record: stored, invitation }, clock: { now: new Date('2026-12-01T10:00:00Z') } };
}

const asNew = (firstName: string, passwordHash: string): AcceptAs => ({ kind: 'newPassword', firstName, passwordHash });

/** A promise and the function that resolves it: a stall that the test lifts. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

describe('acceptInvitation', () => {
  it('creates a new account, writes its hash stamped with the claim, marks the record used, then drops the provisional marks', async () => {
    const { store, found, clock } = world();
    const outcome = await acceptInvitation({ store, credentialsNamespace: 'usher-system', now: () => clock.now }, found, asNew('Jane', 'hash-1'));
    expect(outcome.kind).toBe('accepted');
    const user = store.users.get(userNameFor(EMAIL));
    expect(user?.spec).toMatchObject({ email: EMAIL, firstName: 'Jane', authentication: 'Password' });
    expect(user?.metadata.annotations ?? {}).toEqual({});
    expect(store.credentialSecrets.get(userNameFor(EMAIL))?.passwordHash).toBe('hash-1');
    expect(store.records.get(found.record.name)?.usedAt).toBe('2026-12-01T10:00:00Z');
  });

  it('never changes an account that exists: a new-account attempt stops with existingAccount and writes nothing', async () => {
    const { store, found, clock } = world();
    const existing = store.putUser({
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'User',
      metadata: { name: userNameFor(EMAIL) },
      spec: { email: EMAIL, firstName: 'Owner', authentication: 'Password', memberships: [] },
    });
    store.credentialSecrets.set(existing.metadata.name, { passwordHash: 'owner-hash', resourceVersion: '1', owner: existing.metadata.uid ?? '' });
    const outcome = await acceptInvitation({ store, credentialsNamespace: 'usher-system', now: () => clock.now }, found, asNew('Mallory', 'mallory-hash'));
    expect(outcome.kind).toBe('existingAccount');
    expect(store.users.get(existing.metadata.name)).toEqual(existing);
    expect(store.credentialSecrets.get(existing.metadata.name)?.passwordHash).toBe('owner-hash');
    // The claim was given back: the link is still open.
    expect(store.records.get(found.record.name)).not.toHaveProperty('acceptanceClaim');
    expect(store.records.get(found.record.name)?.usedAt).toBeUndefined();
  });

  it('adds only the membership to an existing account the person proved is theirs', async () => {
    const { store, found, clock } = world();
    const existing = store.putUser({
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'User',
      metadata: { name: userNameFor(EMAIL) },
      spec: { email: EMAIL, firstName: 'Owner', authentication: 'External', memberships: [] },
    });
    const outcome = await acceptInvitation({ store, credentialsNamespace: 'usher-system', now: () => clock.now }, found, {
      kind: 'existing',
      userName: existing.metadata.name,
    });
    expect(outcome.kind).toBe('accepted');
    const after = store.users.get(existing.metadata.name);
    expect(after?.spec).toEqual({ ...existing.spec, memberships: [expect.objectContaining({ tenant: 'acme', groups: ['devs'] })] });
    expect(store.credentialSecrets.size).toBe(0);
  });

  it('a stalled attempt whose claim lapsed cannot overwrite the winner’s password hash (fenced by the claim)', async () => {
    const { store, found, clock } = world();
    const deps = { store, credentialsNamespace: 'usher-system', now: () => clock.now };
    // A stalls just before writing its hash: it has claimed the record and created the provisional User.
    const stall = gate();
    const stalled = gate();
    store.beforeWrite = async (op) => {
      if (op === 'writeCredentials' && store.credentialSecrets.size === 0 && !winnerStarted) {
        stalled.open();
        await stall.wait;
      }
    };
    let winnerStarted = false;
    const a = acceptInvitation(deps, found, asNew('Alice', 'hash-A'));
    await stalled.wait;
    // A's claim lapses; B (the same link, another tab or person) takes over and finishes.
    clock.now = new Date(clock.now.getTime() + CLAIM_TTL_MS + 1000);
    winnerStarted = true;
    const fresh = { ...found, record: (await store.record(found.record.name)) ?? found.record };
    const b = await acceptInvitation(deps, fresh, asNew('Bob', 'hash-B'));
    expect(b.kind).toBe('accepted');
    // A resumes: its write must not land, and it must not mark the record.
    stall.open();
    const outcomeA = await a;
    expect(outcomeA.kind).toBe('busy');
    const user = store.users.get(userNameFor(EMAIL));
    expect(user?.spec.firstName).toBe('Bob');
    expect(store.credentialSecrets.get(userNameFor(EMAIL))?.passwordHash).toBe('hash-B');
    expect(store.records.get(found.record.name)?.usedAt).toBeDefined();
  });

  it('the same, when the stalled attempt had already written its hash: the winner replaces it, the loser writes nothing more', async () => {
    const { store, found, clock } = world();
    const deps = { store, credentialsNamespace: 'usher-system', now: () => clock.now };
    const stall = gate();
    const stalled = gate();
    let paused = false;
    store.beforeWrite = async (op) => {
      // A stalls before marking the record used, its hash already written.
      if (op === 'replaceRecord' && store.credentialSecrets.get(userNameFor(EMAIL))?.passwordHash === 'hash-A' && !paused) {
        paused = true;
        stalled.open();
        await stall.wait;
      }
    };
    const a = acceptInvitation(deps, found, asNew('Alice', 'hash-A'));
    await stalled.wait;
    clock.now = new Date(clock.now.getTime() + CLAIM_TTL_MS + 1000);
    const fresh = { ...found, record: (await store.record(found.record.name)) ?? found.record };
    expect((await acceptInvitation(deps, fresh, asNew('Bob', 'hash-B'))).kind).toBe('accepted');
    stall.open();
    expect((await a).kind).toMatch(/busy|alreadyAccepted/);
    expect(store.credentialSecrets.get(userNameFor(EMAIL))?.passwordHash).toBe('hash-B');
    expect(store.users.get(userNameFor(EMAIL))?.spec.firstName).toBe('Bob');
  });

  it('a retry after a crash takes over the provisional User of its own record, but never a provisional User of another record', async () => {
    const { store, found, clock } = world();
    const deps = { store, credentialsNamespace: 'usher-system', now: () => clock.now };
    const provisional = (recordName: string): User =>
      store.putUser({
        apiVersion: 'usher.dev/v1alpha1',
        kind: 'User',
        metadata: { name: userNameFor(EMAIL), annotations: { [ACCEPTING_RECORD_ANNOTATION]: recordName, [ACCEPTING_CLAIM_ANNOTATION]: 'crashed' } },
        spec: { email: EMAIL, firstName: 'Crashed', authentication: 'Password', memberships: [] },
      });
    provisional('usher-invitation-other-1');
    expect((await acceptInvitation(deps, found, asNew('Jane', 'hash-J'))).kind).toBe('existingAccount');

    provisional(found.record.name);
    const fresh = { ...found, record: (await store.record(found.record.name)) ?? found.record };
    expect((await acceptInvitation(deps, fresh, asNew('Jane', 'hash-J'))).kind).toBe('accepted');
    expect(store.users.get(userNameFor(EMAIL))?.spec.firstName).toBe('Jane');
    expect(store.credentialSecrets.get(userNameFor(EMAIL))?.passwordHash).toBe('hash-J');
  });

  it('a revocation while the writes were under way removes the User it created (and so its hash)', async () => {
    const { store, found, clock } = world();
    store.beforeWrite = (op) => {
      // The record is deleted (the invitation revoked) right before it would be marked used.
      if (op === 'replaceRecord' && store.credentialSecrets.size > 0) store.records.delete(found.record.name);
      return Promise.resolve();
    };
    const outcome = await acceptInvitation({ store, credentialsNamespace: 'usher-system', now: () => clock.now }, found, asNew('Jane', 'hash-J'));
    expect(outcome.kind).toBe('gone');
    expect(store.users.size).toBe(0);
    expect(store.credentialSecrets.size).toBe(0);
  });
});

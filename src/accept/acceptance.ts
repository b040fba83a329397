// Accepting an invitation: the writes, in an order that survives crashes and
// races.
//
//   1. Claim the record: a PUT carrying the resourceVersion it was read with
//      adds a short-lived claim. Of two concurrent accepts exactly one gets
//      past this point; the other sees a 409, re-reads, and finds the claim
//      (or the record used). Without the claim both would write the User and
//      the password hash, and the one told "already accepted" could still be
//      the one whose password was kept.
//   2. Create or update the User with the invitation's membership.
//   3. Write the credentials Secret (password only), owned by the User.
//   4. Mark the record used (usedAt, user) and drop the claim, again with its
//      resourceVersion. The controller turns that into phase Accepted.
//
// A crash anywhere before 4 leaves the record unused: the link still works
// once the claim has lapsed, and the retry redoes 2 and 3 idempotently. It
// never leaves a used record without a User.
import { randomBytes } from 'node:crypto';
import type { Membership, User, UserInvitation, UserSpec } from '../api/types.ts';
import { userNameFor, withMembership } from '../api/user.ts';
import { membershipOf } from '../controller/decide.ts';
import { apiErrorOf, isConflict, isNotFound } from '../kube/client.ts';
import type { InvitationRecord } from '../records/record.ts';
import type { Found } from './lookup.ts';
import { credentialsSecretName, type AcceptStore } from './store.ts';

/** How long a claim holds off other attempts; the writes after it take well under a second. */
export const CLAIM_TTL_MS = 60_000;
const MAX_ATTEMPTS = 5;

/** The record as stored, plus the claim this module adds to its payload (other readers ignore it). */
export interface ClaimedRecord extends InvitationRecord {
  acceptanceClaim?: { id: string; expiresAt: string };
}

export type Credentials =
  | { authentication: 'Password'; firstName: string; lastName?: string; passwordHash: string }
  | { authentication: 'External'; firstName?: string; lastName?: string };

export type Outcome =
  | { kind: 'accepted'; user: User }
  | { kind: 'alreadyAccepted' }
  /** Another attempt holds the claim right now. */
  | { kind: 'busy' }
  /** The record vanished meanwhile (revoked, reissued, invitation deleted). */
  | { kind: 'gone' };

export interface AcceptDeps {
  store: AcceptStore;
  credentialsNamespace: string;
  now: () => Date;
}

export async function acceptInvitation(deps: AcceptDeps, found: Found, credentials: Credentials): Promise<Outcome> {
  const { store } = deps;
  const { invitation } = found;
  const claimId = randomBytes(12).toString('base64url');
  const claimed = await claim(deps, found.record, invitation, claimId);
  if (claimed.kind !== 'claimed') return claimed;

  const userName = userNameFor(found.record.email);
  const membership = membershipOf(invitation);
  let previous: User | undefined;
  let user: User;
  try {
    ({ previous, user } = await saveUser(store, found.record.email, membership, specFor(credentials, deps.credentialsNamespace, userName)));
    if (credentials.authentication === 'Password') await store.saveCredentials(deps.credentialsNamespace, user, credentials.passwordHash);
  } catch (err) {
    await release(store, claimed.record, invitation, claimId).catch(() => undefined);
    throw err;
  }

  const marked = await markUsed(deps, claimed.record, invitation, claimId, userName);
  if (marked !== 'marked') {
    // The record was deleted while we wrote (revoked at that very moment): take the membership back.
    if (marked === 'gone') await removeMembership(store, userName, invitation).catch(() => undefined);
    return { kind: marked };
  }
  // A person who now signs in through the identity provider should not keep a password hash that still works somewhere.
  const old = previous?.spec.credentialsSecret;
  if (credentials.authentication === 'External' && old) await store.deleteSecret(old.namespace, old.name).catch(() => undefined);
  return { kind: 'accepted', user };
}

function specFor(credentials: Credentials, namespace: string, userName: string): Partial<UserSpec> {
  const names = {
    ...(credentials.firstName ? { firstName: credentials.firstName } : {}),
    ...(credentials.lastName ? { lastName: credentials.lastName } : {}),
  };
  if (credentials.authentication === 'Password') {
    return { ...names, authentication: 'Password', credentialsSecret: { namespace, name: credentialsSecretName(userName) } };
  }
  // undefined drops the key when serialized: an External user has no credentials Secret.
  return { ...names, authentication: 'External', credentialsSecret: undefined };
}

type Claim = { kind: 'claimed'; record: ClaimedRecord } | { kind: 'alreadyAccepted' } | { kind: 'busy' } | { kind: 'gone' };

async function claim(deps: AcceptDeps, initial: InvitationRecord, invitation: UserInvitation, claimId: string): Promise<Claim> {
  let record: ClaimedRecord | undefined = initial;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (!record) return { kind: 'gone' };
    if (record.usedAt) return { kind: 'alreadyAccepted' };
    const now = deps.now();
    const held = record.acceptanceClaim;
    if (held && Date.parse(held.expiresAt) > now.getTime()) return { kind: 'busy' };
    const next: ClaimedRecord = { ...record, acceptanceClaim: { id: claimId, expiresAt: new Date(now.getTime() + CLAIM_TTL_MS).toISOString() } };
    try {
      return { kind: 'claimed', record: await deps.store.replaceRecord(next, invitation) };
    } catch (err) {
      if (isNotFound(err)) return { kind: 'gone' };
      if (!isConflict(err)) throw err;
      // Someone wrote the record since we read it: the other accept, or the controller noting mail delivery.
      record = await deps.store.record(initial.namespace, initial.name);
    }
  }
  return { kind: 'busy' };
}

async function markUsed(deps: AcceptDeps, claimed: ClaimedRecord, invitation: UserInvitation, claimId: string, userName: string): Promise<'marked' | 'alreadyAccepted' | 'busy' | 'gone'> {
  let record: ClaimedRecord | undefined = claimed;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (!record) return 'gone';
    if (record.usedAt) return 'alreadyAccepted';
    // Our claim lapsed and another attempt took over: it finishes, not us.
    if (record.acceptanceClaim?.id !== claimId) return 'busy';
    const used: InvitationRecord = { ...withoutClaim(record), usedAt: iso(deps.now()), user: userName };
    try {
      await deps.store.replaceRecord(used, invitation);
      return 'marked';
    } catch (err) {
      if (isNotFound(err)) return 'gone';
      if (!isConflict(err)) throw err;
      record = await deps.store.record(claimed.namespace, claimed.name);
    }
  }
  throw new Error(`could not mark invitation record ${claimed.namespace}/${claimed.name} used: it kept changing`);
}

/** Gives the claim back after a failed write, so that a retry need not wait for it to lapse. */
async function release(store: AcceptStore, claimed: ClaimedRecord, invitation: UserInvitation, claimId: string): Promise<void> {
  const current: ClaimedRecord | undefined = await store.record(claimed.namespace, claimed.name);
  if (current?.acceptanceClaim?.id !== claimId) return;
  await store.replaceRecord(withoutClaim(current), invitation);
}

function withoutClaim(record: ClaimedRecord): InvitationRecord {
  const copy = { ...record };
  delete copy.acceptanceClaim;
  return copy;
}

/** Create-or-update with optimistic concurrency: another invitation for the same person may be accepted at the same moment. */
async function saveUser(store: AcceptStore, email: string, membership: Membership, extra: Partial<UserSpec>): Promise<{ previous: User | undefined; user: User }> {
  const name = userNameFor(email);
  for (let attempt = 0; ; attempt++) {
    const previous = await store.user(name);
    try {
      return { previous, user: await store.saveUser(withMembership(previous, email, membership, extra)) };
    } catch (err) {
      const { code } = apiErrorOf(err);
      if (code !== 409 || attempt + 1 >= MAX_ATTEMPTS) throw err;
    }
  }
}

async function removeMembership(store: AcceptStore, userName: string, invitation: UserInvitation): Promise<void> {
  const user = await store.user(userName);
  if (!user) return;
  const memberships = (user.spec.memberships ?? []).filter((m) => m.invitation?.uid !== invitation.metadata.uid);
  await store.saveUser({ ...user, spec: { ...user.spec, memberships } });
}

/** Seconds precision, as the controller writes its timestamps. */
function iso(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

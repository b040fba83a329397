// Accepting an invitation: the writes, in an order that survives crashes and
// races, and that never changes an account the person did not prove is theirs.
//
//   1. Claim the record: a PUT carrying the resourceVersion it was read with
//      adds a short-lived claim. Of two concurrent accepts exactly one gets
//      past this point; the other sees a 409, re-reads, and finds the claim
//      (or the record used).
//   2. The account:
//      - an existing User the person proved is theirs (signed in with its
//        password, or through SSO with a verified matching email) gets the
//        invitation's membership, and nothing else of it changes;
//      - otherwise a new User is created, marked provisional for this record
//        and this claim (annotations). A User that exists without being
//        provisional for this very record is someone's account: the attempt
//        stops with `existingAccount`, and the page asks them to sign in.
//   3. The password hash (new accounts only), fenced by the claim: created, or
//      replaced only with the resourceVersion read and only while the User is
//      still provisional for our claim. An attempt whose claim lapsed while it
//      stalled finds the Secret stamped with the winner's claim, or gets a 409,
//      and writes nothing.
//   4. Mark the record used (usedAt, user) and drop the claim, again with its
//      resourceVersion. The controller turns that into phase Accepted.
//   5. Drop the provisional marks from the User (best effort: a used record's
//      mark means nothing).
//
// A crash anywhere before 4 leaves the record unused: the link still works
// once the claim has lapsed, and the retry takes over the provisional User of
// its own record. It never leaves a used record without a User.
import { randomBytes } from 'node:crypto';
import type { Membership, User, UserInvitation, UserSpec } from '../api/types.ts';
import { ACCEPTING_CLAIM_ANNOTATION, ACCEPTING_RECORD_ANNOTATION, userMatches, withMembership, withoutMembership } from '../invitation/users.ts';
import { membershipOf } from '../invitation/decide.ts';
import { isConflict, isConflictOrAlreadyExists, isNotFound } from '../runtime/client.ts';
import type { InvitationRecord } from '../invitation/record.ts';
import type { Found } from './lookup.ts';
import { type AcceptStore } from './store.ts';
import { credentialsSecretName, userNameCandidates, userNameFor } from '../invitation/naming.ts';
import { isoSeconds } from '../invitation/time.ts';

/** How long a claim holds off other attempts; the writes after it take well under a second. */
export const CLAIM_TTL_MS = 60_000;
const MAX_ATTEMPTS = 5;
export { ACCEPTING_CLAIM_ANNOTATION, ACCEPTING_RECORD_ANNOTATION } from '../invitation/users.ts';

/** The record as stored, plus the claim this module adds to its payload (other readers ignore it). */
export interface ClaimedRecord extends InvitationRecord {
  acceptanceClaim?: { id: string; expiresAt: string };
}

/** How the person accepts: as a new account, or as an existing User they proved is theirs. */
export type AcceptAs =
  | { kind: 'newPassword'; firstName: string; lastName?: string; passwordHash: string }
  | { kind: 'newExternal'; firstName?: string; lastName?: string }
  | { kind: 'existing'; userName: string };

export type Outcome =
  | { kind: 'accepted'; user: User; created: boolean }
  | { kind: 'alreadyAccepted' }
  /** Another attempt holds the claim right now, or won while this one stalled. */
  | { kind: 'busy' }
  /** The record vanished meanwhile (revoked, reissued, invitation deleted). */
  | { kind: 'gone' }
  /** A User for this address exists (made meanwhile): the person must sign in as it. */
  | { kind: 'existingAccount' };

export interface AcceptDeps {
  store: AcceptStore;
  credentialsNamespace: string;
  now: () => Date;
}

/** The provisional User of an unfinished acceptance of this record, which a retry of the same link may take over. */
export function isProvisionalFor(user: User | undefined, recordName: string): boolean {
  return user?.metadata.annotations?.[ACCEPTING_RECORD_ANNOTATION] === recordName;
}

/** The User of this address, read fresh from the API server (legacy names included, spec.email checked). */
export async function freshUser(store: AcceptStore, email: string): Promise<User | undefined> {
  for (const name of userNameCandidates(email)) {
    const user = await store.user(name);
    if (userMatches(user, email)) return user;
  }
  return undefined;
}

export async function acceptInvitation(deps: AcceptDeps, found: Found, as: AcceptAs): Promise<Outcome> {
  const { store } = deps;
  const { invitation, record } = found;
  const claimId = randomBytes(12).toString('base64url');
  const claimed = await claim(deps, record, claimId);
  if (claimed.kind !== 'claimed') return claimed;

  const membership = membershipOf(invitation);
  let user: User;
  let created = false;
  try {
    if (as.kind === 'existing') {
      const joined = await addMembership(store, as.userName, record.email, membership);
      if (!joined) {
        await release(store, claimed.record, claimId).catch(() => undefined);
        return { kind: 'gone' };
      }
      user = joined;
    } else {
      const provisioned = await provisionUser(deps, record, claimId, membership, as);
      if (provisioned.kind !== 'user') {
        await release(store, claimed.record, claimId).catch(() => undefined);
        return provisioned;
      }
      user = provisioned.user;
      created = true;
      if (as.kind === 'newPassword' && (await writeCredentials(store, user, as.passwordHash, claimId)) === 'lost') return { kind: 'busy' };
    }
  } catch (err) {
    await release(store, claimed.record, claimId).catch(() => undefined);
    throw err;
  }

  const marked = await markUsed(deps, claimed.record, claimId, user.metadata.name);
  if (marked !== 'marked') {
    // The record was deleted while we wrote (revoked at that very moment): take back what we gave.
    if (marked === 'gone') await rollBack(store, user, created, invitation).catch(() => undefined);
    return { kind: marked };
  }
  if (created) user = await settle(store, user, claimId).catch(() => user);
  return { kind: 'accepted', user, created };
}

type Provisioned = { kind: 'user'; user: User } | { kind: 'existingAccount' } | { kind: 'busy' };

/** Creates the new account, or takes over the provisional User a crashed attempt at this same link left. */
async function provisionUser(
  deps: AcceptDeps,
  record: InvitationRecord,
  claimId: string,
  membership: Membership,
  as: Exclude<AcceptAs, { kind: 'existing' }>,
): Promise<Provisioned> {
  const { store } = deps;
  const names = { ...(as.firstName ? { firstName: as.firstName } : {}), ...(as.lastName ? { lastName: as.lastName } : {}) };
  const name = userNameFor(record.email);
  // Proven only by the SSO provider (the callback checks email_verified). A mailed link proves nothing about
  // the mailbox: whoever reads the invitation's status (its admins, with linkDisclosure: Status) holds it too.
  const emailVerified = as.kind === 'newExternal';
  const spec: Partial<UserSpec> =
    as.kind === 'newPassword'
      ? {
          ...names,
          authentication: 'Password',
          credentialsSecret: { namespace: deps.credentialsNamespace, name: credentialsSecretName(name) },
          emailVerified,
        }
      : { ...names, authentication: 'External', emailVerified };
  const annotations = { [ACCEPTING_RECORD_ANNOTATION]: record.name, [ACCEPTING_CLAIM_ANNOTATION]: claimId };
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const existing = await freshUser(store, record.email);
    try {
      if (!existing) {
        const fresh = withMembership(undefined, record.email, membership, spec);
        return { kind: 'user', user: await store.createUser({ ...fresh, metadata: { ...fresh.metadata, annotations } }) };
      }
      if (!isProvisionalFor(existing, record.name)) return { kind: 'existingAccount' };
      // Our record is claimed by us and unused, so whoever made this User can no longer finish: it is ours now.
      const takenOver: User = {
        ...existing,
        metadata: { ...existing.metadata, annotations: { ...existing.metadata.annotations, ...annotations } },
        spec: { email: existing.spec.email, ...spec, memberships: withMembership(existing, record.email, membership).spec.memberships ?? [] },
      };
      return { kind: 'user', user: await store.replaceUser(takenOver) };
    } catch (err) {
      // A conflict, or AlreadyExists: someone wrote this User since we read it; look again.
      if (!isConflictOrAlreadyExists(err)) throw err;
    }
  }
  return { kind: 'busy' };
}

/** The fenced write of a new account's password hash; 'lost' when another attempt's claim owns it now. */
async function writeCredentials(store: AcceptStore, user: User, passwordHash: string, claimId: string): Promise<'written' | 'lost'> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const current = await store.credentials(user.metadata.name);
    if (current && current.claim !== claimId) {
      // Written by another attempt: replaceable only while the User is still provisional for our claim.
      const latest = await store.user(user.metadata.name);
      if (!latest || latest.metadata.uid !== user.metadata.uid || latest.metadata.annotations?.[ACCEPTING_CLAIM_ANNOTATION] !== claimId) return 'lost';
    }
    try {
      await store.writeCredentials(user, passwordHash, claimId, current?.resourceVersion);
      return 'written';
    } catch (err) {
      if (!isConflictOrAlreadyExists(err)) throw err;
    }
  }
  return 'lost';
}

/** Adds (or refreshes) the membership on a User the person proved is theirs; nothing else of it changes. */
async function addMembership(store: AcceptStore, userName: string, email: string, membership: Membership): Promise<User | undefined> {
  for (let attempt = 0; ; attempt++) {
    const user = await store.user(userName);
    if (!userMatches(user, email)) return undefined;
    try {
      return await store.replaceUser(withMembership(user, email, membership));
    } catch (err) {
      if (!isConflict(err) || attempt + 1 >= MAX_ATTEMPTS) throw err;
    }
  }
}

/** The provisional marks come off once the record is used. */
async function settle(store: AcceptStore, user: User, claimId: string): Promise<User> {
  const latest = await store.user(user.metadata.name);
  if (!latest || latest.metadata.annotations?.[ACCEPTING_CLAIM_ANNOTATION] !== claimId) return latest ?? user;
  const annotations = Object.fromEntries(
    Object.entries(latest.metadata.annotations).filter(([key]) => key !== ACCEPTING_RECORD_ANNOTATION && key !== ACCEPTING_CLAIM_ANNOTATION),
  );
  return store.replaceUser({ ...latest, metadata: { ...latest.metadata, annotations } });
}

/** After a revocation mid-accept: a User we created goes (its password hash with it); an existing one loses the membership. */
async function rollBack(store: AcceptStore, user: User, created: boolean, invitation: UserInvitation): Promise<void> {
  if (created) {
    await store.deleteUser(user.metadata.name, user.metadata.uid ?? '');
    return;
  }
  const latest = await store.user(user.metadata.name);
  if (!latest) return;
  await store.replaceUser(withoutMembership(latest, invitation.metadata.uid ?? ''));
}

type Claim = { kind: 'claimed'; record: ClaimedRecord } | { kind: 'alreadyAccepted' } | { kind: 'busy' } | { kind: 'gone' };

async function claim(deps: AcceptDeps, initial: InvitationRecord, claimId: string): Promise<Claim> {
  let record: ClaimedRecord | undefined = initial;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (!record) return { kind: 'gone' };
    if (record.usedAt) return { kind: 'alreadyAccepted' };
    const now = deps.now();
    const held = record.acceptanceClaim;
    if (held && Date.parse(held.expiresAt) > now.getTime()) return { kind: 'busy' };
    const next: ClaimedRecord = { ...record, acceptanceClaim: { id: claimId, expiresAt: new Date(now.getTime() + CLAIM_TTL_MS).toISOString() } };
    try {
      return { kind: 'claimed', record: await deps.store.replaceRecord(next) };
    } catch (err) {
      if (isNotFound(err)) return { kind: 'gone' };
      if (!isConflict(err)) throw err;
      // Someone wrote the record since we read it: the other accept, or the controller noting mail delivery.
      record = await deps.store.record(initial.name);
    }
  }
  return { kind: 'busy' };
}

async function markUsed(deps: AcceptDeps, claimed: ClaimedRecord, claimId: string, userName: string): Promise<'marked' | 'alreadyAccepted' | 'busy' | 'gone'> {
  let record: ClaimedRecord | undefined = claimed;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (!record) return 'gone';
    if (record.usedAt) return 'alreadyAccepted';
    // Our claim lapsed and another attempt took over: it finishes, not us.
    if (record.acceptanceClaim?.id !== claimId) return 'busy';
    const used: InvitationRecord = { ...withoutClaim(record), usedAt: isoSeconds(deps.now()), user: userName };
    try {
      await deps.store.replaceRecord(used);
      return 'marked';
    } catch (err) {
      if (isNotFound(err)) return 'gone';
      if (!isConflict(err)) throw err;
      record = await deps.store.record(claimed.name);
    }
  }
  throw new Error(`could not mark invitation record ${claimed.namespace}/${claimed.name} used: it kept changing`);
}

/** Gives the claim back after a failed write, so that a retry need not wait for it to lapse. */
async function release(store: AcceptStore, claimed: ClaimedRecord, claimId: string): Promise<void> {
  const current: ClaimedRecord | undefined = await store.record(claimed.name);
  if (current?.acceptanceClaim?.id !== claimId) return;
  await store.replaceRecord(withoutClaim(current));
}

function withoutClaim(record: ClaimedRecord): InvitationRecord {
  const copy = { ...record };
  delete copy.acceptanceClaim;
  return copy;
}

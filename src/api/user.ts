// Users are keyed by email: one User per person, whatever number of
// invitations they accept. The name is derived from the email so that two
// invitations for the same person find the same User without a search, and it
// carries 128 bits of the address's SHA-256: no one can choose an address that
// lands on another person's User (a collision would take 2^64 work at least).
// Whoever finds a User by name still checks spec.email (userMatches).
import { createHash } from 'node:crypto';
import { API_VERSION, USER_KIND, type Membership, type User, type UserSpec } from './types.ts';
import { normalizeEmail } from './email.ts';

/** Hex characters of the hash in a User's name: 32 × 4 = 128 bits. */
const NAME_HASH_HEX = 32;

/** `jane-doe-3fa2b1c9…` (32 hex): readable in `kubectl get users`, unique by the hash of the whole address. */
export function userNameFor(email: string): string {
  const normalized = normalizeEmail(email);
  return `${readablePart(normalized)}-${createHash('sha256').update(normalized, 'utf8').digest('hex').slice(0, NAME_HASH_HEX)}`;
}

/**
 * The name Usher 0.1 gave the same address (10 hex characters of the hash of
 * the fully lower-cased address). Users made then keep working: they are found
 * under this name, but only when their spec.email is this very address.
 */
export function legacyUserNameFor(email: string): string {
  const lowered = email.trim().toLowerCase();
  return `${readablePart(lowered)}-${createHash('sha256').update(lowered).digest('hex').slice(0, 10)}`;
}

/** Where a User for this address may be, in the order to look. */
export function userNameCandidates(email: string): string[] {
  const current = userNameFor(email);
  const legacy = legacyUserNameFor(email);
  return current === legacy ? [current] : [current, legacy];
}

/** Whether a User found by name really is this address's (and not a collision or a legacy name of another address). */
export function userMatches(user: User | undefined, email: string): user is User {
  return user !== undefined && normalizeEmail(user.spec.email) === normalizeEmail(email);
}

/** The first candidate that exists and belongs to the address. */
export function findUser(email: string, byName: (name: string) => User | undefined): User | undefined {
  for (const name of userNameCandidates(email)) {
    const user = byName(name);
    if (userMatches(user, email)) return user;
  }
  return undefined;
}

function readablePart(address: string): string {
  const local = address.split('@')[0] ?? '';
  return local.replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'user';
}

/**
 * The User with `membership` added, or replacing the one from the same
 * invitation. An existing User keeps everything else it has: names, email,
 * sign-in method and credentials are never changed by an invitation
 * (docs/security.md). `extra` applies to a new User only.
 */
export function withMembership(user: User | undefined, email: string, membership: Membership, extra: Partial<UserSpec> = {}): User {
  const others = (user?.spec.memberships ?? []).filter((m) => !membership.invitation || m.invitation?.uid !== membership.invitation.uid);
  const memberships = [...others, membership];
  if (user) return { ...user, metadata: { ...user.metadata }, spec: { ...user.spec, memberships } };
  return {
    apiVersion: API_VERSION,
    kind: USER_KIND,
    metadata: { name: userNameFor(email) },
    spec: { ...extra, email: normalizeEmail(email), memberships },
  };
}

export function hasMembershipFrom(user: User | undefined, invitationUid: string | undefined): boolean {
  return invitationUid !== undefined && (user?.spec.memberships?.some((m) => m.invitation?.uid === invitationUid) ?? false);
}

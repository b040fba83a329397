// Users are keyed by email: one User per person, whatever number of
// invitations they accept. The name is derived from the email so that two
// invitations for the same person find the same User without a search, and it
// carries 128 bits of the address's SHA-256: no one can choose an address that
// lands on another person's User (a collision would take 2^64 work at least).
// Whoever finds a User by name still checks spec.email (userMatches).
import { API_VERSION, USER_KIND, type Membership, type User, type UserSpec } from '../api/types.ts';
import { normalizeEmail } from './email.ts';
import { userNameCandidates, userNameFor } from './naming.ts';

/** On a User being created by an acceptance that has not finished: the record's name, and the claim. */
export const ACCEPTING_RECORD_ANNOTATION = 'usher.dev/accepting-record';
export const ACCEPTING_CLAIM_ANNOTATION = 'usher.dev/accepting-claim';

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

/**
 * The User with `membership` added, or replacing the one from the same
 * invitation (in its place). An existing User keeps everything else it has: names, email,
 * sign-in method and credentials are never changed by an invitation
 * (docs/security.md). `extra` applies to a new User only.
 */
export function withMembership(user: User | undefined, email: string, membership: Membership, extra: Partial<UserSpec> = {}): User {
  const existing = user?.spec.memberships ?? [];
  const at = membership.invitation ? existing.findIndex((m) => m.invitation?.uid === membership.invitation?.uid) : -1;
  // Replaced where it stands (an edit of the invitation moves nothing else), or added at the end.
  const memberships = at >= 0 ? existing.map((m, i) => (i === at ? membership : m)) : [...existing, membership];
  if (user) return { ...user, metadata: { ...user.metadata }, spec: { ...user.spec, memberships } };
  return {
    apiVersion: API_VERSION,
    kind: USER_KIND,
    metadata: { name: userNameFor(email) },
    spec: { ...extra, email: normalizeEmail(email), memberships },
  };
}

export function hasMembershipFrom(user: User | undefined, invitationUid: string | undefined): boolean {
  return membershipFrom(user, invitationUid) !== undefined;
}

/** The membership the invitation with this uid granted the User, if it holds one. */
export function membershipFrom(user: User | undefined, invitationUid: string | undefined): Membership | undefined {
  if (invitationUid === undefined || invitationUid === '') return undefined;
  return user?.spec.memberships?.find((m) => m.invitation?.uid === invitationUid);
}

/** The User without the membership the invitation with this uid granted; everything else of it stays. */
export function withoutMembership(user: User, invitationUid: string): User {
  const memberships = (user.spec.memberships ?? []).filter((m) => m.invitation?.uid !== invitationUid);
  return { ...user, metadata: { ...user.metadata }, spec: { ...user.spec, memberships } };
}

/** Whether two memberships grant the same: scope, tenant, groups, roles with their namespaces, and the invitation they came from. */
export function sameMembership(a: Membership, b: Membership): boolean {
  return canonicalMembership(a) === canonicalMembership(b);
}

function canonicalMembership(m: Membership): string {
  return JSON.stringify([
    m.scope,
    m.tenant ?? '',
    m.groups ?? [],
    (m.roles ?? []).map((r) => [r.name, r.namespaces ?? []]),
    m.invitation ? [m.invitation.namespace, m.invitation.name, m.invitation.uid] : [],
  ]);
}

/** A membership in a few words, for Events: "tenant acme, groups devs, ops, roles developer@company.team". */
export function describeMembership(m: Membership): string {
  const where = m.scope === 'Instance' ? 'the whole instance' : `tenant ${m.tenant ?? ''}`;
  const groups = m.groups?.length ? m.groups.join(', ') : '(none)';
  const roles = m.roles?.length ? m.roles.map((r) => (r.namespaces?.length ? `${r.name}@${r.namespaces.join('+')}` : r.name)).join(', ') : '(none)';
  return `${where}, groups ${groups}, roles ${roles}`;
}

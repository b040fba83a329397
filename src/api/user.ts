// Users are keyed by email: one User per person, whatever number of
// invitations they accept. The name is derived from the email so that two
// invitations for the same person find the same User without a search.
import { createHash } from 'node:crypto';
import { API_VERSION, USER_KIND, type Membership, type User, type UserSpec } from './types.ts';
import { normalizeEmail } from './email.ts';

/** `jane-doe-3fa2b1c9`: readable in `kubectl get users`, unique by the hash of the whole address. */
export function userNameFor(email: string): string {
  const normalized = normalizeEmail(email);
  const local = normalized.split('@')[0] ?? '';
  const readable = local.replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'user';
  const hash = createHash('sha256').update(normalized).digest('hex').slice(0, 10);
  return `${readable}-${hash}`;
}

/** The User with `membership` added, or replacing the one from the same invitation. */
export function withMembership(user: User | undefined, email: string, membership: Membership, extra: Partial<UserSpec> = {}): User {
  const others = (user?.spec.memberships ?? []).filter((m) => !membership.invitation || m.invitation?.uid !== membership.invitation.uid);
  const memberships = [...others, membership];
  return {
    apiVersion: API_VERSION,
    kind: USER_KIND,
    metadata: user ? { ...user.metadata } : { name: userNameFor(email) },
    spec: { ...user?.spec, ...extra, email: normalizeEmail(email), memberships },
  };
}

export function hasMembershipFrom(user: User | undefined, invitationUid: string | undefined): boolean {
  return invitationUid !== undefined && (user?.spec.memberships?.some((m) => m.invitation?.uid === invitationUid) ?? false);
}

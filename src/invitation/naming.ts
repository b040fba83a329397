// Every name Usher gives an object, in one place: records, link Secrets,
// credentials Secrets and Users. Pure functions of their inputs.
import { createHash } from 'node:crypto';
import { normalizeEmail } from './email.ts';

/** Deterministic per (invitation, issuance): a retried create after a crash collides instead of duplicating. */
export function recordName(invitationUid: string, issuance: number): string {
  return `usher-invitation-${invitationUid}-${issuance}`;
}

/** The Secret beside the invitation that holds its link when linkDisclosure is Secret. */
export function linkSecretNameFor(invitationName: string): string {
  return `${invitationName}-invitation-link`;
}

/** The Secret holding a User's password hash, in the credentials namespace. */
/** The key of a credentials Secret that holds the argon2id PHC string. */
export const PASSWORD_HASH_KEY = 'password-hash';

export function credentialsSecretName(userName: string): string {
  return `usher-credentials-${userName}`;
}

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

function readablePart(address: string): string {
  const local = address.split('@')[0] ?? '';
  return (
    local
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'user'
  );
}

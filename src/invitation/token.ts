// Invitation tokens, split in two as in "split tokens": a public selector that
// finds the record (stored in clear, as a label) and a secret verifier that
// proves possession (stored only as a SHA-256 hash). The raw token exists only
// in the link. A fast hash is right here: the verifier is 256 random bits, so
// there is nothing to brute-force, unlike a password.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 128-bit selector, hex so it fits a label value (≤ 63 chars, [a-z0-9]). */
const SELECTOR_BYTES = 16;
/** 256-bit verifier. */
const VERIFIER_BYTES = 32;

export interface IssuedToken {
  selector: string;
  verifier: string;
  verifierHash: string;
  /** What goes into the link: `<selector>.<verifier>`. */
  token: string;
}

export function hashVerifier(verifier: string): string {
  return createHash('sha256').update(verifier, 'utf8').digest('hex');
}

export function issueToken(random: (n: number) => Buffer = randomBytes): IssuedToken {
  const selector = random(SELECTOR_BYTES).toString('hex');
  const verifier = random(VERIFIER_BYTES).toString('base64url');
  return { selector, verifier, verifierHash: hashVerifier(verifier), token: `${selector}.${verifier}` };
}

const TOKEN_PATTERN = /^([0-9a-f]{32})\.([A-Za-z0-9_-]{43})$/;

/** Splits a token from a link; undefined for anything that is not shaped like one of ours. */
export function parseToken(token: string): { selector: string; verifier: string } | undefined {
  const match = TOKEN_PATTERN.exec(token);
  if (!match?.[1] || !match[2]) return undefined;
  return { selector: match[1], verifier: match[2] };
}

/** Constant-time check of a presented verifier against a stored hash. */
export function verifierMatches(verifier: string, storedHash: string): boolean {
  const presented = Buffer.from(hashVerifier(verifier), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

/** The acceptance link for a token. */
export function linkFor(baseUrl: string, token: string): string {
  return `${baseUrl}/accept/${token}`;
}

/** The selector of a link we issued, to tell whether status still shows the current record's link. */
export function selectorOfLink(link: string | undefined): string | undefined {
  if (!link) return undefined;
  const last = link.slice(link.lastIndexOf('/') + 1);
  return parseToken(last)?.selector;
}

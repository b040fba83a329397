// Invitation tokens, split in two as in "split tokens": a public selector that
// finds the record (stored in clear, as a label) and a secret verifier that
// proves possession (stored only as a SHA-256 hash). The raw token exists only
// in the link. A fast hash is right here: the verifier is 256 random bits, so
// there is nothing to brute-force, unlike a password.
//
// Pure, like the rest of the domain: the caller draws the random bytes
// (crypto.randomBytes) and tokenFromBytes() shapes and hashes them.
import { createHash, timingSafeEqual } from 'node:crypto';

/** 128-bit selector, hex so it fits a label value (≤ 63 chars, [a-z0-9]). */
export const SELECTOR_BYTES = 16;
/** 256-bit verifier. */
export const VERIFIER_BYTES = 32;

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

/** The random bytes a token is made of, drawn by the caller. */
export interface TokenBytes {
  /** SELECTOR_BYTES of them. */
  selector: Uint8Array;
  /** VERIFIER_BYTES of them. */
  verifier: Uint8Array;
}

/** The token made of these random bytes. */
export function tokenFromBytes(bytes: TokenBytes): IssuedToken {
  if (bytes.selector.length !== SELECTOR_BYTES || bytes.verifier.length !== VERIFIER_BYTES) {
    throw new Error(`a token needs ${SELECTOR_BYTES} selector and ${VERIFIER_BYTES} verifier bytes, got ${bytes.selector.length} and ${bytes.verifier.length}`);
  }
  const selector = Buffer.from(bytes.selector).toString('hex');
  const verifier = Buffer.from(bytes.verifier).toString('base64url');
  return { selector, verifier, verifierHash: hashVerifier(verifier), token: `${selector}.${verifier}` };
}

/** A token of bytes drawn by `random` (crypto.randomBytes): the caller brings the randomness, the domain stays pure. */
export function issueToken(random: (n: number) => Uint8Array): IssuedToken {
  return tokenFromBytes({ selector: random(SELECTOR_BYTES), verifier: random(VERIFIER_BYTES) });
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

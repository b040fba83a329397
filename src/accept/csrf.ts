// CSRF protection for the acceptance form: a signed double-submit token.
// The browser holds a random nonce in an HttpOnly cookie; the form carries
// `<issued-at>.<HMAC(key, selector, nonce, issued-at)>`. A POST passes only
// when the form's token is the MAC of the cookie's nonce for *this* link:
// another site can neither read the cookie nor compute the MAC, and a token
// taken from one link's form is worthless on another link or after a day.
// The cookie itself is SameSite=Lax, so a cross-site POST does not even
// carry it. Stateless, so any replica that shares the key can check it.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** How long a rendered form stays submittable: a person may leave the tab open over lunch, not for a week. */
export const CSRF_MAX_AGE_MS = 24 * 3600 * 1000;

export function newCsrfNonce(): string {
  return randomBytes(16).toString('base64url');
}

/** A nonce as we mint it (22 base64url characters), so a cookie of any other shape is simply absent. */
export function isCsrfNonce(value: string | undefined): value is string {
  return value !== undefined && /^[A-Za-z0-9_-]{22}$/.test(value);
}

function mac(key: Buffer, selector: string, nonce: string, issuedAt: number): Buffer {
  return createHmac('sha256', key).update(`csrf\0${selector}\0${nonce}\0${issuedAt}`).digest();
}

export function csrfToken(key: Buffer, selector: string, nonce: string, now: Date): string {
  const issuedAt = Math.floor(now.getTime() / 1000);
  return `${issuedAt}.${mac(key, selector, nonce, issuedAt).toString('base64url')}`;
}

export function csrfTokenValid(key: Buffer, selector: string, nonce: string | undefined, token: string | undefined, now: Date): boolean {
  if (!isCsrfNonce(nonce) || token === undefined) return false;
  const match = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!match?.[1] || !match[2]) return false;
  const issuedAt = Number(match[1]);
  const age = now.getTime() - issuedAt * 1000;
  // A little slack for clocks that differ between replicas.
  if (age > CSRF_MAX_AGE_MS || age < -60_000) return false;
  const presented = Buffer.from(match[2], 'base64url');
  const expected = mac(key, selector, nonce, issuedAt);
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}

import { describe, expect, it } from 'vitest';
import { CSRF_MAX_AGE_MS, csrfToken, csrfTokenValid, isCsrfNonce, newCsrfNonce } from '../../src/accept/csrf.ts';
import { deriveKeys } from '../../src/accept/keys.ts';
import { seal, unseal } from '../../src/accept/seal.ts';

const keys = deriveKeys('a configured key that is long enough for hmac');
const selector = 'a'.repeat(32);
const now = new Date('2030-01-01T00:00:00Z');

describe('CSRF tokens', () => {
  it('accepts the token made for this link and this browser’s nonce', () => {
    const nonce = newCsrfNonce();
    expect(isCsrfNonce(nonce)).toBe(true);
    const token = csrfToken(keys.csrf, selector, nonce, now);
    expect(csrfTokenValid(keys.csrf, selector, nonce, token, now)).toBe(true);
    expect(csrfTokenValid(keys.csrf, selector, nonce, token, new Date(now.getTime() + CSRF_MAX_AGE_MS - 1000))).toBe(true);
  });

  it('refuses another link, another nonce, another key, old age, tampering and absence', () => {
    const nonce = newCsrfNonce();
    const token = csrfToken(keys.csrf, selector, nonce, now);
    expect(csrfTokenValid(keys.csrf, 'b'.repeat(32), nonce, token, now)).toBe(false);
    expect(csrfTokenValid(keys.csrf, selector, newCsrfNonce(), token, now)).toBe(false);
    expect(csrfTokenValid(deriveKeys(undefined).csrf, selector, nonce, token, now)).toBe(false);
    expect(csrfTokenValid(keys.csrf, selector, nonce, token, new Date(now.getTime() + CSRF_MAX_AGE_MS + 1000))).toBe(false);
    const [issued = '', mac = ''] = token.split('.');
    expect(csrfTokenValid(keys.csrf, selector, nonce, `${Number(issued) + 1}.${mac}`, now)).toBe(false);
    // The first character, not the last: the last one of 43 carries 4 bits and 2 unused ones, so some edits of it decode to the same MAC.
    expect(csrfTokenValid(keys.csrf, selector, nonce, `${mac.startsWith('A') ? 'B' : 'A'}${mac.slice(1)}`.replace(/^/, `${issued}.`), now)).toBe(false);
    expect(csrfTokenValid(keys.csrf, selector, nonce, undefined, now)).toBe(false);
    expect(csrfTokenValid(keys.csrf, selector, undefined, token, now)).toBe(false);
    expect(csrfTokenValid(keys.csrf, selector, 'not a nonce', token, now)).toBe(false);
    expect(csrfTokenValid(keys.csrf, selector, nonce, 'garbage', now)).toBe(false);
  });

  it('derives the same keys from the same configured key (replicas agree) and random ones without', () => {
    expect(deriveKeys('a configured key that is long enough for hmac')).toEqual(keys);
    expect(deriveKeys(undefined).csrf.equals(deriveKeys(undefined).csrf)).toBe(false);
    expect(keys.csrf.equals(keys.oidcState)).toBe(false);
  });
});

describe('sealed cookies', () => {
  const value = { token: 't', state: 's', nonce: 'n', codeVerifier: 'v', expiresAt: 1 };

  it('round-trips, and hides the content', () => {
    const sealed = seal(keys.oidcState, 'purpose', value);
    expect(unseal(keys.oidcState, 'purpose', sealed)).toEqual(value);
    expect(Buffer.from(sealed, 'base64url').toString('latin1')).not.toContain('codeVerifier');
  });

  it('refuses tampering, another purpose, another key and junk', () => {
    const sealed = seal(keys.oidcState, 'purpose', value);
    const bytes = Buffer.from(sealed, 'base64url');
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
    expect(unseal(keys.oidcState, 'purpose', bytes.toString('base64url'))).toBeUndefined();
    expect(unseal(keys.oidcState, 'other', sealed)).toBeUndefined();
    expect(unseal(keys.csrf, 'purpose', sealed)).toBeUndefined();
    expect(unseal(keys.oidcState, 'purpose', 'AAAA')).toBeUndefined();
    expect(unseal(keys.oidcState, 'purpose', 'not base64url!')).toBeUndefined();
    expect(unseal(keys.oidcState, 'purpose', undefined)).toBeUndefined();
  });
});

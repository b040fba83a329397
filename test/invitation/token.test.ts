// Tokens are made of bytes the caller draws: the same bytes make the same
// token, so the domain stays a pure function (the reconciler passes randomBytes).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseToken, SELECTOR_BYTES, tokenFromBytes, VERIFIER_BYTES, verifierMatches } from '../../src/invitation/token.ts';

const bytes = { selector: new Uint8Array(SELECTOR_BYTES).fill(0xab), verifier: new Uint8Array(VERIFIER_BYTES).fill(0x01) };

describe('tokenFromBytes', () => {
  it('shapes the bytes into selector.verifier and keeps only a SHA-256 of the verifier', () => {
    const token = tokenFromBytes(bytes);
    expect(token.selector).toBe('ab'.repeat(16));
    expect(token.verifier).toBe(Buffer.alloc(32, 1).toString('base64url'));
    expect(token.token).toBe(`${token.selector}.${token.verifier}`);
    expect(token.verifierHash).toBe(createHash('sha256').update(token.verifier).digest('hex'));
    expect(parseToken(token.token)).toEqual({ selector: token.selector, verifier: token.verifier });
    expect(verifierMatches(token.verifier, token.verifierHash)).toBe(true);
  });

  it('is a function of its bytes: the same bytes, the same token', () => {
    expect(tokenFromBytes(bytes)).toEqual(tokenFromBytes({ selector: Uint8Array.from(bytes.selector), verifier: Uint8Array.from(bytes.verifier) }));
  });

  it.each([
    ['a short selector', { ...bytes, selector: new Uint8Array(8) }],
    ['a short verifier', { ...bytes, verifier: new Uint8Array(16) }],
  ])('refuses %s', (_what, wrong) => {
    expect(() => tokenFromBytes(wrong)).toThrow(/16 selector and 32 verifier bytes/);
  });
});

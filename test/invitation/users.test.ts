// One User per person, and no one lands on another's: how addresses are
// normalised (docs/security.md, attack 4) and how Users are named and found.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isNfc, normalizeEmail } from '../../src/invitation/email.ts';
import type { User } from '../../src/api/types.ts';
import { findUser, userMatches, withMembership } from '../../src/invitation/users.ts';
import { legacyUserNameFor, userNameCandidates, userNameFor } from '../../src/invitation/naming.ts';

function user(name: string, email: string): User {
  return { apiVersion: 'usher.dev/v1alpha1', kind: 'User', metadata: { name }, spec: { email, memberships: [] } };
}

describe('normalizeEmail', () => {
  it.each([
    ['  Ops.Lead@Example.ORG ', 'ops.lead@example.org'],
    ['JANE@EXAMPLE.COM', 'jane@example.com'],
  ])('%j → %j', (raw, normalized) => {
    expect(normalizeEmail(raw)).toBe(normalized);
  });

  it.each([
    ['the Kelvin sign K (U+212A), which toLowerCase() turns into k', '\u212Aim@example.com', 'kim@example.com'],
    ['a decomposed é and a composed one', 'jose\u0301@example.com', 'jos\u00e9@example.com'],
    ['fullwidth letters, which NFKC maps onto ASCII', '\uFF4Bim@example.com', 'kim@example.com'],
    ['the dotted capital I (U+0130)', '\u0130an@example.com', 'ian@example.com'],
    ['a non-ASCII capital (Ü is not folded)', '\u00DCber@example.com', '\u00FCber@example.com'],
  ])('keeps apart two mailboxes: %s', (_why, a, b) => {
    expect(normalizeEmail(a)).not.toBe(normalizeEmail(b));
    expect(userNameFor(a)).not.toBe(userNameFor(b));
  });
});

describe('isNfc', () => {
  it('refuses what a Unicode normalisation would change: the Kelvin sign, a decomposed é; fullwidth letters are NFC already', () => {
    expect(isNfc('\u212Aim@example.com')).toBe(false);
    expect(isNfc('jose\u0301@example.com')).toBe(false);
    expect(isNfc('jos\u00e9@example.com')).toBe(true);
    expect(isNfc('\uFF4Bim@example.com')).toBe(true);
  });
});

describe('userNameFor', () => {
  it('is readable and carries 128 bits of the SHA-256 of the normalised address', () => {
    const name = userNameFor('Jane.Doe@Example.com');
    const hash = createHash('sha256').update('jane.doe@example.com').digest('hex');
    expect(name).toBe(`jane-doe-${hash.slice(0, 32)}`);
    expect(name.split('-').at(-1)).toHaveLength(32);
  });

  it('is the same for every spelling of one address, and a DNS-1123 name of at most 73 characters', () => {
    expect(userNameFor(' JANE.doe@example.COM')).toBe(userNameFor('jane.doe@example.com'));
    const long = userNameFor(`${'x'.repeat(200)}@example.com`);
    expect(long.length).toBeLessThanOrEqual(73);
    expect(long).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(userNameFor('+++@example.com')).toMatch(/^user-[0-9a-f]{32}$/);
  });
});

describe('finding a User', () => {
  it('looks under the current name, then under the name Usher 0.1 gave the address', () => {
    const email = 'Jane@Example.com';
    expect(userNameCandidates(email)).toEqual([userNameFor(email), legacyUserNameFor(email)]);
    expect(legacyUserNameFor(email)).toMatch(/^jane-[0-9a-f]{10}$/);
    const legacy = user(legacyUserNameFor(email), 'jane@example.com');
    expect(findUser(email, (name) => (name === legacy.metadata.name ? legacy : undefined))).toBe(legacy);
  });

  it('never takes a User whose spec.email is another address, whatever its name', () => {
    const email = 'kim@example.com';
    const squatter = user(legacyUserNameFor(email), '\u212Aim@example.com');
    expect(userMatches(squatter, email)).toBe(false);
    expect(findUser(email, () => squatter)).toBeUndefined();
  });
});

describe('withMembership', () => {
  it('changes only the memberships of an existing User, whatever `extra` says', () => {
    const existing: User = {
      ...user('jane', 'jane@example.com'),
      spec: {
        email: 'jane@example.com',
        firstName: 'Jane',
        authentication: 'Password',
        credentialsSecret: { namespace: 'usher-system', name: 'c' },
        memberships: [],
      },
    };
    const next = withMembership(
      existing,
      'JANE@example.com',
      { scope: 'Instance', invitation: { namespace: 'a', name: 'b', uid: 'u' } },
      { firstName: 'Mallory', authentication: 'External' },
    );
    expect(next.spec).toEqual({ ...existing.spec, memberships: [{ scope: 'Instance', invitation: { namespace: 'a', name: 'b', uid: 'u' } }] });
  });
});

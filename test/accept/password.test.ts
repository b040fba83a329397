import { parseOptions, verify } from '@node-rs/argon2';
import { describe, expect, it } from 'vitest';
import { checkSubmission } from '../../src/accept/form.ts';
import { ARGON2ID_OPTIONS, hashPassword } from '../../src/accept/hash.ts';
import { checkPassword, isCommon, isRepetitive, MAX_LENGTH, MIN_LENGTH, normalizePassword, passwordLength } from '../../src/accept/password.ts';

const context = { email: 'jane.doe@example.com', firstName: 'Jane', lastName: 'Doe' };

describe('the password policy (NIST SP 800-63B-4)', () => {
  it('needs 15 characters, and takes up to 128', () => {
    expect(MIN_LENGTH).toBe(15);
    expect(MAX_LENGTH).toBeGreaterThanOrEqual(64);
    expect(checkPassword('violet-kettle-7', context)).toBeUndefined();
    expect(checkPassword('violet-kettle7', context)).toBe('tooShort');
    expect(checkPassword('x'.repeat(14), context)).toBe('tooShort');
    const long = 'orange lanterns drift over a quiet harbour at dusk, '.repeat(3).slice(0, MAX_LENGTH);
    expect(checkPassword(long, context)).toBeUndefined();
    expect(checkPassword(`${long}!`, context)).toBe('tooLong');
  });

  it('imposes no composition rules: lowercase words and spaces are fine', () => {
    expect(checkPassword('correct staple orbit lantern', context)).toBeUndefined();
    expect(checkPassword('seven quiet orchids', context)).toBeUndefined();
  });

  it('counts Unicode code points, after NFKC normalization', () => {
    expect(passwordLength('🦊🦊🦊')).toBe(3);
    // The fullwidth letters a Japanese keyboard may type are the same password as ASCII ones.
    expect(normalizePassword('ｐａｓｓ')).toBe('pass');
    expect(checkPassword(normalizePassword('ｍｏｕｎｔａｉｎ ｒｉｖｅｒ ｓｋｙ'), context)).toBeUndefined();
    expect(checkPassword('🦊🐙🦉🐝🦋🐢🦔🐞🦀🐌🦎🐍🦑🐬🐳', context)).toBeUndefined();
    expect(checkPassword('🦊🐙🦉🐝🦋🐢🦔', context)).toBe('tooShort');
  });

  it.each([
    ['a listed password as it is', 'passwordpassword'],
    ['a listed one stretched with digits', 'Password123456789'],
    ['a listed one with symbols around it', '!!!iloveyou2024!!!'],
    ['a listed one in leetspeak', 'P@ssw0rd12345678'],
    ['a listed one repeated', 'dragondragondragon'],
    ['a long listed one', 'qwertyuiop12345'],
  ])('rejects %s', (_name, password) => {
    expect(isCommon(password.toLowerCase())).toBe(true);
    expect(checkPassword(password, context)).toMatch(/common|repetitive/);
  });

  it.each([
    ['one character repeated', 'aaaaaaaaaaaaaaaa'],
    ['two characters alternating', 'abababababababab'],
    ['a short unit repeated', 'abc1abc1abc1abc1'],
    ['the digits in a row', '123456789012345'],
    ['the digits backwards', '987654321098765'],
    ['the alphabet', 'abcdefghijklmnop'],
    ['a keyboard row', 'qwertyuiopasdfgh'],
  ])('rejects %s', (_name, password) => {
    expect(isRepetitive(password)).toBe(true);
    expect(checkPassword(password, context)).toMatch(/repetitive|common/);
  });

  it('rejects passwords containing the email local part or a piece of it', () => {
    expect(checkPassword('jane.doe-rules-the-world', context)).toBe('containsEmail');
    expect(checkPassword('my name is JANE and I like tea', { email: 'jane@example.com' })).toBe('containsEmail');
    expect(checkPassword('bob-the-builder-is-here', { email: 'bob@example.com' })).toBe('containsEmail');
  });

  it('rejects passwords containing the person’s name', () => {
    expect(checkPassword('violet smithson kettle', { email: 'js@example.com', firstName: 'Ann', lastName: 'Smithson' })).toBe('containsName');
  });

  it('does not forbid short words that happen to be in the email or name', () => {
    // "doe" (3 letters) and "ann" are inside too many words to forbid.
    expect(checkPassword('anecdotes of doe-eyed annuals', { email: 'ann.doe@example.com' })).toBeUndefined();
    expect(checkPassword('violet kettle ann lamp', { email: 'x@example.com', firstName: 'Ann' })).toBeUndefined();
  });

  it('accepts random and passphrase-like passwords', () => {
    for (const password of ['x9#Kq2!mZ7@pL4vR', 'Tr0ub4dor&3-horse-battery', 'purple monkey dishwasher 42', 'ein Kühlschrank voller Äpfel']) {
      expect(checkPassword(normalizePassword(password), context), password).toBeUndefined();
    }
  });
});

describe('the form', () => {
  const good = { firstName: ' Jane ', lastName: 'Doe', password: 'violet-kettle-lamp', confirm: 'violet-kettle-lamp', csrf: 'x' };

  it('returns the cleaned submission', () => {
    expect(checkSubmission(good, 'jane.doe@example.com')).toEqual({
      ok: true,
      submission: { firstName: 'Jane', lastName: 'Doe', password: 'violet-kettle-lamp' },
    });
  });

  it('takes a single name (last name optional)', () => {
    expect(checkSubmission({ ...good, lastName: '' }, 'jane.doe@example.com')).toEqual({
      ok: true,
      submission: { firstName: 'Jane', password: 'violet-kettle-lamp' },
    });
  });

  it('names every problem and gives back the names, never the passwords', () => {
    const result = checkSubmission({ firstName: '', lastName: 'x'.repeat(129), password: 'short', confirm: 'short' }, 'jane@example.com');
    expect(result).toEqual({
      ok: false,
      errors: {
        firstName: 'Enter your first name.',
        lastName: 'Your last name can be at most 128 characters.',
        password: expect.stringContaining('at least 15 characters') as unknown,
      },
      values: { firstName: '', lastName: 'x'.repeat(129) },
    });
  });

  it('asks for the same password twice', () => {
    expect(checkSubmission({ ...good, confirm: 'violet-kettle-lamq' }, 'jane@example.com')).toMatchObject({
      ok: false,
      errors: { confirm: expect.stringContaining('do not match') as unknown },
    });
  });

  it('refuses control characters in names and repeated fields', () => {
    expect(checkSubmission({ ...good, firstName: 'Ja\u0000ne' }, 'jane@example.com')).toMatchObject({
      ok: false,
      errors: { firstName: expect.stringContaining('cannot be used') as unknown },
    });
    expect(checkSubmission({ ...good, password: ['a', 'b'] }, 'jane@example.com')).toMatchObject({ ok: false, errors: { password: 'Choose a password.' } });
  });
});

describe('password hashing', () => {
  it('uses argon2id with OWASP parameters and a random salt, and verifies', async () => {
    expect(ARGON2ID_OPTIONS).toMatchObject({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });
    const [a, b] = await Promise.all([hashPassword('violet-kettle-lamp'), hashPassword('violet-kettle-lamp')]);
    expect(a).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(a).not.toBe(b);
    expect(parseOptions(a)).toMatchObject({ memoryCost: 19_456, timeCost: 2, parallelism: 1, saltLen: 16 });
    expect(await verify(a, 'violet-kettle-lamp')).toBe(true);
    expect(await verify(a, 'violet-kettle-lamq')).toBe(false);
  });
});

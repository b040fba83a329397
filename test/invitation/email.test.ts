// Internationalised addresses: which ones Usher takes (the same as the CRD's CEL
// rule, checked here on one table), the one form they are kept and mailed in
// (the domain in ASCII), and the form people read (the domain in Unicode).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { displayEmail, hasUnicodeLocalPart, isValidEmail, normalizeEmail } from '../../src/invitation/email.ts';
import { userNameFor } from '../../src/invitation/naming.ts';

/** The CRD's pattern for spec.email (RE2, as CEL runs it), compiled as a JavaScript regular expression with Unicode classes. */
function crdEmailPattern(): RegExp {
  interface Schema {
    properties?: Record<string, Schema>;
    'x-kubernetes-validations'?: { rule: string }[];
  }
  const crd = load(readFileSync(join(import.meta.dirname, '..', '..', 'crds', 'usher.dev_userinvitations.yaml'), 'utf8')) as {
    spec: { versions: { schema: { openAPIV3Schema: Schema } }[] };
  };
  const email = crd.spec.versions[0]?.schema.openAPIV3Schema.properties?.spec?.properties?.email;
  const rule = email?.['x-kubernetes-validations']?.[0]?.rule ?? '';
  const pattern = /self\.matches\(r'(.*)'\)/s.exec(rule)?.[1];
  if (!pattern) throw new Error(`no pattern in the CRD's email rule: ${rule}`);
  return new RegExp(pattern, 'u');
}

describe('internationalised addresses', () => {
  it.each([
    ['an internationalised domain', 'jose@bücher.example'],
    ['a domain in another script', 'info@例え.テスト'],
    ['a UTF-8 local part', 'jöse@example.com'],
    ['both', '用户@例子.广告'],
    ['a domain already in punycode', 'jose@xn--bcher-kva.example'],
    ['combining marks inside labels', 'info@उदाहरण.भारत'],
  ])('takes %s (%s), as the CRD does', (_what, address) => {
    expect(isValidEmail(address)).toBe(true);
    expect(crdEmailPattern().test(address)).toBe(true);
  });

  it.each([
    ['a no-break space in the local part', 'jo\u00a0se@example.com'],
    ['an ideographic space', 'jo\u3000se@example.com'],
    ['a right-to-left override, which would make one address look like another', 'jose\u202e@example.com'],
    ['a zero-width space', 'jo\u200bse@example.com'],
    ['a line separator', 'jose\u2028@example.com'],
    ['a C1 control character', 'jose\u0085@example.com'],
    ['a label starting with a combining mark', 'jose@\u0301bucher.example'],
    ['an underscore in the domain', 'jose@b_cher.example'],
    ['a symbol in the domain', 'jose@bücher☃.example'],
  ])('refuses %s, as the CRD does', (_what, address) => {
    expect(isValidEmail(address)).toBe(false);
    expect(crdEmailPattern().test(address)).toBe(false);
  });

  it('refuses what only IDNA can tell: a domain too long once in ASCII (the CRD takes it; the controller says InvalidSpec)', () => {
    // 50 ideographs: a label of 142 characters in punycode, over DNS's 63.
    const long = `jose@${Array.from({ length: 50 }, (_, i) => String.fromCodePoint(0x4e00 + i * 37)).join('')}.example`;
    expect(crdEmailPattern().test(long)).toBe(true);
    expect(isValidEmail(long)).toBe(false);
  });

  it('keeps and mails the domain in ASCII, one User whatever its case or script', () => {
    expect(normalizeEmail(' Jose@BÜCHER.example ')).toBe('jose@xn--bcher-kva.example');
    expect(normalizeEmail('jose@xn--bcher-kva.example')).toBe('jose@xn--bcher-kva.example');
    expect(userNameFor('Jose@Bücher.example')).toBe(userNameFor('jose@xn--bcher-kva.example'));
    // The local part is still only ASCII-lower-cased: Ü and ü are two mailboxes there.
    expect(normalizeEmail('Über@example.com')).toBe('Über@example.com');
    expect(normalizeEmail('Über@example.com')).not.toBe(normalizeEmail('über@example.com'));
    // ASCII addresses are what they were.
    expect(normalizeEmail('Jane.Doe@Example.COM')).toBe('jane.doe@example.com');
  });

  it('shows the domain in Unicode, the local part as written', () => {
    expect(displayEmail('Jose@xn--bcher-kva.example')).toBe('Jose@bücher.example');
    expect(displayEmail('jose@BÜCHER.example')).toBe('jose@bücher.example');
    expect(displayEmail('jane@example.com')).toBe('jane@example.com');
  });

  it('tells which addresses need SMTPUTF8: a local part beyond ASCII, not a domain', () => {
    expect(hasUnicodeLocalPart('jöse@example.com')).toBe(true);
    expect(hasUnicodeLocalPart('jose@bücher.example')).toBe(false);
    expect(hasUnicodeLocalPart('jane@example.com')).toBe(false);
  });
});

// One email address, as the CRD accepts it (crds/usher.dev_userinvitations.yaml
// has the same pattern as a CEL rule). Checked again here because Usher must
// never put anything that could inject a header into a mail.
//
// Internationalised addresses (RFC 6530): a domain may be written in Unicode
// (jose@bücher.example); it is the same mailbox as its ASCII form (punycode,
// xn--bcher-kva.example), which is what Users, records, SMTP envelopes and the
// identity provider carry. A local part may be UTF-8 (jöse@example.com): such
// an address can only be mailed through a server that offers SMTPUTF8, which
// the mail adapter checks (src/mail/transport.ts).
import { domainToASCII, domainToUnicode } from 'node:url';

/**
 * No separator (spaces of any kind, line breaks), no control or invisible format character
 * (zero-width and bidirectional marks, which would make one address look like another), and
 * none of the specials of a header.
 */
const LOCAL_PART = /^[^\p{Z}\p{Cc}\p{Cf}@,;:<>()[\]"\\]+$/u;
/** Labels of letters, marks and digits (a mark never first) and inner hyphens: the CRD's domain pattern. */
const DOMAIN = /^[\p{L}\p{N}]([\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?(\.[\p{L}\p{N}]([\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?)+$/u;
/** What the domain must be once in ASCII (IDNA): a host name of labels up to 63 characters, 253 in all. */
const ASCII_DOMAIN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;

/** The local part and the domain, split at the last @ (undefined without one). */
function split(email: string): { local: string; domain: string } | undefined {
  const at = email.lastIndexOf('@');
  return at < 0 ? undefined : { local: email.slice(0, at), domain: email.slice(at + 1) };
}

/** The domain in ASCII as IDNA (UTS #46) maps it: lower-cased, Unicode labels as punycode; '' when it cannot be. */
export function asciiDomain(domain: string): string {
  return domainToASCII(domain);
}

export function isValidEmail(email: string): boolean {
  const parts = split(email);
  if (email.length > 254 || !parts || !LOCAL_PART.test(parts.local) || !DOMAIN.test(parts.domain)) return false;
  const ascii = asciiDomain(parts.domain);
  return ascii.length <= 253 && ASCII_DOMAIN.test(ascii);
}

/**
 * Whether the address is in Unicode normal form C. An address that is not (a
 * decomposed é, or a character such as the Kelvin sign U+212A whose canonical
 * form is another character, K) is refused rather than normalised: folding it
 * would file two strings that a mail server may deliver to two mailboxes under
 * one User, and keeping it would file one mailbox under two Users.
 */
export function isNfc(email: string): boolean {
  return email === email.normalize('NFC');
}

/** Whether the local part has characters beyond ASCII: only a server offering SMTPUTF8 can deliver to it. */
export function hasUnicodeLocalPart(email: string): boolean {
  return /[\u0080-\u{10ffff}]/u.test(split(email.trim())?.local ?? '');
}

/**
 * The one form of an address that Users, records and SSO claims are compared
 * in (docs/security.md, "One User per person"): surrounding white space is
 * dropped and, in the local part, only the ASCII letters A–Z are lower-cased.
 * Nothing else of it is folded: String.toLowerCase() would turn the Kelvin sign
 * into k (landing "\u212Aim@example.com" on kim@example.com's User), and NFKC
 * would map fullwidth letters onto ASCII. Two local parts that differ after
 * this are two mailboxes, and two Users. The domain is another matter: DNS
 * compares names case-insensitively and resolves a Unicode name through its
 * IDNA (ASCII) form, so the domain is put in that form (bücher.example and
 * BÜCHER.example are xn--bcher-kva.example).
 */
export function normalizeEmail(email: string): string {
  const trimmed = email.trim();
  const parts = split(trimmed);
  const lowerAscii = (text: string): string => text.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
  if (!parts) return lowerAscii(trimmed);
  return `${lowerAscii(parts.local)}@${asciiDomain(parts.domain) || lowerAscii(parts.domain)}`;
}

/** The address for people to read: the domain in Unicode (jose@bücher.example), the local part as written. */
export function displayEmail(email: string): string {
  const parts = split(email.trim());
  if (!parts) return email.trim();
  const ascii = asciiDomain(parts.domain);
  return `${parts.local}@${ascii ? domainToUnicode(ascii) : parts.domain}`;
}

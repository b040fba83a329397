// One email address, as the CRD accepts it (crds/usher.dev_userinvitations.yaml
// has the same pattern as a CEL rule). Checked again here because Usher must
// never put anything that could inject a header into a mail.
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be refused
const EMAIL = /^[^\s\x00-\x1f\x7f@,;:<>()[\]"\\]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

export function isValidEmail(email: string): boolean {
  return email.length <= 254 && EMAIL.test(email);
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

/**
 * The one form of an address that Users, records and SSO claims are compared
 * in (docs/security.md, "One User per person"): surrounding white space is
 * dropped and only the ASCII letters A–Z are lower-cased. Nothing else is
 * folded: String.toLowerCase() would turn the Kelvin sign into k (landing
 * "\u212Aim@example.com" on kim@example.com's User), and NFKC would map
 * fullwidth letters onto ASCII. Two addresses that differ after this are two
 * mailboxes, and two Users.
 */
export function normalizeEmail(email: string): string {
  return email.trim().replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

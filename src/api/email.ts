// One email address, as the CRD accepts it (crds/usher.dev_userinvitations.yaml
// has the same pattern as a CEL rule). Checked again here because Usher must
// never put anything that could inject a header into a mail.
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be refused
const EMAIL = /^[^\s\x00-\x1f\x7f@,;:<>()[\]"\\]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

export function isValidEmail(email: string): boolean {
  return email.length <= 254 && EMAIL.test(email);
}

/**
 * The one form of an address that Users, records and SSO claims are compared
 * in (docs/security.md, "One User per person"):
 *
 *   - surrounding white space is dropped;
 *   - Unicode text is put in NFC, so that the same characters typed composed or
 *     decomposed (é as one code point or as e + U+0301) are the same address;
 *   - only the ASCII letters A–Z are lower-cased. Case-folding anything else
 *     would merge mailboxes that a mail server keeps apart: String.toLowerCase()
 *     turns the Kelvin sign K (U+212A) into k, so "\u212Aim@example.com" would
 *     land on kim@example.com's User. NFKC is not used for the same reason (it
 *     maps fullwidth and other compatibility forms onto ASCII).
 *
 * Two addresses that differ after this are two mailboxes, and two Users.
 */
export function normalizeEmail(email: string): string {
  return email
    .trim()
    .normalize('NFC')
    .replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

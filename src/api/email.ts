// One email address, as the CRD accepts it (crds/usher.dev_userinvitations.yaml
// has the same pattern as a CEL rule). Checked again here because Usher must
// never put anything that could inject a header into a mail.
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be refused
const EMAIL = /^[^\s\x00-\x1f\x7f@,;:<>()[\]"\\]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

export function isValidEmail(email: string): boolean {
  return email.length <= 254 && EMAIL.test(email);
}

/** Emails are compared case-insensitively: Ops.Lead@Example.org is ops.lead@example.org. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

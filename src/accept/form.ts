// The acceptance form's fields, checked: names as the User CRD stores them
// (at most 128 characters, no control characters) and the password against
// the policy. Values come back for re-display, except the passwords, which
// are never echoed into a page.
import { checkPassword, codePoints, normalizePassword, PASSWORD_MESSAGES } from './password.ts';
import type { FieldErrors } from './pages.ts';

/** The User CRD's maxLength for firstName and lastName. */
export const MAX_NAME_LENGTH = 128;

export interface Submission {
  firstName: string;
  lastName?: string;
  /** NFKC-normalized, ready to hash. */
  password: string;
}

export type FormBody = Record<string, unknown>;

export type Checked = { ok: true; submission: Submission } | { ok: false; errors: FieldErrors; values: { firstName: string; lastName: string } };

/** A single text field; repeated or non-text fields count as absent. */
export function field(body: FormBody | undefined, name: string): string | undefined {
  const value = body?.[name];
  return typeof value === 'string' ? value : undefined;
}

export function cleanName(value: string | undefined): string {
  return (value ?? '').normalize('NFC').replace(/\s+/gu, ' ').trim();
}

function nameProblem(name: string, label: string, required: boolean): string | undefined {
  if (name === '') return required ? `Enter your ${label}.` : undefined;
  if (codePoints(name).length > MAX_NAME_LENGTH) return `Your ${label} can be at most ${MAX_NAME_LENGTH} characters.`;
  if (/[\p{Cc}\p{Cf}]/u.test(name)) return `Your ${label} contains characters that cannot be used.`;
  return undefined;
}

export function checkSubmission(body: FormBody | undefined, email: string): Checked {
  const firstName = cleanName(field(body, 'firstName'));
  const lastName = cleanName(field(body, 'lastName'));
  const password = normalizePassword(field(body, 'password') ?? '');
  const confirm = normalizePassword(field(body, 'confirm') ?? '');
  const errors: FieldErrors = {};
  const firstProblem = nameProblem(firstName, 'first name', true);
  if (firstProblem) errors.firstName = firstProblem;
  const lastProblem = nameProblem(lastName, 'last name', false);
  if (lastProblem) errors.lastName = lastProblem;
  if (password === '') {
    errors.password = 'Choose a password.';
  } else {
    const problem = checkPassword(password, { email, firstName, lastName });
    if (problem) errors.password = PASSWORD_MESSAGES[problem];
    else if (confirm !== password) errors.confirm = 'The two passwords do not match. Type the same password twice.';
  }
  if (Object.keys(errors).length > 0) return { ok: false, errors, values: { firstName, lastName } };
  return { ok: true, submission: { firstName, ...(lastName ? { lastName } : {}), password } };
}

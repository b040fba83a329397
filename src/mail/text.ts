// Making untrusted values (tenant, group and role names, addresses) safe for where they
// land. The API server validates names, but the mail must stay safe even if a schema is
// loosened later or a value arrives through another path.
import { escapeHtml as escapeMarkup } from '../runtime/html.ts';

// C0/C1 controls (CR, LF, TAB, NUL, ESC…), the Unicode line/paragraph separators, and
// bidirectional overrides that could make "acme" display as something else.
const UNSAFE = /[\p{Cc}\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/** A value for a plain-text body: no control characters, so it cannot start lines of its own. */
export function cleanText(value: string): string {
  return value.replace(UNSAFE, ' ');
}

/** A value for a mail header: one line, no control characters, no runs of blanks. */
export function headerText(value: string): string {
  return cleanText(value).replace(/\s+/g, ' ').trim();
}

/** Escapes for both element content and quoted attribute values, which is where templates put values; control characters go first. */
export function escapeHtml(value: string): string {
  return escapeMarkup(cleanText(value));
}

// The password policy, after NIST SP 800-63B-4 (§3.1.1.2): a length floor,
// a generous ceiling, no composition rules ("one digit, one symbol…"), and a
// blocklist of common and breached passwords plus words from the person's own
// context. Passwords are normalized (NFKC) first, as the guidelines advise, so
// that the same passphrase typed on two keyboards is the same password; the
// sign-in side must normalize the same way (the credentials Secret says so).
import { dictionary } from '@zxcvbn-ts/language-common';

/**
 * 15, not 8 or 12: SP 800-63B-4 requires at least 15 characters when a
 * password is the only factor, which is how the platform's own sign-in uses
 * it. Fifteen characters is a short sentence; the page says so.
 */
export const MIN_LENGTH = 15;
/** SP 800-63B asks for at least 64; 128 fits any passphrase while bounding the work per request. */
export const MAX_LENGTH = 128;

export type PasswordProblem = 'tooShort' | 'tooLong' | 'common' | 'containsEmail' | 'containsName' | 'repetitive';

export interface PasswordContext {
  email: string;
  firstName?: string;
  lastName?: string;
}

/** What the person is told, next to the field. */
export const PASSWORD_MESSAGES: Record<PasswordProblem, string> = {
  tooShort: `Use at least ${MIN_LENGTH} characters. A few unrelated words make a strong, memorable password.`,
  tooLong: `Use at most ${MAX_LENGTH} characters.`,
  common: 'This password is too common: it appears in lists of leaked passwords. Choose another one.',
  containsEmail: 'Do not use your email address, or a part of it, in your password.',
  containsName: 'Do not use your name in your password.',
  repetitive: 'Avoid repeated or sequential characters such as "aaaa" or "12345".',
};

export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** Length in Unicode code points, as SP 800-63B counts it (an emoji is one character). */
export function passwordLength(password: string): number {
  return codePoints(password).length;
}

/** The code points of a text (not UTF-16 units, not grapheme clusters): what SP 800-63B counts. */
export function codePoints(text: string): string[] {
  return Array.from(text);
}

/** The first problem with `password` (already normalized), or undefined when it may be used. */
export function checkPassword(password: string, context: PasswordContext): PasswordProblem | undefined {
  const length = passwordLength(password);
  if (length < MIN_LENGTH) return 'tooShort';
  if (length > MAX_LENGTH) return 'tooLong';
  const lower = password.toLowerCase();
  if (containsContext(lower, emailWords(context.email))) return 'containsEmail';
  if (containsContext(lower, nameWords(context))) return 'containsName';
  if (isRepetitive(lower)) return 'repetitive';
  if (isCommon(lower)) return 'common';
  return undefined;
}

// ---- the blocklist

let common: Set<string> | undefined;

/** zxcvbn-ts's list of ~50,000 passwords most found in breach corpora. Built on first use. */
function commonPasswords(): Set<string> {
  common ??= new Set(dictionary['passwords-common'].map((p) => p.toLowerCase()));
  return common;
}

const LEET: Record<string, string> = { '0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a', $: 's', '!': 'i', '+': 't' };

/**
 * Whether the password is a listed one or a listed one dressed up: with
 * digits and symbols around it ("Password123456!"), in leetspeak ("P@ssw0rd"),
 * or repeated ("dragondragondragon"). At 15 characters few listed passwords
 * match as they are, and these are the ways people stretch them to fit.
 */
export function isCommon(lower: string): boolean {
  const list = commonPasswords();
  const core = lower.replace(/^[^\p{L}]+|[^\p{L}]+$/gu, '');
  const deLeeted = codePoints(core)
    .map((c) => LEET[c] ?? c)
    .join('');
  const lettersOnly = deLeeted.replace(/[^\p{L}]/gu, '');
  const candidates = new Set([lower, core, deLeeted, lettersOnly, ...[lower, lettersOnly].map(repeatedUnit)]);
  for (const candidate of candidates) {
    if (candidate !== undefined && candidate.length >= 4 && list.has(candidate)) return true;
  }
  return false;
}

/** "abcabcabc" → "abc"; undefined when the text is not a repetition. */
function repeatedUnit(text: string): string | undefined {
  const match = /^(.+?)\1+$/su.exec(text);
  return match?.[1];
}

// ---- repetition and sequences

const SEQUENCES = [
  'abcdefghijklmnopqrstuvwxyz',
  '0123456789',
  'qwertyuiopasdfghjklzxcvbnm',
  '1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p',
  'qwertzuiopasdfghjklyxcvbnm',
  'azertyuiopqsdfghjklmwxcvbn',
];

/**
 * Few distinct characters ("aaaaaaaaaaaaaaab", "abababababababab") or a run
 * along the alphabet, the digits or a keyboard row ("123456789012345"):
 * the "repetitive or sequential characters" SP 800-63B names.
 */
export function isRepetitive(lower: string): boolean {
  if (new Set(lower).size < 5) return true;
  const unit = repeatedUnit(lower);
  if (unit !== undefined && unit.length <= 4) return true;
  return SEQUENCES.some((sequence) => isWithinSequence(lower, sequence));
}

function isWithinSequence(text: string, sequence: string): boolean {
  // Long enough to hold any text of MAX_LENGTH, forwards and backwards, wrapping around.
  const forwards = sequence.repeat(Math.ceil(MAX_LENGTH / sequence.length) + 1);
  const backwards = codePoints(forwards).reverse().join('');
  return forwards.includes(text) || backwards.includes(text);
}

// ---- the person's own words

/**
 * Shortest word from the person's context that counts. The whole local part
 * of the email counts from 3 characters ("bob"); its pieces and the names from
 * 4, since a three-letter piece ("doe", "ann") is inside too many real words.
 */
const MIN_LOCAL_PART = 3;
const MIN_PIECE = 4;

function emailWords(email: string): string[] {
  const local = (email.split('@')[0] ?? '').toLowerCase();
  const pieces = local.split(/[._+-]+/).filter((piece) => piece.length >= MIN_PIECE);
  return local.length >= MIN_LOCAL_PART ? [local, ...pieces] : pieces;
}

function nameWords({ firstName, lastName }: PasswordContext): string[] {
  return [firstName, lastName].flatMap((name) => (name ?? '').toLowerCase().split(/[\s'.-]+/)).filter((word) => word.length >= MIN_PIECE);
}

function containsContext(lower: string, words: readonly string[]): boolean {
  return words.some((word) => lower.includes(word));
}

// ISO-8601 durations (P7D, PT12H, PT0.5S) to milliseconds, for the
// configuration file and for an invitation's spec.expireAfter.
import { parse, type Duration } from 'tinyduration';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// A year is 365 days and a month 30 days: these durations are lifetimes and
// periods counted from "now", so they need no calendar (and must not depend on
// the date they are applied to).
const UNIT_MS: Record<keyof Omit<Duration, 'negative'>, number> = {
  years: 365 * DAY,
  months: 30 * DAY,
  weeks: 7 * DAY,
  days: DAY,
  hours: HOUR,
  minutes: MINUTE,
  seconds: SECOND,
};

const DESIGNATORS = /[YMWDHS]/g;

/**
 * The length of an ISO-8601 duration in milliseconds (rounded to a whole one).
 * Throws an Error saying what is wrong when the text is not a duration, or is
 * negative or zero.
 */
export function parseDuration(text: string): number {
  const notADuration = new Error(`${JSON.stringify(text)} is not an ISO-8601 duration such as P7D or PT12H`);
  let duration: Duration;
  try {
    duration = parse(text);
  } catch {
    throw notADuration;
  }
  // tinyduration's pattern is not anchored: "P7Dx" or "PT1H2D" parse as their
  // valid prefix. Whole-string check without restating the grammar: only
  // duration characters, ending in a designator (not a dangling T), and every
  // designator letter accounted for by a parsed component.
  const parsed = Object.keys(duration).filter((k) => k !== 'negative').length;
  if (!/^-?P[\d.,YMWDTHS]*[YMWDHS]$/.test(text) || (text.match(DESIGNATORS) ?? []).length !== parsed) {
    throw notADuration;
  }
  if (duration.negative === true) {
    throw new Error(`${JSON.stringify(text)} is negative; a duration must be longer than zero`);
  }
  let ms = 0;
  for (const [unit, perUnit] of Object.entries(UNIT_MS) as [keyof typeof UNIT_MS, number][]) {
    ms += (duration[unit] ?? 0) * perUnit;
  }
  if (ms === 0) {
    throw new Error(`${JSON.stringify(text)} is zero; a duration must be longer than zero`);
  }
  const rounded = Math.round(ms);
  if (rounded === 0) {
    throw new Error(`${JSON.stringify(text)} is shorter than a millisecond`);
  }
  if (!Number.isSafeInteger(rounded)) {
    throw new Error(`${JSON.stringify(text)} is too long to be a duration Usher can keep`);
  }
  return rounded;
}

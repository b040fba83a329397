// Expiry in words and as a date. Written out by hand rather than with Intl so the mail
// reads the same whatever ICU data or locale the container has.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? '' : 's'}`;

/**
 * "in 7 days", "in 36 hours", "in 20 minutes". Rounded to the nearest hour first so that
 * a link issued a moment ago for P7D still says 7 days; beyond two days whole days are
 * rounded down, never promising more time than there is.
 */
export function expiresInWords(expiresAt: Date, now: Date): string {
  const ms = expiresAt.getTime() - now.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('expiresAt and now must be valid dates');
  if (ms <= 0) throw new RangeError('the invitation has already expired');
  if (ms < HOUR) return `in ${plural(Math.max(1, Math.round(ms / MINUTE)), 'minute')}`;
  const hours = Math.round(ms / HOUR);
  if (hours < 48 && hours % 24 !== 0) return `in ${plural(hours, 'hour')}`;
  return `in ${plural(Math.floor(hours / 24), 'day')}`;
}

const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** "Friday, 14 March 2025 at 09:30 UTC": unambiguous for readers on any side of the Atlantic. */
export function utcDate(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  const weekday = WEEKDAYS[date.getUTCDay()] ?? '';
  const month = MONTHS[date.getUTCMonth()] ?? '';
  return `${weekday}, ${date.getUTCDate()} ${month} ${date.getUTCFullYear()} at ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())} UTC`;
}

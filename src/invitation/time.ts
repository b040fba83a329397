// Timestamps as Usher writes them everywhere (status, records, conditions):
// RFC 3339 in UTC with seconds precision, as Kubernetes writes its own.

/** `2026-12-01T12:00:00Z`: the date without its milliseconds. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

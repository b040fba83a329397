// Percentiles and the printed table.

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? NaN;
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

export const ms = (value: number): string =>
  Number.isNaN(value) ? '–' : value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${value.toFixed(value < 10 ? 1 : 0)} ms`;
export const perSecond = (value: number): string => `${value.toFixed(value < 10 ? 1 : 0)}/s`;
export const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
export const bytes = (value: number): string => (Math.abs(value) >= 10_240 ? `${(value / 1024).toFixed(1)} KiB` : `${Math.round(value)} B`);

/** One row of the result table: benchmark, what was measured, the figure, and a note. */
export interface Row {
  bench: string;
  metric: string;
  value: string;
  note?: string;
}

/** A Markdown table, aligned for the terminal too. */
export function table(rows: readonly Row[]): string {
  const header: Row = { bench: 'benchmark', metric: 'metric', value: 'value', note: 'notes' };
  const all = [header, ...rows];
  const width = (key: keyof Row): number => Math.max(...all.map((r) => (r[key] ?? '').length));
  const w = { bench: width('bench'), metric: width('metric'), value: width('value'), note: width('note') };
  const line = (r: Row): string =>
    `| ${r.bench.padEnd(w.bench)} | ${r.metric.padEnd(w.metric)} | ${r.value.padStart(w.value)} | ${(r.note ?? '').padEnd(w.note)} |`;
  const rule = `| ${'-'.repeat(w.bench)} | ${'-'.repeat(w.metric)} | ${'-'.repeat(w.value - 1)}: | ${'-'.repeat(w.note)} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** "POST secrets 2.0, PUT secrets 4.0…" per invitation, from request counts. */
export function perInvitation(counts: Map<string, number>, n: number, filter: (key: string) => boolean = () => true): string {
  return [...counts]
    .filter(([key]) => filter(key))
    .sort((a, b) => b[1] - a[1])
    .map(([key, value]) => `${key} ${(value / n).toFixed(2)}`)
    .join(', ');
}

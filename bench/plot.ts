// Draws BENCHMARKS.md's images from a run's figures: throughput against N
// (operator, the limit, and optionally the operator before the fix from a
// second file), and the create → Sent latency distribution (operator and
// limit), and for a run with --only peer Usher, the Go peer and the Go bound
// side by side (throughput; RSS against settled invitations). Hand-written
// SVG, rendered to PNG by Debian's Chromium through
// playwright-core (as the browser tests do).
//
//   node bench/plot.ts [--results bench/results/latest.json] [--before bench/results/before.json] [--out bench/plots]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { root } from './support/plane.ts';
import { percentile } from './support/stats.ts';

const { values } = parseArgs({
  options: {
    results: { type: 'string', default: join(root, 'bench', 'results', 'latest.json') },
    before: { type: 'string' },
    out: { type: 'string', default: join(root, 'bench', 'plots') },
  },
  strict: true,
});

interface Batch {
  n: number;
  rate: number;
}
interface Results {
  startedAt: string;
  machine: { cpus: number; memoryGiB: number };
  throughput?: { operator: Batch[]; limit: Batch[] };
  latency?: { latenciesMs: number[]; limit: { latenciesMs: number[] } };
  peer?: {
    n: number;
    usher: { rate: number };
    peer: { rate: number };
    bound: { rate: number };
    memory?: Record<'usher' | 'peer' | 'bound', { invitations: number; rss: number; heap: number }[]>;
  };
}

const results = JSON.parse(readFileSync(values.results, 'utf8')) as Results;
const before = values.before ? (JSON.parse(readFileSync(values.before, 'utf8')) as Results) : undefined;
mkdirSync(values.out, { recursive: true });

const W = 860;
const H = 500;
const M = { left: 70, right: 250, top: 56, bottom: 60 };
const plotW = W - M.left - M.right;
const plotH = H - M.top - M.bottom;
const COLORS = { operator: '#1f6feb', limit: '#6e7781', before: '#d1692a', peer: '#1a7f37' };
const PROGRAMS = [
  { key: 'usher', label: 'Usher', color: COLORS.operator, dash: false },
  { key: 'peer', label: 'Go controller-runtime peer', color: COLORS.peer, dash: false },
  { key: 'bound', label: 'Go bound (plain client)', color: COLORS.limit, dash: true },
] as const;
const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

function niceMax(value: number): number {
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

function frame(
  title: string,
  subtitle: string,
  xLabel: string,
  yLabel: string,
  yMax: number,
  yTicks: number,
  yFormat: (v: number) => string,
  body: string,
  xTicks: string,
  legend: string,
): string {
  const grid = Array.from({ length: yTicks + 1 }, (_, i) => {
    const v = (yMax * i) / yTicks;
    const y = M.top + plotH - (plotH * i) / yTicks;
    return `<line x1="${M.left}" x2="${M.left + plotW}" y1="${y}" y2="${y}" stroke="#e6e8eb"/><text x="${M.left - 8}" y="${y + 4}" text-anchor="end" class="tick">${yFormat(v)}</text>`;
  }).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">
<style>text{font-family:'DejaVu Sans',sans-serif;fill:#1f2328}.tick{font-size:12px;fill:#57606a}.title{font-size:17px;font-weight:bold}.sub{font-size:12px;fill:#57606a}.axis{font-size:13px}.legend{font-size:13px}.label{font-size:11px}</style>
<rect width="${W}" height="${H}" fill="#fff"/>
<text x="${M.left}" y="24" class="title">${esc(title)}</text>
<text x="${M.left}" y="42" class="sub">${esc(subtitle)}</text>
${grid}
<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + plotH}" stroke="#8c959f"/>
<line x1="${M.left}" x2="${M.left + plotW}" y1="${M.top + plotH}" y2="${M.top + plotH}" stroke="#8c959f"/>
${xTicks}
<text x="${M.left + plotW / 2}" y="${H - 14}" text-anchor="middle" class="axis">${esc(xLabel)}</text>
<text transform="translate(18 ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle" class="axis">${esc(yLabel)}</text>
${body}
${legend}
</svg>`;
}

function legendBox(entries: { color: string; label: string; dash?: boolean; lines?: string[] }[]): string {
  let y = M.top + 10;
  return entries
    .map((e) => {
      const out = `<line x1="${W - M.right + 18}" x2="${W - M.right + 46}" y1="${y}" y2="${y}" stroke="${e.color}" stroke-width="3"${e.dash ? ' stroke-dasharray="6 4"' : ''}/><text x="${W - M.right + 54}" y="${y + 4}" class="legend">${esc(e.label)}</text>${(e.lines ?? []).map((l, i) => `<text x="${W - M.right + 54}" y="${y + 22 + i * 16}" class="label">${esc(l)}</text>`).join('')}`;
      y += 34 + (e.lines?.length ?? 0) * 16;
      return out;
    })
    .join('');
}

function throughputSvg(): string | undefined {
  const t = results.throughput;
  if (!t || t.operator.length === 0) return undefined;
  const series = [
    { key: 'limit', label: 'limit (plain client)', color: COLORS.limit, dash: true, points: t.limit },
    { key: 'operator', label: 'operator', color: COLORS.operator, dash: false, points: t.operator },
    ...(before?.throughput ? [{ key: 'before', label: 'operator before the fix', color: COLORS.before, dash: false, points: before.throughput.operator }] : []),
  ];
  const ns = [...new Set(series.flatMap((s) => s.points.map((p) => p.n)))].sort((a, b) => a - b);
  const yMax = niceMax(Math.max(...series.flatMap((s) => s.points.map((p) => p.rate))) * 1.15);
  // N on a log scale: 250, 500, 1000, 2000 are evenly spaced.
  const lo = Math.log2(ns[0] ?? 1);
  const hi = Math.log2(ns.at(-1) ?? 2);
  const x = (n: number): number => M.left + 30 + ((plotW - 60) * (Math.log2(n) - lo)) / Math.max(hi - lo, 1);
  const y = (v: number): number => M.top + plotH - (plotH * v) / yMax;
  const xTicks = ns
    .map(
      (n) =>
        `<line x1="${x(n)}" x2="${x(n)}" y1="${M.top + plotH}" y2="${M.top + plotH + 5}" stroke="#8c959f"/><text x="${x(n)}" y="${M.top + plotH + 20}" text-anchor="middle" class="tick">${n}</text>`,
    )
    .join('');
  const body = series
    .map((s) => {
      const pts = [...s.points].sort((a, b) => a.n - b.n);
      const path = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.n).toFixed(1)} ${y(p.rate).toFixed(1)}`).join(' ');
      return `<path d="${path}" fill="none" stroke="${s.color}" stroke-width="3"${s.dash ? ' stroke-dasharray="6 4"' : ''}/>${pts.map((p) => `<circle cx="${x(p.n)}" cy="${y(p.rate)}" r="4" fill="${s.color}"/><text x="${x(p.n)}" y="${y(p.rate) - 9}" text-anchor="middle" class="label" fill="${s.color}">${p.rate.toFixed(0)}</text>`).join('')}`;
    })
    .join('');
  const legend = legendBox(series.map((s) => ({ color: s.color, label: s.label, dash: s.dash })));
  return frame(
    'Throughput: N invitations applied at once, until all are Sent',
    `${results.machine.cpus} cores, ${results.machine.memoryGiB} GiB; control plane, operator, SMTP sink and bench on the same machine; run ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC`,
    'N (invitations in the batch, log scale)',
    'invitations per second',
    yMax,
    5,
    (v) => v.toFixed(0),
    body,
    xTicks,
    legend,
  );
}

function latencySvg(): string | undefined {
  const l = results.latency;
  if (!l || l.latenciesMs.length === 0) return undefined;
  const series = [
    { label: 'limit (plain client)', color: COLORS.limit, dash: true, values: l.limit.latenciesMs, left: true },
    { label: 'operator', color: COLORS.operator, dash: false, values: l.latenciesMs, left: false },
  ];
  const all = series.flatMap((s) => s.values);
  const xMax = niceMax(Math.max(...all) * 1.05);
  const x = (v: number): number => M.left + (plotW * v) / xMax;
  const y = (f: number): number => M.top + plotH - plotH * f;
  const ticks = 5;
  const xTicks = Array.from({ length: ticks + 1 }, (_, i) => {
    const v = (xMax * i) / ticks;
    return `<line x1="${x(v)}" x2="${x(v)}" y1="${M.top + plotH}" y2="${M.top + plotH + 5}" stroke="#8c959f"/><text x="${x(v)}" y="${M.top + plotH + 20}" text-anchor="middle" class="tick">${v.toFixed(0)}</text>`;
  }).join('');
  const body = series
    .map((s) => {
      const sorted = [...s.values].sort((a, b) => a - b);
      // Empirical CDF as a step line.
      let d = `M${x(0).toFixed(1)} ${y(0).toFixed(1)}`;
      sorted.forEach((v, i) => {
        d += ` L${x(v).toFixed(1)} ${y(i / sorted.length).toFixed(1)} L${x(v).toFixed(1)} ${y((i + 1) / sorted.length).toFixed(1)}`;
      });
      const marks = [50, 95, 99]
        .map((p) => {
          const v = percentile(s.values, p);
          // The limit's labels to the left of its marks, the operator's to the right, so that they do not collide.
          return `<circle cx="${x(v)}" cy="${y(p / 100)}" r="4" fill="${s.color}"/><text x="${x(v) + (s.left ? -7 : 7)}" y="${y(p / 100) + (s.left ? -6 : 13)}" text-anchor="${s.left ? 'end' : 'start'}" class="label" fill="${s.color}">p${p} ${v.toFixed(0)} ms</text>`;
        })
        .join('');
      return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2.5"${s.dash ? ' stroke-dasharray="6 4"' : ''}/>${marks}`;
    })
    .join('');
  const legend = legendBox(
    series.map((s) => ({
      color: s.color,
      label: s.label,
      dash: s.dash,
      lines: [`p50 ${percentile(s.values, 50).toFixed(0)} · p95 ${percentile(s.values, 95).toFixed(0)} · p99 ${percentile(s.values, 99).toFixed(0)} ms`],
    })),
  );
  return frame(
    `Latency: create → Sent, ${l.latenciesMs.length} invitations one after another`,
    `share of invitations Sent within x ms (empirical CDF); ${results.machine.cpus} cores, ${results.machine.memoryGiB} GiB; run ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC`,
    'create → Sent (ms)',
    'share of invitations',
    1,
    4,
    (v) => `${Math.round(v * 100)}%`,
    body,
    xTicks,
    legend,
  );
}

function peerThroughputSvg(): string | undefined {
  const p = results.peer;
  if (!p) return undefined;
  const bars = PROGRAMS.map((s) => ({ ...s, rate: p[s.key].rate }));
  const yMax = niceMax(Math.max(...bars.map((b) => b.rate)) * 1.15);
  const y = (v: number): number => M.top + plotH - (plotH * v) / yMax;
  const slot = plotW / bars.length;
  const body = bars
    .map((b, i) => {
      const x0 = M.left + slot * i + slot * 0.2;
      return `<rect x="${x0}" y="${y(b.rate)}" width="${slot * 0.6}" height="${M.top + plotH - y(b.rate)}" fill="${b.color}"${b.dash ? ' fill-opacity="0.6"' : ''}/><text x="${x0 + slot * 0.3}" y="${y(b.rate) - 8}" text-anchor="middle" class="label">${b.rate.toFixed(1)}/s</text>`;
    })
    .join('');
  const xTicks = bars
    .map(
      (b, i) =>
        `<text x="${M.left + slot * (i + 0.5)}" y="${M.top + plotH + 20}" text-anchor="middle" class="tick">${esc(b.label.split(' ')[0] === 'Go' ? b.label.split(' ').slice(0, 2).join(' ') : b.label)}</text>`,
    )
    .join('');
  const legend = legendBox(bars.map((b) => ({ color: b.color, label: b.label, dash: b.dash, lines: [`Usher ÷ this: ${(p.usher.rate / b.rate).toFixed(2)}`] })));
  return frame(
    `Throughput, N=${p.n} invitations at once, until all are Sent`,
    `one control plane, one program at a time; ${results.machine.cpus} cores, ${results.machine.memoryGiB} GiB; run ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    'invitations per second',
    yMax,
    5,
    (v) => v.toFixed(0),
    body,
    xTicks,
    legend,
  );
}

function peerMemorySvg(): string | undefined {
  const memory = results.peer?.memory;
  if (!memory || memory.usher.length < 2) return undefined;
  const mib = (b: number): number => b / 2 ** 20;
  const xMax = Math.max(...memory.usher.map((m) => m.invitations));
  const yMax = niceMax(Math.max(...PROGRAMS.flatMap((s) => memory[s.key].map((m) => mib(m.rss)))) * 1.15);
  const x = (n: number): number => M.left + 20 + ((plotW - 40) * n) / xMax;
  const y = (v: number): number => M.top + plotH - (plotH * v) / yMax;
  const xTicks = memory.usher
    .map(
      (m) =>
        `<line x1="${x(m.invitations)}" x2="${x(m.invitations)}" y1="${M.top + plotH}" y2="${M.top + plotH + 5}" stroke="#8c959f"/><text x="${x(m.invitations)}" y="${M.top + plotH + 20}" text-anchor="middle" class="tick">${m.invitations.toLocaleString('en')}</text>`,
    )
    .join('');
  const body = PROGRAMS.map((s) => {
    const pts = memory[s.key];
    const path = pts.map((m, i) => `${i ? 'L' : 'M'}${x(m.invitations).toFixed(1)} ${y(mib(m.rss)).toFixed(1)}`).join(' ');
    return `<path d="${path}" fill="none" stroke="${s.color}" stroke-width="3"${s.dash ? ' stroke-dasharray="6 4"' : ''}/>${pts.map((m) => `<circle cx="${x(m.invitations)}" cy="${y(mib(m.rss))}" r="4" fill="${s.color}"/><text x="${x(m.invitations)}" y="${y(mib(m.rss)) - 9}" text-anchor="middle" class="label" fill="${s.color}">${mib(m.rss).toFixed(0)}</text>`).join('')}`;
  }).join('');
  const legend = legendBox(
    PROGRAMS.map((s) => {
      const last = memory[s.key].at(-1);
      return {
        color: s.color,
        label: s.label,
        dash: s.dash,
        lines: last ? [`heap after GC ${mib(last.heap).toFixed(0)} MiB at ${last.invitations.toLocaleString('en')}`] : [],
      };
    }),
  );
  return frame(
    'Memory: RSS once every settled invitation was reconciled',
    `each program started on the same settled invitations; ${results.machine.cpus} cores, ${results.machine.memoryGiB} GiB; run ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC`,
    'settled invitations in the cluster',
    'RSS (MiB)',
    yMax,
    5,
    (v) => v.toFixed(0),
    body,
    xTicks,
    legend,
  );
}

const images = [
  ['throughput', throughputSvg()],
  ['latency', latencySvg()],
  ['peer-throughput', peerThroughputSvg()],
  ['peer-memory', peerMemorySvg()],
] as const;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  for (const [name, svg] of images) {
    if (!svg) continue;
    writeFileSync(join(values.out, `${name}.svg`), svg);
    const page = await browser.newPage({ viewport: { width: W, height: H }, deviceScaleFactor: 2 });
    await page.setContent(`<!doctype html><html><body style="margin:0">${svg}</body></html>`);
    await page.locator('svg').screenshot({ path: join(values.out, `${name}.png`) });
    await page.close();
    process.stdout.write(`wrote ${join(values.out, `${name}.png`)} (and .svg)\n`);
  }
} finally {
  await browser.close();
}

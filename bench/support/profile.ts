// Reads a V8 CPU profile (node --cpu-prof) and sums self time per function and
// per package, to see where the operator's CPU went.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  totalMs: number;
  /** Self time excluding (idle). */
  busyMs: number;
  functions: { name: string; ms: number }[];
  packages: { name: string; ms: number }[];
}

/** node_modules/<pkg> (scoped too), src/…, node:…, or a V8 pseudo-frame such as (garbage collector). */
function packageOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm?.[1]) return nm[1];
  if (url.startsWith('node:')) return url.split('/')[0] ?? url;
  const src = /\/(src|bench|tools)\/(.*)$/.exec(url);
  if (src) return `${src[1] ?? ''}/${(src[2] ?? '').split('/')[0] ?? ''}`;
  return url;
}

export function summariseProfile(path: string, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] ?? 0;
    // timeDeltas[i] is the time before sample i; attribute the next delta to this sample.
    const dt = (deltas[i + 1] ?? deltas[i] ?? 0) / 1000;
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  let busy = 0;
  let total = 0;
  for (const [id, t] of self) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    total += t;
    if (functionName === '(idle)') continue;
    busy += t;
    const file = url ? url.replace(/^.*\/(node_modules\/)/, '$1').replace(/^file:\/\/.*\/(src|bench|tools)\//, '$1/') : '';
    const key = `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : ''}`.trim();
    functions.set(key, (functions.get(key) ?? 0) + t);
    const pkg = packageOf(url, functionName);
    packages.set(pkg, (packages.get(pkg) ?? 0) + t);
  }
  const sorted = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({ name, ms }));
  return { totalMs: total, busyMs: busy, functions: sorted(functions), packages: sorted(packages) };
}

export function formatProfile(summary: ProfileSummary): string {
  const pct = (ms: number): string => `${((100 * ms) / summary.busyMs).toFixed(1).padStart(5)}%`;
  return [
    `CPU busy ${(summary.busyMs / 1000).toFixed(1)} s of ${(summary.totalMs / 1000).toFixed(1)} s sampled`,
    'self time by package:',
    ...summary.packages.map((p) => `  ${pct(p.ms)}  ${p.name}`),
    'self time by function:',
    ...summary.functions.map((f) => `  ${pct(f.ms)}  ${f.name}`),
  ].join('\n');
}

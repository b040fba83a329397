// Copies the CRDs from crds/ (their one source) into the Helm chart's
// charts/usher/files/crds/, which templates/crds.yaml renders. A copy rather
// than a symlink so that the chart folder stands on its own wherever it goes
// (helm package, Flux or Argo CD reading it from Git, Windows checkouts);
// test/chart/render.int.test.ts fails when the copy is behind.
//
//   node tools/sync-chart-crds.ts          # write the copy
//   node tools/sync-chart-crds.ts --check  # exit 1 if it differs (CI)
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SOURCE_DIR = join(root, 'crds');
export const CHART_CRD_DIR = join(root, 'charts', 'usher', 'files', 'crds');

const header = (name: string): string =>
  `# Generated from crds/${name} by tools/sync-chart-crds.ts: edit that file, then run\n# \`node tools/sync-chart-crds.ts\`. Helm renders this copy (templates/crds.yaml).\n`;

/** What files/crds/ should hold: file name → content. */
export function expectedChartCrds(): Map<string, string> {
  const files = readdirSync(SOURCE_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  return new Map(files.map((f) => [f, header(f) + readFileSync(join(SOURCE_DIR, f), 'utf8')]));
}

/** Differences between files/crds/ and what it should hold, one line each; empty when in step. */
export function chartCrdDrift(): string[] {
  const expected = expectedChartCrds();
  const present = existsSync(CHART_CRD_DIR) ? readdirSync(CHART_CRD_DIR).filter((f) => f.endsWith('.yaml')) : [];
  const drift: string[] = [];
  for (const [name, content] of expected) {
    const path = join(CHART_CRD_DIR, name);
    if (!existsSync(path)) drift.push(`${name}: missing from charts/usher/files/crds/`);
    else if (readFileSync(path, 'utf8') !== content) drift.push(`${name}: differs from crds/${name}`);
  }
  for (const name of present) if (!expected.has(name)) drift.push(`${name}: not in crds/ any more`);
  return drift;
}

export function syncChartCrds(): void {
  mkdirSync(CHART_CRD_DIR, { recursive: true });
  const expected = expectedChartCrds();
  for (const name of readdirSync(CHART_CRD_DIR)) if (!expected.has(name)) rmSync(join(CHART_CRD_DIR, name));
  for (const [name, content] of expected) writeFileSync(join(CHART_CRD_DIR, name), content);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--check')) {
    const drift = chartCrdDrift();
    if (drift.length > 0) {
      process.stderr.write(
        `charts/usher/files/crds/ is out of step with crds/:\n${drift.map((d) => `  ${d}`).join('\n')}\nrun: node tools/sync-chart-crds.ts\n`,
      );
      process.exit(1);
    }
  } else {
    syncChartCrds();
    process.stdout.write(`copied ${[...expectedChartCrds().keys()].join(', ')} to charts/usher/files/crds/\n`);
  }
}

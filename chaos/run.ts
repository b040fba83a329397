// `npm run chaos`: the long fault tests, each against a fresh local control
// plane with the operator as its own process. Each prints what it counted and
// its checks; the run ends with a summary and exits 1 if any check failed.
// (The quick ones are in the test suite: test/chaos/*.int.test.ts.)
//
//   npm run chaos                                   # all of them, default sizes
//   npm run chaos -- --only kill,gone --kill-n 200  # some, smaller
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { root } from '../bench/support/plane.ts';
import { restartApiServerMidBatch } from './apiserver.ts';
import { fuzzSpecs } from './fuzz.ts';
import { watchExpires } from './gone.ts';
import { killDuringBatch } from './kill.ts';
import { smtpDownMidBatch } from './smtp.ts';

const ALL = ['kill', 'apiserver', 'apiserver-long', 'smtp', 'gone', 'fuzz'] as const;

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: ALL.join(',') },
    'kill-n': { type: 'string', default: '500' },
    kills: { type: 'string', default: '10' },
    'apiserver-n': { type: 'string', default: '500' },
    'apiserver-down': { type: 'string', default: '2' },
    'apiserver-long-down': { type: 'string', default: '20' },
    'smtp-n': { type: 'string', default: '500' },
    'smtp-down': { type: 'string', default: '30' },
    'gone-n': { type: 'string', default: '200' },
    'gone-changes': { type: 'string', default: '30' },
    'fuzz-runs': { type: 'string', default: '200' },
    seed: { type: 'string' },
    'operator-root': { type: 'string' },
    out: { type: 'string', default: join(root, 'chaos', 'results', 'latest.json') },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (values.help) {
  process.stdout
    .write(`usage: npm run chaos -- [--only ${ALL.join(',')}] [--kill-n 500] [--kills 10] [--apiserver-n 500] [--apiserver-down 2] [--apiserver-long-down 20]
  [--smtp-n 500] [--smtp-down 30] [--gone-n 200] [--gone-changes 30] [--fuzz-runs 200] [--seed N] [--operator-root DIR (gone only)] [--out FILE]\n`);
  process.exit(0);
}
const int = (name: string, text: string | undefined): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, not ${JSON.stringify(text)}`);
  return n;
};
const only = new Set(
  values.only
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
for (const name of only) if (!(ALL as readonly string[]).includes(name)) throw new Error(`--only: unknown fault test ${name} (known: ${ALL.join(', ')})`);
/** Everything printed, also saved beside the figures (FILE.txt next to FILE.json). */
const printed: string[] = [];
const log = (line: string): void => {
  printed.push(line);
  process.stdout.write(`${line}\n`);
};

const started = performance.now();
log(
  `Usher fault tests on ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
const summary: { test: string; ok: boolean; counted: string }[] = [];
const results: Record<string, unknown> = { startedAt: new Date().toISOString(), args: process.argv.slice(2) };
const save = (): void => {
  mkdirSync(join(values.out, '..'), { recursive: true });
  writeFileSync(values.out, `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync(values.out.replace(/(\.json)?$/, '.txt'), `${printed.join('\n')}\n`);
};

async function step<T extends { ok: boolean }>(name: string, title: string, run: () => Promise<T>, counted: (r: T) => string): Promise<void> {
  log(`\n[${name}] ${title}`);
  const t0 = performance.now();
  try {
    const r = await run();
    results[name] = r;
    summary.push({ test: name, ok: r.ok, counted: `${counted(r)}; ${((performance.now() - t0) / 1000).toFixed(0)} s` });
  } catch (err) {
    results[name] = { error: String(err) };
    log(`    FAIL ${(err as Error).stack ?? String(err)}`);
    summary.push({ test: name, ok: false, counted: `error: ${(err as Error).message.slice(0, 200)}` });
  }
  save();
}

if (only.has('kill')) {
  const n = int('kill-n', values['kill-n']);
  const kills = int('kills', values.kills);
  await step(
    'kill',
    `SIGKILL the operator ${kills} times at random moments during a ${n}-invitation batch`,
    () => killDuringBatch({ n, kills, log }),
    (r) =>
      `${r.lost} lost, ${r.mails} mails, ${r.duplicates} duplicates (${r.beyondGuarantee} beyond the guarantee; in flight at the kills: ${r.inFlightAtKill.join('/')})`,
  );
}
if (only.has('apiserver')) {
  const n = int('apiserver-n', values['apiserver-n']);
  const downMs = int('apiserver-down', values['apiserver-down']) * 1000;
  await step(
    'apiserver',
    `kill kube-apiserver and start it again (down ${downMs / 1000} s) in the middle of a ${n}-invitation batch`,
    () => restartApiServerMidBatch({ n, downMs, signal: 'SIGKILL', expectExit: false, workers: 4, log }),
    (r) =>
      `all Sent ${r.drainSeconds.toFixed(1)} s after it was back (harness watch ${r.harnessDrainSeconds.toFixed(1)} s; ${r.paceDrainSeconds.toFixed(1)} s at the pace before), first mail after ${r.firstMailSeconds.toFixed(1)} s; ${r.duplicates} duplicates; ${r.watchFailures} failed watches, ${r.reconcileFailures} failed reconciles retried, ${r.operatorRestarts} operator exits`,
  );
}
if (only.has('apiserver-long')) {
  const n = int('apiserver-n', values['apiserver-n']);
  const downMs = int('apiserver-long-down', values['apiserver-long-down']) * 1000;
  await step(
    'apiserver-long',
    `stop kube-apiserver for ${downMs / 1000} s (longer than the Lease renew deadline) in the middle of a ${n}-invitation batch`,
    () => restartApiServerMidBatch({ n, downMs, signal: 'SIGTERM', expectExit: true, workers: 4, log }),
    (r) =>
      `all Sent ${r.drainSeconds.toFixed(1)} s after it was back; ${r.duplicates} duplicates; ${r.operatorRestarts} operator exits (Lease lost), ${r.reconcileFailures} failed reconciles retried`,
  );
}
if (only.has('smtp')) {
  const n = int('smtp-n', values['smtp-n']);
  const downMs = int('smtp-down', values['smtp-down']) * 1000;
  await step(
    'smtp',
    `SMTP server down for ${downMs / 1000} s in the middle of a ${n}-invitation batch`,
    () => smtpDownMidBatch({ n, downMs, log }),
    (r) =>
      `drained ${r.drainSeconds.toFixed(1)} s after it came back; attempts ${Object.entries(r.attempts)
        .map(([a, k]) => `${a}×${k}`)
        .join(' ')} (max ${r.maxAttempts}); ${r.duplicates} duplicates`,
  );
}
if (only.has('gone')) {
  const n = int('gone-n', values['gone-n']);
  const changes = int('gone-changes', values['gone-changes']);
  await step(
    'gone',
    `a watch that expires (etcd compacted, 410 Gone) after ${n} invitations, ${changes} created/deleted/reissued meanwhile`,
    () => watchExpires({ n, changes, log, deadlineMs: 390_000, ...(values['operator-root'] ? { operatorRoot: values['operator-root'] } : {}) }),
    (r) =>
      `${r.relists410} relists after 410; ${r.missed} changes missed; caught up ${r.caughtUpSeconds.toFixed(1)} s after the thaw (harness watch ${r.harnessSeenSeconds.toFixed(1)} s)${r.silentWatches.length ? ` (${r.silentWatches.map((p) => p.replace(/^.*\//, '')).join(', ')} hung until the watchdog)` : ''}`,
  );
}
if (only.has('fuzz')) {
  const runs = int('fuzz-runs', values['fuzz-runs']);
  await step(
    'fuzz',
    `fast-check: ${runs} random invitation specs through the API server and the operator`,
    () => fuzzSpecs({ runs, log, ...(values.seed ? { seed: int('seed', values.seed) } : {}) }),
    (r) =>
      `${Object.values(r.refused).reduce((a, b) => a + b, 0)} refused, ${Object.values(r.settled).reduce((a, b) => a + b, 0)} settled, ${r.unclear.length} unclear messages, operator errors ${r.operatorErrors.length}, seed ${r.seed}`,
  );
}

log(`\nfault tests: ${((performance.now() - started) / 60_000).toFixed(1)} min\n`);
const w = Math.max(...summary.map((s) => s.test.length), 4);
log(`| ${'test'.padEnd(w)} | result | counted |`);
log(`| ${'-'.repeat(w)} | ------ | ------- |`);
for (const s of summary) log(`| ${s.test.padEnd(w)} | ${s.ok ? 'ok    ' : 'FAIL  '} | ${s.counted} |`);
log(`\nfigures: ${values.out}`);
save();
process.exit(summary.every((s) => s.ok) ? 0 : 1);

// Property-based fuzzing of UserInvitation specs through the real API server
// and the operator (chaos/fuzz.ts; `npm run chaos` runs more of them). A
// control plane of its own: the operator process watches every namespace, and
// must not touch other test files' invitations.
//
// Each generated spec is either refused by the API server with a message that
// names the field, or settled by the operator (Sent, Failed with a condition
// that says why, UserCreated, Expired); the operator never crashes, never
// fails a reconcile, and still mails a plain invitation afterwards.
import { describe, expect, it } from 'vitest';
import { fuzzSpecs } from '../../chaos/fuzz.ts';

const RUNS = Number(process.env.USHER_FUZZ_RUNS ?? 50);

describe('fuzzed invitation specs', () => {
  it(`${RUNS} random specs: clear refusals or settled phases, and the operator never crashes`, { timeout: 300_000 }, async () => {
    const lines: string[] = [];
    const result = await fuzzSpecs({
      runs: RUNS,
      ...(process.env.USHER_FUZZ_SEED ? { seed: Number(process.env.USHER_FUZZ_SEED) } : {}),
      log: (line) => lines.push(line),
    });
    process.stdout.write(`fuzz: ${lines.join('\n').trim()}\n`);
    expect(result.failure, `seed ${result.seed}`).toBeUndefined();
    expect(result.unclear, `seed ${result.seed}`).toEqual([]);
    expect(result.operatorErrors, `seed ${result.seed}`).toEqual([]);
    expect(result.operatorAlive).toBe(true);
    expect(result.finalSent).toBe(true);
    // Both paths were exercised.
    expect(Object.keys(result.refused).length).toBeGreaterThan(0);
    expect(Object.keys(result.settled).length).toBeGreaterThan(0);
  });
});

import { describe, expect, it } from 'vitest';
import { PeriodicProbe, type ProbeResult } from '../../src/runtime/probe.ts';

function recordingLog() {
  const lines: string[] = [];
  const push = (obj: object, msg?: string) => lines.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  return { lines, log: { debug: push, info: push, warn: push, error: push } };
}

describe('PeriodicProbe', () => {
  it('is unhealthy until checked, then keeps the last answer, logging each change once', async () => {
    const answers: ProbeResult[] = [{ ok: false, reason: 'ECONNREFUSED' }, { ok: false, reason: 'ECONNREFUSED' }, { ok: true }];
    const { lines, log } = recordingLog();
    const probe = new PeriodicProbe({ check: () => Promise.resolve(answers.shift() ?? { ok: true }), intervalMs: 5, log, what: 'the identity provider' });
    expect(probe.current).toEqual({ ok: false, reason: 'not checked yet' });
    await probe.start();
    expect(probe.current).toEqual({ ok: false, reason: 'ECONNREFUSED' });
    await expect.poll(() => probe.current.ok, { timeout: 1000 }).toBe(true);
    await probe.stop();
    expect(lines.filter((l) => l.includes('not healthy'))).toHaveLength(1);
    expect(lines.filter((l) => l.includes('answers again'))).toHaveLength(1);
  });

  it('turns a check that throws into an unhealthy answer with its message', async () => {
    const probe = new PeriodicProbe({ check: () => Promise.reject(new Error('boom')), log: recordingLog().log, what: 'x' });
    await probe.start();
    await probe.stop();
    expect(probe.current).toEqual({ ok: false, reason: 'boom' });
  });
});

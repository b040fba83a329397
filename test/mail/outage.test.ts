import { describe, expect, it } from 'vitest';
import { MailOutageWatch } from '../../src/mail/outage.ts';

/** A probe whose answers the test gives one at a time. */
function scriptedProbe() {
  const waiting: { resolve: () => void; reject: (err: Error) => void }[] = [];
  return {
    calls: () => waiting.length,
    probe: () =>
      new Promise<void>((resolve, reject) => {
        waiting.push({ resolve, reject });
      }),
    answer: async (up: boolean) => {
      const next = waiting.at(-1);
      if (!next) throw new Error('no probe in flight');
      if (up) next.resolve();
      else next.reject(new Error('connect ECONNREFUSED'));
      // Let the watch's loop run to its next probe (interval 0).
      for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 1));
    },
  };
}

describe('MailOutageWatch', () => {
  it('a failure the probe gets through is about the message: no outage, nobody told', async () => {
    const p = scriptedProbe();
    const watch = new MailOutageWatch({ probe: p.probe, intervalMs: 0 });
    const told: unknown[] = [];
    watch.onRecovered((o) => told.push(o));
    watch.failed();
    watch.failed(); // one probe, however many failures
    expect(p.calls()).toBe(1);
    await p.answer(true);
    expect(watch.isDown()).toBe(false);
    expect(watch.lastOutage()).toBeUndefined();
    expect(told).toEqual([]);
    watch.close();
  });

  it('a failed probe means down; it probes until the server answers, then publishes the outage from the first failure', async () => {
    const p = scriptedProbe();
    let clock = 1_000;
    const watch = new MailOutageWatch({ probe: p.probe, intervalMs: 0, now: () => new Date(clock) });
    const told: { from: Date; to: Date }[] = [];
    watch.onRecovered((o) => told.push(o));
    watch.failed();
    clock = 2_000;
    watch.failed();
    await p.answer(false);
    expect(watch.isDown()).toBe(true);
    await p.answer(false);
    expect(p.calls()).toBe(3);
    clock = 9_000;
    await p.answer(true);
    expect(watch.isDown()).toBe(false);
    expect(told).toEqual([{ from: new Date(1_000), to: new Date(9_000) }]);
    expect(watch.lastOutage()).toEqual({ from: new Date(1_000), to: new Date(9_000) });

    // The next outage starts from its own first failure.
    clock = 20_000;
    watch.failed();
    await p.answer(false);
    clock = 25_000;
    await p.answer(true);
    expect(told.at(-1)).toEqual({ from: new Date(20_000), to: new Date(25_000) });
    watch.close();
  });

  it('a send that goes through while the server is thought down ends the outage, and the probing stops', async () => {
    const p = scriptedProbe();
    let clock = 0;
    const watch = new MailOutageWatch({ probe: p.probe, intervalMs: 5, now: () => new Date(clock) });
    const told: unknown[] = [];
    watch.onRecovered((o) => told.push(o));
    watch.failed();
    await p.answer(false);
    clock = 3_000;
    watch.succeeded();
    expect(told).toEqual([{ from: new Date(0), to: new Date(3_000) }]);
    const calls = p.calls();
    await new Promise((r) => setTimeout(r, 30));
    expect(p.calls()).toBe(calls);
    watch.close();
  });
});

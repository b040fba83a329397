import { describe, expect, it, vi } from 'vitest';
import { MailOutageWatch, MIN_OUTAGE_SPACING_MS } from '../../src/mail/outage.ts';

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

    // The next outage, a while later, starts from its own first failure.
    clock = 20_000 + MIN_OUTAGE_SPACING_MS;
    watch.failed();
    await p.answer(false);
    clock = 25_000 + MIN_OUTAGE_SPACING_MS;
    await p.answer(true);
    expect(told.at(-1)).toEqual({ from: new Date(20_000 + MIN_OUTAGE_SPACING_MS), to: new Date(25_000 + MIN_OUTAGE_SPACING_MS) });
    watch.close();
  });

  it('a send that goes through while the server is thought down does not end the outage: only a probe does', async () => {
    const p = scriptedProbe();
    let clock = 0;
    const watch = new MailOutageWatch({ probe: p.probe, intervalMs: 0, now: () => new Date(clock) });
    const told: unknown[] = [];
    watch.onRecovered((o) => told.push(o));
    watch.failed();
    await p.answer(false);
    clock = 3_000;
    watch.succeeded(); // a pooled session that still works
    expect(told).toEqual([]);
    expect(watch.isDown()).toBe(true);
    await p.answer(true);
    expect(told).toEqual([{ from: new Date(0), to: new Date(3_000) }]);
    watch.close();
  });

  it('a probe refused at login means the server is up: no outage, and no login every second', async () => {
    const probe = vi.fn(() => Promise.reject(new Error('SMTP server is not usable: 535 bad credentials', { cause: { code: 'EAUTH', responseCode: 535 } })));
    const watch = new MailOutageWatch({ probe, intervalMs: 0 });
    watch.failed();
    await new Promise((r) => setTimeout(r, 20));
    expect(probe).toHaveBeenCalledTimes(1);
    expect(watch.isDown()).toBe(false);
    expect(watch.lastOutage()).toBeUndefined();
    watch.close();
  });

  it('a server that flaps gets at most one published outage a minute; the others keep their backoff', async () => {
    const p = scriptedProbe();
    let clock = 0;
    const watch = new MailOutageWatch({ probe: p.probe, intervalMs: 0, now: () => new Date(clock) });
    const told: unknown[] = [];
    watch.onRecovered((o) => told.push(o));
    for (const at of [0, 5_000, 10_000]) {
      clock = at;
      watch.failed();
      await p.answer(false);
      clock = at + 1_000;
      await p.answer(true);
    }
    expect(told).toEqual([{ from: new Date(0), to: new Date(1_000) }]);
    clock = 1_000 + MIN_OUTAGE_SPACING_MS;
    watch.failed();
    await p.answer(false);
    await p.answer(true);
    expect(told).toHaveLength(2);
    watch.close();
  });

  it('one probe loop at a time, however failures, recoveries and sleeps interleave; close() stops it', async () => {
    let inFlight = 0;
    let most = 0;
    let calls = 0;
    let up = false;
    const probe = async (): Promise<void> => {
      calls++;
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 2));
      inFlight--;
      if (!up) throw new Error('connect ECONNREFUSED');
    };
    const watch = new MailOutageWatch({ probe, intervalMs: 1 });
    for (let i = 0; i < 10; i++) {
      up = false;
      watch.failed();
      await new Promise((r) => setTimeout(r, 5));
      up = true;
      await new Promise((r) => setTimeout(r, 8));
      watch.failed();
    }
    expect(most).toBe(1);
    watch.close();
    const after = calls;
    await new Promise((r) => setTimeout(r, 30));
    expect(calls - after).toBeLessThanOrEqual(1);
  });
});

import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WorkQueue } from '../../src/runtime/workqueue.ts';

/** Resolves with what the promise settled to, or 'pending' if it has not settled after the microtasks run. */
async function peek<T>(promise: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([
    promise,
    new Promise<'pending'>((resolve) => {
      setImmediate(() => {
        resolve('pending');
      });
    }),
  ]);
}

describe('WorkQueue', () => {
  describe('add and get', () => {
    it('hands out keys in FIFO order and de-duplicates keys that are waiting', async () => {
      const q = new WorkQueue();
      q.add('a');
      q.add('b');
      q.add('a');
      expect(q.len()).toBe(2);
      expect(await q.get()).toBe('a');
      expect(await q.get()).toBe('b');
      expect(q.len()).toBe(0);
    });

    it('get() waits for the next key', async () => {
      const q = new WorkQueue();
      const next = q.get();
      expect(await peek(next)).toBe('pending');
      q.add('x');
      expect(await next).toBe('x');
      expect(q.len()).toBe(0);
    });

    it('serves waiting workers in the order they asked', async () => {
      const q = new WorkQueue();
      const first = q.get();
      const second = q.get();
      q.add('a');
      q.add('b');
      expect(await first).toBe('a');
      expect(await second).toBe('b');
    });

    it('never hands a key being processed to a second worker; a re-add is queued again on done()', async () => {
      const q = new WorkQueue();
      q.add('a');
      expect(await q.get()).toBe('a');
      q.add('a');
      q.add('a');
      expect(q.len()).toBe(0); // dirty, not waiting
      const second = q.get();
      expect(await peek(second)).toBe('pending');
      q.done('a');
      expect(await second).toBe('a');
      q.done('a');
      // Processed once more, not twice: the two re-adds were collapsed.
      expect(await peek(q.get())).toBe('pending');
    });

    it('does not re-queue a key on done() when it was not re-added', async () => {
      const q = new WorkQueue();
      q.add('a');
      await q.get();
      q.done('a');
      expect(q.len()).toBe(0);
      q.done('a'); // done() for a key not being processed is a no-op
      expect(q.len()).toBe(0);
    });

    it('keeps the rules under any interleaving of adds, gets and dones (property)', async () => {
      type Op = { op: 'add'; key: string } | { op: 'get' } | { op: 'done'; n: number };
      const op = fc.oneof(
        fc.record({ op: fc.constant('add' as const), key: fc.constantFrom('a', 'b', 'c') }),
        fc.record({ op: fc.constant('get' as const) }),
        fc.record({ op: fc.constant('done' as const), n: fc.nat(5) }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops: Op[]) => {
          const q = new WorkQueue();
          const inFlight: string[] = [];
          const needed = new Set<string>(); // added since last handed out
          const handedOut: Promise<string | undefined>[] = [];
          for (const o of ops) {
            if (o.op === 'add') {
              q.add(o.key);
              needed.add(o.key);
            } else if (o.op === 'get') {
              handedOut.push(q.get());
            } else if (inFlight.length > 0) {
              const key = inFlight.splice(o.n % inFlight.length, 1)[0] as string;
              q.done(key);
            }
            await new Promise((resolve) => setImmediate(resolve));
            // Collect keys that were handed out meanwhile.
            for (let i = handedOut.length - 1; i >= 0; i--) {
              const got = await peek(handedOut[i] as Promise<string | undefined>);
              if (got === 'pending') continue;
              void handedOut.splice(i, 1);
              if (got === undefined) throw new Error('undefined before shutDown');
              // Never two workers on one key.
              expect(inFlight).not.toContain(got);
              inFlight.push(got);
              needed.delete(got);
            }
          }
          // Liveness: once every worker is done, exactly the keys added since they were
          // last handed out come out again, each once.
          for (const key of inFlight) q.done(key);
          await new Promise((resolve) => setImmediate(resolve));
          const rest: string[] = [];
          for (const p of handedOut) {
            const got = await peek(p);
            if (got !== 'pending' && got !== undefined) rest.push(got);
          }
          while (q.len() > 0) rest.push((await q.get()) as string);
          expect(rest.length).toBe(new Set(rest).size);
          expect(new Set(rest)).toEqual(needed);
        }),
        { numRuns: 200 },
      );
    });
  });

  describe('shutting down', () => {
    it('resolves pending and later get()s with undefined and ignores adds', async () => {
      const q = new WorkQueue();
      const pending = q.get();
      q.shutDown();
      expect(await pending).toBeUndefined();
      q.add('a');
      expect(q.len()).toBe(0);
      expect(await q.get()).toBeUndefined();
      expect(q.isShuttingDown()).toBe(true);
    });

    it('shutDownWithDrain() waits until every key handed out is done', async () => {
      const q = new WorkQueue();
      q.add('a');
      q.add('b');
      const a = await q.get();
      const b = await q.get();
      const drained = q.shutDownWithDrain();
      expect(await peek(drained)).toBe('pending');
      q.done(a as string);
      expect(await peek(drained)).toBe('pending');
      q.done(b as string);
      expect(await peek(drained)).toBeUndefined();
    });

    it('shutDownWithDrain() resolves at once with nothing in flight', async () => {
      const q = new WorkQueue();
      q.add('waiting-but-never-handed-out');
      await expect(q.shutDownWithDrain()).resolves.toBeUndefined();
    });
  });

  describe('delays', () => {
    beforeEach(() => {
      vi.useFakeTimers();
    });
    afterEach(() => {
      vi.useRealTimers();
    });

    it('addAfter() adds the key once the delay has passed', async () => {
      const q = new WorkQueue();
      q.addAfter('a', 1000);
      expect(q.len()).toBe(0);
      expect(q.delayedLen()).toBe(1);
      await vi.advanceTimersByTimeAsync(999);
      expect(q.len()).toBe(0);
      await vi.advanceTimersByTimeAsync(1);
      expect(q.len()).toBe(1);
      expect(q.delayedLen()).toBe(0);
      expect(await q.get()).toBe('a');
    });

    it('addAfter() with no delay adds at once', () => {
      const q = new WorkQueue();
      q.addAfter('a', 0);
      q.addAfter('b', -5);
      expect(q.len()).toBe(2);
    });

    it('keeps the earliest of several addAfter()s for one key', async () => {
      const q = new WorkQueue();
      q.addAfter('a', 5000);
      q.addAfter('a', 1000); // sooner: wins
      q.addAfter('a', 3000); // later than scheduled: ignored
      expect(q.delayedLen()).toBe(1);
      await vi.advanceTimersByTimeAsync(1000);
      expect(q.len()).toBe(1);
      expect(await q.get()).toBe('a');
      q.done('a');
      await vi.advanceTimersByTimeAsync(10_000);
      expect(q.len()).toBe(0); // nothing left behind from the 3 s or 5 s requests
    });

    it('releases delayed keys in order of readiness, whatever the order they were added in', async () => {
      const q = new WorkQueue();
      q.addAfter('c', 300);
      q.addAfter('a', 100);
      q.addAfter('b', 200);
      q.addAfter('a2', 100);
      await vi.advanceTimersByTimeAsync(300);
      const got = [];
      for (let i = 0; i < 4; i++) got.push(await q.get());
      expect(got).toEqual(['a', 'a2', 'b', 'c']);
    });

    it('uses one timer for any number of delayed keys', async () => {
      const q = new WorkQueue();
      const before = vi.getTimerCount();
      for (let i = 0; i < 50_000; i++) q.addAfter(`k${i}`, 1000 + (i % 997));
      expect(vi.getTimerCount() - before).toBe(1);
      expect(q.delayedLen()).toBe(50_000);
      await vi.advanceTimersByTimeAsync(2000);
      expect(q.len()).toBe(50_000);
      expect(vi.getTimerCount()).toBe(before);
    });

    it('a delayed key that is already waiting is not queued twice', async () => {
      const q = new WorkQueue();
      q.add('a');
      q.addAfter('a', 10);
      await vi.advanceTimersByTimeAsync(10);
      expect(q.len()).toBe(1);
    });

    it('copes with delays beyond setTimeout’s limit', async () => {
      const q = new WorkQueue();
      const day = 24 * 3600 * 1000;
      q.addAfter('far', 30 * day);
      await vi.advanceTimersByTimeAsync(29 * day);
      expect(q.len()).toBe(0);
      await vi.advanceTimersByTimeAsync(day);
      expect(q.len()).toBe(1);
    });

    it('shutDown() drops delayed keys and their timer', async () => {
      const q = new WorkQueue();
      q.addAfter('a', 100);
      q.shutDown();
      expect(vi.getTimerCount()).toBe(0);
      await vi.advanceTimersByTimeAsync(100);
      expect(q.len()).toBe(0);
      q.addAfter('b', 10);
      expect(q.delayedLen()).toBe(0);
    });
  });

  describe('rate limiting', () => {
    beforeEach(() => {
      vi.useFakeTimers();
    });
    afterEach(() => {
      vi.useRealTimers();
    });

    /** Advances time until the key is queued; returns how long that took. */
    async function delayOf(q: WorkQueue, key: string): Promise<number> {
      const start = performance.now();
      q.addRateLimited(key);
      while (q.len() === 0) await vi.advanceTimersToNextTimerAsync();
      const took = performance.now() - start;
      await q.get();
      q.done(key);
      return took;
    }

    it('backs off exponentially per key from 5 ms, and forget() resets it', async () => {
      const q = new WorkQueue();
      expect([await delayOf(q, 'a'), await delayOf(q, 'a'), await delayOf(q, 'a'), await delayOf(q, 'a')]).toEqual([5, 10, 20, 40]);
      expect(q.numRequeues('a')).toBe(4);
      expect(await delayOf(q, 'b')).toBe(5); // per key
      q.forget('a');
      expect(q.numRequeues('a')).toBe(0);
      expect(await delayOf(q, 'a')).toBe(5);
    });

    it('caps the backoff at 1000 s by default', async () => {
      const q = new WorkQueue();
      for (let i = 0; i < 17; i++) q.addRateLimited('a'); // 5 ms · 2^17 ≈ 655 s
      await vi.advanceTimersByTimeAsync(1000);
      await q.get();
      q.done('a');
      expect(q.numRequeues('a')).toBe(17);
      expect(await delayOf(q, 'a')).toBe(5 * 2 ** 17);
      expect(await delayOf(q, 'a')).toBe(1_000_000);
      expect(await delayOf(q, 'a')).toBe(1_000_000);
    });

    it('limits retries overall as client-go does (10 per second, bursts of 100): an outage failing every key does not retry them all at once', async () => {
      const q = new WorkQueue();
      const keys = Array.from({ length: 150 }, (_, i) => `k${String(i)}`);
      for (const key of keys) q.addRateLimited(key);
      await vi.advanceTimersByTimeAsync(5);
      expect(q.len()).toBe(100); // the burst, after each key's own 5 ms
      await vi.advanceTimersByTimeAsync(95);
      expect(q.len()).toBe(101); // then one per 100 ms
      await vi.advanceTimersByTimeAsync(4_800);
      expect(q.len()).toBe(149);
      await vi.advanceTimersByTimeAsync(100);
      expect(q.len()).toBe(150); // the 150th after 5 s
      // The bucket refills: after a quiet while, a failure waits only for its own backoff again.
      for (const key of keys) q.forget(key);
      await vi.advanceTimersByTimeAsync(20_000);
      const fresh = new Set<string>();
      while (q.len() > 0) {
        const key = await q.get();
        if (key) fresh.add(key);
        if (key) q.done(key);
      }
      expect(fresh.size).toBe(150);
      expect(await delayOf(q, 'k0')).toBe(5);
    });

    it('a success releases the retries the bucket holds back to their own backoff, so a backlog drains at once when an outage ends', async () => {
      const q = new WorkQueue();
      const keys = Array.from({ length: 300 }, (_, i) => `k${String(i)}`);
      for (const key of keys) q.addRateLimited(key);
      await vi.advanceTimersByTimeAsync(5);
      expect(q.len()).toBe(100); // the burst; 200 held back, the last until 20 s from now
      expect(q.delayedLen()).toBe(200);
      const first = await q.get();
      if (first) {
        q.done(first);
        q.forget(first); // it succeeded: the trouble is over
      }
      await vi.advanceTimersByTimeAsync(1);
      expect(q.delayedLen()).toBe(0);
      expect(q.len()).toBe(299);
      // The bucket is full again: the next failures get a burst of 100 before it limits them again.
      for (let i = 0; i < 101; i++) q.addRateLimited(`again${String(i)}`);
      await vi.advanceTimersByTimeAsync(10);
      expect(q.len()).toBe(399);
    });

    it('only the success of a key that had failed releases them, and at most once a second', async () => {
      const q = new WorkQueue();
      for (let i = 0; i < 300; i++) q.addRateLimited(`k${String(i)}`);
      await vi.advanceTimersByTimeAsync(5);
      expect(q.delayedLen()).toBe(200);
      // A key that never failed (a no-op reconcile) succeeds: nothing is released.
      q.forget('fine');
      await vi.advanceTimersByTimeAsync(1);
      expect(q.delayedLen()).toBe(200);
      // A failed key succeeds: released.
      q.forget('k0');
      await vi.advanceTimersByTimeAsync(1);
      expect(q.delayedLen()).toBe(0);
      // They fail again at once; another failed key succeeds within the second: the bucket holds.
      for (let i = 0; i < 300; i++) q.addRateLimited(`again${String(i)}`);
      await vi.advanceTimersByTimeAsync(5);
      const held = q.delayedLen();
      expect(held).toBeGreaterThan(150);
      q.forget('again0');
      await vi.advanceTimersByTimeAsync(1);
      expect(q.delayedLen()).toBe(held);
      // A second later, it may release again.
      await vi.advanceTimersByTimeAsync(1_000);
      q.forget('again1');
      await vi.advanceTimersByTimeAsync(1);
      expect(q.delayedLen()).toBe(0);
    });

    it('a success releases nothing that waits for its own backoff (the bucket held it no longer than that)', async () => {
      const q = new WorkQueue({ baseDelayMs: 60_000 });
      q.addRateLimited('slow');
      q.add('ok');
      const ok = await q.get();
      if (ok) {
        q.done(ok);
        q.forget(ok);
      }
      await vi.advanceTimersByTimeAsync(59_000);
      expect(q.len()).toBe(0);
      await vi.advanceTimersByTimeAsync(1_000);
      expect(q.len()).toBe(1);
    });

    it('retriesPerSecond 0: no overall limit, only the per-key backoff', async () => {
      const q = new WorkQueue({ retriesPerSecond: 0 });
      for (let i = 0; i < 300; i++) q.addRateLimited(`k${String(i)}`);
      await vi.advanceTimersByTimeAsync(5);
      expect(q.len()).toBe(300);
    });

    it('takes base and cap as options', async () => {
      const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 250 });
      expect([await delayOf(q, 'a'), await delayOf(q, 'a'), await delayOf(q, 'a')]).toEqual([100, 200, 250]);
    });
  });
});

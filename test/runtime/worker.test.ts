// The worker runner with a sync function the test controls: forget on success,
// backoff on error, a requested requeue on time, one worker per key, N keys at
// once, and a stop that lets the syncs in flight finish.
import { ApiException } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/runtime/log.ts';
import { WorkQueue } from '../../src/runtime/workqueue.ts';
import { WorkerRunner, type SyncOutcome, type SyncResult, type WorkerRunnerOptions } from '../../src/runtime/worker.ts';

/** Lets promises and zero-delay timers run without moving the clock. */
const settle = (): Promise<void> => vi.advanceTimersByTimeAsync(0).then(() => undefined);

interface Logged {
  level: string;
  obj: Record<string, unknown>;
  msg: string | undefined;
}

function recordingLog(): Logger & { lines: Logged[] } {
  const lines: Logged[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj: obj as Record<string, unknown>, msg });
    };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

interface Harness {
  runner: WorkerRunner;
  /** Keys in the order their syncs started. */
  started: string[];
  outcomes: SyncOutcome[];
  log: ReturnType<typeof recordingLog>;
}

function harness(sync: (key: string) => Promise<SyncResult | undefined>, options: Partial<WorkerRunnerOptions> = {}): Harness {
  const started: string[] = [];
  const outcomes: SyncOutcome[] = [];
  const log = recordingLog();
  const runner = new WorkerRunner({
    workers: 1,
    log,
    sync: (key) => {
      started.push(key);
      return sync(key);
    },
    observe: (_ms, outcome) => outcomes.push(outcome),
    ...options,
  });
  return { runner, started, outcomes, log };
}

const conflict = (): ApiException<unknown> =>
  new ApiException(409, 'Conflict', { kind: 'Status', code: 409, reason: 'Conflict', message: 'the object has been modified' }, {});

describe('WorkerRunner', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('syncs every key added, once however often it was added while waiting, and forgets its backoff on success', async () => {
    const { runner, started, outcomes } = harness(() => Promise.resolve({}));
    runner.add('ns/a');
    runner.add('ns/a');
    runner.add('ns/b');
    runner.queue.addRateLimited('ns/c'); // a failure from before: its backoff is forgotten once it succeeds
    expect(started).toEqual([]); // not before start()
    runner.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(started).toEqual(['ns/a', 'ns/b', 'ns/c']);
    expect(outcomes).toEqual(['success', 'success', 'success']);
    expect(runner.queue.numRequeues('ns/c')).toBe(0);
    expect(runner.stats).toEqual({ syncs: 3, errors: 0 });
    await runner.stop();
  });

  it('requeues a failed key with per-key exponential backoff until it succeeds, then forgets it', async () => {
    let failures = 3;
    const { runner, started, outcomes, log } = harness(() => (failures-- > 0 ? Promise.reject(new Error('boom')) : Promise.resolve(undefined)), {
      queue: new WorkQueue({ baseDelayMs: 100 }),
      keyField: 'invitation',
    });
    runner.start();
    runner.add('ns/a');
    await settle();
    expect(started).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(99);
    expect(started).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1); // 100 ms after the first failure
    expect(started).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(199);
    expect(started).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1); // 200 ms after the second
    expect(started).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(400); // 400 ms after the third: succeeds
    expect(started).toHaveLength(4);
    expect(outcomes).toEqual(['error', 'error', 'error', 'success']);
    expect(runner.queue.numRequeues('ns/a')).toBe(0);
    expect(runner.stats).toEqual({ syncs: 4, errors: 3 });
    const warnings = log.lines.filter((l) => l.level === 'warn');
    expect(warnings.map((w) => w.obj)).toEqual([0, 1, 2].map((retries) => ({ invitation: 'ns/a', code: undefined, err: 'boom', retries })));
    expect(warnings[0]?.msg).toBe('reconcile failed, retrying with backoff');
    // Nothing more: a success asks for nothing.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(started).toHaveLength(4);
    await runner.stop();
  });

  it('logs a 409 (a cache that was behind) at debug, anything else at warn, both with the API’s code', async () => {
    const errors = [
      conflict(),
      new ApiException(409, 'Conflict', { kind: 'Status', code: 409, reason: 'AlreadyExists', message: 'exists' }, {}),
      new ApiException(500, 'Internal', { kind: 'Status', code: 500, message: 'etcd' }, {}),
    ];
    const { runner, log } = harness(() => Promise.reject(errors.shift() ?? new Error('done')), { queue: new WorkQueue({ baseDelayMs: 10 }) });
    runner.start();
    runner.add('k');
    await vi.advanceTimersByTimeAsync(40);
    const failures = log.lines.filter((l) => l.msg === 'reconcile failed, retrying with backoff').slice(0, 3);
    expect(failures.map((l) => [l.level, l.obj.code, l.obj.err])).toEqual([
      ['debug', 409, 'the object has been modified'],
      ['debug', 409, 'exists'],
      ['warn', 500, 'etcd'],
    ]);
    await runner.stop();
  });

  it('syncs again after a requested requeue, a little past the deadline, and not before', async () => {
    let requeue = true;
    const { runner, started, outcomes } = harness(() => {
      const result = requeue ? { requeueAfterMs: 1000 } : {};
      requeue = false;
      return Promise.resolve(result);
    });
    runner.start();
    runner.add('ns/a');
    await settle();
    expect(outcomes).toEqual(['requeue_after']);
    expect(runner.queue.delayedLen()).toBe(1);
    await vi.advanceTimersByTimeAsync(1049);
    expect(started).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1); // 1000 ms + the 50 ms slack
    expect(started).toHaveLength(2);
    expect(outcomes).toEqual(['requeue_after', 'success']);
    await runner.stop();
  });

  it('takes a requeue in the past as now, and addAfter() for a key from outside', async () => {
    let first = true;
    const { runner, started } = harness(
      () => {
        const result = first ? { requeueAfterMs: -5000 } : {};
        first = false;
        return Promise.resolve(result);
      },
      { requeueSlackMs: 0 },
    );
    runner.start();
    runner.add('a');
    await settle();
    expect(started).toEqual(['a', 'a']);
    runner.addAfter('b', 300);
    await vi.advanceTimersByTimeAsync(299);
    expect(started).toEqual(['a', 'a']);
    await vi.advanceTimersByTimeAsync(1);
    expect(started).toEqual(['a', 'a', 'b']);
    await runner.stop();
  });

  it('never syncs one key on two workers at once; a key added during its sync is synced once more after', async () => {
    const running = new Set<string>();
    let overlap = false;
    const finish: (() => void)[] = [];
    const { runner, started } = harness(
      (key) => {
        if (running.has(key)) overlap = true;
        running.add(key);
        return new Promise((resolve) => {
          finish.push(() => {
            running.delete(key);
            resolve({});
          });
        });
      },
      { workers: 3 },
    );
    runner.start();
    runner.add('a');
    await settle();
    runner.add('a');
    runner.add('a');
    await settle();
    expect(started).toEqual(['a']); // two idle workers, but 'a' is taken
    finish.shift()?.();
    await settle();
    expect(started).toEqual(['a', 'a']);
    finish.shift()?.();
    await settle();
    expect(started).toEqual(['a', 'a']);
    expect(overlap).toBe(false);
    await runner.stop();
  });

  it('syncs as many keys at once as it has workers', async () => {
    let inFlight = 0;
    let most = 0;
    const { runner, started } = harness(
      async () => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 100));
        inFlight--;
        return {};
      },
      { workers: 3 },
    );
    runner.start();
    for (const key of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) runner.add(key);
    await settle();
    expect(started).toEqual(['a', 'b', 'c']);
    await vi.advanceTimersByTimeAsync(100);
    expect(started).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    await vi.advanceTimersByTimeAsync(200);
    expect(started).toHaveLength(7);
    expect(most).toBe(3);
    await runner.stop();
  });

  it('stop() takes no new keys, drops waiting and delayed ones, and resolves only once the syncs in flight are done', async () => {
    let release: (() => void) | undefined;
    const { runner, started, outcomes } = harness((key) =>
      key === 'slow'
        ? new Promise((resolve) => {
            release = () => {
              resolve({ requeueAfterMs: 10 });
            };
          })
        : Promise.resolve({}),
    );
    runner.start();
    runner.add('slow');
    runner.add('waiting');
    runner.addAfter('later', 50);
    await settle();
    expect(started).toEqual(['slow']);
    let stopped = false;
    const stopping = runner.stop().then(() => {
      stopped = true;
    });
    await settle();
    expect(stopped).toBe(false);
    runner.add('after-stop');
    release?.();
    await stopping;
    expect(stopped).toBe(true);
    expect(outcomes).toEqual(['requeue_after']);
    // The requeue asked for by the drained sync, the waiting, delayed and late keys: none runs.
    await vi.advanceTimersByTimeAsync(1000);
    expect(started).toEqual(['slow']);
    expect(runner.queue.isShuttingDown()).toBe(true);
  });

  it('stops at once when idle, and start() twice starts the workers once', async () => {
    const { runner, started } = harness(() => Promise.resolve({}), { workers: 2 });
    runner.start();
    runner.start();
    runner.add('a');
    await settle();
    expect(started).toEqual(['a']);
    await runner.stop();
    expect(runner.stats.syncs).toBe(1);
  });
});

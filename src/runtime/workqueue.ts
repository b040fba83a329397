// A work queue with client-go's semantics (k8s.io/client-go/util/workqueue):
// a key waits at most once, a key is never handed to two workers at once, and
// a key re-added while being processed is queued again when its worker calls
// done(). Delayed and rate-limited re-adds share one timer over a min-heap, so
// tens of thousands of pending expiries cost one setTimeout, not one each.
//
// Differences from client-go, on purpose: after shutDown() get() resolves
// undefined at once (keys still waiting are dropped, since nobody will process
// them), and add()/addAfter() are ignored; the overall retry bucket releases
// the keys it holds back when a key that had failed succeeds (see forget()).

export interface WorkQueueOptions {
  /** First delay of addRateLimited(); doubles with every failure of the key (client-go: 5 ms). */
  baseDelayMs?: number;
  /** Largest delay of addRateLimited() (client-go: 1000 s). */
  maxDelayMs?: number;
  /**
   * The overall limit on retries, whatever the key: a token bucket refilled at
   * this rate (client-go's DefaultControllerRateLimiter: 10 per second), so that
   * an outage failing every key at once does not retry them all at once.
   * addRateLimited() waits for the longer of the key's backoff and the bucket. 0: no overall limit.
   */
  retriesPerSecond?: number;
  /** How many retries the bucket lets through at once (client-go: 100). */
  retryBurst?: number;
}

/** client-go's BucketRateLimiter (golang.org/x/time/rate): each retry takes a token; one not there yet is waited for. */
class RetryBucket {
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #at = now();

  constructor(perSecond: number, burst: number) {
    this.#perMs = perSecond / 1000;
    this.#burst = burst;
    this.#tokens = burst;
  }

  /** A full bucket again: the retries it held back were released (see WorkQueue.forget). */
  refill(): void {
    this.#tokens = this.#burst;
    this.#at = now();
  }

  /** Takes a token and says how long until it is there (0: now). Tokens go negative: later retries queue behind. */
  reserve(): number {
    const t = now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (t - this.#at) * this.#perMs);
    this.#at = t;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : -this.#tokens / this.#perMs;
  }
}

interface Delayed {
  key: string;
  readyAt: number;
  /** Tie-breaker, so keys due at the same moment come out in the order they were added. */
  seq: number;
  /** Position in the heap, so a sooner addAfter() can move the entry up in O(log n). */
  index: number;
}

/** The bucket's held keys are released at most this often (see forget()). */
const RELEASE_INTERVAL_MS = 1000;

// setTimeout() turns longer delays into 1 ms (with a warning): wait at most this
// long, then look again.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The monotonic clock: immune to wall-clock jumps, and faked by Vitest's fake timers. */
const now = (): number => performance.now();

export class WorkQueue {
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;

  // Keys waiting for a worker, FIFO. #head avoids O(n) shift().
  #queue: string[] = [];
  #head = 0;
  /** Keys that need processing: waiting in #queue, or re-added while processing. */
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #getters: ((key: string | undefined) => void)[] = [];
  #shuttingDown = false;
  #drained: (() => void)[] = [];

  readonly #failures = new Map<string, number>();
  readonly #bucket: RetryBucket | undefined;
  /** Keys the bucket holds back beyond their own backoff: key → when their own backoff ends. */
  readonly #heldByBucket = new Map<string, number>();
  #releasedAt = -Infinity;

  readonly #heap: Delayed[] = [];
  readonly #delayed = new Map<string, Delayed>();
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;

  constructor(options: WorkQueueOptions = {}) {
    this.#baseDelayMs = options.baseDelayMs ?? 5;
    this.#maxDelayMs = options.maxDelayMs ?? 1_000_000;
    const perSecond = options.retriesPerSecond ?? 10;
    this.#bucket = perSecond > 0 ? new RetryBucket(perSecond, options.retryBurst ?? 100) : undefined;
  }

  /** Queues the key unless it is already waiting; a key being processed is queued again once done(). */
  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    this.#enqueue(key);
  }

  /** Resolves with the next key, which the caller must pass to done(); undefined once shut down. */
  get(): Promise<string | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    if (this.#head < this.#queue.length) return Promise.resolve(this.#take());
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Marks the key's processing finished; if it was re-added meanwhile, queues it again. */
  done(key: string): void {
    if (!this.#processing.delete(key)) return;
    if (this.#shuttingDown) {
      if (this.#processing.size === 0)
        this.#drained.splice(0).forEach((resolve) => {
          resolve();
        });
      return;
    }
    if (this.#dirty.has(key)) this.#enqueue(key);
  }

  /**
   * Adds the key after `ms`. If the key is already waiting for a later moment, the
   * sooner one wins; a later one than already scheduled is ignored (client-go keeps the earliest).
   */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (!(ms > 0)) {
      this.add(key);
      return;
    }
    const readyAt = now() + ms;
    const existing = this.#delayed.get(key);
    if (existing) {
      if (readyAt >= existing.readyAt) return;
      existing.readyAt = readyAt;
      this.#siftUp(existing.index);
    } else {
      const entry: Delayed = { key, readyAt, seq: this.#seq++, index: this.#heap.length };
      this.#heap.push(entry);
      this.#delayed.set(key, entry);
      this.#siftUp(entry.index);
    }
    this.#arm();
  }

  /**
   * Adds the key after the longer of its per-key exponential backoff (base·2^failures,
   * capped) and the overall retry bucket's wait, as client-go's MaxOfRateLimiter does.
   */
  addRateLimited(key: string): void {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const backoff = Math.min(this.#baseDelayMs * 2 ** failures, this.#maxDelayMs);
    const wait = this.#bucket?.reserve() ?? 0;
    if (wait > backoff) this.#heldByBucket.set(key, now() + backoff);
    else this.#heldByBucket.delete(key);
    this.addAfter(key, Math.max(backoff, wait));
  }

  /**
   * Resets the key's backoff (call when it was processed successfully). The success
   * of a key that had failed also says the trouble that failed every key at once (an
   * outage) may be over,
   * so the keys the overall bucket holds back are released to their own backoff,
   * and the bucket is full again. Unlike client-go, whose bucket keeps them queued
   * at 10 per second: after a few seconds of API server outage that was over
   * 30 s of backlog (issue 15). Should the trouble persist, they fail again, and
   * the bucket limits them again.
   */
  forget(key: string): void {
    // Only a key that had failed says the trouble is over (a no-op success says nothing),
    // and at most once a second, so that some successes amid many failures (throttling)
    // do not make the bucket useless.
    const hadFailed = this.#failures.delete(key);
    this.#heldByBucket.delete(key);
    if (!hadFailed || this.#heldByBucket.size === 0) return;
    const t = now();
    if (t - this.#releasedAt < RELEASE_INTERVAL_MS) return;
    this.#releasedAt = t;
    // At least 1 ms: the key's entry in the heap moves up rather than staying behind as a second, later add.
    for (const [held, readyAt] of this.#heldByBucket) this.addAfter(held, Math.max(1, readyAt - t));
    this.#heldByBucket.clear();
    this.#bucket?.refill();
  }

  /** How many times the key went through addRateLimited() since the last forget(). */
  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Keys waiting for a worker (client-go's depth metric); not those being processed or delayed. */
  len(): number {
    return this.#queue.length - this.#head;
  }

  /** Keys waiting for their addAfter()/addRateLimited() delay. */
  delayedLen(): number {
    return this.#heap.length;
  }

  isShuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Stops handing out keys: pending get()s and all later ones resolve undefined; waiting and delayed keys are dropped. */
  shutDown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    this.#getters.splice(0).forEach((resolve) => {
      resolve(undefined);
    });
    this.#queue = [];
    this.#head = 0;
    this.#dirty.clear();
    this.#heap.length = 0;
    this.#delayed.clear();
    this.#heldByBucket.clear();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  /** shutDown(), then resolves once every key handed out has been done(). */
  shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.#processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  #enqueue(key: string): void {
    const getter = this.#getters.shift();
    if (getter) {
      // Nobody else is waiting in the queue (getters only wait when it is empty): hand it over directly.
      this.#dirty.delete(key);
      this.#processing.add(key);
      getter(key);
      return;
    }
    this.#queue.push(key);
  }

  #take(): string {
    const key = this.#queue[this.#head] as string;
    this.#head++;
    // Compact now and then, so the array doesn't keep growing at the front.
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    this.#dirty.delete(key);
    this.#processing.add(key);
    return key;
  }

  /** Keeps the one timer set for the earliest delayed key. */
  #arm(): void {
    const first = this.#heap[0];
    if (!first) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
      return;
    }
    if (this.#timer && first.readyAt >= this.#timerAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = first.readyAt;
    this.#timer = setTimeout(
      () => {
        this.#fire();
      },
      Math.min(Math.max(first.readyAt - now(), 0), MAX_TIMER_MS),
    );
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const t = now();
    for (let first = this.#heap[0]; first && first.readyAt <= t; first = this.#heap[0]) {
      this.#pop();
      this.#delayed.delete(first.key);
      this.#heldByBucket.delete(first.key);
      this.add(first.key);
    }
    this.#arm();
  }

  // --- binary min-heap on (readyAt, seq) ---

  #less(a: Delayed, b: Delayed): boolean {
    return a.readyAt < b.readyAt || (a.readyAt === b.readyAt && a.seq < b.seq);
  }

  #swap(i: number, j: number): void {
    const a = this.#heap[i] as Delayed;
    const b = this.#heap[j] as Delayed;
    this.#heap[i] = b;
    this.#heap[j] = a;
    b.index = i;
    a.index = j;
  }

  #siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(this.#heap[i] as Delayed, this.#heap[parent] as Delayed)) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #pop(): void {
    const last = this.#heap.length - 1;
    this.#swap(0, last);
    this.#heap.pop();
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < this.#heap.length && this.#less(this.#heap[left] as Delayed, this.#heap[smallest] as Delayed)) smallest = left;
      if (right < this.#heap.length && this.#less(this.#heap[right] as Delayed, this.#heap[smallest] as Delayed)) smallest = right;
      if (smallest === i) return;
      this.#swap(i, smallest);
      i = smallest;
    }
  }
}

// Jittered exponential backoff in the manner of client-go's reflector
// (800 ms doubling to 30 s, reset after 2 min without a failure): enough to keep
// a failing API server from being hammered, and the jitter keeps many
// informers that failed together from retrying in step.

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** A failure after this long without one starts again from initialMs. */
  resetAfterMs?: number;
  /** For tests: a number in [0, 1). */
  random?: () => number;
}

export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #resetAfterMs: number;
  readonly #random: () => number;
  #failures = 0;
  #lastFailureAt = -Infinity;

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? 800;
    this.#maxMs = options.maxMs ?? 30_000;
    this.#resetAfterMs = options.resetAfterMs ?? 120_000;
    this.#random = options.random ?? Math.random;
  }

  /** Records a failure and returns how long to wait before the next try: half the step, plus up to as much again at random. */
  next(): number {
    const now = performance.now();
    if (now - this.#lastFailureAt > this.#resetAfterMs) this.#failures = 0;
    this.#lastFailureAt = now;
    const step = Math.min(this.#initialMs * 2 ** this.#failures, this.#maxMs);
    this.#failures++;
    return step / 2 + (step / 2) * this.#random();
  }

  reset(): void {
    this.#failures = 0;
    this.#lastFailureAt = -Infinity;
  }
}

// A health check run in the background every few seconds, whose last answer
// is read synchronously (by /readyz): probes must answer at once, and a
// dependency that is slow to answer must not be asked once per probe.
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from './log.ts';

export type ProbeResult = { ok: true } | { ok: false; reason: string };

export interface PeriodicProbeOptions {
  check: () => Promise<ProbeResult>;
  /** How often to check (default 10 s). */
  intervalMs?: number;
  /** Changes between healthy and unhealthy are logged (once per change). */
  log: Logger;
  /** What is checked, for the log ("identity provider"). */
  what: string;
}

export class PeriodicProbe {
  readonly #opts: PeriodicProbeOptions;
  #last: ProbeResult = { ok: false, reason: 'not checked yet' };
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(options: PeriodicProbeOptions) {
    this.#opts = options;
  }

  /** The last answer (not checked yet counts as unhealthy). */
  get current(): ProbeResult {
    return this.#last;
  }

  /** Checks once now, then every interval until stop(). Resolves after the first check. */
  async start(): Promise<void> {
    await this.#checkOnce();
    this.#loop = (async () => {
      const signal = this.#abort.signal;
      while (!signal.aborted) {
        try {
          await delay(this.#opts.intervalMs ?? 10_000, undefined, { signal });
        } catch {
          return;
        }
        await this.#checkOnce();
      }
    })();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  async #checkOnce(): Promise<void> {
    const { check, log, what } = this.#opts;
    let result: ProbeResult;
    try {
      result = await check();
    } catch (err) {
      result = { ok: false, reason: err instanceof Error ? err.message : String(err) };
    }
    const before = this.#last;
    this.#last = result;
    if (result.ok && !before.ok && before.reason !== 'not checked yet') log.info({}, `${what} answers again`);
    else if (!result.ok && (before.ok || before.reason !== result.reason)) log.warn({ reason: result.reason }, `${what} is not healthy`);
  }
}

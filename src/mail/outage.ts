// Telling a mail server outage from a refused message, and noticing the moment
// the server is back, so that the invitations that failed meanwhile are mailed
// then rather than when each one's backoff runs out (30 s, 60 s, 2 min…).
//
// A transient failure alone says little: a 450 for one mailbox, a 421 from a
// busy server, a refused connection. So a transient failure, while no probe
// runs, starts one (a fresh connection, EHLO, authentication: the transport's
// verify()). If the probe gets through, or is refused at login (the server is
// up; the credentials are the operator's to fix, and retrying a login every
// second could lock the account), the failure stands with its backoff. If the
// probe cannot reach the server, the server is down; it is probed again, every
// second at first and then every few seconds, until a probe gets through. Only
// a probe ends an outage (a pooled session may still work while new ones fail).
// The outage (from the first failure to that answer) is then published:
// listeners hear of it, and decide() retries at once every attempt that failed
// inside it. Publications are at least MIN_OUTAGE_SPACING_MS apart, so a server
// that keeps flapping gets the per-invitation backoff, not a retry per flap.
import type { MailOutage } from '../invitation/decide.ts';

export interface OutageWatchOptions {
  /** Resolves when the server takes a connection (and authentication); rejects otherwise. */
  probe: () => Promise<void>;
  /** First wait between two probes of a server that is down; doubles to PROBE_MAX_INTERVAL_MS. Default 1 s. */
  intervalMs?: number;
  now?: () => Date;
  log?: { info(obj: object, msg: string): void; debug(obj: object, msg: string): void };
}

/** The longest wait between probes: a server back after a long outage is noticed within this. */
export const PROBE_MAX_INTERVAL_MS = 3_000;

/** Two outages published closer than this: the second is not (its invitations keep their backoff). */
export const MIN_OUTAGE_SPACING_MS = 60_000;

export class MailOutageWatch {
  readonly #opts: OutageWatchOptions;
  readonly #listeners: ((outage: MailOutage) => void)[] = [];
  /** The first transient failure since the last publication (or the start). */
  #firstFailure: Date | undefined;
  /** The running probe loop's number; a loop that finds another number current stops. */
  #loop = 0;
  #probing = false;
  #down = false;
  #last: MailOutage | undefined;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;

  constructor(options: OutageWatchOptions) {
    this.#opts = options;
  }

  /** The last outage published; undefined before any. */
  lastOutage(): MailOutage | undefined {
    return this.#last;
  }

  /** Whether the last probe could not reach the server (and none has since). */
  isDown(): boolean {
    return this.#down;
  }

  onRecovered(listener: (outage: MailOutage) => void): void {
    this.#listeners.push(listener);
  }

  /** A send failed transiently. */
  failed(): void {
    if (this.#closed) return;
    this.#firstFailure ??= this.#now();
    if (this.#probing) return;
    this.#probing = true;
    const loop = ++this.#loop;
    void this.#probeLoop(loop);
  }

  /** A send went through. It does not end an outage (only a probe does), but a failure before it was about its message. */
  succeeded(): void {
    if (!this.#probing) this.#firstFailure = undefined;
  }

  close(): void {
    this.#closed = true;
    this.#loop++;
    clearTimeout(this.#timer);
    this.#wake?.();
  }

  async #probeLoop(loop: number): Promise<void> {
    let interval = this.#opts.intervalMs ?? 1000;
    while (this.#current(loop)) {
      let outcome: 'up' | 'refused' | 'unreachable';
      let error = '';
      try {
        await this.#opts.probe();
        outcome = 'up';
      } catch (err) {
        error = err instanceof Error ? err.message : String(err);
        outcome = isLoginRefusal(err) ? 'refused' : 'unreachable';
      }
      if (!this.#current(loop)) return;
      if (outcome === 'unreachable') {
        if (!this.#down) this.#opts.log?.info({ err: error }, 'mail server is down; probing until it answers');
        this.#down = true;
        await this.#sleep(interval);
        interval = Math.min(interval * 2, PROBE_MAX_INTERVAL_MS);
        continue;
      }
      this.#probing = false;
      if (this.#down) this.#recover();
      else {
        // The server answers: the failure was about the message (or the login), not the server.
        this.#firstFailure = undefined;
        this.#opts.log?.debug({ probe: outcome }, 'mail server answers; the failure stands with its backoff');
      }
      return;
    }
  }

  #recover(): void {
    this.#down = false;
    const outage = { from: this.#firstFailure ?? this.#now(), to: this.#now() };
    this.#firstFailure = undefined;
    if (this.#closed) return;
    const downForMs = outage.to.getTime() - outage.from.getTime();
    if (this.#last && outage.to.getTime() - this.#last.to.getTime() < MIN_OUTAGE_SPACING_MS) {
      this.#opts.log?.info({ downForMs }, 'mail server is back, soon after the last outage: the invitations that failed keep their backoff');
      return;
    }
    this.#last = outage;
    this.#opts.log?.info({ downForMs }, 'mail server is back; retrying the invitations that failed meanwhile');
    for (const listener of this.#listeners.slice()) {
      try {
        listener(outage);
      } catch {
        // A listener's bug must not stop the others.
      }
    }
  }

  /** Read through a call: TypeScript keeps fields narrowed across awaits, while close() and new loops change them meanwhile. */
  #current(loop: number): boolean {
    return !this.#closed && this.#loop === loop;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(resolve, ms);
      this.#timer.unref();
    });
  }

  #now(): Date {
    return (this.#opts.now ?? (() => new Date()))();
  }
}

/** A probe that reached the server and was refused at login (SMTP 535 and kin, nodemailer's EAUTH). */
function isLoginRefusal(err: unknown): boolean {
  const cause = (err as { cause?: unknown } | null)?.cause ?? err;
  const e = cause as { code?: unknown; responseCode?: unknown; command?: unknown } | null;
  return e?.code === 'EAUTH' || e?.command === 'AUTH PLAIN' || e?.command === 'AUTH LOGIN' || (typeof e?.responseCode === 'number' && e.responseCode === 535);
}

// Telling a mail server outage from a refused message, and noticing the moment
// the server is back, so that the invitations that failed meanwhile are mailed
// then rather than when each one's backoff runs out (30 s, 60 s, 2 min…).
//
// A transient failure alone says little: a 450 for one mailbox, a 421 from a
// busy server, a refused connection. So the first failure after a success
// starts a probe (a fresh connection, EHLO, authentication: the transport's
// verify()). If the probe gets through, the server is up and the failure was
// about that message: nothing changes, its backoff stands. If the probe fails,
// the server is down; it is probed again every interval until it answers, and
// then the outage (from the first failure to that answer) is published:
// listeners hear of it, and decide() retries at once every attempt that failed
// inside it. One probe loop at a time, whatever the number of failures.
import type { MailOutage } from '../invitation/decide.ts';

export interface OutageWatchOptions {
  /** Resolves when the server takes a connection (and authentication); rejects otherwise. */
  probe: () => Promise<void>;
  /** Between two probes of a server that is down. Default 1 s. */
  intervalMs?: number;
  now?: () => Date;
  log?: { info(obj: object, msg: string): void; debug(obj: object, msg: string): void };
}

export class MailOutageWatch {
  readonly #opts: OutageWatchOptions;
  readonly #listeners: ((outage: MailOutage) => void)[] = [];
  /** The first transient failure since the last success or recovery. */
  #firstFailure: Date | undefined;
  #probing = false;
  #down = false;
  #last: MailOutage | undefined;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: OutageWatchOptions) {
    this.#opts = options;
  }

  /** The last outage the server has recovered from; undefined before any. */
  lastOutage(): MailOutage | undefined {
    return this.#last;
  }

  /** Whether the last probe found the server down (and it has not answered since). */
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
    void this.#probeLoop();
  }

  /** A send went through: the server is up. */
  succeeded(): void {
    if (this.#down) this.#recover();
    else if (!this.#probing) this.#firstFailure = undefined;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  async #probeLoop(): Promise<void> {
    while (!this.#closed && this.#probing) {
      let up: boolean;
      try {
        await this.#opts.probe();
        up = true;
      } catch (err) {
        up = false;
        if (!this.#down) this.#opts.log?.info({ err: err instanceof Error ? err.message : String(err) }, 'mail server is down; probing until it answers');
        this.#down = true;
      }
      // A send may have succeeded meanwhile and recovered already.
      if (!this.#stillProbing()) return;
      if (up) {
        if (this.#down) this.#recover();
        else {
          // The server answers: the failure was about the message, not the server.
          this.#probing = false;
          this.#firstFailure = undefined;
          this.#opts.log?.debug({}, 'mail server answers; the failure was about the message');
        }
        return;
      }
      await new Promise<void>((resolve) => {
        this.#timer = setTimeout(resolve, this.#opts.intervalMs ?? 1000);
        this.#timer.unref();
      });
    }
  }

  /** Read through a call: TypeScript keeps the field narrowed across the await, while succeeded() changes it meanwhile. */
  #stillProbing(): boolean {
    return this.#probing;
  }

  #recover(): void {
    const outage = { from: this.#firstFailure ?? this.#now(), to: this.#now() };
    this.#last = outage;
    this.#down = false;
    this.#probing = false;
    this.#firstFailure = undefined;
    this.#opts.log?.info({ downForMs: outage.to.getTime() - outage.from.getTime() }, 'mail server is back; retrying the invitations that failed meanwhile');
    for (const listener of this.#listeners.slice()) {
      try {
        listener(outage);
      } catch {
        // A listener's bug must not stop the others.
      }
    }
  }

  #now(): Date {
    return (this.#opts.now ?? (() => new Date()))();
  }
}

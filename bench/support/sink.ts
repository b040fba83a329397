// A light SMTP sink on loopback (the smtp-server package): counts every
// message per recipient without parsing it, so that the bench process spends
// its CPU on measuring rather than on MIME. It can go down (stop listening and
// drop its sessions) and come back on the same port, and hold its replies.
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface Sink {
  port: number;
  /** Messages accepted (or received while holding replies). */
  readonly total: number;
  /** Messages per recipient address (lower case). */
  readonly perRecipient: Map<string, number>;
  /** Called for every message as it arrives (before the reply). */
  onMail: ((to: string) => void) | undefined;
  /** Holds each reply this long (a slow provider); 0 by default. */
  replyDelayMs: number;
  /** Stops listening and drops open sessions: connections are refused until up(). */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  /** Recipients that got more than one message, and how many extra messages in all. */
  duplicates(): { recipients: number; extra: number };
  close(): Promise<void>;
}

export async function startSink(): Promise<Sink> {
  const perRecipient = new Map<string, number>();
  const state = { total: 0, port: 0 };
  let server: SMTPServer | undefined;

  const listen = async (port: number): Promise<void> => {
    const s = new SMTPServer({
      logger: false,
      disableReverseLookup: true,
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      closeTimeout: 100,
      onData(stream, session, callback) {
        stream.on('data', () => undefined);
        stream.on('end', () => {
          for (const rcpt of session.envelope.rcptTo) {
            const to = rcpt.address.toLowerCase();
            perRecipient.set(to, (perRecipient.get(to) ?? 0) + 1);
            sink.onMail?.(to);
          }
          state.total++;
          if (sink.replyDelayMs > 0) setTimeout(callback, sink.replyDelayMs);
          else callback();
        });
      },
    });
    // A client that dies mid-session (a SIGKILLed operator) resets its connection: not the sink's problem.
    s.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.server.off('error', reject);
        resolve();
      });
    });
    state.port = (s.server.address() as AddressInfo).port;
    server = s;
  };
  const stop = async (): Promise<void> => {
    const s = server;
    server = undefined;
    if (s)
      await new Promise<void>((resolve) => {
        s.close(resolve);
      });
  };

  const sink: Sink = {
    get port() {
      return state.port;
    },
    get total() {
      return state.total;
    },
    perRecipient,
    onMail: undefined,
    replyDelayMs: 0,
    down: stop,
    async up() {
      // The port was just released; retry briefly should the kernel hold it.
      for (let i = 0; ; i++) {
        try {
          await listen(state.port);
          return;
        } catch (err) {
          if (i >= 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    duplicates() {
      let recipients = 0;
      let extra = 0;
      for (const n of perRecipient.values()) {
        if (n > 1) {
          recipients++;
          extra += n - 1;
        }
      }
      return { recipients, extra };
    },
    close: stop,
  };
  await listen(0);
  return sink;
}

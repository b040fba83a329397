// A real SMTP server (the smtp-server package) on 127.0.0.1 for the mailer's tests, which
// records what it receives, parsed by mailparser, and can be made to misbehave.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type { MailConfig } from '../../../src/config/types.ts';

export interface Received {
  mail: ParsedMail;
  envelope: { from: string; to: string[] };
  /** Whether the session was encrypted when the message arrived. */
  secure: boolean;
  /** The AUTH mechanism and user, when the client logged in. */
  auth?: { method: string; user: string };
}

export interface TestSmtp {
  port: number;
  received: Received[];
  /** TCP connections the server has accepted (to show a failure was not retried, say). */
  connections: number;
  close(): Promise<void>;
}

export interface TestSmtpOptions extends SMTPServerOptions {
  /** Required user and password; the server then refuses mail from anyone not logged in. */
  users?: Record<string, string>;
  /** Holds the greeting back this long, for timeouts. */
  greetingDelayMs?: number;
  /** Listen on this port (a server that comes up where one was down); a free one by default. */
  listenPort?: number;
}

/** An SMTP reply the server answers with: smtp-server sends `responseCode` and the message. */
export function smtpError(responseCode: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode });
}

export async function startSmtp(options: TestSmtpOptions = {}): Promise<TestSmtp> {
  const { users, greetingDelayMs, listenPort, ...serverOptions } = options;
  const received: Received[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const state = { connections: 0 };
  const auths = new Map<string, { method: string; user: string }>();
  const server = new SMTPServer({
    logger: false,
    disableReverseLookup: true,
    closeTimeout: 200,
    authOptional: !users,
    onConnect(_session: SMTPServerSession, callback: (err?: Error | null) => void) {
      if (greetingDelayMs === undefined) {
        callback();
        return;
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        callback();
      }, greetingDelayMs);
      timers.add(timer);
    },
    onAuth(auth, session, callback) {
      const user = auth.username ?? '';
      if (!users || users[user] === undefined || users[user] !== auth.password) {
        callback(smtpError(535, 'Authentication credentials invalid'));
        return;
      }
      auths.set(session.id, { method: auth.method, user });
      callback(null, { user });
    },
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((mail) => {
          const auth = auths.get(session.id);
          received.push({
            mail,
            envelope: {
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              to: session.envelope.rcptTo.map((r) => r.address),
            },
            secure: session.secure,
            ...(auth ? { auth } : {}),
          });
          callback();
        })
        .catch((err: unknown) => {
          callback(err instanceof Error ? err : new Error(String(err)));
        });
    },
    ...serverOptions,
  });
  // Counted at the socket, so that a test's own onConnect does not hide connections.
  server.server.on('connection', () => {
    state.connections++;
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(listenPort ?? 0, '127.0.0.1', () => {
      resolve();
    });
  });
  const { port } = server.server.address() as AddressInfo;
  return {
    port,
    received,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound and released again). */
export async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) =>
    probe.close(() => {
      resolve();
    }),
  );
  return port;
}

/**
 * A throw-away self-signed certificate for localhost/127.0.0.1. Node cannot make X.509
 * certificates itself, so this runs openssl (one RSA key, well under a second).
 */
export function selfSignedCert(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'usher-mail-cert-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=localhost',
        '-days',
        '1',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'pipe' },
    );
    return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A MailConfig for a test server: plain SMTP, no auth, no pool limits. */
export function mailConfig(port: number, overrides: Partial<MailConfig> = {}): MailConfig {
  return {
    host: '127.0.0.1',
    port,
    tls: 'none',
    allowSelfSigned: false,
    from: 'Usher <usher@platform.example.com>',
    replyTo: 'platform-team@example.com',
    pool: { maxConnections: 2 },
    rateLimitPerSecond: 0,
    ...overrides,
  };
}

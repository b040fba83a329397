// Sending mail over SMTP (nodemailer, pooled), and telling the controller whether a
// failure is worth retrying.
import type { Logger } from '../runtime/log.ts';

import { createTransport } from 'nodemailer';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SMTPPoolOptions } from 'nodemailer/lib/smtp-pool';
import type { MailConfig } from '../config/types.ts';
import { hasUnicodeLocalPart } from '../invitation/email.ts';
import { headerText } from './text.ts';

export interface OutgoingMail {
  to: string;
  subject: string;
  html: string;
  text: string;
}

export type SendResult = { ok: true; messageId: string; response: string } | { ok: false; permanent: boolean; code?: number; response: string };

export interface Mailer {
  /** Resolves with the outcome; rejects only for a programming error (an invalid `to`). */
  send(msg: OutgoingMail): Promise<SendResult>;
  /** Connects (and authenticates) once, for a start-up check; rejects when the server is not usable. */
  verify(): Promise<void>;
  close(): void;
}

/** The part of a pino logger this module uses: the runtime's logger interface. */
export type MailLog = Pick<Logger, 'debug' | 'warn'>;

export interface MailTimeouts {
  /** TCP (and for implicit TLS, the handshake) connect. */
  connectionMs: number;
  /** From connected to the server's 220 greeting. */
  greetingMs: number;
  /** Inactivity on an open connection. */
  socketMs: number;
  dnsMs: number;
}

// Short enough that a dead relay does not hold a reconcile worker for minutes (nodemailer's
// defaults are 2 min to connect and 10 min of inactivity), long enough for a slow provider.
export const DEFAULT_TIMEOUTS: MailTimeouts = { connectionMs: 15_000, greetingMs: 15_000, socketMs: 60_000, dnsMs: 10_000 };

// One bare address, as the API server's schema requires: no display name, list, comment,
// blanks or line breaks. Checked again here because a second address here would send
// someone else's invitation link to them.
const SINGLE_ADDRESS = /^[^\s\p{Cc}@,;:<>()[\]"\\]+@[^\s\p{Cc}@,;:<>()[\]"\\]+$/u;

export function assertSingleAddress(to: string): void {
  if (to.length > 254 || !SINGLE_ADDRESS.test(to)) {
    throw new Error(`mail recipient must be exactly one address like jane@example.com, got ${JSON.stringify(to.slice(0, 300))}`);
  }
}

/** How to reach and talk to the server: what the pool and a single connection (the SMTPUTF8 check) share. */
function connectionOptions(config: MailConfig, timeouts: MailTimeouts): SMTPConnection.Options {
  return {
    host: config.host,
    port: config.port,
    secure: config.tls === 'implicit',
    // 'starttls' must never fall back to plain text when the server does not offer STARTTLS;
    // 'none' must not try STARTTLS against a local catcher with a broken certificate.
    requireTLS: config.tls === 'starttls',
    ignoreTLS: config.tls === 'none',
    tls: { rejectUnauthorized: !config.allowSelfSigned },
    connectionTimeout: timeouts.connectionMs,
    greetingTimeout: timeouts.greetingMs,
    socketTimeout: timeouts.socketMs,
    dnsTimeout: timeouts.dnsMs,
    logger: false,
  };
}

export function transportOptions(config: MailConfig, timeouts: MailTimeouts): SMTPPoolOptions & { pool: true } {
  const rate = config.rateLimitPerSecond;
  return {
    pool: true,
    ...connectionOptions(config, timeouts),
    ...(config.auth ? { auth: { user: config.auth.user, pass: config.auth.password } } : {}),
    maxConnections: Math.max(1, config.pool.maxConnections),
    // nodemailer counts whole messages per window: 0.5/s becomes 1 per 2 s.
    ...(rate > 0 ? (Number.isInteger(rate) ? { rateLimit: rate, rateDelta: 1000 } : { rateLimit: 1, rateDelta: Math.ceil(1000 / rate) }) : {}),
  };
}

interface SmtpError {
  message?: unknown;
  code?: unknown;
  responseCode?: unknown;
  response?: unknown;
  command?: unknown;
}

/**
 * Permanent means "this invitation will never be delivered as it is": the server refused
 * the recipient or the message itself with a 5xx. Everything else is transient: 4xx,
 * connection, TLS, DNS and timeout failures, and also 5xx for authentication or the sender,
 * because those are the operator's configuration, and once it is fixed the same invitation
 * must go through without being reissued. 503 is "bad sequence of commands", a session
 * problem rather than a verdict on the message (RFC 5321).
 */
export function classifySendError(err: unknown): Extract<SendResult, { ok: false }> {
  const e: SmtpError = typeof err === 'object' && err !== null ? err : { message: String(err) };
  const code = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const response = typeof e.response === 'string' ? e.response : typeof e.message === 'string' ? e.message : String(err);
  const aboutMessage = e.command === 'RCPT TO' || e.command === 'DATA';
  const permanent = code !== undefined && code >= 500 && code < 600 && code !== 503 && aboutMessage;
  return code === undefined ? { ok: false, permanent, response } : { ok: false, permanent, code, response };
}

/** How long an answer to "does the server offer SMTPUTF8?" is kept. */
export const SMTPUTF8_CHECK_TTL_MS = 10 * 60_000;

/**
 * Whether the server offers SMTPUTF8 (RFC 6531), from its EHLO reply (after
 * STARTTLS when that is used, as the mails themselves go). nodemailer sends a
 * UTF-8 address without SMTPUTF8 to a server that does not offer it, which may
 * then deliver it mangled or not at all; so Usher asks first.
 */
export function offersSmtpUtf8(config: MailConfig, timeouts: MailTimeouts): Promise<boolean> {
  const connection = new SMTPConnection(connectionOptions(config, timeouts));
  return new Promise((resolve, reject) => {
    connection.once('error', reject);
    connection.connect((err) => {
      if (err) {
        reject(err);
        return;
      }
      const reply = typeof connection.lastServerResponse === 'string' ? connection.lastServerResponse : '';
      connection.quit();
      resolve(/[ -]SMTPUTF8\b/im.test(reply));
    });
  });
}

export function createMailer(config: MailConfig, log?: MailLog, options: { timeouts?: Partial<MailTimeouts> } = {}): Mailer {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  const transporter = createTransport(transportOptions(config, timeouts));
  const target = { host: config.host, port: config.port };
  let smtpUtf8: { offered: boolean; at: number } | undefined;
  return {
    async send(msg) {
      assertSingleAddress(msg.to);
      if (hasUnicodeLocalPart(msg.to)) {
        try {
          if (!smtpUtf8 || Date.now() - smtpUtf8.at > SMTPUTF8_CHECK_TTL_MS) smtpUtf8 = { offered: await offersSmtpUtf8(config, timeouts), at: Date.now() };
        } catch (err) {
          const result = classifySendError(err);
          log?.warn({ ...target, response: result.response }, 'could not ask the SMTP server whether it offers SMTPUTF8');
          return { ...result, permanent: false };
        }
        if (!smtpUtf8.offered) {
          const response =
            `spec.email: ${msg.to} has a local part beyond ASCII, which only a mail server offering SMTPUTF8 (RFC 6531) can deliver, ` +
            `and ${config.host}:${config.port} does not offer it (use an ASCII address, or a mail server with SMTPUTF8)`;
          log?.warn({ ...target }, 'the SMTP server does not offer SMTPUTF8: an internationalised address cannot be mailed');
          return { ok: false, permanent: true, response };
        }
      }
      try {
        const info = await transporter.sendMail({
          from: config.from,
          ...(config.replyTo ? { replyTo: config.replyTo } : {}),
          to: msg.to,
          subject: headerText(msg.subject),
          html: msg.html,
          text: msg.text,
        });
        log?.debug({ ...target, messageId: info.messageId, response: info.response }, 'invitation mail accepted by the SMTP server');
        return { ok: true, messageId: info.messageId, response: info.response };
      } catch (err) {
        const result = classifySendError(err);
        // Never the body: it carries the invitation link, which is a credential.
        log?.warn({ ...target, permanent: result.permanent, code: result.code, response: result.response }, 'invitation mail not sent');
        return result;
      }
    },
    async verify() {
      try {
        await transporter.verify();
      } catch (err) {
        const { response } = classifySendError(err);
        throw new Error(`SMTP server ${config.host}:${config.port} is not usable: ${response}`, { cause: err });
      }
    },
    close() {
      transporter.close();
    },
  };
}

// The mailer against a real SMTP server (smtp-server on 127.0.0.1), with what arrives
// parsed by mailparser. No Kubernetes involved, so these run with the unit tests.

import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { AddressObject } from 'mailparser';
import { pino } from 'pino';
import type { MailConfig } from '../../src/config/types.ts';
import { renderInvitationMail } from '../../src/mail/message.ts';
import type { UserInvitation } from '../../src/api/types.ts';
import { createInvitationMailer } from '../../src/mail/invitation-mailer.ts';
import {
  classifySendError,
  createMailer,
  offersSmtpUtf8,
  transportOptions,
  DEFAULT_TIMEOUTS,
  type MailLog,
  type Mailer,
  type OutgoingMail,
} from '../../src/mail/transport.ts';
import { closedPort, mailConfig, selfSignedCert, smtpError, startSmtp, type TestSmtp, type TestSmtpOptions } from './support/smtp.ts';

const TIMEOUTS = { connectionMs: 1000, greetingMs: 300, socketMs: 2000, dnsMs: 1000 };
const LINK = 'https://usher.example.com/accept/tok_3f9a?x=1&y=2';

const invitationMail = renderInvitationMail({
  email: 'jane.doe@example.com',
  scope: 'Tenant',
  tenant: 'acme',
  groups: ['data-engineers'],
  roles: [{ name: 'developer', namespaces: ['company.team'] }],
  link: LINK,
  expiresAt: new Date(Date.UTC(2025, 2, 14, 9, 30)),
  now: new Date(Date.UTC(2025, 2, 7, 9, 30)),
});
const message: OutgoingMail = { to: 'jane.doe@example.com', ...invitationMail };

let cert: { key: string; cert: string };
beforeAll(() => {
  cert = selfSignedCert();
});

const servers: TestSmtp[] = [];
const mailers: Mailer[] = [];
afterEach(async () => {
  for (const mailer of mailers.splice(0)) mailer.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function server(options: TestSmtpOptions = {}): Promise<TestSmtp> {
  const s = await startSmtp(options);
  servers.push(s);
  return s;
}

function mailer(config: MailConfig, log?: MailLog): Mailer {
  const m = createMailer(config, log, { timeouts: TIMEOUTS });
  mailers.push(m);
  return m;
}

function recordingLog(): MailLog & { lines: { level: string; obj: object; msg: string }[] } {
  const lines: { level: string; obj: object; msg: string }[] = [];
  return {
    lines,
    debug: (obj, msg) => lines.push({ level: 'debug', obj, msg: msg ?? '' }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg: msg ?? '' }),
  };
}

const addresses = (field: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(field) ? field : field ? [field] : []).flatMap((a) => a.value.map((v) => v.address ?? ''));

describe('delivery', () => {
  test('an invitation arrives with its headers, the link in the HTML (href and text) and a text part', async () => {
    const smtp = await server();
    const log = recordingLog();
    const result = await mailer(mailConfig(smtp.port), log).send(message);

    expect(result).toMatchObject({ ok: true, response: expect.stringMatching(/^250 /) as unknown });
    expect(smtp.received).toHaveLength(1);
    const { mail, envelope, secure } = smtp.received[0] ?? expect.unreachable();
    expect(result.ok && result.messageId).toBe(mail.messageId);
    expect(envelope).toEqual({ from: 'usher@platform.example.com', to: ['jane.doe@example.com'] });
    expect(secure).toBe(false);
    expect(mail.from?.value).toEqual([{ name: 'Usher', address: 'usher@platform.example.com' }]);
    expect(addresses(mail.to)).toEqual(['jane.doe@example.com']);
    expect(addresses(mail.replyTo)).toEqual(['platform-team@example.com']);
    expect(mail.cc).toBeUndefined();
    expect(mail.bcc).toBeUndefined();
    expect(mail.subject).toBe("You're invited to join acme");
    const html = typeof mail.html === 'string' ? mail.html : '';
    expect(html).toContain('href="https://usher.example.com/accept/tok_3f9a?x=1&amp;y=2"');
    expect(html).toContain('>https://usher.example.com/accept/tok_3f9a?x=1&amp;y=2</a>');
    expect(html).toContain('Accept invitation');
    expect(mail.text).toContain(LINK);
    expect(mail.text).toContain('in 7 days');
    // The log says what happened but never carries the body, whose link is a credential.
    expect(log.lines).toMatchObject([{ level: 'debug', obj: { host: '127.0.0.1', messageId: mail.messageId } }]);
    expect(JSON.stringify(log.lines)).not.toContain('tok_3f9a');
  });

  test('takes the operator’s pino logger as it is', async () => {
    const smtp = await server({
      onRcptTo: (_address, _session, callback) => {
        callback(smtpError(550, 'No such user here'));
      },
    });
    const lines: string[] = [];
    const log = pino(
      { level: 'debug' },
      {
        write: (line: string) => {
          lines.push(line);
        },
      },
    );
    await mailer(mailConfig(smtp.port), log).send(message);
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toMatchObject([
      { level: 40, msg: 'invitation mail not sent', permanent: true, code: 550, response: '550 No such user here' },
    ]);
    expect(lines.join('')).not.toContain('tok_3f9a');
  });

  test('without replyTo in the config there is no Reply-To header', async () => {
    const smtp = await server();
    const config = mailConfig(smtp.port);
    delete config.replyTo;
    expect(await mailer(config).send(message)).toMatchObject({ ok: true });
    expect(smtp.received[0]?.mail.replyTo).toBeUndefined();
  });

  test('a subject with CR/LF handed straight to send() still becomes one header line', async () => {
    const smtp = await server();
    const result = await mailer(mailConfig(smtp.port)).send({ ...message, subject: 'Join acme\r\nBcc: evil@example.com' });
    expect(result.ok).toBe(true);
    const { mail, envelope } = smtp.received[0] ?? expect.unreachable();
    expect(mail.subject).toBe('Join acme Bcc: evil@example.com');
    expect(mail.bcc).toBeUndefined();
    expect(envelope.to).toEqual(['jane.doe@example.com']);
  });

  test.each([
    'jane@example.com, eve@example.com',
    'jane@example.com;eve@example.com',
    'Jane <jane@example.com>',
    'jane@example.com\r\nBcc: eve@example.com',
    'jane@example.com eve@example.com',
    'not-an-address',
    '',
  ])('refuses %j as recipient before talking to the server', async (to) => {
    const smtp = await server();
    await expect(mailer(mailConfig(smtp.port)).send({ ...message, to })).rejects.toThrow('exactly one address');
    expect(smtp.connections).toBe(0);
  });

  test('pooled: concurrent sends share at most maxConnections connections', async () => {
    const smtp = await server();
    const m = mailer(mailConfig(smtp.port, { pool: { maxConnections: 2 } }));
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => m.send({ ...message, to: `user${i}@example.com` })));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(smtp.received.map((r) => r.envelope.to[0]).sort()).toEqual(Array.from({ length: 6 }, (_, i) => `user${i}@example.com`).sort());
    expect(smtp.connections).toBeLessThanOrEqual(2);
  });
});

describe('TLS and authentication', () => {
  test.each(['PLAIN', 'LOGIN'])('STARTTLS with a self-signed certificate, then AUTH %s with a checked password', async (method) => {
    const smtp = await server({ ...cert, authMethods: [method], users: { usher: 's3cret' } });
    const config = mailConfig(smtp.port, { tls: 'starttls', allowSelfSigned: true, auth: { user: 'usher', password: 's3cret' } });
    const result = await mailer(config).send(message);
    expect(result.ok).toBe(true);
    expect(smtp.received[0]).toMatchObject({ secure: true, auth: { method, user: 'usher' } });
    expect(smtp.received[0]?.mail.subject).toBe("You're invited to join acme");
  });

  test('a wrong password is transient (535): fixing the Secret must not need a reissue', async () => {
    const smtp = await server({ ...cert, users: { usher: 's3cret' } });
    const config = mailConfig(smtp.port, { tls: 'starttls', allowSelfSigned: true, auth: { user: 'usher', password: 'wrong' } });
    expect(await mailer(config).send(message)).toEqual({ ok: false, permanent: false, code: 535, response: '535 Authentication credentials invalid' });
    expect(smtp.received).toHaveLength(0);
  });

  test('a self-signed certificate is refused unless allowSelfSigned', async () => {
    const smtp = await server({ ...cert });
    const result = await mailer(mailConfig(smtp.port, { tls: 'starttls', allowSelfSigned: false })).send(message);
    expect(result).toMatchObject({ ok: false, permanent: false, response: expect.stringContaining('self-signed certificate') as unknown });
    expect(smtp.received).toHaveLength(0);
  });

  test('tls: starttls never falls back to plain text when the server offers no STARTTLS', async () => {
    const smtp = await server({ ...cert, disabledCommands: ['STARTTLS'] });
    const result = await mailer(mailConfig(smtp.port, { tls: 'starttls', allowSelfSigned: true })).send(message);
    expect(result).toMatchObject({ ok: false, permanent: false });
    expect(smtp.received).toHaveLength(0);
  });

  test('implicit TLS from the first byte', async () => {
    const smtp = await server({ ...cert, secure: true, users: { usher: 's3cret' } });
    const config = mailConfig(smtp.port, { tls: 'implicit', allowSelfSigned: true, auth: { user: 'usher', password: 's3cret' } });
    expect(await mailer(config).send(message)).toMatchObject({ ok: true });
    expect(smtp.received[0]).toMatchObject({ secure: true, auth: { user: 'usher' } });
  });

  test('tls: none does not attempt STARTTLS even when offered', async () => {
    const smtp = await server({ ...cert });
    expect(await mailer(mailConfig(smtp.port, { tls: 'none' })).send(message)).toMatchObject({ ok: true });
    expect(smtp.received[0]?.secure).toBe(false);
  });
});

describe('failures are classified', () => {
  test('server down: connection refused is transient', async () => {
    const port = await closedPort();
    const log = recordingLog();
    const result = await mailer(mailConfig(port), log).send(message);
    expect(result).toEqual({ ok: false, permanent: false, response: expect.stringContaining('ECONNREFUSED') as unknown });
    expect(log.lines).toMatchObject([{ level: 'warn', obj: { permanent: false, port } }]);
  });

  test('421 on connect is transient, with the code', async () => {
    const smtp = await server({
      onConnect: (_session, callback) => {
        callback(smtpError(421, 'Too busy, try again later'));
      },
    });
    expect(await mailer(mailConfig(smtp.port)).send(message)).toEqual({ ok: false, permanent: false, code: 421, response: '421 Too busy, try again later' });
  });

  test('450 on RCPT is transient, with the code', async () => {
    const smtp = await server({
      onRcptTo: (_address, _session, callback) => {
        callback(smtpError(450, 'Mailbox busy'));
      },
    });
    expect(await mailer(mailConfig(smtp.port)).send(message)).toEqual({ ok: false, permanent: false, code: 450, response: '450 Mailbox busy' });
    expect(smtp.received).toHaveLength(0);
  });

  test.each([
    [550, 'No such user here'],
    [553, 'Mailbox name not allowed'],
  ])('%d on RCPT is permanent, with the response text', async (code, text) => {
    const smtp = await server({
      onRcptTo: (_address, _session, callback) => {
        callback(smtpError(code, text));
      },
    });
    const log = recordingLog();
    expect(await mailer(mailConfig(smtp.port), log).send(message)).toEqual({ ok: false, permanent: true, code, response: `${code} ${text}` });
    expect(log.lines).toMatchObject([{ level: 'warn', obj: { permanent: true, code } }]);
    expect(JSON.stringify(log.lines)).not.toContain('tok_3f9a');
  });

  test('554 after DATA (the message itself refused) is permanent', async () => {
    const smtp = await server({
      onData: (stream, _session, callback) => {
        stream.resume();
        stream.on('end', () => {
          callback(smtpError(554, 'Message rejected as spam'));
        });
      },
    });
    expect(await mailer(mailConfig(smtp.port)).send(message)).toEqual({ ok: false, permanent: true, code: 554, response: '554 Message rejected as spam' });
  });

  test('5xx for the sender is the operator’s configuration, so transient', async () => {
    const smtp = await server({
      onMailFrom: (_address, _session, callback) => {
        callback(smtpError(553, 'Sender address not allowed'));
      },
    });
    expect(await mailer(mailConfig(smtp.port)).send(message)).toEqual({ ok: false, permanent: false, code: 553, response: '553 Sender address not allowed' });
  });

  test('a server too slow to greet times out, transient, without waiting for it', async () => {
    const smtp = await server({ greetingDelayMs: 3000 });
    const started = performance.now();
    const result = await mailer(mailConfig(smtp.port)).send(message);
    const elapsed = performance.now() - started;
    expect(result).toEqual({ ok: false, permanent: false, response: 'Greeting never received' });
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUTS.greetingMs - 50);
    expect(elapsed).toBeLessThan(2000);
  });

  test('an unknown host (DNS) is transient', async () => {
    const result = await mailer(mailConfig(25, { host: 'smtp.usher-test.invalid' })).send(message);
    expect(result).toMatchObject({ ok: false, permanent: false });
  });

  test('classifySendError: 503 and errors without a reply are transient', () => {
    expect(classifySendError({ responseCode: 503, response: '503 Bad sequence', command: 'RCPT TO' })).toMatchObject({ permanent: false, code: 503 });
    expect(classifySendError({ responseCode: 552, response: '552 Too big', command: 'DATA' })).toMatchObject({ permanent: true, code: 552 });
    expect(classifySendError(Object.assign(new Error('socket hang up'), { code: 'ESOCKET' }))).toEqual({
      ok: false,
      permanent: false,
      response: 'socket hang up',
    });
    expect(classifySendError('weird')).toEqual({ ok: false, permanent: false, response: 'weird' });
  });
});

describe('verify and options', () => {
  test('verify() resolves against a working server and names the server when it is down', async () => {
    const smtp = await server({ ...cert, users: { usher: 's3cret' } });
    await mailer(mailConfig(smtp.port, { tls: 'starttls', allowSelfSigned: true, auth: { user: 'usher', password: 's3cret' } })).verify();
    expect(smtp.connections).toBe(1);
    const port = await closedPort();
    await expect(mailer(mailConfig(port)).verify()).rejects.toThrow(`SMTP server 127.0.0.1:${port} is not usable: connect ECONNREFUSED`);
  });

  test('transport options follow the config', () => {
    const base = mailConfig(587);
    expect(transportOptions({ ...base, tls: 'implicit' }, DEFAULT_TIMEOUTS)).toMatchObject({ secure: true, requireTLS: false, ignoreTLS: false });
    expect(transportOptions({ ...base, tls: 'starttls' }, DEFAULT_TIMEOUTS)).toMatchObject({ secure: false, requireTLS: true, ignoreTLS: false });
    expect(transportOptions({ ...base, tls: 'none' }, DEFAULT_TIMEOUTS)).toMatchObject({ secure: false, requireTLS: false, ignoreTLS: true });
    expect(transportOptions({ ...base, allowSelfSigned: true }, DEFAULT_TIMEOUTS).tls).toEqual({ rejectUnauthorized: false });
    expect(transportOptions(base, DEFAULT_TIMEOUTS).tls).toEqual({ rejectUnauthorized: true });
    expect(transportOptions({ ...base, auth: { user: 'u', password: 'p' } }, DEFAULT_TIMEOUTS).auth).toEqual({ user: 'u', pass: 'p' });
    expect(transportOptions(base, DEFAULT_TIMEOUTS)).toMatchObject({ pool: true, maxConnections: 2 });
    expect(transportOptions(base, DEFAULT_TIMEOUTS)).not.toHaveProperty('rateLimit');
    expect(transportOptions({ ...base, rateLimitPerSecond: 10 }, DEFAULT_TIMEOUTS)).toMatchObject({ rateLimit: 10, rateDelta: 1000 });
    expect(transportOptions({ ...base, rateLimitPerSecond: 0.5 }, DEFAULT_TIMEOUTS)).toMatchObject({ rateLimit: 1, rateDelta: 2000 });
    expect(transportOptions(base, TIMEOUTS)).toMatchObject({ connectionTimeout: 1000, greetingTimeout: 300, socketTimeout: 2000, dnsTimeout: 1000 });
  });

  test('the rate limit spaces messages out on a real server', async () => {
    const smtp = await server();
    const m = mailer(mailConfig(smtp.port, { rateLimitPerSecond: 4 }));
    const started = performance.now();
    // 4 per second: the fifth has to wait for the next one-second window.
    const results = await Promise.all(Array.from({ length: 5 }, () => m.send(message)));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
  });
});

describe('internationalised addresses (RFC 6530), on a server with and without SMTPUTF8', () => {
  /** The server, recording whether each MAIL FROM carried SMTPUTF8, and each RCPT TO as it came over the wire. */
  async function recording(options: TestSmtpOptions = {}): Promise<TestSmtp & { smtpUtf8: boolean[]; rcptTo: string[] }> {
    const smtpUtf8: boolean[] = [];
    const rcptTo: string[] = [];
    const quiet = (): void => undefined;
    // smtp-server hands its hooks the domain decoded from punycode; its debug log has the command as sent.
    const logger = {
      debug: (_meta: unknown, prefix: unknown, line: unknown) => {
        if (prefix === 'C:' && typeof line === 'string' && /^RCPT TO:/i.test(line)) rcptTo.push(line);
      },
      info: quiet,
      warn: quiet,
      error: quiet,
      trace: quiet,
      fatal: quiet,
      level: 'debug',
    };
    const s = await server({
      // No STARTTLS without a certificate of our own (smtp-server warns about its built-in one once it has a logger).
      ...(options.key ? {} : { hideSTARTTLS: true }),
      ...options,
      logger: logger as unknown as TestSmtpOptions['logger'],
      onMailFrom(_address, session, callback) {
        smtpUtf8.push(session.envelope.smtpUtf8 === true);
        callback();
      },
    });
    return Object.assign(s, { smtpUtf8, rcptTo });
  }

  test('an internationalised domain goes out in punycode, on either server, and the mail shows it in Unicode', async () => {
    for (const hideSMTPUTF8 of [false, true]) {
      const smtp = await recording({ hideSMTPUTF8 });
      const invitations = createInvitationMailer(mailConfig(smtp.port), undefined, { timeouts: TIMEOUTS });
      const invitation = {
        apiVersion: 'usher.dev/v1alpha1',
        kind: 'UserInvitation',
        metadata: { name: 'jose', namespace: 'acme' },
        spec: { email: 'Jose@Bücher.example', tenant: 'acme', groups: ['devs'] },
      } satisfies UserInvitation;
      const result = await invitations.sendInvitation(invitation, LINK, new Date(Date.now() + 86_400_000));
      invitations.close();
      expect(result, `hideSMTPUTF8: ${String(hideSMTPUTF8)}`).toEqual({ ok: true });
      const { mail, envelope } = smtp.received[0] ?? expect.unreachable();
      expect(smtp.rcptTo).toEqual(['RCPT TO:<jose@xn--bcher-kva.example>']);
      expect(envelope.to).toEqual(['jose@bücher.example']); // as smtp-server decodes it
      expect(smtp.smtpUtf8).toEqual([false]);
      expect(mail.text).toContain('Jose@bücher.example');
    }
  });

  test('a UTF-8 local part goes out with SMTPUTF8 to a server that offers it', async () => {
    const smtp = await recording();
    const result = await mailer(mailConfig(smtp.port)).send({ ...message, to: 'jöse@example.com' });
    expect(result).toMatchObject({ ok: true });
    expect(smtp.rcptTo).toEqual(['RCPT TO:<jöse@example.com>']);
    expect(smtp.smtpUtf8).toEqual([true]);
  });

  test('a UTF-8 local part is not sent to a server without SMTPUTF8: a permanent failure naming spec.email and why', async () => {
    const smtp = await recording({ hideSMTPUTF8: true });
    const log = recordingLog();
    const result = await mailer(mailConfig(smtp.port), log).send({ ...message, to: 'jöse@example.com' });
    expect(result).toEqual({
      ok: false,
      permanent: true,
      response: `spec.email: jöse@example.com has a local part beyond ASCII, which only a mail server offering SMTPUTF8 (RFC 6531) can deliver, and 127.0.0.1:${smtp.port} does not offer it (use an ASCII address, or a mail server with SMTPUTF8)`,
    });
    expect(smtp.received).toEqual([]);
    expect(smtp.smtpUtf8).toEqual([]);
    expect(log.lines.map((l) => l.msg)).toEqual(['the SMTP server does not offer SMTPUTF8: an internationalised address cannot be mailed']);
  });

  test('the question is asked after STARTTLS, as the mail goes, and a server that is down makes it transient', async () => {
    const smtp = await recording({ key: cert.key, cert: cert.cert });
    const starttls = mailConfig(smtp.port, { tls: 'starttls', allowSelfSigned: true });
    expect(await offersSmtpUtf8(starttls, TIMEOUTS)).toBe(true);
    expect(await mailer(starttls).send({ ...message, to: 'jöse@example.com' })).toMatchObject({ ok: true });
    expect(smtp.received[0]?.secure).toBe(true);

    const down = await mailer(mailConfig(await closedPort())).send({ ...message, to: 'jöse@example.com' });
    expect(down).toMatchObject({ ok: false, permanent: false, response: expect.stringMatching(/ECONNREFUSED/) as unknown });
  });
});

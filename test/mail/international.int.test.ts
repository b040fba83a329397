// Internationalised addresses end to end: the real API server (the CRD's rule),
// the real controller (as the chart's `operator` identity) and a real SMTP
// server with and without SMTPUTF8. A domain in Unicode is accepted, kept and
// mailed in punycode (any server); a UTF-8 local part is mailed with SMTPUTF8,
// and fails with a message naming spec.email where the server does not offer it.
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { User, UserInvitation } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { MailConfig } from '../../src/config/types.ts';
import { Controller } from '../../src/controller/controller.ts';
import { createInvitationMailer, type InvitationMailerHandle } from '../../src/mail/invitation-mailer.ts';
import { userNameFor } from '../../src/invitation/naming.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';
import { mailConfig, startSmtp, type TestSmtp, type TestSmtpOptions } from './support/smtp.ts';

const tag = Math.random().toString(16).slice(2, 8);
const ns = `intl-${tag}`;
const running: { controller: Controller; mailer: InvitationMailerHandle }[] = [];
const servers: TestSmtp[] = [];

/** A real SMTP server that also records each RCPT TO as it came over the wire (its hooks see the domain decoded). */
async function smtp(options: TestSmtpOptions = {}): Promise<TestSmtp & { rcptTo: string[] }> {
  const rcptTo: string[] = [];
  const quiet = (): void => undefined;
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
  // No STARTTLS (smtp-server warns about its built-in certificate once it has a logger).
  const server = await startSmtp({ hideSTARTTLS: true, ...options, logger: logger as unknown as TestSmtpOptions['logger'] });
  servers.push(server);
  return Object.assign(server, { rcptTo });
}

async function startOperator(mail: MailConfig): Promise<void> {
  const config = parseConfig('usher:\n  baseUrl: https://usher.example\n', { source: 'test', env: {} });
  const mailer = createInvitationMailer(mail, undefined, { timeouts: { connectionMs: 2000, greetingMs: 2000, socketMs: 5000 } });
  const controller = new Controller({
    kubeConfig: loadKubeConfig(inject('kubeconfigs').operator),
    config: { ...config, mail },
    log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    mailer,
  });
  await controller.start();
  running.push({ controller, mailer });
}

async function invite(name: string, email: string, extra: Record<string, unknown> = {}): Promise<void> {
  const body = { apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', metadata: { name }, spec: { email, tenant: 'acme', groups: ['devs'], ...extra } };
  await kubectlOk(['apply', '-n', ns, '-f', '-'], { input: JSON.stringify(body) });
}

async function waitForPhase(name: string, phase: string): Promise<UserInvitation> {
  const result = await kubectl(['wait', `--for=jsonpath={.status.phase}=${phase}`, `userinvitation/${name}`, '-n', ns, '--timeout=30s']);
  const got = JSON.parse(await kubectlOk(['get', 'userinvitation', name, '-n', ns, '-o', 'json'])) as UserInvitation;
  expect(result.code, `${name} did not reach ${phase}: ${JSON.stringify(got.status)}`).toBe(0);
  return got;
}

const condition = (inv: UserInvitation, type: string) => inv.status?.conditions?.find((c) => c.type === type);

beforeAll(async () => {
  await kubectlOk(['create', 'namespace', ns]);
  await kubectlOk(['label', 'namespace', ns, 'usher.dev/tenant=acme']);
});

afterEach(async () => {
  for (const { controller, mailer } of running.splice(0)) {
    await controller.stop();
    mailer.close();
  }
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await kubectl(['delete', 'users.usher.dev', userNameFor(`jose+${tag}@bücher.example`), '--ignore-not-found', '--wait=false']);
  await deleteNamespaces(ns);
});

describe('internationalised addresses', () => {
  it('the API server takes a Unicode domain and a UTF-8 local part, and refuses what would look like another address, naming spec.email', async () => {
    for (const email of [`jose+${tag}@bücher.example`, `jöse+${tag}@example.com`, `用户+${tag}@例子.广告`]) {
      const dry = await kubectl(['create', '--dry-run=server', '-n', ns, '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', metadata: { name: 'probe' }, spec: { email, tenant: 'acme' } }),
      });
      expect(dry.code, `${email}: ${dry.stderr}`).toBe(0);
    }
    for (const email of ['jo\u00a0se@example.com', 'jose\u202e@example.com', 'jose@bücher☃.example']) {
      const refused = await kubectl(['create', '--dry-run=server', '-n', ns, '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', metadata: { name: 'probe' }, spec: { email, tenant: 'acme' } }),
      });
      expect(refused.code, email).not.toBe(0);
      expect(refused.stderr, email).toContain('must be a single email address such as jane@example.com');
      expect(refused.stderr, email).toContain('spec.email');
    }
  });

  it('with SMTPUTF8 offered: the Unicode domain is mailed in punycode, the UTF-8 local part with SMTPUTF8; both Sent', async () => {
    const server = await smtp();
    await startOperator(mailConfig(server.port));
    await invite('jose', `Jose+${tag}@Bücher.example`);
    await invite('joese', `jöse+${tag}@example.com`);
    await waitForPhase('jose', 'Sent');
    await waitForPhase('joese', 'Sent');
    expect([...server.rcptTo].sort()).toEqual([`RCPT TO:<jose+${tag}@xn--bcher-kva.example>`, `RCPT TO:<jöse+${tag}@example.com>`].sort());
    const jose = server.received.find((r) => r.mail.text?.includes(`Jose+${tag}@bücher.example`));
    expect(jose, 'the mail shows the address in Unicode').toBeDefined();
    process.stdout.write(`international: with SMTPUTF8: ${server.rcptTo.join(', ')}\n`);
  });

  it('without SMTPUTF8: the Unicode domain is still Sent; the UTF-8 local part fails, naming spec.email and why', async () => {
    const server = await smtp({ hideSMTPUTF8: true });
    await startOperator(mailConfig(server.port));
    await invite('jose-plain', `jose2+${tag}@bücher.example`);
    await invite('joese-plain', `jöse2+${tag}@example.com`);
    await waitForPhase('jose-plain', 'Sent');
    const failed = await waitForPhase('joese-plain', 'Failed');
    const stalled = condition(failed, 'Stalled');
    expect(stalled).toMatchObject({ status: 'True', reason: 'MailRejected' });
    expect(stalled?.message).toContain(
      `spec.email: jöse2+${tag}@example.com has a local part beyond ASCII, which only a mail server offering SMTPUTF8 (RFC 6531) can deliver, and 127.0.0.1:${server.port} does not offer it (use an ASCII address, or a mail server with SMTPUTF8). Fix the address or the server`,
    );
    expect(server.rcptTo).toEqual([`RCPT TO:<jose2+${tag}@xn--bcher-kva.example>`]);
    process.stdout.write(`international: without SMTPUTF8: ${stalled?.message ?? ''}\n`);
  });

  it('a User for a Unicode domain carries it in punycode (what the identity provider gets), one User for both spellings', async () => {
    const server = await smtp();
    await startOperator(mailConfig(server.port));
    await invite('jose-direct', `jose+${tag}@BÜCHER.example`, { createUserDirectly: true });
    await invite('jose-direct-again', `jose+${tag}@xn--bcher-kva.example`, { createUserDirectly: true, groups: ['ops'] });
    const created = await waitForPhase('jose-direct', 'UserCreated');
    await waitForPhase('jose-direct-again', 'UserCreated');
    const user = JSON.parse(await kubectlOk(['get', 'users.usher.dev', created.status?.user ?? '', '-o', 'json'])) as User;
    expect(user.metadata.name).toBe(userNameFor(`jose+${tag}@bücher.example`));
    expect(user.spec.email).toBe(`jose+${tag}@xn--bcher-kva.example`);
    expect(user.spec.memberships?.map((m) => m.groups)).toEqual([['devs'], ['ops']]);
  });
});

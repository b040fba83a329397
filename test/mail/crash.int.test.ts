// The delivery guarantee under a crash: the operator process (the real entry
// point, src/main.ts) is SIGKILLed while the SMTP server holds its reply to a
// message it has already received. After a restart the invitation must still
// reach Sent (never lost), with at most one duplicate mail.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { UserInvitation } from '../../src/api/types.ts';
import { freePort } from '../../tools/control-plane/control-plane.ts';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';
import { startSmtp, type TestSmtp } from './support/smtp.ts';

const root = join(import.meta.dirname, '..', '..');
const ns = `crash-${Math.random().toString(16).slice(2, 8)}`;

async function startOperator(configPath: string): Promise<ChildProcess> {
  // One replica, so no Lease to wait for after the kill: this test is about mail, not failover.
  return spawn(
    join(root, 'node_modules', '.bin', 'node'),
    [join(root, 'src', 'main.ts'), '--config', configPath, '--kubeconfig', inject('kubeconfigs').operator],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'warn', USHER_LEADER_ELECTION: 'false', USHER_METRICS_PORT: String(await freePort()) },
    },
  );
}

describe('a crash around the send', () => {
  const dir = mkdtempSync(join(tmpdir(), 'usher-crash-'));
  const mails: ParsedMail[] = [];
  let holdReplies = true;
  let onMessage: (() => void) | undefined;
  let smtp: TestSmtp;

  beforeAll(async () => {
    await kubectlOk(['create', 'namespace', ns]);
    await kubectlOk(['label', 'namespace', ns, 'usher.dev/tenant=acme']);
    smtp = await startSmtp({
      onData(stream, _session, callback) {
        void simpleParser(stream).then((mail) => {
          mails.push(mail);
          onMessage?.();
          // While holding, never answer: the message is in, the sender does not know it.
          if (!holdReplies) callback();
        });
      },
    });
  });

  afterAll(async () => {
    await smtp.close();
    await deleteNamespaces(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it('loses no invitation and duplicates at most one mail when SIGKILLed mid-send', async () => {
    const configPath = join(dir, 'usher.yaml');
    writeFileSync(
      configPath,
      `usher:\n  baseUrl: https://usher.example\n  accept:\n    port: ${await freePort()}\n  mail:\n    host: 127.0.0.1\n    port: ${smtp.port}\n    tls: none\n    from: no-reply@example.com\n`,
    );
    const first = await startOperator(configPath);
    const received = new Promise<void>((resolve) => {
      onMessage = resolve;
    });
    await kubectlOk(['apply', '-n', ns, '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'usher.dev/v1alpha1',
        kind: 'UserInvitation',
        metadata: { name: 'crash' },
        spec: { email: 'crash@example.com', tenant: 'acme', groups: ['g'] },
      }),
    });
    await received;
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    // The record says an attempt started and nothing about its outcome.
    const mid = JSON.parse(await kubectlOk(['get', 'userinvitation', 'crash', '-n', ns, '-o', 'json'])) as UserInvitation;
    expect(mid.status?.phase).toBe('Pending');
    expect(mails).toHaveLength(1);

    holdReplies = false;
    const second = await startOperator(configPath);
    try {
      const wait = await kubectl(['wait', '--for=jsonpath={.status.phase}=Sent', 'userinvitation/crash', '-n', ns, '--timeout=30s']);
      expect(wait.code, wait.stderr).toBe(0);
      const sent = JSON.parse(await kubectlOk(['get', 'userinvitation', 'crash', '-n', ns, '-o', 'json'])) as UserInvitation;
      // Exactly one duplicate, carrying the same link: the invitee can use either.
      expect(mails).toHaveLength(2);
      expect(mails[0]?.text).toContain(sent.status?.link);
      expect(mails[1]?.text).toContain(sent.status?.link);
      process.stdout.write(`crash mid-send: ${mails.length} mails for 1 invitation (1 duplicate), phase ${sent.status?.phase ?? '?'}\n`);
    } finally {
      second.kill('SIGTERM');
      await new Promise((r) => second.once('exit', r));
    }
  });
});

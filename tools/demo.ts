// `npm run demo`: Usher for real on this machine. Starts a local control plane
// (building it on first use), installs the CRDs, starts the operator against it,
// applies the example invitations and shows them reaching their phases. Stays
// up until Ctrl-C so you can poke at it with kubectl.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createServer } from 'node:net';
import { freePort, startControlPlane } from './control-plane/control-plane.ts';
import { startMailCatcher } from './mail-catcher.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** The usual port when it is free, else any free one (another Usher may be running). */
async function portOr(preferred: number): Promise<number> {
  const free = await new Promise<boolean>((resolve) => {
    const probe = createServer();
    probe.once('error', () => {
      resolve(false);
    });
    probe.listen(preferred, () =>
      probe.close(() => {
        resolve(true);
      }),
    );
  });
  return free ? preferred : freePort();
}

const [acceptPort, metricsPort] = [await portOr(8080), await portOr(9090)];
const plane = await startControlPlane();
// Asynchronous on purpose: the mail catcher shares this process and must keep answering.
const run = promisify(execFile);
const kubectl = async (...args: string[]): Promise<string> =>
  (await run('kubectl', ['--kubeconfig', plane.kubeconfigs.admin, ...args], { encoding: 'utf8' })).stdout;
await kubectl('apply', '--server-side', '-f', join(root, 'crds'));
await kubectl('wait', '--for=condition=Established', '-f', join(root, 'crds'));

// Two namespaces as a platform would have them: one per tenant (labelled with its
// tenant), and Usher's own, the only one allowed to invite to the whole instance.
for (const ns of ['acme', 'usher-system']) await kubectl('create', 'namespace', ns);
await kubectl('label', 'namespace', 'acme', 'usher.dev/tenant=acme');

// A local mail catcher stands in for the SMTP provider: every invitation lands there.
const catcher = await startMailCatcher({
  smtpPort: 0,
  webPort: 0,
  onMail: ({ mail }) => {
    const to = mail.to && !Array.isArray(mail.to) ? mail.to.text : '';
    say(`  mail caught: to ${to}: "${mail.subject ?? ''}"`);
  },
});

const work = mkdtempSync(join(tmpdir(), 'usher-demo-'));
const configPath = join(work, 'usher.yaml');
writeFileSync(
  configPath,
  [
    'usher:',
    `  baseUrl: http://localhost:${acceptPort}`,
    '  accept:',
    `    port: ${acceptPort}`,
    '  tenancy:',
    '    instanceNamespaces: [usher-system]',
    '  mail:',
    '    host: 127.0.0.1',
    `    port: ${catcher.smtpPort}`,
    '    tls: none',
    '    from: "Usher demo <usher@localhost>"',
    '',
  ].join('\n'),
);
const operator = spawn(process.execPath, [join(root, 'src', 'main.ts'), '--config', configPath, '--kubeconfig', plane.kubeconfigs.admin], {
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, LOG_LEVEL: 'info', USHER_METRICS_PORT: String(metricsPort) },
});
// Should this script die without its Ctrl-C handler, the operator goes with it.
process.on('exit', () => {
  operator.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});
const operatorLog = join(work, 'operator.log');
operator.stdout.on('data', (chunk: Buffer) => {
  writeFileSync(operatorLog, chunk, { flag: 'a' });
});
operator.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));

// An operator that dies (a port taken, say) ends the demo at once, with its log.
operator.on('exit', (code) => {
  if (code !== 0 && code !== null) {
    let logText = '';
    try {
      logText = readFileSync(operatorLog, 'utf8').slice(-4000);
    } catch {
      // no log written yet
    }
    process.stderr.write(`the operator exited with ${code}; its log:\n${logText}\n`);
    void plane.stop().then(() => process.exit(1));
  }
});

for (const example of ['tenant-developer.yaml', 'long-expiry.yaml', 'sso-direct.yaml'])
  await kubectl('apply', '-n', 'acme', '-f', join(root, 'examples', example));
await kubectl('apply', '-n', 'usher-system', '-f', join(root, 'examples', 'instance-admin.yaml'));

for (const [ns, name, phase] of [
  ['acme', 'jane-doe', 'Sent'],
  ['acme', 'contractor', 'Sent'],
  ['acme', 'sam-sso', 'UserCreated'],
  ['usher-system', 'ops-lead', 'Sent'],
] as const) {
  await kubectl('wait', `--for=jsonpath={.status.phase}=${phase}`, `userinvitation/${name}`, '-n', ns, '--timeout=60s');
}
say('');
say(await kubectl('get', 'userinvitations', '-A'));
say(await kubectl('get', 'users.usher.dev'));
const link = await kubectl('get', 'userinvitation', 'jane-doe', '-n', 'acme', '-o', 'jsonpath={.status.link}');
say(`Read the invitation mails as the invitees got them: ${catcher.webUrl}`);
say(`Jane's acceptance link (also in her mail): ${link}\n`);
say(`Point kubectl at this control plane from another terminal:

  export KUBECONFIG=${plane.kubeconfigs.admin}
  kubectl get userinvitations -A
  kubectl annotate userinvitation jane-doe -n acme --overwrite usher.dev/reissue-requested-at="$(date -u +%FT%TZ)"   # reissue

Operator log: ${operatorLog}   metrics: http://localhost:${metricsPort}/metrics
Press Ctrl-C to stop everything.`);

const shutdown = (): void => {
  operator.kill('SIGTERM');
  operator.once('exit', () => {
    void Promise.all([plane.stop(), catcher.close()]).then(() => {
      rmSync(work, { recursive: true, force: true });
      process.exit(0);
    });
  });
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

// `npm run demo`: Usher for real on this machine. Starts a local control plane
// (building it on first use), installs the CRDs, starts the operator against it,
// applies the example invitations and shows them reaching their phases. Stays
// up until Ctrl-C so you can poke at it with kubectl.
//
// With Keycloak by default (tools/demo-keycloak.ts: Java 17+ and the Keycloak
// distribution are installed on first use, as for the tests): a realm `usher`,
// usher.identity and usher.accept.oidc pointed at it, and how to sign in as Jane
// once her invitation is accepted. `--no-keycloak` (or USHER_DEMO_KEYCLOAK=0)
// leaves it out; a Keycloak that cannot start is left out with a warning.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { freePort, startControlPlane } from './control-plane/control-plane.ts';
import { signInHelp, startDemoKeycloak, type DemoKeycloak } from './demo-keycloak.ts';
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

const { values: flags } = parseArgs({ options: { keycloak: { type: 'boolean', default: true } }, allowNegative: true, strict: true });
const withKeycloak = flags.keycloak && !['0', 'false', 'no', 'off'].includes((process.env.USHER_DEMO_KEYCLOAK ?? '').toLowerCase());

const [acceptPort, metricsPort] = [await portOr(8080), await portOr(9090)];
const work = mkdtempSync(join(tmpdir(), 'usher-demo-'));
/** What is running and not yet stopped. */
const live: { keycloak?: DemoKeycloak; operator?: ChildProcess } = {};
// Should this script die without its Ctrl-C handler, what it started goes with it (Keycloak's watchdog would too, a second later).
process.on('exit', () => {
  live.operator?.kill('SIGKILL');
  if (live.keycloak) {
    try {
      process.kill(-live.keycloak.keycloak.pid, 'SIGKILL');
    } catch {
      // gone already
    }
    rmSync(live.keycloak.keycloak.stateDir, { recursive: true, force: true });
  }
  rmSync(work, { recursive: true, force: true });
});
// The control plane and Keycloak start side by side (a few seconds and about ten, once installed).
const startingKeycloak = withKeycloak
  ? startDemoKeycloak({
      acceptPort,
      dir: work,
      log: (line) => {
        say(`  ${line}`);
      },
    }).then(
      (started) => {
        live.keycloak = started;
        return started;
      },
      (err: unknown) => {
        process.stderr.write(
          `\nKeycloak could not start, so the demo runs without it (npm run demo -- --no-keycloak skips it):\n${err instanceof Error ? err.message : String(err)}\n\n`,
        );
        return undefined;
      },
    )
  : Promise.resolve(undefined);
const plane = await startControlPlane();
const keycloak = await startingKeycloak;
const stopKeycloak = async (): Promise<void> => {
  await keycloak?.stop();
  delete live.keycloak;
};
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

const configPath = join(work, 'usher.yaml');
writeFileSync(
  configPath,
  [
    'usher:',
    `  baseUrl: http://localhost:${acceptPort}`,
    '  accept:',
    `    port: ${acceptPort}`,
    ...(keycloak?.oidcYaml ?? []),
    ...(keycloak?.identityYaml ?? []),
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
live.operator = operator;
const operatorExited = new Promise<void>((resolve) => {
  operator.once('exit', () => {
    resolve();
  });
});
let stopping = false;
const operatorLog = join(work, 'operator.log');
operator.stdout.on('data', (chunk: Buffer) => {
  writeFileSync(operatorLog, chunk, { flag: 'a' });
});
operator.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));

// An operator that dies (a port taken, say) ends the demo at once, with its log.
operator.on('exit', (code) => {
  if (code !== 0 && code !== null && !stopping) {
    stopping = true;
    let logText = '';
    try {
      logText = readFileSync(operatorLog, 'utf8').slice(-4000);
    } catch {
      // no log written yet
    }
    process.stderr.write(`the operator exited with ${code}; its log:\n${logText}\n`);
    void Promise.all([plane.stop(), stopKeycloak()]).then(() => process.exit(1));
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
if (keycloak) say(`${signInHelp(keycloak, { name: 'Jane', email: 'jane.doe@example.com' })}\n`);
else
  say(
    `No Keycloak in this run${withKeycloak ? ' (it could not start)' : ' (skipped: --no-keycloak or USHER_DEMO_KEYCLOAK=0)'}: accepting makes the User and keeps a hash of the password, but nothing signs in with it.\n`,
  );
say(`Point kubectl at this control plane from another terminal:

  export KUBECONFIG=${plane.kubeconfigs.admin}
  kubectl get userinvitations -A
  kubectl annotate userinvitation jane-doe -n acme --overwrite usher.dev/reissue-requested-at="$(date -u +%FT%TZ)"   # reissue

Operator log: ${operatorLog}   metrics: http://localhost:${metricsPort}/metrics
Press Ctrl-C to stop everything.`);

const shutdown = (): void => {
  if (stopping) return;
  stopping = true;
  say(`\nstopping: the operator, then the control plane, the mail catcher${keycloak ? ' and Keycloak' : ''}…`);
  // Ctrl-C in a terminal signals the operator too (same process group); it may be gone already.
  operator.kill('SIGTERM');
  void operatorExited
    .then(() => Promise.all([plane.stop(), catcher.close(), stopKeycloak()]))
    .then(() => {
      rmSync(work, { recursive: true, force: true });
      process.exit(0);
    });
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

// `npm run demo`: Usher for real on this machine. Starts a local control plane
// (building it on first use), installs the CRDs, starts the operator against it,
// applies the example invitations and shows them reaching their phases. Stays
// up until Ctrl-C so you can poke at it with kubectl.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from './control-plane/control-plane.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

const plane = await startControlPlane();
const kubectl = (...args: string[]): string => execFileSync('kubectl', ['--kubeconfig', plane.kubeconfigs.admin, ...args], { encoding: 'utf8' });
kubectl('apply', '--server-side', '-f', join(root, 'crds'));
kubectl('wait', '--for=condition=Established', '-f', join(root, 'crds'));

// Two namespaces as a platform would have them: one per tenant (labelled with its
// tenant), and Usher's own, the only one allowed to invite to the whole instance.
for (const ns of ['acme', 'usher-system']) kubectl('create', 'namespace', ns);
kubectl('label', 'namespace', 'acme', 'usher.dev/tenant=acme');

const work = mkdtempSync(join(tmpdir(), 'usher-demo-'));
const configPath = join(work, 'usher.yaml');
writeFileSync(
  configPath,
  ['usher:', '  baseUrl: http://localhost:8080', '  tenancy:', '    instanceNamespaces: [usher-system]', ''].join('\n'),
);
const operator = spawn(process.execPath, [join(root, 'src', 'main.ts'), '--config', configPath, '--kubeconfig', plane.kubeconfigs.admin], {
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, LOG_LEVEL: 'info' },
});
const operatorLog = join(work, 'operator.log');
operator.stdout.on('data', (chunk: Buffer) => {
  writeFileSync(operatorLog, chunk, { flag: 'a' });
});
operator.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));

for (const example of ['tenant-developer.yaml', 'long-expiry.yaml', 'sso-direct.yaml']) kubectl('apply', '-n', 'acme', '-f', join(root, 'examples', example));
kubectl('apply', '-n', 'usher-system', '-f', join(root, 'examples', 'instance-admin.yaml'));

for (const [ns, name, phase] of [['acme', 'jane-doe', 'Pending'], ['acme', 'contractor', 'Pending'], ['acme', 'sam-sso', 'UserCreated'], ['usher-system', 'ops-lead', 'Pending']] as const) {
  kubectl('wait', `--for=jsonpath={.status.phase}=${phase}`, `userinvitation/${name}`, '-n', ns, '--timeout=60s');
}
say('');
say(kubectl('get', 'userinvitations', '-A'));
say(kubectl('get', 'users.usher.dev'));
const link = kubectl('get', 'userinvitation', 'jane-doe', '-n', 'acme', '-o', 'jsonpath={.status.link}');
say(`No mail server is configured, so links wait in status for manual sharing. Jane's link:\n  ${link}\n`);
say(`Point kubectl at this control plane from another terminal:

  export KUBECONFIG=${plane.kubeconfigs.admin}
  kubectl get userinvitations -A
  kubectl annotate userinvitation jane-doe -n acme --overwrite usher.dev/reissue-requested-at="$(date -u +%FT%TZ)"   # reissue

Operator log: ${operatorLog}
Press Ctrl-C to stop everything.`);

const shutdown = (): void => {
  operator.kill('SIGTERM');
  operator.once('exit', () => {
    void plane.stop().then(() => {
      rmSync(work, { recursive: true, force: true });
      process.exit(0);
    });
  });
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
operator.on('exit', (code) => {
  if (code !== 0 && code !== null) {
    process.stderr.write(`the operator exited with ${code}; its log:\n${readFileSync(operatorLog, 'utf8').slice(-4000)}\n`);
  }
});

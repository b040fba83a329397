// A local Kubernetes control plane in the envtest mould: real etcd, real
// kube-apiserver with RBAC on, and a kube-controller-manager running only the
// garbage-collector, namespace and ClusterRole-aggregation controllers (so
// ownerReferences, namespace deletion and the built-in admin/edit/view roles,
// which are empty until aggregated, behave as in a cluster). Everything listens on free loopback ports
// and keeps its data in one temp folder, which stop() removes.
//
// A small guard process watches the Node process that started them: if it dies
// without cleaning up (SIGKILL, a crashed test runner), the guard kills every
// control-plane process and removes the folder.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureControlPlaneBinaries } from './binaries.ts';

/** The identities the token file defines; each gets a kubeconfig of its own. */
export const USERS = {
  /** Cluster admin (group system:masters): sets up CRDs, namespaces, RBAC. */
  admin: { name: 'usher-admin', groups: ['system:masters'] },
  /** Authenticated but granted nothing: proves that RBAC is on. */
  unprivileged: { name: 'usher-test-user', groups: [] as string[] },
  /** Stands for Usher's ServiceAccount, so tests can hold the operator to its chart's RBAC. */
  operator: {
    name: 'system:serviceaccount:usher-system:usher',
    groups: ['system:serviceaccounts', 'system:serviceaccounts:usher-system'],
  },
  /** Stands for the acceptance page's ServiceAccount (the chart's <fullname>-accept), held to its own, smaller RBAC. */
  accept: {
    name: 'system:serviceaccount:usher-system:usher-accept',
    groups: ['system:serviceaccounts', 'system:serviceaccounts:usher-system'],
  },
} as const;

export type UserName = keyof typeof USERS;

/** In a local control plane's folder: kube-apiserver's flags as a JSON array (a second API server reuses them). */
export const APISERVER_ARGS_FILE = 'kube-apiserver.args.json';

export interface ControlPlane {
  /** https://127.0.0.1:PORT of the API server. */
  server: string;
  /** kubeconfig file per identity. */
  kubeconfigs: Record<UserName, string>;
  /** Whether this control plane was started here (false for USE_EXISTING_CLUSTER=true). */
  local: boolean;
  /** Folder with data, logs and kubeconfigs (removed by stop() for a local control plane). */
  dir: string;
  /** etcd's client URL, http://127.0.0.1:PORT (local control planes only): its v3 HTTP gateway answers under /v3/. */
  etcdUrl?: string;
  /**
   * Stops kube-apiserver (SIGTERM, or SIGKILL for a crash), waits `downMs`,
   * and starts it again with the same flags on the same port; resolves once it
   * is ready, with how long stopping and starting took. Local control planes
   * only (fault tests: watches must recover).
   */
  restartApiServer?: (options?: { downMs?: number; signal?: 'SIGTERM' | 'SIGKILL' }) => Promise<{ stopMs: number; startMs: number }>;
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: (line: string) => void;
  /** Keep the data folder after stop() (for debugging). */
  keepData?: boolean;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

function kubeconfigYaml(server: string, caFile: string | undefined, user: string, token: string): string {
  const cluster = caFile ? `certificate-authority: ${caFile}` : 'insecure-skip-tls-verify: true';
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: usher-local`,
    `  cluster:`,
    `    server: ${server}`,
    `    ${cluster}`,
    'users:',
    `- name: ${JSON.stringify(user)}`,
    '  user:',
    `    token: ${token}`,
    'contexts:',
    `- name: usher-local`,
    '  context:',
    '    cluster: usher-local',
    `    user: ${JSON.stringify(user)}`,
    'current-context: usher-local',
    '',
  ].join('\n');
}

async function waitFor(what: string, deadlineMs: number, probe: () => Promise<boolean>, processes: ChildProcess[]): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const dead = processes.find((p) => p.exitCode !== null || p.signalCode !== null);
    if (dead) throw new Error(`${what}: ${dead.spawnfile} exited (${dead.exitCode ?? dead.signalCode ?? '?'}) before it was ready`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${deadlineMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** GET over HTTPS with a bearer token, without verifying the self-signed serving cert. */
async function httpsGetOk(url: string, token: string, caFile: string): Promise<boolean> {
  const { request } = await import('node:https');
  return new Promise((resolve) => {
    const req = request(
      url,
      { headers: { Authorization: `Bearer ${token}` }, ca: existsSync(caFile) ? readFileSync(caFile) : undefined, rejectUnauthorized: existsSync(caFile) },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('error', () => {
      resolve(false);
    });
    req.setTimeout(2000, () => {
      req.destroy();
    });
    req.end();
  });
}

/** A control plane from the current kubeconfig (USE_EXISTING_CLUSTER=true), as envtest does. */
function existingCluster(): ControlPlane {
  const path = process.env.KUBECONFIG?.split(':')[0] ?? join(homedir(), '.kube', 'config');
  if (!existsSync(path)) throw new Error(`USE_EXISTING_CLUSTER=true but no kubeconfig at ${path}`);
  return {
    server: '',
    // An existing cluster has no token file of ours: every identity is the current user.
    // Tests that depend on RBAC denials check `local` and skip with a reason.
    kubeconfigs: { admin: path, unprivileged: path, operator: path, accept: path },
    local: false,
    dir: tmpdir(),
    stop: () => Promise.resolve(),
  };
}

export async function startControlPlane(options: StartOptions = {}): Promise<ControlPlane> {
  if (process.env.USE_EXISTING_CLUSTER === 'true') return existingCluster();
  const log = options.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const bins = await ensureControlPlaneBinaries(log);
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'usher-control-plane-'));
  const children: ChildProcess[] = [];
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', onExit);
    // Controller-manager first, then the API server, then etcd: each depends on the next.
    for (const child of [...children].reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise<void>((r) =>
        child.once('exit', () => {
          r();
        }),
      );
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
      }, 5000);
      await exited;
      clearTimeout(timer);
    }
    guard.kill('SIGKILL');
    if (!options.keepData) rmSync(dir, { recursive: true, force: true });
  };
  // Last resort on a plain process.exit(): kill synchronously; the guard removes the folder.
  const onExit = (): void => {
    for (const child of children) child.kill('SIGKILL');
  };
  process.on('exit', onExit);

  const launch = (name: string, binary: string, args: string[]): ChildProcess => {
    // Appending: a restarted process (restartApiServer) keeps its earlier log.
    const out = createWriteStream(join(dir, `${name}.log`), { flags: 'a' });
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
    child.stdout.pipe(out);
    child.stderr.pipe(out);
    children.push(child);
    // The guard reads the pids file on its way out.
    writeFileSync(join(dir, 'pids'), children.map((c) => c.pid).join('\n'));
    return child;
  };
  // The guard outlives us only if we die uncleanly: it then kills every pid listed
  // in the pids file and removes the folder.
  const guard = spawn(
    'sh',
    [
      '-c',
      'while kill -0 "$1" 2>/dev/null; do sleep 1; done; [ -f "$DIR/pids" ] && kill -9 $(cat "$DIR/pids") 2>/dev/null; rm -rf "$DIR"',
      'guard',
      String(process.pid),
    ],
    { detached: true, stdio: 'ignore', env: { ...process.env, DIR: dir } },
  );
  guard.unref();

  try {
    // etcd
    const [etcdClient, etcdPeer, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    const etcd = launch('etcd', bins.etcd, [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync=true',
      '--quota-backend-bytes=8589934592',
      '--log-level=warn',
    ]);

    // Identities: a static token file, as envtest's "authn" does.
    const tokens = Object.fromEntries(Object.keys(USERS).map((k) => [k, randomBytes(24).toString('hex')])) as Record<UserName, string>;
    const tokenLines = (Object.keys(USERS) as UserName[]).map((k) => {
      const u = USERS[k];
      return `${tokens[k]},${u.name},${u.name},"${u.groups.join(',')}"`;
    });
    writeFileSync(join(dir, 'tokens.csv'), `${tokenLines.join('\n')}\n`, { mode: 0o600 });

    // Service-account keys, so ServiceAccount tokens work as in a cluster.
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
    writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));

    await waitFor('etcd', 60_000, async () => (await fetch(`${etcdUrl}/health`)).ok, [etcd]);

    const certDir = join(dir, 'certs');
    const server = `https://127.0.0.1:${apiPort}`;
    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      `--cert-dir=${certDir}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--disable-admission-plugins=ServiceAccount',
      '--endpoint-reconciler-type=none',
      '--v=1',
    ];
    // For a second API server on the same etcd (oidc-apiserver.ts), which starts with these flags.
    writeFileSync(join(dir, APISERVER_ARGS_FILE), JSON.stringify(apiserverArgs));
    let apiserver = launch('kube-apiserver', bins.kubeApiserver, apiserverArgs);
    // The self-signed serving cert kube-apiserver writes is for localhost/127.0.0.1;
    // clients verify it with its CA (the cert itself).
    const caFile = join(certDir, 'apiserver.crt');
    await waitFor('kube-apiserver', 120_000, () => httpsGetOk(`${server}/readyz`, tokens.admin, caFile), [etcd, apiserver]);

    const restartApiServer = async ({ downMs = 0, signal = 'SIGTERM' }: { downMs?: number; signal?: 'SIGTERM' | 'SIGKILL' } = {}): Promise<{
      stopMs: number;
      startMs: number;
    }> => {
      if (stopped) throw new Error('the control plane is stopped');
      const old = apiserver;
      const stopping = Date.now();
      if (old.exitCode === null && old.signalCode === null) {
        const exited = new Promise<void>((r) =>
          old.once('exit', () => {
            r();
          }),
        );
        old.kill(signal);
        const timer = setTimeout(() => {
          old.kill('SIGKILL');
        }, 10_000);
        await exited;
        clearTimeout(timer);
      }
      children.splice(children.indexOf(old), 1);
      const stopMs = Date.now() - stopping;
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      const starting = Date.now();
      // The same place in the launch order (stop() goes through children in reverse).
      apiserver = launch('kube-apiserver', bins.kubeApiserver, apiserverArgs);
      children.splice(children.indexOf(apiserver), 1);
      children.splice(1, 0, apiserver);
      writeFileSync(join(dir, 'pids'), children.map((c) => c.pid).join('\n'));
      await waitFor('kube-apiserver (restarted)', 120_000, () => httpsGetOk(`${server}/readyz`, tokens.admin, caFile), [etcd, apiserver]);
      return { stopMs, startMs: Date.now() - starting };
    };

    const kubeconfigs = Object.fromEntries(
      (Object.keys(USERS) as UserName[]).map((k) => {
        const path = join(dir, `kubeconfig-${k}.yaml`);
        writeFileSync(path, kubeconfigYaml(server, caFile, USERS[k].name, tokens[k]), { mode: 0o600 });
        return [k, path];
      }),
    ) as Record<UserName, string>;

    const kcmPort = await freePort();
    launch('kube-controller-manager', bins.kubeControllerManager, [
      `--kubeconfig=${kubeconfigs.admin}`,
      `--authentication-kubeconfig=${kubeconfigs.admin}`,
      `--authorization-kubeconfig=${kubeconfigs.admin}`,
      '--controllers=garbagecollector,namespace,clusterrole-aggregation',
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      `--cert-dir=${join(dir, 'kcm-certs')}`,
      '--concurrent-gc-syncs=5',
      '--v=1',
    ]);
    log(`control plane ready at ${server} in ${((Date.now() - started) / 1000).toFixed(1)}s (data in ${dir})`);
    return { server, kubeconfigs, local: true, dir, etcdUrl, restartApiServer, stop };
  } catch (err) {
    const logs = ['etcd', 'kube-apiserver', 'kube-controller-manager']
      .map((n) => join(dir, `${n}.log`))
      .filter((p) => existsSync(p))
      .map((p) => `--- ${p} (last lines)\n${readFileSync(p, 'utf8').split('\n').slice(-30).join('\n')}`)
      .join('\n');
    await stop();
    throw new Error(`${(err as Error).message}\n${logs}`, { cause: err });
  }
}

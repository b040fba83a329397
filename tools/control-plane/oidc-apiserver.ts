// A second kube-apiserver on the shared control plane's etcd, with structured
// authentication (--authentication-config, AuthenticationConfiguration
// apiserver.config.k8s.io/v1) on top of everything the first one has: the same
// etcd, token file, service-account keys and RBAC, so it sees every object the
// first stores and enforces the RoleBindings written through it (two API
// servers on one etcd, as in any HA control plane). Tests start one to prove
// that an API server trusts the ID tokens of an identity provider.
//
// --token-auth-file and --authentication-config combine (the static tokens keep
// working); only the legacy --oidc-* flags conflict with the latter.
//
// As in control-plane.ts, a small guard process watches the Node process that
// started it: if that dies without stop(), the guard kills the API server and
// removes its folder.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureControlPlaneBinaries } from './binaries.ts';
import { APISERVER_ARGS_FILE, freePort, USERS } from './control-plane.ts';

export interface OidcApiServerOptions {
  /** The shared control plane's folder (tokens.csv, sa.key, sa.pub, kube-apiserver.args.json). */
  controlPlaneDir: string;
  /** The shared control plane's etcd, http://127.0.0.1:PORT. */
  etcdUrl: string;
  /** The AuthenticationConfiguration, as YAML (test/support/oidc-auth-config.ts builds one). */
  authenticationConfig: string;
  /** How long to wait for /readyz; 120 s by default. */
  readyTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface OidcApiServer {
  /** https://127.0.0.1:PORT */
  server: string;
  /** The CA of its self-signed serving certificate (for 127.0.0.1 and localhost). */
  caFile: string;
  /** Milliseconds from spawn to /readyz answering 200. */
  readyMs: number;
  /** Stops it (SIGTERM, SIGKILL after 10 s) and removes its folder. */
  stop(): Promise<void>;
}

/** Flags the second API server must not share with the first; the rest are copied as they are. */
const OWN_FLAGS = ['--secure-port=', '--cert-dir=', '--authentication-config='];

export async function startOidcApiServer(opts: OidcApiServerOptions): Promise<OidcApiServer> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const argsFile = join(opts.controlPlaneDir, APISERVER_ARGS_FILE);
  if (!existsSync(argsFile)) throw new Error(`startOidcApiServer: ${argsFile} is missing (is ${opts.controlPlaneDir} a local control plane's folder?)`);
  const shared = JSON.parse(readFileSync(argsFile, 'utf8')) as string[];
  const etcdFlag = shared.find((a) => a.startsWith('--etcd-servers='));
  if (etcdFlag !== `--etcd-servers=${opts.etcdUrl}`)
    throw new Error(`startOidcApiServer: the control plane's API server uses ${etcdFlag ?? 'no --etcd-servers'}, not ${opts.etcdUrl}`);
  const adminToken = readFileSync(join(opts.controlPlaneDir, 'tokens.csv'), 'utf8')
    .split('\n')
    .map((line) => line.split(','))
    .find((fields) => fields[1] === USERS.admin.name)?.[0];
  if (!adminToken) throw new Error(`startOidcApiServer: no ${USERS.admin.name} in ${join(opts.controlPlaneDir, 'tokens.csv')}`);

  const { kubeApiserver } = await ensureControlPlaneBinaries(log);
  const dir = mkdtempSync(join(tmpdir(), 'usher-oidc-apiserver-'));
  const authnFile = join(dir, 'authentication-config.yaml');
  writeFileSync(authnFile, opts.authenticationConfig, { mode: 0o600 });
  const port = await freePort();
  const certDir = join(dir, 'certs');
  const args = [
    ...shared.filter((a) => !OWN_FLAGS.some((f) => a.startsWith(f))),
    `--secure-port=${port}`,
    `--cert-dir=${certDir}`,
    `--authentication-config=${authnFile}`,
  ];
  const logFile = join(dir, 'kube-apiserver.log');
  const out = createWriteStream(logFile);
  const started = Date.now();
  const child = spawn(kubeApiserver, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`startOidcApiServer: could not run ${kubeApiserver}`);
  // The guard ends with the API server; if this process dies first, it kills the API server and removes the folder.
  const guard = spawn(
    'sh',
    [
      '-c',
      'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done; kill -0 "$1" 2>/dev/null && exit 0; kill -9 "$2" 2>/dev/null; rm -rf "$3"',
      'usher-oidc-apiserver-guard',
      String(process.pid),
      String(pid),
      dir,
    ],
    { detached: true, stdio: 'ignore' },
  );
  guard.unref();
  // Last resort on a plain process.exit(): kill synchronously; the guard removes the folder.
  const onExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', onExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', onExit);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) =>
        child.once('exit', () => {
          r();
        }),
      );
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    guard.kill('SIGKILL');
    await new Promise<void>((r) => out.end(r));
    rmSync(dir, { recursive: true, force: true });
  };

  const server = `https://127.0.0.1:${port}`;
  const caFile = join(certDir, 'apiserver.crt');
  const deadline = started + (opts.readyTimeoutMs ?? 120_000);
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`kube-apiserver exited (${child.exitCode ?? child.signalCode ?? '?'}) before it was ready`);
      if (existsSync(caFile) && (await readyz(server, adminToken, caFile))) break;
      if (Date.now() > deadline) throw new Error(`kube-apiserver: not ready after ${(deadline - started) / 1000}s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n') : '(no log)';
    await stop();
    throw new Error(`startOidcApiServer: ${(err as Error).message}\n--- ${logFile} (last lines)\n${tail}`, { cause: err });
  }
  const readyMs = Date.now() - started;
  log(`oidc kube-apiserver ready at ${server} in ${(readyMs / 1000).toFixed(1)}s (etcd ${opts.etcdUrl}, folder ${dir})`);
  return { server, caFile, readyMs, stop };
}

function readyz(server: string, token: string, caFile: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${server}/readyz`, { headers: { Authorization: `Bearer ${token}` }, ca: readFileSync(caFile) }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => {
      resolve(false);
    });
    req.setTimeout(2000, () => req.destroy());
    req.end();
  });
}

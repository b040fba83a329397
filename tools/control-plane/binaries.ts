// Finds or builds the control-plane binaries Usher's tests run against.
//
// Kubernetes and etcd publish no Go-installable commands (their go.mod files use
// relative replaces), so the Go modules beside this file pin them and map each
// staging module to its published version. The first build takes minutes and
// lands in a cache folder outside the repository, keyed by the pinned versions
// and a hash of the go.mod/go.sum files, so every later run reuses it.
//
// Precedence, as with controller-runtime's envtest:
//   1. KUBEBUILDER_ASSETS: a folder holding prebuilt etcd and kube-apiserver
//      (kube-controller-manager too, if present; otherwise it is built here).
//   2. The cache folder (USHER_CACHE_DIR, else $XDG_CACHE_HOME/usher, else ~/.cache/usher).
//   3. A build with the machine's Go from the Go module proxy.
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PINNED = {
  kubernetes: 'v1.36.3',
  etcd: 'v3.6.8',
  helm: 'v3.22.0',
} as const;

export interface ControlPlaneBinaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
}

type Log = (line: string) => void;

const here = dirname(fileURLToPath(import.meta.url));

export function cacheRoot(): string {
  if (process.env.USHER_CACHE_DIR) return process.env.USHER_CACHE_DIR;
  const xdg = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(xdg, 'usher');
}

/** A short hash of the files that decide what gets built, so a changed pin rebuilds. */
function moduleHash(moduleDir: string): string {
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', 'main.go', 'tools.go']) {
    const path = join(moduleDir, file);
    if (existsSync(path)) hash.update(file).update(readFileSync(path));
  }
  return hash.digest('hex').slice(0, 12);
}

function isExecutable(path: string): boolean {
  try {
    return statSync(path).isFile() && (statSync(path).mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/**
 * Runs `go build -v` and reports how many of the packages it needs have been
 * compiled, so a first build that takes many minutes visibly moves.
 */
async function goBuild(opts: { moduleDir: string; packages: string[]; outDir: string; label: string; log: Log }): Promise<void> {
  const { moduleDir, packages, outDir, label, log } = opts;
  const env = { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod -buildvcs=false' };
  const started = Date.now();
  log(`[${label}] downloading Go modules (first time only)...`);
  execFileSync('go', ['mod', 'download'], { cwd: moduleDir, env, stdio: ['ignore', 'ignore', 'inherit'] });
  const listed = execFileSync('go', ['list', '-deps', ...packages], { cwd: moduleDir, env, maxBuffer: 64 << 20 }).toString();
  const total = listed.split('\n').filter(Boolean).length;
  log(`[${label}] compiling up to ${total} packages with ${process.env.GOMAXPROCS ?? 'all'} cores; a first build takes several minutes`);

  await new Promise<void>((resolve, reject) => {
    const child = spawn('go', ['build', '-v', '-trimpath', '-ldflags=-s -w', '-o', `${outDir}/`, ...packages], {
      cwd: moduleDir,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let compiled = 0;
    let lastReport = Date.now();
    let pending = '';
    const errors: string[] = [];
    child.stderr.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (/^[\w.\-/]+$/.test(line)) compiled++;
        else errors.push(line);
      }
      if (Date.now() - lastReport > 15_000) {
        lastReport = Date.now();
        const pct = Math.min(99, Math.round((compiled / total) * 100));
        log(`[${label}] ${compiled}/${total} packages compiled (~${pct}%), ${formatDuration(Date.now() - started)} so far`);
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`[${label}] go build failed (exit ${code}):\n${errors.slice(-40).join('\n')}`));
    });
  });
  log(`[${label}] built in ${formatDuration(Date.now() - started)}`);
}

/** Serialises builds between concurrent processes (two test runs, say) with an atomic mkdir. */
/**
 * Runs `fn` holding a lock folder (mkdir is atomic), so that two runs never
 * build or install into one cache folder at once; a lock whose holder died is
 * taken over. `waiting` says what is waited for, every 30 s.
 */
export async function withLock<T>(lockDir: string, fn: () => Promise<T>, waiting = (dir: string) => `waiting for another build holding ${dir}`): Promise<T> {
  mkdirSync(dirname(lockDir), { recursive: true });
  for (let waited = 0; ; waited += 1000) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch {
      const owner = Number(readFileSyncSafe(join(lockDir, 'pid')));
      if (owner && !processAlive(owner)) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (waited % 30_000 === 0) process.stderr.write(`${waiting(lockDir)}\n`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

function readFileSyncSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds (once) the Go commands of one module into a cache folder and returns that folder
 * (also for the Go test helpers elsewhere under tools/, such as tools/kstatus).
 */
export async function ensureBuilt(opts: { name: string; moduleDir: string; packages: string[]; outputs: string[]; log: Log }): Promise<string> {
  const dir = join(cacheRoot(), 'bin', `${opts.name}-${moduleHash(opts.moduleDir)}`);
  if (opts.outputs.every((o) => isExecutable(join(dir, o)))) return dir;
  return withLock(`${dir}.lock`, async () => {
    if (opts.outputs.every((o) => isExecutable(join(dir, o)))) return dir;
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await goBuild({ moduleDir: opts.moduleDir, packages: opts.packages, outDir: tmp, label: opts.name, log: opts.log });
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    return dir;
  });
}

export async function ensureControlPlaneBinaries(log: Log = (l) => process.stderr.write(`${l}\n`)): Promise<ControlPlaneBinaries> {
  const assets = process.env.KUBEBUILDER_ASSETS;
  let etcd: string | undefined;
  let kubeApiserver: string | undefined;
  let kubeControllerManager: string | undefined;
  if (assets) {
    for (const required of ['etcd', 'kube-apiserver']) {
      if (!isExecutable(join(assets, required))) throw new Error(`KUBEBUILDER_ASSETS=${assets} has no executable ${required}`);
    }
    etcd = join(assets, 'etcd');
    kubeApiserver = join(assets, 'kube-apiserver');
    if (isExecutable(join(assets, 'kube-controller-manager'))) kubeControllerManager = join(assets, 'kube-controller-manager');
  }

  if (!etcd) {
    const dir = await ensureBuilt({ name: `etcd-${PINNED.etcd}`, moduleDir: join(here, 'etcd'), packages: ['.'], outputs: ['etcd'], log });
    etcd = join(dir, 'etcd');
  }
  if (!kubeApiserver || !kubeControllerManager) {
    const dir = await ensureBuilt({
      name: `kubernetes-${PINNED.kubernetes}`,
      moduleDir: join(here, 'kube'),
      packages: ['k8s.io/kubernetes/cmd/kube-apiserver', 'k8s.io/kubernetes/cmd/kube-controller-manager'],
      outputs: ['kube-apiserver', 'kube-controller-manager'],
      log,
    });
    kubeApiserver ??= join(dir, 'kube-apiserver');
    kubeControllerManager = join(dir, 'kube-controller-manager');
  }
  return { etcd, kubeApiserver, kubeControllerManager };
}

/** Builds (once) the pinned helm, for the chart tests. */
export async function ensureHelm(log: Log = (l) => process.stderr.write(`${l}\n`)): Promise<string> {
  const dir = await ensureBuilt({ name: `helm-${PINNED.helm}`, moduleDir: join(here, 'helm'), packages: ['helm.sh/helm/v3/cmd/helm'], outputs: ['helm'], log });
  return join(dir, 'helm');
}

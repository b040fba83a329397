// One Keycloak process: kc.sh in a process group of its own, its database, temp
// files, transaction logs and output in one state folder, a ready-wait on the
// management port's health endpoint, and a stop that takes the whole group down.
// Used by install.ts (the template database) and server.ts (every run).
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
export type Log = (line: string) => void;

/**
 * The build-time options the cached install is built with (`kc.sh build`), so that
 * `start --optimized` never rebuilds: an H2 database in a file (each run points
 * --db-url at a folder of its own) and the health endpoints on the management port.
 */
export const BUILD_OPTIONS = ['--db=dev-file', '--health-enabled=true'];

export interface LaunchOptions {
  home: string;
  /** Holds h2/ (the database), tmp/, transaction-logs/ and keycloak.log; created when missing. */
  stateDir: string;
  httpPort: number;
  managementPort: number;
  /** The install was built with BUILD_OPTIONS: start with --optimized (never rebuilds, never writes into home). */
  optimized: boolean;
  /** Creates this admin in the master realm; only on an empty database (Keycloak ignores it otherwise). */
  bootstrapAdmin?: { username: string; password: string };
  /** A pid: a small watchdog stops Keycloak (and removes stateDir) once that process is gone. */
  watchPid?: number;
  /** More folders the watchdog removes when it has to stop Keycloak (a test run's shared folder). */
  orphanCleanup?: string[];
}

export interface Launched {
  /** kc.sh's pid, which is also the process group's id. */
  pid: number;
  watchdogPid?: number;
  logFile: string;
  /** Resolves once /health/ready answers 200; rejects (after stopping it) when Keycloak exits or the time runs out, with the log's tail. */
  waitReady(timeoutMs: number): Promise<void>;
  /** SIGTERM to the group, SIGKILL after 10 s, waits until it is gone. Does not remove stateDir. */
  stop(): Promise<void>;
}

/** The command line of a run: loopback only, plain HTTP, local caches, everything stateful under stateDir. */
export function keycloakArgs(opts: Pick<LaunchOptions, 'stateDir' | 'httpPort' | 'managementPort' | 'optimized'>): string[] {
  const { stateDir } = opts;
  return [
    'start',
    ...(opts.optimized ? ['--optimized'] : BUILD_OPTIONS),
    '--http-enabled=true',
    '--http-host=127.0.0.1',
    `--http-port=${opts.httpPort}`,
    `--http-management-port=${opts.managementPort}`,
    // Issuer and redirects follow the URL a request came in on (http://127.0.0.1:PORT).
    '--hostname-strict=false',
    '--cache=local',
    `--db-url=jdbc:h2:file:${join(stateDir, 'h2', 'keycloakdb')};NON_KEYWORDS=VALUE`,
    // Otherwise under <home>/data: a run must not write into a shared install.
    `-Djava.io.tmpdir=${join(stateDir, 'tmp')}`,
    `-Dquarkus.transaction-manager.object-store.directory=${join(stateDir, 'transaction-logs')}`,
  ];
}

export function launchKeycloak(opts: LaunchOptions): Launched {
  mkdirSync(join(opts.stateDir, 'tmp'), { recursive: true });
  mkdirSync(join(opts.stateDir, 'h2'), { recursive: true });
  const logFile = join(opts.stateDir, 'keycloak.log');
  // A developer's KC_* or QUARKUS_* settings would change what starts; only ours apply.
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && !/^(KC|QUARKUS)_/.test(key)) env[key] = value;
  // The JIT's first tier only: a short-lived test server starts in about 9 s instead of 21 s
  // on two cores (measured), and answers a test's few hundred requests fast enough.
  env.JAVA_OPTS_APPEND = ['-XX:TieredStopAtLevel=1', process.env.JAVA_OPTS_APPEND].filter(Boolean).join(' ');
  if (opts.bootstrapAdmin) {
    env.KC_BOOTSTRAP_ADMIN_USERNAME = opts.bootstrapAdmin.username;
    env.KC_BOOTSTRAP_ADMIN_PASSWORD = opts.bootstrapAdmin.password;
  }
  const fd = openSync(logFile, 'a');
  let exited = false;
  let child;
  try {
    child = spawn(join(opts.home, 'bin', 'kc.sh'), keycloakArgs(opts), { cwd: opts.stateDir, env, detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`keycloak: could not run ${join(opts.home, 'bin', 'kc.sh')}`);
  child.on('exit', () => {
    exited = true;
  });
  child.on('error', () => {
    exited = true;
  });
  child.unref();

  let watchdogPid: number | undefined;
  if (opts.watchPid !== undefined) {
    // Polls once a second; when the watched process is gone (a test runner killed without
    // its teardown) it stops Keycloak's group and removes the state folder. It exits by
    // itself once Keycloak is gone. (Any extra folders of orphanCleanup go with it.)
    const script = [
      'w=$1; k=$2; s=$3',
      'while kill -0 "$w" 2>/dev/null && kill -0 "$k" 2>/dev/null; do sleep 1; done',
      'kill -0 "$k" 2>/dev/null || exit 0',
      'kill -TERM -"$k" 2>/dev/null; i=0',
      'while kill -0 "$k" 2>/dev/null && [ $i -lt 10 ]; do sleep 1; i=$((i+1)); done',
      'kill -KILL -"$k" 2>/dev/null; sleep 1; shift 3; rm -rf "$s" "$@"',
    ].join('\n');
    const args = [String(opts.watchPid), String(pid), opts.stateDir, ...(opts.orphanCleanup ?? [])];
    const watchdog = spawn('sh', ['-c', script, 'usher-keycloak-watchdog', ...args], {
      detached: true,
      stdio: 'ignore',
    });
    watchdog.unref();
    watchdogPid = watchdog.pid;
  }

  const launched: Launched = {
    pid,
    logFile,
    ...(watchdogPid !== undefined ? { watchdogPid } : {}),
    stop: () => stopGroup(pid),
    waitReady: async (timeoutMs) => {
      const started = Date.now();
      const url = `http://127.0.0.1:${opts.managementPort}/health/ready`;
      for (;;) {
        if (exited || !running(pid)) {
          await stopGroup(pid);
          throw new Error(`keycloak: exited before it was ready; the end of ${logFile}:\n${logTail(readLog(logFile), 40)}`);
        }
        try {
          const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
          if (response.ok) return;
        } catch {
          // not listening yet
        }
        if (Date.now() - started > timeoutMs) {
          await stopGroup(pid);
          throw new Error(`keycloak: not ready after ${Math.round(timeoutMs / 1000)} s; the end of ${logFile}:\n${logTail(readLog(logFile), 40)}`);
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    },
  };
  return launched;
}

/** Whether a process runs (a zombie, exited but not yet reaped, does not). */
export function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (macOS): trust kill(0)
  }
}

/** Stops the process group led by `pid`: SIGTERM (kc.sh passes it on to Java), SIGKILL after 10 s. */
export async function stopGroup(pid: number, graceMs = 10_000): Promise<void> {
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
  };
  if (!running(pid)) {
    signal('SIGKILL'); // stragglers of a group whose leader died
    return;
  }
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (running(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  signal('SIGKILL');
  const killDeadline = Date.now() + 5000;
  while (running(pid) && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 100));
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The last `lines` lines of a log, without the health endpoint's "still down" lines that fill a start. */
export function logTail(text: string, lines: number): string {
  return text
    .split('\n')
    .filter((line) => !line.includes('SRHCK01001'))
    .slice(-lines)
    .join('\n');
}

/** Removes a state folder (the database and logs of one run). */
export function removeStateDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

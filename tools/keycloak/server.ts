// Starts a throwaway Keycloak for tests and the demo: loopback ports of its own, a
// random admin password, and a state folder (database, temp files, keycloak.log)
// that stop() removes.
//
// On the cached install a start copies the template database (master realm ready)
// instead of creating one, which saves about 20 s, and then replaces the template's
// admin password with a random one of this run.
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../control-plane/control-plane.ts';
import { ensureKeycloak, type KeycloakInstall } from './install.ts';
import { launchKeycloak, removeStateDir, running, stopGroup, type Log } from './process.ts';

export interface RunningKeycloak {
  /** http://127.0.0.1:PORT */
  url: string;
  /** http://127.0.0.1:PORT of the management interface (/health/ready). */
  managementUrl: string;
  version: string;
  /** An admin of the master realm. */
  adminUser: string;
  adminPassword: string;
  /** kc.sh's pid, also the id of the process group Keycloak runs in. */
  pid: number;
  stateDir: string;
  /** Stops the process group (SIGTERM, SIGKILL after 10 s), waits for it to exit, removes stateDir. */
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: Log;
  /**
   * false (the default): Keycloak lives no longer than this process (a watchdog stops it if
   * this process dies without stop()). true: it outlives this process, unless `watchPid` is given.
   */
  detached?: boolean;
  /** With detached: a watchdog stops Keycloak once the process with this pid is gone (a test runner's). */
  watchPid?: number;
  /** Folders the watchdog removes too when it stops Keycloak for a vanished watchPid. */
  orphanCleanup?: string[];
  /** How long to wait for /health/ready (120 s). */
  readyTimeoutMs?: number;
}

/** What another process needs to find and stop a detached Keycloak (stopKeycloakByState). */
export interface KeycloakState {
  url: string;
  managementUrl: string;
  version: string;
  adminUser: string;
  adminPassword: string;
  pid: number;
  watchdogPid?: number;
  stateDir: string;
}

const stderrLog: Log = (line) => process.stderr.write(`${line}\n`);

export async function startKeycloak(opts: StartOptions = {}): Promise<RunningKeycloak> {
  const log = opts.log ?? stderrLog;
  const install = await ensureKeycloak(log);
  const started = Date.now();
  const [httpPort, managementPort] = [await freePort(), await freePort()];
  const stateDir = mkdtempSync(join(tmpdir(), 'usher-keycloak-'));
  const url = `http://127.0.0.1:${httpPort}`;
  const managementUrl = `http://127.0.0.1:${managementPort}`;
  const adminPassword = randomBytes(18).toString('base64url');
  const template = install.template;
  if (template) {
    mkdirSync(join(stateDir, 'h2'), { recursive: true });
    copyFileSync(join(template.h2Dir, 'keycloakdb.mv.db'), join(stateDir, 'h2', 'keycloakdb.mv.db'));
  }
  const adminUser = template?.adminUser ?? 'admin';
  log(`keycloak: starting ${install.version} on 127.0.0.1:${httpPort}…`);
  const watchPid = opts.detached ? opts.watchPid : process.pid;
  const kc = launchKeycloak({
    home: install.home,
    stateDir,
    httpPort,
    managementPort,
    optimized: install.optimized,
    ...(template ? {} : { bootstrapAdmin: { username: adminUser, password: adminPassword } }),
    ...(watchPid !== undefined ? { watchPid } : {}),
    ...(opts.orphanCleanup ? { orphanCleanup: opts.orphanCleanup } : {}),
  });
  try {
    await kc.waitReady(opts.readyTimeoutMs ?? 120_000);
    if (template) await replaceAdminPassword(url, template, adminPassword);
  } catch (err) {
    await kc.stop();
    removeStateDir(stateDir);
    throw err;
  }
  log(`keycloak: ready in ${Math.round((Date.now() - started) / 1000)} s`);
  const state: KeycloakState = {
    url,
    managementUrl,
    version: install.version,
    adminUser,
    adminPassword,
    pid: kc.pid,
    ...(kc.watchdogPid !== undefined ? { watchdogPid: kc.watchdogPid } : {}),
    stateDir,
  };
  return {
    ...state,
    stop: () => stopKeycloak(state),
  };
}

/** Writes what stopKeycloakByState needs, atomically (readers never see half a file). */
export function writeKeycloakState(file: string, keycloak: RunningKeycloak | KeycloakState): void {
  const state: KeycloakState = {
    url: keycloak.url,
    managementUrl: keycloak.managementUrl,
    version: keycloak.version,
    adminUser: keycloak.adminUser,
    adminPassword: keycloak.adminPassword,
    pid: keycloak.pid,
    ...('watchdogPid' in keycloak && keycloak.watchdogPid !== undefined ? { watchdogPid: keycloak.watchdogPid } : {}),
    stateDir: keycloak.stateDir,
  };
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export function readKeycloakState(file: string): KeycloakState | undefined {
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as KeycloakState;
}

/** Stops a Keycloak another process started (detached), from the state file it wrote; a missing file is a no-op. */
export async function stopKeycloakByState(file: string): Promise<void> {
  const state = readKeycloakState(file);
  if (state) await stopKeycloak(state);
}

async function stopKeycloak(state: KeycloakState): Promise<void> {
  await stopGroup(state.pid);
  if (state.watchdogPid !== undefined && running(state.watchdogPid)) {
    try {
      process.kill(state.watchdogPid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  removeStateDir(state.stateDir);
}

/**
 * The template database's admin has the template's password, which every run shares:
 * this run's admin gets a password of its own before anyone is told the URL.
 */
async function replaceAdminPassword(url: string, template: NonNullable<KeycloakInstall['template']>, password: string): Promise<void> {
  const tokenResponse = await fetch(`${url}/realms/master/protocol/openid-connect/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'password', client_id: 'admin-cli', username: template.adminUser, password: template.adminPassword }),
  });
  if (!tokenResponse.ok) throw new Error(`keycloak: the template admin could not sign in (${tokenResponse.status}): ${await tokenResponse.text()}`);
  const { access_token: token } = (await tokenResponse.json()) as { access_token: string };
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const users = (await (await fetch(`${url}/admin/realms/master/users?exact=true&username=${encodeURIComponent(template.adminUser)}`, { headers })).json()) as {
    id: string;
  }[];
  const id = users[0]?.id;
  if (!id) throw new Error(`keycloak: the template has no user ${template.adminUser}`);
  const reset = await fetch(`${url}/admin/realms/master/users/${id}/reset-password`, {
    method: 'PUT',
    headers,
    body: JSON.stringify({ type: 'password', value: password, temporary: false }),
  });
  if (!reset.ok) throw new Error(`keycloak: could not set this run's admin password (${reset.status}): ${await reset.text()}`);
}

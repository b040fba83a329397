// One Keycloak shared by every test file of a vitest run.
//
// The run's global setup makes a folder (prepareSharedKeycloak) and hands it to the
// test files; the first file that wants Keycloak starts it there (sharedKeycloak),
// detached so that it outlives the worker that started it, and writes its state file;
// later files read that file. An atomic mkdir keeps two files from starting two. The
// global teardown stops it (stopSharedKeycloak). If the test runner dies without its
// teardown, a watchdog that watches the runner's pid stops Keycloak. A run in which no
// file asks never starts Java.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { running, type Log } from './process.ts';
import { readKeycloakState, startKeycloak, stopKeycloakByState, writeKeycloakState, type KeycloakState } from './server.ts';

const STATE = 'keycloak.json';
const FAILED = 'keycloak.failed';
const LOCK = 'starting';
const OWNER = 'runner.pid';

/** Makes the run's folder; the calling process (the test runner) is the one the watchdog watches. */
export function prepareSharedKeycloak(): string {
  const dir = mkdtempSync(join(tmpdir(), 'usher-kc-run-'));
  writeFileSync(join(dir, OWNER), String(process.pid));
  return dir;
}

/** The run's Keycloak: started by the first caller, found by the others. */
export async function sharedKeycloak(dir: string, log?: Log): Promise<KeycloakState> {
  if (!existsSync(join(dir, OWNER))) throw new Error(`${dir} is not a shared Keycloak folder (prepareSharedKeycloak makes one)`);
  for (let waited = 0; ; waited += 500) {
    const state = readKeycloakState(join(dir, STATE));
    if (state) {
      if (!running(state.pid)) throw new Error(`the run's Keycloak (pid ${state.pid}) has exited; its log is ${join(state.stateDir, 'keycloak.log')}`);
      return state;
    }
    if (existsSync(join(dir, FAILED))) throw new Error(`the run's Keycloak failed to start in an earlier file: ${readFileSync(join(dir, FAILED), 'utf8')}`);
    try {
      mkdirSync(join(dir, LOCK));
    } catch {
      // Another file is starting it; take over only if that process died.
      const owner = Number(readOr(join(dir, LOCK, 'pid'), '0'));
      if (owner && !running(owner)) rmSync(join(dir, LOCK), { recursive: true, force: true });
      else {
        if (waited > 0 && waited % 30_000 === 0) (log ?? stderr)(`keycloak: waiting for another test file to start Keycloak…`);
        await new Promise((r) => setTimeout(r, 500));
      }
      continue;
    }
    writeFileSync(join(dir, LOCK, 'pid'), String(process.pid));
    try {
      const keycloak = await startKeycloak({
        detached: true,
        watchPid: Number(readFileSync(join(dir, OWNER), 'utf8')),
        orphanCleanup: [dir],
        ...(log ? { log } : {}),
      });
      writeKeycloakState(join(dir, STATE), keycloak);
    } catch (err) {
      writeFileSync(join(dir, FAILED), err instanceof Error ? err.message : String(err));
      throw err;
    }
  }
}

/** Stops the run's Keycloak if a file started one, and removes the run's folder. */
export async function stopSharedKeycloak(dir: string): Promise<void> {
  await stopKeycloakByState(join(dir, STATE));
  rmSync(dir, { recursive: true, force: true });
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

const stderr: Log = (line) => process.stderr.write(`${line}\n`);

// Finds or installs the Keycloak that Usher's tests and demo run against.
//
// Precedence:
//   1. USHER_KEYCLOAK_HOME: an existing Keycloak folder (bin/kc.sh), used as it is.
//   2. The cache folder <cacheRoot()>/keycloak-<version>/ (USHER_CACHE_DIR, else ~/.cache/usher).
//   3. An install into that folder: Java 17+ (apt-get when missing), the distribution
//      zip from Maven Central through `mvn dependency:get`, unzipped, built once
//      (`kc.sh build`) and given a template database, in a temp folder beside the
//      target that is renamed into place at the end: an interrupted install never
//      leaves a half one behind.
//
// Every later run starts the cached install with `kc.sh start --optimized` and its
// database, logs and temp files in a folder of its own (server.ts): nothing writes
// into the cache after the install.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cacheRoot, withLock } from '../control-plane/binaries.ts';
import { freePort } from '../control-plane/control-plane.ts';
import { BUILD_OPTIONS, launchKeycloak, logTail, type Log } from './process.ts';

export const KEYCLOAK_VERSION = '26.7.3';
const ARTIFACT = `org.keycloak:keycloak-quarkus-dist:${KEYCLOAK_VERSION}:zip`;

/** The template database of a cached install: master realm initialised, one admin. */
export const TEMPLATE_DIR = 'usher-template';
export interface Template {
  /** Folder holding keycloakdb.mv.db, copied into each run's state folder. */
  h2Dir: string;
  adminUser: string;
  adminPassword: string;
}

export interface KeycloakInstall {
  home: string;
  version: string;
  /** Whether the install was built with BUILD_OPTIONS (the cached one), so it starts with --optimized. */
  optimized: boolean;
  /** The template database (cached installs only): a start that copies it skips ~20 s of schema and master-realm set-up. */
  template?: Template;
}

const stderrLog: Log = (line) => process.stderr.write(`${line}\n`);

export async function ensureKeycloak(log: Log = stderrLog): Promise<KeycloakInstall> {
  await ensureJava(log);
  const given = process.env.USHER_KEYCLOAK_HOME;
  if (given) {
    if (!existsSync(join(given, 'bin', 'kc.sh'))) throw new Error(`USHER_KEYCLOAK_HOME=${given} has no bin/kc.sh`);
    return { home: given, version: readVersion(given), optimized: false };
  }
  const home = join(cacheRoot(), `keycloak-${KEYCLOAK_VERSION}`);
  const found = installed(home);
  if (found) return found;
  return withLock(
    `${home}.lock`,
    async () => {
      const again = installed(home);
      if (again) return again;
      await install(home, log);
      const done = installed(home);
      if (!done) throw new Error(`keycloak: the install in ${home} is incomplete`);
      return done;
    },
    (dir) => `keycloak: waiting for another install holding ${dir}`,
  );
}

/** The cached install at `home` when it is complete (the rename at the end of install() makes that all or nothing). */
function installed(home: string): KeycloakInstall | undefined {
  const admin = join(home, TEMPLATE_DIR, 'admin.json');
  if (!existsSync(join(home, 'lib', 'quarkus', 'quarkus-application.dat')) || !existsSync(admin)) return undefined;
  const { username, password } = JSON.parse(readFileSync(admin, 'utf8')) as { username: string; password: string };
  return {
    home,
    version: readVersion(home),
    optimized: true,
    template: { h2Dir: join(home, TEMPLATE_DIR, 'h2'), adminUser: username, adminPassword: password },
  };
}

function readVersion(home: string): string {
  try {
    // "Keycloak - Version 26.7.3"
    return /(\d+\.\d+\.\d+\S*)/.exec(readFileSync(join(home, 'version.txt'), 'utf8'))?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function install(home: string, log: Log): Promise<void> {
  const started = Date.now();
  const zip = await ensureZip(log);
  const tmp = `${home}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    log(`keycloak: unpacking ${zip}`);
    extract(zip, tmp);
    const inner = join(tmp, `keycloak-${KEYCLOAK_VERSION}`);
    if (!existsSync(join(inner, 'bin', 'kc.sh'))) throw new Error(`keycloak: ${zip} holds no keycloak-${KEYCLOAK_VERSION}/bin/kc.sh`);
    // Python's zipfile (one of the fallbacks) drops the executable bits.
    for (const file of readdirSync(join(inner, 'bin'))) if (file.endsWith('.sh')) chmodSync(join(inner, 'bin', file), 0o755);

    const buildStarted = Date.now();
    log(`keycloak: building the server once (kc.sh build ${BUILD_OPTIONS.join(' ')}, about a minute)…`);
    await run(join(inner, 'bin', 'kc.sh'), ['build', ...BUILD_OPTIONS], join(tmp, 'build.log'), inner);
    log(`keycloak: built in ${seconds(buildStarted)} s`);

    await makeTemplate(inner, tmp, log);

    rmSync(join(inner, 'data'), { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
    renameSync(inner, home);
    log(`keycloak: installed ${KEYCLOAK_VERSION} in ${home} (${seconds(started)} s)`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Starts the fresh install once on an empty database and stops it: the database it
 * leaves (schema, master realm, one admin user) is what every later start copies.
 * The admin's password is random and kept beside it; each start replaces it with a
 * password of its own (server.ts).
 */
async function makeTemplate(inner: string, tmp: string, log: Log): Promise<void> {
  const started = Date.now();
  log('keycloak: preparing a template database (once, about a minute)…');
  const stateDir = join(tmp, 'template-run');
  const adminUser = 'admin';
  const adminPassword = randomBytes(18).toString('base64url');
  const [httpPort, managementPort] = [await freePort(), await freePort()];
  const kc = launchKeycloak({
    home: inner,
    stateDir,
    httpPort,
    managementPort,
    optimized: true,
    bootstrapAdmin: { username: adminUser, password: adminPassword },
  });
  try {
    await kc.waitReady(180_000);
  } finally {
    await kc.stop();
  }
  const h2 = join(inner, TEMPLATE_DIR, 'h2');
  mkdirSync(h2, { recursive: true });
  renameSync(join(stateDir, 'h2', 'keycloakdb.mv.db'), join(h2, 'keycloakdb.mv.db'));
  writeFileSync(join(inner, TEMPLATE_DIR, 'admin.json'), JSON.stringify({ username: adminUser, password: adminPassword }), { mode: 0o600 });
  log(`keycloak: template database ready in ${seconds(started)} s`);
}

// ---- the distribution zip

/** The local Maven repository: -Dmaven.repo.local from MAVEN_OPTS, else ~/.m2/repository. */
function mavenRepo(): string {
  const fromOpts = /-Dmaven\.repo\.local=(\S+)/.exec(process.env.MAVEN_OPTS ?? '')?.[1];
  return fromOpts ?? join(homedir(), '.m2', 'repository');
}

async function ensureZip(log: Log): Promise<string> {
  const zip = join(mavenRepo(), 'org', 'keycloak', 'keycloak-quarkus-dist', KEYCLOAK_VERSION, `keycloak-quarkus-dist-${KEYCLOAK_VERSION}.zip`);
  if (existsSync(zip)) return zip;
  if (!commandExists('mvn'))
    throw new Error(`keycloak: ${zip} is missing and there is no mvn to fetch ${ARTIFACT} (install Maven, or set USHER_KEYCLOAK_HOME)`);
  const started = Date.now();
  log(`keycloak: fetching ${ARTIFACT.replace(/:zip$/, '')} (about 180 MB) with mvn…`);
  await run('mvn', ['-B', '-q', 'dependency:get', `-Dartifact=${ARTIFACT}`, '-Dtransitive=false'], undefined);
  if (!existsSync(zip))
    throw new Error(`keycloak: mvn dependency:get succeeded but ${zip} is not there (is -Dmaven.repo.local set elsewhere than MAVEN_OPTS?)`);
  log(`keycloak: fetched in ${seconds(started)} s`);
  return zip;
}

/** Unzips with whatever the machine has: unzip, else Python's zipfile, else the JDK's jar. */
function extract(zip: string, into: string): void {
  if (commandExists('unzip')) execFileSync('unzip', ['-q', zip, '-d', into], { stdio: ['ignore', 'ignore', 'inherit'] });
  else if (commandExists('python3')) execFileSync('python3', ['-m', 'zipfile', '-e', zip, into], { stdio: ['ignore', 'ignore', 'inherit'] });
  else if (commandExists('jar')) execFileSync('jar', ['xf', zip], { cwd: into, stdio: ['ignore', 'ignore', 'inherit'] });
  else throw new Error('keycloak: no unzip, python3 or jar on this machine to unpack the distribution');
}

// ---- Java

/** The java kc.sh runs: $JAVA, else $JAVA_HOME/bin/java, else java on the PATH. */
function javaCommand(): string {
  if (process.env.JAVA) return process.env.JAVA;
  if (process.env.JAVA_HOME) return join(process.env.JAVA_HOME, 'bin', 'java');
  return 'java';
}

/** The major version of `java -version` ("17.0.15" → 17, "1.8.0_292" → 8), or undefined without a java. */
export function javaMajor(versionOutput: string): number | undefined {
  const match = /version "(\d+)(?:\.(\d+))?/.exec(versionOutput);
  if (!match) return undefined;
  const first = Number(match[1]);
  return first === 1 ? Number(match[2]) : first;
}

function installedJava(): number | undefined {
  const result = spawnSync(javaCommand(), ['-version'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) return undefined;
  return javaMajor(`${result.stderr}${result.stdout}`);
}

async function ensureJava(log: Log): Promise<void> {
  const major = installedJava();
  if (major !== undefined && major >= 17) return;
  const found = major === undefined ? 'no java' : `Java ${major}`;
  if (!commandExists('apt-get'))
    throw new Error(`keycloak: Keycloak ${KEYCLOAK_VERSION} needs Java 17 or later and this machine has ${found}; install one (or set JAVA_HOME)`);
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  const apt = async (args: string[]): Promise<void> => {
    const [command, ...rest] = [...sudo, 'apt-get', ...args];
    await run(command ?? 'apt-get', rest, undefined, undefined, { DEBIAN_FRONTEND: 'noninteractive' });
  };
  const started = Date.now();
  log(`keycloak: ${found}, installing openjdk-17-jre-headless with ${sudo.length ? 'sudo ' : ''}apt-get…`);
  try {
    await apt(['install', '-y', '-q', 'openjdk-17-jre-headless']);
  } catch {
    await apt(['update', '-q']);
    await apt(['install', '-y', '-q', 'openjdk-17-jre-headless']);
  }
  const after = installedJava();
  if (after === undefined || after < 17) throw new Error(`keycloak: installed openjdk-17-jre-headless but ${javaCommand()} still is ${after ?? 'missing'}`);
  log(`keycloak: Java ${after} installed in ${seconds(started)} s`);
}

// ---- helpers

function commandExists(command: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { stdio: 'ignore' }).status === 0;
}

function seconds(since: number): number {
  return Math.round((Date.now() - since) / 1000);
}

/** Runs a command to completion; its output goes to `logFile` (quoted in the error when it fails) or to stderr. */
function run(command: string, args: string[], logFile: string | undefined, cwd?: string, env?: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    let out: string[] = [];
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer): void => {
      if (logFile) out.push(chunk.toString());
      else process.stderr.write(chunk);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) => {
      if (logFile) writeFileSync(logFile, out.join(''));
      const tail = logFile ? `:\n${logTail(out.join(''), 30)}` : '';
      out = [];
      if (code === 0) resolve();
      else reject(new Error(`keycloak: ${command} ${args.join(' ')} failed (exit ${code})${tail}`));
    });
  });
}

// What Flux and Argo CD make of an object's health, computed by their own code:
// tools/kstatus (the kstatus library Flux uses) and tools/argo-health (the Lua VM
// Argo CD runs health checks in), each a pinned Go module built once into the
// cache folder like the control-plane binaries (tools/control-plane/binaries.ts).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureBuilt } from '../../tools/control-plane/binaries.ts';

const run = promisify(execFile);
const tools = join(import.meta.dirname, '..', '..', 'tools');
const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** One object's health as a tool reported it. */
export interface Health {
  kind: string;
  namespace?: string;
  name: string;
  status: string;
  message: string;
}

/** Builds (once) tools/kstatus and returns the binary's path. */
export async function ensureKstatus(): Promise<string> {
  const dir = await ensureBuilt({ name: 'kstatus-cli-utils-v0.37.2', moduleDir: join(tools, 'kstatus'), packages: ['.'], outputs: ['kstatus'], log });
  return join(dir, 'kstatus');
}

/** Builds (once) tools/argo-health and returns the binary's path. */
export async function ensureArgoHealth(): Promise<string> {
  const dir = await ensureBuilt({
    name: 'argo-health-gopher-lua-v1.1.2',
    moduleDir: join(tools, 'argo-health'),
    packages: ['.'],
    outputs: ['argo-health'],
    log,
  });
  return join(dir, 'argo-health');
}

async function runJson(binary: string, args: string[], objects: readonly object[]): Promise<Health[]> {
  const child = run(binary, args, { maxBuffer: 16 << 20 });
  child.child.stdin?.end(JSON.stringify(objects));
  const { stdout } = await child;
  return JSON.parse(stdout) as Health[];
}

/** kstatus's status.Compute for each object, in order. */
export async function kstatus(objects: readonly object[]): Promise<Health[]> {
  return runJson(await ensureKstatus(), [], objects);
}

/** The Argo CD health check `script` (a file) for each object, in order, without the open libraries (as from argocd-cm). */
export async function argoHealth(script: string, objects: readonly object[]): Promise<Health[]> {
  return runJson(await ensureArgoHealth(), [script], objects);
}

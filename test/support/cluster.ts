// Helpers for integration tests: kubectl as one of the harness's identities,
// and a namespace of the test file's own.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, inject } from 'vitest';
import type { UserName } from '../../tools/control-plane/control-plane.ts';

const run = promisify(execFile);

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kubectl as `as` (admin by default) or with `kubeconfig`; resolves with the exit code rather than throwing. */
export async function kubectl(args: string[], opts: { as?: UserName; input?: string; kubeconfig?: string } = {}): Promise<KubectlResult> {
  const kubeconfig = opts.kubeconfig ?? inject('kubeconfigs')[opts.as ?? 'admin'];
  const child = run('kubectl', ['--kubeconfig', kubeconfig, ...args], { maxBuffer: 64 << 20 });
  if (opts.input !== undefined) {
    child.child.stdin?.end(opts.input);
  }
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Like kubectl(), but throws with kubectl's stderr when it fails. */
export async function kubectlOk(args: string[], opts: { as?: UserName; input?: string } = {}): Promise<string> {
  const result = await kubectl(args, opts);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

/**
 * Deletes namespaces and waits until they are gone: what a test file leaves behind
 * must not be reconciled by the next file's operator. Invitations there may hold
 * Usher's usher.dev/membership finalizer while no controller runs any more (most
 * files stop theirs first), so it is taken off, as the README tells an
 * uninstalled Usher's users to; a controller still running removes it itself.
 */
export async function deleteNamespaces(...names: string[]): Promise<void> {
  const present = names.filter(Boolean);
  if (!present.length) return;
  await kubectl(['delete', 'namespace', ...present, '--wait=false']);
  for (const namespace of present) {
    const listed = await kubectl(['get', 'userinvitations', '-n', namespace, '-o', 'name']);
    for (const invitation of listed.stdout.split('\n').filter(Boolean)) {
      await kubectl(['patch', invitation, '-n', namespace, '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
    }
  }
  await kubectl(['wait', '--for=delete', ...present.map((n) => `namespace/${n}`), '--timeout=90s']);
}

/**
 * Creates a fresh namespace before the file's tests and deletes it after them.
 * Returns a getter, since the name is only known once beforeAll has run.
 */
export function useNamespace(prefix: string): () => string {
  let name = '';
  beforeAll(async () => {
    name = `${prefix}-${randomBytes(3).toString('hex')}`;
    await kubectlOk(['create', 'namespace', name]);
  });
  afterAll(async () => {
    await deleteNamespaces(name);
  });
  return () => name;
}

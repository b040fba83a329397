// Helpers for the Helm chart's tests: the pinned helm binary (built once by
// tools/control-plane), run with a private Helm home so the machine's own
// repositories and plugins play no part, and the rendered manifests as objects.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadAll } from 'js-yaml';
import { afterAll, beforeAll, inject } from 'vitest';
import { ensureHelm } from '../../tools/control-plane/binaries.ts';

const run = promisify(execFile);

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CHART = join(ROOT, 'charts', 'usher');

let helmPath: Promise<string> | undefined;
const home = mkdtempSync(join(tmpdir(), 'usher-helm-home-'));

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Finds (or, on a machine without the cache, builds: `npm test` runs test:deps
 * first, which builds it) the pinned helm before the file's tests, so that a
 * first build happens in a hook with room for it rather than in a test.
 */
export function useHelm(): void {
  beforeAll(async () => {
    helmPath ??= ensureHelm();
    await helmPath;
  }, 30 * 60_000);
  afterAll(() => {
    rmSync(home, { recursive: true, force: true });
  });
}

/** Runs the pinned helm; with `cluster`, against the test control plane as admin. Resolves with the exit code. */
export async function helm(args: string[], opts: { cluster?: boolean } = {}): Promise<HelmResult> {
  helmPath ??= ensureHelm();
  const binary = await helmPath;
  const env = {
    ...process.env,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  const kube = opts.cluster ? ['--kubeconfig', inject('kubeconfigs').admin] : [];
  try {
    const { stdout, stderr } = await run(binary, [...args, ...kube], { env, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

export async function helmOk(args: string[], opts: { cluster?: boolean } = {}): Promise<string> {
  const result = await helm(args, opts);
  if (result.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

/** A values file (JSON is YAML) for `-f`. */
export function valuesFile(values: Record<string, unknown>): string {
  const path = join(mkdtempSync(join(home, 'values-')), 'values.yaml');
  writeFileSync(path, JSON.stringify(values));
  return path;
}

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export function parseManifests(text: string): Manifest[] {
  return loadAll(text).filter((doc): doc is Manifest => typeof doc === 'object' && doc !== null);
}

/** `helm template` of the chart folder (or a packaged chart) as release "usher"; the text when it fails is in the error. */
export async function template(values: Record<string, unknown> = {}, opts: { namespace?: string; chart?: string } = {}): Promise<Manifest[]> {
  return parseManifests(await templateText(values, opts));
}

export function templateText(values: Record<string, unknown> = {}, opts: { namespace?: string; chart?: string } = {}): Promise<string> {
  return helmOk(['template', 'usher', opts.chart ?? CHART, '--namespace', opts.namespace ?? 'usher-system', '-f', valuesFile(values)]);
}

export function find(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  if (!found) throw new Error(`no ${kind}${name ? ` ${name}` : ''} among ${manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')}`);
  return found;
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

/** Values that switch on everything optional: mail with a password, SSO, a shared CSRF key, the Ingress, the ServiceMonitor and the NetworkPolicy. */
export const FULL_VALUES = {
  config: {
    baseUrl: 'https://join.example.com',
    tenancy: { instanceNamespaces: ['platform-admins'] },
    mail: {
      enabled: true,
      host: 'smtp.example.com',
      port: 465,
      from: 'Platform <no-reply@example.com>',
      replyTo: 'help@example.com',
      auth: { user: 'no-reply@example.com', existingSecret: 'usher-smtp', key: 'smtp-password' },
    },
    accept: {
      loginUrl: 'https://console.example.com',
      trustProxy: ['10.0.0.0/8'],
      csrfKey: { existingSecret: 'usher-csrf' },
      oidc: { enabled: true, issuer: 'https://login.example.com', clientId: 'usher', clientSecret: { existingSecret: 'usher-oidc' } },
    },
  },
  ingress: {
    enabled: true,
    className: 'nginx',
    host: 'join.example.com',
    annotations: { 'cert-manager.io/cluster-issuer': 'letsencrypt' },
    tls: { secretName: 'join-example-com-tls' },
  },
  metrics: { serviceMonitor: { enabled: true, labels: { release: 'prometheus' } } },
  networkPolicy: {
    enabled: true,
    ingressFrom: [
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'ingress-nginx' } },
      },
    ],
  },
};

// Small helpers around @kubernetes/client-node 2.x: where the kubeconfig comes
// from, what an error from the API means, and the options that make custom
// object patches merge patches.
import { existsSync, readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig, PatchStrategy, setHeaderOptions, type ConfigurationOptions } from '@kubernetes/client-node';

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

/** What loadKubeConfig reads from the environment (main passes the process's). */
export interface KubeConfigEnv {
  /** A list of kubeconfig files (path.delimiter between them), merged. */
  KUBECONFIG?: string | undefined;
  /** In a pod: the API server's Service address, which Kubernetes sets. */
  KUBERNETES_SERVICE_HOST?: string | undefined;
  KUBERNETES_SERVICE_PORT?: string | undefined;
}

export interface LoadKubeConfigOptions {
  /** Home folder holding .kube/config (default os.homedir()); for tests. */
  homeDir?: string;
  /** Prefix of the service-account files (client-node's loadFromCluster pathPrefix); for tests. */
  inClusterPathPrefix?: string;
}

/**
 * Loads the kubeconfig from, in order: the explicit path, KUBECONFIG (a path
 * list, merged), the pod's service account, ~/.kube/config, reading the
 * environment only from `env`. Unlike client-node's loadFromDefault (which
 * prefers ~/.kube/config to the service account and, failing all, silently
 * targets http://localhost:8080), a pod's own identity wins over a stray home
 * config and finding nothing is an error. With a path alone, only that file is read.
 */
export function loadKubeConfig(path: string): KubeConfig;
export function loadKubeConfig(path: string | undefined, env: KubeConfigEnv, options?: LoadKubeConfigOptions): KubeConfig;
export function loadKubeConfig(path: string | undefined, env: KubeConfigEnv = {}, options: LoadKubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  const files = (env.KUBECONFIG ?? '').split(delimiter).filter((file) => file !== '');
  const serviceAccount = (options.inClusterPathPrefix ?? '') + SERVICE_ACCOUNT;
  if (path) {
    kc.loadFromFile(path);
  } else if (files.length > 0) {
    // As client-node's loadFromDefault: the first file, then each next one merged in.
    for (const [i, file] of files.entries()) {
      if (i === 0) {
        kc.loadFromFile(file);
      } else {
        const next = new KubeConfig();
        next.loadFromFile(file);
        kc.mergeConfig(next);
      }
    }
  } else if (env.KUBERNETES_SERVICE_HOST && existsSync(`${serviceAccount}/token`)) {
    loadInCluster(kc, env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT || '443', serviceAccount);
  } else {
    const home = join(options.homeDir ?? homedir(), '.kube', 'config');
    if (!existsSync(home)) {
      throw new Error('no kubeconfig: pass a path, set KUBECONFIG, run in a pod with a service account, or create ~/.kube/config');
    }
    kc.loadFromFile(home);
  }
  return kc;
}

/**
 * client-node's loadFromCluster, with the API server's address given rather
 * than read from process.env: the service account's CA, token (re-read as it
 * rotates) and namespace.
 */
function loadInCluster(kc: KubeConfig, host: string, port: string, serviceAccount: string): void {
  const scheme = ['80', '8080', '8001'].includes(port) ? 'http' : 'https';
  const server = `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  let namespace: string | undefined;
  try {
    namespace = readFileSync(`${serviceAccount}/namespace`, 'utf8');
  } catch {
    namespace = undefined;
  }
  kc.loadFromOptions({
    clusters: [{ name: 'inCluster', caFile: `${serviceAccount}/ca.crt`, server, skipTLSVerify: false }],
    users: [{ name: 'inClusterUser', authProvider: { name: 'tokenFile', config: { tokenFile: `${serviceAccount}/token` } } }],
    contexts: [{ name: 'inClusterContext', cluster: 'inCluster', user: 'inClusterUser', namespace }],
    currentContext: 'inClusterContext',
  });
}

export interface ApiError {
  /** HTTP status code: 404 NotFound, 409 Conflict/AlreadyExists, 410 Gone, 422 Invalid… */
  code?: number;
  /** The Status reason (NotFound, AlreadyExists, Conflict, Expired, Gone, Invalid, Forbidden…), when the server sent one. */
  reason?: string;
  message: string;
}

/**
 * What an error from client-node 2.x is about. Reads an `ApiException`
 * (`code`, and a `body` that is the Status object or, for status codes the
 * OpenAPI spec does not declare, its raw JSON text), a watch error
 * (`statusCode`), and a watch `ERROR` event's Status object (`code`).
 */
export function apiErrorOf(err: unknown): ApiError {
  if (typeof err !== 'object' || err === null) return { message: String(err) };
  // Its numeric `code` is a legacy DOM code (20 AbortError, 23 TimeoutError), not HTTP.
  if (err instanceof DOMException) return { message: `${err.name}: ${err.message}` };
  const e = err as Record<string, unknown>;
  const status = statusOf(e.body) ?? (e.kind === 'Status' ? statusOf(e) : undefined);
  const code = numberOr(e.code) ?? numberOr(e.statusCode) ?? status?.code;
  const message = status?.message ?? (typeof e.message === 'string' && e.message ? withCause(e.message, e.cause) : undefined);
  const result: ApiError = { message: message ?? (code !== undefined ? `HTTP ${code}` : describe(err)) };
  if (code !== undefined) result.code = code;
  if (status?.reason) result.reason = status.reason;
  return result;
}

export const isNotFound = (err: unknown): boolean => apiErrorOf(err).code === 404;
export const isGone = (err: unknown): boolean => apiErrorOf(err).code === 410;
export const isAlreadyExists = (err: unknown): boolean => apiErrorOf(err).reason === 'AlreadyExists';
/** A 409 other than AlreadyExists: an update with a stale resourceVersion. */
export function isConflict(err: unknown): boolean {
  const { code, reason } = apiErrorOf(err);
  return code === 409 && reason !== 'AlreadyExists';
}
/**
 * Either 409, the one test for "someone else wrote first": a replace with a
 * stale resourceVersion (Conflict) or a create that lost to another's (AlreadyExists).
 * Both mean: read again, and retry if it still applies.
 */
export const isConflictOrAlreadyExists = (err: unknown): boolean => isConflict(err) || isAlreadyExists(err);

interface Status {
  code?: number;
  reason?: string;
  message?: string;
}

function statusOf(body: unknown): Status | undefined {
  let value = body;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const status: Status = {};
  const code = numberOr(v.code);
  if (code !== undefined) status.code = code;
  if (typeof v.reason === 'string') status.reason = v.reason;
  if (typeof v.message === 'string') status.message = v.message;
  return Object.keys(status).length > 0 ? status : undefined;
}

function describe(err: object): string {
  try {
    return JSON.stringify(err);
  } catch {
    return Object.prototype.toString.call(err);
  }
}

/** undici's fetch rejects with "fetch failed" and hides the reason (ECONNREFUSED…) in `cause`. */
function withCause(message: string, cause: unknown): string {
  return cause instanceof Error && cause.message ? `${message}: ${cause.message}` : message;
}

function numberOr(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/**
 * Options for `CustomObjectsApi.patchNamespacedCustomObject[Status]` (and other
 * patch calls) that send `application/merge-patch+json`: by default the client
 * picks `application/json-patch+json`, and a plain object body then fails
 * (kubernetes-client/javascript#2434). The middleware runs after the request
 * is built, so it overrides the header the generated code set.
 */
export function mergePatchOptions(options?: ConfigurationOptions): ConfigurationOptions {
  return setHeaderOptions('Content-Type', PatchStrategy.MergePatch, options);
}

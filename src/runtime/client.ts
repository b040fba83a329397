// Small helpers around @kubernetes/client-node 2.x: where the kubeconfig comes
// from, what an error from the API means, and the options that make custom
// object patches merge patches.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig, PatchStrategy, setHeaderOptions, type ConfigurationOptions } from '@kubernetes/client-node';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface LoadKubeConfigOptions {
  /** Home folder holding .kube/config (default os.homedir()); for tests. */
  homeDir?: string;
  /** Prefix of the service-account files (client-node's loadFromCluster pathPrefix); for tests. */
  inClusterPathPrefix?: string;
}

/**
 * Loads the kubeconfig from, in order: the explicit path, $KUBECONFIG (a path
 * list, merged), the pod's service account, ~/.kube/config. Unlike
 * client-node's loadFromDefault (which prefers ~/.kube/config to the service
 * account and, failing all, silently targets http://localhost:8080), a pod's
 * own identity wins over a stray home config and finding nothing is an error.
 */
export function loadKubeConfig(path?: string, options: LoadKubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  if (path) {
    kc.loadFromFile(path);
  } else if (process.env.KUBECONFIG) {
    kc.loadFromDefault();
  } else if (process.env.KUBERNETES_SERVICE_HOST && existsSync((options.inClusterPathPrefix ?? '') + SERVICE_ACCOUNT_TOKEN)) {
    kc.loadFromCluster(options.inClusterPathPrefix);
  } else {
    const home = join(options.homeDir ?? homedir(), '.kube', 'config');
    if (!existsSync(home)) {
      throw new Error('no kubeconfig: pass a path, set KUBECONFIG, run in a pod with a service account, or create ~/.kube/config');
    }
    kc.loadFromFile(home);
  }
  return kc;
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

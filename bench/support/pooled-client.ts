// client-node API clients that reuse their connections, for the benchmarks'
// own drivers (creating invitations, reading phases), which use client-node's
// generated API classes. Usher itself no longer does: its calls go through
// src/runtime/rest-client.ts (docs/adr/0010). Until then this module was
// src/runtime/pooled-client.ts, and every part of Usher made its clients here.
import {
  bufferFromFileOrString,
  createConfiguration,
  ServerConfiguration,
  setHeaderMiddleware,
  type ApiConstructor,
  type ApiType,
  type KubeConfig,
  type RequestContext,
  type SecurityAuthentication,
} from '@kubernetes/client-node';
// For the User-Agent header client-node's own makeApiClient sends.
import clientPackage from '@kubernetes/client-node/package.json' with { type: 'json' };

/**
 * The kubeconfig's authentication, over one pool of keep-alive connections.
 * client-node 2.x's KubeConfig.applySecurityAuthentication builds a new undici
 * Agent for every request, so every API call opened (and TLS-handshook) a
 * connection of its own, which then idled until undici's keep-alive timeout.
 * This keeps the first Agent built for a TLS identity (server, proxy, CA,
 * client certificate and key) and hands it to every later request; when the
 * identity changes (certificates rotated on disk), the new Agent takes over and
 * the old one is closed once its requests are done. Headers (the bearer
 * token) are still applied per request by the kubeconfig, as before.
 */
export class PooledAuthentication implements SecurityAuthentication {
  readonly #kubeConfig: KubeConfig;
  #pooled: { identity: string; dispatcher: NonNullable<ReturnType<RequestContext['getDispatcher']>> } | undefined;
  /** The identity, re-read from the kubeconfig (and its files) at most every IDENTITY_TTL_MS. */
  #identity: { text: string; at: number } | undefined;

  constructor(kubeConfig: KubeConfig) {
    this.#kubeConfig = kubeConfig;
  }

  getName(): string {
    return 'kubeconfig authentication (pooled connections)';
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.#kubeConfig.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (fresh === undefined) return;
    const now = performance.now();
    if (!this.#identity || now - this.#identity.at > IDENTITY_TTL_MS) this.#identity = { text: tlsIdentity(this.#kubeConfig), at: now };
    const identity = this.#identity.text;
    if (this.#pooled?.identity === identity) {
      context.setDispatcher(this.#pooled.dispatcher);
      return;
    }
    const old = this.#pooled?.dispatcher;
    this.#pooled = { identity, dispatcher: fresh };
    // Later, not now: a request may hold the old Agent between here and its fetch.
    if (old)
      setTimeout(() => {
        old.close().catch(() => undefined);
      }, 60_000).unref();
  }
}

/** How long a TLS identity read from the kubeconfig is trusted before it is read again (certificate rotation). */
const IDENTITY_TTL_MS = 10_000;

/** What the kubeconfig's undici Agent is built from; the same text means an Agent of the same kind. */
function tlsIdentity(kubeConfig: KubeConfig): string {
  const cluster = kubeConfig.getCurrentCluster();
  const user = kubeConfig.getCurrentUser();
  const material = (file?: string, data?: string): string => bufferFromFileOrString(file, data)?.toString('base64') ?? '';
  return JSON.stringify([
    cluster?.server,
    cluster?.proxyUrl,
    cluster?.skipTLSVerify,
    cluster?.tlsServerName,
    material(cluster?.caFile, cluster?.caData),
    material(user?.certFile, user?.certData),
    material(user?.keyFile, user?.keyData),
  ]);
}

/** KubeConfig.makeApiClient, but authenticating (and connecting) through `auth`. */
export function makePooledApiClient<T extends ApiType>(
  kubeConfig: KubeConfig,
  apiClientType: ApiConstructor<T>,
  auth: SecurityAuthentication = new PooledAuthentication(kubeConfig),
): T {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('No active cluster!');
  return new apiClientType(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: auth },
      middleware: [setHeaderMiddleware('User-Agent', `kubernetes-client-javascript/${clientPackage.version}`)],
    }),
  );
}

// The acceptance page's HTTP server (fastify): security headers on every
// response, rate limits per client and per link, a logger that never sees a
// token or a password, the static assets, and the routes (routes.ts).
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import fastifyRateLimit from '@fastify/rate-limit';
import type { KubeConfig } from '@kubernetes/client-node';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify';
import { pino, type Logger } from 'pino';
import type { UsherConfig } from '../config/types.ts';
import { apiErrorOf } from '../runtime/client.ts';
import { parseToken } from '../invitation/token.ts';
import { securityHeaders } from './headers.ts';
import { deriveKeys } from './keys.ts';
import { OidcLogin } from './oidc.ts';
import { messagePage, notFoundPage, type RenderedPage } from './pages.ts';
import { registerRoutes, ROUTES, send, type Context } from './routes.ts';
import { SignInLimiter } from './sign-in.ts';
import { KubeAcceptStore, type AcceptStore } from './store.ts';
import type { RestClient } from '../runtime/rest-client.ts';

export interface AcceptServerDeps {
  kubeConfig: KubeConfig;
  /** Replaces the Kubernetes store (tests with an in-memory one). */
  store?: AcceptStore;
  /** The process's one API client, for the Kubernetes store. */
  rest?: RestClient;
  config: UsherConfig;
  log: Logger;
  now?: () => Date;
}

export interface AcceptServer {
  /** Fills the caches, then starts listening; resolves with the URL it listens on. */
  listen(port: number, host?: string): Promise<string>;
  /** Whether the caches are synced (readiness). */
  ready(): boolean;
  close(): Promise<void>;
}

/** Small: the form has four short fields. */
const BODY_LIMIT = 16 * 1024;

const ASSETS: Record<string, string> = { 'usher.css': 'text/css; charset=utf-8', 'icon.svg': 'image/svg+xml' };

export function createAcceptServer(deps: AcceptServerDeps): AcceptServer {
  const { config } = deps;
  const accept = config.accept;
  const log = deps.log.child({ component: 'accept' }, { serializers: { req: safeRequest, res: safeResponse, err: pino.stdSerializers.err } });
  const oidc = accept.oidc ? new OidcLogin(accept.oidc, `${config.baseUrl}/accept/oidc/callback`) : undefined;
  const now = deps.now ?? (() => new Date());
  const store =
    deps.store ??
    new KubeAcceptStore({
      kubeConfig: deps.kubeConfig,
      namespace: config.namespace,
      credentialsNamespace: accept.credentialsNamespace,
      log,
      ...(deps.rest ? { rest: deps.rest } : {}),
      resyncPeriodMs: config.controller.resyncPeriodMs,
    });
  const ctx: Context = {
    config,
    store,
    signIn: new SignInLimiter(now),
    keys: deriveKeys(accept.csrfKey),
    now,
    secureCookies: config.baseUrl.startsWith('https:'),
    log,
    ...(oidc ? { oidc } : {}),
  };
  const assets = new Map(Object.entries(ASSETS).map(([file, type]) => [file, { type, body: readFileSync(new URL(`./assets/${file}`, import.meta.url)) }]));

  // Typed as fastify's logger so that the instance (and routes.ts) use fastify's default generics.
  const loggerInstance: FastifyBaseLogger = log;
  const app = Fastify({
    loggerInstance,
    // Fastify's own request lines would carry the URL, and with it the token; onResponse logs a safe one.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    trustProxy: trustProxyOption(accept.trustProxy),
    return503OnClosing: true,
    requestTimeout: 30_000,
    // A URL the router cannot even parse (bad percent-encoding, an over-long
    // token) never reaches the hooks: answer it here, as any malformed link.
    frameworkErrors: (_error, request, reply) => {
      securityHeaders(reply, ctx.secureCookies);
      void send(reply, notFoundPage(), assetsPathFor(request.url));
    },
  });

  app.addHook('onRequest', async (_request, reply) => {
    securityHeaders(reply, ctx.secureCookies);
  });
  app.addHook('onResponse', async (request, reply) => {
    // Probes would drown everything else.
    if (request.routeOptions.url === '/healthz') return;
    request.log.info({ req: request, res: reply, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  void app.register(fastifyCookie);
  void app.register(fastifyFormbody, { bodyLimit: BODY_LIMIT });
  void app.register(fastifyRateLimit, { global: false });
  void app.after(() => {
    // Two limits in a row: fastify.rateLimit() handlers share a "ran" mark, so
    // chaining two would skip the second; createRateLimit() checks without it.
    const perClient = app.createRateLimit({ max: accept.rateLimit.perClientPerMinute, timeWindow: 60_000 });
    const perLink = app.createRateLimit({ max: accept.rateLimit.perTokenPerMinute, timeWindow: 60_000, keyGenerator: (request) => selectorOf(request) ?? '' });
    app.addHook('onRequest', async (request, reply) => {
      if (!ROUTES.limited.has(request.routeOptions.url ?? '')) return;
      for (const limit of selectorOf(request) ? [perClient, perLink] : [perClient]) {
        const result = await limit(request);
        if (!result.isAllowed && result.isExceeded) {
          // An async hook that answers must return the reply (fastify then stops); one that passes returns nothing.
          reply.header('retry-after', String(result.ttlInSeconds));
          return send(reply, tooManyRequests(result.ttlInSeconds), assetsPathFor(request.url));
        }
      }
      return;
    });
    registerRoutes(app, ctx);
    app.get('/accept/assets/:file', async (request: FastifyRequest<{ Params: { file: string } }>, reply) => {
      const asset = assets.get(request.params.file);
      if (!asset) return send(reply, notFoundPage(), '.');
      return reply.type(asset.type).send(asset.body);
    });
    app.get('/healthz', async (_request, reply) => reply.type('text/plain; charset=utf-8').send('ok\n'));
  });

  app.setNotFoundHandler(async (request, reply) => send(reply, notFoundPage(), assetsPathFor(request.url)));
  app.setErrorHandler(async (error: unknown, request, reply) => {
    const status = statusOf(error);
    if (status >= 500) {
      // apiErrorOf, not the raw error: a client-node exception carries the whole response, headers included.
      const { code, message } = apiErrorOf(error);
      request.log.error({ code, error: message }, 'request failed');
    }
    const page: RenderedPage =
      status < 500
        ? messagePage({ status, tone: 'warning', icon: 'warn', title: 'That request could not be handled', lead: 'Open your invitation link again and retry.' })
        : messagePage({
            status: 503,
            tone: 'danger',
            icon: 'warn',
            title: 'Something went wrong on our side',
            lead: 'Your invitation is unchanged. Please try again in a few minutes.',
          });
    return send(reply, page, assetsPathFor(request.url));
  });

  return {
    async listen(port: number, host = '0.0.0.0'): Promise<string> {
      await store.start();
      await app.listen({ port, host });
      const address = app.server.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${shownHost}:${address.port}`;
    },
    ready(): boolean {
      return store.hasSynced();
    },
    async close(): Promise<void> {
      await app.close();
      store.stop();
    },
  };
}

/**
 * fastify's (proxy-addr's) trust function. A number N trusts the peer and the
 * N-1 proxies before it whatever their address, so the client is the address
 * the N-th proxy saw: entries a client writes into X-Forwarded-For itself sit
 * further left and are never believed.
 */
function trustProxyOption(trust: string[] | number): string[] | boolean | ((address: string, hop: number) => boolean) {
  if (typeof trust === 'number') return (_address: string, hop: number) => hop < trust;
  return trust.length > 0 ? trust : false;
}

/** The selector of a token-bearing route, which is what the logs and the per-link limit key on. */
function selectorOf(request: FastifyRequest): string | undefined {
  const token = (request.params as { token?: unknown } | undefined)?.token;
  return typeof token === 'string' ? parseToken(token)?.selector : undefined;
}

/** Pages live at /accept/<token> and /accept/oidc/callback: relative asset paths work behind any path prefix. */
function assetsPathFor(url: string): string {
  const path = url.split('?')[0] ?? '';
  return path.startsWith('/accept/oidc/') ? '../assets' : path.startsWith('/accept/') && path.split('/').length === 3 ? 'assets' : '/accept/assets';
}

function statusOf(error: unknown): number {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}

function tooManyRequests(seconds: number): RenderedPage {
  return messagePage({
    status: 429,
    tone: 'warning',
    icon: 'clock',
    title: 'Too many attempts',
    lead: `Please wait ${seconds === 1 ? 'a second' : `${seconds} seconds`} before trying again.`,
  });
}

/** What a log line says about a request: method, route pattern and selector; never the URL, which holds the verifier. */
function safeRequest(request: FastifyRequest): Record<string, unknown> {
  const selector = selectorOf(request);
  return { method: request.method, route: request.routeOptions.url ?? '(no route)', ...(selector ? { selector } : {}) };
}

function safeResponse(reply: FastifyReply): Record<string, unknown> {
  return { statusCode: reply.statusCode };
}

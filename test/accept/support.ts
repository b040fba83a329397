// Helpers for the acceptance page's integration tests: a running page against
// the harness's API server, invitations with records made by hand (no
// controller), a fetch client that keeps cookies, and readers for what the
// page wrote.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { inject } from 'vitest';
import { createAcceptServer, type AcceptServer } from '../../src/accept/index.ts';
import { KubeAcceptStore } from '../../src/accept/store.ts';
import type { User, UserInvitation, UserInvitationSpec } from '../../src/api/types.ts';
import { normalizeEmail } from '../../src/invitation/email.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { UsherConfig } from '../../src/config/types.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { recordFromSecret, secretFromRecord, type InvitationRecord } from '../../src/invitation/record.ts';
import { issueToken } from '../../src/invitation/token.ts';
import { freePort } from '../../tools/control-plane/control-plane.ts';
import { kubectl, kubectlOk } from '../support/cluster.ts';
import { recordName } from '../../src/invitation/naming.ts';

export { CHROMIUM_ARGS } from '../support/chromium.ts';
/** Where the browser tests leave their screenshots (gitignored). */
export const SCREENSHOTS = join(import.meta.dirname, '..', '..', 'test-results', 'accept');

/** Usher's namespace in the harness: records and password hashes live here. */
export const USHER_NAMESPACE = 'usher-system';

export interface RunningPage {
  url: string;
  config: UsherConfig;
  /** The page's store, to wait until its caches have seen a write. */
  store: KubeAcceptStore;
  /** Everything the page logged, one JSON line each. */
  logs: string[];
  server: AcceptServer;
}

/** Starts the page on a free loopback port; `yaml` is the `accept:` section and anything else under `usher:`. */
export async function startPage(
  extraYaml: (port: number) => string,
  opts: { now?: () => Date; env?: NodeJS.ProcessEnv; port?: number } = {},
): Promise<RunningPage> {
  const port = opts.port ?? (await freePort());
  const config = parseConfig(`usher:\n  baseUrl: http://127.0.0.1:${port}\n${extraYaml(port)}`, { source: 'test-config.yaml', env: opts.env ?? {} });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  // As the chart's acceptance-page ServiceAccount, with exactly its RBAC.
  const kubeConfig = loadKubeConfig(inject('kubeconfigs').accept);
  const store = new KubeAcceptStore({ kubeConfig, namespace: config.namespace, credentialsNamespace: config.accept.credentialsNamespace, log });
  const server = createAcceptServer({ kubeConfig, config, log, store, ...(opts.now ? { now: opts.now } : {}) });
  await server.listen(port, '127.0.0.1');
  return { url: `http://127.0.0.1:${port}`, config, logs, server, store };
}

/** Waits until the page's caches hold this record (as written) and the invitation's current issuance. */
export async function cached(page: RunningPage, record: InvitationRecord & { acceptanceClaim?: unknown }, invitationIssuance = record.issuance): Promise<void> {
  const canonical = (r: object): string =>
    JSON.stringify(
      Object.fromEntries(
        Object.entries(r)
          .filter(([k, v]) => k !== 'resourceVersion' && v !== undefined)
          .sort(([a], [b]) => a.localeCompare(b)),
      ),
    );
  const want = canonical(record);
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
    const inCache = page.store.cached.recordsBySelector(record.selector).find((r) => r.name === record.name);
    const invitation = page.store.cached.invitation(record.invitationNamespace, record.invitationName);
    if (inCache && canonical(inCache) === want && invitation?.status?.issuance === invitationIssuance) return;
  }
  throw new Error(`the page's cache never saw record ${record.name} as written`);
}

/** Replaces a record as someone with rights in Usher's namespace would (the harness's admin), and waits for the page to see it. */
export async function rewriteRecord(page: RunningPage, record: InvitationRecord & { acceptanceClaim?: unknown }): Promise<void> {
  await kubectlOk(['delete', 'secret', record.name, '-n', record.namespace]);
  await kubectlOk(['create', '-f', '-'], { input: JSON.stringify(secretFromRecord(record)) });
  await cached(page, record);
}

/** The `accept:` and `tenancy:` lines for a test namespace. */
export function acceptYaml(namespace: string, extra = ''): string {
  return `  tenancy:
    instanceNamespaces: [${namespace}]
  accept:
    loginUrl: https://console.example.com/login
    rateLimit: { perClientPerMinute: 10000, perTokenPerMinute: 10000 }
${extra}`;
}

export interface TestInvitation {
  invitation: UserInvitation;
  record: InvitationRecord;
  token: string;
  link: string;
}

let counter = 0;

/**
 * Creates a UserInvitation, its record Secret in Usher's namespace and the
 * status naming its issuance, the way the controller would, with a fresh
 * token (the controller itself does not run); then waits until the page's
 * caches have seen them.
 */
export async function createInvitation(
  page: RunningPage,
  namespace: string,
  spec: UserInvitationSpec,
  record: { expiresAt?: string; usedAt?: string } = {},
): Promise<TestInvitation> {
  const baseUrl = page.url;
  const name = `invite-${Date.now().toString(36)}-${(counter++).toString(36)}`;
  const doc = { apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', metadata: { name, namespace }, spec };
  const invitation = JSON.parse(await kubectlOk(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(doc) })) as UserInvitation;
  const issued = issueToken(randomBytes);
  const now = new Date();
  const uid = invitation.metadata.uid ?? '';
  const rec: InvitationRecord = {
    name: recordName(uid, 1),
    namespace: USHER_NAMESPACE,
    invitationNamespace: namespace,
    invitationName: name,
    invitationUid: uid,
    selector: issued.selector,
    verifierHash: issued.verifierHash,
    email: normalizeEmail(spec.email),
    issuance: 1,
    issuedAt: now.toISOString(),
    expiresAt: record.expiresAt ?? new Date(now.getTime() + 7 * 24 * 3600 * 1000).toISOString(),
    ...(record.usedAt ? { usedAt: record.usedAt } : {}),
  };
  await kubectlOk(['create', '-f', '-'], { input: JSON.stringify(secretFromRecord(rec)) });
  const status = { phase: 'Pending', issuance: 1, issuedAt: rec.issuedAt, expiresAt: rec.expiresAt };
  const withStatus = JSON.parse(
    await kubectlOk(['patch', 'userinvitation', name, '-n', namespace, '--subresource=status', '--type=merge', '-o', 'json', '-p', JSON.stringify({ status })]),
  ) as UserInvitation;
  await cached(page, rec);
  return { invitation: withStatus, record: rec, token: issued.token, link: `${baseUrl}/accept/${issued.token}` };
}

export async function readRecord(name: string, namespace = USHER_NAMESPACE): Promise<(InvitationRecord & { acceptanceClaim?: unknown }) | undefined> {
  const result = await kubectl(['get', 'secret', name, '-n', namespace, '-o', 'json']);
  if (result.code !== 0) return undefined;
  return recordFromSecret(JSON.parse(result.stdout) as Parameters<typeof recordFromSecret>[0]);
}

export async function readUser(name: string): Promise<User | undefined> {
  const result = await kubectl(['get', 'users.usher.dev', name, '-o', 'json']);
  return result.code === 0 ? (JSON.parse(result.stdout) as User) : undefined;
}

export interface SecretJson {
  type: string;
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { kind: string; name: string; uid: string }[];
  };
  data: Record<string, string>;
}

export async function readSecret(namespace: string, name: string): Promise<SecretJson | undefined> {
  const result = await kubectl(['get', 'secret', name, '-n', namespace, '-o', 'json']);
  return result.code === 0 ? (JSON.parse(result.stdout) as SecretJson) : undefined;
}

export interface Response {
  status: number;
  headers: Headers;
  body: string;
}

/** fetch with a cookie jar, as one browser would be; never follows redirects. */
export class Session {
  readonly cookies = new Map<string, string>();

  async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const body = init.form ? new URLSearchParams(init.form).toString() : undefined;
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, {
      method: init.method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      redirect: 'manual',
      ...(body === undefined ? {} : { body }),
    });
    for (const cookie of res.headers.getSetCookie()) {
      const [pair = ''] = cookie.split(';');
      const eq = pair.indexOf('=');
      const key = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /max-age=0|expires=thu, 01 jan 1970/i.test(cookie)) this.cookies.delete(key);
      else this.cookies.set(key, value);
    }
    return { status: res.status, headers: res.headers, body: await res.text() };
  }

  get(url: string): Promise<Response> {
    return this.request(url);
  }

  post(url: string, form: Record<string, string>): Promise<Response> {
    return this.request(url, { form });
  }
}

/** The CSRF token in a rendered form. */
export function csrfOf(page: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(page);
  if (!match?.[1]) throw new Error(`no CSRF token in the page:\n${page}`);
  return match[1];
}

/** Opens the link and submits the password form, as a person would. */
export async function acceptWithPassword(
  link: string,
  fields: { firstName?: string; lastName?: string; password: string; confirm?: string },
  session = new Session(),
): Promise<Response> {
  const page = await session.get(link);
  if (page.status !== 200) return page;
  return session.post(link, {
    csrf: csrfOf(page.body),
    intent: 'password',
    firstName: fields.firstName ?? 'Jane',
    lastName: fields.lastName ?? 'Doe',
    password: fields.password,
    confirm: fields.confirm ?? fields.password,
  });
}

/** The part of a page between <main> and </main>, to compare pages without their per-request details. */
export function mainOf(page: string): string {
  return page.slice(page.indexOf('<main'), page.indexOf('</main>'));
}

// The attacks of docs/security.md, each made by the actor it names with only
// that actor's RBAC (a ServiceAccount of its own, bound to a Role for this
// test), against Usher's real controller (as the chart's controller identity)
// and acceptance page (as the chart's page identity) on the real API server.
//
// Replay: npx vitest run test/security/threats.int.test.ts
import { randomBytes } from 'node:crypto';
import { verify } from '@node-rs/argon2';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createAcceptServer, type AcceptServer } from '../../src/accept/index.ts';
import { csrfToken, newCsrfNonce } from '../../src/accept/csrf.ts';
import { deriveKeys } from '../../src/accept/keys.ts';
import { KubeAcceptStore } from '../../src/accept/store.ts';
import { createInvitationMailer } from '../../src/mail/invitation-mailer.ts';
import type { User, UserInvitation } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { UsherConfig } from '../../src/config/types.ts';
import { Controller } from '../../src/controller/controller.ts';
import { membershipOf } from '../../src/invitation/decide.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { recordFromSecret, secretFromRecord, type InvitationRecord, type SecretLike } from '../../src/invitation/record.ts';
import { hashVerifier, issueToken } from '../../src/invitation/token.ts';
import { freePort } from '../../tools/control-plane/control-plane.ts';
import { actor, type Actor } from '../support/actors.ts';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';
import { countingProxy, type CountingProxy } from '../support/counting-proxy.ts';
import { closedPort, mailConfig, startSmtp, type TestSmtp } from '../mail/support/smtp.ts';
import { acceptWithPassword, csrfOf, mainOf, readSecret, readUser, Session, USHER_NAMESPACE } from '../accept/support.ts';
import { userNameFor } from '../../src/invitation/naming.ts';

const suffix = Math.random().toString(16).slice(2, 8);
const acme = `acme-${suffix}`;
const platform = `platform-${suffix}`;
const OWNER_PASSWORD = 'the instance admin’s own long passphrase';
const ATTACKER_PASSWORD = 'the tenant admin’s chosen passphrase';
const skipRbac = !inject('localControlPlane');

const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
/** The page's CSRF key, known here so that a test can forge a valid form token as a determined attacker with their own browser could. */
const CSRF_KEY = 'a test key of at least thirty-two bytes, shared';

/** A session holding a CSRF cookie, and a valid form token for `link`: what opening a form would give. */
function formFor(link: string): { session: Session; csrf: string } {
  const session = new Session();
  const nonce = newCsrfNonce();
  session.cookies.set('usher-csrf', nonce);
  const selector = link.slice(link.lastIndexOf('/') + 1).split('.')[0] ?? '';
  return { session, csrf: csrfToken(deriveKeys(CSRF_KEY).csrf, selector, nonce, new Date()) };
}

interface Running {
  url: string;
  config: UsherConfig;
  page: AcceptServer;
  controller: Controller;
  proxy: CountingProxy;
  store: KubeAcceptStore;
}

async function startUsher(extra = '', opts: { mailPort?: number; mailBackoffMs?: number } = {}): Promise<Running> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = parseConfig(
    `usher:\n  baseUrl: ${url}\n  namespace: ${USHER_NAMESPACE}\n  tenancy:\n    instanceNamespaces: [${platform}]\n  accept:\n    rateLimit: { perClientPerMinute: 10000, perTokenPerMinute: 10000 }\n${extra}`,
    { source: 'threats.yaml', env: {} },
  );
  config.accept.csrfKey = CSRF_KEY;
  const withMail: UsherConfig = opts.mailPort === undefined ? config : { ...config, mail: mailConfig(opts.mailPort) };
  const controller = new Controller({
    kubeConfig: loadKubeConfig(inject('kubeconfigs').operator),
    config: withMail,
    log: silent,
    ...(opts.mailBackoffMs === undefined ? {} : { mailBackoffMs: () => opts.mailBackoffMs ?? 0 }),
    ...(opts.mailPort === undefined ? {} : { mailer: createInvitationMailer(mailConfig(opts.mailPort)) }),
  });
  await controller.start();
  // The page as its own ServiceAccount, through a proxy that counts its API requests.
  const proxy = await countingProxy(inject('kubeconfigs').accept);
  const store = new KubeAcceptStore({ kubeConfig: proxy.kubeConfig, namespace: USHER_NAMESPACE, credentialsNamespace: USHER_NAMESPACE, log: silent });
  const page = createAcceptServer({ kubeConfig: proxy.kubeConfig, config, log: silent, store });
  await page.listen(port, '127.0.0.1');
  return { url, config, page, controller, proxy, store };
}

async function stopUsher(u: Running | undefined): Promise<void> {
  if (!u) return;
  await u.page.close();
  await u.controller.stop();
  await u.proxy.close();
}

function invitationDoc(namespace: string, name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', metadata: { name, namespace }, spec });
}

async function invitation(namespace: string, name: string): Promise<UserInvitation> {
  return JSON.parse(await kubectlOk(['get', 'userinvitation', name, '-n', namespace, '-o', 'json'])) as UserInvitation;
}

async function waitFor<T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const value = await read();
    if (value !== undefined) return value;
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The link in status once the controller disclosed it and the page's caches have its record. */
async function linkOf(u: Running, namespace: string, name: string, as?: Actor): Promise<string> {
  const link = await waitFor(`status.link of ${namespace}/${name}`, async () => {
    const result = as
      ? await as.kubectl(['get', 'userinvitation', name, '-n', namespace, '-o', 'jsonpath={.status.link}'])
      : await kubectl(['get', 'userinvitation', name, '-n', namespace, '-o', 'jsonpath={.status.link}']);
    return result.code === 0 && result.stdout.startsWith('http') ? result.stdout : undefined;
  });
  await waitFor('the page to open the link', async () => ((await new Session().get(link)).status === 200 ? true : undefined), 10_000);
  return link;
}

async function recordsOf(uid: string): Promise<InvitationRecord[]> {
  const list = JSON.parse(await kubectlOk(['get', 'secrets', '-n', USHER_NAMESPACE, '-l', `usher.dev/invitation-uid=${uid}`, '-o', 'json'])) as {
    items: SecretLike[];
  };
  return list.items.flatMap((s) => recordFromSecret(s) ?? []);
}

/** Everything of a User an invitation must never change, and its password hash. */
async function accountOf(email: string): Promise<{ user: User | undefined; credentials: Record<string, string> | undefined }> {
  const user = await readUser(userNameFor(email));
  return { user, credentials: (await readSecret(USHER_NAMESPACE, `usher-credentials-${userNameFor(email)}`))?.data };
}

const INVITATIONS = { apiGroups: ['usher.dev'], resources: ['userinvitations'] };

beforeAll(async () => {
  await kubectlOk(['create', 'namespace', acme]);
  await kubectlOk(['label', 'namespace', acme, 'usher.dev/tenant=acme']);
  await kubectlOk(['create', 'namespace', platform]);
});

afterAll(async () => {
  await deleteNamespaces(acme, platform);
});

describe.skipIf(skipRbac)('a tenant admin (get/create on invitations in their namespace) re-invites an existing account', () => {
  let u: Running;
  let tenantAdmin: Actor;
  const owner = `ops.lead+${suffix}@example.org`;
  const ssoUser = `sam+${suffix}@example.org`;

  beforeAll(async () => {
    u = await startUsher();
    tenantAdmin = await actor('tenant-admin', acme, [{ ...INVITATIONS, verbs: ['get', 'create'] }]);
    // The instance admin's account, made the ordinary way: an Instance invitation accepted with a password.
    await kubectlOk(['create', '-f', '-'], { input: invitationDoc(platform, 'ops-lead', { email: owner, scope: 'Instance', roles: [{ name: 'admin' }] }) });
    const link = await linkOf(u, platform, 'ops-lead');
    expect((await acceptWithPassword(link, { firstName: 'Olivia', lastName: 'Lead', password: OWNER_PASSWORD })).status).toBe(200);
    // And an SSO account, created directly.
    await kubectlOk(['create', '-f', '-'], {
      input: invitationDoc(platform, 'sam-sso', { email: ssoUser, scope: 'Instance', groups: ['sre'], createUserDirectly: true }),
    });
    await waitFor('the External User', async () => ((await readUser(userNameFor(ssoUser)))?.spec.memberships?.length ? true : undefined));
    await waitFor('the page to see both Users', () =>
      Promise.resolve(u.store.cached.user(userNameFor(owner)) && u.store.cached.user(userNameFor(ssoUser)) ? true : undefined),
    );
  });

  afterAll(async () => {
    await stopUsher(u);
  });

  it('cannot take over a Password account: a new password is refused, the page asks for the existing one; names, sign-in and credentials are unchanged', async () => {
    const before = await accountOf(owner);
    expect(before.user?.spec.authentication).toBe('Password');
    expect(
      (await tenantAdmin.kubectl(['create', '-f', '-'], invitationDoc(acme, 'takeover', { email: owner, tenant: 'acme', roles: [{ name: 'developer' }] })))
        .code,
    ).toBe(0);
    const link = await linkOf(u, acme, 'takeover', tenantAdmin);

    const session = new Session();
    const shown = await session.get(link);
    expect(shown.status).toBe(200);
    expect(shown.body).toContain('You already have an account');
    expect(shown.body).not.toContain('autocomplete="new-password"');
    // The new-account form, posted anyway.
    const asNew = await session.post(link, {
      csrf: csrfOf(shown.body),
      intent: 'password',
      firstName: 'Mallory',
      password: ATTACKER_PASSWORD,
      confirm: ATTACKER_PASSWORD,
    });
    expect(asNew.status).toBe(422);
    expect(asNew.body).toContain('sign in with its password');
    // A sign-in with the attacker's password: one generic refusal.
    const signIn = await session.post(link, { csrf: csrfOf(asNew.body), intent: 'signin', password: ATTACKER_PASSWORD });
    expect(signIn.status).toBe(422);
    expect(signIn.body).toContain('That did not work');

    expect(await accountOf(owner)).toEqual(before);
    const hash = Buffer.from(before.credentials?.['password-hash'] ?? '', 'base64').toString('utf8');
    expect(await verify(hash, OWNER_PASSWORD)).toBe(true);
    expect((await invitation(acme, 'takeover')).status?.phase).not.toBe('Accepted');
  });

  it('cannot take over an External (SSO) account: without SSO on the page there is no way in; the account is unchanged', async () => {
    const before = await accountOf(ssoUser);
    expect(before.user?.spec.authentication).toBe('External');
    expect(
      (await tenantAdmin.kubectl(['create', '-f', '-'], invitationDoc(acme, 'sso-takeover', { email: ssoUser, tenant: 'acme', groups: ['devs'] }))).code,
    ).toBe(0);
    const link = await linkOf(u, acme, 'sso-takeover', tenantAdmin);

    const session = new Session();
    const shown = await session.get(link);
    expect(shown.body).toContain('signs in through your organization’s identity provider');
    expect(shown.body).not.toContain('type="password"');
    expect(/name="csrf" value="([^"]+)"/.exec(shown.body)?.[1]).toBeUndefined();
    // A form crafted by hand, with a valid form token even, changes nothing either: the page shows the same advice.
    for (const intent of ['password', 'signin', 'sso']) {
      const forged = formFor(link);
      const res = await forged.session.post(link, { csrf: forged.csrf, intent, firstName: 'Mallory', password: ATTACKER_PASSWORD, confirm: ATTACKER_PASSWORD });
      expect(res.status, intent).toBe(200);
      expect(res.body, intent).toContain('signs in through your organization’s identity provider');
    }
    expect(await accountOf(ssoUser)).toEqual(before);
    expect((await invitation(acme, 'sso-takeover')).status?.phase).not.toBe('Accepted');
  });

  it('a wrong password many times locks the sign-in, with the same answer; the right one is refused while locked', async () => {
    const email = `locked+${suffix}@example.org`;
    await kubectlOk(['create', '-f', '-'], { input: invitationDoc(platform, 'locked-first', { email, scope: 'Instance', groups: ['ops'] }) });
    expect((await acceptWithPassword(await linkOf(u, platform, 'locked-first'), { password: OWNER_PASSWORD })).status).toBe(200);
    await waitFor('the page to see the User', () => Promise.resolve(u.store.cached.user(userNameFor(email))));
    expect((await tenantAdmin.kubectl(['create', '-f', '-'], invitationDoc(acme, 'locked', { email, tenant: 'acme', groups: ['devs'] }))).code).toBe(0);
    const link = await linkOf(u, acme, 'locked', tenantAdmin);
    const session = new Session();
    let body = (await session.get(link)).body;
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await session.post(link, { csrf: csrfOf(body), intent: 'signin', password: `guess number ${i} of the attacker` });
      expect(res.status).toBe(422);
      answers.push(mainOf(res.body).replace(/value="[^"]+"/g, ''));
      body = res.body;
    }
    const locked = await session.post(link, { csrf: csrfOf(body), intent: 'signin', password: OWNER_PASSWORD });
    expect(locked.status).toBe(422);
    expect(new Set([...answers, mainOf(locked.body).replace(/value="[^"]+"/g, '')]).size).toBe(1);
    expect((await readUser(userNameFor(email)))?.spec.memberships).toHaveLength(1);
  });

  it('the real owner signs in with their own password on that same invitation: the membership is added, nothing else changes', async () => {
    const before = await accountOf(owner);
    const link = await linkOf(u, acme, 'takeover', tenantAdmin);
    const session = new Session();
    const shown = await session.get(link);
    const res = await session.post(link, { csrf: csrfOf(shown.body), intent: 'signin', password: OWNER_PASSWORD });
    expect(res.status).toBe(200);
    expect(res.body).toContain('Welcome aboard, Olivia!');
    const after = await accountOf(owner);
    expect(after.credentials).toEqual(before.credentials);
    expect(after.user?.spec).toEqual({
      ...before.user?.spec,
      memberships: [...(before.user?.spec.memberships ?? []), membershipOf(await invitation(acme, 'takeover'))],
    });
    await waitFor('phase Accepted', async () => ((await invitation(acme, 'takeover')).status?.phase === 'Accepted' ? true : undefined));
  });

  it('createUserDirectly for an existing Password account adds the membership and leaves its credentials alone', async () => {
    const before = await accountOf(owner);
    await kubectlOk(['create', '-f', '-'], {
      input: invitationDoc(platform, 'direct-again', { email: owner, scope: 'Instance', groups: ['auditors'], createUserDirectly: true }),
    });
    await waitFor('UserCreated', async () => ((await invitation(platform, 'direct-again')).status?.phase === 'UserCreated' ? true : undefined));
    const after = await accountOf(owner);
    expect(after.credentials).toEqual(before.credentials);
    expect(after.user?.spec).toMatchObject({
      firstName: 'Olivia',
      lastName: 'Lead',
      authentication: 'Password',
      credentialsSecret: before.user?.spec.credentialsSecret,
    });
    expect(after.user?.spec.memberships).toHaveLength((before.user?.spec.memberships?.length ?? 0) + 1);
  });
});

describe.skipIf(skipRbac)('a namespace editor (Secrets in a tenant namespace, nothing on invitations) tries to mint what the page trusts', () => {
  let u: Running;
  let editor: Actor;
  let jane: UserInvitation;
  let record: InvitationRecord;
  const email = `jane.doe+${suffix}@example.com`;

  beforeAll(async () => {
    u = await startUsher();
    editor = await actor('namespace-editor', acme, [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'create', 'update', 'delete'] }]);
    await kubectlOk(['create', '-f', '-'], { input: invitationDoc(acme, 'jane-doe', { email, tenant: 'acme', groups: ['data-engineers'] }) });
    await linkOf(u, acme, 'jane-doe');
    jane = await invitation(acme, 'jane-doe');
    const [issued] = await recordsOf(jane.metadata.uid ?? '');
    if (!issued) throw new Error('no record was issued for jane-doe');
    record = issued;
  });

  afterAll(async () => {
    await stopUsher(u);
  });

  it('finds no record in the tenant namespace, and cannot read, edit or delete the ones in Usher’s namespace', async () => {
    expect(record.namespace).toBe(USHER_NAMESPACE);
    const listed = JSON.parse((await editor.kubectl(['get', 'secrets', '-n', acme, '-o', 'json'])).stdout) as { items: SecretLike[] };
    expect(listed.items.filter((s) => s.type === 'usher.dev/invitation-record')).toEqual([]);
    for (const verb of [
      ['get', 'secret', record.name],
      ['delete', 'secret', record.name],
      ['get', 'secrets'],
    ]) {
      const result = await editor.kubectl([...verb, '-n', USHER_NAMESPACE]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain('Forbidden');
    }
    const edited = secretFromRecord({ ...record, verifierHash: hashVerifier('mine') });
    const replaced = await editor.kubectl(['replace', '-f', '-'], JSON.stringify(edited));
    expect(replaced.stderr).toContain('Forbidden');
  });

  it('a forged record, or a copy of the real one with its verifier, expiry, issuance or email edited, placed in the tenant namespace: 404, and no User', async () => {
    const attempts: { what: string; record: InvitationRecord; token: string }[] = [];
    const forge = (what: string, edit: Partial<InvitationRecord>): void => {
      const mine = issueToken(randomBytes);
      attempts.push({
        what,
        token: mine.token,
        record: { ...record, name: `forged-${attempts.length}-${suffix}`, namespace: acme, selector: mine.selector, verifierHash: mine.verifierHash, ...edit },
      });
    };
    forge('a wholly forged record for the open invitation', {});
    forge('an edited expiry', { expiresAt: '2099-01-01T00:00:00Z' });
    forge('an edited issuance', { issuance: 7 });
    forge('an edited email', { email: `mallory+${suffix}@example.com` });
    // The real selector with the editor's verifier: the real record still answers for that selector.
    attempts.push({
      what: 'the real selector with another verifier',
      token: `${record.selector}.${issueToken(randomBytes).verifier}`,
      record: { ...record, name: `copied-${suffix}`, namespace: acme, verifierHash: hashVerifier('x') },
    });
    for (const attempt of attempts) {
      const created = await editor.kubectl(['create', '-f', '-'], JSON.stringify(secretFromRecord(attempt.record)));
      expect(created.code, `${attempt.what}: ${created.stderr}`).toBe(0);
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const attempt of attempts) {
      const link = `${u.url}/accept/${attempt.token}`;
      const shown = await new Session().get(link);
      expect(shown.status, attempt.what).toBe(404);
      const { session, csrf } = formFor(link);
      const posted = await session.post(link, { csrf, intent: 'password', firstName: 'Mallory', password: ATTACKER_PASSWORD, confirm: ATTACKER_PASSWORD });
      expect(posted.status, attempt.what).toBe(404);
    }
    expect(await readUser(userNameFor(email))).toBeUndefined();
    expect(await readUser(userNameFor(`mallory+${suffix}@example.com`))).toBeUndefined();
    // A record of the old layout (beside the invitation) is not one Usher reads.
    expect((await recordsOf(jane.metadata.uid ?? '')).map((r) => r.name)).toEqual([record.name]);
  });

  it('a record copied from another namespace’s invitation into this one opens nothing either', async () => {
    await kubectlOk(['create', '-f', '-'], {
      input: invitationDoc(platform, 'other-ns', { email: `other+${suffix}@example.com`, scope: 'Instance', groups: ['ops'] }),
    });
    const otherLink = await linkOf(u, platform, 'other-ns');
    const other = await invitation(platform, 'other-ns');
    const [otherRecord] = await recordsOf(other.metadata.uid ?? '');
    // Rebound to jane-doe in the editor's namespace, verifier kept (the editor would know the link).
    const copy = {
      ...(otherRecord as InvitationRecord),
      name: `rebound-${suffix}`,
      namespace: acme,
      invitationNamespace: acme,
      invitationName: 'jane-doe',
      invitationUid: jane.metadata.uid ?? '',
      email,
    };
    expect((await editor.kubectl(['create', '-f', '-'], JSON.stringify(secretFromRecord(copy)))).code).toBe(0);
    const token = otherLink.slice(otherLink.lastIndexOf('/') + 1);
    const shown = await new Session().get(`${u.url}/accept/${token}`);
    // The link opens the invitation it was issued for (the other namespace's), never jane-doe.
    expect(shown.body).not.toContain(email);
    expect(shown.body).toContain(`other+${suffix}@example.com`);
    expect(await readUser(userNameFor(email))).toBeUndefined();
  });
});

describe.skipIf(skipRbac)('a namespace editor rewrites the link Secret (linkDisclosure: Secret) before the mail goes out', () => {
  let u: Running;
  let smtp: TestSmtp | undefined;
  let editor: Actor;

  afterAll(async () => {
    await stopUsher(u);
    await smtp?.close();
  });

  it('no mail is sent with the rewritten link: a new link, vouched for by its record, is mailed instead', async () => {
    const port = await closedPort();
    u = await startUsher('  security:\n    invitations:\n      linkDisclosure: Secret\n', { mailPort: port, mailBackoffMs: 3000 });
    editor = await actor('link-editor', acme, [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'create', 'update', 'delete'] }]);
    await kubectlOk(['create', '-f', '-'], { input: invitationDoc(acme, 'kim', { email: `kim+${suffix}@example.com`, tenant: 'acme', groups: ['devs'] }) });
    // The first attempt fails (no mail server yet); before the retry, the editor rewrites the link.
    const secretName = 'kim-invitation-link';
    const original = await waitFor('the link Secret', async () => {
      const result = await editor.kubectl(['get', 'secret', secretName, '-n', acme, '-o', 'json']);
      return result.code === 0 ? (JSON.parse(result.stdout) as SecretLike & { data: Record<string, string> }) : undefined;
    });
    // The real token behind another host: a phishing page that would pass the token on.
    const originalLink = Buffer.from(original.data.link ?? '', 'base64').toString('utf8');
    const evil = originalLink.replace(/^http:\/\/[^/]+/, 'https://evil.example');
    expect(evil).not.toBe(originalLink);
    const rewritten = { ...original, data: { link: Buffer.from(evil).toString('base64') } };
    expect((await editor.kubectl(['replace', '-f', '-'], JSON.stringify(rewritten))).code).toBe(0);
    smtp = await startSmtp({ listenPort: port });

    await waitFor('phase Sent', async () => ((await invitation(acme, 'kim')).status?.phase === 'Sent' ? true : undefined), 40_000);
    const bodies = smtp.received.map((m) => `${m.mail.text ?? ''}${typeof m.mail.html === 'string' ? m.mail.html : ''}`);
    expect(bodies.length).toBeGreaterThanOrEqual(1);
    for (const body of bodies) {
      expect(body).not.toContain('evil.example');
      // Nor the token the editor has read: it was replaced.
      expect(body).not.toContain(evil.slice(evil.lastIndexOf('/') + 1));
    }
    const mailed = /http:\/\/127\.0\.0\.1:\d+\/accept\/[0-9a-f]{32}\.[A-Za-z0-9_-]{43}/.exec(bodies.at(-1) ?? '')?.[0] ?? '';
    await waitFor('the mailed link to open', async () => ((await new Session().get(mailed)).status === 200 ? true : undefined), 10_000);
    expect(mailed).not.toBe(originalLink);
  });
});

describe.skipIf(skipRbac)('an anonymous visitor', () => {
  let u: Running;

  beforeAll(async () => {
    u = await startUsher();
  });

  afterAll(async () => {
    await stopUsher(u);
  });

  it('1,000 requests with unknown or malformed tokens cost the API server nothing', async () => {
    await new Promise((r) => setTimeout(r, 300));
    const before = u.proxy.requests.length;
    const urls = Array.from({ length: 1000 }, (_, i) =>
      i % 4 === 0 ? `${u.url}/accept/not-a-token-${i}` : `${u.url}/accept/${issueToken(randomBytes).token}`,
    );
    for (let i = 0; i < urls.length; i += 50) {
      const batch = await Promise.all(
        urls
          .slice(i, i + 50)
          .map((url, j) =>
            j % 2 ? fetch(url, { method: 'POST', body: 'csrf=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }) : fetch(url),
          ),
      );
      for (const res of batch) expect([403, 404]).toContain(res.status);
    }
    expect(u.proxy.requests.slice(before)).toEqual([]);
  });
});

describe.skipIf(skipRbac)('a flood from one client behind the Ingress', () => {
  let u: Running;

  beforeAll(async () => {
    u = await startUsher();
  });

  afterAll(async () => {
    await stopUsher(u);
  });

  it('limits only that client, whatever it writes into X-Forwarded-For itself', async () => {
    const port = await freePort();
    const config = { ...u.config, accept: { ...u.config.accept, trustProxy: 1, rateLimit: { perClientPerMinute: 5, perTokenPerMinute: 1000 } } };
    const store = new KubeAcceptStore({ kubeConfig: u.proxy.kubeConfig, namespace: USHER_NAMESPACE, credentialsNamespace: USHER_NAMESPACE, log: silent });
    const page = createAcceptServer({ kubeConfig: u.proxy.kubeConfig, config, log: silent, store });
    await page.listen(port, '127.0.0.1');
    try {
      // What the Ingress controller sends: the client's own header, with the address it saw appended.
      const viaIngress = (client: string, spoofed?: string): Promise<Response> =>
        fetch(`http://127.0.0.1:${port}/accept/${issueToken(randomBytes).token}`, {
          headers: { 'x-forwarded-for': spoofed ? `${spoofed}, ${client}` : client },
        });
      const flood: number[] = [];
      for (let i = 0; i < 8; i++) flood.push((await viaIngress('203.0.113.7', `198.51.100.${i}`)).status);
      expect(flood.slice(0, 5)).toEqual([404, 404, 404, 404, 404]);
      expect(flood.slice(5)).toEqual([429, 429, 429]);
      expect((await viaIngress('203.0.113.8')).status).toBe(404);
      expect((await viaIngress('203.0.113.9', '203.0.113.8')).status).toBe(404);
    } finally {
      await page.close();
    }
  });
});

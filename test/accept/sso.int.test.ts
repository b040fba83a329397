// "Continue with SSO" end to end: a real OpenID Provider (oidc-provider, the
// certified implementation) on a loopback port, driven through its own login
// and consent pages by headless Chromium; then the callback's refusals
// (another account, an unverified email, a cancelled sign-in, a forged
// state) over plain HTTP. Kept beside the Keycloak tests (keycloak.int.test.ts,
// SSO against the realm Usher provisions) for what Keycloak will not do on
// demand: issue an unverified email, or a string "true" for email_verified,
// and accept any login without an account.
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { Provider, type Configuration } from 'oidc-provider';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UserInvitationSpec } from '../../src/api/types.ts';
import { membershipOf } from '../../src/invitation/decide.ts';
import { freePort } from '../../tools/control-plane/control-plane.ts';
import { kubectlOk, useNamespace } from '../support/cluster.ts';
import {
  acceptWithPassword,
  acceptYaml,
  CHROMIUM_ARGS,
  createInvitation,
  csrfOf,
  readRecord,
  readSecret,
  readUser,
  SCREENSHOTS,
  Session,
  startPage,
  USHER_NAMESPACE,
  type RunningPage,
} from './support.ts';
import { userNameFor } from '../../src/invitation/naming.ts';

const namespace = useNamespace('accept-sso');
const CLIENT_SECRET = 'usher-test-client-secret';
const suffix = Date.now().toString(36);

/** The provider's accounts: the login typed on its page is the account id. */
const ACCOUNTS: Record<string, Record<string, unknown>> = {
  invitee: { email: `Jane.Doe+${suffix}@Example.com`, email_verified: true, given_name: 'Jane', family_name: 'Doe' },
  stranger: { email: `mallory+${suffix}@example.com`, email_verified: true, given_name: 'Mallory' },
  unverified: { email: `jane.doe+${suffix}@example.com`, email_verified: false },
  switcher: { email: `switcher+${suffix}@example.com`, email_verified: 'true', given_name: 'Sam' },
};

let provider: { url: string; server: Server };
let page: RunningPage;
let passwordPage: RunningPage;
let browser: Browser;

async function startProvider(redirectUri: string): Promise<{ url: string; server: Server }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const configuration: Configuration = {
    clients: [
      { client_id: 'usher', client_secret: CLIENT_SECRET, redirect_uris: [redirectUri], grant_types: ['authorization_code'], response_types: ['code'] },
    ],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['given_name', 'family_name'] },
    cookies: { keys: ['test-cookie-key-0123456789abcdef'] },
    ttl: { Interaction: 600, Session: 600, Grant: 600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    findAccount: (_ctx, id) => {
      const claims = ACCOUNTS[id];
      return claims ? { accountId: id, claims: () => ({ sub: id, ...claims }) } : undefined;
    },
  };
  const oidc = new Provider(url, configuration);
  const handle = oidc.callback();
  const server = createServer((req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url, server };
}

function spec(email: string, extra: Partial<UserInvitationSpec> = {}): UserInvitationSpec {
  return { email, tenant: 'acme', groups: ['data-engineers'], roles: [{ name: 'viewer' }], ...extra };
}

beforeAll(async () => {
  await kubectlOk(['label', 'namespace', namespace(), 'usher.dev/tenant=acme']);
  // The page's port must be known before the provider registers its redirect URI, and the provider's before the page's config.
  const pagePort = await freePort();
  provider = await startProvider(`http://127.0.0.1:${pagePort}/accept/oidc/callback`);
  page = await startPage(
    (port) => {
      expect(port).toBeGreaterThan(0);
      return acceptYaml(namespace(), `    oidc:\n      issuer: ${provider.url}\n      clientId: usher\n      clientSecretEnv: OIDC_CLIENT_SECRET\n`);
    },
    { env: { OIDC_CLIENT_SECRET: CLIENT_SECRET }, port: pagePort },
  );
  passwordPage = await startPage(() => acceptYaml(namespace()));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser.close();
  await page.server.close();
  await passwordPage.server.close();
  await new Promise((resolve) => provider.server.close(resolve));
});

/** Signs in on the provider's dev login page as `login`, then consents. */
async function signInAtProvider(tab: Page, login: string): Promise<void> {
  await tab.waitForURL((url) => url.origin === provider.url);
  await tab.locator('input[name="login"]').fill(login);
  await tab.locator('input[name="password"]').fill('any password');
  await tab.getByRole('button', { name: 'Sign-in' }).click();
  await tab.getByRole('button', { name: 'Continue' }).click();
  await tab.waitForURL((url) => url.origin === page.url);
}

describe('in the browser', () => {
  it('the invited person continues with SSO and becomes an External User', async () => {
    const address = ACCOUNTS.invitee?.email as string;
    const inv = await createInvitation(page, namespace(), spec(address));
    for (const [viewport, options] of [
      ['desktop', { viewport: { width: 1280, height: 900 } }],
      ['phone', { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true }],
    ] as const) {
      const context = await browser.newContext(options);
      const tab = await context.newPage();
      const response = await tab.goto(inv.link);
      expect(response?.status()).toBe(200);
      // The SSO form's redirect goes to the provider, and CSP form-action says so.
      expect(response?.headers()['content-security-policy']).toContain(`form-action 'self' ${provider.url}`);
      expect(await tab.locator('input[type="password"]').count()).toBe(0);
      await tab.screenshot({ path: join(SCREENSHOTS, `sso-${viewport}.png`), fullPage: true });
      await context.close();
    }

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const tab = await context.newPage();
    const violations: string[] = [];
    tab.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy/.test(m.text())) violations.push(m.text());
    });
    await tab.goto(inv.link);
    await tab.getByRole('button', { name: 'Continue with SSO' }).click();
    await signInAtProvider(tab, 'invitee');
    expect(await tab.getByRole('heading', { level: 1 }).textContent()).toBe('Welcome aboard, Jane!');
    await tab.screenshot({ path: join(SCREENSHOTS, 'sso-success-desktop.png'), fullPage: true });
    expect(violations).toEqual([]);
    // The state cookie is spent.
    expect((await context.cookies()).map((c) => c.name)).not.toContain('usher-sso');
    await context.close();

    const userName = userNameFor(address);
    const user = await readUser(userName);
    expect(user?.spec).toEqual({
      email: address.toLowerCase(),
      firstName: 'Jane',
      lastName: 'Doe',
      authentication: 'External',
      // The provider vouched for the address (email_verified).
      emailVerified: true,
      memberships: [membershipOf(inv.invitation)],
    });
    expect(await readSecret(USHER_NAMESPACE, `usher-credentials-${userName}`)).toBeUndefined();
    expect((await readRecord(inv.record.name))?.user).toBe(userName);
  });

  it('signing in as someone else is refused with a clear page, and nothing is written', async () => {
    const address = `jane.doe+other${suffix}@example.com`;
    const inv = await createInvitation(page, namespace(), spec(address));
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const tab = await context.newPage();
    await tab.goto(inv.link);
    await tab.getByRole('button', { name: 'Continue with SSO' }).click();
    await signInAtProvider(tab, 'stranger');
    expect(await tab.getByRole('heading', { level: 1 }).textContent()).toBe('This account does not match the invitation');
    const text = (await tab.locator('main').textContent()) ?? '';
    expect(text).toContain(`You signed in as ${ACCOUNTS.stranger?.email as string}, but this invitation is for ${address}.`);
    await tab.screenshot({ path: join(SCREENSHOTS, 'sso-mismatch-desktop.png'), fullPage: true });
    // "Back to the invitation" leads to the form again: the link is still open.
    await tab.getByRole('link', { name: 'Back to the invitation' }).click();
    expect(await tab.getByRole('button', { name: 'Continue with SSO' }).count()).toBe(1);
    await context.close();

    expect(await readUser(userNameFor(address))).toBeUndefined();
    expect(await readUser(userNameFor(ACCOUNTS.stranger?.email as string))).toBeUndefined();
    expect((await readRecord(inv.record.name))?.usedAt).toBeUndefined();
  });

  it('an email the provider has not verified is refused', async () => {
    const address = ACCOUNTS.unverified?.email as string;
    const inv = await createInvitation(page, namespace(), spec(address));
    const context = await browser.newContext();
    const tab = await context.newPage();
    await tab.goto(inv.link);
    await tab.getByRole('button', { name: 'Continue with SSO' }).click();
    await signInAtProvider(tab, 'unverified');
    expect(await tab.locator('main').textContent()).toContain('has not verified the email address');
    await context.close();
    expect((await readRecord(inv.record.name))?.usedAt).toBeUndefined();
  });

  it('a person with a password who accepts another invitation through SSO keeps their account as it was, and gains the membership', async () => {
    const address = ACCOUNTS.switcher?.email as string;
    const first = await createInvitation(passwordPage, namespace(), spec(address));
    expect((await acceptWithPassword(first.link, { firstName: 'Sam', password: 'a password that stays in use' })).status).toBe(200);
    const userName = userNameFor(address);
    const credentials = await readSecret(USHER_NAMESPACE, `usher-credentials-${userName}`);
    expect(credentials).toBeDefined();
    const before = await readUser(userName);

    const second = await createInvitation(page, namespace(), spec(address, { tenant: undefined, scope: 'Instance', groups: ['auditors'] }));
    await expect.poll(() => page.store.cached.user(userName)).toBeDefined();
    const context = await browser.newContext();
    const tab = await context.newPage();
    await tab.goto(second.link);
    // An existing password account: the page offers its password, or SSO.
    expect(await tab.locator('main').textContent()).toContain('You already have an account');
    await tab.getByRole('button', { name: 'Continue with SSO' }).click();
    await signInAtProvider(tab, 'switcher');
    expect(await tab.getByRole('heading', { level: 1 }).textContent()).toBe('Welcome aboard, Sam!');
    await context.close();

    const user = await readUser(userName);
    expect(user?.spec).toEqual({ ...before?.spec, memberships: [membershipOf(first.invitation), membershipOf(second.invitation)] });
    expect((await readSecret(USHER_NAMESPACE, `usher-credentials-${userName}`))?.data).toEqual(credentials?.data);
  });
});

describe('over HTTP', () => {
  async function startFlow(): Promise<{ session: Session; location: URL; link: string; record: string }> {
    const inv = await createInvitation(page, namespace(), spec(`flow+${Math.random().toString(36).slice(2, 8)}@example.com`));
    const session = new Session();
    const form = await session.get(inv.link);
    const started = await session.post(inv.link, { csrf: csrfOf(form.body), intent: 'sso' });
    expect(started.status).toBe(303);
    return { session, location: new URL(started.headers.get('location') ?? ''), link: inv.link, record: inv.record.name };
  }

  it('sends the browser to the provider with PKCE, state and nonce, in a sealed HttpOnly SameSite=Lax cookie', async () => {
    const inv = await createInvitation(page, namespace(), spec(`cookie+${suffix}@example.com`));
    const session = new Session();
    const form = await session.get(inv.link);
    const started = await session.post(inv.link, { csrf: csrfOf(form.body), intent: 'sso' });
    expect(started.status).toBe(303);
    const location = new URL(started.headers.get('location') ?? '');
    expect(location.origin).toBe(provider.url);
    expect(Object.fromEntries(location.searchParams)).toMatchObject({
      client_id: 'usher',
      response_type: 'code',
      redirect_uri: `${page.url}/accept/oidc/callback`,
      code_challenge_method: 'S256',
      scope: 'openid email profile',
    });
    for (const key of ['state', 'nonce', 'code_challenge']) expect(location.searchParams.get(key)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const cookie = started.headers.getSetCookie().find((c) => c.startsWith('usher-sso=')) ?? '';
    expect(cookie).toMatch(/; Max-Age=600; Path=\/; HttpOnly; SameSite=Lax$/);
    const value = cookie.slice('usher-sso='.length, cookie.indexOf(';'));
    expect(Buffer.from(value, 'base64url').toString('latin1')).not.toContain(inv.token);
    expect(value).not.toContain(location.searchParams.get('state') ?? '');
  });

  it('the SSO form needs its CSRF token too, and a password is not taken when SSO is configured', async () => {
    const inv = await createInvitation(page, namespace(), spec(`csrf+${suffix}@example.com`));
    const session = new Session();
    const form = await session.get(inv.link);
    expect((await session.post(inv.link, { intent: 'sso' })).status).toBe(403);
    const password = await session.post(inv.link, {
      csrf: csrfOf(form.body),
      intent: 'password',
      firstName: 'Jane',
      password: 'violet kettle over the harbour',
      confirm: 'violet kettle over the harbour',
    });
    expect(password.status).toBe(422);
    expect(password.body).toContain('This platform uses single sign-on');
    expect((await readRecord(inv.record.name))?.usedAt).toBeUndefined();
  });

  it('a cancelled sign-in, a forged state and a lost cookie each get their page', async () => {
    const cancelled = await startFlow();
    const state = cancelled.location.searchParams.get('state') ?? '';
    const cancel = await cancelled.session.get(`${page.url}/accept/oidc/callback?error=access_denied&state=${state}`);
    expect(cancel.status).toBe(400);
    expect(cancel.body).toContain('Sign-in was cancelled');
    expect(cancel.body).toContain(`href="../${cancelled.link.split('/').pop() ?? ''}"`);

    const forged = await startFlow();
    const bad = await forged.session.get(`${page.url}/accept/oidc/callback?code=made-up&state=not-the-state&iss=${encodeURIComponent(provider.url)}`);
    expect(bad.status).toBe(502);
    expect(bad.body).toContain('Sign-in could not be completed');

    const lost = await new Session().get(`${page.url}/accept/oidc/callback?code=x&state=y`);
    expect(lost.status).toBe(400);
    expect(lost.body).toContain('Your sign-in took too long');
    for (const flow of [cancelled, forged]) expect((await readRecord(flow.record))?.usedAt).toBeUndefined();
  });
});

// After accepting, the person signs in at a real Keycloak (26.7, the Maven
// Central distribution, started once per run by test/support/keycloak.ts):
// the real controller (as the chart's `operator` identity, with a real SMTP
// server) and the acceptance page (as `accept`), driven by Chromium.
//
//   - invite → mail → accept with a password → Keycloak's token endpoint issues
//     an ID token for that address and password, with the invitation's groups
//     and roles; a wrong password is refused;
//   - someone who already has a Keycloak account is asked to sign in to it
//     (SSO against the same realm), and keeps their password;
//   - Keycloak unreachable during an accept: nothing half-made, a clear status,
//     and the account appears once Keycloak answers again;
//   - a group removed from the invitation (and so from the User's membership)
//     leaves its Keycloak group; a deleted User's account is disabled.
import { createServer, Socket, type Server } from 'node:net';
import type KeycloakAdminClient from '@keycloak/keycloak-admin-client';
import { join } from 'node:path';
import { pino } from 'pino';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { User, UserInvitation, UserInvitationSpec } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { UsherConfig } from '../../src/config/types.ts';
import { Controller } from '../../src/controller/controller.ts';
import { createKeycloakProvider } from '../../src/identity/keycloak.ts';
import { createInvitationMailer } from '../../src/mail/invitation-mailer.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { freePort } from '../../tools/control-plane/control-plane.ts';
import { kubectlOk, useNamespace } from '../support/cluster.ts';
import { keycloakAdmin, newRealm, passwordGrant, useKeycloak, type TestKeycloak, type TestRealm } from '../support/keycloak.ts';
import { mailConfig, startSmtp, type TestSmtp } from '../mail/support/smtp.ts';
import { acceptWithPassword, acceptYaml, CHROMIUM_ARGS, csrfOf, SCREENSHOTS, Session, startPage, type RunningPage } from './support.ts';
import { actor, type Actor } from '../support/actors.ts';

const namespace = useNamespace('accept-keycloak');
const tag = Date.now().toString(36);
const PASSWORD = 'violet kettle over the harbour';
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

let keycloak: TestKeycloak;
let realm: TestRealm;
let smtp: TestSmtp;
let page: RunningPage;
let controller: Controller;
let browser: Browser;
/** Between Usher's controller and Keycloak, so a test can make Keycloak unreachable for it alone. */
let cut: Cuttable;
/** The realm as its administrator sees it (master admin), to make and inspect accounts behind Usher's back. */
let admin: RealmAdmin;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  keycloak = await useKeycloak();
  const pagePort = await freePort();
  realm = await newRealm(keycloak, { acceptRedirectUris: [`http://127.0.0.1:${pagePort}/accept/oidc/callback`], directAccessGrants: true });
  cut = await cuttableProxy(new URL(keycloak.url));
  cleanups.push(() => cut.close());
  admin = await realmAdmin(keycloak, realm.realm);
  await kubectlOk(['label', 'namespace', namespace(), 'usher.dev/tenant=acme']);
  smtp = await startSmtp();
  cleanups.push(() => smtp.close());
  const env = { USHER_KC_SECRET: realm.usher.clientSecret, USHER_OIDC_SECRET: realm.accept.clientSecret };
  const identityYaml = (url: string): string =>
    `  identity:\n    provider: keycloak\n    keycloak:\n      url: ${url}\n      realm: ${realm.realm}\n      clientId: ${realm.usher.clientId}\n      clientSecretEnv: USHER_KC_SECRET\n`;
  const oidcYaml = `    oidc:\n      issuer: ${realm.issuer}\n      clientId: ${realm.accept.clientId}\n      clientSecretEnv: USHER_OIDC_SECRET\n`;
  page = await startPage(() => `${acceptYaml(namespace(), oidcYaml)}${identityYaml(keycloak.url)}`, { env, port: pagePort });
  cleanups.push(() => page.server.close());
  // The controller reaches Keycloak through the cuttable proxy; the browser and the page's SSO go direct.
  const config: UsherConfig = {
    ...parseConfig(`usher:\n  baseUrl: ${page.url}\n${acceptYaml(namespace(), oidcYaml)}${identityYaml(cut.url)}`, { env, component: 'controller' }),
    mail: mailConfig(smtp.port),
  };
  const identity = config.identity;
  if (!identity) throw new Error('no identity config');
  controller = new Controller({
    kubeConfig: loadKubeConfig(inject('kubeconfigs').operator),
    config,
    log,
    mailer: createInvitationMailer(mailConfig(smtp.port), log),
    identity: createKeycloakProvider(identity.keycloak, log),
  });
  await controller.start();
  cleanups.push(() => controller.stop());
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  cleanups.push(() => browser.close());
}, 240_000);

afterAll(async () => {
  // Last made, first closed; only what beforeAll got to make.
  for (const close of cleanups.reverse()) await close();
});

function spec(local: string, extra: Partial<UserInvitationSpec> = {}): UserInvitationSpec {
  return {
    email: `${local}+${tag}@example.com`,
    tenant: 'acme',
    groups: ['developers'],
    roles: [{ name: 'developer', namespaces: ['acme.dev'] }],
    ...extra,
  };
}

async function invite(name: string, s: UserInvitationSpec): Promise<void> {
  const doc = { apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', metadata: { name, namespace: namespace() }, spec: s };
  await kubectlOk(['create', '-f', '-'], { input: JSON.stringify(doc) });
}

async function poll<T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  let last: T | undefined;
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    last = await read();
    if (last !== undefined) return last;
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function readInvitation(name: string): Promise<UserInvitation> {
  return JSON.parse(await kubectlOk(['get', 'userinvitation', name, '-n', namespace(), '-o', 'json'])) as UserInvitation;
}

async function readUser(name: string): Promise<User> {
  return JSON.parse(await kubectlOk(['get', 'users.usher.dev', name, '-o', 'json'])) as User;
}

/**
 * The link from the invitation mail sent to `email`, once the page opens it. The page finds links in
 * its own watch-fed caches, which may see the record a moment after the controller has mailed it
 * (on a busy machine, long enough for a browser to get there first and be told the link is unknown).
 */
async function mailedLink(email: string): Promise<string> {
  const mail = await poll('the invitation mail', () => Promise.resolve(smtp.received.find((m) => m.envelope.to.includes(email))));
  const link = /https?:\/\/\S+\/accept\/[A-Za-z0-9_.-]+/.exec(mail.mail.text ?? '')?.[0];
  if (!link) throw new Error(`no link in the mail:\n${mail.mail.text ?? ''}`);
  await poll('the page to know the mailed link', async () => ((await fetch(link)).status === 200 ? true : undefined), 10_000);
  return link;
}

const provisioned = (user: User) => user.status?.conditions?.find((c) => c.type === 'Provisioned');

async function userOf(invitation: string): Promise<string> {
  return poll('the accepted invitation', async () => (await readInvitation(invitation)).status?.user);
}

describe('signing in at Keycloak after acceptance', () => {
  it('invite → mail → accept with a password in Chromium → Keycloak issues an ID token with the groups; a wrong password is refused', async () => {
    const s = spec('jane');
    await invite('jane', s);
    const link = await mailedLink(s.email);

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const tab = await context.newPage();
    await tab.goto(link);
    // A new person picks a password; SSO is offered beside it.
    await expect.poll(() => tab.getByRole('button', { name: 'Continue with SSO' }).count()).toBe(1);
    await tab.locator('#firstName').fill('Jane');
    await tab.locator('#lastName').fill('Doe');
    await tab.locator('#password').fill(PASSWORD);
    await tab.locator('#confirm').fill(PASSWORD);
    await tab.getByRole('button', { name: 'Accept invitation' }).click();
    await tab.waitForLoadState();
    expect(await tab.getByRole('heading', { level: 1 }).textContent()).toBe('Welcome aboard, Jane!');
    const acceptedAt = performance.now();
    await tab.screenshot({ path: join(SCREENSHOTS, 'keycloak-success-desktop.png'), fullPage: true });
    await context.close();

    // The first successful sign-in at Keycloak whose token carries the tenant's groups. (The account is made,
    // then put in its groups, a few milliseconds apart: a token taken in between has fewer groups, never more.)
    const hasGroups = (claims: Record<string, unknown> | undefined): boolean =>
      Array.isArray(claims?.groups) && ['/tenants/acme', '/tenants/acme/developers'].every((g) => (claims.groups as unknown[]).includes(g));
    const token = await poll('a sign-in at Keycloak with the groups', async () => {
      const answer = await passwordGrant(realm.issuer, realm.accept.clientId, realm.accept.clientSecret, s.email, PASSWORD);
      return answer.status === 200 && hasGroups(answer.claims) ? answer : undefined;
    });
    const signInMs = performance.now() - acceptedAt;
    console.log(`accept → first successful sign-in at Keycloak (with the groups): ${Math.round(signInMs)} ms`);
    const { email, email_verified, given_name, family_name, groups, usher_roles, iss, aud } = token.claims ?? {};
    console.log(`ID token claims: ${JSON.stringify({ iss, aud, email, email_verified, given_name, family_name, groups, usher_roles }, null, 2)}`);
    expect(token.claims).toMatchObject({
      email: s.email,
      // A password acceptance proves the link, not the mailbox (whoever reads the invitation's status has the link too).
      email_verified: false,
      given_name: 'Jane',
      family_name: 'Doe',
      groups: expect.arrayContaining(['/tenants/acme', '/tenants/acme/developers']) as unknown,
      usher_roles: ['acme/developer@acme.dev'],
    });
    const wrong = await passwordGrant(realm.issuer, realm.accept.clientId, realm.accept.clientSecret, s.email, 'not the password at all');
    expect(wrong.status).toBeGreaterThanOrEqual(400);
    expect(wrong.idToken).toBeUndefined();

    // And as a person would: Keycloak's own sign-in page, then the realm's account console.
    const signIn = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const accountConsole = await signIn.newPage();
    await accountConsole.goto(`${realm.issuer}/account`);
    await accountConsole.waitForURL((url) => url.pathname.includes('/protocol/openid-connect/auth'));
    await accountConsole.locator('#username').fill(s.email);
    await accountConsole.locator('#password').fill(PASSWORD);
    await accountConsole.locator('#kc-login').click();
    await accountConsole.waitForURL((url) => url.href.startsWith(`${realm.issuer}/account`) && !url.pathname.includes('/protocol/'));
    await expect.poll(() => accountConsole.getByText('Jane', { exact: false }).count(), { timeout: 15_000 }).toBeGreaterThan(0);
    await accountConsole.screenshot({ path: join(SCREENSHOTS, 'keycloak-account-console.png'), fullPage: true });
    await signIn.close();

    const user = await readUser(await userOf('jane'));
    expect(provisioned(user)).toMatchObject({ status: 'True', reason: 'Created' });
    expect(user.status?.identity).toMatchObject({ provider: 'keycloak', username: s.email, managed: true });
    expect(await invitationPhase('jane')).toBe('Accepted');
  });

  it('someone with a Keycloak account already must sign in to it (SSO, same realm) and keeps their password', async () => {
    const s = spec('existing', { groups: ['analysts'], roles: [] });
    const theirPassword = 'their own long-standing passphrase';
    const id = await admin.createUser({ email: s.email, firstName: 'Erin', lastName: 'Existing', password: theirPassword, groups: ['/staff'] });
    await invite('existing', s);
    const link = await mailedLink(s.email);
    // The controller noted the account in the record; the page offers no password form.
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const tab = await context.newPage();
    await expect
      .poll(
        async () => {
          await tab.goto(link);
          return tab.getByText('You already have an account').count();
        },
        { timeout: 15_000 },
      )
      .toBeGreaterThan(0);
    expect(await tab.locator('input[type="password"]').count()).toBe(0);
    await tab.getByRole('button', { name: 'Continue with SSO' }).click();
    await signInAtKeycloak(tab, s.email, theirPassword);
    expect(await tab.getByRole('heading', { level: 1 }).textContent()).toBe('Welcome aboard, Erin!');
    await context.close();

    const name = await userOf('existing');
    const user = await poll('the joined account', async () => {
      const u = await readUser(name);
      return provisioned(u)?.status === 'True' ? u : undefined;
    });
    expect(provisioned(user)?.reason).toBe('Joined');
    expect(user.status?.identity).toMatchObject({ id, managed: false });
    const account = await admin.account(id);
    expect(account.groups.sort()).toEqual(['/staff', '/tenants/acme', '/tenants/acme/analysts']);
    // Their own password still works, and no other was set.
    expect((await passwordGrant(realm.issuer, realm.accept.clientId, realm.accept.clientSecret, s.email, theirPassword)).status).toBe(200);
    expect(account.credentialTypes).toEqual(['password']);
  });

  it('Keycloak unreachable during an accept: nothing half-made, a clear status, and the account once it answers', async () => {
    const s = spec('outage');
    await invite('outage', s);
    const link = await mailedLink(s.email);
    cut.down();
    try {
      const answer = await acceptWithPassword(link, { password: PASSWORD, firstName: 'Otto' });
      expect(answer.status).toBe(200);
      const name = await userOf('outage');
      const user = await poll('ProviderUnavailable', async () => {
        const u = await readUser(name);
        return provisioned(u)?.reason === 'ProviderUnavailable' ? u : undefined;
      });
      expect(provisioned(user)?.message).toMatch(/unreachable|ECONNREFUSED|ECONNRESET|fetch failed|timed out/i);
      expect(user.status?.conditions?.find((c) => c.type === 'Reconciling')?.status).toBe('True');
      expect(await admin.findByEmail(s.email)).toBeUndefined();
    } finally {
      cut.up();
    }
    const name = await userOf('outage');
    await poll(
      'Provisioned after the outage',
      async () => {
        const u = await readUser(name);
        return provisioned(u)?.status === 'True' ? u : undefined;
      },
      60_000,
    );
    expect((await passwordGrant(realm.issuer, realm.accept.clientId, realm.accept.clientSecret, s.email, PASSWORD)).status).toBe(200);
  });

  it('a group removed from the invitation leaves its Keycloak group; a deleted User\u2019s account is disabled', async () => {
    const s = spec('leaver', { groups: ['developers', 'qa'] });
    await invite('leaver', s);
    const answer = await acceptWithPassword(await mailedLink(s.email), { password: PASSWORD });
    expect(answer.status).toBe(200);
    const name = await userOf('leaver');
    const user = await poll('provisioned', async () => {
      const u = await readUser(name);
      return provisioned(u)?.status === 'True' ? u : undefined;
    });
    const id = user.status?.identity?.id ?? '';
    expect((await admin.account(id)).groups.sort()).toEqual(['/tenants/acme', '/tenants/acme/developers', '/tenants/acme/qa']);

    // The change as Git makes it: the invitation loses a group, the User's membership follows, and Keycloak follows the User.
    await kubectlOk(['patch', 'userinvitation', 'leaver', '-n', namespace(), '--type=merge', '-p', JSON.stringify({ spec: { groups: ['developers'] } })]);
    await poll('the group gone', async () => ((await admin.account(id)).groups.includes('/tenants/acme/qa') ? undefined : true));
    expect((await admin.account(id)).groups.sort()).toEqual(['/tenants/acme', '/tenants/acme/developers']);

    await kubectlOk(['delete', 'users.usher.dev', name, '--wait=true', '--timeout=30s']);
    const after = await admin.account(id);
    expect(after).toMatchObject({ enabled: false, groups: [] });
    expect((await passwordGrant(realm.issuer, realm.accept.clientId, realm.accept.clientSecret, s.email, PASSWORD)).status).toBeGreaterThanOrEqual(400);
  });
});

describe('createUserDirectly with Keycloak (SSO or LDAP setups)', () => {
  it('makes the account at once with the groups, no password, and emailVerified false', async () => {
    const s = spec('direct', { createUserDirectly: true, groups: ['sre'] });
    await invite('direct', s);
    const name = await userOf('direct');
    const user = await poll('provisioned', async () => {
      const u = await readUser(name);
      return provisioned(u)?.status === 'True' ? u : undefined;
    });
    const account = await admin.account(user.status?.identity?.id ?? '');
    expect(account).toMatchObject({ enabled: true, credentialTypes: [], emailVerified: false });
    expect(account.groups.sort()).toEqual(['/tenants/acme', '/tenants/acme/sre']);
  });
});

// docs/security.md, "8. Taking over an account at the identity provider": a tenant admin (get/create on
// invitations in their namespace, nothing else) invites the address of someone's Keycloak account and
// accepts the link themselves.
describe('a tenant admin invites the address of someone\u2019s Keycloak account', () => {
  let tenantAdmin: Actor;
  const victimPassword = 'the victim\u2019s own long passphrase';
  // Not containing the name typed on the form (the password policy would refuse it before anything else).
  const attackerPassword = 'an entirely different passphrase here';

  beforeAll(async () => {
    tenantAdmin = await actor('kc-tenant-admin', namespace(), [{ apiGroups: ['usher.dev'], resources: ['userinvitations'], verbs: ['get', 'create'] }]);
  });

  async function inviteAs(name: string, email: string): Promise<string> {
    const doc = {
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'UserInvitation',
      metadata: { name, namespace: namespace() },
      spec: { email, tenant: 'acme', groups: ['admins'] },
    };
    expect((await tenantAdmin.kubectl(['create', '-f', '-'], JSON.stringify(doc))).code).toBe(0);
    return poll('the link in status', async () => {
      const got = await tenantAdmin.kubectl(['get', 'userinvitation', name, '-n', namespace(), '-o', 'jsonpath={.status.link}']);
      return got.code === 0 && got.stdout.startsWith('http') ? got.stdout : undefined;
    });
  }

  it('gets no password form and a posted one is refused; the account and its password are untouched', async () => {
    const email = `victim+${tag}@example.com`;
    const id = await admin.createUser({ email, firstName: 'Vic', lastName: 'Tim', password: victimPassword, groups: [] });
    const link = await inviteAs('takeover', email);
    const session = new Session();
    const shown = await poll('the page to know the account', async () => {
      const got = await session.get(link);
      return got.status === 200 && got.body.includes('You already have an account') ? got : undefined;
    });
    expect(shown.body).not.toContain('autocomplete="new-password"');
    const posted = await session.post(link, {
      csrf: csrfOf(shown.body),
      intent: 'password',
      firstName: 'Mallory',
      password: attackerPassword,
      confirm: attackerPassword,
    });
    expect(posted.status).toBe(422);
    expect(posted.body).toContain('An account for this address already exists: sign in to it to accept.');
    expect(await readInvitation('takeover').then((i) => i.status?.phase)).toBe('Sent');
    expect(await admin.account(id)).toMatchObject({ groups: [], credentialTypes: ['password'] });
    expect((await passwordGrant(realm.issuer, realm.accept.clientId, realm.accept.clientSecret, email, victimPassword)).status).toBe(200);
    expect((await passwordGrant(realm.issuer, realm.accept.clientId, realm.accept.clientSecret, email, attackerPassword)).status).toBeGreaterThanOrEqual(400);
  });

  it('even when the account appears after the controller looked: the User is made, the account is left alone (AccountExists)', async () => {
    const email = `late-victim+${tag}@example.com`;
    const link = await inviteAs('late-takeover', email);
    // The controller looked once the link was mailed (Sent) and found nothing; the account is made right after.
    await poll('Sent', async () => ((await readInvitation('late-takeover')).status?.phase === 'Sent' ? true : undefined));
    const id = await admin.createUser({ email, firstName: 'Lena', lastName: 'Late', password: victimPassword, groups: [] });
    expect((await acceptWithPassword(link, { firstName: 'Mallory', password: attackerPassword })).status).toBe(200);
    const name = await userOf('late-takeover');
    const user = await poll('AccountExists', async () => {
      const u = await readUser(name);
      return provisioned(u)?.reason === 'AccountExists' ? u : undefined;
    });
    expect(provisioned(user)?.message).toContain('Usher did not create it');
    expect(user.status?.conditions?.find((c) => c.type === 'Stalled')?.status).toBe('True');
    expect(await admin.account(id)).toMatchObject({ enabled: true, groups: [], credentialTypes: ['password'] });
    expect((await passwordGrant(realm.issuer, realm.accept.clientId, realm.accept.clientSecret, email, victimPassword)).status).toBe(200);
    expect((await passwordGrant(realm.issuer, realm.accept.clientId, realm.accept.clientSecret, email, attackerPassword)).status).toBeGreaterThanOrEqual(400);
  });
});

async function invitationPhase(name: string): Promise<string | undefined> {
  return poll('a phase', async () => (await readInvitation(name)).status?.phase);
}

/** Keycloak's own login page: username, password, sign in; back on the page afterwards. */
async function signInAtKeycloak(tab: Page, username: string, password: string): Promise<void> {
  await tab.waitForURL((url) => url.href.startsWith(realm.issuer));
  await tab.locator('#username').fill(username);
  await tab.locator('#password').fill(password);
  await tab.locator('#kc-login').click();
  await tab.waitForURL((url) => url.origin === page.url);
}

interface Cuttable {
  url: string;
  /** Refuses new connections and drops the open ones: Keycloak unreachable. */
  down(): void;
  up(): void;
  close(): Promise<void>;
}

/** A TCP forwarder to Keycloak that can be cut. */
async function cuttableProxy(target: URL): Promise<Cuttable> {
  let isDown = false;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (isDown) {
      client.destroy();
      return;
    }
    const upstream = new Socket();
    open.add(client).add(upstream);
    upstream.connect(Number(target.port), target.hostname);
    client.pipe(upstream).pipe(client);
    for (const s of [client, upstream]) {
      s.on('error', () => undefined);
      s.on('close', () => {
        open.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    down: () => {
      isDown = true;
      for (const s of open) s.destroy();
    },
    up: () => {
      isDown = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}

interface RealmAdmin {
  createUser(u: { email: string; firstName: string; lastName: string; password: string; groups: string[] }): Promise<string>;
  account(id: string): Promise<{ enabled: boolean; emailVerified: boolean; groups: string[]; credentialTypes: string[] }>;
  findByEmail(email: string): Promise<string | undefined>;
}

async function realmAdmin(kc: TestKeycloak, realmName: string): Promise<RealmAdmin> {
  const client = await keycloakAdmin(kc, realmName);
  const fresh = (): Promise<KeycloakAdminClient> => Promise.resolve(client);
  return {
    async createUser(u) {
      const c = await fresh();
      for (const path of u.groups) {
        const name = path.replace(/^\//, '');
        if ((await c.groups.find({ search: name, exact: true })).length === 0) await c.groups.create({ name });
      }
      const { id } = await c.users.create({
        username: u.email,
        email: u.email,
        emailVerified: true,
        firstName: u.firstName,
        lastName: u.lastName,
        enabled: true,
        credentials: [{ type: 'password', value: u.password, temporary: false }],
        groups: u.groups,
      });
      return id;
    },
    async account(id) {
      const c = await fresh();
      const user = await c.users.findOne({ id });
      const groups = await c.users.listGroups({ id, briefRepresentation: false });
      const credentials = await c.users.getCredentials({ id });
      return {
        enabled: user?.enabled ?? false,
        emailVerified: user?.emailVerified ?? false,
        groups: groups.map((g) => g.path ?? ''),
        credentialTypes: credentials.map((x) => x.type ?? ''),
      };
    },
    async findByEmail(email) {
      const c = await fresh();
      return (await c.users.find({ email, exact: true }))[0]?.id;
    },
  };
}

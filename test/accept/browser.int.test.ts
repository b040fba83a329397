// The acceptance page in real headless Chromium: a person opens the link,
// fills the form, sees their errors and then the success page, on a desktop
// and on a phone. Screenshots of each state go to test-results/accept/.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../src/invitation/token.ts';
import { kubectlOk, useNamespace } from '../support/cluster.ts';
import { acceptWithPassword, acceptYaml, CHROMIUM_ARGS, createInvitation, readRecord, readUser, SCREENSHOTS, startPage, type RunningPage } from './support.ts';
import { userNameFor } from '../../src/invitation/naming.ts';

const namespace = useNamespace('accept-browser');
let page: RunningPage;
let browser: Browser;
let seq = 0;

const VIEWPORTS = {
  desktop: { viewport: { width: 1280, height: 900 } },
  phone: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
} as const;

type Viewport = keyof typeof VIEWPORTS;

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await kubectlOk(['label', 'namespace', namespace(), 'usher.dev/tenant=acme']);
  page = await startPage(() => acceptYaml(namespace()));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser.close();
  await page.server.close();
});

function invite(): ReturnType<typeof createInvitation> {
  return createInvitation(page, namespace(), {
    email: `jane.doe+${Date.now().toString(36)}${(seq++).toString(36)}@example.com`,
    tenant: 'acme',
    groups: ['data-engineers', 'observability'],
    roles: [{ name: 'developer', namespaces: ['company.team', 'company.data'] }, { name: 'viewer' }],
  });
}

/** A fresh browser context (its own cookies) that fails the test on any CSP violation or page error. */
async function open(viewport: Viewport): Promise<{ context: BrowserContext; tab: Page; problems: string[] }> {
  const context = await browser.newContext({ ...VIEWPORTS[viewport], colorScheme: 'light' });
  const tab = await context.newPage();
  const problems: string[] = [];
  tab.on('console', (message) => {
    if (message.type() === 'error' && !/status of 4\d\d/.test(message.text())) problems.push(message.text());
  });
  tab.on('pageerror', (error) => problems.push(error.message));
  return { context, tab, problems };
}

async function shoot(tab: Page, name: string): Promise<void> {
  await tab.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** The layout fits the viewport: nothing scrolls sideways. */
async function fitsWidth(tab: Page): Promise<boolean> {
  // Expressions as strings: the project's types have no DOM.
  return (await tab.evaluate('document.documentElement.scrollWidth <= window.innerWidth')) === true;
}

describe.each(['desktop', 'phone'] as const)('on a %s', (viewport) => {
  it('a person opens the link, corrects their mistakes and accepts', async () => {
    const inv = await invite();
    const { context, tab, problems } = await open(viewport);
    try {
      const response = await tab.goto(inv.link);
      expect(response?.status()).toBe(200);
      await expect.poll(() => tab.title()).toBe('You’re invited · Platform invitation');
      expect(await tab.getByRole('heading', { level: 1 }).textContent()).toBe('You’re invited');
      // The stylesheet applied (CSP allows it): the card has its rounded corners.
      expect(await tab.evaluate("getComputedStyle(document.querySelector('main.card')).borderTopLeftRadius")).not.toBe('0px');
      expect(await tab.getByLabel('Email').inputValue()).toBe(inv.record.email);
      expect(await fitsWidth(tab)).toBe(true);
      await shoot(tab, `form-${viewport}`);

      // First try: a mismatched confirmation and no first name.
      await tab.getByLabel('Last name (optional)').fill('Doe');
      await tab.getByLabel('Password', { exact: true }).fill('orange lanterns at dusk');
      await tab.getByLabel('Confirm password').fill('orange lanterns at dawn');
      await tab.getByRole('button', { name: 'Accept invitation' }).click();
      await tab.waitForLoadState('load');
      const alert = tab.getByRole('alert');
      expect(await alert.textContent()).toContain('Enter your first name.');
      expect(await alert.textContent()).toContain('The two passwords do not match.');
      // Focus lands on the first field in error, which names its error.
      expect(await tab.evaluate('document.activeElement?.id')).toBe('firstName');
      expect(await tab.getByLabel('First name').getAttribute('aria-describedby')).toBe('firstName-error');
      expect(await tab.getByLabel('Last name (optional)').inputValue()).toBe('Doe');
      expect(await tab.getByLabel('Password', { exact: true }).inputValue()).toBe('');
      expect(await fitsWidth(tab)).toBe(true);
      await shoot(tab, `error-${viewport}`);

      // The error summary links to the field.
      await tab.getByRole('link', { name: 'Enter your first name.' }).click();
      expect(tab.url()).toContain('#firstName');

      await tab.getByLabel('First name').fill('Jane');
      await tab.getByLabel('Password', { exact: true }).fill('orange lanterns at dusk');
      await tab.getByLabel('Confirm password').fill('orange lanterns at dusk');
      await tab.getByRole('button', { name: 'Accept invitation' }).click();
      await tab.waitForLoadState('load');
      expect(await tab.getByRole('heading', { level: 1 }).textContent()).toBe('Welcome aboard, Jane!');
      expect(await tab.getByRole('link', { name: 'Go to sign in' }).getAttribute('href')).toBe('https://console.example.com/login');
      expect(await fitsWidth(tab)).toBe(true);
      await shoot(tab, `success-${viewport}`);
      expect(problems).toEqual([]);

      const user = await readUser(userNameFor(inv.record.email));
      expect(user?.spec).toMatchObject({ firstName: 'Jane', lastName: 'Doe', authentication: 'Password' });
      expect((await readRecord(inv.record.name))?.usedAt).toBeDefined();

      // Back and resubmit: the link is spent.
      const again = await tab.goto(inv.link);
      expect(again?.status()).toBe(409);
      expect(await tab.getByRole('heading', { level: 1 }).textContent()).toBe('This invitation was already accepted');
      await shoot(tab, `accepted-${viewport}`);
    } finally {
      await context.close();
    }
  });

  it('signs in to accept as an existing account: a wrong password is refused, the right one adds the access and changes nothing else', async () => {
    const email = `ops.lead+${viewport}${(seq++).toString(36)}@example.com`;
    const first = await createInvitation(page, namespace(), { email, scope: 'Instance', roles: [{ name: 'admin' }] });
    expect((await acceptWithPassword(first.link, { firstName: 'Olivia', lastName: 'Lead', password: 'violet harbour kettles at noon' })).status).toBe(200);
    const before = await readUser(userNameFor(email));
    await expect.poll(() => page.store.cached.user(userNameFor(email))).toBeDefined();
    const second = await createInvitation(page, namespace(), { email: email.toUpperCase(), tenant: 'acme', groups: ['data-engineers'] });
    const { context, tab, problems } = await open(viewport);
    try {
      expect((await tab.goto(second.link))?.status()).toBe(200);
      expect(await tab.getByRole('heading', { level: 2 }).textContent()).toBe('Sign in to accept');
      expect(await tab.locator('main').textContent()).toContain('You already have an account for');
      expect(await tab.locator('main').textContent()).toContain('Your name, password and sign-in method stay as they are.');
      expect(await tab.getByLabel('First name').count()).toBe(0);
      expect(await tab.getByLabel('Password', { exact: true }).getAttribute('autocomplete')).toBe('current-password');
      expect(await fitsWidth(tab)).toBe(true);
      await shoot(tab, `sign-in-${viewport}`);

      await tab.getByLabel('Password', { exact: true }).fill('not the right passphrase at all');
      await tab.getByRole('button', { name: 'Sign in and accept' }).click();
      await tab.waitForLoadState('load');
      expect(await tab.getByRole('alert').textContent()).toContain('That did not work.');
      expect(await tab.evaluate('document.activeElement?.id')).toBe('password');
      await shoot(tab, `sign-in-error-${viewport}`);

      await tab.getByLabel('Password', { exact: true }).fill('violet harbour kettles at noon');
      await tab.getByRole('button', { name: 'Sign in and accept' }).click();
      await tab.waitForLoadState('load');
      expect(await tab.getByRole('heading', { level: 1 }).textContent()).toBe('Welcome aboard, Olivia!');
      expect(await tab.locator('main').textContent()).not.toContain('the password you just chose');
      await shoot(tab, `sign-in-success-${viewport}`);
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
    const after = await readUser(userNameFor(email));
    expect(after?.spec).toEqual({
      ...before?.spec,
      memberships: [...(before?.spec.memberships ?? []), expect.objectContaining({ tenant: 'acme', groups: ['data-engineers'] })],
    });
  });

  it('an expired and an unknown link say so', async () => {
    const expired = await createInvitation(
      page,
      namespace(),
      { email: `late+${(seq++).toString(36)}@example.com`, tenant: 'acme', groups: ['g'] },
      { expiresAt: '2024-03-01T09:30:00Z' },
    );
    const { context, tab, problems } = await open(viewport);
    try {
      expect((await tab.goto(expired.link))?.status()).toBe(410);
      expect(await tab.getByRole('heading', { level: 1 }).textContent()).toBe('This invitation has expired');
      expect(await tab.locator('main').textContent()).toContain('1 March 2024 at 09:30 UTC');
      await shoot(tab, `expired-${viewport}`);

      expect((await tab.goto(`${page.url}/accept/${issueToken(randomBytes).token}`))?.status()).toBe(404);
      expect(await tab.getByRole('heading', { level: 1 }).textContent()).toBe('This invitation link is not valid');
      expect(await fitsWidth(tab)).toBe(true);
      await shoot(tab, `not-found-${viewport}`);
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });
});

it('looks right in dark mode too', async () => {
  const inv = await invite();
  const context = await browser.newContext({ ...VIEWPORTS.desktop, colorScheme: 'dark' });
  try {
    const tab = await context.newPage();
    await tab.goto(inv.link);
    const background = await tab.evaluate("getComputedStyle(document.querySelector('main.card')).backgroundColor");
    expect(background).toBe('rgb(24, 27, 36)');
    await shoot(tab, 'form-dark');
  } finally {
    await context.close();
  }
});

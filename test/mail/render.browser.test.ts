// Renders the invitation HTML in headless Chromium: the button and the link must be
// visible, nothing may be fetched from the network, and the layout must hold on a phone.
// Screenshots go to test-results/mail/ for a human to look at.

import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { renderInvitationMail, type InvitationMailInput } from '../../src/mail/message.ts';
import { CHROMIUM_ARGS } from '../support/chromium.ts';

const OUT = fileURLToPath(new URL('../../test-results/mail/', import.meta.url));
const LINK = 'https://usher.example.com/accept/inv_7Hk2pQ9xLmN4vR8sT1wZ?tenant=acme&issuance=1';
const NOW = new Date(Date.UTC(2025, 2, 7, 9, 30));

const invitation: InvitationMailInput = {
  email: 'jane.doe@example.com',
  scope: 'Tenant',
  tenant: 'acme',
  groups: ['data-engineers', 'on-call', 'reviewers'],
  roles: [{ name: 'developer', namespaces: ['company.team', 'company.data'] }, { name: 'viewer' }],
  link: LINK,
  expiresAt: new Date(NOW.getTime() + 7 * 86_400_000),
  now: NOW,
  platformName: 'Acme Cloud',
};
const mail = renderInvitationMail(invitation);

let browser: Browser;
beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
}, 30_000);
afterAll(async () => {
  await browser.close();
});

/** Opens the mail like a client would show it; returns the page and every URL it tried to fetch. */
async function open(width: number, html = mail.html): Promise<{ page: Page; fetched: string[] }> {
  const page = await browser.newPage({ viewport: { width, height: 800 }, deviceScaleFactor: 1 });
  const fetched: string[] = [];
  page.on('request', (request) => {
    fetched.push(request.url());
  });
  await page.setContent(html, { waitUntil: 'load' });
  return { page, fetched };
}

test('desktop: the button and the link are visible and point at the invitation', async () => {
  const { page, fetched } = await open(800);
  try {
    const button = page.getByRole('link', { name: 'Accept invitation' });
    expect(await button.isVisible()).toBe(true);
    expect(await button.getAttribute('href')).toBe(LINK);
    const box = await button.boundingBox();
    // A real button, not a text link: wide and tall enough to tap.
    expect(box?.width).toBeGreaterThan(140);
    expect(box?.height).toBeGreaterThanOrEqual(44);
    // White on the brand colour, not the browser's default blue underlined link.
    // Page-side code as strings: the project compiles without the DOM library.
    // Page-side code as a string: the project compiles without the DOM library.
    const style = await page.evaluate<{ color: string; decoration: string; background: string }>(`(() => {
      const a = [...document.querySelectorAll('a')].find((el) => el.textContent.trim() === 'Accept invitation');
      const s = getComputedStyle(a);
      return { color: s.color, decoration: s.textDecorationLine, background: getComputedStyle(a.parentElement).backgroundColor };
    })()`);
    expect(style).toEqual({ color: 'rgb(255, 255, 255)', decoration: 'none', background: 'rgb(79, 70, 229)' });

    const textLink = page.getByRole('link', { name: LINK });
    expect(await textLink.isVisible()).toBe(true);
    expect(await textLink.getAttribute('href')).toBe(LINK);

    for (const text of ["You're invited to join acme", 'in 7 days', 'Friday, 14 March 2025 at 09:30 UTC', 'data-engineers', 'company.team, company.data']) {
      // (The hidden preheader repeats some of it; a visible copy must exist too.)
      expect(await page.getByText(text).filter({ visible: true }).count(), text).toBeGreaterThan(0);
    }
    // The card keeps to the usual email width.
    const card = await page.locator('h1').locator('xpath=ancestor::table[1]').boundingBox();
    expect(card?.width).toBeGreaterThan(400);
    expect(card?.width).toBeLessThanOrEqual(560);
    await page.screenshot({ path: `${OUT}invitation.png`, fullPage: true });
    // Email clients block remote content: the mail must not depend on any.
    expect(fetched).toEqual([]);
  } finally {
    await page.close();
  }
}, 20_000);

test('phone: nothing overflows sideways, the long link wraps', async () => {
  const { page } = await open(360);
  try {
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    const button = page.getByRole('link', { name: 'Accept invitation' });
    expect(await button.isVisible()).toBe(true);
    const textLink = await page.getByRole('link', { name: LINK }).boundingBox();
    expect(textLink?.width).toBeLessThanOrEqual(360);
    await page.screenshot({ path: `${OUT}invitation-phone.png`, fullPage: true });
  } finally {
    await page.close();
  }
}, 20_000);

test('instance scope without groups: the whole-instance wording, no empty access box', async () => {
  const instance = renderInvitationMail({ ...invitation, scope: 'Instance', tenant: undefined, groups: [], roles: [{ name: 'platform-admin' }] });
  const { page } = await open(800, instance.html);
  try {
    expect(await page.getByText('with access to the whole instance').isVisible()).toBe(true);
    expect(await page.getByText("You're invited to join Acme Cloud").filter({ visible: true }).count()).toBe(1);
    expect(await page.getByText('platform-admin').isVisible()).toBe(true);
    expect(await page.getByText('Groups', { exact: true }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Accept invitation' }).isVisible()).toBe(true);
    await page.screenshot({ path: `${OUT}invitation-instance.png`, fullPage: true });
  } finally {
    await page.close();
  }
}, 20_000);

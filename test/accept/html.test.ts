import { describe, expect, it } from 'vitest';
import { escapeHtml, html, raw } from '../../src/accept/html.ts';
import { invitationPage, layout, successPage, type InvitationView } from '../../src/accept/pages.ts';

const hostile = '<script>alert(1)</script>';

describe('escaping', () => {
  it('escapes the five characters that matter in content and quoted attributes', () => {
    expect(escapeHtml(`<a href="x" onclick='y'>&amp;</a>`)).toBe('&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
  });

  it('escapes every interpolated value, in text and in attributes', () => {
    const attr = '" autofocus onfocus="alert(1)';
    expect(html`<p title="${attr}">${hostile}</p>`.value).toBe('<p title="&quot; autofocus onfocus=&quot;alert(1)">&lt;script&gt;alert(1)&lt;/script&gt;</p>');
  });

  it('keeps markup built by html or raw, escapes arrays item by item, and drops false, null and undefined', () => {
    const items = ['<b>', 'ok'];
    expect(html`<ul>${items.map((i) => html`<li>${i}</li>`)}</ul>`.value).toBe('<ul><li>&lt;b&gt;</li><li>ok</li></ul>');
    expect(html`${raw('<br>')}${false}${null}${undefined}${0}`.value).toBe('<br>0');
    expect(html`${['<i>', html`<i>`]}`.value).toBe('&lt;i&gt;<i>');
  });
});

describe('the pages escape what they show', () => {
  // The CRDs refuse these characters in tenants and groups; the page does not rely on that.
  const view: InvitationView = {
    email: "o'brien&co@example.com",
    scope: 'Tenant',
    tenant: hostile,
    groups: [hostile, 'ok-group'],
    roles: [{ name: hostile, namespaces: [`${hostile}.ns`] }],
    expiresAt: '2030-01-02T03:04:05Z',
  };

  it('renders the invitation with hostile tenant, group, role and name escaped', () => {
    const page = layout(
      { assets: 'assets' },
      invitationPage(
        view,
        { csrf: 'token"', values: { firstName: hostile, lastName: '"><img src=x>' }, errors: { password: 'bad' } },
        { account: 'new', sso: false, passwords: true },
      ),
    );
    expect(page).not.toContain('<script>');
    expect(page).not.toContain('<img');
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).toContain('o&#39;brien&amp;co@example.com');
    expect(page).toContain('value="&lt;script&gt;alert(1)&lt;/script&gt;"');
    expect(page).toContain('value="&quot;&gt;&lt;img src=x&gt;"');
    expect(page).toContain('name="csrf" value="token&quot;"');
  });

  it('renders the success page with a hostile name escaped', () => {
    const page = layout({ assets: 'assets' }, successPage(view, hostile, 'https://console.example.com/?a=1&b=2'));
    expect(page).toContain('Welcome aboard, &lt;script&gt;alert(1)&lt;/script&gt;!');
    expect(page).toContain('href="https://console.example.com/?a=1&amp;b=2"');
    expect(page).not.toContain('<script>');
  });
});

describe('the form’s accessibility', () => {
  const view: InvitationView = { email: 'jane@example.com', scope: 'Instance', groups: [], roles: [{ name: 'admin' }], expiresAt: '2030-01-02T03:04:05Z' };

  it('labels each field, sets autocomplete, and links errors with aria-describedby', () => {
    const { status, body } = invitationPage(view, { csrf: 'c', errors: { password: 'Too short.' } }, { account: 'new', sso: false, passwords: true });
    const page = body.value;
    expect(status).toBe(422);
    for (const [id, autocomplete] of [
      ['firstName', 'given-name'],
      ['lastName', 'family-name'],
      ['password', 'new-password'],
      ['confirm', 'new-password'],
      ['username', 'username'],
    ]) {
      expect(page).toContain(`<label for="${id}">`);
      expect(page).toMatch(new RegExp(`<input id="${id}"[^>]*autocomplete="${autocomplete}"`));
    }
    expect(page).toMatch(/<input id="password"[^>]*aria-describedby="password-hint password-error"[^>]*aria-invalid="true"[^>]*autofocus/);
    expect(page).toContain('<p class="error" id="password-error">');
    expect(page).toContain('<a href="#password">Too short.</a>');
    expect(page).toContain('The whole platform');
    expect(page).toContain('in every namespace');
    expect(page).toContain('2 January 2030 at 03:04 UTC');
  });

  it('offers only the SSO button when SSO is configured', () => {
    const page = invitationPage(view, { csrf: 'c' }, { account: 'new', sso: true, passwords: false }).body.value;
    expect(page).toContain('Continue with SSO');
    expect(page).not.toContain('type="password"');
  });
});

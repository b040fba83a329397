import { cpSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, test } from 'vitest';
import { BUILTIN_TEMPLATES_DIR, loadTemplates, renderInvitationMail, type InvitationMailInput } from '../../src/mail/message.ts';
import { escapeHtml } from '../../src/mail/text.ts';
import { expiresInWords, utcDate } from '../../src/mail/when.ts';

const NOW = new Date(Date.UTC(2025, 2, 7, 9, 29, 50));
const DAY = 86_400_000;

function invitation(overrides: Partial<InvitationMailInput> = {}): InvitationMailInput {
  return {
    email: 'jane.doe@example.com',
    scope: 'Tenant',
    tenant: 'acme',
    groups: ['data-engineers', 'on-call'],
    roles: [{ name: 'developer', namespaces: ['company.team', 'company.data'] }, { name: 'viewer' }],
    link: 'https://usher.example.com/accept/AbC123?t=1&u=2',
    expiresAt: new Date(NOW.getTime() + 7 * DAY),
    now: NOW,
    ...overrides,
  };
}

const HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', 'acme\r\nBcc: evil@example.com', "' onmouseover='x", '&lt;b&gt;'];

/** Tags and quotes in the output: if values were escaped, they are the template's only. */
const markup = (html: string): { tags: string[]; quotes: number } => ({
  tags: [...html.matchAll(/<\/?([a-zA-Z0-9!]+)/g)].map((m) => m[1] ?? ''),
  quotes: html.split('"').length,
});

describe('renderInvitationMail', () => {
  test('a tenant invitation: subject, who is invited to what, the link and the expiry', () => {
    const mail = renderInvitationMail(invitation());
    expect(mail.subject).toBe("You're invited to join acme");
    for (const part of [mail.html, mail.text]) {
      expect(part).toContain('acme');
      expect(part).toContain('jane.doe@example.com');
      expect(part).toContain('data-engineers');
      expect(part).toContain('on-call');
      expect(part).toContain('developer');
      expect(part).toContain('company.team, company.data');
      expect(part).toContain('all namespaces');
      expect(part).toContain('in 7 days');
      expect(part).toContain('Friday, 14 March 2025 at 09:29 UTC');
    }
    // The link as the button's href and as visible text, HTML-escaped (& → &amp;) in both.
    const escaped = 'https://usher.example.com/accept/AbC123?t=1&amp;u=2';
    expect(mail.html).toMatch(new RegExp(`<a href="${escaped.replace(/[?.]/g, '\\$&')}"[^>]*>Accept invitation</a>`));
    expect(mail.html).toContain(`>${escaped}</a>`);
    expect(mail.text).toContain('https://usher.example.com/accept/AbC123?t=1&u=2');
    expect(mail.text).toContain('the acme tenant');
    expect(mail.text).not.toMatch(/[<>]/);
  });

  test('an instance invitation joins "the platform", or the platform by name', () => {
    const instance = invitation({ scope: 'Instance', tenant: undefined, groups: [], roles: [{ name: 'platform-admin' }] });
    const mail = renderInvitationMail(instance);
    expect(mail.subject).toBe("You're invited to join the platform");
    expect(mail.text).toContain('with access to the whole instance');
    expect(mail.html).toContain('with access to the whole instance');
    expect(mail.html).not.toContain('Groups</div>');
    expect(renderInvitationMail({ ...instance, platformName: 'Acme Cloud' }).subject).toBe("You're invited to join Acme Cloud");
    expect(renderInvitationMail(invitation({ platformName: 'Acme Cloud' })).subject).toBe("You're invited to join acme on Acme Cloud");
  });

  test('no groups and no roles: the access box and its headings are left out', () => {
    const mail = renderInvitationMail(invitation({ groups: [], roles: [] }));
    expect(mail.html).not.toContain('Roles</div>');
    expect(mail.text).not.toContain('What you get');
  });

  test('hostile tenant, group, role and namespace names are escaped everywhere in the HTML', () => {
    const benign = renderInvitationMail(invitation({ tenant: 't', groups: ['g1', 'g2'], roles: [{ name: 'r', namespaces: ['n'] }], platformName: 'p' }));
    for (const evil of HOSTILE) {
      const mail = renderInvitationMail(invitation({ tenant: evil, groups: [evil, 'g2'], roles: [{ name: evil, namespaces: [evil] }], platformName: evil }));
      expect(mail.html).not.toContain('<script');
      expect(mail.html).not.toContain('<img');
      expect(mail.html).not.toContain("' onmouseover");
      expect(markup(mail.html)).toEqual(markup(benign.html));
    }
    const mail = renderInvitationMail(invitation({ tenant: '<script>alert(1)</script>' }));
    expect(mail.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  test('the subject is one line: CR/LF and other controls from a tenant name cannot add a header', () => {
    const mail = renderInvitationMail(invitation({ tenant: 'acme\r\nBcc: evil@example.com' }));
    expect(mail.subject).toBe("You're invited to join acme Bcc: evil@example.com");
    for (const tenant of ['a\rb', 'a\nb', 'a\u0000b', 'a\u001bb', 'a\u0085b', 'a\u2028b', 'a\u202eb', 'a\tb']) {
      const { subject } = renderInvitationMail(invitation({ tenant }));
      expect(subject).toBe("You're invited to join a b");
    }
  });

  test('the plain-text part gives a hostile name no line of its own', () => {
    const { text } = renderInvitationMail(invitation({ tenant: 'acme\r\nBcc: evil@example.com', groups: ['x\n\nhttps://evil.example/'] }));
    expect(text.split('\n').some((line) => line.startsWith('Bcc:') || line.startsWith('https://evil'))).toBe(false);
    expect(text).not.toContain('\r');
  });

  test('property: whatever the names, HTML markup is the template’s and the subject has no control characters', () => {
    const benign = renderInvitationMail(invitation({ tenant: 't', groups: ['g'], roles: [{ name: 'r', namespaces: ['n'] }], platformName: 'p' }));
    const name = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 });
    fc.assert(
      fc.property(name, name, name, name, (tenant, group, role, ns) => {
        const mail = renderInvitationMail(invitation({ tenant, groups: [group], roles: [{ name: role, namespaces: [ns] }], platformName: tenant }));
        expect(markup(mail.html)).toEqual(markup(benign.html));
        expect(mail.subject).not.toMatch(/[\p{Cc}\u2028\u2029]/u);
      }),
      { numRuns: 300 },
    );
  });

  test('refuses a link that is not http(s), since it lands in an href', () => {
    for (const link of ['javascript:alert(1)', 'data:text/html,x', 'https://ok.example/ space', '']) {
      expect(() => renderInvitationMail(invitation({ link }))).toThrow('http(s) URL');
    }
  });

  test('refuses an already expired invitation and a Tenant scope without a tenant', () => {
    expect(() => renderInvitationMail(invitation({ expiresAt: NOW }))).toThrow('already expired');
    expect(() => renderInvitationMail(invitation({ tenant: undefined }))).toThrow('needs a tenant');
  });
});

describe('expiry wording', () => {
  const at = (ms: number): string => expiresInWords(new Date(NOW.getTime() + ms), NOW);
  test.each([
    [7 * DAY, 'in 7 days'],
    [7 * DAY - 10_000, 'in 7 days'],
    [90 * DAY, 'in 90 days'],
    [DAY, 'in 1 day'],
    [36 * 3_600_000, 'in 36 hours'],
    [2.5 * DAY, 'in 2 days'],
    [3_600_000, 'in 1 hour'],
    [12 * 3_600_000, 'in 12 hours'],
    [20 * 60_000, 'in 20 minutes'],
    [5_000, 'in 1 minute'],
  ])('%d ms → %s', (ms, words) => {
    expect(at(ms)).toBe(words);
  });

  test('the date is spelled out in UTC, independent of the machine’s time zone', () => {
    expect(utcDate(new Date('2025-03-14T09:05:00Z'))).toBe('Friday, 14 March 2025 at 09:05 UTC');
    expect(utcDate(new Date('2030-12-31T23:59:59+01:00'))).toBe('Tuesday, 31 December 2030 at 22:59 UTC');
  });
});

describe('loadTemplates', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  /** A copy of the built-in templates, with one file replaced. */
  function folder(file?: string, content?: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'usher-templates-'));
    dirs.push(dir);
    cpSync(BUILTIN_TEMPLATES_DIR, dir, { recursive: true });
    if (file !== undefined && content !== undefined) writeFileSync(join(dir, file), content);
    return dir;
  }

  test('the built-in templates load and are what renderInvitationMail uses by default', () => {
    const templates = loadTemplates();
    expect(renderInvitationMail(invitation(), templates)).toEqual(renderInvitationMail(invitation()));
    expect(templates.html.source).toBe(join(BUILTIN_TEMPLATES_DIR, 'invitation.html'));
  });

  test('an operator’s folder replaces them', () => {
    const dir = folder('invitation.subject.txt', '[{{platform}}] Join {{target}}\n');
    const mail = renderInvitationMail(invitation({ platformName: 'Acme Cloud' }), loadTemplates(dir));
    expect(mail.subject).toBe('[Acme Cloud] Join acme');
  });

  test('a missing file is named, with the files a folder needs', () => {
    const dir = folder();
    unlinkSync(join(dir, 'invitation.txt'));
    expect(() => loadTemplates(dir)).toThrow(
      `mail template ${join(dir, 'invitation.txt')} cannot be read (a templates folder needs invitation.subject.txt, invitation.html, invitation.txt)`,
    );
  });

  test.each([
    ['invitation.html', '<a href="{{link}}">go</a>\n{{#each roles}}\n{{name}}\n', 'invitation.html:4: unclosed {{#each roles}} from line 2'],
    ['invitation.txt', '{{link}}\nHello {{tennant}}\n', 'invitation.txt:2: unknown placeholder {{tennant}}'],
    ['invitation.txt', '{{link}}{{#if tenant}}{{tenant}}{{else}}{{platfrom}}{{/if}}', 'invitation.txt:1: unknown placeholder {{platfrom}}'],
    ['invitation.html', '<a href="{{link}}">{{roles}}</a>', 'invitation.html:1: {{roles}} is a list, use {{#each}}'],
    ['invitation.html', '<p>Welcome to {{target}}</p>', 'never links to {{link}}'],
    ['invitation.txt', 'Welcome to {{target}}', 'invitation.txt never shows {{link}}'],
    ['invitation.subject.txt', '{{#if tenant}}{{/if}}\n', 'invitation.subject.txt renders an empty subject'],
  ])('a broken %s is reported at load: %s', (file, content, message) => {
    const dir = folder(file, content);
    expect(() => loadTemplates(dir)).toThrow(message);
  });
});

describe('escapeHtml', () => {
  test('escapes the five characters that matter in content and quoted attributes, and drops controls', () => {
    expect(escapeHtml(`<a href="x" title='y'>&amp;</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
    expect(escapeHtml('a\r\nb\u0000c')).toBe('a  b c');
  });
});

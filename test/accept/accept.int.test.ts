// The acceptance page over HTTP against the real API server: the happy path
// and what it writes, every closed case and its status, CSRF, the password
// policy, escaping, concurrent accepts, and what reaches the logs.
import { randomBytes } from 'node:crypto';
import { verify } from '@node-rs/argon2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UserInvitationSpec } from '../../src/api/types.ts';
import { decide, membershipOf } from '../../src/invitation/decide.ts';
import { issueToken } from '../../src/invitation/token.ts';
import { kubectl, kubectlOk, useNamespace } from '../support/cluster.ts';
import {
  acceptWithPassword,
  acceptYaml,
  createInvitation,
  csrfOf,
  mainOf,
  readRecord,
  readSecret,
  readUser,
  rewriteRecord,
  Session,
  startPage,
  USHER_NAMESPACE,
  type RunningPage,
} from './support.ts';
import { userNameFor } from '../../src/invitation/naming.ts';

const namespace = useNamespace('accept');
const PASSWORD = 'violet kettle over the harbour';
let page: RunningPage;
let seq = 0;

/** A fresh address per test, so that each one gets its own User. */
function email(local = 'jane.doe'): string {
  return `${local}+${Date.now().toString(36)}${(seq++).toString(36)}@example.com`;
}

function tenantSpec(address: string, extra: Partial<UserInvitationSpec> = {}): UserInvitationSpec {
  return { email: address, tenant: 'acme', groups: ['data-engineers'], roles: [{ name: 'developer', namespaces: ['company.team', 'company.data'] }], ...extra };
}

beforeAll(async () => {
  await kubectlOk(['label', 'namespace', namespace(), 'usher.dev/tenant=acme']);
  page = await startPage(() => acceptYaml(namespace()));
});

afterAll(async () => {
  await page.server.close();
});

describe('the happy path', () => {
  it('shows the invitation, then creates the User, the credentials Secret and marks the record used', async () => {
    const address = email();
    const inv = await createInvitation(page, namespace(), tenantSpec(address));
    const session = new Session();

    const shown = await session.get(inv.link);
    expect(shown.status).toBe(200);
    expect(shown.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(shown.body).toContain(address);
    expect(shown.body).toContain('the tenant <strong>acme</strong>');
    expect(shown.body).toContain('<li>data-engineers</li>');
    expect(shown.body).toContain('<span class="role">developer</span> <span class="where">in <code>company.team</code> and <code>company.data</code></span>');
    expect(shown.body).toContain(`<time datetime="${inv.record.expiresAt}">`);
    expect(shown.body).toContain('autocomplete="new-password"');
    expect([...session.cookies.keys()]).toEqual(['usher-csrf']);

    const accepted = await session.post(inv.link, {
      csrf: csrfOf(shown.body),
      intent: 'password',
      firstName: 'Jane',
      lastName: 'Doe',
      password: PASSWORD,
      confirm: PASSWORD,
    });
    expect(accepted.status).toBe(200);
    expect(accepted.body).toContain('Welcome aboard, Jane!');
    expect(accepted.body).toContain('href="https://console.example.com/login"');

    const userName = userNameFor(address);
    const user = await readUser(userName);
    expect(user?.spec).toEqual({
      email: address,
      firstName: 'Jane',
      lastName: 'Doe',
      authentication: 'Password',
      credentialsSecret: { namespace: USHER_NAMESPACE, name: `usher-credentials-${userName}` },
      // This link was not mailed by Usher (no mail server): it proves nothing about the mailbox.
      emailVerified: false,
      memberships: [membershipOf(inv.invitation)],
    });
    expect(user?.spec.memberships?.[0]).toEqual({
      scope: 'Tenant',
      tenant: 'acme',
      groups: ['data-engineers'],
      roles: [{ name: 'developer', namespaces: ['company.team', 'company.data'] }],
      invitation: { namespace: namespace(), name: inv.invitation.metadata.name, uid: inv.invitation.metadata.uid },
    });

    const secret = await readSecret(USHER_NAMESPACE, `usher-credentials-${userName}`);
    expect(secret?.type).toBe('usher.dev/credentials');
    expect(Object.keys(secret?.data ?? {})).toEqual(['password-hash']);
    const hash = Buffer.from(secret?.data['password-hash'] ?? '', 'base64').toString('utf8');
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(JSON.stringify(secret)).not.toContain(PASSWORD);
    expect(JSON.stringify(secret)).not.toContain(Buffer.from(PASSWORD).toString('base64'));
    expect(await verify(hash, PASSWORD)).toBe(true);
    expect(secret?.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'User', name: userName, uid: user?.metadata.uid })]);
    expect(secret?.metadata.annotations?.['usher.dev/password-normalization']).toBe('NFKC');

    const record = await readRecord(inv.record.name);
    expect(record?.usedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(record?.user).toBe(userName);
    expect(record).not.toHaveProperty('acceptanceClaim');
    // What the controller makes of it: phase Accepted, with the time and the User.
    const plan = decide({
      invitation: inv.invitation,
      records: record ? [record] : [],
      link: inv.link,
      namespaceTenant: 'acme',
      user,
      config: page.config,
      now: new Date(),
    });
    expect(plan.status).toMatchObject({ phase: 'Accepted', acceptedAt: record?.usedAt, user: userName });

    // The link is spent: the same browser, or any other, now hears so.
    const again = await new Session().get(inv.link);
    expect(again.status).toBe(409);
    expect(again.body).toContain('This invitation was already accepted');
  });

  it('adds a membership to an existing User who signs in with their password, and changes nothing else of the account', async () => {
    const address = email('ops');
    const first = await createInvitation(page, namespace(), tenantSpec(address));
    expect((await acceptWithPassword(first.link, { password: PASSWORD })).status).toBe(200);
    const userName = userNameFor(address);
    const credentialsBefore = await readSecret(USHER_NAMESPACE, `usher-credentials-${userName}`);
    const second = await createInvitation(page, namespace(), { email: address.toUpperCase(), scope: 'Instance', roles: [{ name: 'admin' }] });
    await expect.poll(() => page.store.cached.user(userName)).toBeDefined();
    const session = new Session();
    const shown = await session.get(second.link);
    expect(shown.body).toContain('the <strong>whole platform</strong>');
    expect(shown.body).toContain('in every namespace');
    expect(shown.body).toContain('You already have an account');
    expect(shown.body).toContain('autocomplete="current-password"');
    expect(shown.body).not.toContain('autocomplete="new-password"');
    const signedIn = await session.post(second.link, { csrf: csrfOf(shown.body), intent: 'signin', password: PASSWORD });
    expect(signedIn.status).toBe(200);
    expect(signedIn.body).toContain('Welcome aboard');

    const user = await readUser(userName);
    expect(user?.spec.memberships).toEqual([membershipOf(first.invitation), membershipOf(second.invitation)]);
    expect(user?.spec).toMatchObject({ email: address, firstName: 'Jane', lastName: 'Doe', authentication: 'Password' });
    expect(user?.metadata.annotations ?? {}).toEqual({});
    const credentialsAfter = await readSecret(USHER_NAMESPACE, `usher-credentials-${userName}`);
    expect(credentialsAfter?.data).toEqual(credentialsBefore?.data);
  });
});

describe('closed links', () => {
  it('an expired link: 410, telling to ask for a reissue, on GET and POST', async () => {
    const inv = await createInvitation(page, namespace(), tenantSpec(email()), { expiresAt: new Date(Date.now() - 60_000).toISOString() });
    const session = new Session();
    const shown = await session.get(inv.link);
    expect(shown.status).toBe(410);
    expect(shown.body).toContain('This invitation has expired');
    expect(shown.body).toContain('Ask your administrator to reissue it');
    expect(shown.body).not.toContain('name="csrf"');
    // Even with a valid CSRF token from before it expired.
    const open = await createInvitation(page, namespace(), tenantSpec(email()));
    const form = await session.get(open.link);
    await rewriteRecord(page, { ...open.record, expiresAt: new Date(Date.now() - 1000).toISOString() });
    const posted = await session.post(open.link, { csrf: csrfOf(form.body), intent: 'password', firstName: 'Jane', password: PASSWORD, confirm: PASSWORD });
    expect(posted.status).toBe(410);
    expect(await readUser(userNameFor(open.record.email))).toBeUndefined();
  });

  it('a used link: 409 "already accepted"', async () => {
    const inv = await createInvitation(page, namespace(), tenantSpec(email()), { usedAt: new Date().toISOString() });
    const res = await new Session().get(inv.link);
    expect(res.status).toBe(409);
    expect(res.body).toContain('This invitation was already accepted');
    expect(res.body).toContain('href="https://console.example.com/login"');
  });

  it('revoked, unknown, forged and malformed links: 404, all with the same page', async () => {
    const revoked = await createInvitation(page, namespace(), tenantSpec(email()));
    expect((await new Session().get(revoked.link)).status).toBe(200);
    await kubectlOk(['delete', 'secret', revoked.record.name, '-n', USHER_NAMESPACE]);
    await expect.poll(() => page.store.cached.recordsBySelector(revoked.record.selector)).toEqual([]);

    const live = await createInvitation(page, namespace(), tenantSpec(email()));
    const forged = `${page.url}/accept/${live.record.selector}.${issueToken(randomBytes).verifier}`;
    const unknown = `${page.url}/accept/${issueToken(randomBytes).token}`;
    const malformed = [
      `${page.url}/accept/not-a-token`,
      `${page.url}/accept/${live.token}x`,
      `${page.url}/accept/${live.token.toUpperCase()}`,
      `${page.url}/accept/${'a'.repeat(300)}`,
      `${page.url}/accept/${live.token}/extra`,
      `${page.url}/accept/%E0%A4%A`,
    ];

    // A deleted invitation whose record Secret outlived it (no garbage collector yet): dead too.
    const orphan = await createInvitation(page, namespace(), tenantSpec(email()));
    await kubectlOk(['delete', 'userinvitation', orphan.invitation.metadata.name, '-n', namespace(), '--cascade=orphan']);
    await expect.poll(() => page.store.cached.invitation(namespace(), orphan.invitation.metadata.name)).toBeUndefined();

    const responses = await Promise.all([revoked.link, forged, unknown, orphan.link, ...malformed].map((url) => new Session().get(url)));
    const reference = mainOf(responses[0]?.body ?? '');
    expect(reference).toContain('This invitation link is not valid');
    for (const [i, res] of responses.entries()) {
      expect(res.status, `response ${i}`).toBe(404);
      expect(mainOf(res.body), `response ${i}`).toBe(reference);
      expect(res.headers.get('set-cookie'), `response ${i}`).toBeNull();
    }
    // Posting to them is no different (with a CSRF token from the live link's form, even).
    const session = new Session();
    const csrf = csrfOf((await session.get(live.link)).body);
    const forgedPost = await session.post(forged, { csrf, intent: 'password', firstName: 'Jane', password: PASSWORD, confirm: PASSWORD });
    expect(forgedPost.status).toBe(404);
    expect(mainOf(forgedPost.body)).toBe(reference);
    expect(await readUser(userNameFor(live.record.email))).toBeUndefined();
  });

  it('a link the controller would revoke (the invitation now targets a tenant its namespace may not invite into): 404', async () => {
    const inv = await createInvitation(page, namespace(), tenantSpec(email()));
    await kubectlOk(['patch', 'userinvitation', inv.invitation.metadata.name, '-n', namespace(), '--type=merge', '-p', '{"spec":{"tenant":"globex"}}']);
    await expect.poll(async () => (await new Session().get(inv.link)).status).toBe(404);
  });
});

describe('the form', () => {
  it('refuses a common password and a mismatched confirmation with 422, writing nothing', async () => {
    const inv = await createInvitation(page, namespace(), tenantSpec(email()));
    const common = await acceptWithPassword(inv.link, { password: 'Password123456789' });
    expect(common.status).toBe(422);
    expect(common.body).toContain('too common');
    expect(common.body).toContain('aria-invalid="true"');
    expect(common.body).toContain('value="Jane"');
    expect(common.body).not.toContain('Password123456789');

    const short = await acceptWithPassword(inv.link, { password: 'short one' });
    expect(short.status).toBe(422);
    expect(short.body).toContain('at least 15 characters');

    const mine = await acceptWithPassword(inv.link, { password: `${inv.record.email.split('@')[0] ?? ''}-is-me-really` });
    expect(mine.status).toBe(422);
    expect(mine.body).toContain('Do not use your email address');

    const mismatch = await acceptWithPassword(inv.link, { password: PASSWORD, confirm: `${PASSWORD}!` });
    expect(mismatch.status).toBe(422);
    expect(mismatch.body).toContain('The two passwords do not match');
    expect(mismatch.body).toMatch(/<input id="confirm"[^>]*aria-describedby="confirm-error"[^>]*aria-invalid="true"/);

    expect(await readUser(userNameFor(inv.record.email))).toBeUndefined();
    expect((await readRecord(inv.record.name))?.usedAt).toBeUndefined();
    // And the link still works afterwards.
    expect((await acceptWithPassword(inv.link, { password: PASSWORD })).status).toBe(200);
  });

  it('needs a valid CSRF token: missing, wrong, from another link or without the cookie is 403', async () => {
    const inv = await createInvitation(page, namespace(), tenantSpec(email()));
    const other = await createInvitation(page, namespace(), tenantSpec(email()));
    const session = new Session();
    const csrf = csrfOf((await session.get(inv.link)).body);
    const otherCsrf = csrfOf((await session.get(other.link)).body);
    const fields = { intent: 'password', firstName: 'Jane', password: PASSWORD, confirm: PASSWORD };

    const attempts = [
      await session.post(inv.link, fields),
      await session.post(inv.link, { ...fields, csrf: `${csrf.slice(0, -2)}AA` }),
      await session.post(inv.link, { ...fields, csrf: otherCsrf }),
      await new Session().post(inv.link, { ...fields, csrf }),
    ];
    for (const res of attempts) {
      expect(res.status).toBe(403);
      expect(res.body).toContain('This form has expired');
    }
    expect(await readUser(userNameFor(inv.record.email))).toBeUndefined();
    expect((await session.post(inv.link, { ...fields, csrf })).status).toBe(200);
  });

  it('escapes a hostile first name and email characters on every page, and stores the name as typed', async () => {
    const hostile = '<script>alert(1)</script>';
    const address = `o'brien&co+${Date.now().toString(36)}@example.com`;
    const inv = await createInvitation(page, namespace(), tenantSpec(address));
    const session = new Session();
    const shown = await session.get(inv.link);
    expect(shown.body).toContain('o&#39;brien&amp;co+');
    expect(shown.body).not.toContain("o'brien&co");

    const invalid = await session.post(inv.link, {
      csrf: csrfOf(shown.body),
      intent: 'password',
      firstName: hostile,
      lastName: '"><img src=x onerror=alert(1)>',
      password: 'short',
      confirm: 'short',
    });
    expect(invalid.status).toBe(422);
    expect(invalid.body).toContain('value="&lt;script&gt;alert(1)&lt;/script&gt;"');
    expect(invalid.body).not.toContain('<script>');
    expect(invalid.body).not.toContain('<img');

    const done = await session.post(inv.link, {
      csrf: csrfOf(invalid.body),
      intent: 'password',
      firstName: hostile,
      lastName: 'Doe',
      password: PASSWORD,
      confirm: PASSWORD,
    });
    expect(done.status).toBe(200);
    expect(done.body).toContain('Welcome aboard, &lt;script&gt;alert(1)&lt;/script&gt;!');
    expect(done.body).not.toContain('<script>');
    expect((await readUser(userNameFor(address)))?.spec.firstName).toBe(hostile);
  });

  it('cannot be handed a hostile tenant or group: the API server refuses them first', async () => {
    for (const spec of [tenantSpec(email(), { tenant: '<script>alert(1)</script>' }), tenantSpec(email(), { groups: ['<script>alert(1)</script>'] })]) {
      const doc = { apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', metadata: { name: `hostile-${seq++}`, namespace: namespace() }, spec };
      const result = await kubectl(['create', '-f', '-'], { input: JSON.stringify(doc) });
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/should match/);
    }
  });
});

describe('concurrency', () => {
  it('of several simultaneous accepts of one link exactly one wins; the rest hear "already accepted" and their passwords are not kept', async () => {
    const inv = await createInvitation(page, namespace(), tenantSpec(email()));
    const passwords = ['first racing passphrase', 'second racing passphrase', 'third racing passphrase', 'fourth racing passphrase', 'fifth racing passphrase'];
    const sessions = passwords.map(() => new Session());
    const forms = await Promise.all(sessions.map((s) => s.get(inv.link)));
    const results = await Promise.all(
      sessions.map((s, i) =>
        s.post(inv.link, {
          csrf: csrfOf(forms[i]?.body ?? ''),
          intent: 'password',
          firstName: `Racer${i}`,
          password: passwords[i] ?? '',
          confirm: passwords[i] ?? '',
        }),
      ),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(passwords.length - 1);
    for (const r of results.filter((r) => r.status === 409)) expect(r.body).toMatch(/already accepted|being accepted/);

    const winner = statuses.indexOf(200);
    const userName = userNameFor(inv.record.email);
    const user = await readUser(userName);
    expect(user?.spec.firstName).toBe(`Racer${winner}`);
    expect(user?.spec.memberships).toHaveLength(1);
    const hash = Buffer.from((await readSecret(USHER_NAMESPACE, `usher-credentials-${userName}`))?.data['password-hash'] ?? '', 'base64').toString('utf8');
    const verified = await Promise.all(passwords.map((p) => verify(hash, p)));
    expect(verified).toEqual(passwords.map((_, i) => i === winner));
    expect((await readRecord(inv.record.name))?.usedAt).toBeDefined();
  });

  it('a claim left by a crashed attempt holds the link off only until it lapses', async () => {
    const inv = await createInvitation(page, namespace(), tenantSpec(email()));
    const session = new Session();
    const form = await session.get(inv.link);
    const withClaim = async (expiresAt: Date): Promise<void> => {
      await rewriteRecord(page, { ...inv.record, acceptanceClaim: { id: 'crashed-replica', expiresAt: expiresAt.toISOString() } });
    };
    const submit = (): ReturnType<Session['post']> =>
      session.post(inv.link, { csrf: csrfOf(form.body), intent: 'password', firstName: 'Jane', password: PASSWORD, confirm: PASSWORD });

    await withClaim(new Date(Date.now() + 60_000));
    const held = await submit();
    expect(held.status).toBe(409);
    expect(held.body).toContain('This invitation is being accepted');
    expect(await readUser(userNameFor(inv.record.email))).toBeUndefined();

    await withClaim(new Date(Date.now() - 1000));
    expect((await submit()).status).toBe(200);
    const record = await readRecord(inv.record.name);
    expect(record?.usedAt).toBeDefined();
    expect(record).not.toHaveProperty('acceptanceClaim');
  });
});

describe('what goes out besides the page', () => {
  it('sends the security headers on pages, errors, assets and redirects alike', async () => {
    const inv = await createInvitation(page, namespace(), tenantSpec(email()));
    const session = new Session();
    const responses = [
      await session.get(inv.link),
      await session.get(`${page.url}/accept/nope`),
      await session.get(`${page.url}/accept/assets/usher.css`),
      await session.get(`${page.url}/`),
    ];
    for (const res of responses) {
      expect(res.headers.get('content-security-policy')).toBe(
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
      );
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
    expect(responses[2]?.status).toBe(200);
    expect(responses[2]?.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(responses[2]?.body).toContain('.card');
    const cookie = (await new Session().request(inv.link)).headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^usher-csrf=[A-Za-z0-9_-]{22}; Path=\/; HttpOnly; SameSite=Lax$/);
  });

  it('logs the selector, never the verifier, the password or the name typed', async () => {
    const inv = await createInvitation(page, namespace(), tenantSpec(email()));
    const before = page.logs.length;
    expect((await acceptWithPassword(inv.link, { firstName: 'Loggable', password: PASSWORD })).status).toBe(200);
    await new Session().get(`${page.url}/accept/${inv.record.selector}.${issueToken(randomBytes).verifier}`);
    const lines = page.logs.slice(before).join('\n');
    const verifier = inv.token.split('.')[1] ?? '';
    expect(lines).toContain(inv.record.selector);
    expect(lines).toContain('invitation accepted');
    expect(lines).not.toContain(verifier);
    expect(lines).not.toContain(PASSWORD);
    expect(lines).not.toContain(`/accept/${inv.record.selector}`);
    expect(lines).not.toContain('$argon2id$');
    const requests = page.logs
      .slice(before)
      .map((l) => JSON.parse(l) as { msg: string; req?: unknown })
      .filter((l) => l.msg === 'request');
    expect(requests[0]?.req).toEqual({ method: 'GET', route: '/accept/:token', selector: inv.record.selector });
  });
});

describe('rate limits', () => {
  it('answers 429 with Retry-After past the per-link limit, and past the per-client limit', async () => {
    const limited = await startPage(() =>
      acceptYaml(namespace(), '    trustProxy: []\n').replace(
        'perClientPerMinute: 10000, perTokenPerMinute: 10000',
        'perClientPerMinute: 8, perTokenPerMinute: 3',
      ),
    );
    try {
      const inv = await createInvitation(limited, namespace(), tenantSpec(email()));
      const session = new Session();
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await session.get(inv.link)).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      const limitedPage = await session.get(inv.link);
      expect(limitedPage.status).toBe(429);
      expect(limitedPage.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(limitedPage.body).toContain('Too many attempts');
      expect(limitedPage.headers.get('content-security-policy')).toContain("default-src 'none'");

      // Other links from the same client: the per-client limit (8) was used by 5 requests so far.
      const others = [];
      for (let i = 0; i < 4; i++) others.push((await session.get(`${limited.url}/accept/${issueToken(randomBytes).token}`)).status);
      expect(others).toEqual([404, 404, 404, 429]);
      // The stylesheet is not counted.
      expect((await session.get(`${limited.url}/accept/assets/usher.css`)).status).toBe(200);
    } finally {
      await limited.server.close();
    }
  });
});

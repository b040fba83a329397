// The routes:
//   GET  /accept/:token               the invitation, with the form (or the SSO button)
//   POST /accept/:token               the form: password, or the start of SSO
//   GET  /accept/oidc/callback        back from the identity provider
// Each answers with a whole page and the status that fits it.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { displayEmail, normalizeEmail } from '../invitation/email.ts';
import type { UsherConfig } from '../config/types.ts';
import { parseToken } from '../invitation/token.ts';
import type { User } from '../api/types.ts';
import { findUser } from '../invitation/users.ts';
import { acceptInvitation, freshUser, isProvisionalFor, type AcceptAs, type Outcome } from './acceptance.ts';
import { csrfToken, csrfTokenValid, isCsrfNonce, newCsrfNonce } from './csrf.ts';
import { checkSubmission, cleanName, field, type FormBody } from './form.ts';
import { hashPassword } from './hash.ts';
import { contentSecurityPolicy } from './headers.ts';
import { html } from './html.ts';
import type { PageKeys } from './keys.ts';
import { lookUp, type Found, type Lookup } from './lookup.ts';
import { isSsoState, SSO_STATE_TTL_MS, type OidcLogin, type SsoState } from './oidc.ts';
import {
  alreadyAcceptedPage,
  busyPage,
  emailHtml,
  expiredPage,
  invitationPage,
  layout,
  messagePage,
  notFoundPage,
  successPage,
  type AccountMode,
  type FormState,
  type InvitationView,
  type RenderedPage,
} from './pages.ts';
import { seal, unseal } from './seal.ts';
import { passwordMatches, type SignInLimiter } from './sign-in.ts';
import type { AcceptStore } from './store.ts';

export interface Context {
  config: UsherConfig;
  store: AcceptStore;
  signIn: SignInLimiter;
  keys: PageKeys;
  oidc?: OidcLogin;
  now: () => Date;
  /** Whether cookies get Secure and the __Host- prefix (baseUrl is https). */
  secureCookies: boolean;
  log: Logger;
}

export const ROUTES = {
  invitation: '/accept/:token',
  callback: '/accept/oidc/callback',
  /** The routes the rate limits apply to (assets and health checks are free). */
  limited: new Set(['/accept/:token', '/accept/oidc/callback']),
} as const;

const SSO_STATE_PURPOSE = 'usher sso state';

type TokenRequest = FastifyRequest<{ Params: { token: string }; Body: FormBody | undefined }>;

export function send(reply: FastifyReply, page: RenderedPage, assets: string): FastifyReply {
  return reply.code(page.status).type('text/html; charset=utf-8').send(layout({ assets }, page));
}

export function registerRoutes(app: FastifyInstance, ctx: Context): void {
  const cookies = cookieNames(ctx.secureCookies);
  const cookieOptions = { path: '/', httpOnly: true, sameSite: 'lax', secure: ctx.secureCookies } as const;

  /** This browser's CSRF nonce: the one its cookie holds, or a new one set now. */
  const csrfNonce = (request: FastifyRequest, reply: FastifyReply): string => {
    const existing = request.cookies[cookies.csrf];
    if (isCsrfNonce(existing)) return existing;
    const nonce = newCsrfNonce();
    void reply.setCookie(cookies.csrf, nonce, cookieOptions);
    return nonce;
  };

  /** Which form fits: a new account, or signing in as the account that exists for this address. */
  const accountMode = (found: Found, user: User | undefined): AccountMode => {
    const sso = ctx.oidc !== undefined;
    // A provisional User of this very link is a crashed attempt's: the link's holder may finish it.
    const fresh = !user || isProvisionalFor(user, found.record.name);
    if (ctx.config.identity) {
      // The identity provider holds the account: whoever has one there (made by Usher or anyone
      // else, as the controller noted in the record) signs in to it; only a new person picks a password.
      if (!fresh || found.record.accountExists === true) return { account: 'existingExternal', sso };
      return { account: 'new', sso, passwords: true };
    }
    if (fresh) return { account: 'new', sso, passwords: !sso };
    return user.spec.authentication === 'Password' ? { account: 'existingPassword', sso } : { account: 'existingExternal', sso };
  };

  const formPage = async (
    request: FastifyRequest,
    reply: FastifyReply,
    found: Found,
    mode: AccountMode,
    state: Omit<FormState, 'csrf'> = {},
  ): Promise<FastifyReply> => {
    const csrf = csrfToken(ctx.keys.csrf, found.record.selector, csrfNonce(request, reply), ctx.now());
    const page = invitationPage(viewOf(found), { ...state, csrf }, mode);
    // Chromium checks the redirects after a form submission against form-action: the SSO form's leads to the provider.
    if (ctx.oidc) void reply.header('content-security-policy', contentSecurityPolicy(await ctx.oidc.formTargets()));
    return send(reply, page, 'assets');
  };

  const accept = async (found: Found, as: AcceptAs): Promise<Outcome> => {
    const outcome = await acceptInvitation({ store: ctx.store, credentialsNamespace: ctx.config.accept.credentialsNamespace, now: ctx.now }, found, as);
    logOutcome(ctx.log, found, outcome, as.kind);
    return outcome;
  };

  app.get(ROUTES.invitation, async (request: TokenRequest, reply) => {
    // From the watch-fed caches: opening a page costs the API server nothing.
    const lookup = await lookUp(ctx.store, ctx.config, request.params.token, ctx.now(), { fresh: false });
    if (lookup.kind !== 'open') return send(reply, closedPage(lookup, ctx), 'assets');
    const user = findUser(lookup.found.record.email, (name) => ctx.store.cached.user(name));
    return formPage(request, reply, lookup.found, accountMode(lookup.found, user));
  });

  app.post(ROUTES.invitation, async (request: TokenRequest, reply) => {
    const { token } = request.params;
    const parsed = parseToken(token);
    if (!parsed) return send(reply, notFoundPage(), 'assets');
    // Before anything else, and the same whether or not the token exists.
    if (!csrfTokenValid(ctx.keys.csrf, parsed.selector, request.cookies[cookies.csrf], field(request.body, 'csrf'), ctx.now())) {
      return send(reply, staleFormPage(token), 'assets');
    }
    // Found in the cache first (unknown tokens stop there), then read again from the API server before any write.
    const lookup = await lookUp(ctx.store, ctx.config, token, ctx.now(), { fresh: true });
    if (lookup.kind !== 'open') return send(reply, closedPage(lookup, ctx), 'assets');
    const { found } = lookup;
    const intent = field(request.body, 'intent');
    const user = await freshUser(ctx.store, found.record.email);
    const mode = accountMode(found, user);

    if (intent === 'sso') {
      if (!ctx.oidc) return formPage(request, reply, found, mode);
      const { url, state } = await ctx.oidc.start(token, ctx.now());
      void reply.setCookie(cookies.sso, seal(ctx.keys.oidcState, SSO_STATE_PURPOSE, state), { ...cookieOptions, maxAge: SSO_STATE_TTL_MS / 1000 });
      return reply.redirect(url.href, 303);
    }

    if (mode.account === 'existingExternal') {
      // Without SSO on the page there is nothing to sign in with: the page says whom to ask, as on a GET.
      return formPage(request, reply, found, mode, mode.sso ? { formError: 'An account for this address already exists: sign in to it to accept.' } : {});
    }
    if (mode.account === 'existingPassword') {
      if (intent !== 'signin' || !user)
        return formPage(request, reply, found, mode, { formError: 'An account for this address already exists: sign in with its password to accept.' });
      // One answer for a wrong password, a missing hash and a locked account.
      if (!(await passwordMatches(ctx.store, user, field(request.body, 'password') ?? '', ctx.signIn))) {
        return formPage(request, reply, found, mode, {
          formError: 'That did not work. Check the password of your existing account and try again; after several failed attempts, wait 15 minutes.',
        });
      }
      const outcome = await accept(found, { kind: 'existing', userName: user.metadata.name });
      return send(reply, outcomePage(outcome, found, ctx, user.spec.firstName), 'assets');
    }

    if (!mode.passwords) {
      return formPage(request, reply, found, mode, { formError: 'This platform uses single sign-on: continue with SSO to accept.' });
    }
    const checked = checkSubmission(request.body, found.record.email);
    if (!checked.ok) return formPage(request, reply, found, mode, { errors: checked.errors, values: checked.values });
    const { submission } = checked;
    const passwordHash = await hashPassword(submission.password);
    const outcome = await accept(found, {
      kind: 'newPassword',
      firstName: submission.firstName,
      passwordHash,
      ...(submission.lastName ? { lastName: submission.lastName } : {}),
    });
    if (outcome.kind === 'existingAccount') {
      const now = await freshUser(ctx.store, found.record.email);
      return formPage(request, reply, found, accountMode(found, now), {
        formError: 'An account for this address was created meanwhile: sign in with its password to accept.',
      });
    }
    return send(reply, outcomePage(outcome, found, ctx, submission.firstName), 'assets');
  });

  app.get(ROUTES.callback, async (request, reply) => {
    const assets = '../assets';
    const oidc = ctx.oidc;
    const state = unseal(ctx.keys.oidcState, SSO_STATE_PURPOSE, request.cookies[cookies.sso]);
    // Single use: whatever happens next, this state is spent.
    void reply.clearCookie(cookies.sso, { path: '/' });
    if (!oidc || !isSsoState(state) || state.expiresAt < ctx.now().getTime()) return send(reply, ssoSessionLostPage(), assets);
    const back = `../${state.token}`;

    const query = new URL(request.url, 'http://callback.invalid').search;
    if (new URLSearchParams(query).has('error')) return send(reply, ssoCancelledPage(back), assets);
    const lookup = await lookUp(ctx.store, ctx.config, state.token, ctx.now(), { fresh: true });
    if (lookup.kind !== 'open') return send(reply, closedPage(lookup, ctx), assets);
    const { found } = lookup;

    const identity = await finishSso(oidc, `${oidc.redirectUri}${query}`, state, ctx.log);
    if (!identity) return send(reply, ssoFailedPage(back), assets);
    if (!identity.emailVerified) return send(reply, ssoMismatchPage(found, identity.email, back, 'unverified'), assets);
    if (normalizeEmail(identity.email) !== found.record.email) return send(reply, ssoMismatchPage(found, identity.email, back, 'other'), assets);

    // The provider vouched for this very address: that proves the person is its existing User too,
    // whose names, sign-in method and credentials stay as they are.
    const existing = await freshUser(ctx.store, found.record.email);
    if (existing && !isProvisionalFor(existing, found.record.name)) {
      const outcome = await accept(found, { kind: 'existing', userName: existing.metadata.name });
      return send(reply, outcomePage(outcome, found, ctx, existing.spec.firstName), assets);
    }
    const firstName = cleanName(identity.givenName).slice(0, 128);
    const lastName = cleanName(identity.familyName).slice(0, 128);
    const outcome = await accept(found, { kind: 'newExternal', ...(firstName ? { firstName } : {}), ...(lastName ? { lastName } : {}) });
    return send(reply, outcomePage(outcome, found, ctx, firstName || undefined), assets);
  });
}

async function finishSso(oidc: OidcLogin, callbackUrl: string, state: SsoState, log: Logger): Promise<Awaited<ReturnType<OidcLogin['finish']>> | undefined> {
  try {
    return await oidc.finish(new URL(callbackUrl), state);
  } catch (err) {
    // openid-client's messages name the failed check (state, nonce, signature…) and hold no secrets.
    log.warn({ error: err instanceof Error ? err.message : String(err) }, 'SSO sign-in failed');
    return undefined;
  }
}

function logOutcome(log: Logger, found: Found, outcome: Outcome, as: AcceptAs['kind']): void {
  const invitation = `${found.record.invitationNamespace}/${found.record.invitationName}`;
  if (outcome.kind === 'accepted') log.info({ invitation, user: outcome.user.metadata.name, as }, 'invitation accepted');
  else log.info({ invitation, outcome: outcome.kind }, 'invitation not accepted');
}

function cookieNames(secure: boolean): { csrf: string; sso: string } {
  // __Host-: only settable over https, by this host, for path / — no subdomain can plant one.
  return secure ? { csrf: '__Host-usher-csrf', sso: '__Host-usher-sso' } : { csrf: 'usher-csrf', sso: 'usher-sso' };
}

export function viewOf(found: Found): InvitationView {
  const { spec } = found.invitation;
  const scope = spec.scope ?? 'Tenant';
  return {
    // The address as the person knows it: an internationalised domain in Unicode, not its punycode.
    email: displayEmail(found.record.email),
    scope,
    ...(scope === 'Tenant' && spec.tenant ? { tenant: spec.tenant } : {}),
    groups: spec.groups ?? [],
    roles: spec.roles ?? [],
    expiresAt: found.record.expiresAt,
  };
}

function closedPage(lookup: Exclude<Lookup, { kind: 'open' }>, ctx: Context): RenderedPage {
  switch (lookup.kind) {
    case 'unknown':
      return notFoundPage();
    case 'expired':
      return expiredPage(viewOf(lookup.found));
    case 'accepted':
      return alreadyAcceptedPage(viewOf(lookup.found), ctx.config.accept.loginUrl);
  }
}

function outcomePage(outcome: Outcome, found: Found, ctx: Context, name: string | undefined): RenderedPage {
  switch (outcome.kind) {
    case 'accepted':
      return successPage(
        viewOf(found),
        name,
        ctx.config.accept.loginUrl,
        outcome.created && outcome.user.spec.authentication === 'Password' ? 'newPassword' : 'other',
      );
    case 'existingAccount':
      return messagePage({
        status: 409,
        tone: 'brand',
        icon: 'info',
        title: 'You already have an account',
        lead: html`An account for <strong class="email">${emailHtml(found.record.email)}</strong> exists: open your invitation link again and sign in as it to accept.`,
      });
    case 'alreadyAccepted':
      return alreadyAcceptedPage(viewOf(found), ctx.config.accept.loginUrl);
    case 'busy':
      return busyPage();
    case 'gone':
      return notFoundPage();
  }
}

function staleFormPage(token: string): RenderedPage {
  return messagePage({
    status: 403,
    tone: 'warning',
    icon: 'clock',
    title: 'This form has expired',
    lead: 'For your security, the form could not be accepted: it is too old, or it was not sent from this page.',
    details: html`<p>Nothing was changed. Open the invitation again and fill in the form once more.</p><a class="button" href="${token}">Open the invitation again</a>`,
  });
}

function ssoSessionLostPage(): RenderedPage {
  return messagePage({
    status: 400,
    tone: 'warning',
    icon: 'clock',
    title: 'Your sign-in took too long',
    lead: 'The single sign-on session expired or was started in another browser.',
    details: html`<p>Open the link from your invitation email again and choose “Continue with SSO”.</p>`,
  });
}

function ssoCancelledPage(back: string): RenderedPage {
  return messagePage({
    status: 400,
    tone: 'warning',
    icon: 'warn',
    title: 'Sign-in was cancelled',
    lead: 'The identity provider did not sign you in, so the invitation was not accepted.',
    details: html`<a class="button" href="${back}">Back to the invitation</a>`,
  });
}

function ssoFailedPage(back: string): RenderedPage {
  return messagePage({
    status: 502,
    tone: 'danger',
    icon: 'warn',
    title: 'Sign-in could not be completed',
    lead: 'The answer from the identity provider could not be verified. Your invitation is unchanged.',
    details: html`<a class="button" href="${back}">Try again</a>`,
  });
}

function ssoMismatchPage(found: Found, signedInAs: string, back: string, why: 'unverified' | 'other'): RenderedPage {
  const lead =
    why === 'other'
      ? html`You signed in as <strong class="email">${signedInAs ? emailHtml(signedInAs) : 'an account without an email address'}</strong>, but this invitation is for <strong class="email">${emailHtml(found.record.email)}</strong>.`
      : html`Your identity provider has not verified the email address <strong class="email">${emailHtml(signedInAs)}</strong>, so it cannot be matched to this invitation.`;
  return messagePage({
    status: 403,
    tone: 'danger',
    icon: 'warn',
    title: 'This account does not match the invitation',
    lead,
    details: html`<p>Sign out of your identity provider, then sign in with the account for <strong class="email">${emailHtml(found.record.email)}</strong>. If you have no such account, ask your administrator.</p><a class="button" href="${back}">Back to the invitation</a>`,
  });
}

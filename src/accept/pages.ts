// The pages the invited person sees. Plain HTML forms, no JavaScript; one
// stylesheet (assets/usher.css). Every value that comes from an invitation,
// a form or an identity provider goes through `html`, which escapes it.
import type { RoleGrant, Scope } from '../api/types.ts';
import { html, raw, type SafeHtml } from './html.ts';
import { MIN_LENGTH } from './password.ts';

/** What the page shows about an invitation. */
export interface InvitationView {
  email: string;
  scope: Scope;
  tenant?: string;
  groups: readonly string[];
  roles: readonly RoleGrant[];
  expiresAt: string;
}

export type Field = 'firstName' | 'lastName' | 'password' | 'confirm';
export type FieldErrors = Partial<Record<Field, string>>;

export interface PageOptions {
  /** The path from this page to the assets folder ("assets" or "../assets"), as pages live at two depths. */
  assets: string;
}

export interface RenderedPage {
  status: number;
  title: string;
  body: SafeHtml;
  /** A line under the card. */
  footer?: string;
}

const ICONS = {
  invite: raw(
    '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M3 7.5 12 13l9-5.5M4.5 5h15A1.5 1.5 0 0 1 21 6.5v11a1.5 1.5 0 0 1-1.5 1.5h-15A1.5 1.5 0 0 1 3 17.5v-11A1.5 1.5 0 0 1 4.5 5Z"/></svg>',
  ),
  check: raw('<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="m5 12.5 4.5 4.5L19 7.5"/></svg>'),
  clock: raw('<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/></svg>'),
  info: raw('<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><circle cx="12" cy="12" r="9"/><path d="M12 11v6M12 7.5v.5"/></svg>'),
  unknown: raw(
    '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M9.5 14.5 7.8 16.2a3 3 0 0 1-4.2-4.2l2.8-2.8M14.5 9.5l1.7-1.7a3 3 0 0 1 4.2 4.2l-2.8 2.8M4 4l16 16"/></svg>',
  ),
  warn: raw('<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M12 4 2.8 19.5h18.4L12 4Z"/><path d="M12 10v4.5M12 17v.5"/></svg>'),
} as const;

type Tone = 'brand' | 'success' | 'warning' | 'danger' | 'neutral';

export function layout(options: PageOptions, page: RenderedPage): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<meta name="color-scheme" content="light dark">
<title>${page.title} · Platform invitation</title>
<link rel="stylesheet" href="${options.assets}/usher.css">
<link rel="icon" href="${options.assets}/icon.svg" type="image/svg+xml">
</head>
<body>
<main class="card">
${page.body}
</main>
${page.footer && html`<footer class="site-footer">${page.footer}</footer>`}
</body>
</html>
`.value;
}

function hero(tone: Tone, icon: SafeHtml, title: string, lead: SafeHtml | string): SafeHtml {
  return html`<header class="hero">
<span class="badge badge-${tone}">${icon}</span>
<h1 id="title">${title}</h1>
<p class="lead">${lead}</p>
</header>`;
}

/** "2 December 2025 at 14:05 UTC": unambiguous for readers anywhere; the machine-readable time is in the markup. */
export function formatTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${new Intl.DateTimeFormat('en-GB', { dateStyle: 'long', timeStyle: 'short', timeZone: 'UTC' }).format(date)} UTC`;
}

/** An address that wraps after the @ on a narrow screen rather than anywhere. */
export function emailHtml(email: string): SafeHtml {
  const at = email.lastIndexOf('@');
  return at < 0 ? html`${email}` : html`${email.slice(0, at + 1)}<wbr>${email.slice(at + 1)}`;
}

function target(view: InvitationView): SafeHtml {
  return view.scope === 'Instance' ? html`the <strong>whole platform</strong>` : html`the tenant <strong>${view.tenant ?? ''}</strong>`;
}

function grants(view: InvitationView): SafeHtml {
  const groups = view.groups.length ? html`<ul class="chips">${view.groups.map((g) => html`<li>${g}</li>`)}</ul>` : html`<span class="muted">None</span>`;
  const roles = view.roles.length
    ? html`<ul class="roles">${view.roles.map((r) => html`<li><span class="role">${r.name}</span> <span class="where">${r.namespaces?.length ? html`in ${joinWords(r.namespaces)}` : 'in every namespace'}</span></li>`)}</ul>`
    : html`<span class="muted">None</span>`;
  return html`<dl class="grants">
<div><dt>Access to</dt><dd>${view.scope === 'Instance' ? 'The whole platform' : html`Tenant <strong>${view.tenant ?? ''}</strong>`}</dd></div>
<div><dt>Groups</dt><dd>${groups}</dd></div>
<div><dt>Roles</dt><dd>${roles}</dd></div>
<div><dt>Valid until</dt><dd><time datetime="${view.expiresAt}">${formatTime(view.expiresAt)}</time></dd></div>
</dl>`;
}

function joinWords(items: readonly string[]): SafeHtml {
  return html`${items.map((item, i) => html`${i === 0 ? '' : i === items.length - 1 ? ' and ' : ', '}<code>${item}</code>`)}`;
}

export interface FormState {
  csrf: string;
  values?: { firstName?: string; lastName?: string };
  errors?: FieldErrors;
  /** A problem with the whole submission rather than one field. */
  formError?: string;
}

const FIELD_ORDER: readonly Field[] = ['firstName', 'lastName', 'password', 'confirm'];

/**
 * Which form the invitation page shows: a new account (password or SSO), or
 * an existing account the person must sign in as (with its password, or
 * through SSO only when it signs in through SSO).
 */
export type AccountMode =
  /** passwords: whether a new account may choose a password (without an identity provider, SSO replaces passwords). */
  { account: 'new'; sso: boolean; passwords: boolean } | { account: 'existingPassword'; sso: boolean } | { account: 'existingExternal'; sso: boolean };

export function invitationPage(view: InvitationView, form: FormState, mode: AccountMode): RenderedPage {
  const errors = form.errors ?? {};
  const invalid = FIELD_ORDER.filter((f) => errors[f] !== undefined);
  let section: SafeHtml;
  if (mode.account === 'existingPassword') section = signInForm(view, form, mode.sso);
  else if (mode.account === 'existingExternal') section = mode.sso ? ssoForm(view, form, true) : noSsoForExternal(view);
  else section = mode.passwords ? passwordForm(view, form, invalid, mode.sso) : ssoForm(view, form, false);
  const body = html`${hero('brand', ICONS.invite, 'You’re invited', html`<strong class="email">${emailHtml(view.email)}</strong> is invited to join ${target(view)}.`)}
${grants(view)}
${section}`;
  return {
    status: invalid.length || form.formError ? 422 : 200,
    title: invalid.length ? 'Check the form' : 'You’re invited',
    body,
    footer: 'Not expecting this invitation? You can ignore it: nothing happens until you accept.',
  };
}

/**
 * The form's opening: its CSRF token, and the address as a read-only username
 * field, so that password managers file (or find) the password under it.
 */
function formStart(view: InvitationView, csrf: string): SafeHtml {
  return html`<form method="post" novalidate>
<input type="hidden" name="csrf" value="${csrf}">
<div class="field">
<label for="username">Email</label>
<input id="username" name="username" type="email" value="${view.email}" autocomplete="username" readonly aria-readonly="true">
</div>`;
}

/** An existing password account: sign in with that password to add the access; nothing else of the account changes. */
function signInForm(view: InvitationView, form: FormState, sso: boolean): SafeHtml {
  return html`<section class="form" aria-labelledby="signin-title">
<h2 id="signin-title">Sign in to accept</h2>
<p class="hint">You already have an account for <strong class="email">${emailHtml(view.email)}</strong>. Sign in with its password to add this access to it. Your name, password and sign-in method stay as they are.</p>
${form.formError && html`<div class="alert" role="alert"><p>${form.formError}</p></div>`}
${formStart(view, form.csrf)}
<div class="field">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required${form.formError ? raw(' autofocus') : ''}>
</div>
<button class="button" type="submit" name="intent" value="signin">Sign in and accept</button>
${sso && html`<p class="hint">Or sign in with your organization account:</p><button class="button button-secondary" type="submit" name="intent" value="sso" formnovalidate>Continue with SSO</button>`}
</form>
</section>`;
}

function noSsoForExternal(view: InvitationView): SafeHtml {
  return html`<section class="form" aria-labelledby="sso-title">
<h2 id="sso-title">Ask your administrator</h2>
<p class="hint">Your account for <strong class="email">${emailHtml(view.email)}</strong> signs in through your organization’s identity provider, and this page is not connected to it, so it cannot confirm it is you. Ask your platform administrator to add this access to your account directly.</p>
</section>`;
}

function ssoForm(view: InvitationView, form: FormState, existing: boolean): SafeHtml {
  return html`<section class="form" aria-labelledby="sso-title">
<h2 id="sso-title">Accept with your organization account</h2>
${form.formError && html`<div class="alert" role="alert"><p>${form.formError}</p></div>`}
<p class="hint">${existing ? html`You already have an account for <strong class="email">${emailHtml(view.email)}</strong>, and it signs in through single sign-on. Sign in to add this access to it; nothing else of your account changes.` : html`You will sign in with your single sign-on provider. Use the account for <strong>${view.email}</strong>.`}</p>
<form method="post">
<input type="hidden" name="csrf" value="${form.csrf}">
<button class="button" type="submit" name="intent" value="sso">Continue with SSO</button>
</form>
</section>`;
}

function passwordForm(view: InvitationView, form: FormState, invalid: readonly Field[], sso: boolean): SafeHtml {
  const errors = form.errors ?? {};
  const values = form.values ?? {};
  const first = invalid[0];
  const summary =
    (invalid.length > 0 || form.formError) &&
    html`<div class="alert" role="alert" aria-labelledby="error-title">
<h2 id="error-title">${form.formError ?? 'Please check the form'}</h2>
${invalid.length > 0 && html`<ul>${invalid.map((f) => html`<li><a href="#${f}">${errors[f]}</a></li>`)}</ul>`}
</div>`;
  const field = (name: Field, label: string, attrs: SafeHtml, hint?: string): SafeHtml => {
    const error = errors[name];
    const describedBy = [hint && `${name}-hint`, error && `${name}-error`].filter(Boolean).join(' ');
    return html`<div class="field${error ? ' field-invalid' : ''}">
<label for="${name}">${label}</label>
${hint && html`<p class="hint" id="${name}-hint">${hint}</p>`}
${error && html`<p class="error" id="${name}-error"><span class="visually-hidden">Error: </span>${error}</p>`}
<input id="${name}" name="${name}" ${attrs}${describedBy && html` aria-describedby="${describedBy}"`}${error && raw(' aria-invalid="true"')}${first === name && raw(' autofocus')}>
</div>`;
  };
  return html`<section class="form" aria-labelledby="form-title">
<h2 id="form-title">Create your account</h2>
${summary}
${formStart(view, form.csrf)}
<div class="row">
${field('firstName', 'First name', html`type="text" autocomplete="given-name" required maxlength="128" value="${values.firstName ?? ''}"`)}
${field('lastName', 'Last name (optional)', html`type="text" autocomplete="family-name" maxlength="128" value="${values.lastName ?? ''}"`)}
</div>
${field('password', 'Password', raw(`type="password" autocomplete="new-password" required minlength="${MIN_LENGTH}"`), `At least ${MIN_LENGTH} characters. A short sentence or a few unrelated words work well; no special characters needed.`)}
${field('confirm', 'Confirm password', raw(`type="password" autocomplete="new-password" required minlength="${MIN_LENGTH}"`))}
<button class="button" type="submit" name="intent" value="password">Accept invitation</button>
${sso && html`<p class="hint">Or accept with your organization account:</p><button class="button button-secondary" type="submit" name="intent" value="sso" formnovalidate>Continue with SSO</button>`}
</form>
</section>`;
}

export function successPage(
  view: InvitationView,
  name: string | undefined,
  loginUrl: string | undefined,
  how: 'newPassword' | 'other' = name === undefined ? 'other' : 'newPassword',
): RenderedPage {
  const next = loginUrl
    ? html`<p>Sign in with <strong class="email">${emailHtml(view.email)}</strong>${how === 'newPassword' ? ' and the password you just chose' : ''}.</p>
<a class="button" href="${loginUrl}">Go to sign in</a>`
    : html`<p>Your platform administrators will tell you where to sign in. Use <strong class="email">${emailHtml(view.email)}</strong>.</p>`;
  return {
    status: 200,
    title: 'Welcome aboard',
    body: html`${hero('success', ICONS.check, name ? `Welcome aboard, ${name}!` : 'Welcome aboard!', html`Your account is ready: you have joined ${target(view)}.`)}
<section class="next">${next}</section>`,
  };
}

export interface MessageOptions {
  status: number;
  tone: Tone;
  icon: keyof typeof ICONS;
  title: string;
  lead: SafeHtml | string;
  details?: SafeHtml;
}

export function messagePage(options: MessageOptions): RenderedPage {
  return {
    status: options.status,
    title: options.title,
    body: html`${hero(options.tone, ICONS[options.icon], options.title, options.lead)}
${options.details && html`<section class="next">${options.details}</section>`}`,
  };
}

/** Deliberately the same for unknown, forged, malformed and revoked links: it must not tell which tokens exist. */
export function notFoundPage(): RenderedPage {
  return messagePage({
    status: 404,
    tone: 'neutral',
    icon: 'unknown',
    title: 'This invitation link is not valid',
    lead: 'The link may be incomplete, or the invitation may have been withdrawn or replaced by a newer one.',
    details: html`<p>Check that you opened the whole link from your most recent invitation email. If it still does not work, ask your platform administrator to send you a new invitation.</p>`,
  });
}

export function expiredPage(view: InvitationView): RenderedPage {
  return messagePage({
    status: 410,
    tone: 'warning',
    icon: 'clock',
    title: 'This invitation has expired',
    lead: html`The invitation for <strong class="email">${emailHtml(view.email)}</strong> was valid until <time datetime="${view.expiresAt}">${formatTime(view.expiresAt)}</time>.`,
    details: html`<p>Ask your administrator to reissue it: you will receive a new link by email.</p>`,
  });
}

export function alreadyAcceptedPage(view: InvitationView, loginUrl: string | undefined): RenderedPage {
  return messagePage({
    status: 409,
    tone: 'brand',
    icon: 'info',
    title: 'This invitation was already accepted',
    lead: html`The invitation for <strong class="email">${emailHtml(view.email)}</strong> has been used, and each link works only once.`,
    details: loginUrl
      ? html`<p>If you accepted it, your account is ready.</p><a class="button" href="${loginUrl}">Go to sign in</a>`
      : html`<p>If you accepted it, your account is ready. If you did not, tell your platform administrator.</p>`,
  });
}

export function busyPage(): RenderedPage {
  return messagePage({
    status: 409,
    tone: 'brand',
    icon: 'info',
    title: 'This invitation is being accepted',
    lead: 'It is being accepted in another window or tab right now.',
    details: html`<p>Give it a moment, then open the link again: it will say whether your account is ready.</p>`,
  });
}

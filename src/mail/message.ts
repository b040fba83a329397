// The invitation mail: what an invitation says, rendered through three templates
// (subject, HTML, plain text) that an operator may replace with their own.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RoleGrant, Scope } from '../api/types.ts';
import { checkTemplate, parseTemplate, renderTemplate, type Template, type TemplateContext } from './template.ts';
import { cleanText, escapeHtml, headerText } from './text.ts';
import { expiresInWords, utcDate } from './when.ts';

export interface InvitationMailInput {
  email: string;
  scope: Scope;
  tenant?: string;
  groups: string[];
  roles: RoleGrant[];
  link: string;
  expiresAt: Date;
  now: Date;
  /** Shown as the name of what the invitee joins, e.g. "Acme Cloud"; "the platform" when absent. */
  platformName?: string;
}

export interface InvitationMail {
  subject: string;
  html: string;
  text: string;
}

export interface MailTemplates {
  subject: Template;
  html: Template;
  text: Template;
}

export const TEMPLATE_FILES = { subject: 'invitation.subject.txt', html: 'invitation.html', text: 'invitation.txt' } as const;

export const BUILTIN_TEMPLATES_DIR = fileURLToPath(new URL('templates/', import.meta.url));

/**
 * The values a template can use. Everything is precomputed here (target, expiry words,
 * joined lists) because the template language deliberately has no expressions.
 */
export function invitationContext(input: InvitationMailInput): TemplateContext {
  // The link goes into an href: anything but http(s) (javascript:, data:) must never get there.
  if (!/^https?:\/\/[^\s\p{Cc}]+$/iu.test(input.link)) throw new Error('invitation link must be an http(s) URL');
  if (input.scope === 'Tenant' && !input.tenant) throw new Error('a Tenant-scope invitation needs a tenant');
  const tenant = input.scope === 'Tenant' ? (input.tenant ?? '') : '';
  const platformName = input.platformName ?? '';
  const platform = platformName || 'the platform';
  const roles = input.roles.map((role) => {
    const namespaces = role.namespaces ?? [];
    return {
      name: role.name,
      namespaces: namespaces.map((name) => ({ name })),
      namespacesText: namespaces.length ? namespaces.join(', ') : 'all namespaces',
    };
  });
  return {
    email: input.email,
    link: input.link,
    tenant,
    platformName,
    platform,
    target: tenant || platform,
    groups: input.groups.map((name) => ({ name })),
    groupsText: input.groups.join(', '),
    roles,
    grants: input.groups.length > 0 || roles.length > 0,
    expiresIn: expiresInWords(input.expiresAt, input.now),
    expiresAt: utcDate(input.expiresAt),
  };
}

export function renderInvitationMail(input: InvitationMailInput, templates: MailTemplates = builtinTemplates()): InvitationMail {
  const context = invitationContext(input);
  return {
    // Cleaned per value and then as a whole: the template's own text could hold a newline too.
    subject: headerText(renderTemplate(templates.subject, context, cleanText)),
    html: renderTemplate(templates.html, context, escapeHtml),
    text: renderTemplate(templates.text, context, cleanText),
  };
}

let builtins: MailTemplates | undefined;

function builtinTemplates(): MailTemplates {
  builtins ??= loadTemplates();
  return builtins;
}

// Exercises every name and branch: lists are non-empty, the tenant and platform are set.
const SAMPLE: InvitationMailInput = {
  email: 'jane.doe@example.com',
  scope: 'Tenant',
  tenant: 'acme',
  groups: ['developers'],
  roles: [{ name: 'developer', namespaces: ['acme.team'] }],
  link: 'https://usher.example.com/accept/sample-token',
  expiresAt: new Date(Date.UTC(2030, 0, 8)),
  now: new Date(Date.UTC(2030, 0, 1)),
  platformName: 'Example Platform',
};

/**
 * Reads the three templates from `dir` (the built-in ones by default) and checks them at
 * start-up, so a typo in an operator's template stops Usher with the file and line named
 * instead of failing every invitation later.
 */
export function loadTemplates(dir: string = BUILTIN_TEMPLATES_DIR): MailTemplates {
  const read = (file: string): Template => {
    const path = join(dir, file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      const files = Object.values(TEMPLATE_FILES).join(', ');
      throw new Error(`mail template ${path} cannot be read (a templates folder needs ${files})`, { cause: err });
    }
    return parseTemplate(text, path);
  };
  const templates: MailTemplates = {
    subject: read(TEMPLATE_FILES.subject),
    html: read(TEMPLATE_FILES.html),
    text: read(TEMPLATE_FILES.text),
  };
  const context = invitationContext(SAMPLE);
  for (const template of [templates.subject, templates.html, templates.text]) checkTemplate(template, context);
  const sample = renderInvitationMail(SAMPLE, templates);
  if (!sample.subject) throw new Error(`mail template ${templates.subject.source} renders an empty subject`);
  // A mail without the link is useless; catch a template that forgot it.
  if (!sample.html.includes(`href="${escapeHtml(SAMPLE.link)}"`)) {
    throw new Error(`mail template ${templates.html.source} never links to {{link}} (expected href="{{link}}")`);
  }
  if (!sample.text.includes(SAMPLE.link)) throw new Error(`mail template ${templates.text.source} never shows {{link}}`);
  return templates;
}

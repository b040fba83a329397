// A deliberately tiny template language for the invitation mail, so operators can
// restyle it without Usher running their code: `{{name}}`, `{{#if name}}…{{else}}…{{/if}}`
// and `{{#each list}}…{{/each}}`. No expressions, no helpers, no partials: nothing in a
// template can reach beyond the values Usher hands it. Lookups only see own properties
// of the context, so `{{constructor}}` or `{{__proto__}}` are unknown names, not a way in.

export type TemplateValue = string | boolean | readonly TemplateContext[];
export interface TemplateContext {
  readonly [name: string]: TemplateValue;
}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'var'; name: string; line: number }
  | { kind: 'if'; name: string; line: number; then: Node[]; otherwise: Node[] }
  | { kind: 'each'; name: string; line: number; body: Node[] };

export interface Template {
  /** Shown in error messages: the file the template came from. */
  readonly source: string;
  readonly nodes: readonly Node[];
}

/** What a value becomes when it lands in the output (HTML-escaping for .html, and so on). */
export type Escape = (value: string) => string;

export class TemplateError extends Error {
  constructor(source: string, line: number, problem: string) {
    super(`${source}:${line}: ${problem}`);
    this.name = 'TemplateError';
  }
}

// A tag cannot contain braces, so a stray `{{` is reported as unclosed rather than
// swallowing the text up to the next tag.
const TAG = /\{\{([^{}]*)\}\}/g;
const NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const BLOCK = /^([#/])(if|each)(?:\s+(\S+))?$/;

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

export function parseTemplate(text: string, source: string): Template {
  const root: Node[] = [];
  // Open blocks, innermost last; `into` is where their children currently go.
  const stack: { node: Extract<Node, { kind: 'if' | 'each' }>; into: Node[]; inElse: boolean }[] = [];
  let into = root;
  let pos = 0;
  const fail = (offset: number, problem: string): never => {
    throw new TemplateError(source, lineAt(text, offset), problem);
  };
  const pushText = (chunk: string): void => {
    if (chunk.includes('{{')) fail(pos + chunk.indexOf('{{'), 'unclosed "{{" (missing "}}")');
    if (chunk) into.push({ kind: 'text', text: chunk });
  };

  for (const match of text.matchAll(TAG)) {
    const start = match.index;
    let end = start + match[0].length;
    const tag = (match[1] ?? '').trim();
    const line = lineAt(text, start);
    // Handlebars' {{{raw}}} would be a way around escaping; say so instead of half-matching it.
    if (text[start - 1] === '{' || text[end] === '}') fail(start, `triple braces are not supported, every value is escaped: "{{${tag}}}"`);
    const block = BLOCK.exec(tag);
    let before = text.slice(pos, start);
    // A block tag alone on its line takes the line with it, so that the plain-text
    // template can put `{{#each roles}}` on a line of its own without leaving blank lines.
    if (block || tag === 'else') {
      const lineStart = before.lastIndexOf('\n') + 1;
      const newline = text.indexOf('\n', end);
      const lineEnd = newline === -1 ? text.length : newline + 1;
      if (!before.slice(lineStart).trim() && !text.slice(end, lineEnd).trim()) {
        before = before.slice(0, lineStart);
        end = lineEnd;
      }
    }
    pushText(before);
    pos = end;

    if (tag === 'else') {
      const open = stack.at(-1);
      if (open?.node.kind !== 'if' || open.inElse) fail(start, '{{else}} outside an {{#if}}');
      else {
        open.inElse = true;
        into = open.node.otherwise;
      }
    } else if (block) {
      const [, sigil, kind, name] = block;
      if (sigil === '#') {
        if (!name || !NAME.test(name)) fail(start, `{{#${kind ?? ''}}} needs a name, got "{{${tag}}}"`);
        const node: Extract<Node, { kind: 'if' | 'each' }> =
          kind === 'if' ? { kind: 'if', name: name ?? '', line, then: [], otherwise: [] } : { kind: 'each', name: name ?? '', line, body: [] };
        into.push(node);
        stack.push({ node, into, inElse: false });
        into = node.kind === 'if' ? node.then : node.body;
      } else {
        const open = stack.pop();
        if (name) fail(start, `{{/${kind ?? ''}}} takes no name`);
        if (!open) fail(start, `{{/${kind ?? ''}}} without a matching {{#${kind ?? ''}}}`);
        else if (open.node.kind !== kind) {
          fail(start, `{{/${kind ?? ''}}} closes {{#${open.node.kind} ${open.node.name}}} from line ${open.node.line}`);
        } else into = open.into;
      }
    } else if (NAME.test(tag)) {
      into.push({ kind: 'var', name: tag, line });
    } else {
      fail(start, `unsupported tag "{{${tag}}}"`);
    }
  }
  pushText(text.slice(pos));
  const open = stack.at(-1);
  if (open) fail(text.length, `unclosed {{#${open.node.kind} ${open.node.name}}} from line ${open.node.line}`);
  return { source, nodes: root };
}

/** Nested {{#each}} scopes: an item's own names first, then the enclosing ones. */
interface Scope {
  vars: TemplateContext;
  parent?: Scope;
}

function lookup(template: Template, scope: Scope, name: string, line: number): TemplateValue {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    if (Object.hasOwn(s.vars, name)) return s.vars[name] as TemplateValue;
  }
  throw new TemplateError(template.source, line, `unknown placeholder {{${name}}}`);
}

function expectText(template: Template, node: Node & { kind: 'var' }, value: TemplateValue): string {
  if (typeof value === 'string') return value;
  const use = Array.isArray(value) ? 'a list, use {{#each}}' : 'a yes/no value, use {{#if}}';
  throw new TemplateError(template.source, node.line, `{{${node.name}}} is ${use}`);
}

function expectList(template: Template, node: Node & { kind: 'each' }, value: TemplateValue): readonly TemplateContext[] {
  if (Array.isArray(value)) return value as readonly TemplateContext[];
  throw new TemplateError(template.source, node.line, `{{#each ${node.name}}} needs a list`);
}

function truthy(value: TemplateValue): boolean {
  return typeof value === 'string' || Array.isArray(value) ? value.length > 0 : value === true;
}

export function renderTemplate(template: Template, context: TemplateContext, escape: Escape): string {
  const out: string[] = [];
  const walk = (nodes: readonly Node[], scope: Scope): void => {
    for (const node of nodes) {
      if (node.kind === 'text') {
        out.push(node.text);
        continue;
      }
      const value = lookup(template, scope, node.name, node.line);
      if (node.kind === 'var') out.push(escape(expectText(template, node, value)));
      else if (node.kind === 'if') walk(truthy(value) ? node.then : node.otherwise, scope);
      else for (const item of expectList(template, node, value)) walk(node.body, { vars: item, parent: scope });
    }
  };
  walk(template.nodes, { vars: context });
  return out.join('');
}

/**
 * Checks every branch of a template against a sample context, so that a typo in an
 * {{#if}} branch the sample would not take still fails at start-up rather than in the
 * middle of sending. Lists in the sample must have at least one item to be checked inside.
 */
export function checkTemplate(template: Template, sample: TemplateContext): void {
  const walk = (nodes: readonly Node[], scope: Scope): void => {
    for (const node of nodes) {
      if (node.kind === 'text') continue;
      const value = lookup(template, scope, node.name, node.line);
      if (node.kind === 'var') expectText(template, node, value);
      else if (node.kind === 'if') {
        walk(node.then, scope);
        walk(node.otherwise, scope);
      } else {
        const first = expectList(template, node, value)[0];
        if (first) walk(node.body, { vars: first, parent: scope });
      }
    }
  };
  walk(template.nodes, { vars: sample });
}

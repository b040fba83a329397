// HTML built by a tagged template that escapes every interpolated value unless
// it is already markup built the same way. Escaping is the default, so a
// forgotten call cannot inject: invitation fields, names typed into the form
// and IdP claims all arrive here as plain strings.

import { escapeHtml } from '../runtime/html.ts';

export { escapeHtml };

/** Markup that is safe as it is: only `html` (and `raw`, for constants) make it. */
export class SafeHtml {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString(): string {
    return this.value;
  }
}

export type Interpolation = SafeHtml | string | number | boolean | null | undefined | readonly Interpolation[];

function render(value: Interpolation): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return (value as readonly Interpolation[]).map(render).join('');
  // false, null and undefined render nothing, so `${cond && html`…`}` works.
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: Interpolation[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '');
  });
  return new SafeHtml(out);
}

/** Trusted constant markup (never user input). */
export function raw(markup: string): SafeHtml {
  return new SafeHtml(markup);
}

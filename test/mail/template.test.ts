import { describe, expect, test } from 'vitest';
import { checkTemplate, parseTemplate, renderTemplate, TemplateError, type TemplateContext } from '../../src/mail/template.ts';

const identity = (value: string): string => value;
const render = (text: string, context: TemplateContext, escape = identity): string => renderTemplate(parseTemplate(text, 'test.txt'), context, escape);

describe('renderTemplate', () => {
  test('replaces {{name}} and passes every value through the escaper, never the template text', () => {
    const out = render('<b>{{a}}</b> and {{ b }}', { a: 'x<y', b: 'z' }, (v) => `[${v}]`);
    expect(out).toBe('<b>[x<y]</b> and [z]');
  });

  test('{{#if}} takes non-empty strings, non-empty lists and true; {{else}} the rest', () => {
    const tpl = '{{#if v}}yes{{else}}no{{/if}}';
    expect([render(tpl, { v: 'x' }), render(tpl, { v: '' })]).toEqual(['yes', 'no']);
    expect([render(tpl, { v: [{}] }), render(tpl, { v: [] })]).toEqual(['yes', 'no']);
    expect([render(tpl, { v: true }), render(tpl, { v: false })]).toEqual(['yes', 'no']);
  });

  test('{{#each}} repeats its body with the item’s names first, then the enclosing ones', () => {
    const context = {
      tenant: 'acme',
      roles: [
        { name: 'dev', namespaces: [{ name: 'a' }, { name: 'b' }] },
        { name: 'ops', namespaces: [] },
      ],
    };
    const out = render('{{#each roles}}{{name}}@{{tenant}}[{{#each namespaces}}{{name}};{{/each}}] {{/each}}', context);
    expect(out).toBe('dev@acme[a;b;] ops@acme[] ');
  });

  test('a block tag alone on its line takes the whole line, so text templates stay tidy', () => {
    const tpl = 'Roles:\n{{#each roles}}\n  - {{name}}\n{{/each}}\nEnd\n';
    expect(render(tpl, { roles: [{ name: 'a' }, { name: 'b' }] })).toBe('Roles:\n  - a\n  - b\nEnd\n');
    // Inline block tags keep their surroundings.
    expect(render('x {{#if v}}y{{/if}} z\n', { v: true })).toBe('x y z\n');
  });

  test('only own properties are visible: no way to the prototype', () => {
    for (const name of ['constructor', 'toString', 'hasOwnProperty']) {
      expect(() => render(`{{${name}}}`, {})).toThrow(`unknown placeholder {{${name}}}`);
    }
    // `__proto__` is not even a valid name.
    expect(() => render('{{__proto__}}', {})).toThrow('unsupported tag');
  });

  test('unknown placeholders are an error, naming the file and line', () => {
    expect(() => render('Hello\n{{tennant}}', { tenant: 'acme' })).toThrow('test.txt:2: unknown placeholder {{tennant}}');
  });

  test('using a list or a flag as text is an error, not "[object Object]" or "true"', () => {
    expect(() => render('{{roles}}', { roles: [] })).toThrow('{{roles}} is a list, use {{#each}}');
    expect(() => render('{{grants}}', { grants: true })).toThrow('{{grants}} is a yes/no value, use {{#if}}');
    expect(() => render('{{#each name}}{{/each}}', { name: 'x' })).toThrow('{{#each name}} needs a list');
  });

  test('substituted values are not themselves templates', () => {
    expect(render('{{a}}', { a: '{{b}}', b: 'no' })).toBe('{{b}}');
  });
});

describe('parseTemplate errors', () => {
  const cases: [string, string][] = [
    ['a\n{{#each roles}}\n{{name}}', 'test.txt:3: unclosed {{#each roles}} from line 2'],
    ['{{#if groups}}x{{/each}}', 'test.txt:1: {{/each}} closes {{#if groups}} from line 1'],
    ['x{{/if}}', '{{/if}} without a matching {{#if}}'],
    ['{{else}}', '{{else}} outside an {{#if}}'],
    ['{{#if a}}1{{else}}2{{else}}3{{/if}}', '{{else}} outside an {{#if}}'],
    ['{{#each}}{{/each}}', '{{#each}} needs a name'],
    ['{{/if x}}', 'takes no name'],
    ['hello {{name', 'test.txt:1: unclosed "{{" (missing "}}")'],
    ['{{name.first}}', 'unsupported tag "{{name.first}}"'],
    ['{{> partial}}', 'unsupported tag'],
    ['{{{raw}}}', 'triple braces are not supported'],
    ['{{#with x}}{{/with}}', 'unsupported tag "{{#with x}}"'],
  ];
  test.each(cases)('%j → %s', (text, message) => {
    expect(() => parseTemplate(text, 'test.txt')).toThrow(message);
    expect(() => parseTemplate(text, 'test.txt')).toThrow(TemplateError);
  });
});

describe('checkTemplate', () => {
  test('finds an unknown name in a branch the sample would not take', () => {
    const template = parseTemplate('{{#if on}}ok{{else}}{{typo}}{{/if}}', 'x.html');
    expect(renderTemplate(template, { on: true }, identity)).toBe('ok');
    expect(() => {
      checkTemplate(template, { on: true });
    }).toThrow('x.html:1: unknown placeholder {{typo}}');
  });

  test('looks inside lists using the sample’s first item', () => {
    const template = parseTemplate('{{#each roles}}{{nmae}}{{/each}}', 'x.html');
    expect(() => {
      checkTemplate(template, { roles: [{ name: 'dev' }] });
    }).toThrow('unknown placeholder {{nmae}}');
    expect(() => {
      checkTemplate(parseTemplate('{{#each roles}}{{name}}{{/each}}', 'x.html'), { roles: [{ name: 'dev' }] });
    }).not.toThrow();
  });
});

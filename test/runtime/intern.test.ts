// The string table of the caches: values come out exactly as they went in (so
// no reader or writer can tell), short ones are remembered once, the table
// stays bounded.
import { describe, expect, it } from 'vitest';
import { StringTable } from '../../src/runtime/intern.ts';

describe('StringTable', () => {
  it('leaves every value of an object as it was, in place, nested arrays and objects included', () => {
    const table = new StringTable();
    const obj = {
      apiVersion: 'usher.dev/v1alpha1',
      metadata: { name: 'a', finalizers: ['usher.dev/membership'], generation: 2, deletionTimestamp: undefined, created: new Date(0) },
      spec: { groups: ['devs', 'devs'], roles: [{ name: 'developer', namespaces: ['acme.web'] }], flag: true, nothing: null },
      status: { conditions: [{ type: 'Ready', message: 'x'.repeat(200) }] },
    };
    const copy = structuredClone(obj);
    expect(table.internAll(obj)).toBe(obj);
    expect(obj).toEqual(copy);
    expect(Object.keys(obj.metadata)).toEqual(Object.keys(copy.metadata));
    expect(obj.metadata.created).toBeInstanceOf(Date);
  });

  it('remembers each short string once and leaves long ones out', () => {
    const table = new StringTable({ maxLength: 10 });
    table.internAll({ a: 'same', b: 'same', c: ['same', 'other'], d: 'x'.repeat(11) });
    expect(table.size).toBe(2);
    expect(table.intern('same')).toBe('same');
    expect(table.size).toBe(2);
  });

  it('starts over when full, so unique values cost a bounded amount', () => {
    const table = new StringTable({ capacity: 3 });
    for (let i = 0; i < 10; i++) table.intern(`v${i}`);
    expect(table.size).toBeLessThanOrEqual(3);
    expect(table.intern('v9')).toBe('v9');
  });
});

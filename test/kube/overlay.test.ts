import { describe, expect, it } from 'vitest';
import { Overlay } from '../../src/kube/overlay.ts';

describe('Overlay (read-your-writes over an informer cache)', () => {
  it('serves our write until the informer shows that exact resourceVersion', () => {
    const overlay = new Overlay<{ v: number }>();
    overlay.wrote('ns/a', { v: 2 }, '20');
    expect(overlay.resolve('ns/a', { v: 1 })).toEqual({ v: 2 });
    overlay.observed('ns/a', '19'); // an older event still in flight
    expect(overlay.resolve('ns/a', { v: 1 })).toEqual({ v: 2 });
    overlay.observed('ns/a', '20');
    expect(overlay.resolve('ns/a', { v: 3 })).toEqual({ v: 3 });
    expect(overlay.size).toBe(0);
  });

  it('hides what we deleted until the informer sees the deletion', () => {
    const overlay = new Overlay<{ v: number }>();
    overlay.deleted('ns/a');
    expect(overlay.resolve('ns/a', { v: 1 })).toBeUndefined();
    overlay.observed('ns/a', '5');
    expect(overlay.resolve('ns/a', { v: 1 })).toBeUndefined();
    overlay.observed('ns/a', undefined);
    expect(overlay.resolve('ns/a', { v: 1 })).toEqual({ v: 1 });
  });

  it('lists pending writes, and forgets everything on a relist', () => {
    const overlay = new Overlay<{ v: number }>();
    overlay.wrote('ns/a', { v: 1 }, '1');
    overlay.deleted('ns/b');
    expect([...overlay.pending()]).toEqual([['ns/a', { v: 1 }], ['ns/b', undefined]]);
    overlay.clear();
    expect(overlay.resolve('ns/a', undefined)).toBeUndefined();
  });
});

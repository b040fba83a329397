import { describe, expect, it } from 'vitest';
import { Overlay } from '../../src/runtime/overlay.ts';

describe('Overlay (read-your-writes over an informer cache)', () => {
  const cache = new Map<string, string>();
  const overlay = (): Overlay<{ v: number }> => new Overlay((key) => cache.get(key));

  it('serves our write until the informer shows that exact resourceVersion', () => {
    const o = overlay();
    o.wrote('ns/a', { v: 2 }, '20');
    expect(o.resolve('ns/a', { v: 1 })).toEqual({ v: 2 });
    o.observed('ns/a', '19'); // an older event still in flight
    expect(o.resolve('ns/a', { v: 1 })).toEqual({ v: 2 });
    o.observed('ns/a', '20');
    expect(o.resolve('ns/a', { v: 3 })).toEqual({ v: 3 });
    expect(o.size).toBe(0);
  });

  it('stores nothing when the watch delivered our write before the API response did', () => {
    cache.set('ns/b', '30');
    const o = overlay();
    o.wrote('ns/b', { v: 1 }, '30');
    expect(o.size).toBe(0);
    expect(o.resolve('ns/b', { v: 9 })).toEqual({ v: 9 });
  });

  it('hides what we deleted until the informer sees the deletion', () => {
    cache.set('ns/c', '5');
    const o = overlay();
    o.deleted('ns/c');
    expect(o.resolve('ns/c', { v: 1 })).toBeUndefined();
    o.observed('ns/c', '5');
    expect(o.resolve('ns/c', { v: 1 })).toBeUndefined();
    o.observed('ns/c', undefined);
    expect(o.resolve('ns/c', { v: 1 })).toEqual({ v: 1 });
  });

  it('lets entries lapse, so a missed event cannot shadow the cache for good', () => {
    let now = 0;
    const o = new Overlay<{ v: number }>(() => undefined, { ttlMs: 1000, clock: () => now });
    o.wrote('ns/d', { v: 1 }, '1');
    expect([...o.pending()]).toEqual([['ns/d', { v: 1 }]]);
    now = 1001;
    expect(o.pending()).toEqual([]);
    expect(o.resolve('ns/d', { v: 7 })).toEqual({ v: 7 });
  });

  it('forgets everything on a relist', () => {
    const o = overlay();
    o.wrote('ns/e', { v: 1 }, '1');
    o.clear();
    expect(o.resolve('ns/e', undefined)).toBeUndefined();
  });

  it('on a relist forgets only what was written before the list was requested: a later write may be missing from it', () => {
    let now = 100;
    cache.delete('ns/f');
    const o = new Overlay<{ v: number }>((key) => cache.get(key), { clock: () => now });
    o.wrote('ns/f', { v: 1 }, '1');
    cache.set('ns/g', '3');
    o.deleted('ns/g');
    now = 200; // the list request leaves
    o.wrote('ns/h', { v: 2 }, '2');
    o.clear(200);
    expect(o.resolve('ns/f', { v: 0 })).toEqual({ v: 0 });
    expect(o.resolve('ns/g', { v: 3 })).toEqual({ v: 3 });
    expect(o.resolve('ns/h', undefined)).toEqual({ v: 2 });
    expect(o.size).toBe(1);
  });
});

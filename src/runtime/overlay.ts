// Read-your-writes on top of an informer cache. After Usher writes an object,
// its informer may not have seen the write yet; a reconcile that read the old
// copy would act twice (issue a second token, say). The overlay holds what we
// wrote until the informer delivers that exact resourceVersion (watch events
// arrive in order, so everything before it is older), or the object's deletion.
// resourceVersions are compared only for equality, as the API conventions require.
// A relist can skip over our version (the list already shows a later one), so
// the informer's owner calls clear() after each relist; entries also lapse after
// a while: a safety net, should an event never match, against shadowing the cache for good.

interface Entry<T> {
  /** undefined: we deleted it. */
  object: T | undefined;
  resourceVersion: string | undefined;
  at: number;
}

export class Overlay<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly cachedVersion: (key: string) => string | undefined;
  private readonly ttlMs: number;
  private readonly clock: () => number;

  /** @param cachedVersion the resourceVersion the informer holds for a key, if any. */
  constructor(cachedVersion: (key: string) => string | undefined, options: { ttlMs?: number; clock?: () => number } = {}) {
    this.cachedVersion = cachedVersion;
    this.ttlMs = options.ttlMs ?? 60_000;
    this.clock = options.clock ?? Date.now;
  }

  wrote(key: string, object: T, resourceVersion: string | undefined): void {
    // The watch event may have beaten the API response here: then the cache is already current.
    if (resourceVersion !== undefined && this.cachedVersion(key) === resourceVersion) {
      this.entries.delete(key);
      return;
    }
    this.entries.set(key, { object, resourceVersion, at: this.clock() });
  }

  deleted(key: string): void {
    if (this.cachedVersion(key) === undefined) {
      this.entries.delete(key);
      return;
    }
    this.entries.set(key, { object: undefined, resourceVersion: undefined, at: this.clock() });
  }

  /** The informer saw `key` at `resourceVersion` (undefined: saw it deleted). */
  observed(key: string, resourceVersion: string | undefined): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    if (resourceVersion === undefined ? entry.object === undefined : entry.resourceVersion === resourceVersion) this.entries.delete(key);
  }

  /**
   * A relist replaced the cache wholesale: it now holds at least what we wrote
   * before the list was requested. Drops what was written before `writtenBefore`
   * (on this overlay's clock; default: everything); later writes may be missing
   * from the list and stay until the watch shows them.
   */
  clear(writtenBefore = Infinity): void {
    for (const [key, entry] of this.entries) {
      if (entry.at < writtenBefore) this.entries.delete(key);
    }
  }

  /** The freshest copy: ours if we have one, else the cache's. */
  resolve(key: string, cached: T | undefined): T | undefined {
    const entry = this.entries.get(key);
    if (!entry) return cached;
    if (this.clock() - entry.at > this.ttlMs) {
      this.entries.delete(key);
      return cached;
    }
    return entry.object;
  }

  /** Keys we wrote or deleted and the cache may not show yet. */
  pending(): [string, T | undefined][] {
    const now = this.clock();
    return [...this.entries].filter(([, entry]) => now - entry.at <= this.ttlMs).map(([key, entry]) => [key, entry.object]);
  }

  get size(): number {
    return this.entries.size;
  }
}

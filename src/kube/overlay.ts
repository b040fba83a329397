// Read-your-writes on top of an informer cache. After Usher writes an object,
// its informer may not have seen the write yet; a reconcile that read the old
// copy would act twice (issue a second token, say). The overlay holds what we
// wrote until the informer delivers that exact resourceVersion (watch events
// arrive in order, so everything before it is older), or the object's deletion.
// resourceVersions are compared only for equality, as the API conventions require.

interface Entry<T> {
  /** undefined: we deleted it. */
  object: T | undefined;
  resourceVersion: string | undefined;
}

export class Overlay<T> {
  private readonly entries = new Map<string, Entry<T>>();

  wrote(key: string, object: T, resourceVersion: string | undefined): void {
    this.entries.set(key, { object, resourceVersion });
  }

  deleted(key: string): void {
    this.entries.set(key, { object: undefined, resourceVersion: undefined });
  }

  /** The informer saw `key` at `resourceVersion` (undefined: saw it deleted). */
  observed(key: string, resourceVersion: string | undefined): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    if (resourceVersion === undefined ? entry.object === undefined : entry.resourceVersion === resourceVersion) this.entries.delete(key);
  }

  /** A relist replaced the cache wholesale: it now holds at least what we wrote. */
  clear(): void {
    this.entries.clear();
  }

  /** The freshest copy: ours if we have one, else the cache's. */
  resolve(key: string, cached: T | undefined): T | undefined {
    const entry = this.entries.get(key);
    return entry ? entry.object : cached;
  }

  /** Keys we wrote or deleted and the cache may not show yet. */
  pending(): [string, T | undefined][] {
    return [...this.entries].map(([key, entry]) => [key, entry.object]);
  }

  get size(): number {
    return this.entries.size;
  }
}

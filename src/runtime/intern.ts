// One copy of each short string the caches hold many times over. JSON.parse
// makes a fresh string for every value, so 200,000 cached invitations carry
// 200,000 copies of "usher.dev/v1alpha1", of "Nothing in progress.", of each
// creation second's timestamp (four conditions of one invitation alone share
// one). Strings are immutable, so sharing them changes nothing any reader or
// writer can see; it only saves the memory (a heap snapshot at 10,000
// invitations: a third of the cached bytes were such repeats).
//
// The table is bounded: when it is full it starts over, so unique values
// (names, uids, hashes) cost a bounded amount and values common now (this
// second's timestamps) come in again.

export class StringTable {
  readonly #capacity: number;
  readonly #maxLength: number;
  #strings = new Map<string, string>();

  /** @param maxLength longer strings are left alone (links, messages with an address: mostly unique). */
  constructor(options: { capacity?: number; maxLength?: number } = {}) {
    this.#capacity = options.capacity ?? 10_000;
    this.#maxLength = options.maxLength ?? 48;
  }

  /** The table's copy of `value` (from now on, if it had none). */
  intern(value: string): string {
    if (value.length > this.#maxLength) return value;
    const known = this.#strings.get(value);
    if (known !== undefined) return known;
    if (this.#strings.size >= this.#capacity) this.#strings = new Map();
    this.#strings.set(value, value);
    return value;
  }

  /**
   * Replaces, in place, every short string in a plain JSON value (object keys
   * aside: V8 shares those already) by the table's copy; returns the value.
   */
  internAll<V>(value: V): V {
    if (typeof value === 'string') return this.intern(value) as V;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = this.internAll(value[i] as unknown);
    } else if (value !== null && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      for (const key of Object.keys(record)) record[key] = this.internAll(record[key]);
    }
    return value;
  }

  get size(): number {
    return this.#strings.size;
  }
}

/** The process's one table, shared by every cache (the page's and the controller's hold the same values). */
export const cachedStrings = new StringTable();

/**
 * A Map of at most `max` entries, for values that are costly to derive and recur from event to
 * event (an organisation's clusters, role and principal ids). When full, the oldest entry goes: a
 * stream of distinct (or hostile) values cycles the cache but never grows it. A hit is a plain
 * lookup; refreshing the entry as an LRU would (delete and re-insert) cost as much again.
 */
export class BoundedCache<K, V> {
  readonly #entries = new Map<K, V>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  get(key: K): V | undefined {
    return this.#entries.get(key);
  }

  set(key: K, value: V): void {
    if (this.#entries.size >= this.#max && !this.#entries.has(key)) {
      // A Map iterates in insertion order: the first key is the oldest.
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, value);
  }

  get size(): number {
    return this.#entries.size;
  }
}

/**
 * Serialises work on the same keys within one process. A batch takes all its keys at once and
 * waits only for earlier holders, so batches never deadlock.
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(keys: Iterable<string>, fn: () => Promise<T>): Promise<T> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const waits: Promise<void>[] = [];
    const held: string[] = [];
    for (const key of keys) {
      const tail = this.#tails.get(key);
      if (tail === mine) continue;
      if (tail) waits.push(tail);
      this.#tails.set(key, mine);
      held.push(key);
    }
    try {
      if (waits.length > 0) await Promise.all(waits);
      return await fn();
    } finally {
      release();
      for (const key of held) if (this.#tails.get(key) === mine) this.#tails.delete(key);
    }
  }
}

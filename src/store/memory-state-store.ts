import type { StateStore } from '../core/ports.ts';
import { holdsExpected, type RawConditionalResult } from './conditional-write.ts';
import { createKeyv } from './create-keyv.ts';
import { deserializeKeyvData } from './keyv-json.ts';
import { type ClaimsAndSets, KeyvStateStore } from './keyv-state-store.ts';

/** Claims taken between two sweeps of expired ones; keeps the map from growing without bound. */
const CLAIM_SWEEP_EVERY = 10_000;

class MemoryClaimsAndSets implements ClaimsAndSets {
  /** Claim key → expiry in epoch ms (Infinity: held until released). */
  #claims = new Map<string, number>();
  #sets = new Map<string, Set<string>>();
  #sinceSweep = 0;

  // Check and set happen in one synchronous step, so no other caller in the process can
  // interleave: that is all the atomicity a single process needs.
  #take(key: string, expires: number, now: number): boolean {
    const held = this.#claims.get(key);
    if (held !== undefined && held > now) return false;
    this.#claims.set(key, expires);
    return true;
  }

  #sweepSometimes(now: number, taken: number): void {
    this.#sinceSweep += taken;
    if (this.#sinceSweep < CLAIM_SWEEP_EVERY) return;
    this.#sinceSweep = 0;
    for (const [key, expires] of this.#claims) if (expires <= now) this.#claims.delete(key);
  }

  async claim(key: string, ttlMs: number | undefined): Promise<boolean> {
    const now = Date.now();
    this.#sweepSometimes(now, 1);
    return this.#take(key, ttlMs === undefined ? Number.POSITIVE_INFINITY : now + ttlMs, now);
  }

  async claimMany(keys: readonly string[], ttlMs: number | undefined): Promise<boolean[]> {
    const now = Date.now();
    this.#sweepSometimes(now, keys.length);
    const expires = ttlMs === undefined ? Number.POSITIVE_INFINITY : now + ttlMs;
    return keys.map((key) => this.#take(key, expires, now));
  }

  async releaseClaim(key: string): Promise<void> {
    this.#claims.delete(key);
  }

  async addMembers(set: string, members: readonly string[]): Promise<void> {
    let entry = this.#sets.get(set);
    if (!entry) {
      entry = new Set();
      this.#sets.set(set, entry);
    }
    for (const member of members) entry.add(member);
  }

  async addToSets(entries: ReadonlyArray<readonly [string, string]>): Promise<void> {
    for (const [set, member] of entries) await this.addMembers(set, [member]);
  }

  async removeMembers(set: string, members: readonly string[]): Promise<void> {
    const entry = this.#sets.get(set);
    if (!entry) return;
    for (const member of members) entry.delete(member);
    if (entry.size === 0) this.#sets.delete(set);
  }

  async members(set: string): Promise<string[]> {
    return [...(this.#sets.get(set) ?? [])];
  }

  async membersOfMany(sets: readonly string[]): Promise<string[][]> {
    return sets.map((set) => [...(this.#sets.get(set) ?? [])]);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.#claims.clear();
    this.#sets.clear();
  }
}

/**
 * A process-private state store for tests and one-off runs: values in a Keyv over a `Map`
 * (expired values go when read), claims and sets in maps. Every call opens a fresh, empty store.
 */
export function openMemoryStateStore(namespace: string): StateStore {
  /** Keyv's serialised envelopes by key. */
  const values = new Map<string, string>();
  return new KeyvStateStore(
    'memory',
    createKeyv(values, namespace),
    new MemoryClaimsAndSets(),
    `${namespace}:`,
    {
      sharedAcrossProcesses: false,
      acrossNetwork: false,
      // Checked and written in one synchronous step: nothing else in the process comes between.
      writeIfUnchanged: async (entries) => {
        const now = Date.now();
        const answers = entries.map(({ key, expect }): RawConditionalResult => {
          const text = values.get(key);
          const live = text !== undefined && !expiredBy(text, now) ? text : undefined;
          return holdsExpected(live, expect) ? true : { text: live };
        });
        entries.forEach(({ key, text }, i) => {
          if (answers[i] === true) values.set(key, text);
        });
        return answers;
      },
    },
  );
}

/** Whether the serialised envelope `text` carries an expiry that has passed. */
function expiredBy(text: string, now: number): boolean {
  const { expires } = deserializeKeyvData<{ expires?: number | null }>(text);
  return typeof expires === 'number' && expires < now;
}

import { mergeStoredPairs, type StoredPair } from './pair.ts';
import { expectedOver, type PairWrites, pairTtl } from './pair-writes.ts';
import { type ConditionalWrites, HOLD_AFTER, type StateEntry, type ValueWrites } from './ports.ts';
import { newRev } from './rev.ts';

/**
 * Rounds after which a write that still finds another record is written over it, on a store that
 * cannot hold keys (Redis). Each round lost is one another process won, so all of them go on;
 * only a pair that other processes write without pause gets this far (two processes writing one
 * pair back to back lose at most about 5 rounds in a row on Redis).
 */
export const MAX_MERGES = 20;

/**
 * Stores a batch's pairs (`writes`, each made over the record in `stored`) and `others` alike,
 * in one conditional write. A pair another process wrote since this batch read it is merged
 * with this batch's sightings (`mergeStoredPairs`) as the write found it, then written over that
 * record, until it lands: processes sharing the store add up their sightings instead of
 * overwriting them. Answers the records that landed so merged; adds the key of each pair as it
 * lands to `landed` (read when a later round fails).
 */
export async function storePairs(
  store: ConditionalWrites & ValueWrites,
  writes: PairWrites['writes'],
  others: readonly StateEntry[],
  stored: ReadonlyMap<string, StoredPair>,
  t: number,
  windowMs: number,
  landed: Set<string> = new Set(),
): Promise<StoredPair[]> {
  const merged: StoredPair[] = [];
  if (writes.length === 0 && others.length === 0) return merged;
  let pending: PairWrites['writes'] = writes;
  const bases = new Map(stored);
  let answers = await store.setManyIfUnchanged(others.length > 0 ? [...others, ...writes] : writes);
  if (others.length > 0) answers = answers.slice(others.length);
  for (let round = 1; ; round++) {
    const lost: Array<{ w: PairWrites['writes'][number]; now: StoredPair | undefined }> = [];
    pending.forEach((w, i) => {
      const answer = answers[i]!;
      if (answer !== true) lost.push({ w, now: answer.value as StoredPair | undefined });
      else {
        landed.add(w.key);
        if (round > 1 && w.expect !== 'absent') merged.push(w.value);
      }
    });
    if (lost.length === 0) return merged;
    pending = [];
    for (const { w, now } of lost) {
      const value = now ? mergeStoredPairs(now, w.value, bases.get(w.key), windowMs, t - windowMs) : w.value;
      const ttlMs = pairTtl(value, t, windowMs);
      if (ttlMs <= 0) continue;
      value.rev = newRev();
      if (now) bases.set(w.key, now);
      else bases.delete(w.key);
      pending.push({ key: w.key, value, ttlMs, expect: expectedOver(now) });
    }
    if (pending.length === 0) return merged;
    if (round >= HOLD_AFTER && store.updateManyHeld) {
      await writeHeld(store.updateManyHeld.bind(store), pending, bases, t, windowMs, merged, landed);
      return merged;
    }
    if (round >= MAX_MERGES) {
      await store.setMany(pending.map(({ key, value, ttlMs }) => ({ key, value, ttlMs })));
      for (const w of pending) {
        landed.add(w.key);
        if (w.expect !== 'absent') merged.push(w.value);
      }
      return merged;
    }
    answers = await store.setManyIfUnchanged(pending);
  }
}

/**
 * Writes `pending` (each made over the record in `bases`) with the keys held: each is merged with
 * what its key holds by then, which nobody changes before it is written. Adds the records so merged
 * over another one to `merged`, and the key of each pair written to `landed`.
 */
async function writeHeld(
  updateManyHeld: NonNullable<ConditionalWrites['updateManyHeld']>,
  pending: PairWrites['writes'],
  bases: ReadonlyMap<string, StoredPair>,
  t: number,
  windowMs: number,
  merged: StoredPair[],
  landed: Set<string>,
): Promise<void> {
  const byKey = new Map(pending.map((w) => [w.key, w]));
  // Per key, what was written (the update may be asked again for a key: its last answer counts),
  // and whether it was merged over another record.
  const written = new Map<string, { value: StoredPair; over: boolean }>();
  await updateManyHeld([...byKey.keys()], (key, current) => {
    const w = byKey.get(key)!;
    const now = current as StoredPair | undefined;
    const value = now ? mergeStoredPairs(now, w.value, bases.get(key), windowMs, t - windowMs) : w.value;
    const ttlMs = pairTtl(value, t, windowMs);
    if (ttlMs <= 0) {
      written.delete(key);
      return undefined;
    }
    value.rev = newRev();
    written.set(key, { value, over: now !== undefined });
    return { value, ttlMs };
  });
  for (const [key, { value, over }] of written) {
    landed.add(key);
    if (over) merged.push(value);
  }
}

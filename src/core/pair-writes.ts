import type { Candidate } from './candidate.ts';
import { detailsOf, identitySet, type StoredPair } from './pair.ts';
import { type ConditionalEntry, type Expected, REV } from './ports.ts';
import { newRev } from './rev.ts';

/**
 * What a write over `base` (the record read, or none) expects to find. A `rev` of a form this
 * release does not write (a later release's, after a rollback) cannot be checked: such a record is
 * written over as it is.
 */
export function expectedOver(base: StoredPair | undefined): Expected | undefined {
  if (base === undefined) return 'absent';
  if (base.rev === undefined) return { rev: null };
  return typeof base.rev === 'string' && REV.test(base.rev) ? { rev: base.rev } : undefined;
}

/** How long a pair's record lasts from `t`: a window after its last sighting or its alert, whichever is later. */
export const pairTtl = (pair: StoredPair, t: number, windowMs: number): number =>
  Math.max(pair.lastSeen, pair.alertedAt ?? 0) + windowMs - t;

/** What a batch's judgement hands to `pairWrites`. */
export interface PairWritesInput {
  /** The batch's working copies of its pairs, by pair key (stored ones and new ones). */
  pairs: ReadonlyMap<string, StoredPair>;
  /** The pairs this batch changes: only those are written back. */
  changed: ReadonlySet<string>;
  /** The pairs as read from the store, by pair key. */
  stored: ReadonlyMap<string, StoredPair>;
  /** The most recent live event of each pair in the batch. */
  latest: ReadonlyMap<string, Candidate>;
  /** The judging time, epoch ms. */
  t: number;
  windowMs: number;
}

/** The store writes of a batch's pairs. */
export interface PairWrites {
  /** The pairs to store, each for as long as it lasts, each over the record read. */
  writes: Array<ConditionalEntry & { value: StoredPair; ttlMs: number }>;
  /** `[identity set, IP]` members to add before the writes. */
  index: Array<[set: string, member: string]>;
  /** Whether a pair the store did not hold is among `writes`. */
  storesNewPair: boolean;
}

/** The writes that store the pairs a batch changed (the inputs are left as they are). */
export function pairWrites({ pairs, changed, stored, latest, t, windowMs }: PairWritesInput): PairWrites {
  const writes: PairWrites['writes'] = [];
  // New pairs are indexed under their identity before they are written, and existing ones again
  // every half window: the index never misses a stored pair for long, even after a crash
  // between the two writes or a pruning reader.
  const index: Array<[string, string]> = [];
  const reindexBefore = t - windowMs / 2;
  for (const [key, working] of pairs) {
    // A pair read for a duplicate or an old event only: rewriting it unchanged could put back
    // an older copy over another process's newer one.
    if (!changed.has(key)) continue;
    // A record lasts a window after its last sighting, and a window after its alert: a pair
    // alerted from an event that came late keeps its record as long as the alert's claim,
    // so that a sighting meanwhile updates that alert rather than being lost to the claim.
    const ttl = pairTtl(working, t, windowMs);
    // A sighting older than the window expires at once: nothing to keep.
    if (ttl <= 0) continue;
    const pair = { ...working };
    const before = stored.get(key);
    if (!before || (pair.indexedAt ?? 0) < reindexBefore) {
      index.push([identitySet(pair.appId), pair.ip]);
      pair.indexedAt = t;
    }
    // The details follow the most recent event (a late delivery leaves them as they are).
    const c = latest.get(key);
    if (c && (!before || c.at >= before.lastSeen || pair.last === undefined)) {
      pair.last = detailsOf(c.detection);
    }
    pair.rev = newRev();
    writes.push({ key, value: pair, ttlMs: ttl, expect: expectedOver(before) });
  }
  return { writes, index, storesNewPair: writes.some((w) => !stored.has(w.key)) };
}

import type { Claims } from './ports.ts';

/** How long a batch holds its pairs at most: a replica that stopped lets go of them by itself then. */
const HOLD_MS = 30_000;
/** How long a batch waits for pairs another replica holds before it goes on without them. */
const WAIT_MS = 5_000;
/** The longest pause between two tries. */
const MAX_PAUSE_MS = 40;

export interface PairLockOptions {
  holdMs?: number;
  waitMs?: number;
}

/** The claim that holds a pair's record for one replica's batch. */
export const pairLockKey = (pairKey: string): string => `lock:${pairKey}`;

/**
 * Runs `fn` while this replica holds `pairKeys` across the replicas sharing the store, so that a
 * pair's record is read, updated and written back by one replica at a time: two sightings of the
 * same pair on two replicas at once both count, and its last seen time never goes back. The pairs
 * are taken all at once or not at all: a batch that finds some held gives back what it took and
 * tries again after a short pause (two batches that each held part of the other's pairs would
 * otherwise wait for each other). One whose pairs stay held for `waitMs` (a replica that stalled
 * with them) goes on without them. Within one process, the engine's own lock orders batches first.
 */
export async function withPairsHeld<T>(
  store: Claims,
  pairKeys: readonly string[],
  fn: () => Promise<T>,
  opts: PairLockOptions = {},
): Promise<T> {
  const holdMs = opts.holdMs ?? HOLD_MS;
  const waitMs = opts.waitMs ?? WAIT_MS;
  const keys = pairKeys.map(pairLockKey);
  const giveUpAt = performance.now() + waitMs;
  let held: string[] = [];
  for (let attempt = 0; keys.length > 0; attempt++) {
    const won = await store.claimMany(keys, holdMs);
    held = keys.filter((_, i) => won[i]);
    if (held.length === keys.length) break;
    if (held.length > 0) await store.releaseClaims(held);
    held = [];
    if (performance.now() >= giveUpAt) break;
    const pause = Math.min(MAX_PAUSE_MS, 2 ** attempt) + Math.random() * 5;
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
  try {
    return await fn();
  } finally {
    // A release that fails leaves the claims to lapse after `holdMs`.
    if (held.length > 0) await store.releaseClaims(held).catch(() => undefined);
  }
}

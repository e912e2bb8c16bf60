import type { StateStore } from '../core/ports.ts';
import { withTimeout } from '../timeout.ts';
import { describeError, StoreError } from './store-error.ts';

/** Held for good from the first start on: a store that no longer holds it lost its data. */
const SENTINEL = 'meta:store-sentinel';
/** How long `/readyz` warns after the loss was seen. */
const LOSS_WARNING_MS = 24 * 3_600_000;
/** When the loss was seen (epoch ms), kept as long as the warning: a restart warns on. */
const LOST_AT = 'meta:store-lost-at';
/** Rewritten at each check (epoch ms of the check): a write that always changes a row. */
const PROBE = 'meta:write-probe';
const PROBE_TTL_MS = 24 * 3_600_000;

/** The store's check for `/readyz` (see `watchStore`). */
export interface StoreWatch {
  /**
   * Writes to the store; rejects when it refuses (`STORE_UNREACHABLE`, "refuses writes"), and
   * resolves with the warning to show when the store lost its data, if it did.
   */
  check(): Promise<string[]>;
}

/**
 * One claim without expiry, taken at start and again at each check, answers two questions.
 * - Does the store take writes, not only reads? A read-only database, a full disk, Redis out of
 *   memory under `noeviction` or a read-only PostgreSQL transaction all answer a ping and refuse
 *   every write. A claim held already changes no row, which a full disk lets pass (SQLite's upsert
 *   then writes nothing): a value rewritten at each check (`PROBE`) is refused like ingest's writes.
 * - Did the store lose its data under the running service (a Redis restarted without persistence,
 *   a database emptied)? Every pair is then new again, and the allowlist and undelivered alerts
 *   are gone, without a word. Finding the claim free again says so: in the log once (`onLoss`),
 *   and in `/readyz` warnings for a day, also after a restart (the time is kept in the store).
 * The start fails when the first claim is refused, or when the first claim and read do not answer
 * within `startWithinMs` (a PostgreSQL table locked by another session would otherwise hold the
 * start, silently, for as long as the lock lasts).
 */
export async function watchStore(
  store: StateStore,
  onLoss: (message: string) => void,
  now: () => number = Date.now,
  startWithinMs = 20_000,
): Promise<StoreWatch> {
  /**
   * Rewrites the probe, then claims the sentinel: true when it was free (the store lost its data).
   * A refused write leaves the sentinel as it was, for the next check to find.
   */
  const claimSentinel = async () => {
    try {
      await store.set(PROBE, now(), PROBE_TTL_MS);
      return await store.claim(SENTINEL);
    } catch (err) {
      throw new StoreError(
        'STORE_UNREACHABLE',
        `the ${store.kind} store refuses writes: ${describeError(err)}`,
      );
    }
  };
  const first = (async () => {
    await claimSentinel();
    return store.get<unknown>(LOST_AT);
  })();
  first.catch(() => undefined);
  let recorded: unknown;
  try {
    recorded = await withTimeout(first, startWithinMs, `the ${store.kind} store`);
  } catch (err) {
    if (err instanceof StoreError) throw err;
    throw new StoreError(
      'STORE_UNREACHABLE',
      `${describeError(err)} at start (a lock held on its tables by another session, or a server that stalls)`,
    );
  }
  let lostAt: number | undefined = typeof recorded === 'number' ? recorded : undefined;
  let readAt = now();
  return {
    async check() {
      if (await claimSentinel()) {
        lostAt = now();
        readAt = lostAt;
        onLoss(lossText(store.kind, lostAt));
        await store.set(LOST_AT, lostAt, LOSS_WARNING_MS).catch(() => undefined);
      } else if (now() - readAt >= LOST_AT_READ_MS) {
        // Another replica may have found the loss (and taken the sentinel again) first: each
        // replica warns of it, and says it once in its own log.
        readAt = now();
        const stored = await store.get<unknown>(LOST_AT).catch(() => undefined);
        if (typeof stored === 'number' && stored > (lostAt ?? Number.NEGATIVE_INFINITY)) {
          lostAt = stored;
          onLoss(lossText(store.kind, lostAt));
        }
      }
      return lostAt !== undefined && now() - lostAt < LOSS_WARNING_MS ? [lossText(store.kind, lostAt)] : [];
    },
  };
}

/** How often a check reads again when the loss was last seen (by another replica, say). */
const LOST_AT_READ_MS = 30_000;

const lossText = (kind: string, at: number) =>
  `the ${kind} store lost its data while the service ran (noticed ${new Date(at).toISOString()}: restarted without persistence, or emptied): the history, allowlist entries and undelivered alerts from before are gone, so known pairs alert again`;

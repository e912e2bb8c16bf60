import { randomUUID } from 'node:crypto';
import type { StateStore } from '../core/ports.ts';
import { describeError, StoreError } from './store-error.ts';

/**
 * Checks that the store takes writes, not only reads: a read-only database, a full disk, Redis out
 * of memory under `noeviction` or a read-only PostgreSQL transaction all answer a ping and refuse
 * every write. Takes a claim of its own (which expires by itself within seconds) and gives it back.
 */
export async function probeWrite(store: StateStore): Promise<void> {
  const key = `write-probe:${randomUUID()}`;
  try {
    await store.claim(key, 10_000);
  } catch (err) {
    throw new StoreError(
      'STORE_UNREACHABLE',
      `the ${store.kind} store refuses writes: ${describeError(err)}`,
    );
  }
  // The claim expires by itself: a failure to give it back says nothing new.
  await store.releaseClaim(key).catch(() => undefined);
}

/** Held for good from the first start on: a store that no longer holds it lost its data. */
const SENTINEL = 'meta:store-sentinel';
/** How long `/readyz` warns after the loss was seen. */
const LOSS_WARNING_MS = 24 * 3_600_000;

/** Notices a store that lost its data while the service ran (see `watchForDataLoss`). */
export interface DataLossWatch {
  /** Looks again; returns the warning to show, if any. */
  check(): Promise<string[]>;
}

/**
 * A store can lose everything under a running service (a Redis restarted without persistence, a
 * database emptied) and go on answering: every pair is then new again, and the allowlist and
 * undelivered alerts are gone, without a word. A claim without expiry, taken at start, marks the
 * store; finding it gone again says so, in the log once and in `/readyz` warnings for a day.
 */
export async function watchForDataLoss(
  store: StateStore,
  onLoss: (message: string) => void,
  now: () => number = Date.now,
): Promise<DataLossWatch> {
  await store.claim(SENTINEL);
  let lostAt: number | undefined;
  return {
    async check() {
      if (await store.claim(SENTINEL)) {
        lostAt = now();
        onLoss(lossText(store.kind, lostAt));
      }
      return lostAt !== undefined && now() - lostAt < LOSS_WARNING_MS ? [lossText(store.kind, lostAt)] : [];
    },
  };
}

const lossText = (kind: string, at: number) =>
  `the ${kind} store lost its data while the service ran (noticed ${new Date(at).toISOString()}: restarted without persistence, or emptied): the history, allowlist entries and undelivered alerts from before are gone, so known pairs alert again`;

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

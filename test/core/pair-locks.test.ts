import { describe, expect, it } from 'vitest';
import { pairLockKey, withPairsHeld } from '../../src/core/pair-locks.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';

describe('withPairsHeld: a batch holds its pairs across the processes sharing a store', () => {
  it('holds every pair while it runs and gives them back after, also when it fails', async () => {
    const store = await openStateStore('memory://');
    await withPairsHeld(store, ['pair:a', 'pair:b'], async () => {
      expect(await store.claimMany([pairLockKey('pair:a'), pairLockKey('pair:b')], 1000)).toEqual([
        false,
        false,
      ]);
    });
    await expect(
      withPairsHeld(store, ['pair:a'], async () => {
        throw new Error('the batch failed');
      }),
    ).rejects.toThrow('the batch failed');
    expect(await store.claimMany([pairLockKey('pair:a'), pairLockKey('pair:b')], 1000)).toEqual([true, true]);
    await store.close();
  });

  it('waits for a pair another holder has, taking none meanwhile, and runs once it is given back', async () => {
    const store = await openStateStore('memory://');
    expect(await store.claim(pairLockKey('pair:b'), 60_000)).toBe(true);
    const order: string[] = [];
    const running = withPairsHeld(store, ['pair:a', 'pair:b'], async () => {
      order.push('batch');
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    // While it waits it holds nothing: another batch may take `pair:a` meanwhile.
    expect(await store.claim(pairLockKey('pair:a'), 60_000)).toBe(true);
    await store.releaseClaim(pairLockKey('pair:a'));
    order.push('other holder done');
    await store.releaseClaim(pairLockKey('pair:b'));
    await running;
    expect(order).toEqual(['other holder done', 'batch']);
    await store.close();
  });

  it('goes on without pairs a stalled holder keeps past the wait', async () => {
    const store = await openStateStore('memory://');
    await store.claim(pairLockKey('pair:a'), 60_000);
    let ran = false;
    await withPairsHeld(
      store,
      ['pair:a'],
      async () => {
        ran = true;
      },
      { waitMs: 100 },
    );
    expect(ran).toBe(true);
    // What the stalled holder has stays its own.
    expect(await store.claim(pairLockKey('pair:a'), 1000)).toBe(false);
    await store.close();
  });
});

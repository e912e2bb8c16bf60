import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { StoredPair } from '../../src/core/pair.ts';
import { expectedOver } from '../../src/core/pair-writes.ts';
import { type ConditionalEntry, HOLD_AFTER, type StateStore } from '../../src/core/ports.ts';
import { newRev } from '../../src/core/rev.ts';
import { MAX_MERGES, storePairs } from '../../src/core/store-pairs.ts';
import { openMemoryStateStore } from '../../src/store/memory-state-store.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { describeWithService, uniqueNamespace } from '../store/helpers.ts';
import { DAY, NOW, WINDOW } from '../support/candidates.ts';

const pair = (over: Partial<StoredPair> = {}): StoredPair => ({
  appId: 'app',
  ip: '203.0.113.7',
  firstSeen: NOW - DAY,
  lastSeen: NOW - DAY,
  count: 1,
  spans: [[NOW - DAY, NOW - DAY]],
  ...over,
});

/** The write a batch makes of `value` over `base`. */
const writeOf = (key: string, value: StoredPair, base: StoredPair | undefined) => ({
  key,
  value: { ...value, rev: newRev() },
  ttlMs: WINDOW,
  expect: expectedOver(base),
});

describe('storePairs: a batch writes its pairs over what it read, merging what others wrote since', () => {
  it('writes the history mark with the pairs, and merges a pair another process wrote since it was read', async () => {
    const store = openMemoryStateStore('sp');
    const base = pair({ rev: 'r0' });
    await store.set('p', base);
    // Another process adds two sightings meanwhile.
    await store.set(
      'p',
      pair({ count: 3, lastSeen: NOW - 1000, spans: [[NOW - DAY, NOW - 1000]], rev: 'r1' }),
    );
    const mine = pair({ count: 2, lastSeen: NOW - 2000, spans: [[NOW - DAY, NOW - 2000]] });
    await storePairs(
      store,
      [writeOf('p', mine, base)],
      [{ key: 'mark', value: true }],
      new Map([['p', base]]),
      NOW,
      WINDOW,
    );
    expect(await store.get('mark')).toBe(true);
    expect(await store.get<StoredPair>('p')).toMatchObject({ count: 4, lastSeen: NOW - 1000 });
    await store.close();
  });

  it('writes over a record whose rev is of a form this release cannot check, rather than refuse the batch', async () => {
    const store = openMemoryStateStore('sp');
    const base = pair({ rev: 'a later release\'s "rev"' });
    await store.set('p', base);
    expect(expectedOver(base)).toBeUndefined();
    await storePairs(
      store,
      [writeOf('p', pair({ count: 2 }), base)],
      [],
      new Map([['p', base]]),
      NOW,
      WINDOW,
    );
    expect(await store.get<StoredPair>('p')).toMatchObject({
      count: 2,
      rev: expect.stringMatching(/^[\w.-]+$/),
    });
    await store.close();
  });

  it(`on a store that cannot hold its keys, writes over the record it finds after ${MAX_MERGES} rounds lost to writers that never pause, and keeps nothing a window old`, async () => {
    const store = openMemoryStateStore('sp');
    let rounds = 0;
    const written: ConditionalEntry[][] = [];
    const busy = new Proxy(store, {
      get: (target, name) => {
        if (name === 'setManyIfUnchanged') {
          return async (entries: readonly ConditionalEntry[]) => {
            rounds++;
            // Another process wrote each pair again just before: one more sighting each time.
            return entries.map((e) =>
              e.key === 'gone'
                ? { value: undefined }
                : { value: pair({ count: 10 + rounds, rev: `other-${rounds}` }) },
            );
          };
        }
        if (name === 'setMany') {
          return async (entries: ConditionalEntry[]) => {
            written.push(entries);
            return target.setMany(entries);
          };
        }
        const value = Reflect.get(target, name, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as StateStore;
    const base = pair({ rev: 'r0' });
    // `gone`: the store holds none (the fake says so each round); this batch's own record is a
    // window old by now: there is nothing to write.
    const stale = pair({
      firstSeen: NOW - WINDOW - DAY,
      lastSeen: NOW - WINDOW,
      spans: [[NOW - WINDOW, NOW - WINDOW]],
    });
    await storePairs(
      busy,
      [writeOf('p', pair({ count: 2 }), base), writeOf('gone', stale, undefined)],
      [],
      new Map([['p', base]]),
      NOW,
      WINDOW,
    );
    expect(rounds).toBe(MAX_MERGES);
    expect(written).toHaveLength(1);
    expect(written[0]!.map((e) => e.key)).toEqual(['p']);
    // The other's last record (10 + rounds sightings) and this batch's one.
    expect(await store.get<StoredPair>('p')).toMatchObject({ count: 10 + MAX_MERGES + 1 });
    await store.close();
  });
});

/**
 * A batch that keeps losing to another replica that writes its pair just before each of its
 * conditional writes, on a store that can hold keys (`url()` names it).
 */
function heldAfterLosses(url: () => string) {
  it(`merges with the pair held after ${HOLD_AFTER} rounds lost, and loses none of either writer's sightings`, async () => {
    const namespace = uniqueNamespace('sp-held');
    const store = await openStateStore(url(), { namespace });
    const other = await openStateStore(url(), { namespace });
    try {
      const base = pair({ rev: 'r0' });
      await store.set('p', base);
      let rounds = 0;
      let overwrites = 0;
      // Another replica adds a sighting of the pair just before each conditional write.
      const busy = new Proxy(store, {
        get: (target, name) => {
          if (name === 'setManyIfUnchanged') {
            return async (entries: readonly ConditionalEntry[]) => {
              rounds++;
              await other.set('p', pair({ count: 1 + rounds, rev: `other-${rounds}` }));
              return target.setManyIfUnchanged(entries);
            };
          }
          if (name === 'setMany') overwrites++;
          const value = Reflect.get(target, name, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      }) as StateStore;
      const keys = new Set<string>();
      const merged = await storePairs(
        busy,
        [writeOf('p', pair({ count: 2, lastSeen: NOW - 1000 }), base)],
        [],
        new Map([['p', base]]),
        NOW,
        WINDOW,
        keys,
      );
      expect(rounds).toBe(HOLD_AFTER);
      expect(overwrites).toBe(0);
      // The other's sightings (one per round) and this batch's one.
      const stored = await store.get<StoredPair>('p');
      expect(stored).toMatchObject({ count: 1 + HOLD_AFTER + 1, lastSeen: NOW - 1000 });
      expect(merged).toEqual([stored]);
      expect([...keys]).toEqual(['p']);
    } finally {
      await Promise.all([store.close(), other.close()]);
    }
  });
}

describe('storePairs on a SQLite file two stores share: a batch that keeps losing to a writer that never pauses', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'arc-store-pairs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  heldAfterLosses(() => `sqlite://${path.join(dir, 'shared.db')}`);
});

describeWithService(
  'storePairs on PostgreSQL: a batch that keeps losing to a writer that never pauses',
  'TEST_POSTGRES_URL',
  (url) => heldAfterLosses(() => url),
);

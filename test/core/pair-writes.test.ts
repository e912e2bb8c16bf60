import { describe, expect, it } from 'vitest';
import { detailsOf, identitySet, type StoredPair } from '../../src/core/pair.ts';
import { pairWrites } from '../../src/core/pair-writes.ts';
import { candidate, DAY, NOW, WINDOW } from '../support/candidates.ts';

const pair = (over: Partial<StoredPair> = {}): StoredPair => ({
  appId: 'app',
  ip: '203.0.113.7',
  firstSeen: NOW - 3 * DAY,
  lastSeen: NOW - DAY,
  count: 1,
  spans: [],
  ...over,
});

describe('pairWrites: what a batch stores of its pairs', () => {
  it('writes only changed pairs, each for a window after its last sighting or alert, indexing new ones', () => {
    const fresh = pair({ lastSeen: NOW - DAY, alertedAt: NOW });
    const untouched = pair({ ip: '198.51.100.1' });
    const c = candidate({ agoMs: DAY });
    const { writes, index, storesNewPair } = pairWrites({
      pairs: new Map([
        ['new', fresh],
        ['old', untouched],
      ]),
      changed: new Set(['new']),
      stored: new Map([['old', untouched]]),
      latest: new Map([['new', c]]),
      t: NOW,
      windowMs: WINDOW,
    });
    expect(writes.map((w) => [w.key, w.ttlMs])).toEqual([['new', WINDOW]]);
    expect(writes[0]?.value).toMatchObject({ indexedAt: NOW, last: expect.any(Object) });
    expect(index).toEqual([[identitySet('app'), '203.0.113.7']]);
    expect(storesNewPair).toBe(true);
    expect(fresh.indexedAt).toBeUndefined();
  });

  it('re-indexes a stored pair every half window; keeps its details for a late event; drops one past the window', () => {
    const kept = detailsOf(candidate({ agoMs: DAY }).detection);
    const stored = pair({ indexedAt: NOW - WINDOW / 2 - 1, last: kept });
    const late = candidate({ agoMs: 2 * DAY });
    const expired = pair({ ip: '198.51.100.2', lastSeen: NOW - WINDOW });
    const { writes, index, storesNewPair } = pairWrites({
      pairs: new Map([
        ['p', { ...stored, count: 2 }],
        ['x', expired],
      ]),
      changed: new Set(['p', 'x']),
      stored: new Map([
        ['p', stored],
        ['x', expired],
      ]),
      latest: new Map([['p', late]]),
      t: NOW,
      windowMs: WINDOW,
    });
    expect(writes.map((w) => w.key)).toEqual(['p']);
    expect(writes[0]?.value).toMatchObject({ count: 2, indexedAt: NOW, last: kept });
    expect(index).toHaveLength(1);
    expect(storesNewPair).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import {
  addSighting,
  hasSightingNear,
  mergeSpans,
  mergeStoredPairs,
  recordSighting,
  type StoredPair,
} from '../../src/core/pair.ts';

/** The rule as stated: some sighting lies within the window of t. */
const bruteForce = (times: number[], t: number, w: number) => times.some((s) => Math.abs(s - t) <= w);

describe('pair sightings: bucketed spans answer the window question exactly', () => {
  it('agrees with a brute-force check over random sighting histories', () => {
    const w = 7 * 86_400_000;
    let seed = 42;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 300; round++) {
      const times: number[] = [];
      let spans: Array<[number, number]> = [];
      const n = 1 + Math.floor(rand() * 30);
      for (let i = 0; i < n; i++) {
        const t = Math.floor(rand() * 40 * 86_400_000);
        times.push(t);
        spans =
          i % 2 === 0
            ? addSighting(spans, t, w, Number.NEGATIVE_INFINITY)
            : recordSighting(spans, t, w, Number.NEGATIVE_INFINITY);
      }
      expect(spans.length).toBeLessThanOrEqual(Math.ceil((40 * 86_400_000) / (w / 28)) + 1);
      for (let probe = 0; probe < 50; probe++) {
        const t = Math.floor(rand() * 50 * 86_400_000) - 5 * 86_400_000;
        expect(hasSightingNear(spans, t, w)).toBe(bruteForce(times, t, w));
      }
    }
  });

  it('a sighting exactly a window before or after t lies within the window of t; a millisecond further, not', () => {
    const w = 28_000;
    const spans: Array<[number, number]> = [[100_000, 105_000]];
    expect(hasSightingNear(spans, 100_000 - w, w)).toBe(true);
    expect(hasSightingNear(spans, 105_000 + w, w)).toBe(true);
    expect(hasSightingNear(spans, 100_000 - w - 1, w)).toBe(false);
    expect(hasSightingNear(spans, 105_000 + w + 1, w)).toBe(false);
  });

  it('keeps spans sorted and drops those that ended before the horizon (one that ended at it stays)', () => {
    const w = 28_000;
    let spans = addSighting([], 5_000, w, 0);
    spans = addSighting(spans, 1_000, w, 0);
    spans = addSighting(spans, 1_500, w, 0);
    expect(spans).toEqual([
      [1_000, 1_500],
      [5_000, 5_000],
    ]);
    expect(addSighting(spans, 9_000, w, 2_000)).toEqual([
      [5_000, 5_000],
      [9_000, 9_000],
    ]);
    // A span that ended exactly at the horizon is still within the window of now: it stays.
    expect(addSighting(spans, 9_000, w, 1_500)).toEqual([
      [1_000, 1_500],
      [5_000, 5_000],
      [9_000, 9_000],
    ]);
  });
});

describe('merging two records of one pair (two processes wrote it)', () => {
  const w = 7 * 86_400_000;
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };

  it('answers the window question for the sightings of both, as one list of spans', () => {
    for (let round = 0; round < 200; round++) {
      const horizon = 10 * 86_400_000;
      const mine: number[] = [];
      const theirs: number[] = [];
      let a: Array<[number, number]> = [];
      let b: Array<[number, number]> = [];
      for (let i = 0; i < 20; i++) {
        const t = Math.floor(rand() * 40 * 86_400_000);
        if (rand() < 0.5) {
          mine.push(t);
          a = addSighting(a, t, w, Number.NEGATIVE_INFINITY);
        } else {
          theirs.push(t);
          b = addSighting(b, t, w, Number.NEGATIVE_INFINITY);
        }
      }
      const merged = mergeSpans(a, b, w, horizon);
      const kept = [...mine, ...theirs];
      // One span per bucket, in order, none ended before the horizon.
      expect(merged.map(([lo]) => Math.floor(lo / Math.floor(w / 28)))).toEqual(
        [...new Set(merged.map(([lo]) => Math.floor(lo / Math.floor(w / 28))))].sort((x, y) => x - y),
      );
      expect(merged.every(([, hi]) => hi >= horizon)).toBe(true);
      for (let probe = 0; probe < 40; probe++) {
        const t = horizon + w + Math.floor(rand() * 40 * 86_400_000);
        expect(hasSightingNear(merged, t, w)).toBe(kept.some((s) => Math.abs(s - t) <= w));
      }
    }
  });

  const record = (over: Partial<StoredPair>): StoredPair => ({
    appId: 'app',
    ip: '203.0.113.7',
    firstSeen: 1000,
    lastSeen: 1000,
    count: 1,
    spans: [[1000, 1000]],
    ...over,
  });

  it('adds what this write added to what the other holds, and keeps the earlier first and the later last sighting', () => {
    const base = record({ count: 4, rev: 'r1' });
    const written = record({
      count: 6,
      lastSeen: 5000,
      spans: [[1000, 5000]],
      last: { role: 'mine' },
      rev: 'w',
    });
    const current = record({
      count: 7,
      firstSeen: 500,
      lastSeen: 9000,
      spans: [[500, 9000]],
      last: { role: 'theirs' },
      alertId: 'x',
      alertedAt: 600,
      indexedAt: 700,
      rev: 'r2',
    });
    const merged = mergeStoredPairs(current, written, base, w, 0);
    expect(merged).toEqual({
      appId: 'app',
      ip: '203.0.113.7',
      count: 9,
      firstSeen: 500,
      lastSeen: 9000,
      spans: [[500, 9000]],
      last: { role: 'theirs' },
      alertId: 'x',
      alertedAt: 600,
      indexedAt: 700,
    });
    // The later sighting's details, and the later alert, whichever side has them.
    const later = mergeStoredPairs(
      record({ count: 2 }),
      record({ count: 2, lastSeen: 9999, last: { role: 'mine' }, alertId: 'y', alertedAt: 9 }),
      undefined,
      w,
      0,
    );
    expect(later).toMatchObject({
      count: 4,
      lastSeen: 9999,
      last: { role: 'mine' },
      alertId: 'y',
      alertedAt: 9,
    });
    // This write's late sighting is the pair's first; its index time the later one.
    const early = mergeStoredPairs(
      record({ firstSeen: 5000, lastSeen: 6000, spans: [[5000, 6000]], indexedAt: 10 }),
      record({ indexedAt: 20 }),
      undefined,
      w,
      0,
    );
    expect(early).toMatchObject({ count: 2, firstSeen: 1000, lastSeen: 6000, indexedAt: 20 });
    // Both in one bucket (a 28th of the window): one span.
    expect(early.spans).toEqual([[1000, 6000]]);
    // A record without details takes the other's.
    expect(
      mergeStoredPairs(record({ last: { role: 'old' } }), record({ lastSeen: 2000 }), undefined, w, 0).last,
    ).toEqual({
      role: 'old',
    });
  });
});

import { describe, expect, it } from 'vitest';
import { addSighting, hasSightingNear, recordSighting } from '../../src/core/pair.ts';

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

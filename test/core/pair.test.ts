import { describe, expect, it } from 'vitest';
import {
  addSighting,
  detailsFingerprint,
  hasSightingNear,
  type PairDetails,
  recordSighting,
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

  it('keeps spans sorted and drops those that ended before the horizon', () => {
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
  });
});

describe('details fingerprint', () => {
  /** The stored definition: FNV-1a over the fields joined by U+0001, then the joined length. */
  const reference = (p: PairDetails) => {
    const text = [
      p.sourceFormat,
      p.principalId,
      p.principalType,
      p.role,
      p.clusterId,
      p.clusterName,
      p.geo?.countryName,
      p.geo?.countryIsoCode,
      p.geo?.cityName,
      p.as?.number,
      p.as?.organizationName,
      p.userUpn,
    ].join('\u0001');
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    return (h >>> 0).toString(36) + text.length.toString(36);
  };

  it('keeps the stored value (so stored pairs are not rewritten) and tells changed details apart', () => {
    const full: PairDetails = {
      sourceFormat: 'azure-activity-log-record',
      principalId: '4c2a9e71-8b3d-4f05-a6c1-2d7e9b0f5a38',
      principalType: 'User',
      role: 'Azure Arc Enabled Kubernetes Cluster User Role',
      clusterId:
        '/subscriptions/6f1c2b3a/resourcegroups/rg/providers/microsoft.kubernetes/connectedclusters/c',
      clusterName: 'c',
      geo: { countryName: 'Österreich', countryIsoCode: 'AT', cityName: 'Wien' },
      as: { number: 64500, organizationName: 'Example 🌐' },
      userUpn: 'alice@example.com',
    };
    const samples: PairDetails[] = [
      {},
      { sourceFormat: 'elastic-ecs' },
      full,
      { as: { number: 0 } },
      { geo: {} },
    ];
    for (const sample of samples) expect(detailsFingerprint(sample)).toBe(reference(sample));
    expect(detailsFingerprint({ ...full, role: 'Owner' })).not.toBe(detailsFingerprint(full));
    expect(detailsFingerprint({ ...full, geo: { ...full.geo, cityName: 'Graz' } })).not.toBe(
      detailsFingerprint(full),
    );
  });
});

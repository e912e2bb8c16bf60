import { describe, expect, it } from 'vitest';
import {
  classifyRedeliveries,
  duplicateResult,
  settleOrphanChecks,
  unsettledRedeliveries,
} from '../../src/core/classify-redeliveries.ts';
import type { StoredPair } from '../../src/core/pair.ts';
import { candidate, DAY, NOW, WINDOW } from '../support/candidates.ts';

/** A stored pair last seen `lastSeenAgo` before NOW, alerted when `alertId` is given. */
const storedPair = (lastSeenAgo: number, alertId?: string): StoredPair => ({
  appId: 'app',
  ip: '203.0.113.7',
  firstSeen: NOW - 3 * DAY,
  lastSeen: NOW - lastSeenAgo,
  count: 2,
  spans: [],
  ...(alertId ? { alertId, alertedAt: NOW - 3 * DAY } : {}),
});

const indexes = (cs: ReadonlyArray<{ index: number }>) => cs.map((c) => c.index);

describe('classifyRedeliveries: which events of a batch are judged, duplicates or orphan checks', () => {
  it('judges first deliveries, and a redelivery whose pair is not stored (its first delivery stopped)', () => {
    const first = candidate({ index: 0 });
    const again = { ...candidate({ index: 1, ip: '198.51.100.1' }), seenBefore: true };
    const sorted = classifyRedeliveries([first, again], new Map(), NOW, WINDOW);
    expect(indexes(sorted.candidates)).toEqual([0, 1]);
    expect(sorted.duplicates).toEqual([]);
    expect(sorted.orphanChecks).toEqual([]);
  });

  it('answers duplicate for an event repeated in the batch, held by another evaluation here, or from about a window ago', () => {
    const first = candidate({ index: 0, correlationId: 'c0ffee00-0000-4000-8000-00000000aaaa' });
    const repeated = {
      ...candidate({ index: 1, correlationId: 'c0ffee00-0000-4000-8000-00000000aaaa' }),
      seenBefore: true,
    };
    const held = { ...candidate({ index: 2, ip: '198.51.100.2' }), seenBefore: true, heldElsewhere: true };
    // Within the clock margin of a window ago: nothing tells a finished first delivery from a stopped one.
    const old = { ...candidate({ index: 3, ip: '198.51.100.3', agoMs: WINDOW - 60_000 }), seenBefore: true };
    const sorted = classifyRedeliveries([first, repeated, held, old], new Map(), NOW, WINDOW);
    expect(indexes(sorted.candidates)).toEqual([0]);
    expect(indexes(sorted.duplicates)).toEqual([1, 2, 3]);
  });

  it('of a stored pair: a redelivery is a duplicate, unless later than its last sighting, or the pair was never alerted', () => {
    const alerted = candidate({ index: 0, agoMs: 2 * DAY });
    const later = { ...candidate({ index: 1, agoMs: DAY / 2 }), seenBefore: true };
    const earlier = { ...candidate({ index: 2, agoMs: 2 * DAY }), seenBefore: true };
    const stored = new Map([[alerted.pairKey, storedPair(DAY, 'alert-1')]]);
    const sorted = classifyRedeliveries(
      [{ ...alerted, seenBefore: true }, later, earlier],
      stored,
      NOW,
      WINDOW,
    );
    expect(indexes(sorted.candidates)).toEqual([1]);
    expect(indexes(sorted.duplicates)).toEqual([0, 2]);

    const neverAlerted = new Map([[alerted.pairKey, storedPair(DAY)]]);
    const checks = classifyRedeliveries([earlier], neverAlerted, NOW, WINDOW);
    expect(indexes(checks.orphanChecks)).toEqual([2]);
  });

  it('names the event in a duplicate result', () => {
    const c = candidate();
    expect(duplicateResult(c)).toEqual({
      outcome: 'duplicate',
      reason: `event ${c.detection.eventId} was already received`,
      format: 'azure-activity-log-record',
    });
  });
});

describe('settleOrphanChecks', () => {
  it("judges again, as its pair's alert owner, an event whose owner claim is held; a free one is a duplicate unless never recorded", () => {
    const owner = { ...candidate({ index: 0, agoMs: 2 * DAY }), seenBefore: true };
    const plain = { ...candidate({ index: 1, agoMs: 2 * DAY }), seenBefore: true };
    const unrecorded = { ...candidate({ index: 2, agoMs: DAY / 2 }), seenBefore: true };
    const stored = new Map([[owner.pairKey, storedPair(DAY)]]);
    const settled = settleOrphanChecks([owner, plain, unrecorded], [false, true, true], stored);
    expect(settled.candidates.map((c) => [c.index, c.ownsAlertClaim ?? false])).toEqual([
      [0, true],
      [2, false],
    ]);
    expect(indexes(settled.duplicates)).toEqual([1]);
    expect(owner.ownsAlertClaim).toBeUndefined();
  });
});

describe('unsettledRedeliveries', () => {
  it('lists the redeliveries whose sighting is not stored (no pair, or one last seen before them), that no delivery in this batch or process holds', () => {
    const won = candidate({ index: 0, correlationId: 'c0ffee00-0000-4000-8000-00000000bbbb' });
    const sameAsWon = {
      ...candidate({ index: 1, correlationId: 'c0ffee00-0000-4000-8000-00000000bbbb' }),
      seenBefore: true,
    };
    const lone = { ...candidate({ index: 2, ip: '198.51.100.4' }), seenBefore: true };
    const storedOne = { ...candidate({ index: 3, ip: '198.51.100.5' }), seenBefore: true };
    const held = { ...candidate({ index: 4, ip: '198.51.100.6' }), seenBefore: true, heldElsewhere: true };
    // Its pair stored by an event an hour older: its own sighting is not (yet) stored.
    const behind = { ...candidate({ index: 5, ip: '198.51.100.7' }), seenBefore: true };
    const parsed = [won, sameAsWon, lone, storedOne, held, behind];
    const unsettled = unsettledRedeliveries(
      parsed,
      [true, false, false, false, false, false],
      new Map([
        [storedOne.pairKey, { ...storedPair(0), lastSeen: storedOne.at }],
        [behind.pairKey, { ...storedPair(0), lastSeen: behind.at - 3_600_000 }],
      ]),
      NOW,
      WINDOW,
    );
    expect(indexes(unsettled)).toEqual([2, 5]);
  });
});

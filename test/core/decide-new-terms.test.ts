import { describe, expect, it } from 'vitest';
import type { Candidate } from '../../src/core/candidate.ts';
import {
  ALERTED_WITHIN_WINDOW,
  decideNewTerms,
  type NewTermsInput,
  OLDER_THAN_WINDOW,
} from '../../src/core/decide-new-terms.ts';
import type { AllowlistEntry, StoredPair } from '../../src/core/pair.ts';
import { candidate, DAY, NOW, WINDOW } from '../support/candidates.ts';

/** The pair of `c` as stored, last seen `lastSeenAgo` before NOW, with a sighting then. */
const storedPair = (c: Candidate, lastSeenAgo: number, over: Partial<StoredPair> = {}): StoredPair => ({
  appId: c.detection.appId,
  ip: c.detection.sourceIp,
  firstSeen: NOW - lastSeenAgo,
  lastSeen: NOW - lastSeenAgo,
  count: 1,
  spans: [[NOW - lastSeenAgo, NOW - lastSeenAgo]],
  ...over,
});

const allowEntry = (c: Candidate, until?: number): AllowlistEntry => ({
  appId: c.detection.appId,
  ip: c.detection.sourceIp,
  by: 'U123',
  at: NOW - DAY,
  reason: 'office VPN',
  ...(until === undefined ? {} : { until }),
});

/** Decides `candidates` at NOW over a week, alerting, out of any learning period, unless told. */
const decide = (candidates: Candidate[], over: Partial<Omit<NewTermsInput, 'candidates'>> = {}) =>
  decideNewTerms({
    candidates,
    stored: new Map(),
    allows: new Map(),
    t: NOW,
    windowMs: WINDOW,
    silent: false,
    learningUntil: undefined,
    ...over,
  });

const indexes = (cs: ReadonlyArray<{ index: number }>) => cs.map((c) => c.index);

describe('decideNewTerms: the new-terms rule on a batch', () => {
  it('alerts a new pair on its earliest event; its other events in the batch are known and counted as repeats', () => {
    const later = candidate({ index: 0, agoMs: DAY });
    const earliest = candidate({ index: 1, agoMs: 2 * DAY });
    const between = candidate({ index: 2, agoMs: DAY + DAY / 2 });
    const decision = decide([later, earliest, between]);
    expect(indexes(decision.wantsAlert)).toEqual([1]);
    expect(decision.results.get(0)).toEqual({ outcome: 'known', detection: later.detection });
    expect(decision.results.get(2)?.outcome).toBe('known');
    expect(decision.results.has(1)).toBe(false);
    expect(decision.inBatchCount.get(later.pairKey)).toBe(3);
    expect(decision.pairs.get(later.pairKey)).toMatchObject({
      firstSeen: NOW - 2 * DAY,
      lastSeen: NOW - DAY,
      count: 3,
    });
    expect([...decision.changed]).toEqual([later.pairKey]);
    expect(decision.latest.get(later.pairKey)?.index).toBe(0);
  });

  it("tells a known pair known, and updates its alert with the batch's sightings", () => {
    const first = candidate({ index: 0, agoMs: DAY });
    const second = candidate({ index: 1, agoMs: DAY / 2 });
    const stored = new Map([[first.pairKey, storedPair(first, 2 * DAY, { alertId: 'alert-1', count: 4 })]]);
    const decision = decide([first, second], { stored });
    expect(decision.wantsAlert).toEqual([]);
    expect(decision.results.get(0)).toEqual({ outcome: 'known', detection: first.detection });
    expect(decision.results.get(1)).toEqual({ outcome: 'known', detection: second.detection });
    expect([...decision.repeats.values()]).toEqual([
      { alertId: 'alert-1', count: 6, lastSeen: NOW - DAY / 2 },
    ]);
  });

  it('answers allowlisted while an entry lasts, and alerts once it expired', () => {
    const c = candidate({ index: 0 });
    const active = decide([c], { allows: new Map([[c.pairKey, allowEntry(c, NOW + DAY)]]) });
    expect(active.wantsAlert).toEqual([]);
    expect(active.results.get(0)).toEqual({
      outcome: 'allowlisted',
      reason: `allowlisted by U123 until ${new Date(NOW + DAY).toISOString()}: office VPN`,
      detection: c.detection,
    });
    expect(active.changed.has(c.pairKey)).toBe(true);

    const forever = decide([c], { allows: new Map([[c.pairKey, allowEntry(c)]]) });
    expect(forever.results.get(0)?.reason).toBe('allowlisted by U123: office VPN');

    const expired = decide([c], { allows: new Map([[c.pairKey, allowEntry(c, NOW - 1)]]) });
    expect(indexes(expired.wantsAlert)).toEqual([0]);
    // An entry lasts until its end, not at it.
    const endsNow = decide([c], { allows: new Map([[c.pairKey, allowEntry(c, NOW)]]) });
    expect(indexes(endsNow.wantsAlert)).toEqual([0]);
    const endsNext = decide([c], { allows: new Map([[c.pairKey, allowEntry(c, NOW + 1)]]) });
    expect(endsNext.results.get(0)?.outcome).toBe('allowlisted');
  });

  it('records an import without alerting, and ignores an imported event older than the window', () => {
    const live = candidate({ index: 0 });
    const old = candidate({ index: 1, ip: '198.51.100.9', agoMs: WINDOW + DAY });
    const decision = decide([live, old], { silent: true });
    expect(decision.wantsAlert).toEqual([]);
    expect(decision.results.get(0)).toEqual({
      outcome: 'known',
      reason: 'recorded without alerting (import)',
      detection: live.detection,
    });
    expect(decision.results.get(1)).toEqual({
      outcome: 'ignored',
      reason: OLDER_THAN_WINDOW,
      detection: old.detection,
    });
    expect([...decision.changed]).toEqual([live.pairKey]);
  });

  it('records a new pair without alerting during the learning period, and alerts it after', () => {
    const c = candidate({ index: 0 });
    const learning = decide([c], { learningUntil: NOW + DAY });
    expect(learning.wantsAlert).toEqual([]);
    expect(learning.results.get(0)).toEqual({
      outcome: 'known',
      reason: `learning period until ${new Date(NOW + DAY).toISOString()}: recorded without alerting`,
      detection: c.detection,
    });
    expect(learning.pairs.get(c.pairKey)?.count).toBe(1);

    expect(indexes(decide([c], { learningUntil: NOW }).wantsAlert)).toEqual([0]);
  });

  it('tells known an Elastic alert judged new of a pair alerted within the window', () => {
    // An event from longer ago than the window, of a pair alerted since.
    const late = candidate({ index: 0, format: 'elastic-alert', agoMs: WINDOW + DAY });
    const alerted = storedPair(late, DAY, { alertId: 'alert-1', alertedAt: NOW - 2 * DAY });
    const lateDecision = decide([late], { stored: new Map([[late.pairKey, alerted]]) });
    expect(lateDecision.results.get(0)).toEqual({
      outcome: 'known',
      reason: ALERTED_WITHIN_WINDOW,
      detection: late.detection,
    });
    expect(lateDecision.changed.size).toBe(0);

    // A live one, of a pair whose alert was claimed under a calendar window's key (no `alertedAt`).
    const live = candidate({ index: 0, format: 'elastic-alert', agoMs: DAY });
    const underWindowKey = storedPair(live, 2 * DAY, { alertId: 'alert-1' });
    const liveDecision = decide([live], { stored: new Map([[live.pairKey, underWindowKey]]) });
    expect(liveDecision.results.get(0)?.reason).toBe(ALERTED_WITHIN_WINDOW);
    expect([...liveDecision.repeats.keys()]).toEqual(['alert-1']);
  });

  it('wants an alert for an Elastic alert judged new of a pair seen here, saying when it was seen', () => {
    const live = candidate({ index: 0, format: 'elastic-alert', agoMs: DAY });
    const seen = storedPair(live, 2 * DAY);
    const decision = decide([live], { stored: new Map([[live.pairKey, seen]]) });
    expect(decision.wantsAlert.map((c) => [c.index, c.seenHereAt])).toEqual([[0, NOW - 2 * DAY]]);

    // From longer ago than the window: it claims the pair's live alert, and stores no sighting.
    const late = candidate({ index: 0, format: 'elastic-alert', agoMs: WINDOW + DAY });
    const lateDecision = decide([late], { stored: new Map([[late.pairKey, seen]]) });
    expect(lateDecision.wantsAlert.map((c) => [c.claimsLive, c.seenHereAt])).toEqual([[true, NOW - 2 * DAY]]);
    expect(lateDecision.changed.size).toBe(0);
    expect(late.claimsLive).toBeUndefined();
  });

  it('judges a replay older than the window after the live events: never stored; known when its pair is in the history', () => {
    const replay = candidate({ index: 0, agoMs: WINDOW + DAY });
    const live = candidate({ index: 1, agoMs: DAY });
    const decision = decide([replay, live]);
    // The live event of the pair comes first and alerts; the replay is of a pair in the history now.
    expect(indexes(decision.wantsAlert)).toEqual([1]);
    expect(decision.results.get(0)).toEqual({
      outcome: 'known',
      reason:
        'older than the history window, so not stored; the pair is in the current history (seen within the window)',
      detection: replay.detection,
    });
    expect(decision.pairs.get(live.pairKey)?.count).toBe(1);

    // Alone, of a pair not in the history: it wants an alert, and adds no sighting.
    const alone = decide([replay]);
    expect(indexes(alone.wantsAlert)).toEqual([0]);
    expect(alone.changed.size).toBe(0);
    expect(alone.inBatchCount.size).toBe(0);
  });

  it('leaves its inputs as they were', () => {
    const a = candidate({ index: 0, agoMs: DAY });
    const b = candidate({ index: 1, agoMs: 2 * DAY, format: 'elastic-alert' });
    const stored = new Map([
      [a.pairKey, storedPair(a, 3 * DAY, { alertId: 'alert-1', alertedAt: NOW - 3 * DAY })],
    ]);
    const candidates = [a, b];
    const before = structuredClone({ candidates, stored: [...stored] });
    const decision = decide(candidates, { stored });
    expect(decision.pairs.get(a.pairKey)?.count).toBe(3);
    expect({ candidates, stored: [...stored] }).toEqual(before);
  });
});

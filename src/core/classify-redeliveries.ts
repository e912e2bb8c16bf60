import type { EventResult } from './alert.ts';
import { type Candidate, FUTURE_TOLERANCE_MS } from './candidate.ts';
import type { StoredPair } from './pair.ts';

/**
 * A re-delivered event from (about) a window or more ago: its sighting is never stored, so
 * nothing tells a finished first delivery from one that stopped; it is taken as a duplicate.
 * The margin keeps replicas whose clocks differ a little from judging it both ways.
 */
export const pastTelling = (c: Candidate, t: number, windowMs: number): boolean =>
  c.at + windowMs - FUTURE_TOLERANCE_MS <= t;

/**
 * A re-delivered event later than its stored pair's last sighting: its first delivery stopped
 * (a crash, a failed write) after claiming it and before storing its sighting, which would
 * have moved the last sighting to it. It is judged again (and counted) rather than lost.
 */
// (An event time in the future counts as now: such an event says nothing by its time.)
export const neverRecorded = (c: Candidate, pair: StoredPair): boolean =>
  c.at === c.eventMs && c.at > pair.lastSeen;

/** The result of a re-delivered event that is not judged again. */
export const duplicateResult = (c: Candidate): EventResult => ({
  outcome: 'duplicate',
  reason: `event ${c.detection.eventId} was already received`,
  format: c.detection.sourceFormat,
});

/**
 * Re-delivered events (not repeated within this batch, not held here, not old) whose sighting the
 * store does not show: their pair is not in `stored`, or is last seen before them (another event
 * of the pair stored it, while their own first delivery may still be at work). `won` says, per
 * event of `parsed`, whether this evaluation took its claim.
 */
export function unsettledRedeliveries(
  parsed: readonly Candidate[],
  won: readonly boolean[],
  stored: ReadonlyMap<string, StoredPair>,
  t: number,
  windowMs: number,
): Candidate[] {
  const wonHere = new Set(parsed.filter((_, i) => won[i]).map((c) => c.detection.eventId));
  return parsed.filter((c) => {
    if (!c.seenBefore || c.heldElsewhere || wonHere.has(c.detection.eventId)) return false;
    if (pastTelling(c, t, windowMs)) return false;
    const pair = stored.get(c.pairKey);
    return pair === undefined || neverRecorded(c, pair);
  });
}

/** A batch's events sorted by what their delivery history makes of them. */
export interface Redeliveries {
  /** Judged: first deliveries, and re-deliveries whose first delivery never got as far as the store. */
  candidates: Candidate[];
  /** Answered `duplicate`. */
  duplicates: Candidate[];
  /** Re-deliveries of stored pairs never alerted, whose event may own the pair's alert claim. */
  orphanChecks: Candidate[];
}

/**
 * Sorts the events of a batch, in order, by their delivery history (`seenBefore`, `heldElsewhere`)
 * and the pairs stored (by pair key) at `t`.
 */
export function classifyRedeliveries(
  parsed: readonly Candidate[],
  stored: ReadonlyMap<string, StoredPair>,
  t: number,
  windowMs: number,
): Redeliveries {
  // A re-delivered event is a duplicate when its pair is stored, when the same event came
  // earlier in this batch, when another evaluation in this process holds it, or when its time
  // lies (about) a window or more in the past: such a sighting is never stored, so nothing
  // tells a finished first delivery from one that stopped (a crash between the claim and the
  // outbox would lose such an event's alert; these are history). The margin keeps replicas
  // whose clocks differ a little from judging one such event both ways. Otherwise the first
  // delivery never got as far as the store, and the event is evaluated again.
  const inBatch = new Set<string>();
  const sorted: Redeliveries = { candidates: [], duplicates: [], orphanChecks: [] };
  for (const c of parsed) {
    const pair = stored.get(c.pairKey);
    if (!c.seenBefore) {
      sorted.candidates.push(c);
      inBatch.add(c.detection.eventId);
    } else if (inBatch.has(c.detection.eventId) || c.heldElsewhere || pastTelling(c, t, windowMs)) {
      sorted.duplicates.push(c);
    } else if (!pair) {
      sorted.candidates.push(c);
      inBatch.add(c.detection.eventId);
    } else if (pair.alertId === undefined) {
      sorted.orphanChecks.push(c);
      inBatch.add(c.detection.eventId);
    } else if (neverRecorded(c, pair)) {
      sorted.candidates.push(c);
      inBatch.add(c.detection.eventId);
    } else {
      sorted.duplicates.push(c);
    }
  }
  return sorted;
}

/**
 * Settles the orphan checks of `classifyRedeliveries` by whether each event's alert owner claim
 * was free (`free`, in order): a free one was no owner's, and its event is a duplicate unless
 * its sighting was never recorded; a held one was taken by the event's earlier delivery, which
 * stopped, and the event is judged again as the owner of its pair's alert claim.
 */
export function settleOrphanChecks(
  orphanChecks: readonly Candidate[],
  free: readonly boolean[],
  stored: ReadonlyMap<string, StoredPair>,
): { candidates: Candidate[]; duplicates: Candidate[] } {
  const candidates: Candidate[] = [];
  const duplicates: Candidate[] = [];
  orphanChecks.forEach((c, i) => {
    if (!free[i]) candidates.push({ ...c, ownsAlertClaim: true });
    else if (neverRecorded(c, stored.get(c.pairKey)!)) candidates.push(c);
    else duplicates.push(c);
  });
  return { candidates, duplicates };
}

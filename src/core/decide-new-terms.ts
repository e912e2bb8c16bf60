import type { AlertRepeat, EventResult } from './alert.ts';
import { type Candidate, isReplay } from './candidate.ts';
import type { Detection } from './detection.ts';
import { isAllowActive } from './history.ts';
import {
  type AllowlistEntry,
  hasSightingNear,
  normaliseAppId,
  recordSighting,
  type StoredPair,
} from './pair.ts';

/** Why an event from a window or more ago is not imported. */
export const OLDER_THAN_WINDOW = 'older than the history window of now: not stored';

/** Why a pair's event is not alerted once the pair was. */
export const ALERTED_WITHIN_WINDOW = 'this pair was alerted already within the window';
/** Why an event from a window or more ago of a pair in the current history is not alerted. */
const REPLAY_OF_KNOWN_PAIR =
  'older than the history window, so not stored; the pair is in the current history (seen within the window)';

/**
 * A pair stored with an alert but no `alertedAt`: its alert was claimed under a key per calendar
 * window (`alerted:<appid>:<ip>:<window>`), which the claims here do not read, so an Elastic
 * alert of the pair would post a second alert. Its alert came at or after its first sighting, so a
 * pair first seen within the window was alerted within it.
 */
const alertedUnderWindowKey = (pair: StoredPair, horizon: number): boolean =>
  pair.alertId !== undefined && pair.alertedAt === undefined && pair.firstSeen > horizon;

/** The result of an event whose pair's allowlist entry holds. */
const allowlisted = (allow: AllowlistEntry, d: Detection): EventResult => ({
  outcome: 'allowlisted',
  reason: `allowlisted by ${allow.by}${allow.until ? ` until ${new Date(allow.until).toISOString()}` : ''}: ${allow.reason}`,
  detection: d,
});

/** A sighting of a pair alerted before updates that alert (its latest state in this batch). */
export function noteRepeat(repeats: Map<string, AlertRepeat>, pair: StoredPair): void {
  if (pair.alertId)
    repeats.set(pair.alertId, { alertId: pair.alertId, count: pair.count, lastSeen: pair.lastSeen });
}

/** A batch's judged events and what the store holds of their pairs, for `decideNewTerms`. */
export interface NewTermsInput {
  /** The events judged (not the duplicates), in batch order. */
  candidates: readonly Candidate[];
  /** The pairs as read from the store, by pair key. */
  stored: ReadonlyMap<string, StoredPair>;
  /** Each pair's allowlist entry as read from the store, by pair key. */
  allows: ReadonlyMap<string, AllowlistEntry | undefined>;
  /** The judging time, epoch ms. */
  t: number;
  windowMs: number;
  /** Record sightings without alerting (history import). */
  silent: boolean;
  /** End of the learning period (epoch ms), when one applies. */
  learningUntil: number | undefined;
}

/** The new-terms decision on a batch's events, before any alert claim is taken. */
export interface NewTermsDecision {
  /** The result of each event decided here, by its place in the batch (none for `wantsAlert`). */
  results: Map<number, EventResult>;
  /**
   * The events that alert unless their pair's alert claim is taken already, in the order judged:
   * copies, with `claimsLive` and `seenHereAt` set where they apply.
   */
  wantsAlert: Candidate[];
  /** One working copy per pair of the batch, by pair key (stored ones and new ones), sightings added. */
  pairs: Map<string, StoredPair>;
  /** The pairs this batch changes: only those are written back. */
  changed: Set<string>;
  /** The most recent live event of each pair. */
  latest: Map<string, Candidate>;
  /** The sightings of each pair in this batch: an alert's pair seen again here updates it. */
  inBatchCount: Map<string, number>;
  /** The updates of alerts posted before, by alert id (see `noteRepeat`). */
  repeats: Map<string, AlertRepeat>;
}

/** A working copy of a stored pair, which the batch's sightings update in place. */
function workingCopy(prev: StoredPair): StoredPair {
  const copy: StoredPair = {
    appId: prev.appId,
    ip: prev.ip,
    firstSeen: prev.firstSeen,
    lastSeen: prev.lastSeen,
    count: prev.count,
    spans: prev.spans.map(([lo, hi]) => [lo, hi]),
  };
  if (prev.last !== undefined) copy.last = prev.last;
  if (prev.alertId !== undefined) copy.alertId = prev.alertId;
  if (prev.alertedAt !== undefined) copy.alertedAt = prev.alertedAt;
  if (prev.indexedAt !== undefined) copy.indexedAt = prev.indexedAt;
  return copy;
}

/**
 * Elastic's new-terms rule on (appid, source IP) over a batch's events: which alert, which are
 * known, allowlisted or ignored and why, and the sightings they add to their pairs. The inputs are
 * left as they are.
 */
export function decideNewTerms({
  candidates: judged,
  stored,
  allows,
  t,
  windowMs,
  silent,
  learningUntil,
}: NewTermsInput): NewTermsDecision {
  const horizon = t - windowMs;
  const results = new Map<number, EventResult>();
  const repeats = new Map<string, AlertRepeat>();
  // One working copy per pair and batch, updated in place by each of its events.
  const pairs = new Map<string, StoredPair>();
  for (const [k, prev] of stored) pairs.set(k, workingCopy(prev));
  const latest = new Map<string, Candidate>();
  const wantsAlert: Candidate[] = [];
  /** Pairs of this batch whose live event wants an alert: a late Elastic alert of one waits for it. */
  const liveAlertWanted = new Set<string>();
  const learningNow = learningUntil !== undefined && t < learningUntil;
  const inBatchCount = new Map<string, number>();
  // In time order (stable), so that of several events of a new pair in one batch, the first
  // sighting is the one alerted and the others count as its repeats. Events from a window or
  // more ago (never stored as sightings) come after the live ones, which they are judged by.
  const replayed = (c: Candidate) => isReplay(c, t, windowMs);
  const candidates = judged.map((c) => ({ ...c }));
  candidates.sort((a, b) => Number(replayed(a)) - Number(replayed(b)) || a.at - b.at);

  const changed = new Set<string>();

  for (const c of candidates) {
    const d = c.detection;
    let next = pairs.get(c.pairKey);
    // An event from a window or more ago is never stored and never counted (see `replayed`).
    const replay = replayed(c);
    if (replay && silent) {
      results.set(c.index, { outcome: 'ignored', reason: OLDER_THAN_WINDOW, detection: d });
      continue;
    }
    if (replay && next && (stored.has(c.pairKey) || next.lastSeen > horizon)) {
      // Of a pair in the current history: the pair is known (alerted, allowlisted or imported
      // since). Except for an alert Elastic judged new: its rule judges by when the event
      // reached Elastic, so an event that came late still fires there, and is alerted here
      // unless the pair was alerted within the window.
      const allow = allows.get(c.pairKey);
      const alertedLately =
        (next.alertedAt !== undefined && next.alertedAt > horizon) ||
        alertedUnderWindowKey(next, horizon) ||
        liveAlertWanted.has(c.pairKey);
      if (isAllowActive(allow, t)) {
        results.set(c.index, allowlisted(allow, d));
        continue;
      }
      if (!d.elasticAlert?.judgedNew || alertedLately) {
        results.set(c.index, {
          outcome: 'known',
          reason: alertedLately && d.elasticAlert?.judgedNew ? ALERTED_WITHIN_WINDOW : REPLAY_OF_KNOWN_PAIR,
          detection: d,
        });
        continue;
      }
      c.claimsLive = true;
    }
    const isNew = !next || !hasSightingNear(next.spans, c.at, windowMs);
    const lastBefore = next?.lastSeen;
    if (!next) {
      next = {
        appId: normaliseAppId(d.appId),
        ip: d.sourceIp,
        firstSeen: c.at,
        lastSeen: c.at,
        count: 0,
        spans: [],
      };
      pairs.set(c.pairKey, next);
    }
    if (!replay) {
      changed.add(c.pairKey);
      const before = latest.get(c.pairKey);
      if (!before || c.at >= before.at) latest.set(c.pairKey, c);
      next.firstSeen = Math.min(next.firstSeen, c.at);
      next.lastSeen = Math.max(next.lastSeen, c.at);
      next.count++;
      next.spans = recordSighting(next.spans, c.at, windowMs, horizon);
      inBatchCount.set(c.pairKey, (inBatchCount.get(c.pairKey) ?? 0) + 1);
    }

    const allow = allows.get(c.pairKey);
    if (isAllowActive(allow, t)) {
      results.set(c.index, allowlisted(allow, d));
      // The alert the pair was marked benign from keeps showing its sightings.
      if (!replay) noteRepeat(repeats, next);
    } else if (silent) {
      results.set(c.index, { outcome: 'known', reason: 'recorded without alerting (import)', detection: d });
    } else if (
      !isNew &&
      !c.ownsAlertClaim &&
      d.elasticAlert?.judgedNew &&
      alertedUnderWindowKey(next, horizon)
    ) {
      results.set(c.index, { outcome: 'known', reason: ALERTED_WITHIN_WINDOW, detection: d });
      noteRepeat(repeats, next);
    } else if ((isNew || d.elasticAlert?.judgedNew || c.ownsAlertClaim) && learningNow) {
      results.set(c.index, {
        outcome: 'known',
        reason: `learning period until ${new Date(learningUntil!).toISOString()}: recorded without alerting`,
        detection: d,
      });
    } else if (isNew || d.elasticAlert?.judgedNew || c.ownsAlertClaim) {
      // An alert Elastic judged new on a pair this history holds says when it was seen here.
      if ((!isNew || c.claimsLive) && d.elasticAlert?.judgedNew && lastBefore !== undefined) {
        c.seenHereAt = lastBefore;
      }
      if (!replay) liveAlertWanted.add(c.pairKey);
      wantsAlert.push(c);
    } else {
      results.set(c.index, { outcome: 'known', detection: d });
      noteRepeat(repeats, next);
    }
  }

  return { results, wantsAlert, pairs, changed, latest, inBatchCount, repeats };
}

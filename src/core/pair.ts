import { dashGuid } from './azure-ids.ts';
import type { AutonomousSystem, Detection, Geo, SourceFormat } from './detection.ts';

/** Details of the last detection of a pair that `/arc-history` and the alert show. */
export interface PairDetails {
  sourceFormat?: SourceFormat;
  principalId?: string;
  principalType?: string;
  role?: string;
  clusterId?: string;
  clusterName?: string;
  geo?: Geo;
  as?: AutonomousSystem;
  /** Which of geo and AS were looked up here (GeoIP) rather than carried by the event. */
  located?: { geo?: true; as?: true };
  userUpn?: string;
}

/** History of one (identity, source IP) pair. Times are epoch milliseconds. */
export interface PairRecord {
  appId: string;
  ip: string;
  firstSeen: number;
  lastSeen: number;
  count: number;
  /**
   * Sighting times folded into buckets of `window / BUCKETS_PER_WINDOW`, each kept as its
   * earliest and latest time, sorted. Keeping both ends of every bucket answers "is there a
   * sighting within the window of t" exactly while the list stays short.
   */
  spans: Array<[number, number]>;
  last: PairDetails;
  /** Id of the last alert raised for this pair, so that repeats update that alert. */
  alertId?: string;
}

/**
 * A pair as stored: one record with its counters and its details, so that listing an identity
 * reads one key range. A record without `last` keeps its details apart (at `pairInfoKey`); it
 * gains `last` with its next sighting.
 */
export interface StoredPair extends Omit<PairRecord, 'last'> {
  last?: PairDetails;
  /** When the pair was last added to its identity's index (epoch ms); it is re-added every half window. */
  indexedAt?: number;
  /**
   * When its alert (`alertId`) was raised (epoch ms). The record lasts at least a window from
   * then, as long as the alert's claim, so that a sighting meanwhile updates that alert.
   */
  alertedAt?: number;
  /**
   * Which write this is (unique to it): a process writes a pair only over the record it read
   * (`ConditionalWrites`), and merges with what another process wrote meanwhile otherwise.
   */
  rev?: string;
}

/** An allowlist entry for one pair: suppresses alerts while it lasts. */
export interface AllowlistEntry {
  appId: string;
  ip: string;
  by: string;
  at: number;
  reason: string;
  /** Epoch ms; absent means it never expires. */
  until?: number;
  /** The alert it was marked benign from, when it was. */
  alertId?: string;
}

const BUCKETS_PER_WINDOW = 28;

/**
 * Identities are GUIDs: one identity whatever form it came in (upper case, without dashes, in
 * braces) is the dashed lower-case GUID; anything else is compared case-insensitively.
 */
export const normaliseAppId = (appId: string): string => dashGuid(appId) ?? appId.trim().toLowerCase();

export const pairKey = (appId: string, ip: string): string => `pair:${normaliseAppId(appId)}:${ip}`;
/** A pair's details kept apart from its counters at `pairKey`, for records without `last` (read only). */
export const pairInfoKey = (appId: string, ip: string): string => `pairinfo:${normaliseAppId(appId)}:${ip}`;
export const allowKey = (appId: string, ip: string): string => `allow:${normaliseAppId(appId)}:${ip}`;
export const identitySet = (appId: string): string => `ident:${normaliseAppId(appId)}`;

/** True when some sighting of the pair lies within `windowMs` of `t` (either side). */
export function hasSightingNear(
  spans: ReadonlyArray<readonly [number, number]>,
  t: number,
  windowMs: number,
) {
  for (const [lo, hi] of spans) {
    if (t >= lo - windowMs && t <= hi + windowMs) return true;
  }
  return false;
}

/** Adds a sighting at `t` and drops spans that ended before `horizon` (now minus the window). */
export function addSighting(
  spans: ReadonlyArray<readonly [number, number]>,
  t: number,
  windowMs: number,
  horizon: number,
): Array<[number, number]> {
  const width = Math.max(1, Math.floor(windowMs / BUCKETS_PER_WINDOW));
  const bucket = Math.floor(t / width);
  const out: Array<[number, number]> = [];
  let placed = false;
  for (const [lo, hi] of spans) {
    if (hi < horizon) continue;
    const b = Math.floor(lo / width);
    if (!placed && b === bucket) {
      out.push([Math.min(lo, t), Math.max(hi, t)]);
      placed = true;
    } else {
      if (!placed && b > bucket) {
        out.push([t, t]);
        placed = true;
      }
      out.push([lo, hi]);
    }
  }
  if (!placed && t >= horizon) out.push([t, t]);
  return out;
}

/**
 * `addSighting` on a working copy the caller owns: the common case, a sighting in the newest
 * bucket while nothing has expired, updates that span in place instead of copying the list.
 */
export function recordSighting(
  spans: Array<[number, number]>,
  t: number,
  windowMs: number,
  horizon: number,
): Array<[number, number]> {
  const width = Math.max(1, Math.floor(windowMs / BUCKETS_PER_WINDOW));
  const last = spans[spans.length - 1];
  if (last && spans[0]![1] >= horizon && Math.floor(last[0] / width) === Math.floor(t / width)) {
    if (t < last[0]) last[0] = t;
    if (t > last[1]) last[1] = t;
    return spans;
  }
  return addSighting(spans, t, windowMs, horizon);
}

/**
 * The spans of two records of one pair as one list (the sightings of both): spans of one bucket
 * become one, and those that ended before `horizon` are dropped.
 */
export function mergeSpans(
  a: ReadonlyArray<readonly [number, number]>,
  b: ReadonlyArray<readonly [number, number]>,
  windowMs: number,
  horizon: number,
): Array<[number, number]> {
  const width = Math.max(1, Math.floor(windowMs / BUCKETS_PER_WINDOW));
  const all = [...a, ...b].filter(([, hi]) => hi >= horizon).sort((x, y) => x[0] - y[0]);
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of all) {
    const last = out[out.length - 1];
    if (last && Math.floor(last[0] / width) === Math.floor(lo / width)) {
      if (hi > last[1]) last[1] = hi;
    } else {
      out.push([lo, hi]);
    }
  }
  return out;
}

/** When a record's alert was raised, for choosing the later: -1 without one, 0 for one of unknown time. */
const alertOrder = (pair: StoredPair): number => pair.alertedAt ?? (pair.alertId ? 0 : -1);

/**
 * A pair's record once this process's write (`written`, made over `base`, what it read) and
 * another process's meanwhile (`current`, what the store holds now) are both in it: the counts
 * added up, the earlier first sighting, the later last one with its details, every span, the
 * later alert. `rev` is left for the caller to set.
 */
export function mergeStoredPairs(
  current: StoredPair,
  written: StoredPair,
  base: StoredPair | undefined,
  windowMs: number,
  horizon: number,
): StoredPair {
  // What this write added to what it read; the rest of its count is in `current` already (or
  // expired with `base`).
  const added = written.count - (base?.count ?? 0);
  const merged: StoredPair = {
    appId: current.appId,
    ip: current.ip,
    firstSeen: Math.min(current.firstSeen, written.firstSeen),
    lastSeen: Math.max(current.lastSeen, written.lastSeen),
    count: current.count + Math.max(0, added),
    spans: mergeSpans(current.spans, written.spans, windowMs, horizon),
  };
  const newer = written.lastSeen >= current.lastSeen ? written : current;
  const last = newer.last ?? (newer === written ? current.last : written.last);
  if (last !== undefined) merged.last = last;
  const alerted = alertOrder(written) >= alertOrder(current) ? written : current;
  if (alerted.alertId !== undefined) merged.alertId = alerted.alertId;
  if (alerted.alertedAt !== undefined) merged.alertedAt = alerted.alertedAt;
  const indexedAt = Math.max(current.indexedAt ?? 0, written.indexedAt ?? 0);
  if (indexedAt > 0) merged.indexedAt = indexedAt;
  return merged;
}

/** The pair's details as the last detection carried them. */
export function detailsOf(d: Detection): PairDetails {
  const details: PairDetails = { sourceFormat: d.sourceFormat };
  if (d.principalId) details.principalId = d.principalId;
  if (d.principalType) details.principalType = d.principalType;
  if (d.evidence.role) details.role = d.evidence.role;
  if (d.cluster) {
    details.clusterId = d.cluster.id;
    if (d.cluster.name) details.clusterName = d.cluster.name;
  }
  if (d.geo) details.geo = d.geo;
  if (d.as) details.as = d.as;
  if (d.located) details.located = d.located;
  if (d.user?.upn) details.userUpn = d.user.upn;
  return details;
}

import type { Detection } from './detection.ts';

/** Event times further ahead than this count as now (clock skew, bad clocks). */
export const FUTURE_TOLERANCE_MS = 5 * 60 * 1000;

/**
 * An event at `atMs` lies a window or more before `nowMs`: a replay or a very late delivery, whose
 * sighting is never stored (there is no history that old to judge it by).
 */
export const olderThanWindow = (atMs: number, windowMs: number, nowMs: number): boolean =>
  atMs + windowMs <= nowMs;

/** A parsed event of a batch, on its way through the judgement. */
export interface Candidate {
  /** Its place in the batch (and in the results). */
  index: number;
  detection: Detection;
  /** The event time as given, epoch ms. */
  eventMs: number;
  pairKey: string;
  /** Event time clamped to now when it is too far ahead. */
  at: number;
  /** Its event id was claimed before: a duplicate, unless that delivery never got as far as storing. */
  seenBefore?: boolean;
  /** Another evaluation in this process holds the same event (its claim may have won). */
  heldElsewhere?: boolean;
  /** An alert Elastic judged new whose pair was seen here within the window: its last sighting. */
  seenHereAt?: number;
  /** Its earlier delivery took its pair's alert claim for it and stopped before storing it. */
  ownsAlertClaim?: boolean;
  /**
   * An owner (`ownsAlertClaim`) whose alert the outbox holds already: its first delivery got past
   * its judging (another replica still writing, or its pair's write overtaken by another
   * replica's). It is judged again, so that its pair is tied to the alert and its sighting kept,
   * and answered `duplicate`; the outbox takes its alert once.
   */
  alertHandedOver?: boolean;
  /**
   * An alert Elastic judged new of an event from a window or more ago, whose pair is in the current
   * history: it claims the pair's live alert (one alert per pair and window, whichever comes first).
   */
  claimsLive?: boolean;
}

/**
 * An event from a window or more before `t`: never stored as a sighting and never counted, and
 * judged after the live events of its batch.
 */
export const isReplay = (c: Candidate, t: number, windowMs: number): boolean =>
  olderThanWindow(c.at, windowMs, t);

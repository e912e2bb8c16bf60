import type { Detection, SourceFormat } from './detection.ts';

/** Outcome of one ingested event. */
export type Outcome = 'alerted' | 'known' | 'allowlisted' | 'duplicate' | 'ignored' | 'invalid';

export const OUTCOMES: readonly Outcome[] = [
  'alerted',
  'known',
  'allowlisted',
  'duplicate',
  'ignored',
  'invalid',
];

/** Why an alert fired. */
export type AlertReason = 'new-pair' | 'elastic-alert';

/** An alert raised by the engine, as stored in the outbox and handed to the chat side. */
export interface AlertRecord {
  /** Unique, stable id (derived from the detection's event id). */
  id: string;
  detection: Detection;
  /** When arc-responder raised it, epoch ms. */
  detectedAt: number;
  reason: AlertReason;
  /** How many other source IPs this identity used within the window. */
  otherIps: number;
  /** `otherIps` is estimated from a sample (the identity has more than 500 IPs indexed). */
  otherIpsEstimated?: boolean;
  windowMs: number;
  /**
   * Set on an alert Elastic judged new (`elastic-alert`) whose pair this history saw within the
   * window: the last sighting before the event, epoch ms.
   */
  seenHereAt?: number;
}

/** A later sighting of an alerted pair: the chat side updates the original message. */
export interface AlertRepeat {
  alertId: string;
  count: number;
  lastSeen: number;
}

/** Result of evaluating one event. */
export interface EventResult {
  outcome: Outcome;
  /** Set for `ignored`, `invalid`, `duplicate` and `allowlisted`. */
  reason?: string;
  detection?: Detection;
  /** The event's format when it has no `detection` but was recognised (ignored, invalid, duplicate). */
  format?: SourceFormat;
  /** Set when the outcome is `alerted`. */
  alert?: AlertRecord;
  /** Set when a known pair had been alerted before. */
  repeat?: AlertRepeat;
}

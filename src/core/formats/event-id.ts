import { hash } from 'node:crypto';

/** The fields that identify one activity-log event, whatever channel delivered it. */
export interface EventKey {
  /** ISO 8601 with milliseconds. */
  eventTime: string;
  operation: string;
  appId: string;
  /** Canonical IP. */
  sourceIp: string;
  correlationId?: string | undefined;
  resourceId?: string | undefined;
  outcome?: string | undefined;
}

/**
 * `Success` (records, Elastic) and `Succeeded` (REST, Azure Monitor) are the same outcome: one key
 * for both, so an event that arrives through two channels gets one id.
 */
const OUTCOME_ALIASES: ReadonlyMap<string, string> = new Map([
  ['succeeded', 'success'],
  ['failed', 'failure'],
  ['started', 'start'],
]);

/**
 * Stable id of an activity-log event: sha256 (hex, first 32 characters) of its normalised fields,
 * so the same event delivered as an Event Hub record, as the ECS document Elastic made of it, as a
 * REST event or inside an Azure Monitor alert gets the same id. The time is cut to milliseconds
 * (Elastic keeps no more), names and ids are lower-cased (Event Hub upper-cases them).
 *
 * The hashed text must never change (stored ids dedupe redeliveries across restarts): the fields
 * in this order, joined by `\n`, UTF-8.
 */
export function hashEventId(key: EventKey): string {
  const outcome = key.outcome?.toLowerCase() ?? '';
  const text =
    `${key.eventTime}\n${key.operation.toLowerCase()}\n${key.appId.toLowerCase()}\n${key.sourceIp}\n` +
    `${key.correlationId?.toLowerCase() ?? ''}\n${key.resourceId?.toLowerCase() ?? ''}\n` +
    (OUTCOME_ALIASES.get(outcome) ?? outcome);
  // One-shot `hash` costs about half of `createHash().update().digest()` (this runs for every event).
  return hash('sha256', text).slice(0, 32);
}

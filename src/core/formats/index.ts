import type { ParseResult, SourceFormat } from '../detection.ts';
import {
  isActivityLogRecord,
  isActivityLogRest,
  parseActivityLogRecord,
  parseActivityLogRest,
} from './azure-activity-log.ts';
import {
  isMonitorCommon,
  isMonitorLegacy,
  otherMonitorSchema,
  parseMonitorCommon,
  parseMonitorLegacy,
} from './azure-monitor.ts';
import { ignored, invalid } from './build-detection.ts';
import { isElasticAlert, parseElasticAlert, RESULTS_LINK } from './elastic-alert.ts';
import { isElasticActivityLog, parseElasticEcs } from './elastic-ecs.ts';
import { cutBefore, FieldReader, isObject, own } from './fields.ts';

export { hashEventId } from './event-id.ts';
export { parseEventTime } from './event-time.ts';

/**
 * The events in one ingested JSON value: the elements of an array, of the Azure diagnostic-settings
 * envelope `{"records": [...]}`, or of a Kibana webhook body `{"alerts": [...], …}` (or its one
 * alert as `{"alerts": {...}, …}`); anything else
 * (an action-group payload, a single document) is one event.
 */
export function extractEvents(body: unknown): unknown[] {
  if (Array.isArray(body)) return body;
  if (isObject(body)) {
    const records = own(body, 'records');
    if (Array.isArray(records)) return records;
    // A Kibana body made with `"alerts":{{#context.alerts}}{{{.}}}{{/context.alerts}}` holds one
    // alert as an object, not in an array.
    const found = own(body, 'alerts');
    const alerts = isObject(found) ? [found] : found;
    if (Array.isArray(alerts)) {
      const link = own(body, 'results_link');
      if (typeof link === 'string') {
        for (const alert of alerts)
          if (isObject(alert)) (alert as { [RESULTS_LINK]?: string })[RESULTS_LINK] = link;
      }
      return alerts;
    }
  }
  return [body];
}

const PARSERS: Readonly<Record<SourceFormat, (event: unknown, r: FieldReader) => ParseResult>> = {
  'elastic-alert': parseElasticAlert,
  'elastic-ecs': parseElasticEcs,
  'azure-monitor-common': parseMonitorCommon,
  'azure-monitor-legacy': parseMonitorLegacy,
  'azure-activity-log-rest': parseActivityLogRest,
  'azure-activity-log-record': parseActivityLogRecord,
};

/** Which format `event` is in, or undefined when it is none of them. */
export function detectFormat(event: unknown, r = new FieldReader()): SourceFormat | undefined {
  if (!isObject(event)) return undefined;
  // Alerts first: they also carry the ECS fields of the event they were made from.
  if (isElasticAlert(event, r)) return 'elastic-alert';
  if (isElasticActivityLog(event, r)) return 'elastic-ecs';
  if (isMonitorCommon(event, r)) return 'azure-monitor-common';
  if (isMonitorLegacy(event, r)) return 'azure-monitor-legacy';
  if (isActivityLogRest(event)) return 'azure-activity-log-rest';
  if (isActivityLogRecord(event)) return 'azure-activity-log-record';
  return undefined;
}

const KEYS_SHOWN = 8;

/**
 * One event (an element of `extractEvents`) → a Detection, or why not: `ignored` when it is not a
 * successful Arc credential listing (checked before anything else is required), `invalid` when it
 * is unrecognisable or a matching event lacks the identity, a valid source IP or a valid time.
 * Never throws.
 */
export function parseDetection(event: unknown): ParseResult {
  try {
    // One reader for detection and parsing: it remembers the objects whose keys it has listed.
    const r = new FieldReader();
    const format = detectFormat(event, r);
    if (format !== undefined) return withFormat(PARSERS[format](event, r), format);
    // An Elasticsearch search hit of an activity-log document (alert hits are handled above).
    const hitSource = own(event, '_source');
    const hitFormat = detectFormat(hitSource, r);
    if (hitFormat !== undefined) return withFormat(PARSERS[hitFormat](hitSource, r), hitFormat);
    const other = otherMonitorSchema(event);
    if (other !== undefined) {
      return ignored(
        `Azure Monitor ${JSON.stringify(other.slice(0, 80))} payload is not an activity-log alert`,
      );
    }
    return invalid(unrecognised(event));
  } catch (err) {
    // The parsers are written not to throw; this keeps one bad event from failing a whole batch.
    return invalid(
      `could not be parsed: ${err instanceof Error ? err.message.slice(0, 200) : 'unknown error'}`,
    );
  }
}

/** A failure names the format it was recognised as (for the per-format metrics). */
function withFormat(result: ParseResult, format: SourceFormat): ParseResult {
  if (!result.ok) result.format = format;
  return result;
}

function unrecognised(event: unknown): string {
  const expected =
    'expected an Elastic activity-log document or Security alert, an Azure activity-log event or record, or an Azure Monitor action-group payload';
  if (!isObject(event)) {
    const kind = event === null ? 'null' : Array.isArray(event) ? 'an array' : typeof event;
    return `not a recognised detection: got ${kind}; ${expected}`;
  }
  const keys: string[] = [];
  for (const key in event) {
    if (!Object.hasOwn(event, key)) continue;
    if (keys.length === KEYS_SHOWN) {
      keys.push('…');
      break;
    }
    keys.push(JSON.stringify(key.length > 40 ? `${cutBefore(key, 40)}…` : key));
  }
  return `not a recognised detection format (keys: ${keys.length > 0 ? keys.join(', ') : 'none'}); ${expected}`;
}

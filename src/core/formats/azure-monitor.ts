import type { AzureAlertInfo, ParseResult } from '../detection.ts';
import { echo, matchOperation } from '../rule.ts';
import { clientIpAddress } from './azure-activity-log.ts';
import { buildDetection, ignored, invalid, text } from './build-detection.ts';
import { parseEventTime } from './event-time.ts';
import {
  FieldReader,
  field,
  isObject,
  type Json,
  jsonObject,
  own,
  ownValue,
  str,
  unwrapValue,
} from './fields.ts';
import { readClaims, readEvidence } from './identity.ts';

const COMMON_SCHEMA_ID = 'azureMonitorCommonAlertSchema';
const LEGACY_ACTIVITY_LOG_SCHEMA_ID = 'Microsoft.Insights/activityLogs';

const COMMON = {
  essentials: field('data.essentials'),
  alertContext: field('data.alertContext'),
  resourceId: [field('properties.entity'), field('authorization.scope')],
  evidence: field('authorization.evidence'),
} as const;

const LEGACY = {
  activityLog: field('data.context.activityLog'),
  resourceId: [field('resourceId'), field('authorization.scope')],
  evidence: field('authorization.evidence'),
} as const;

/** `monitoringService` values of activity-log alerts that are not about ARM operations. */
const NOT_ADMINISTRATIVE = new Set(['servicehealth', 'resource health']);

const NO_IP_HINT =
  'Azure Monitor activity-log alert payloads carry no caller IP. Export the activity log through a ' +
  'diagnostic setting (Event Hub or storage account) and post its {"records": [...]} to /ingest instead ' +
  '(records carry callerIpAddress), or send the Elastic alert';

const schemaIdOf = (doc: unknown): string | undefined => str(own(doc, 'schemaId'), 256);

/** Common alert schema: by `schemaId`, or a payload (or its `data`) with `essentials`/`alertContext`. */
export function isMonitorCommon(doc: unknown, r = new FieldReader()): boolean {
  if (!isObject(doc)) return false;
  // Marker reads (see fields.ts): without these, none of the fields below reads anything.
  if (
    doc.schemaId === undefined &&
    doc.data === undefined &&
    doc['data.essentials'] === undefined &&
    doc['data.alertContext'] === undefined &&
    doc.essentials === undefined &&
    doc.alertContext === undefined
  ) {
    return false;
  }
  const schemaId = schemaIdOf(doc);
  if (schemaId !== undefined) return schemaId.toLowerCase() === COMMON_SCHEMA_ID.toLowerCase();
  return (
    isObject(r.get(doc, COMMON.essentials)) ||
    isObject(r.get(doc, COMMON.alertContext)) ||
    isObject(own(doc, 'essentials')) ||
    isObject(own(doc, 'alertContext'))
  );
}

/** Legacy activity-log alert webhook: by `schemaId` or by `data.context.activityLog`. */
export function isMonitorLegacy(doc: unknown, r = new FieldReader()): boolean {
  if (!isObject(doc)) return false;
  // Marker reads (see fields.ts): without these, neither field below reads anything.
  if (
    doc.schemaId === undefined &&
    doc.data === undefined &&
    doc['data.context'] === undefined &&
    doc['data.context.activityLog'] === undefined
  ) {
    return false;
  }
  const schemaId = schemaIdOf(doc);
  if (schemaId !== undefined) return schemaId.toLowerCase() === LEGACY_ACTIVITY_LOG_SCHEMA_ID.toLowerCase();
  return isObject(r.get(doc, LEGACY.activityLog));
}

/** Another Azure Monitor payload (metric, log search, … schemas): never a detection. */
export function otherMonitorSchema(doc: unknown): string | undefined {
  const schemaId = schemaIdOf(doc);
  return schemaId !== undefined && isObject(own(doc, 'data')) ? schemaId : undefined;
}

/**
 * Format E, §5.1: an action-group payload in the common alert schema. Only activity-log alerts on
 * ARM operations can be detections; metric, log, service-health and resource-health alerts are
 * ignored. `claims` is a JSON string (possibly `"{}"`), and the payload has no caller IP unless
 * `httpRequest` is present.
 */
export function parseMonitorCommon(payload: unknown, r = new FieldReader()): ParseResult {
  // Accept the whole payload, its `data`, or (docs fragments) a bare `{alertContext}`.
  const data = isObject(own(payload, 'data')) ? (own(payload, 'data') as Json) : payload;
  const essentials = own(data, 'essentials');
  const ctx = own(data, 'alertContext');
  const signalType = str(own(essentials, 'signalType'), 128);
  const service = str(own(essentials, 'monitoringService'), 128);
  if (signalType !== undefined && signalType.toLowerCase() !== 'activity log') {
    return ignored(
      `Azure Monitor ${echo(signalType)} alert${service ? ` from ${echo(service)}` : ''} is not an activity-log alert: only activity-log alerts can be detections`,
    );
  }
  if (service !== undefined && NOT_ADMINISTRATIVE.has(service.toLowerCase())) {
    return ignored(`Azure Monitor ${echo(service)} alert is not about an ARM operation`);
  }
  if (!isObject(ctx)) return invalid('Azure Monitor common-schema payload has no data.alertContext');
  // The event's fields are read at fixed keys, as in records (see `ownValue`).
  const operation = text(unwrapValue(ownValue(ctx, 'operationName', ctx.operationName)));
  const outcome = text(unwrapValue(ownValue(ctx, 'status', ctx.status)));
  const match = matchOperation(operation, outcome, 'data.alertContext.status');
  if (!match.ok) return ignored(`Azure Monitor activity-log alert: ${match.reason}`);
  const claims = readClaims(jsonObject(ownValue(ctx, 'claims', ctx.claims)));
  const targets = own(essentials, 'alertTargetIDs');
  return buildDetection({
    sourceFormat: 'azure-monitor-common',
    operation: operation!,
    outcome,
    appId: claims.appId,
    appIdField: 'data.alertContext.claims (appid)',
    ip: clientIpAddress(ownValue(ctx, 'httpRequest', ctx.httpRequest)),
    ipField: 'data.alertContext.httpRequest.clientIpAddress',
    missingIpHint: NO_IP_HINT,
    time: ownValue(ctx, 'eventTimestamp', ctx.eventTimestamp),
    timeField: 'data.alertContext.eventTimestamp',
    claims,
    evidence: readEvidence(r.get(ctx, COMMON.evidence)),
    resourceId: r.first(ctx, COMMON.resourceId) ?? (Array.isArray(targets) ? targets[0] : undefined),
    correlationId: ownValue(ctx, 'correlationId', ctx.correlationId),
    caller: ownValue(ctx, 'caller', ctx.caller),
    azureAlert: alertInfo(essentials),
  });
}

/**
 * Format E, §5.2: the legacy (non-common) activity-log alert webhook. `claims` and `httpRequest`
 * are JSON strings.
 */
export function parseMonitorLegacy(payload: unknown, r = new FieldReader()): ParseResult {
  const log = r.get(payload, LEGACY.activityLog);
  if (!isObject(log)) return invalid('legacy activity-log alert payload has no data.context.activityLog');
  // The event's fields are read at fixed keys, as in records (see `ownValue`).
  const operation = text(unwrapValue(ownValue(log, 'operationName', log.operationName)));
  const outcome = text(unwrapValue(ownValue(log, 'status', log.status)));
  const match = matchOperation(operation, outcome, 'data.context.activityLog.status');
  if (!match.ok) return ignored(`Azure Monitor activity-log alert: ${match.reason}`);
  const claims = readClaims(jsonObject(ownValue(log, 'claims', log.claims)));
  return buildDetection({
    sourceFormat: 'azure-monitor-legacy',
    operation: operation!,
    outcome,
    appId: claims.appId,
    appIdField: 'data.context.activityLog.claims (appid)',
    ip: clientIpAddress(ownValue(log, 'httpRequest', log.httpRequest)),
    ipField: 'data.context.activityLog.httpRequest.clientIpAddress',
    missingIpHint: NO_IP_HINT,
    time: ownValue(log, 'eventTimestamp', log.eventTimestamp),
    timeField: 'data.context.activityLog.eventTimestamp',
    claims,
    evidence: readEvidence(r.get(log, LEGACY.evidence)),
    resourceId: r.first(log, LEGACY.resourceId),
    correlationId: ownValue(log, 'correlationId', log.correlationId),
    caller: ownValue(log, 'caller', log.caller),
  });
}

function alertInfo(essentials: unknown): AzureAlertInfo | undefined {
  if (!isObject(essentials)) return undefined;
  const info: AzureAlertInfo = {};
  const alertId = str(own(essentials, 'alertId'), 2048);
  if (alertId !== undefined) info.alertId = alertId;
  const alertRule = str(own(essentials, 'alertRule'), 1024);
  if (alertRule !== undefined) info.alertRule = alertRule;
  const severity = str(own(essentials, 'severity'), 64);
  if (severity !== undefined) info.severity = severity;
  const firedAt = parseEventTime(own(essentials, 'firedDateTime'));
  if (firedAt !== undefined) info.firedAt = firedAt;
  return info;
}

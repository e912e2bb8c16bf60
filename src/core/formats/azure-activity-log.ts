import type { ParseResult } from '../detection.ts';
import { matchOperation } from '../rule.ts';
import { buildDetection, ignored, text } from './build-detection.ts';
import { FieldReader, field, jsonObject, own, unwrapValue } from './fields.ts';
import { readClaims, readEvidence } from './identity.ts';

/** Field paths of a diagnostic-settings record (Event Hub / storage, FORMATS.md §4.2). */
const RECORD = {
  claims: field('identity.claims'),
  evidence: field('identity.authorization.evidence'),
} as const;

/** Field paths of a REST / portal activity-log event (FORMATS.md §4.1). */
const REST = {
  evidence: [field('authorization.evidence'), field('authorization')],
  resourceId: [field('resourceId'), field('authorization.scope')],
} as const;

/** True for a REST-shaped activity-log event (`eventTimestamp`, `operationName: {value}`). */
export function isActivityLogRest(doc: Record<string, unknown>): boolean {
  return (
    Object.hasOwn(doc, 'eventTimestamp') ||
    (typeof own(doc, 'operationName') === 'object' && own(doc, 'operationName') !== null)
  );
}

/** True for a resource-log record (`operationName` string with `time`/`resultType`/`callerIpAddress`/`resourceId`). */
export function isActivityLogRecord(doc: Record<string, unknown>): boolean {
  return (
    typeof own(doc, 'operationName') === 'string' &&
    (Object.hasOwn(doc, 'time') ||
      Object.hasOwn(doc, 'resultType') ||
      Object.hasOwn(doc, 'callerIpAddress') ||
      Object.hasOwn(doc, 'resourceId'))
  );
}

/**
 * Format D, §4.2: one record of the diagnostic-settings export (`{"records": [...]}` from Event Hub
 * or storage). Operation and resource id are usually upper-case here; evidence ids undashed.
 */
export function parseActivityLogRecord(doc: unknown, r = new FieldReader()): ParseResult {
  const operation = text(own(doc, 'operationName'));
  const outcome = text(own(doc, 'resultType'));
  const match = matchOperation(operation, outcome);
  if (!match.ok) return ignored(match.reason);
  const claims = readClaims(r.get(doc, RECORD.claims));
  return buildDetection({
    sourceFormat: 'azure-activity-log-record',
    operation: operation!,
    outcome,
    appId: claims.appId,
    appIdField: 'identity.claims.appid',
    ip: own(doc, 'callerIpAddress'),
    ipField: 'callerIpAddress',
    time: own(doc, 'time'),
    timeField: 'time',
    claims,
    evidence: readEvidence(r.get(doc, RECORD.evidence)),
    resourceId: own(doc, 'resourceId'),
    correlationId: own(doc, 'correlationId'),
    tenantId: own(doc, 'tenantId'),
  });
}

/**
 * Format D, §4.1: a REST / portal activity-log event. The caller IP is in `httpRequest` (an object,
 * or a JSON string when the event came out of an alert payload), which Azure documents as "usually"
 * present.
 */
export function parseActivityLogRest(doc: unknown, r = new FieldReader()): ParseResult {
  const operation = text(unwrapValue(own(doc, 'operationName')));
  const outcome = text(unwrapValue(own(doc, 'status')));
  const match = matchOperation(operation, outcome);
  if (!match.ok) return ignored(match.reason);
  const claims = readClaims(jsonObject(own(doc, 'claims')));
  return buildDetection({
    sourceFormat: 'azure-activity-log-rest',
    operation: operation!,
    outcome,
    appId: claims.appId,
    appIdField: 'claims.appid',
    ip: own(jsonObject(own(doc, 'httpRequest')), 'clientIpAddress'),
    ipField: 'httpRequest.clientIpAddress',
    missingIpHint:
      'export the activity log through a diagnostic setting and post its {"records": [...]} (they carry callerIpAddress)',
    time: own(doc, 'eventTimestamp'),
    timeField: 'eventTimestamp',
    claims,
    evidence: readEvidence(r.first(doc, REST.evidence)),
    resourceId: r.first(doc, REST.resourceId),
    correlationId: own(doc, 'correlationId'),
    caller: own(doc, 'caller'),
  });
}

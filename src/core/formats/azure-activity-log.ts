import type { ParseResult } from '../detection.ts';
import { matchOperation } from '../rule.ts';
import { buildDetection, ignored, text } from './build-detection.ts';
import { FieldReader, field, isObject, type Json, jsonObject, ownValue, unwrapValue } from './fields.ts';
import { readClaims, readEvidence } from './identity.ts';

/** Field paths of a REST / portal activity-log event (FORMATS.md §4.1). */
const REST = {
  evidence: [field('authorization.evidence'), field('authorization')],
  resourceId: [field('resourceId'), field('authorization.scope')],
} as const;

/** True for a REST-shaped activity-log event (`eventTimestamp`, `operationName: {value}`). */
export function isActivityLogRest(doc: Json): boolean {
  if (Object.hasOwn(doc, 'eventTimestamp')) return true;
  const operationName = ownValue(doc, 'operationName', doc.operationName);
  return typeof operationName === 'object' && operationName !== null;
}

/** True for a resource-log record (`operationName` string with `time`/`resultType`/`callerIpAddress`/`resourceId`). */
export function isActivityLogRecord(doc: Json): boolean {
  return (
    typeof ownValue(doc, 'operationName', doc.operationName) === 'string' &&
    (Object.hasOwn(doc, 'time') ||
      Object.hasOwn(doc, 'resultType') ||
      Object.hasOwn(doc, 'callerIpAddress') ||
      Object.hasOwn(doc, 'resourceId'))
  );
}

/**
 * Format D, §4.2: one record of the diagnostic-settings export (`{"records": [...]}` from Event Hub
 * or storage). Operation and resource id are usually upper-case here; evidence ids undashed.
 * Most events are records: their fields are read at fixed keys (see `ownValue`).
 */
export function parseActivityLogRecord(event: unknown): ParseResult {
  const doc: Json = isObject(event) ? event : {};
  const operation = text(ownValue(doc, 'operationName', doc.operationName));
  // The outcome as Elastic's pipeline takes it: `resultType`, else `properties.result`.
  const outcome = text(ownValue(doc, 'resultType', doc.resultType)) ?? propertiesResult(doc);
  const match = matchOperation(operation, outcome, 'resultType');
  if (!match.ok) return ignored(match.reason);
  const identity = recordIdentity(doc);
  // A forwarder that serialised the claims as text (as Azure Monitor's payloads carry them) is read too.
  const claims = readClaims(jsonObject(identity.claims));
  return buildDetection({
    sourceFormat: 'azure-activity-log-record',
    operation: operation!,
    outcome,
    appId: claims.appId,
    appIdField: 'identity.claims.appid',
    ip: ownValue(doc, 'callerIpAddress', doc.callerIpAddress),
    ipField: 'callerIpAddress',
    time: ownValue(doc, 'time', doc.time),
    timeField: 'time',
    claims,
    evidence: readEvidence(identity.evidence),
    resourceId: ownValue(doc, 'resourceId', doc.resourceId),
    correlationId: ownValue(doc, 'correlationId', doc.correlationId),
    tenantId: ownValue(doc, 'tenantId', doc.tenantId),
  });
}

function propertiesResult(doc: Json): string | undefined {
  const properties = ownValue(doc, 'properties', doc.properties);
  return isObject(properties) ? text(ownValue(properties, 'result', properties.result)) : undefined;
}

/**
 * `identity.claims` and `identity.authorization.evidence` of a record, as `FieldReader.get` reads
 * them (at every level the longest own key that spells the next parts wins), written out key by
 * key: reads at fixed keys cost a fraction of the reader's (see `ownValue`).
 */
function recordIdentity(doc: Json): { claims: unknown; evidence: unknown } {
  let claims: unknown;
  if (Object.hasOwn(doc, 'identity.claims')) claims = doc['identity.claims'];
  else {
    const identity = ownValue(doc, 'identity', doc.identity);
    if (isObject(identity)) claims = ownValue(identity, 'claims', identity.claims);
  }
  return { claims, evidence: recordEvidence(doc) };
}

function recordEvidence(doc: Json): unknown {
  if (Object.hasOwn(doc, 'identity.authorization.evidence')) return doc['identity.authorization.evidence'];
  if (Object.hasOwn(doc, 'identity.authorization')) return evidenceIn(doc['identity.authorization']);
  const identity = ownValue(doc, 'identity', doc.identity);
  if (!isObject(identity)) return undefined;
  if (Object.hasOwn(identity, 'authorization.evidence')) return identity['authorization.evidence'];
  return evidenceIn(ownValue(identity, 'authorization', identity.authorization));
}

const evidenceIn = (authorization: unknown): unknown =>
  isObject(authorization) ? ownValue(authorization, 'evidence', authorization.evidence) : undefined;

/**
 * Format D, §4.1: a REST / portal activity-log event. The caller IP is in `httpRequest` (an object,
 * or a JSON string when the event came out of an alert payload), which Azure documents as "usually"
 * present.
 */
export function parseActivityLogRest(event: unknown, r = new FieldReader()): ParseResult {
  // Fields at fixed keys are read as in records (see `ownValue`).
  const doc: Json = isObject(event) ? event : {};
  const operation = text(unwrapValue(ownValue(doc, 'operationName', doc.operationName)));
  const outcome = text(unwrapValue(ownValue(doc, 'status', doc.status)));
  const match = matchOperation(operation, outcome, 'status.value, as in an activity-log REST event');
  if (!match.ok) return ignored(match.reason);
  const claims = readClaims(jsonObject(ownValue(doc, 'claims', doc.claims)));
  return buildDetection({
    sourceFormat: 'azure-activity-log-rest',
    operation: operation!,
    outcome,
    appId: claims.appId,
    appIdField: 'claims.appid',
    ip: clientIpAddress(ownValue(doc, 'httpRequest', doc.httpRequest)),
    ipField: 'httpRequest.clientIpAddress',
    missingIpHint:
      'export the activity log through a diagnostic setting and post its {"records": [...]} (they carry callerIpAddress)',
    time: ownValue(doc, 'eventTimestamp', doc.eventTimestamp),
    timeField: 'eventTimestamp',
    claims,
    evidence: readEvidence(r.first(doc, REST.evidence)),
    resourceId: r.first(doc, REST.resourceId),
    correlationId: ownValue(doc, 'correlationId', doc.correlationId),
    caller: ownValue(doc, 'caller', doc.caller),
  });
}

/** `httpRequest.clientIpAddress` of an activity-log event, `httpRequest` being an object or a JSON string. */
export function clientIpAddress(httpRequest: unknown): unknown {
  const request = jsonObject(httpRequest);
  return request === undefined ? undefined : ownValue(request, 'clientIpAddress', request.clientIpAddress);
}

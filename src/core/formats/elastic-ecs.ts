import type { AutonomousSystem, Geo, ParseResult } from '../detection.ts';
import { matchOperation } from '../rule.ts';
import { buildDetection, type DetectionInput, ignored, text } from './build-detection.ts';
import { clipped, type FieldPath, FieldReader, field, isObject, num, str } from './fields.ts';
import { readClaims, readEvidence } from './identity.ts';

/** Field paths of an Elastic `logs-azure.activitylogs-*` document (FORMATS.md §1). */
export const ECS = {
  operation: [field('azure.activitylogs.operation_name'), field('event.action')],
  /** `event.outcome` is only set for success/failure `resultType`s (absent for `Start`). */
  outcome: [field('event.outcome'), field('azure.activitylogs.result_type')],
  claims: field('azure.activitylogs.identity.claims'),
  claimsInitiatedByUser: field('azure.activitylogs.identity.claims_initiated_by_user'),
  evidence: field('azure.activitylogs.identity.authorization.evidence'),
  sourceIp: [field('source.ip'), field('client.ip')],
  /** Where the pipeline puts a caller "IP" that is no IP address. */
  sourceAddress: field('source.address'),
  timestamp: field('@timestamp'),
  /** The field moved between package versions (FORMATS.md §0.5). */
  resourceId: [field('azure.resource.id'), field('cloud.resource_id'), field('azure.resource_id')],
  correlationId: [field('azure.correlation_id'), field('azure.correlation.id')],
  tenantId: [field('azure.tenant_id'), field('azure.activitylogs.tenant_id'), field('azure.tenant.id')],
  geoCountry: field('source.geo.country_name'),
  geoIso: field('source.geo.country_iso_code'),
  geoCity: field('source.geo.city_name'),
  asNumber: field('source.as.number'),
  asOrg: field('source.as.organization.name'),
  dataset: [field('data_stream.dataset'), field('event.dataset')],
  activitylogs: field('azure.activitylogs'),
  operationName: field('azure.activitylogs.operation_name'),
  appId: field('azure.activitylogs.identity.claims.appid'),
} as const;

export type EcsFields = Pick<
  DetectionInput,
  | 'claims'
  | 'appId'
  | 'appIdField'
  | 'ip'
  | 'ipField'
  | 'evidence'
  | 'resourceId'
  | 'correlationId'
  | 'tenantId'
  | 'geo'
  | 'as'
>;

/** True when `doc` looks like an Elastic activity-log document (nested or flat keys). */
export function isElasticActivityLog(doc: unknown, r = new FieldReader()): boolean {
  if (!isObject(doc)) return false;
  // Marker reads (see fields.ts): without these, none of the paths below reads anything.
  if (
    doc.azure === undefined &&
    doc['azure.activitylogs'] === undefined &&
    doc['azure.activitylogs.operation_name'] === undefined &&
    doc.data_stream === undefined &&
    doc['data_stream.dataset'] === undefined &&
    doc.event === undefined &&
    doc['event.dataset'] === undefined
  ) {
    return false;
  }
  return (
    r.get(doc, ECS.activitylogs) !== undefined ||
    r.get(doc, ECS.operationName) !== undefined ||
    r.first(doc, ECS.dataset) === 'azure.activitylogs'
  );
}

/** The ECS fields shared by activity-log documents and the alerts copied from them. */
export function readEcs(doc: unknown, r: FieldReader): EcsFields {
  return {
    claims: readClaims(objectAt(doc, ECS.claims, r), r.get(doc, ECS.claimsInitiatedByUser)),
    appId: r.get(doc, ECS.appId),
    appIdField: ECS.appId.dotted,
    ...sourceIp(doc, r),
    evidence: readEvidence(objectAt(doc, ECS.evidence, r)),
    resourceId: r.first(doc, ECS.resourceId),
    correlationId: r.first(doc, ECS.correlationId),
    tenantId: r.first(doc, ECS.tenantId),
    geo: readGeo(doc, r),
    as: readAs(doc, r),
  };
}

/**
 * The caller IP. Elastic's pipeline moves a `callerIpAddress` that is not an IP to `source.address`
 * (leaving `source.ip` empty): that value is judged, so the reason names it.
 */
function sourceIp(doc: unknown, r: FieldReader): Pick<EcsFields, 'ip' | 'ipField'> {
  const ip = r.first(doc, ECS.sourceIp);
  if (ip !== undefined && ip !== null && ip !== '') return { ip, ipField: 'source.ip' };
  const address = r.get(doc, ECS.sourceAddress);
  return address === undefined ? { ip, ipField: 'source.ip' } : { ip: address, ipField: 'source.address' };
}

/**
 * The object at `path`; in a fully flattened document (every field a dotted key at the top, as
 * Elasticsearch's `fields` give them), one assembled from its `path.<key>` keys.
 */
function objectAt(doc: unknown, path: FieldPath, r: FieldReader): unknown {
  const value = r.get(doc, path);
  if (isObject(value) || !isObject(doc)) return value;
  const prefix = `${path.dotted}.`;
  let out: Record<string, unknown> | undefined;
  for (const key in doc) {
    if (!Object.hasOwn(doc, key) || !key.startsWith(prefix)) continue;
    // No prototype: a key such as `….evidence.__proto__` stays a plain entry.
    out ??= Object.create(null) as Record<string, unknown>;
    out[key.slice(prefix.length)] = doc[key];
  }
  return out ?? value;
}

function readGeo(doc: unknown, r: FieldReader): Geo | undefined {
  const geo: Geo = {};
  const countryName = clipped(r.get(doc, ECS.geoCountry), 256);
  if (countryName !== undefined) geo.countryName = countryName;
  const countryIsoCode = str(r.get(doc, ECS.geoIso), 16);
  if (countryIsoCode !== undefined) geo.countryIsoCode = countryIsoCode;
  const cityName = clipped(r.get(doc, ECS.geoCity), 256);
  if (cityName !== undefined) geo.cityName = cityName;
  return Object.keys(geo).length > 0 ? geo : undefined;
}

function readAs(doc: unknown, r: FieldReader): AutonomousSystem | undefined {
  const as: AutonomousSystem = {};
  const number = num(r.get(doc, ECS.asNumber));
  if (number !== undefined) as.number = number;
  const organizationName = clipped(r.get(doc, ECS.asOrg), 512);
  if (organizationName !== undefined) as.organizationName = organizationName;
  return Object.keys(as).length > 0 ? as : undefined;
}

/** Format A: a `logs-azure.activitylogs-*` document (after Elastic's ingest pipeline). */
export function parseElasticEcs(doc: unknown, r = new FieldReader()): ParseResult {
  const operation = text(r.first(doc, ECS.operation));
  const outcome = text(r.first(doc, ECS.outcome));
  const match = matchOperation(operation, outcome, 'event.outcome or azure.activitylogs.result_type');
  if (!match.ok) return ignored(match.reason);
  // Most documents of an activity-log stream stop above; a detection is read through some 25 paths.
  r.listKeys();
  return buildDetection({
    ...readEcs(doc, r),
    sourceFormat: 'elastic-ecs',
    operation: operation!,
    outcome,
    time: r.get(doc, ECS.timestamp),
    timeField: '@timestamp',
  });
}

/**
 * Arc-shaped detection inputs for tests, in every source format.
 *
 * No public sample of an Arc `listClusterUserCredential` activity record exists (FORMATS.md §0.8),
 * so every event built here is DERIVED: it starts from a real public sample in
 * `../shared/fixtures` (loaded at run time, see `FIXTURES_DIR`) and overwrites the operation,
 * identity, caller IP, time, outcome and resource fields. Name tests that use them accordingly.
 *
 * Realism choices (what Azure and Elastic really send, FORMATS.md §0):
 * - Event Hub records, ECS documents and Elastic alerts carry the operation and the resource id
 *   UPPER-CASE (default cluster id `ARC.clusterIdUpper`); REST and Azure Monitor payloads carry
 *   them mixed-case (`ARC.clusterId`). A `clusterId` or `operation` you pass is used verbatim.
 * - Evidence ids are undashed (32 hex) in records, ECS and alerts; claims carry the dashed object id.
 * - ECS/alert evidence keys are snake_case (`principal_type`), claim keys have `.` → `_`.
 * - Record/REST times have 7 fractional digits, ECS `@timestamp` is cut to milliseconds, common
 *   schema times end in `+00:00`. A `time` string you pass is used verbatim in every format.
 * - The ECS document is made from the record built with the same options (as Elastic's pipeline
 *   would), so the two describe the same activity-log event.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { SourceFormat } from '../../src/core/detection.ts';
import { ARC_RULE_ID, ARC_RULE_NAME, LIST_CLUSTER_USER_CREDENTIAL } from '../../src/core/rule.ts';

/** The shared, read-only fixtures (real public samples, see PROVENANCE.md there). */
export const FIXTURES_DIR = path.resolve(import.meta.dirname, '../../../shared/fixtures');

export const ALL_FORMATS: readonly SourceFormat[] = [
  'elastic-ecs',
  'elastic-alert',
  'azure-activity-log-rest',
  'azure-activity-log-record',
  'azure-monitor-common',
  'azure-monitor-legacy',
];

const SUB = '6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const RG = 'rg-arc-prod';
const CLUSTER = 'arc-prod-01';
const CLUSTER_ID = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Kubernetes/connectedClusters/${CLUSTER}`;
/** As Event Hub records carry it: names upper-cased, the subscription GUID as it was. */
const CLUSTER_ID_UPPER = `/SUBSCRIPTIONS/${SUB}/RESOURCEGROUPS/${RG.toUpperCase()}/PROVIDERS/MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/${CLUSTER.toUpperCase()}`;

/** Defaults of every derived event. Dashed GUIDs; the builders undash evidence ids themselves. */
export const ARC = {
  appId: '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20',
  principalId: '4c2a9e71-8b3d-4f05-a6c1-2d7e9b0f5a38',
  tenantId: '9e8d7c6b-5a49-4382-b1c0-f1e2d3c4b5a6',
  ip: '203.0.113.7',
  /** Event time as Azure sends it (7 fractional digits). */
  time: '2026-03-12T09:15:27.3554259Z',
  /** The same instant as the parsers report it. */
  timeIso: '2026-03-12T09:15:27.355Z',
  subscriptionId: SUB,
  resourceGroup: RG,
  clusterName: CLUSTER,
  clusterId: CLUSTER_ID,
  clusterIdUpper: CLUSTER_ID_UPPER,
  clusterKey: CLUSTER_ID.toLowerCase(),
  correlationId: 'd3b07384-d9a0-4c1f-8e2b-7a6c5f4e3d21',
  operationId: 'a1e5f7c9-3b2d-4e6f-8a0b-1c2d3e4f5a6b',
  eventDataId: 'f0e1d2c3-b4a5-4968-8776-655443322110',
  operation: LIST_CLUSTER_USER_CREDENTIAL,
  operationUpper: LIST_CLUSTER_USER_CREDENTIAL.toUpperCase(),
  role: 'Azure Arc Enabled Kubernetes Cluster User Role',
  /** Built-in role id of "Azure Arc Enabled Kubernetes Cluster User Role". */
  roleDefinitionId: '00493d72-78f6-4148-b6c5-d3ce8e4799dd',
  roleAssignmentId: '5d1f3a7b-9c2e-4b48-a6d0-e8f1a2b3c4d5',
  roleAssignmentScope: `/subscriptions/${SUB}/resourceGroups/${RG}`,
  upn: 'mallory@contoso.example',
  userName: 'Mallory Example',
  alertUuid: '8f14e45f-ceea-467a-9575-1a2b3c4d5e6f',
  ruleUuid: 'c2a4e6f8-0b1d-4c3e-9f5a-7b9d1e3f5a7c',
  kibanaUrl: 'https://kibana.example.com',
  geo: { countryName: 'United Kingdom', countryIsoCode: 'GB', cityName: 'London' },
  as: { number: 64500, organizationName: 'Example Transit Ltd (DERIVED)' },
} as const;

export interface ArcEventOptions {
  /** `claims.appid`; `null` leaves it out. */
  appId?: string | null;
  /** Caller IP; `null` leaves it out. */
  ip?: string | null;
  /** A string is used verbatim in every format; a Date is written the way each channel writes times. */
  time?: string | Date;
  /** Resource id; `null` leaves it out. Default: `ARC.clusterIdUpper` or `ARC.clusterId`, see above. */
  clusterId?: string | null;
  /**
   * Outcome as the source spells it (record `resultType`, REST `status.value`, ECS `result_type`,
   * Monitor `status`); `null` leaves it out. ECS sets `event.outcome` (lower-cased) only for
   * success/failure, as Elastic's pipeline does. Default: `Success` (records, ECS, alerts) or
   * `Succeeded` (REST, Azure Monitor).
   */
  outcome?: string | null;
  /** Default: the Arc operation, upper-case in records/ECS/alerts. */
  operation?: string;
  /** Elastic alerts: `kibana.alert.uuid` (and `_id`). */
  alertUuid?: string;
  principalType?: 'ServicePrincipal' | 'User';
  /** Dashed object id of the caller (evidence gets it undashed). */
  principalId?: string;
  correlationId?: string;
  tenantId?: string;
  upn?: string;
  userName?: string;
  role?: string;
  /** ECS/alert `source.geo.*`; `null` leaves it out. */
  geo?: { countryName?: string; countryIsoCode?: string; cityName?: string } | null;
  /** ECS/alert `source.as.*`; `null` (the default, as in Elastic's test data) leaves it out. */
  as?: { number?: number; organizationName?: string } | null;
  /** Elastic alerts: `webhook` (fully nested element of a Kibana webhook's `alerts`, the default) or `source` (flat dotted kibana keys, as the alert index stores `_source`). */
  alertShape?: 'webhook' | 'source';
  /** Elastic alerts: `kibana.alert.url`; `null` leaves it out. */
  alertUrl?: string | null;
  /** Dotted-path overrides applied last (`undefined` deletes). A key holding dots at some level (`kibana.alert.uuid`) is matched whole. */
  set?: Record<string, unknown>;
}

type Json = Record<string, unknown>;

const fixtureCache = new Map<string, unknown>();

/** A real fixture, parsed once and cloned on every call. */
export function loadFixture<T = Json>(relPath: string): T {
  let parsed = fixtureCache.get(relPath);
  if (parsed === undefined) {
    parsed = JSON.parse(readFileSync(path.join(FIXTURES_DIR, relPath), 'utf8'));
    fixtureCache.set(relPath, parsed);
  }
  return structuredClone(parsed) as T;
}

/** The lines of a real NDJSON/.log fixture, each parsed. */
export function loadNdjsonFixture(relPath: string): Json[] {
  return readFileSync(path.join(FIXTURES_DIR, relPath), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Json);
}

export const undash = (guid: string): string => guid.replaceAll('-', '').toLowerCase();

/** Reads a dotted path, nested objects only. */
export function getPath(obj: unknown, dotted: string): unknown {
  let cur: unknown = obj;
  for (const seg of dotted.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Json)[seg];
  }
  return cur;
}

/**
 * Sets a dotted path, creating objects as needed; `undefined` deletes. At each level the longest
 * own key spelling the next part of the path is followed (as the parsers read), so flat
 * `kibana.alert.*` keys are set in place.
 */
export function setPath(obj: Json, dotted: string, value: unknown): void {
  let cur: Json = obj;
  const segs = dotted.split('.');
  let i = 0;
  while (i < segs.length) {
    let key = segs[i]!;
    let width = 1;
    for (let j = segs.length; j > i + 1; j--) {
      const joined = segs.slice(i, j).join('.');
      if (Object.hasOwn(cur, joined)) {
        key = joined;
        width = j - i;
        break;
      }
    }
    if (i + width === segs.length) {
      if (value === undefined) delete cur[key];
      else cur[key] = value;
      return;
    }
    const next = cur[key];
    if (next === null || typeof next !== 'object') {
      if (value === undefined) return;
      cur[key] = {};
    }
    cur = cur[key] as Json;
    i += width;
  }
}

interface Resolved {
  appId: string | null;
  ip: string | null;
  time: string;
  principalType: 'ServicePrincipal' | 'User';
  principalId: string;
  correlationId: string;
  tenantId: string;
  upn: string;
  userName: string;
  role: string;
}

function resolve(opts: ArcEventOptions): Resolved {
  const time = opts.time ?? ARC.time;
  return {
    appId: opts.appId === undefined ? ARC.appId : opts.appId,
    ip: opts.ip === undefined ? ARC.ip : opts.ip,
    // Azure writes 7 fractional digits: a Date's milliseconds get four zeros.
    time: typeof time === 'string' ? time : time.toISOString().replace(/Z$/, '0000Z'),
    principalType: opts.principalType ?? 'ServicePrincipal',
    principalId: opts.principalId ?? ARC.principalId,
    correlationId: opts.correlationId ?? ARC.correlationId,
    tenantId: opts.tenantId ?? ARC.tenantId,
    upn: opts.upn ?? ARC.upn,
    userName: opts.userName ?? ARC.userName,
    role: opts.role ?? ARC.role,
  };
}

/** Elastic keeps milliseconds: `2026-…27.3554259Z` → `2026-…27.355Z` (cut, not rounded). */
function elasticTime(time: string): string {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(time);
  if (!m) return time;
  return `${m[1]}.${(m[2] ?? '').padEnd(3, '0').slice(0, 3)}Z`;
}

/** The common alert schema writes `+00:00` instead of `Z`. */
const monitorTime = (time: string): string => time.replace(/Z$/, '+00:00');

function plusMinutes(time: string, minutes: number): string {
  const ms = Date.parse(elasticTime(time));
  return Number.isNaN(ms) ? time : new Date(ms + minutes * 60_000).toISOString();
}

function claimsFor(r: Resolved, dotKeys: boolean): Json {
  const k = (key: string) => (dotKeys ? key : key.replaceAll('.', '_'));
  const claims: Json = {
    aud: 'https://management.core.windows.net/',
    iss: `https://sts.windows.net/${r.tenantId}/`,
    iat: '1773302127',
    nbf: '1773302127',
    exp: '1773306027',
    appidacr: r.principalType === 'User' ? '0' : '1',
    idtyp: r.principalType === 'User' ? 'user' : 'app',
    [k('http://schemas.microsoft.com/identity/claims/identityprovider')]:
      `https://sts.windows.net/${r.tenantId}/`,
    [k('http://schemas.microsoft.com/identity/claims/objectidentifier')]: r.principalId,
    [k('http://schemas.microsoft.com/identity/claims/tenantid')]: r.tenantId,
    [k('http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier')]: r.principalId,
    uti: 'AbCdEfGhIjKlMnOpQrStAA',
    ver: '1.0',
  };
  if (r.appId !== null) claims.appid = r.appId;
  if (r.principalType === 'User') {
    claims[k('http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn')] = r.upn;
    claims[k('http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name')] = r.upn;
    // Elastic moves `name` to claims_initiated_by_user.fullname (done in ecsFromRecord).
    claims.name = r.userName;
  }
  return claims;
}

function clusterIdFor(opts: ArcEventOptions, upper: boolean): string | null {
  if (opts.clusterId !== undefined) return opts.clusterId;
  return upper ? ARC.clusterIdUpper : ARC.clusterId;
}

function outcomeFor(opts: ArcEventOptions, fallback: string): string | null {
  return opts.outcome === undefined ? fallback : opts.outcome;
}

/** Event Hub / storage resource-log record (§4.2), from the first line of test-activitylogs-raw. */
function record(opts: ArcEventOptions): Json {
  const r = resolve(opts);
  const rec = loadNdjsonFixture('elastic-activitylogs/test-activitylogs-raw.25043e5f.log')[0]!;
  const resourceId = clusterIdFor(opts, true);
  const outcome = outcomeFor(opts, 'Success');
  rec.time = r.time;
  rec.operationName = opts.operation ?? ARC.operationUpper;
  rec.category = 'Action';
  rec.correlationId = r.correlationId;
  rec.tenantId = r.tenantId;
  rec.resultSignature = outcome === 'Start' ? 'Started.' : 'Succeeded.OK';
  setOrDelete(rec, 'resultType', outcome);
  setOrDelete(rec, 'callerIpAddress', r.ip);
  setOrDelete(rec, 'resourceId', resourceId);
  rec.identity = {
    authorization: {
      action: ARC.operation,
      scope: resourceId ?? ARC.clusterId,
      evidence: {
        role: r.role,
        roleAssignmentScope: ARC.roleAssignmentScope,
        roleAssignmentId: undash(ARC.roleAssignmentId),
        roleDefinitionId: undash(ARC.roleDefinitionId),
        principalId: undash(r.principalId),
        principalType: r.principalType,
      },
    },
    claims: claimsFor(r, true),
  };
  rec.properties = { statusCode: 'OK', serviceRequestId: null, eventCategory: 'Administrative' };
  return rec;
}

/**
 * The ECS document Elastic's activitylogs pipeline makes of `rec` (§1): starts from the real expected
 * output of test-activitylogs-raw (element 0) and sample_event, and maps the record's fields.
 */
function ecsFromRecord(rec: Json, opts: ArcEventOptions): Json {
  const expected = loadFixture<{ expected: Json[] }>(
    'elastic-activitylogs/test-activitylogs-raw.log-expected.37c97e14.json',
  ).expected[0]!;
  const sample = loadFixture('elastic-activitylogs/sample_event.37c97e14.json');
  const doc: Json = structuredClone(expected);
  const identity = rec.identity as { authorization: Json & { evidence: Json }; claims: Json };
  const ev = identity.authorization.evidence;
  const claims: Json = {};
  let fullname: unknown;
  for (const [key, value] of Object.entries(identity.claims)) {
    if (key === 'name') fullname = value;
    else claims[key === 'appid' ? key : key.replaceAll('.', '_')] = value;
  }
  const resultType = rec.resultType as string | undefined;
  const resourceId = rec.resourceId as string | undefined;
  const ip = rec.callerIpAddress as string | undefined;

  doc['@timestamp'] = elasticTime(rec.time as string);
  const activitylogs: Json = {
    category: rec.category,
    event_category: 'Administrative',
    operation_name: rec.operationName,
    result_signature: rec.resultSignature,
    identity: {
      authorization: {
        action: identity.authorization.action,
        scope: identity.authorization.scope,
        evidence: {
          principal_id: ev.principalId,
          principal_type: ev.principalType,
          role: ev.role,
          role_assignment_id: ev.roleAssignmentId,
          role_assignment_scope: ev.roleAssignmentScope,
          role_definition_id: ev.roleDefinitionId,
        },
      },
      claims,
      ...(fullname === undefined
        ? {}
        : {
            claims_initiated_by_user: {
              fullname,
              schema: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims',
            },
          }),
    },
    tenant_id: rec.tenantId,
  };
  if (resultType !== undefined) activitylogs.result_type = resultType;
  const azure: Json = {
    activitylogs,
    correlation: { id: rec.correlationId },
    correlation_id: rec.correlationId,
    tenant: { id: rec.tenantId },
  };
  const event = doc.event as Json;
  event.action = rec.operationName;
  event.dataset = 'azure.activitylogs';
  event.ingested = plusMinutes(rec.time as string, 2).replace('Z', '123456Z');
  event.original = JSON.stringify(rec);
  delete event.outcome;
  if (resultType !== undefined && /^(success|failure)$/i.test(resultType)) {
    event.outcome = resultType.toLowerCase();
  }
  const cloud = doc.cloud as Json;
  if (resourceId === undefined) {
    delete cloud.resource_id;
  } else {
    const m = /^\/SUBSCRIPTIONS\/([^/]+)\/RESOURCEGROUPS\/([^/]+)\/PROVIDERS\/([^/]+\/[^/]+)\/([^/]+)$/i.exec(
      resourceId,
    );
    azure.resource = {
      id: resourceId,
      ...(m ? { group: m[2], provider: m[3], name: m[4] } : {}),
    };
    azure.resource_id = resourceId;
    cloud.resource_id = resourceId;
    if (m) {
      azure.subscription_id = m[1];
      azure.resource_group = { name: m[2] };
      azure.resource_provider = { namespace: m[3] };
      cloud.account = { id: m[1] };
    }
  }
  doc.azure = azure;
  doc.data_stream = sample.data_stream;
  doc.related = {
    entity: [resourceId, ev.principalId].filter((x) => x !== undefined),
    ...(ip === undefined ? {} : { ip: [ip] }),
  };
  if (ip === undefined) {
    delete doc.source;
    delete doc.client;
  } else {
    (doc.source as Json).ip = ip;
    doc.client = { ip };
  }
  const source = doc.source as Json | undefined;
  const geo = opts.geo === undefined ? ARC.geo : opts.geo;
  if (source) {
    if (geo === null) delete source.geo;
    else {
      source.geo = {
        ...(source.geo as Json),
        city_name: geo.cityName,
        country_name: geo.countryName,
        country_iso_code: geo.countryIsoCode,
      };
    }
    if (opts.as) {
      source.as = { number: opts.as.number, organization: { name: opts.as.organizationName } };
    }
  }
  if (geo === null) delete doc.geo;
  return doc;
}

function elasticEcs(opts: ArcEventOptions): Json {
  return ecsFromRecord(record(opts), opts);
}

/**
 * An Elastic Security alert for the Arc rule (§2, §3): the ECS document plus the kibana.alert.*
 * fields of the real new_terms alert `_source`, rewritten for this rule.
 */
function elasticAlert(opts: ArcEventOptions): Json {
  const r = resolve(opts);
  const ecs = elasticEcs(opts);
  const real = loadFixture('elastic-alert/kibana-new_terms-alert-source.DERIVED.json');
  const uuid = opts.alertUuid ?? ARC.alertUuid;
  const originalTime = ecs['@timestamp'] as string;
  const url =
    opts.alertUrl === undefined
      ? `${ARC.kibanaUrl}/app/security/alerts/redirect/${uuid}?index=.alerts-security.alerts-default&timestamp=${originalTime}`
      : opts.alertUrl;

  const flat: Json = {};
  for (const [key, value] of Object.entries(real)) {
    if (key.startsWith('kibana.')) flat[key] = value;
  }
  const ecsEvent = ecs.event as Json;
  for (const key of Object.keys(flat)) {
    if (key.startsWith('kibana.alert.original_event.')) delete flat[key];
  }
  for (const [key, value] of Object.entries(ecsEvent)) {
    if (key !== 'original') flat[`kibana.alert.original_event.${key}`] = value;
  }
  const params = flat['kibana.alert.rule.parameters'] as Json;
  Object.assign(params, {
    description: 'Detects when a service principal or user performs an Azure Arc cluster credential listing…',
    risk_score: 47,
    severity: 'medium',
    rule_id: ARC_RULE_ID,
    from: 'now-9m',
    query:
      'data_stream.dataset: "azure.activitylogs" and azure.activitylogs.operation_name: "MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/LISTCLUSTERUSERCREDENTIAL/ACTION" and event.outcome: (Success or success)',
    new_terms_fields: ['azure.activitylogs.identity.claims.appid', 'source.ip'],
    history_window_start: 'now-7d',
    index: ['logs-azure.activitylogs-*'],
    timestamp_override: 'event.ingested',
  });
  const sourceIp = (ecs.source as Json | undefined)?.ip;
  Object.assign(flat, {
    'kibana.alert.uuid': uuid,
    'kibana.alert.new_terms': [r.appId, sourceIp].filter((x) => x !== undefined && x !== null),
    'kibana.alert.original_time': originalTime,
    'kibana.alert.start': plusMinutes(r.time, 4),
    'kibana.alert.last_detected': plusMinutes(r.time, 4),
    'kibana.alert.rule.name': ARC_RULE_NAME,
    'kibana.alert.rule.rule_id': ARC_RULE_ID,
    'kibana.alert.rule.uuid': ARC.ruleUuid,
    'kibana.alert.rule.description': params.description,
    'kibana.alert.rule.indices': ['logs-azure.activitylogs-*'],
    'kibana.alert.rule.from': 'now-9m',
    'kibana.alert.rule.severity': 'medium',
    'kibana.alert.rule.risk_score': 47,
    'kibana.alert.severity': 'medium',
    'kibana.alert.risk_score': 47,
    'kibana.alert.reason': `event with source ${sourceIp ?? '(none)'} created medium alert ${ARC_RULE_NAME}.`,
    'kibana.alert.ancestors': [
      {
        id: 'k3Q9pZ4BkG7xYvT2mN8a',
        type: 'event',
        index: '.ds-logs-azure.activitylogs-default-2026.03.01-000001',
        depth: 0,
      },
    ],
    'kibana.version': '9.3.0',
  });
  if (url !== null) flat['kibana.alert.url'] = url;

  const { event, ...ecsRest } = ecs;
  const alertTimestamp = plusMinutes(r.time, 4);
  if ((opts.alertShape ?? 'webhook') === 'source') {
    const doc: Json = {
      ...flat,
      ...ecsRest,
      event: { ...(event as Json) },
      'event.kind': 'signal',
      '@timestamp': alertTimestamp,
    };
    delete (doc.event as Json).kind;
    return applySet(doc, opts);
  }
  // Kibana's webhook context: `{ ...expandDottedObject(convertToLegacyAlert(alert)), ...expandDottedObject(alert) }`.
  const nested: Json = {};
  for (const [key, value] of Object.entries(flat)) setPath(nested, key, value);
  const alert = (nested.kibana as Json).alert as Json;
  const rule = alert.rule as Json;
  const doc: Json = {
    _id: uuid,
    _index: '.internal.alerts-security.alerts-default-000001',
    signal: {
      _meta: { version: 8 },
      rule: {
        id: rule.uuid,
        rule_id: rule.rule_id,
        name: rule.name,
        type: rule.type,
        severity: rule.severity,
        risk_score: rule.risk_score,
      },
      original_time: originalTime,
      reason: alert.reason,
      status: 'open',
      depth: 1,
      ancestors: alert.ancestors,
      original_event: alert.original_event,
    },
    ...nested,
    ...ecsRest,
    event: { ...(event as Json), kind: 'signal' },
    '@timestamp': alertTimestamp,
  };
  return applySet(doc, opts);
}

/** REST / portal activity-log event (§4.1), from the Administrative docs sample. */
function restEvent(opts: ArcEventOptions): Json {
  const r = resolve(opts);
  const ev = loadFixture('azure-activity-log/activity-log-rest-administrative.docs-sample.json');
  const resourceId = clusterIdFor(opts, false);
  const operation = opts.operation ?? ARC.operation;
  const outcome = outcomeFor(opts, 'Succeeded');
  ev.authorization = { action: ARC.operation, scope: resourceId ?? ARC.clusterId };
  ev.caller = r.principalType === 'User' ? r.upn : r.principalId;
  ev.claims = claimsFor(r, true);
  ev.correlationId = r.correlationId;
  ev.eventDataId = ARC.eventDataId;
  ev.operationId = ARC.operationId;
  ev.eventTimestamp = r.time;
  ev.submissionTimestamp = plusMinutes(r.time, 1).replace('Z', '0000Z');
  ev.category = { value: 'Administrative', localizedValue: 'Administrative' };
  ev.operationName = { value: operation, localizedValue: 'List cluster user credentials' };
  ev.resourceGroupName = ARC.resourceGroup;
  ev.resourceProviderName = { value: 'Microsoft.Kubernetes', localizedValue: 'Microsoft.Kubernetes' };
  ev.resourceType = {
    value: 'Microsoft.Kubernetes/connectedClusters',
    localizedValue: 'Microsoft.Kubernetes/connectedClusters',
  };
  ev.subscriptionId = ARC.subscriptionId;
  ev.properties = { statusCode: 'OK', serviceRequestId: null, eventCategory: 'Administrative' };
  setOrDelete(ev, 'resourceId', resourceId);
  ev.id = `${resourceId ?? ARC.clusterId}/events/${ARC.eventDataId}/ticks/639088701273554259`;
  if (outcome === null) delete ev.status;
  else ev.status = { value: outcome, localizedValue: outcome };
  // The current docs sample omits httpRequest; older versions of the doc show it (FORMATS.md §4.1).
  if (r.ip === null) delete ev.httpRequest;
  else
    ev.httpRequest = {
      clientRequestId: '7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
      clientIpAddress: r.ip,
      method: 'POST',
    };
  return ev;
}

/** Common-alert-schema action-group payload (§5.1), from the test-action-group docs sample. */
function monitorCommon(opts: ArcEventOptions): Json {
  const r = resolve(opts);
  const payload = loadFixture(
    'azure-monitor-alert/common-schema-activitylog-administrative.test-action-group.docs-sample.json',
  );
  const data = payload.data as { essentials: Json; alertContext: Json };
  const resourceId = clusterIdFor(opts, false);
  const outcome = outcomeFor(opts, 'Succeeded');
  const operation = opts.operation ?? ARC.operation;
  Object.assign(data.essentials, {
    alertId: `/subscriptions/${ARC.subscriptionId}/providers/Microsoft.AlertsManagement/alerts/1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b`,
    alertRule: 'arc-list-cluster-user-credential',
    severity: 'Sev1',
    alertTargetIDs: [(resourceId ?? ARC.clusterId).toLowerCase()],
    configurationItems: [ARC.clusterName],
    firedDateTime: plusMinutes(r.time, 2).replace('Z', '0000Z'),
    description: 'Arc cluster user credential listed',
  });
  const ctx = data.alertContext;
  ctx.authorization = { action: ARC.operation, scope: resourceId ?? ARC.clusterId };
  ctx.claims = JSON.stringify(claimsFor(r, true));
  ctx.caller = r.principalType === 'User' ? r.upn : r.principalId;
  ctx.correlationId = r.correlationId;
  ctx.eventTimestamp = monitorTime(r.time);
  ctx.eventDataId = ARC.eventDataId;
  ctx.operationName = operation;
  ctx.operationId = ARC.operationId;
  ctx.properties = {
    eventCategory: 'Administrative',
    ...(resourceId === null ? {} : { entity: resourceId }),
    message: operation,
    hierarchy: `${r.tenantId}/${ARC.subscriptionId}`,
  };
  setOrDelete(ctx, 'status', outcome);
  ctx.submissionTimestamp = monitorTime(plusMinutes(r.time, 1));
  if (r.ip !== null)
    ctx.httpRequest = JSON.stringify({ clientRequestId: '7a1b2c3d', clientIpAddress: r.ip, method: 'POST' });
  if (resourceId === null) {
    delete (ctx.authorization as Json).scope;
    delete data.essentials.alertTargetIDs;
  }
  return applySet(payload, opts);
}

/** Legacy `Microsoft.Insights/activityLogs` webhook payload (§5.2), from its docs sample. */
function monitorLegacy(opts: ArcEventOptions): Json {
  const r = resolve(opts);
  const payload = loadFixture(
    'azure-monitor-alert/legacy-activityLogs-webhook-administrative.docs-sample.json',
  );
  const log = (payload.data as { context: { activityLog: Json } }).context.activityLog;
  const resourceId = clusterIdFor(opts, false);
  const outcome = outcomeFor(opts, 'Succeeded');
  log.authorization = { action: ARC.operation, scope: resourceId ?? ARC.clusterId };
  log.claims = JSON.stringify(claimsFor(r, true));
  log.caller = r.principalType === 'User' ? r.upn : r.principalId;
  log.channels = 'Operation';
  log.correlationId = r.correlationId;
  log.eventDataId = ARC.eventDataId;
  log.eventSource = 'Administrative';
  log.eventTimestamp = r.time;
  log.level = 'Informational';
  log.operationId = ARC.operationId;
  log.operationName = opts.operation ?? ARC.operation;
  setOrDelete(log, 'resourceId', resourceId);
  log.resourceGroupName = ARC.resourceGroup;
  log.resourceProviderName = 'Microsoft.Kubernetes';
  log.resourceType = 'Microsoft.Kubernetes/connectedClusters';
  setOrDelete(log, 'status', outcome);
  log.subStatus = '';
  log.subscriptionId = ARC.subscriptionId;
  log.submissionTimestamp = plusMinutes(r.time, 1).replace('Z', '0000Z');
  if (r.ip === null) delete log.httpRequest;
  else
    log.httpRequest = JSON.stringify({ clientRequestId: '7a1b2c3d', clientIpAddress: r.ip, method: 'POST' });
  return applySet(payload, opts);
}

function setOrDelete(obj: Json, key: string, value: unknown): void {
  if (value === null || value === undefined) delete obj[key];
  else obj[key] = value;
}

function applySet(doc: Json, opts: ArcEventOptions): Json {
  if (opts.set) for (const [key, value] of Object.entries(opts.set)) setPath(doc, key, value);
  return doc;
}

/**
 * ONE DERIVED Arc `listClusterUserCredential` event in `format` (see the module comment):
 * - `elastic-ecs`: a `logs-azure.activitylogs-*` document;
 * - `elastic-alert`: one element of a Kibana webhook's `alerts` (or a flat `_source`, `alertShape`);
 * - `azure-activity-log-record`: one Event Hub record (wrap with `recordsEnvelope`);
 * - `azure-activity-log-rest`: one REST activity-log event;
 * - `azure-monitor-common` / `azure-monitor-legacy`: a whole action-group payload (claims and
 *   httpRequest as JSON strings).
 */
export function arcEvent(format: SourceFormat, opts: ArcEventOptions = {}): Json {
  switch (format) {
    case 'elastic-ecs':
      return applySet(elasticEcs(opts), opts);
    case 'elastic-alert':
      return elasticAlert(opts);
    case 'azure-activity-log-record':
      return applySet(record(opts), opts);
    case 'azure-activity-log-rest':
      return applySet(restEvent(opts), opts);
    case 'azure-monitor-common':
      return monitorCommon(opts);
    case 'azure-monitor-legacy':
      return monitorLegacy(opts);
  }
}

/** The body of the known-good Kibana webhook template (FORMATS.md §3). */
export function kibanaWebhookBody(alerts: readonly unknown[]): Json {
  return {
    rule_id: ARC_RULE_ID,
    rule_name: ARC_RULE_NAME,
    results_link: `${ARC.kibanaUrl}/app/security/detections/rules/id/${ARC.ruleUuid}`,
    alerts: [...alerts],
  };
}

/** The Azure diagnostic-settings envelope (Event Hub / storage). */
export function recordsEnvelope(records: readonly unknown[]): Json {
  return { records: [...records] };
}

/** A deterministic PRNG (mulberry32) in [0, 1), so that a fuzz or property failure replays. */
export function seededRandom(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Parser benchmark: `parseDetection` on 100,000 DERIVED Arc events per case, built in advance (one
 * `JSON.parse` per event, so every event is its own object graph, as the ingest makes them). Each
 * case starts from `arcEvent` templates (80 % service principal, 20 % user) and varies the identity
 * (1,000 app ids), the caller IP (distinct per event, 10 % IPv6), the time (distinct), the
 * correlation id and alert uuid (distinct) and the cluster (20 clusters).
 *
 * Columns, in ns per event, each the median of ROUNDS rounds:
 * - `parse`: over the 100,000 events built in advance. After garbage collection has moved them,
 *   an event's objects lie far apart and out of cache: the slow case.
 * - `fresh`: over the first 20,000 events, `JSON.parse`d from 1,000-event bodies just before (not
 *   timed), as the ingest hands them over: still the cache misses of 1,000 events' worth of
 *   objects, but laid out as `JSON.parse` allocated them.
 * - `read` (baseline): plain property reads of the fields the parser uses, at their nested paths,
 *   through a generic path walker, without checks: the cost of getting at the fields at all.
 * - `floor` (baseline): `read` plus joining the values and one sha256 (`crypto.hash`), as an event
 *   id needs.
 * Baseline and parser rounds alternate, so that load from other processes hits them alike.
 * `npm run bench -- parse` runs only this file; PARSE_EVENTS and PARSE_ROUNDS override the sizes.
 */
import { hash } from 'node:crypto';
import type { SourceFormat } from '../src/core/detection.ts';
import { parseDetection } from '../src/core/formats/index.ts';
import { ARC, arcEvent, seededRandom } from '../test/support/samples.ts';

const EVENTS = Number(process.env.PARSE_EVENTS ?? 100_000);
const ROUNDS = Number(process.env.PARSE_ROUNDS ?? 7);
const TARGET_NS = 3000;
/** Events per request body in the `fresh` column, and how many of the events it covers. */
const BODY_EVENTS = 1000;
const FRESH_EVENTS = Math.min(EVENTS, 20_000);

interface Case {
  label: string;
  format: SourceFormat;
  /** Another operation: an event the rule ignores (most of an Event Hub stream). */
  otherOperation?: string;
  /** Dotted paths the parser reads for a matching event, for the `read` baseline. */
  paths: readonly string[];
}

const EVIDENCE = ['role', 'roleDefinitionId', 'roleAssignmentId', 'roleAssignmentScope', 'principalId'];
const ECS_EVIDENCE = ['role', 'role_definition_id', 'role_assignment_id', 'role_assignment_scope'];
const CLAIMS = ['appid', 'http://schemas.microsoft.com/identity/claims/objectidentifier', 'idtyp'];
const ECS_PATHS = [
  'azure.activitylogs.operation_name',
  'event.outcome',
  ...CLAIMS.map((c) => `azure.activitylogs.identity.claims.${c.replaceAll('.', '_')}`),
  ...ECS_EVIDENCE.map((e) => `azure.activitylogs.identity.authorization.evidence.${e}`),
  'source.ip',
  '@timestamp',
  'azure.resource.id',
  'azure.correlation_id',
  'azure.tenant_id',
  'source.geo.country_name',
  'source.geo.city_name',
];
const RECORD_PATHS = [
  'operationName',
  'resultType',
  ...CLAIMS.map((c) => `identity.claims.${c}`),
  ...EVIDENCE.map((e) => `identity.authorization.evidence.${e}`),
  'callerIpAddress',
  'time',
  'resourceId',
  'correlationId',
  'tenantId',
];
const REST_PATHS = [
  'operationName.value',
  'status.value',
  ...CLAIMS.map((c) => `claims.${c}`),
  'httpRequest.clientIpAddress',
  'eventTimestamp',
  'resourceId',
  'correlationId',
  'caller',
];
// Azure Monitor payloads carry claims and httpRequest as JSON strings: the baseline reads the strings.
const COMMON_PATHS = [
  'data.essentials.signalType',
  'data.essentials.monitoringService',
  'data.alertContext.operationName',
  'data.alertContext.status',
  'data.alertContext.claims',
  'data.alertContext.httpRequest',
  'data.alertContext.eventTimestamp',
  'data.alertContext.properties.entity',
  'data.alertContext.correlationId',
  'data.essentials.alertId',
  'data.essentials.firedDateTime',
];
const LEGACY_PATHS = [
  'data.context.activityLog.operationName',
  'data.context.activityLog.status',
  'data.context.activityLog.claims',
  'data.context.activityLog.httpRequest',
  'data.context.activityLog.eventTimestamp',
  'data.context.activityLog.resourceId',
  'data.context.activityLog.correlationId',
];

const CASES: readonly Case[] = [
  { label: 'Event Hub record', format: 'azure-activity-log-record', paths: RECORD_PATHS },
  {
    label: 'Event Hub record, other op',
    format: 'azure-activity-log-record',
    otherOperation: 'MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE',
    paths: ['operationName', 'resultType'],
  },
  { label: 'Elastic ECS document', format: 'elastic-ecs', paths: ECS_PATHS },
  {
    label: 'Elastic ECS, other op',
    format: 'elastic-ecs',
    otherOperation: 'MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE',
    paths: ['azure.activitylogs.operation_name', 'event.outcome'],
  },
  {
    label: 'Elastic alert (webhook)',
    format: 'elastic-alert',
    paths: [
      'kibana.alert.rule.rule_id',
      'kibana.alert.uuid',
      'kibana.alert.original_time',
      'kibana.alert.rule.name',
      'kibana.alert.severity',
      'kibana.alert.reason',
      'kibana.alert.url',
      ...ECS_PATHS,
    ],
  },
  { label: 'REST activity-log event', format: 'azure-activity-log-rest', paths: REST_PATHS },
  { label: 'Monitor common schema', format: 'azure-monitor-common', paths: COMMON_PATHS },
  { label: 'Monitor legacy webhook', format: 'azure-monitor-legacy', paths: LEGACY_PATHS },
];

/** The template values that vary per event, and what each becomes. */
const TIME_PREFIX = ARC.timeIso.slice(0, 23); // every channel's time starts with these 23 characters
const PLACEHOLDERS = [
  ARC.appId,
  ARC.ip,
  TIME_PREFIX,
  ARC.correlationId,
  ARC.alertUuid,
  'ARC-PROD-01',
  'arc-prod-01',
];
const PLACEHOLDER_RE = new RegExp(`(${PLACEHOLDERS.map((p) => p.replaceAll('.', '\\.')).join('|')})`);

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

/** A template split into literal text (even indices) and placeholders (odd indices). */
function template(c: Case, principalType: 'ServicePrincipal' | 'User'): string[] {
  const opts =
    c.otherOperation === undefined ? { principalType } : { principalType, operation: c.otherOperation };
  return JSON.stringify(arcEvent(c.format, opts)).split(PLACEHOLDER_RE);
}

/** The events, and the first FRESH_EVENTS of them as JSON bodies of BODY_EVENTS events. */
function buildEvents(c: Case): { events: unknown[]; bodies: string[] } {
  const next = seededRandom(7);
  const guid = () =>
    `${hex((next() * 2 ** 32) >>> 0, 8)}-${hex((next() * 65536) | 0, 4)}-4abc-8def-${hex((next() * 2 ** 32) >>> 0, 12)}`;
  const templates = [template(c, 'ServicePrincipal'), template(c, 'User')];
  const start = Date.UTC(2026, 2, 12);
  const events: unknown[] = new Array(EVENTS);
  const bodies: string[] = [];
  let body: string[] = [];
  for (let i = 0; i < EVENTS; i++) {
    const app = Math.floor(next() * 1000);
    const cluster = String(1 + Math.floor(next() * 20)).padStart(2, '0');
    const values: Record<string, string> = {
      [ARC.appId]: `${hex(app, 8)}-0000-4000-8000-${hex(app, 12)}`,
      [ARC.ip]:
        next() < 0.1
          ? `2001:db8:${hex(i >> 16, 1)}::${hex(i & 0xffff, 1)}`
          : `${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.${1 + Math.floor(next() * 250)}`,
      [TIME_PREFIX]: new Date(start + i * 1000 + Math.floor(next() * 1000)).toISOString().slice(0, 23),
      [ARC.correlationId]: guid(),
      [ARC.alertUuid]: guid(),
      'ARC-PROD-01': `ARC-PROD-${cluster}`,
      'arc-prod-01': `arc-prod-${cluster}`,
    };
    const parts = templates[next() < 0.8 ? 0 : 1]!;
    let text = '';
    for (let p = 0; p < parts.length; p++) text += p % 2 === 0 ? parts[p] : values[parts[p]!];
    events[i] = JSON.parse(text);
    if (i < FRESH_EVENTS) body.push(text);
    if (body.length === BODY_EVENTS || (i === FRESH_EVENTS - 1 && body.length > 0)) {
      bodies.push(`[${body.join(',')}]`);
      body = [];
    }
  }
  return { events, bodies };
}

function compilePaths(paths: readonly string[]): string[][] {
  // The claim URIs hold dots: split only before the claim key.
  return paths.map((p) => {
    const at = p.indexOf('.http');
    return at < 0 ? p.split('.') : [...p.slice(0, at).split('.'), p.slice(at + 1)];
  });
}

function readFields(event: unknown, paths: readonly string[][], out: unknown[]): void {
  for (let p = 0; p < paths.length; p++) {
    let cur = event as Record<string, unknown> | undefined;
    for (const seg of paths[p]!) cur = cur?.[seg] as Record<string, unknown> | undefined;
    out[p] = cur;
  }
}

function timeRead(events: readonly unknown[], paths: readonly string[][]): number {
  const out: unknown[] = new Array(paths.length);
  let sink = 0;
  const t = performance.now();
  for (const e of events) {
    readFields(e, paths, out);
    for (const v of out) if (typeof v === 'string') sink += v.length;
  }
  const ns = ((performance.now() - t) * 1e6) / events.length;
  if (sink === 0) throw new Error('baseline read nothing');
  return ns;
}

function timeFloor(events: readonly unknown[], paths: readonly string[][]): number {
  const out: unknown[] = new Array(paths.length);
  let sink = 0;
  const t = performance.now();
  for (const e of events) {
    readFields(e, paths, out);
    let key = '';
    for (const v of out) key += `${typeof v === 'string' ? v : ''}\n`;
    sink += hash('sha256', key).length;
  }
  const ns = ((performance.now() - t) * 1e6) / events.length;
  if (sink === 0) throw new Error('baseline hashed nothing');
  return ns;
}

function timeParse(events: readonly unknown[], expectOk: boolean): number {
  let ok = 0;
  const t = performance.now();
  for (const e of events) if (parseDetection(e).ok) ok++;
  const ns = ((performance.now() - t) * 1e6) / events.length;
  // A parser that rejected every event would look fast: check what it returned.
  if (ok !== (expectOk ? events.length : 0)) throw new Error(`${ok} of ${events.length} events parsed`);
  return ns;
}

function timeFresh(bodies: readonly string[], expectOk: boolean): number {
  let ms = 0;
  let n = 0;
  for (const body of bodies) {
    const events = JSON.parse(body) as unknown[];
    ms += (timeParse(events, expectOk) * events.length) / 1e6;
    n += events.length;
  }
  return (ms * 1e6) / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const pad = (s: string | number, n: number) => String(s).padStart(n);

console.log(
  `parseDetection, ${EVENTS.toLocaleString('en')} events per case, median of ${ROUNDS} rounds (ns/event; target <= ${TARGET_NS} ns for an Event Hub record)`,
);
console.log(
  `${'case'.padEnd(28)}${pad('parse', 8)}${pad('events/s', 12)}${pad('fresh', 8)}${pad('events/s', 12)}${pad('read', 8)}${pad('floor', 8)}`,
);
for (const c of CASES) {
  const { events, bodies } = buildEvents(c);
  const paths = compilePaths(c.paths);
  const expectOk = c.otherOperation === undefined;
  // One warm-up round of each, then alternate so that machine noise hits all of them alike.
  timeRead(events, paths);
  timeFloor(events, paths);
  timeParse(events, expectOk);
  timeFresh(bodies, expectOk);
  const read: number[] = [];
  const floor: number[] = [];
  const parse: number[] = [];
  const fresh: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    read.push(timeRead(events, paths));
    floor.push(timeFloor(events, paths));
    parse.push(timeParse(events, expectOk));
    fresh.push(timeFresh(bodies, expectOk));
  }
  const perSecond = (ns: number) => Math.round(1e9 / ns).toLocaleString('en');
  const verdict =
    c.format === 'azure-activity-log-record' && expectOk
      ? `  ${median(parse) <= TARGET_NS ? 'PASS' : 'FAIL'}`
      : '';
  console.log(
    `${c.label.padEnd(28)}${pad(Math.round(median(parse)), 8)}${pad(perSecond(median(parse)), 12)}` +
      `${pad(Math.round(median(fresh)), 8)}${pad(perSecond(median(fresh)), 12)}` +
      `${pad(Math.round(median(read)), 8)}${pad(Math.round(median(floor)), 8)}${verdict}`,
  );
}

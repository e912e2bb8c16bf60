import type { ElasticAlertInfo, ParseResult } from '../detection.ts';
import { ARC_NEW_TERMS_FIELDS, ARC_RULE_ID, LIST_CLUSTER_USER_CREDENTIAL, matchOperation } from '../rule.ts';
import { buildDetection, ignored, text } from './build-detection.ts';
import { ECS, readEcs } from './elastic-ecs.ts';
import { parseEventTime } from './event-time.ts';
import { clipped, FieldReader, field, isObject, type Json, num, own, str } from './fields.ts';

/**
 * Field paths of an Elastic Security alert (FORMATS.md §2, §3). Kibana's webhook context nests
 * every field (`kibana: {alert: {…}}`) and adds legacy `signal.*` aliases; the alerts index stores
 * `kibana.alert.*` as flat dotted keys. `FieldReader` reads both.
 */
const ALERT = {
  uuid: field('kibana.alert.uuid'),
  originalTime: [field('kibana.alert.original_time'), field('signal.original_time')],
  newTerms: field('kibana.alert.new_terms'),
  ruleId: [field('kibana.alert.rule.rule_id'), field('signal.rule.rule_id')],
  ruleUuid: [field('kibana.alert.rule.uuid'), field('signal.rule.id')],
  ruleName: [field('kibana.alert.rule.name'), field('signal.rule.name')],
  newTermsFields: [
    field('kibana.alert.rule.parameters.new_terms_fields'),
    field('signal.rule.new_terms_fields'),
  ],
  severity: [
    field('kibana.alert.severity'),
    field('kibana.alert.rule.severity'),
    field('signal.rule.severity'),
  ],
  riskScore: [
    field('kibana.alert.risk_score'),
    field('kibana.alert.rule.risk_score'),
    field('signal.rule.risk_score'),
  ],
  reason: [field('kibana.alert.reason'), field('signal.reason')],
  url: field('kibana.alert.url'),
  // When the alert was raised: its start, else its own @timestamp (the event's is original_time).
  raisedAt: [field('kibana.alert.start'), field('@timestamp')],
  originalOutcome: field('kibana.alert.original_event.outcome'),
  originalAction: field('kibana.alert.original_event.action'),
  signalRule: field('signal.rule'),
  kibanaAlert: field('kibana.alert'),
} as const;

/**
 * Set by `extractEvents` on each alert of a Kibana webhook body that carries `results_link` (the
 * README's template does): the link to the rule's alerts, for alerts without a link of their own.
 */
export const RESULTS_LINK: unique symbol = Symbol('kibana results_link');

/** Only web links are passed on (the chat side renders them as links). */
const HTTP_URL = /^https?:\/\//i;

/** True for a Kibana webhook alert element, a flat alert `_source`, or a search hit holding one. */
export function isElasticAlert(doc: unknown, r = new FieldReader()): boolean {
  if (!isObject(doc)) return false;
  // Marker reads (see fields.ts): with none of these, neither `_source` nor `kibana.alert` nor
  // `signal.rule` can hold an object, and only the flat-key markers are left to check.
  if (
    doc._source === undefined &&
    doc.kibana === undefined &&
    doc['kibana.alert'] === undefined &&
    doc.signal === undefined &&
    doc['signal.rule'] === undefined
  ) {
    return hasFlatMarker(doc);
  }
  const hitSource = own(doc, '_source');
  return isObject(hitSource) ? isAlertDocument(hitSource, r) : isAlertDocument(doc, r);
}

function isAlertDocument(doc: Json, r: FieldReader): boolean {
  if (isObject(r.get(doc, ALERT.kibanaAlert)) || isObject(r.get(doc, ALERT.signalRule))) return true;
  return hasFlatMarker(doc);
}

/**
 * Whether `doc` has one of the keys whose presence marks a flat alert `_source` (each looked up at
 * a fixed key: see `ownValue`).
 */
function hasFlatMarker(doc: Json): boolean {
  return (
    Object.hasOwn(doc, 'kibana.alert.uuid') ||
    Object.hasOwn(doc, 'kibana.alert.original_time') ||
    Object.hasOwn(doc, 'kibana.alert.rule.rule_id') ||
    Object.hasOwn(doc, 'kibana.alert.rule.uuid') ||
    Object.hasOwn(doc, 'kibana.alert.new_terms')
  );
}

/**
 * Format B/C: an Elastic Security alert, as one element of a Kibana webhook's `alerts`
 * (nested), as stored in the alerts index (flat `kibana.alert.*` keys), or as a search hit
 * `{_id, _source}`. The event time is `kibana.alert.original_time` (the alert's `@timestamp` is
 * when it was created). The event id comes from the event's own fields, as for every format: the
 * alert and the Event Hub record of one call are one event, and a re-delivered alert is that event
 * again. The alert uuid is kept for the link to Kibana.
 */
export function parseElasticAlert(input: unknown, r = new FieldReader()): ParseResult {
  // Alerts come from the rule, so most are detections: read through some 30 paths, nested or flat.
  r.listKeys();
  const hitSource = own(input, '_source');
  const doc = isObject(hitSource) ? hitSource : input;
  const ruleId = str(r.first(doc, ALERT.ruleId), 256);
  const fromArcRule = ruleId === ARC_RULE_ID;
  // An alert of the Arc rule matched the operation and a success outcome by construction: a
  // webhook template that left those fields out still describes a detection.
  const operation =
    text(r.first(doc, ECS.operation)) ??
    text(r.get(doc, ALERT.originalAction)) ??
    (fromArcRule ? LIST_CLUSTER_USER_CREDENTIAL.toUpperCase() : undefined);
  const outcome =
    text(r.first(doc, ECS.outcome)) ??
    text(r.get(doc, ALERT.originalOutcome)) ??
    (fromArcRule ? 'success' : undefined);
  const match = matchOperation(
    operation,
    outcome,
    'event.outcome, azure.activitylogs.result_type or kibana.alert.original_event.outcome',
  );
  if (!match.ok) return ignored(`Elastic alert${ruleId ? ` of rule ${ruleId}` : ''}: ${match.reason}`);

  const fields = readEcs(doc, r);
  // kibana.alert.new_terms holds the values of the rule's new_terms_fields, in order.
  const newTerms = r.get(doc, ALERT.newTerms);
  if (Array.isArray(newTerms) && hasArcNewTerms(doc, fromArcRule, r)) {
    if (str(fields.appId) === undefined && newTerms[0] !== undefined) {
      fields.appId = newTerms[0];
      fields.appIdField = `${fields.appIdField} or kibana.alert.new_terms[0]`;
    }
    if (fields.ip === undefined && newTerms[1] !== undefined) {
      fields.ip = newTerms[1];
      fields.ipField = 'kibana.alert.new_terms[1]';
    }
  }
  const uuid = str(r.get(doc, ALERT.uuid), 256) ?? str(own(input, '_id'), 256) ?? str(own(doc, '_id'), 256);
  return buildDetection({
    ...fields,
    sourceFormat: 'elastic-alert',
    operation: operation!,
    outcome,
    time: r.first(doc, ALERT.originalTime),
    timeField: 'kibana.alert.original_time',
    elasticAlert: alertInfo(doc, uuid, ruleId, r, judgedNew(doc, ruleId, fromArcRule, r), input),
  });
}

/** Whether Elastic judged the pair new: see `ElasticAlertInfo.judgedNew`. */
function judgedNew(doc: unknown, ruleId: string | undefined, fromArcRule: boolean, r: FieldReader): boolean {
  if (hasArcNewTerms(doc, fromArcRule, r)) return true;
  return ruleId === undefined && r.first(doc, ALERT.newTermsFields) === undefined;
}

function hasArcNewTerms(doc: unknown, fromArcRule: boolean, r: FieldReader): boolean {
  if (fromArcRule) return true;
  const fields = r.first(doc, ALERT.newTermsFields);
  return (
    Array.isArray(fields) &&
    fields.length === ARC_NEW_TERMS_FIELDS.length &&
    ARC_NEW_TERMS_FIELDS.every((f, i) => fields[i] === f)
  );
}

function alertInfo(
  doc: unknown,
  uuid: string | undefined,
  ruleId: string | undefined,
  r: FieldReader,
  newPair: boolean,
  input: unknown,
): ElasticAlertInfo {
  const info: ElasticAlertInfo = {};
  if (newPair) info.judgedNew = true;
  if (uuid !== undefined) info.alertUuid = uuid;
  if (ruleId !== undefined) info.ruleId = ruleId;
  const ruleUuid = str(r.first(doc, ALERT.ruleUuid), 256);
  if (ruleUuid !== undefined) info.ruleUuid = ruleUuid;
  const ruleName = str(r.first(doc, ALERT.ruleName), 1024);
  if (ruleName !== undefined) info.ruleName = ruleName;
  const severity = str(r.first(doc, ALERT.severity), 64);
  if (severity !== undefined) info.severity = severity;
  const riskScore = num(r.first(doc, ALERT.riskScore));
  if (riskScore !== undefined) info.riskScore = riskScore;
  const reason = clipped(r.first(doc, ALERT.reason), 4096);
  if (reason !== undefined) info.reason = reason;
  const url = str(r.get(doc, ALERT.url), 2048);
  if (url !== undefined && HTTP_URL.test(url)) {
    info.url = url;
  } else {
    const results = str((input as { [RESULTS_LINK]?: unknown })[RESULTS_LINK], 2048);
    if (results !== undefined && HTTP_URL.test(results)) info.resultsUrl = results;
  }
  const raisedAt = parseEventTime(r.first(doc, ALERT.raisedAt));
  if (raisedAt !== undefined) info.raisedAt = raisedAt;
  return info;
}

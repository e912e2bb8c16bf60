/**
 * The detection rule this bot serves: Elastic's "Azure Arc Cluster Credential Access by Identity
 * from Unusual Source" (new_terms on `claims.appid` + `source.ip`, history window 7 days).
 * Its query keeps successful `listClusterUserCredential` calls only; `matchOperation` is that filter,
 * applied to every input format.
 */

import { cutBefore } from './formats/fields.ts';

export const ARC_RULE_ID = '022c37cd-5a4f-422b-8227-b136b7a23180';
export const ARC_RULE_NAME = 'Azure Arc Cluster Credential Access by Identity from Unusual Source';
/** The rule's `new_terms_fields`, in order: `kibana.alert.new_terms` holds their values in this order. */
export const ARC_NEW_TERMS_FIELDS = ['azure.activitylogs.identity.claims.appid', 'source.ip'] as const;

/** The operation the rule matches (REST/common-schema spelling; Event Hub and Elastic send it upper-case). */
export const LIST_CLUSTER_USER_CREDENTIAL =
  'Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action';
/**
 * The preview action (plural) that the Cluster User role also grants. The Elastic rule matches the
 * exact keyword `MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/LISTCLUSTERUSERCREDENTIAL/ACTION` and so
 * misses a call logged under this name (a call through the 2020-01-01-preview API); we match both.
 */
export const LIST_CLUSTER_USER_CREDENTIALS_PREVIEW =
  'Microsoft.Kubernetes/connectedClusters/listClusterUserCredentials/action';

export const ARC_OPERATIONS: readonly string[] = [
  LIST_CLUSTER_USER_CREDENTIAL,
  LIST_CLUSTER_USER_CREDENTIALS_PREVIEW,
];

/**
 * Outcomes that count as success, lower-cased: Event Hub records and Elastic say `Success`
 * (`event.outcome: success`), the REST API and Azure Monitor alerts say `Succeeded`.
 */
const SUCCESS_OUTCOMES: readonly string[] = ['success', 'succeeded'];

export type RuleMatch = { ok: true } | { ok: false; reason: string };

const OPERATIONS_LOWER = new Set(ARC_OPERATIONS.map((op) => op.toLowerCase()));
/** The spellings that arrive (REST/Monitor as documented, Event Hub/Elastic upper-case), matched as is. */
const OPERATIONS_AS_SENT: readonly string[] = ARC_OPERATIONS.flatMap((op) => [op, op.toUpperCase()]);
const OPERATION_LENGTHS = new Set(ARC_OPERATIONS.map((op) => op.length));
const SUCCESS_LOWER = new Set(SUCCESS_OUTCOMES);
/** Longest value echoed back in a reason. */
const ECHO_MAX = 120;

/**
 * Quotes a received value for a reason, cut short so hostile input cannot bloat it. Objects are
 * only named, never serialised (they may be huge or deeply nested).
 */
export function echo(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > ECHO_MAX ? `${cutBefore(value, ECHO_MAX)}…` : value);
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return String(value).slice(0, ECHO_MAX);
}

/** True for the Arc credential-listing operation (either spelling), in any letter case. */
export function isArcOperation(operation: unknown): boolean {
  if (typeof operation !== 'string' || operation.length > 200) return false;
  // Comparing as sent spares a lower-cased copy per event.
  for (const op of OPERATIONS_AS_SENT) if (operation === op) return true;
  // Lower-casing keeps the length of any text that can become these ASCII names (only U+0130 grows,
  // into a non-ASCII pair), so another length is another operation: most events stop here.
  const trimmed = operation.trim();
  return OPERATION_LENGTHS.has(trimmed.length) && OPERATIONS_LOWER.has(trimmed.toLowerCase());
}

/** True for `Success`/`Succeeded` in any letter case. */
function isSuccessOutcome(outcome: unknown): boolean {
  return (
    typeof outcome === 'string' && outcome.length <= 40 && SUCCESS_LOWER.has(outcome.trim().toLowerCase())
  );
}

/**
 * The rule's filter: the Arc credential-listing operation with a successful outcome. Anything else
 * (other operations, the `Start` record Azure logs before the `Success` one, failures, no outcome)
 * is not a detection; the reason names what was seen. `outcomeField`: where the format keeps the
 * outcome, named when there is none.
 */
export function matchOperation(operation: unknown, outcome: unknown, outcomeField?: string): RuleMatch {
  if (operation === undefined || operation === null || operation === '') {
    return { ok: false, reason: 'no operation name: not an Arc cluster credential listing event' };
  }
  if (!isArcOperation(operation)) {
    return {
      ok: false,
      reason: `operation ${echo(operation)} is not ${LIST_CLUSTER_USER_CREDENTIAL} (the Arc cluster credential listing the rule matches)`,
    };
  }
  if (outcome === undefined || outcome === null || outcome === '') {
    return {
      ok: false,
      reason: `${echo(operation)} has no outcome${outcomeField ? ` (no ${outcomeField})` : ''}: only successful calls (Success/Succeeded) are detections`,
    };
  }
  if (!isSuccessOutcome(outcome)) {
    return {
      ok: false,
      reason: `${echo(operation)} with outcome ${echo(outcome)}: only successful calls (Success/Succeeded) are detections`,
    };
  }
  return { ok: true };
}

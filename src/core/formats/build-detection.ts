import { appIdProblem, MAX_APP_ID_LENGTH } from '../app-id.ts';
import { dashGuid, isGroup, parseResourceId } from '../azure-ids.ts';
import type {
  AutonomousSystem,
  AzureAlertInfo,
  ClusterRef,
  Detection,
  ElasticAlertInfo,
  Evidence,
  Geo,
  ParseFailure,
  ParseResult,
  SourceFormat,
} from '../detection.ts';
import { canonicalIp } from '../ip.ts';
import { echo } from '../rule.ts';
import { BoundedCache } from './bounded-cache.ts';
import { hashEventId } from './event-id.ts';
import { parseEventTime } from './event-time.ts';
import { isObject, single, str, trimmed } from './fields.ts';
import type { ClaimValues } from './identity.ts';

/** What a format parser found in an event that passed the rule, before validation. */
export interface DetectionInput {
  sourceFormat: SourceFormat;
  operation: string;
  outcome?: string | undefined;
  /** Raw values and the field each came from (named in the reason when it is unusable). */
  appId: unknown;
  appIdField: string;
  ip: unknown;
  ipField: string;
  /** Appended to the reason when the IP is missing: how to get one. */
  missingIpHint?: string;
  time: unknown;
  timeField: string;
  claims: ClaimValues;
  evidence: Evidence;
  resourceId?: unknown;
  correlationId?: unknown;
  tenantId?: unknown;
  /** Azure's `caller` (a UPN for users): the user's UPN when no upn claim says it. */
  caller?: unknown;
  geo?: Geo | undefined;
  as?: AutonomousSystem | undefined;
  elasticAlert?: ElasticAlertInfo | undefined;
  azureAlert?: AzureAlertInfo | undefined;
}

/** Parsed resource ids: clusters repeat from event to event, and parsing one costs more than a lookup. */
const clusterRefs = new BoundedCache<string, ClusterRef>(1024);

function clusterRef(resourceId: string): ClusterRef {
  let ref = clusterRefs.get(resourceId);
  if (ref === undefined) {
    ref = parseResourceId(resourceId);
    clusterRefs.set(resourceId, ref);
  }
  return { ...ref }; // each detection owns its copy
}

/** `echo`, with every character outside printable ASCII escaped: nothing invisible reaches a reader. */
const asciiEcho = (value: string): string =>
  echo(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

export const ignored = (reason: string): ParseFailure => ({ ok: false, kind: 'ignored', reason });
export const invalid = (reason: string): ParseFailure => ({ ok: false, kind: 'invalid', reason });

/** Validates identity, IP and time (in that order) and assembles the Detection. */
export function buildDetection(input: DetectionInput): ParseResult {
  const what = () => `${input.sourceFormat} event for ${input.operation}`;
  const given = single(input.appId);
  if (typeof given === 'number' || typeof given === 'boolean' || isObject(given) || Array.isArray(given)) {
    return invalid(
      `${what()} has caller identity ${echo(given)} in ${input.appIdField}, which is not an application id (a ${Array.isArray(given) ? 'list' : typeof given}, not text)`,
    );
  }
  const rawAppId = str(given, MAX_APP_ID_LENGTH);
  if (rawAppId === undefined) {
    if (typeof given === 'string' && given.trim().length > MAX_APP_ID_LENGTH) {
      return invalid(
        `${what()} has a caller identity of ${given.length} characters in ${input.appIdField}, which is not an application id (at most ${MAX_APP_ID_LENGTH})`,
      );
    }
    return invalid(`${what()} has no caller identity in ${input.appIdField}`);
  }
  // One form per GUID (dashed, lower case): a channel that sends it undashed or in braces names
  // the same identity, and Graph looks principals up by the dashed form.
  const dashed = dashGuid(rawAppId);
  // Anything else must still be printable ASCII, as application ids are. Other characters (control
  // or invisible ones, a right-to-left override, lone surrogates, look-alike dashes) would make a
  // second identity out of one, could disguise what the alert shows, and cannot be stored as a key
  // faithfully; a ':' would blur the history's keys (`pair:<appid>:<ip>`). A GUID is all of that
  // already, so nearly every event skips the check.
  const bad = dashed === undefined ? appIdProblem(rawAppId) : undefined;
  if (bad !== undefined) {
    return invalid(
      `${what()} has caller identity ${asciiEcho(rawAppId)} in ${input.appIdField}, which is not an application id (${bad})`,
    );
  }
  const appId = dashed ?? rawAppId;
  const rawIp = single(input.ip);
  if (rawIp === undefined || rawIp === null || rawIp === '') {
    const hint = input.missingIpHint ? `: ${input.missingIpHint}` : '';
    return invalid(`${what()} has no caller IP in ${input.ipField}${hint}`);
  }
  const sourceIp = typeof rawIp === 'string' ? canonicalIp(rawIp) : undefined;
  if (sourceIp === undefined) {
    return invalid(`${what()} has caller IP ${echo(rawIp)} in ${input.ipField}, which is not an IP address`);
  }
  if (sourceIp === '0.0.0.0' || sourceIp === '::') {
    // Azure writes 0.0.0.0 where it has no caller IP (e.g. Recommendation events).
    return invalid(`${what()} has the unspecified address ${sourceIp} in ${input.ipField}: no caller IP`);
  }
  const eventTime = parseEventTime(single(input.time));
  if (eventTime === undefined) {
    const seen = input.time === undefined ? 'nothing' : echo(input.time);
    const given = single(input.time);
    const hint =
      typeof given === 'number'
        ? ': a number is read as epoch milliseconds, from 1973 on (epoch seconds are not accepted); ISO 8601 is what Azure and Elastic send'
        : '';
    return invalid(`${what()} has no valid event time in ${input.timeField} (got ${seen})${hint}`);
  }

  const claims = input.claims;
  const evidence = input.evidence;
  const resourceId = str(input.resourceId, 2048);
  const correlationId = str(input.correlationId, 256);
  const outcome = input.outcome?.toLowerCase();
  const cluster = resourceId === undefined ? undefined : clusterRef(resourceId);
  const eventId = hashEventId({
    eventTime,
    operation: input.operation,
    appId,
    sourceIp,
    correlationId,
    // The lower-cased id (which the hash uses) comes cached with the cluster.
    resourceId: cluster?.key,
    outcome,
  });

  const detection: Detection = {
    eventId,
    sourceFormat: input.sourceFormat,
    eventTime,
    operation: input.operation,
    appId,
    evidence,
    sourceIp,
  };
  if (outcome !== undefined) detection.outcome = outcome;
  if (rawAppId !== appId) detection.appIdAsSent = rawAppId;
  // Evidence of an assignment made to a group names the group, not the caller: the caller's id
  // and type then come from the token alone.
  const viaGroup = isGroup(evidence.principalType);
  const principalId = claims.objectId ?? (viaGroup ? undefined : evidence.principalId);
  if (principalId !== undefined) detection.principalId = principalId;
  const principalType = (viaGroup ? undefined : evidence.principalType) ?? principalTypeOf(claims.idtyp);
  if (principalType !== undefined) detection.principalType = principalType;
  const tenantId = str(input.tenantId, 256) ?? claims.tenantId;
  if (tenantId !== undefined) detection.tenantId = tenantId;
  // Lower-casing keeps the length of any text that can become `user` (see rule.ts): other types
  // (most callers are service principals) are told apart without a lower-cased copy.
  const isUser = principalType?.length === 4 && principalType.toLowerCase() === 'user';
  if (isUser || claims.upn !== undefined) {
    const caller = str(input.caller, 512);
    const upn = claims.upn ?? (caller?.includes('@') ? caller : undefined);
    const user: { upn?: string; name?: string } = {};
    if (upn !== undefined) user.upn = upn;
    if (claims.name !== undefined) user.name = claims.name;
    detection.user = user;
  }
  if (input.geo) detection.geo = input.geo;
  if (input.as) detection.as = input.as;
  if (cluster !== undefined) detection.cluster = cluster;
  if (correlationId !== undefined) detection.correlationId = correlationId;
  if (input.elasticAlert) detection.elasticAlert = input.elasticAlert;
  if (input.azureAlert) detection.azureAlert = input.azureAlert;
  return { ok: true, detection };
}

function principalTypeOf(idtyp: string | undefined): string | undefined {
  if (idtyp === 'app') return 'ServicePrincipal';
  if (idtyp === 'user') return 'User';
  return undefined;
}

/** An operation or outcome as received: strings trimmed (length is checked by the rule), other scalars as text. */
export function text(v: unknown): string | undefined {
  return typeof v === 'string' ? trimmed(v) : str(v);
}

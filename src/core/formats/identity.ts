import { dashGuid } from '../azure-ids.ts';
import type { Evidence } from '../detection.ts';
import { BoundedCache } from './bounded-cache.ts';
import { isObject, type Json, own, str } from './fields.ts';

/** The claims the bot uses, read from any channel's claims object. */
export interface ClaimValues {
  appId?: string;
  /** Dashed object id of the caller, when the claim holds a GUID. */
  objectId?: string;
  tenantId?: string;
  upn?: string;
  name?: string;
  /** `app` or `user` (the `idtyp` claim of newer tokens). */
  idtyp?: string;
}

/**
 * Each claim under every key it is found under: Azure's URI keys, the same keys with `.` replaced
 * by `_` (Elastic's ingest pipeline does that to every claim key except `appid`), and the short
 * names of v2 tokens.
 */
const CLAIM_KEYS = {
  objectId: uriKeys('http://schemas.microsoft.com/identity/claims/objectidentifier', 'oid'),
  tenantId: uriKeys('http://schemas.microsoft.com/identity/claims/tenantid', 'tid'),
  upn: uriKeys('http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn', 'upn'),
} as const;

function uriKeys(uri: string, short: string): readonly string[] {
  return [uri, uri.replaceAll('.', '_'), short];
}

function firstClaim(claims: Json, keys: readonly string[]): string | undefined {
  for (const key of keys) {
    const v = str(own(claims, key), 512);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** Dashed GUIDs by the text they came as: the same principals and roles recur in event after event. */
const dashedGuids = new BoundedCache<string, string>(4096);

function guid(s: string | undefined): string | undefined {
  if (s === undefined) return undefined;
  let dashed = dashedGuids.get(s);
  if (dashed === undefined) {
    dashed = dashGuid(s);
    if (dashed !== undefined) dashedGuids.set(s, dashed);
  }
  return dashed;
}

/**
 * Reads the claims object of any format. `initiatedByUser` is Elastic's
 * `claims_initiated_by_user` (where the pipeline moves the `name` claim, as `fullname`).
 */
export function readClaims(claims: unknown, initiatedByUser?: unknown): ClaimValues {
  const out: ClaimValues = {};
  if (isObject(claims)) {
    const appId = str(own(claims, 'appid'), 256);
    if (appId !== undefined) out.appId = appId;
    const objectId = guid(firstClaim(claims, CLAIM_KEYS.objectId));
    if (objectId !== undefined) out.objectId = objectId;
    const tenantId = firstClaim(claims, CLAIM_KEYS.tenantId);
    if (tenantId !== undefined) out.tenantId = tenantId;
    const upn = firstClaim(claims, CLAIM_KEYS.upn);
    if (upn !== undefined) out.upn = upn;
    const name = str(own(claims, 'name'), 512);
    if (name !== undefined) out.name = name;
    const idtyp = str(own(claims, 'idtyp'), 16);
    if (idtyp !== undefined) out.idtyp = idtyp.toLowerCase();
  }
  const fullname = str(own(initiatedByUser, 'fullname'), 512);
  if (fullname !== undefined && out.name === undefined) out.name = fullname;
  return out;
}

/**
 * Reads `authorization.evidence`. Elastic renames the keys to snake_case (`principal_type`,
 * `principal_id`, `role_assignment_id`, …), records keep camelCase: both are read, snake_case
 * first. Ids arrive without dashes and come out dashed (ARM wants them dashed).
 */
export function readEvidence(evidence: unknown): Evidence {
  const out: Evidence = {};
  if (!isObject(evidence)) return out;
  const pick = (snake: string, camel: string) =>
    str(own(evidence, snake), 1024) ?? str(own(evidence, camel), 1024);
  const role = str(own(evidence, 'role'), 512);
  if (role !== undefined) out.role = role;
  const roleDefinitionId = guid(pick('role_definition_id', 'roleDefinitionId'));
  if (roleDefinitionId !== undefined) out.roleDefinitionId = roleDefinitionId;
  const roleAssignmentId = guid(pick('role_assignment_id', 'roleAssignmentId'));
  if (roleAssignmentId !== undefined) out.roleAssignmentId = roleAssignmentId;
  const roleAssignmentScope = pick('role_assignment_scope', 'roleAssignmentScope');
  if (roleAssignmentScope !== undefined) out.roleAssignmentScope = roleAssignmentScope;
  const principalId = guid(pick('principal_id', 'principalId'));
  if (principalId !== undefined) out.principalId = principalId;
  const principalType = pick('principal_type', 'principalType');
  if (principalType !== undefined) out.principalType = principalType;
  return out;
}

import { dashGuid } from '../azure-ids.ts';
import type { Evidence } from '../detection.ts';
import { BoundedCache } from './bounded-cache.ts';
import { clipped, isObject, type Json, own, ownValue, str } from './fields.ts';

/** The claims the bot uses, read from any channel's claims object. */
export interface ClaimValues {
  /** As sent: `buildDetection` judges it (a number or a boolean is no application id). */
  appId?: unknown;
  /** Dashed object id of the caller, when the claim holds a GUID. */
  objectId?: string;
  tenantId?: string;
  upn?: string;
  name?: string;
  /** `app` or `user` (the `idtyp` claim of newer tokens). */
  idtyp?: string;
}

/**
 * The claim keys: Azure's URI keys, the same keys with `.` replaced by `_` (Elastic's ingest
 * pipeline does that to every claim key except `appid`), and the short names of v2 tokens.
 */
const OBJECT_ID = 'http://schemas.microsoft.com/identity/claims/objectidentifier';
const OBJECT_ID_ECS = 'http://schemas_microsoft_com/identity/claims/objectidentifier';
const TENANT_ID = 'http://schemas.microsoft.com/identity/claims/tenantid';
const TENANT_ID_ECS = 'http://schemas_microsoft_com/identity/claims/tenantid';
const UPN = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn';
const UPN_ECS = 'http://schemas_xmlsoap_org/ws/2005/05/identity/claims/upn';

/** A claim's text: `value` is `claims[key]`, read by the caller at a fixed key (see `ownValue`). */
const claim = (claims: Json, key: string, value: unknown, max = 512): string | undefined =>
  str(ownValue(claims, key, value), max);

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
    // Each claim under the first of its keys that holds one.
    const c = claims;
    // As sent, so that buildDetection can say why a value (overlong, a number) is no application id.
    const appId = ownValue(c, 'appid', c.appid);
    if (appId !== undefined && appId !== null) out.appId = appId;
    const objectId = guid(
      claim(c, OBJECT_ID, c[OBJECT_ID]) ??
        claim(c, OBJECT_ID_ECS, c[OBJECT_ID_ECS]) ??
        claim(c, 'oid', c.oid),
    );
    if (objectId !== undefined) out.objectId = objectId;
    const tenantId =
      claim(c, TENANT_ID, c[TENANT_ID]) ??
      claim(c, TENANT_ID_ECS, c[TENANT_ID_ECS]) ??
      claim(c, 'tid', c.tid);
    if (tenantId !== undefined) out.tenantId = tenantId;
    const upn = claim(c, UPN, c[UPN]) ?? claim(c, UPN_ECS, c[UPN_ECS]) ?? claim(c, 'upn', c.upn);
    if (upn !== undefined) out.upn = upn;
    const name = claim(c, 'name', c.name);
    if (name !== undefined) out.name = name;
    const idtyp = claim(c, 'idtyp', c.idtyp, 16);
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
  const e = evidence;
  // Named reads, see `ownValue`.
  const text = (key: string, value: unknown, max = 1024) => str(ownValue(e, key, value), max);
  const role = clipped(ownValue(e, 'role', e.role), 512);
  if (role !== undefined) out.role = role;
  const roleDefinitionId = guid(
    text('role_definition_id', e.role_definition_id) ?? text('roleDefinitionId', e.roleDefinitionId),
  );
  if (roleDefinitionId !== undefined) out.roleDefinitionId = roleDefinitionId;
  const roleAssignmentId = guid(
    text('role_assignment_id', e.role_assignment_id) ?? text('roleAssignmentId', e.roleAssignmentId),
  );
  if (roleAssignmentId !== undefined) out.roleAssignmentId = roleAssignmentId;
  const roleAssignmentScope =
    text('role_assignment_scope', e.role_assignment_scope) ??
    text('roleAssignmentScope', e.roleAssignmentScope);
  if (roleAssignmentScope !== undefined) out.roleAssignmentScope = roleAssignmentScope;
  const principalId = guid(text('principal_id', e.principal_id) ?? text('principalId', e.principalId));
  if (principalId !== undefined) out.principalId = principalId;
  const principalType = text('principal_type', e.principal_type) ?? text('principalType', e.principalType);
  if (principalType !== undefined) out.principalType = principalType;
  return out;
}

import { dashGuid, isGroup } from './azure-ids.ts';
import type { Detection } from './detection.ts';
import { normaliseAppId } from './pair.ts';
import type { PlannedStep, RemainingAccess, RemediationPlan, TimeBoundSeen } from './remediation.ts';

/** How a plan's alarm begins: the detection names another principal's access or object id. */
export const TAMPERING = 'POSSIBLE TAMPERING';

/**
 * The remediation plan, decided without calling anything: from a detection, the role assignments
 * listed for its principal and their role definitions, which assignments to remove and how to stop
 * the principal. The Azure adapter does the reads and the calls; this module only decides.
 */

/** The action the rule detects, and the preview (plural) action that the same role grants. */
const ARC_CREDENTIAL_ACTIONS: readonly string[] = [
  'Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action',
  'Microsoft.Kubernetes/connectedClusters/listClusterUserCredentials/action',
];

/** Built-in "Azure Arc Enabled Kubernetes Cluster User Role". */
export const ARC_CLUSTER_USER_ROLE_ID = '00493d72-78f6-4148-b6c5-d3ce8e4799dd';

/** The role-assignments API version the plan's calls use. */
const ROLE_ASSIGNMENTS_API_VERSION = '2022-04-01';

/** One `permissions` entry of a role definition. */
export interface RolePermission {
  actions?: readonly string[];
  notActions?: readonly string[];
}

/** What the plan needs of a role definition. */
export interface RoleDefinitionInfo {
  /** The role definition GUID (dashed, lower case) or its full ARM id. */
  id: string;
  roleName?: string;
  permissions: readonly RolePermission[];
}

/** A role assignment as listed by ARM. */
export interface AssignmentInfo {
  /** Full ARM id: `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`. */
  id: string;
  scope: string;
  /** Full role definition id (`.../roleDefinitions/{guid}`) or the bare GUID. */
  roleDefinitionId: string;
  principalId: string;
  principalType?: string | undefined;
  condition?: string;
  conditionVersion?: string;
  description?: string;
  /** ISO 8601. */
  createdOn?: string;
  /** When it ends, for one made or activated through PIM for a set time (ISO 8601). */
  endsAt?: string;
  /** With `endsAt`: a PIM activation of an eligible role (rather than an assignment with an end). */
  activated?: boolean;
}

/** What undo re-creates for a removed assignment (PlannedStep.assignment plus its condition). */
export interface AssignmentToRestore {
  scope: string;
  roleDefinitionId: string;
  principalId: string;
  principalType?: string;
  roleName?: string;
  condition?: string;
  conditionVersion?: string;
  description?: string;
  /** It ended at this time (PIM): Undo does not make it again as a permanent one. */
  endsAt?: string;
  activated?: boolean;
}

/**
 * Access the plan leaves in place, with what a separate, explicitly confirmed removal needs.
 * `kind` says why: a broad role (wildcard actions such as Owner or Contributor), an assignment
 * to a group the principal belongs to (removing it would affect every member), or one at the
 * tenant's root scope (`/`: tenant-wide, made with elevated access, left to a person).
 */
export interface RemainingAccessDetail extends RemainingAccess {
  kind: 'broad-role' | 'group' | 'root';
  roleDefinitionId?: string;
  principalId?: string;
  principalType?: string;
  condition?: string;
  conditionVersion?: string;
  /** See `AssignmentInfo.endsAt`. */
  endsAt?: string;
  activated?: boolean;
}

/**
 * What ARM said when the assignment named in the evidence was read by id: `found` (ARM's own
 * record, which the plan trusts instead of the evidence), `absent` (404: already gone), or
 * `unreadable` (403, network...: the plan does not remove what it could not check).
 */
export type EvidenceAssignmentRead =
  | { status: 'found'; assignment: AssignmentInfo }
  | { status: 'absent' }
  | { status: 'unreadable'; error: string; fix?: string };

/** How a role relates to the Arc credential actions. */
export type ArcGrant = 'specific' | 'broad' | 'none';

/** Base URLs used to write each step's call. */
export interface PlanEndpoints {
  arm: string;
  graph: string;
}

/** Everything the plan is decided from. */
export interface PlanInput {
  detection: Detection;
  endpoints: PlanEndpoints;
  /**
   * Assignments of the principal listed at the cluster scope (at, above or below it). Undefined
   * when they could not be listed: the plan then rests on the evidence alone.
   */
  assignments?: readonly AssignmentInfo[];
  /**
   * The assignment the evidence names, as ARM returned it when read by id. Undefined when it was
   * not read (no Azure identity): the plan then rests on the evidence, and says so in the step.
   */
  evidenceAssignment?: EvidenceAssignmentRead;
  /** Role definitions read from ARM, by GUID (dashed, lower case). Built-in roles known here fill gaps. */
  roles?: ReadonlyMap<string, RoleDefinitionInfo>;
  /**
   * The caller as Microsoft Graph answered the remediator's lookup (`callerLookup`). Undefined
   * when nothing was looked up (no Azure identity): the detection's object id is then used as is.
   */
  caller?: CallerRead;
  /** Problems met while reading, carried into the plan. */
  warnings?: readonly string[];
  /**
   * The tenant the service acts in (`AZURE_TENANT_ID`, when a GUID): its own applications are
   * never taken for Microsoft's, also where it is one of Microsoft's tenants.
   */
  homeTenantId?: string;
  /**
   * The identity the service itself runs as, as far as it is known: a plan never acts on it, since
   * disabling it or removing its roles would cut the service off from Azure (see `ownIdentityIn`).
   */
  own?: readonly OwnIdentity[];
}

/** The identity the service runs as, and where that was learnt. */
export interface OwnIdentity {
  /**
   * Its application (client) id, dashed and lower case. Never the client application a user signed
   * in through (a developer login): every other user of that client carries the same appid.
   */
  appId?: string;
  /** The object id of its service principal, or of the signed-in user, dashed and lower case. */
  objectId?: string;
  /** Where it was learnt, as the plan's alarm names it: `AZURE_CLIENT_ID`, a token's claims. */
  source: string;
}

/** How the caller is looked up in Graph before a plan acts on it (see `callerLookup`). */
export type CallerLookup =
  | { kind: 'serviceprincipal'; appId: string }
  | { kind: 'user'; key: string }
  | { kind: 'none'; reason: string };

/** The caller as Graph answered the lookup. */
export type CallerRead =
  | {
      status: 'found';
      kind: 'serviceprincipal' | 'user';
      id: string;
      /** A user's userPrincipalName, and the addresses it also goes by (a guest's, say). */
      upn?: string;
      mails?: string[];
      /** A service principal's `servicePrincipalType` (`Application`, `ManagedIdentity`, …). */
      servicePrincipalType?: string;
      /** A service principal's `appOwnerOrganizationId`: the tenant its application is registered in. */
      appOwnerOrganizationId?: string;
    }
  | { status: 'absent'; what: string }
  | { status: 'unreadable'; error: string; fix?: string }
  | { status: 'unverifiable'; reason: string };

/** The object id the detection gives the caller: the claims', else the evidence's unless it names a group. */
export function claimedObjectId(d: Detection): string | undefined {
  const group = isGroup(d.evidence.principalType);
  const evidenceId = dashGuid(d.evidence.principalId);
  const own = dashGuid(d.principalId);
  // A stored detection may carry a group's id from the evidence as the caller's own: not the caller.
  if (own && group && (own === evidenceId || isGroup(d.principalType))) return undefined;
  return own ?? (group ? undefined : evidenceId);
}

/** Whether Graph says the caller's service principal is a managed identity's. */
const isManagedIdentity = (read: CallerRead | undefined): boolean =>
  read?.status === 'found' && read.servicePrincipalType?.toLowerCase() === 'managedidentity';

/**
 * The tenants Microsoft registers its own applications in (Microsoft Services, and Microsoft's
 * corporate tenant), as a service principal's `appOwnerOrganizationId` names them.
 */
const MICROSOFT_TENANTS: ReadonlySet<string> = new Set([
  'f8cdef31-a31e-4b4a-93e4-5f571e91255a',
  '72f988bf-86f1-41af-91ab-2d7cd011db47',
]);

/**
 * Whether Graph says the caller's service principal is of an application Microsoft owns. In a
 * Microsoft tenant itself (the event's tenant, or the one the service acts in), the tenant's own
 * applications are its to disable.
 */
const isMicrosoftApp = (input: PlanInput): boolean => {
  const read = input.caller;
  if (read?.status !== 'found' || read.kind !== 'serviceprincipal') return false;
  const owner = dashGuid(read.appOwnerOrganizationId) ?? '';
  const own = [dashGuid(input.detection.tenantId ?? ''), dashGuid(input.homeTenantId ?? '')];
  return MICROSOFT_TENANTS.has(owner) && !own.includes(owner);
};

const OWN_IDENTITY = "arc-responder's own identity";

/**
 * What names the service's own identity as the caller, when something does: the detection's appid,
 * or the object id of the caller (as Graph confirmed it, or as the detection claims it).
 */
function ownIdentityIn(input: PlanInput, principalId: string | undefined): string | undefined {
  const appId = dashGuid(input.detection.appId);
  const objectIds = [principalId, claimedObjectId(input.detection)];
  for (const own of input.own ?? []) {
    if (own.appId && own.appId === appId) return `application ${appId} is ${OWN_IDENTITY} (${own.source})`;
    if (own.objectId && objectIds.includes(own.objectId)) {
      return `the principal ${own.objectId} is ${OWN_IDENTITY} (${own.source})`;
    }
  }
  return undefined;
}

/** A UPN fit for a Graph path (`users/{upn}`, encoded). */
export const isUpn = (s: string | undefined): s is string => !!s && /^[^\s/?]+@[^\s/?#]+$/.test(s);

/**
 * How to find the caller in Graph: a user by its object id (else its UPN); anything else as the
 * service principal of the appid, which is the identity the rule watches. A detection that allows
 * neither (an appid that is no GUID) names nobody a plan may act on.
 */
export function callerLookup(d: Detection): CallerLookup {
  if (callerKind(d) === 'user') {
    const key = claimedObjectId(d) ?? (isUpn(d.user?.upn) ? d.user.upn : undefined);
    return key
      ? { kind: 'user', key }
      : { kind: 'none', reason: 'the user has no object id or UPN in the detection' };
  }
  const appId = dashGuid(d.appId);
  return appId
    ? { kind: 'serviceprincipal', appId }
    : { kind: 'none', reason: `the appid ${d.appId} is no GUID, so no service principal can be looked up` };
}

/**
 * The principal the plan acts on, and its kind. It is acted on only as Graph confirms it: the
 * service principal of the appid, or the user of the object id (whose UPN must be the one the
 * detection gives). When the detection's object id names someone else, or nobody can be
 * confirmed, the plan acts on nobody and says why: an object id in a detection must never steer
 * a Revoke to another principal.
 */
export function callerPrincipal(
  d: Detection,
  read: CallerRead | undefined,
): { id?: string; kind?: 'serviceprincipal' | 'user'; alarm?: string; warning?: string } {
  const claimed = claimedObjectId(d);
  const app = dashGuid(d.appId) ?? d.appId;
  if (read === undefined) return claimed ? { id: claimed } : {};
  const nothing = ': the plan acts on no principal';
  switch (read.status) {
    case 'found': {
      if (read.kind === 'serviceprincipal' && claimed && claimed !== read.id) {
        return {
          alarm: `${TAMPERING}: the detection's object id ${claimed} is not the service principal of application ${app} (Graph: ${read.id}): neither is acted on; check who made the call`,
        };
      }
      const upn = d.user?.upn;
      // A guest's detection gives the address it signed in with (its caller), which Graph has
      // as its mail, not as its userPrincipalName (`…#EXT#@…`).
      const names = [read.upn, ...(read.mails ?? [])]
        .filter((n) => n !== undefined)
        .map((n) => n.toLowerCase());
      if (read.kind === 'user' && upn && read.upn && !names.includes(upn.toLowerCase())) {
        return {
          alarm: `${TAMPERING}: the detection's object id ${read.id} is the user ${read.upn}, not ${upn} as the detection says: neither is acted on`,
        };
      }
      // A user is disabled only when two names agree: an object id alone, which anyone who can
      // send a detection could set to any account's, never picks whom Revoke disables.
      if (read.kind === 'user' && !upn) {
        return {
          warning: `the detection names the user ${read.id}${read.upn ? ` (${read.upn} in Microsoft Graph)` : ''} by object id only, with no UPN to confirm it${nothing}; check the sign-in logs, and disable the account by hand if it made the call`,
        };
      }
      return { id: read.id, kind: read.kind };
    }
    case 'absent':
      return { warning: `${read.what}${nothing}` };
    case 'unreadable':
      return {
        warning: `could not look the caller up in Microsoft Graph (${read.error})${nothing} until it can be checked${read.fix ? `; ${read.fix}` : ''}`,
      };
    case 'unverifiable':
      return { warning: `${read.reason}${nothing}` };
  }
}

const ASSIGNMENTS_SEGMENT = '/providers/Microsoft.Authorization/roleAssignments/';
const MANAGEMENT_GROUP_SCOPE = /^\/providers\/microsoft\.management\/managementgroups\/[^/]+$/i;
/** Characters an ARM scope may hold; anything else (query, fragment, spaces, `..`) is refused. */
const SAFE_SCOPE = /^(\/[A-Za-z0-9_.()~-]+)+$/;

/**
 * Built-in roles whose definitions are known without asking ARM, used when a definition could not
 * be read. Owner and Contributor grant every action (`*`); Contributor's NotActions do not touch
 * the Arc actions.
 */
export const KNOWN_ROLES: ReadonlyMap<string, RoleDefinitionInfo> = new Map(
  [
    {
      id: ARC_CLUSTER_USER_ROLE_ID,
      roleName: 'Azure Arc Enabled Kubernetes Cluster User Role',
      permissions: [
        {
          actions: [
            'Microsoft.Resources/deployments/write',
            'Microsoft.Resources/subscriptions/operationresults/read',
            'Microsoft.Resources/subscriptions/read',
            'Microsoft.Resources/subscriptions/resourceGroups/read',
            'Microsoft.Kubernetes/connectedClusters/listClusterUserCredentials/action',
            'Microsoft.Authorization/*/read',
            'Microsoft.Insights/alertRules/*',
            'Microsoft.Support/*',
            'Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action',
          ],
        },
      ],
    },
    { id: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635', roleName: 'Owner', permissions: [{ actions: ['*'] }] },
    {
      id: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
      roleName: 'Contributor',
      permissions: [
        {
          actions: ['*'],
          notActions: [
            'Microsoft.Authorization/*/Delete',
            'Microsoft.Authorization/*/Write',
            'Microsoft.Authorization/elevateAccess/Action',
            'Microsoft.Blueprint/blueprintAssignments/write',
            'Microsoft.Blueprint/blueprintAssignments/delete',
            'Microsoft.Compute/galleries/share/action',
            'Microsoft.Purview/consents/write',
            'Microsoft.Purview/consents/delete',
            'Microsoft.Resources/deploymentStacks/manageDenySetting/action',
            'Microsoft.Subscription/cancel/action',
            'Microsoft.Subscription/enable/action',
          ],
        },
      ],
    },
  ].map((r) => [r.id, r]),
);

const patternCache = new Map<string, RegExp>();

/**
 * Azure RBAC action matching: case-insensitive, `*` matches any run of characters (slashes
 * included), so `*`, `Microsoft.Kubernetes/*` and `*\/action` all cover the Arc action.
 */
export function actionMatches(pattern: string, action: string): boolean {
  let re = patternCache.get(pattern);
  if (!re) {
    const body = pattern
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    re = new RegExp(`^${body}$`, 'i');
    if (patternCache.size < 10_000) patternCache.set(pattern, re);
  }
  return re.test(action);
}

/**
 * Whether a role grants `action`: some permission entry has a matching Action and no matching
 * NotAction. `viaWildcard` says that a matching Action contains `*`.
 */
function roleGrants(
  role: Pick<RoleDefinitionInfo, 'permissions'>,
  action: string,
): { granted: boolean; viaWildcard: boolean } {
  let granted = false;
  let viaWildcard = false;
  for (const p of role.permissions) {
    const matching = (p.actions ?? []).filter((a) => actionMatches(a, action));
    if (matching.length === 0) continue;
    if ((p.notActions ?? []).some((n) => actionMatches(n, action))) continue;
    granted = true;
    if (matching.some((a) => a.includes('*') && !credentialOnly(a))) viaWildcard = true;
  }
  return { granted, viaWildcard };
}

/**
 * A wildcard that can match the Arc credential actions only: what comes before its first `*`
 * already names `Microsoft.Kubernetes/connectedClusters/listClusterUser` (as in
 * `…/listClusterUser*` or `…/listClusterUserCredential*`, written to cover both spellings).
 */
const CREDENTIAL_PREFIX = 'microsoft.kubernetes/connectedclusters/listclusteruser';
const credentialOnly = (pattern: string): boolean =>
  pattern.split('*', 1)[0]!.toLowerCase().startsWith(CREDENTIAL_PREFIX);

/**
 * `specific` when the role grants an Arc credential action by naming it (or through a wildcard
 * that matches nothing else), `broad` when another wildcard grants it (Owner, Contributor,
 * `Microsoft.Kubernetes/*`, custom `*`): removing such a role takes away much more than the Arc
 * access, so the plan leaves it for an explicit decision.
 */
export function classifyRole(role: Pick<RoleDefinitionInfo, 'permissions'>): ArcGrant {
  let result: ArcGrant = 'none';
  for (const action of ARC_CREDENTIAL_ACTIONS) {
    const g = roleGrants(role, action);
    if (!g.granted) continue;
    if (g.viaWildcard) return 'broad';
    result = 'specific';
  }
  // A role that names the Arc action but also grants other changes (writes elsewhere, a service's
  // `*`) takes away more than the Arc access when removed: it waits for the explicit decision too.
  if (
    result === 'specific' &&
    role.permissions.some((p) => (p.actions ?? []).some((a) => !isArcRoleAction(a)))
  ) {
    return 'broad';
  }
  return result;
}

/**
 * The actions the built-in Arc Kubernetes roles hold besides the credential: reads, the connected
 * clusters' own actions, deployments, alert rules and support tickets.
 */
const ARC_ROLE_ACTIONS = [
  /\/read$/i,
  /^microsoft\.kubernetes\/connectedclusters\/[^*]+$/i,
  /^microsoft\.resources\/deployments\/(\*|[^*]+)$/i,
  /^microsoft\.insights\/alertrules\/(\*|[^*]+)$/i,
  /^microsoft\.support\/(\*|[^*]+)$/i,
];
const isArcRoleAction = (action: string) =>
  credentialOnly(action) || ARC_ROLE_ACTIONS.some((re) => re.test(action));

/** `/a/b/` → `/a/b`, with exactly one leading slash. */
export function normaliseScope(scope: string): string {
  const trimmed = scope.trim().replace(/\/+$/, '').replace(/^\/+/, '');
  return `/${trimmed}`;
}

/** True when `scope` is a well-formed ARM scope that is safe to put into a request path. */
export function isSafeScope(scope: string): boolean {
  const s = normaliseScope(scope);
  return s.length < 1024 && SAFE_SCOPE.test(s) && !s.split('/').includes('..');
}

/**
 * Whether an assignment at `scope` applies to the resource `resourceId`: the root scope, the
 * resource itself, or an ancestor on a path-segment boundary (case-insensitive). Management-group
 * scopes are taken as ancestors: `listForScope` at the cluster only returns those above it.
 */
export function scopeCovers(scope: string, resourceId: string): boolean {
  const s = normaliseScope(scope).toLowerCase();
  const r = normaliseScope(resourceId).toLowerCase();
  if (s === '/') return true;
  if (MANAGEMENT_GROUP_SCOPE.test(s)) return true;
  return r === s || r.startsWith(`${s}/`);
}

/** The GUID at the end of a role definition id (dashed, lower case), or undefined. */
export function roleGuid(roleDefinitionId: string | undefined): string | undefined {
  if (!roleDefinitionId) return undefined;
  const last = roleDefinitionId.replace(/\/+$/, '').split('/').pop();
  return dashGuid(last);
}

/** The full role definition id for a GUID, at the subscription of `scope` when it has one. */
function fullRoleDefinitionId(guid: string, scope: string): string {
  if (guid.startsWith('/')) return guid;
  const sub = /^\/subscriptions\/([^/]+)/i.exec(normaliseScope(scope))?.[1];
  const prefix = sub ? `/subscriptions/${sub}` : '';
  return `${prefix}/providers/Microsoft.Authorization/roleDefinitions/${guid}`;
}

/** `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`. */
export function assignmentId(scope: string, name: string): string {
  const s = normaliseScope(scope);
  return `${s === '/' ? '' : s}${ASSIGNMENTS_SEGMENT}${name}`;
}

/** The scope part of a role assignment id, or undefined when it is not one. */
export function scopeOfAssignmentId(id: string): string | undefined {
  const at = id.toLowerCase().lastIndexOf(ASSIGNMENTS_SEGMENT.toLowerCase());
  if (at < 0) return undefined;
  return at === 0 ? '/' : id.slice(0, at);
}

/** Reads the restore data of a remove-assignment step (the core type plus the condition fields). */
export function restoreInfo(step: PlannedStep): AssignmentToRestore | undefined {
  return step.assignment as AssignmentToRestore | undefined;
}

/**
 * The assignments a plan found made through PIM for a set time (those it removes and those it
 * leaves), or undefined when it could not read PIM's schedules.
 */
export function timeBoundSeenIn(plan: RemediationPlan): TimeBoundSeen[] | undefined {
  if (plan.timeBoundUnread) return undefined;
  const seen: TimeBoundSeen[] = [];
  for (const step of plan.steps) {
    const a = step.kind === 'remove-assignment' ? restoreInfo(step) : undefined;
    if (a?.endsAt)
      seen.push({ assignmentId: step.target, endsAt: a.endsAt, activated: a.activated === true });
  }
  for (const r of plan.stillHasAccessThrough as readonly RemainingAccessDetail[]) {
    if (r.endsAt)
      seen.push({ assignmentId: r.assignmentId, endsAt: r.endsAt, activated: r.activated === true });
  }
  return seen;
}

function lookupRole(
  roles: ReadonlyMap<string, RoleDefinitionInfo> | undefined,
  guid: string | undefined,
): RoleDefinitionInfo | undefined {
  if (!guid) return undefined;
  return roles?.get(guid) ?? KNOWN_ROLES.get(guid);
}

function removeStep(
  endpoints: PlanEndpoints,
  id: string,
  restore: AssignmentToRestore | undefined,
  description: string,
): PlannedStep {
  const step: PlannedStep = {
    id: `remove-assignment:${id.toLowerCase()}`,
    kind: 'remove-assignment',
    description,
    call: `DELETE ${endpoints.arm}${id}?api-version=${ROLE_ASSIGNMENTS_API_VERSION}`,
    target: id,
  };
  if (restore) step.assignment = restore;
  return step;
}

function restoreFrom(a: AssignmentInfo, roleName: string | undefined): AssignmentToRestore {
  const r: AssignmentToRestore = {
    scope: normaliseScope(a.scope),
    roleDefinitionId: fullRoleDefinitionId(a.roleDefinitionId, a.scope),
    principalId: a.principalId,
  };
  if (a.principalType) r.principalType = a.principalType;
  if (roleName) r.roleName = roleName;
  if (a.condition) r.condition = a.condition;
  if (a.conditionVersion) r.conditionVersion = a.conditionVersion;
  if (a.description) r.description = a.description;
  return { ...r, ...timeBoundOf(a) };
}

/** Its PIM end (and kind) when it has one, to spread into what is kept of an assignment. */
const timeBoundOf = (a: Pick<AssignmentInfo, 'endsAt' | 'activated'>) =>
  a.endsAt ? { endsAt: a.endsAt, activated: a.activated === true } : {};

/** What a removal step adds of an assignment that ends at a set time through PIM. */
export function timeBoundNote(a: Pick<AssignmentToRestore, 'endsAt' | 'activated'>): string {
  if (!a.endsAt) return '';
  return ` (${a.activated ? 'a PIM activation' : 'assigned through PIM'} until ${a.endsAt}: Undo leaves it to PIM)`;
}

function remaining(
  kind: RemainingAccessDetail['kind'],
  a: Pick<
    AssignmentInfo,
    | 'id'
    | 'scope'
    | 'principalId'
    | 'principalType'
    | 'condition'
    | 'conditionVersion'
    | 'endsAt'
    | 'activated'
  > & {
    roleDefinitionId?: string;
  },
  roleName: string,
): RemainingAccessDetail {
  const r: RemainingAccessDetail = { kind, assignmentId: a.id, roleName, scope: normaliseScope(a.scope) };
  if (a.roleDefinitionId) r.roleDefinitionId = fullRoleDefinitionId(a.roleDefinitionId, a.scope);
  if (a.principalId) r.principalId = a.principalId;
  if (a.principalType) r.principalType = a.principalType;
  if (a.condition) r.condition = a.condition;
  if (a.conditionVersion) r.conditionVersion = a.conditionVersion;
  return { ...r, ...timeBoundOf(a) };
}

const lower = (s: string | undefined) => s?.toLowerCase();

/** The caller's kind as the detection alone says it: its token, else its evidence (unless a group's). */
export const callerKind = (d: Detection): 'serviceprincipal' | 'user' | undefined =>
  principalKind(d, undefined, undefined);

/** An object id as detections spell it, in one form: a GUID dashed and lower-case, else trimmed and lower-case. */
const sameIdForm = (id: string | undefined): string | undefined =>
  id === undefined ? undefined : (dashGuid(id) ?? (id.trim().toLowerCase() || undefined));

/**
 * Whether two detections name the same principal, the one a Revoke of either acts on: the same
 * appid, and for a user caller the same object id too, since many users sign in through one client
 * appid (the Azure CLI's). A user without an object id in its detection is nobody else's match.
 */
export function samePrincipal(a: Detection, b: Detection): boolean {
  if (normaliseAppId(a.appId) !== normaliseAppId(b.appId)) return false;
  const users = [callerKind(a), callerKind(b)].filter((kind) => kind === 'user').length;
  // Anyone else is the service principal of the appid, which a Revoke of either acts on.
  if (users === 0) return true;
  if (users === 1) return false;
  const id = sameIdForm(a.principalId);
  return id !== undefined && id === sameIdForm(b.principalId);
}

/** ServicePrincipal, User, or undefined: the caller's kind, from every source that says it. */
function principalKind(
  d: Detection,
  principalId: string | undefined,
  assignments: readonly AssignmentInfo[] | undefined,
): 'serviceprincipal' | 'user' | undefined {
  const evType = lower(d.evidence.principalType);
  const candidates = [
    lower(d.principalType),
    evType === 'group' ? undefined : evType,
    lower(assignments?.find((a) => lower(a.principalId) === principalId && a.principalType)?.principalType),
    d.user?.upn || d.user?.name ? 'user' : undefined,
  ];
  for (const c of candidates) {
    if (c === 'serviceprincipal' || c === 'user') return c;
  }
  return undefined;
}

/** What step 1 adds to the plan: at most one step, remaining access, and lines for people. */
interface EvidenceOutcome {
  steps: PlannedStep[];
  still: RemainingAccessDetail[];
  warnings: string[];
  /** Put first in `warnings`: the evidence names someone else's assignment. */
  alarms: string[];
}

const ARC_ACTION_SHORT = 'listClusterUserCredential';

/** The plan's warning when the assignment the evidence names is no longer there. */
export const evidenceGoneWarning = (id: string): string =>
  `the role assignment named in the evidence is already gone (ARM has no ${id})`;

/**
 * Step 1 from ARM's own record of the assignment the evidence names (read by id). It is removed
 * only when it exists, is assigned to the detected principal itself and its real role names an
 * Arc credential action; the evidence's role name and principal are not trusted.
 */
function evidenceFromArm(
  input: PlanInput,
  id: string,
  read: EvidenceAssignmentRead,
  principalId: string | undefined,
): EvidenceOutcome {
  const out: EvidenceOutcome = { steps: [], still: [], warnings: [], alarms: [] };
  if (read.status === 'absent') {
    out.warnings.push(evidenceGoneWarning(id));
    return out;
  }
  if (read.status === 'unreadable') {
    out.warnings.push(
      `could not read the role assignment named in the evidence (${read.error}): it is not removed, since it could not be checked${read.fix ? `; ${read.fix}` : ''}: ${id}`,
    );
    return out;
  }
  const a = read.assignment;
  const scope = normaliseScope(a.scope);
  const guid = roleGuid(a.roleDefinitionId);
  const role = lookupRole(input.roles, guid);
  const roleName = role?.roleName ?? guid ?? a.roleDefinitionId;
  const assignedTo = dashGuid(a.principalId);
  // A group assignment through which the caller got the access: the evidence then names that
  // group as the assignment's principal (membership itself is not checked).
  const viaGroup =
    isGroup(a.principalType) &&
    assignedTo !== principalId &&
    assignedTo === dashGuid(input.detection.evidence.principalId);
  if (viaGroup) {
    out.still.push(remaining('group', { ...a, id }, roleName));
    out.warnings.push(
      `the evidence assignment ${id} (${roleName}) is made to group ${assignedTo}: not removed, since that would affect every member; remove the principal from the group`,
    );
    return out;
  }
  if (!principalId) {
    out.warnings.push(
      `no principal was confirmed (see above), so the evidence assignment cannot be checked as its own: not removed: ${id}`,
    );
    return out;
  }
  if (assignedTo !== principalId) {
    out.alarms.push(
      `${TAMPERING}: the detection's evidence names a role assignment of a different principal (${a.principalId}${a.principalType ? `, ${a.principalType}` : ''}), not of the detected principal ${principalId}: not removed; check the detection's source: ${id}`,
    );
    return out;
  }
  if (isGroup(a.principalType)) {
    // The caller's id is a group's: whatever the detection says, a group's assignment stays.
    out.still.push(remaining('group', { ...a, id }, roleName));
    out.warnings.push(
      `the evidence assignment ${id} (${roleName}) is made to group ${assignedTo}: not removed, since that would affect every member`,
    );
    return out;
  }
  if (!role) {
    out.warnings.push(
      `could not read role definition ${guid ?? a.roleDefinitionId} of the evidence assignment: left in place (check Microsoft.Authorization/roleDefinitions/read): ${id}`,
    );
    return out;
  }
  const grant = classifyRole(role);
  if (grant === 'broad') {
    out.still.push(remaining('broad-role', { ...a, id }, roleName));
    out.warnings.push(
      `the evidence assignment ${id} is the broad role ${roleName}: not removed by this plan; remove it with the separate, confirmed action`,
    );
    return out;
  }
  if (grant === 'none') {
    out.warnings.push(
      `the evidence assignment ${id} is "${roleName}", which does not grant ${ARC_ACTION_SHORT}: not removed`,
    );
    return out;
  }
  out.steps.push(
    removeStep(
      input.endpoints,
      id,
      restoreFrom({ ...a, scope }, roleName),
      `Remove "${roleName}" at ${scope}: the assignment named in the evidence${timeBoundNote(a)}`,
    ),
  );
  return out;
}

/**
 * Step 1 from the detection's evidence alone (nothing was read from Azure): planned as the
 * evidence describes it, and labelled unverified. An assignment the evidence attributes to another
 * principal than the caller is not planned.
 */
function evidenceUnverified(
  input: PlanInput,
  id: string,
  scope: string,
  principalId: string | undefined,
): EvidenceOutcome {
  const out: EvidenceOutcome = { steps: [], still: [], warnings: [], alarms: [] };
  const ev = input.detection.evidence;
  const listed = input.assignments?.find((a) => a.id.toLowerCase() === id.toLowerCase());
  const guid = roleGuid(listed?.roleDefinitionId) ?? dashGuid(ev.roleDefinitionId);
  const role = lookupRole(input.roles, guid);
  const roleName = role?.roleName ?? ev.role ?? guid ?? 'unknown role';
  const assignedTo = listed?.principalId ?? dashGuid(ev.principalId) ?? principalId;
  const assignedType = listed?.principalType ?? ev.principalType;
  const facts = {
    id,
    scope,
    principalId: assignedTo ?? '',
    ...(assignedType ? { principalType: assignedType } : {}),
    ...(guid ? { roleDefinitionId: guid } : {}),
    ...(listed?.condition ? { condition: listed.condition } : {}),
    ...(listed?.conditionVersion ? { conditionVersion: listed.conditionVersion } : {}),
    ...(listed ? timeBoundOf(listed) : {}),
  };
  if (isGroup(assignedType)) {
    out.still.push(remaining('group', facts, roleName));
    out.warnings.push(
      `the evidence assignment ${id} (${roleName}) is made to group ${assignedTo ?? '?'}: not removed, since that would affect every member; remove the principal from the group`,
    );
    return out;
  }
  if (principalId && assignedTo && lower(assignedTo) !== principalId) {
    // As when Azure's record of it says so (see `evidenceFromArm`): the detection is at odds with itself.
    out.alarms.push(
      `${TAMPERING}: the evidence assignment is attributed to another principal (${assignedTo}) than the caller ${principalId}: not removed; check the detection's source: ${id}`,
    );
    return out;
  }
  if (role && classifyRole(role) === 'broad') {
    out.still.push(remaining('broad-role', facts, roleName));
    out.warnings.push(
      `the evidence assignment ${id} is the broad role ${roleName}: not removed by this plan; remove it with the separate, confirmed action`,
    );
    return out;
  }
  const restore =
    listed !== undefined
      ? restoreFrom(listed, roleName)
      : guid && assignedTo
        ? restoreFrom(
            { id, scope, roleDefinitionId: guid, principalId: assignedTo, principalType: assignedType },
            roleName,
          )
        : undefined;
  if (!restore) out.warnings.push(`undo cannot re-create ${id}: the evidence lacks its role or principal`);
  out.steps.push(
    removeStep(
      input.endpoints,
      id,
      restore,
      `Remove "${roleName}" at ${scope}: the assignment named in the evidence (unverified: taken from the detection, not checked in Azure)${restore ? timeBoundNote(restore) : ''}`,
    ),
  );
  return out;
}

/**
 * Decides the steps for a detection:
 * 1. remove the role assignment named in the evidence (scope + id), when ARM's record of it (read
 *    by id) shows it is the detected principal's own and its role names an Arc credential action;
 * 2. remove every other assignment of the principal at a scope covering the cluster whose role
 *    names an Arc credential action; broad roles and group assignments are listed in
 *    `stillHasAccessThrough` instead;
 * 3. disable the service principal, or for a user disable the account and revoke its sessions.
 * The principal is the caller (claims object id); evidence that names another one is reported.
 * The service's own identity (`PlanInput.own`) gets no step at all, only an alarm.
 * Ids that are not GUIDs and scopes that are not ARM scopes never reach a step's call.
 */
export function buildRemediationPlan(input: PlanInput): RemediationPlan {
  const { detection: d, endpoints } = input;
  const warnings = [...(input.warnings ?? [])];
  const steps: PlannedStep[] = [];
  const still: RemainingAccessDetail[] = [];
  const seen = new Set<string>();
  const ev = d.evidence;
  const claimsPrincipal = dashGuid(d.principalId);
  const evidencePrincipal = dashGuid(ev.principalId);
  const caller = callerPrincipal(d, input.caller);
  const principalId = caller.id;
  const appId = dashGuid(d.appId);
  const clusterId = d.cluster?.id && isSafeScope(d.cluster.id) ? normaliseScope(d.cluster.id) : undefined;
  const assignments = input.assignments;
  const alarms: string[] = [];
  const checked = input.caller !== undefined;
  const kind = checked ? caller.kind : principalKind(d, principalId, assignments);
  if (caller.alarm) alarms.push(caller.alarm);
  if (caller.warning) warnings.push(caller.warning);

  // The service's own identity: a Revoke that disabled it (or took its roles) would lock the
  // service out of Azure, Undo included, until a tenant admin restored it.
  const own = ownIdentityIn(input, principalId);
  if (own) {
    alarms.unshift(
      `${TAMPERING}: ${own}: Revoke leaves it alone, removing none of its role assignments and not disabling it, since that would cut this service off from Azure (every later Revoke, Undo and lookup) until a tenant admin restored it. Either someone sent a detection naming it, or it really is compromised: a person must check which; if it is compromised, rotate its credential and remove its access by hand`,
    );
    return finishedPlan(d, { steps, still, warnings: [...alarms, ...warnings], principalId, kind });
  }

  if (
    claimsPrincipal &&
    evidencePrincipal &&
    claimsPrincipal !== evidencePrincipal &&
    !isGroup(ev.principalType)
  ) {
    warnings.push(
      `the caller's object id in the claims (${claimsPrincipal}) differs from the principal in the evidence (${evidencePrincipal}): the plan acts on the caller`,
    );
  }

  // 1. The assignment named in the evidence.
  const evAssignment = dashGuid(ev.roleAssignmentId);
  if (ev.roleAssignmentScope && evAssignment && isSafeScope(ev.roleAssignmentScope)) {
    const scope = normaliseScope(ev.roleAssignmentScope);
    const id = assignmentId(scope, evAssignment);
    seen.add(id.toLowerCase());
    const outcome =
      input.evidenceAssignment !== undefined
        ? evidenceFromArm(input, id, input.evidenceAssignment, principalId)
        : evidenceUnverified(input, id, scope, principalId);
    steps.push(...outcome.steps);
    still.push(...outcome.still);
    warnings.push(...outcome.warnings);
    alarms.push(...outcome.alarms);
  } else if (ev.roleAssignmentScope || ev.roleAssignmentId) {
    warnings.push(
      'the evidence names a role assignment that is not a valid ARM scope and GUID: it is not removed',
    );
  } else {
    warnings.push('the detection names no role assignment (its format carries no evidence)');
  }

  // 2. Every other assignment of the principal that grants the Arc credential on this cluster.
  if (assignments !== undefined && clusterId === undefined) {
    warnings.push('the detection names no cluster: other role assignments were not examined');
  } else if (assignments !== undefined && clusterId !== undefined) {
    for (const a of assignments) {
      const key = a.id.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      if (!principalId || lower(a.principalId) !== principalId) continue;
      // The root scope (`/`, the tenant's) covers the cluster too.
      const atRoot = normaliseScope(a.scope) === '/';
      if (!(atRoot || isSafeScope(a.scope)) || !isSafeScope(a.id) || !scopeCovers(a.scope, clusterId))
        continue;
      // A group's assignment is never the caller's own, whatever id the plan was given.
      if (isGroup(a.principalType)) continue;
      const guid = roleGuid(a.roleDefinitionId);
      const role = lookupRole(input.roles, guid);
      if (!role) {
        warnings.push(
          `could not read role definition ${guid ?? a.roleDefinitionId} of ${a.id}: left in place (check Microsoft.Authorization/roleDefinitions/read)`,
        );
        continue;
      }
      const grant = classifyRole(role);
      const roleName = role.roleName ?? guid ?? a.roleDefinitionId;
      if (grant === 'none') continue;
      if (atRoot) {
        still.push(remaining('root', a, roleName));
        warnings.push(
          `${roleName} is assigned to the principal at the tenant's root scope (/): tenant-wide access that this service does not remove; remove ${normaliseScope(a.id)} in Azure if it should go`,
        );
        continue;
      }
      if (grant === 'broad') {
        still.push(remaining('broad-role', a, roleName));
        continue;
      }
      steps.push(
        removeStep(
          endpoints,
          normaliseScope(a.id),
          restoreFrom(a, roleName),
          `Remove "${roleName}" at ${normaliseScope(a.scope)}: it grants listClusterUserCredential on the cluster${timeBoundNote(a)}`,
        ),
      );
    }
  }

  // 3. Stop the principal itself: the one Graph confirmed, when it was looked up.
  if (checked && !principalId) {
    // Nobody was confirmed: the warnings and alarms say why.
  } else if (kind === 'user') {
    const upn = d.user?.upn;
    const who = principalId ?? (isUpn(upn) ? upn : undefined);
    if (who) {
      const path = `${endpoints.graph}/v1.0/users/${encodeURIComponent(who)}`;
      const label = upn && upn !== who ? `${upn} (${who})` : who;
      steps.push({
        id: `disable-user:${who}`,
        kind: 'disable-user',
        description: `Disable the user account ${label} so that it cannot sign in (to anything in the tenant, not only Azure)`,
        call: `PATCH ${path} {"accountEnabled":false}`,
        target: who,
      });
      steps.push({
        id: `revoke-user-sessions:${who}`,
        kind: 'revoke-user-sessions',
        description: `Revoke the sign-in sessions of ${label} (Undo cannot restore them)`,
        call: `POST ${path}/revokeSignInSessions`,
        target: who,
      });
    } else {
      warnings.push('the user has no object id or UPN in the detection: the account is not disabled');
    }
  } else if (kind === 'serviceprincipal' && isManagedIdentity(input.caller)) {
    // Graph refuses to disable a managed identity's service principal, whatever the permission:
    // a step that cannot succeed would fail every Revoke and ask for more Graph permissions.
    warnings.push(
      `the service principal ${principalId} of application ${appId ?? d.appId} is a managed identity, which cannot be disabled through Microsoft Graph: only its Arc role assignments are removed here; to stop the identity itself, remove it from the resource that holds it (a system-assigned one), or delete the user-assigned identity or its federated credentials; tokens it already holds stay valid until they expire`,
    );
  } else if (kind === 'serviceprincipal' && isMicrosoftApp(input)) {
    // Microsoft holds a first-party application's credentials, not this tenant: they cannot have
    // been taken from it, and disabling the service principal breaks that Microsoft feature (the
    // Custom Locations resource provider on Arc clusters, say) for the whole tenant.
    warnings.push(
      `the service principal ${principalId} of application ${appId ?? d.appId} is a Microsoft application (its appOwnerOrganizationId is Microsoft's tenant): Microsoft holds its credentials, not this tenant, and disabling it would break the Microsoft feature it serves for the whole tenant, so it is not disabled; only its Arc role assignments are removed here; check in the cluster's activity log which Microsoft service made the call`,
    );
  } else if (kind === 'serviceprincipal') {
    const target = principalId ?? appId;
    if (target) {
      const path = principalId ? `servicePrincipals/${principalId}` : `servicePrincipals(appId='${appId}')`;
      steps.push({
        id: `disable-service-principal:${target}`,
        kind: 'disable-service-principal',
        description: `Disable the service principal${principalId ? ` ${principalId}` : ''} of application ${appId ?? d.appId} so that it cannot sign in`,
        call: `PATCH ${endpoints.graph}/v1.0/${path} {"accountEnabled":false}`,
        target,
        targetIs: principalId ? 'objectId' : 'appId',
      });
    } else {
      warnings.push('the service principal has no valid object id or appId: it is not disabled');
    }
  } else {
    warnings.push(
      `whether ${principalId ?? d.appId} is a service principal or a user is unknown: it is not disabled; check it by hand`,
    );
  }

  return finishedPlan(d, { steps, still, warnings: [...alarms, ...warnings], principalId, kind });
}

/** The plan from what was decided, with the principal's id and kind and the cluster. */
function finishedPlan(
  d: Detection,
  decided: {
    steps: PlannedStep[];
    still: RemainingAccessDetail[];
    warnings: string[];
    principalId: string | undefined;
    kind: 'serviceprincipal' | 'user' | undefined;
  },
): RemediationPlan {
  const { principalId, kind } = decided;
  const plan: RemediationPlan = {
    appId: d.appId,
    steps: decided.steps,
    stillHasAccessThrough: decided.still,
    warnings: decided.warnings,
  };
  if (principalId) plan.principalId = principalId;
  const typeName =
    kind === 'user' ? 'User' : kind === 'serviceprincipal' ? 'ServicePrincipal' : d.principalType;
  if (typeName) plan.principalType = typeName;
  if (d.cluster) plan.clusterId = d.cluster.id;
  return plan;
}

/**
 * The separate, explicitly confirmed action: a plan that removes the broad-role assignments the
 * main plan left in `stillHasAccessThrough`. Group assignments stay (they affect other members).
 */
export function buildBroadRemovalPlan(plan: RemediationPlan, endpoints: PlanEndpoints): RemediationPlan {
  const steps: PlannedStep[] = [];
  const left: RemainingAccess[] = [];
  const warnings: string[] = [];
  for (const r of plan.stillHasAccessThrough as readonly Partial<RemainingAccessDetail>[]) {
    const id = r.assignmentId ?? '';
    if (
      r.kind === 'group' ||
      r.kind === 'root' ||
      !isSafeScope(id) ||
      scopeOfAssignmentId(id) === undefined
    ) {
      left.push({ assignmentId: id, roleName: r.roleName ?? '', scope: r.scope ?? '' });
      continue;
    }
    const scope = normaliseScope(r.scope ?? scopeOfAssignmentId(id) ?? '/');
    const restore: AssignmentToRestore | undefined =
      r.roleDefinitionId && r.principalId
        ? {
            scope,
            roleDefinitionId: r.roleDefinitionId,
            principalId: r.principalId,
            ...(r.principalType ? { principalType: r.principalType } : {}),
            ...(r.roleName ? { roleName: r.roleName } : {}),
            ...(r.condition ? { condition: r.condition } : {}),
            ...(r.conditionVersion ? { conditionVersion: r.conditionVersion } : {}),
            ...timeBoundOf(r),
          }
        : undefined;
    if (!restore) warnings.push(`undo cannot re-create ${id}: its role or principal is unknown`);
    steps.push(
      removeStep(
        endpoints,
        normaliseScope(id),
        restore,
        `Remove the broad role "${r.roleName ?? 'unknown'}" at ${scope}: the principal loses everything it grants there, not only the Arc access${timeBoundNote(r)}`,
      ),
    );
  }
  if (plan.timeBoundUnread && steps.length > 0) warnings.push(plan.timeBoundUnread);
  const broad: RemediationPlan = { appId: plan.appId, steps, stillHasAccessThrough: left, warnings };
  if (plan.principalId) broad.principalId = plan.principalId;
  if (plan.principalType) broad.principalType = plan.principalType;
  if (plan.clusterId) broad.clusterId = plan.clusterId;
  return broad;
}

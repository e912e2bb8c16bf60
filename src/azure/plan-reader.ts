import type { Logger } from 'pino';
import { dashGuid } from '../core/azure-ids.ts';
import type { Detection } from '../core/detection.ts';
import type { PlanOptions, RemediationPlan, TimeBoundSeen } from '../core/remediation.ts';
import {
  type AssignmentInfo,
  assignmentId,
  buildRemediationPlan,
  type CallerLookup,
  type CallerRead,
  callerLookup,
  callerPrincipal,
  type EvidenceAssignmentRead,
  isSafeScope,
  KNOWN_ROLES,
  normaliseScope,
  type OwnIdentity,
  type PlanEndpoints,
  type RoleDefinitionInfo,
  roleGuid,
} from '../core/remediation-plan.ts';
import type { ArmGateway } from './arm.ts';
import { withCallLog } from './call-log.ts';
import { describeFailure, type FailureInfo, failureText, SP_READ_PERMISSIONS } from './errors.ts';
import type { GraphClient } from './graph.ts';

/**
 * ARM's answer where there is no PIM: a tenant without Entra ID P2, or not onboarded to PIM. (An
 * API version or resource type ARM does not serve is not taken for it: PIM may be there all the
 * same, and the plan says the schedules could not be read.)
 */
const noPim = (f: FailureInfo): boolean =>
  f.status === 400 &&
  /AadPremiumLicenseRequired|Premium 2 license|not onboarded to PIM/i.test(`${f.code ?? ''} ${f.message}`);

/** How long a failed read's cause stays said (see `warnPerCause`). */
const WARN_AGAIN_MS = 10 * 60_000;

/** What the plan reader reads Azure with and logs to. */
export interface PlanReaderContext {
  arm: ArmGateway;
  graph: GraphClient;
  /** The base URLs each planned step's call is written with. */
  endpoints: PlanEndpoints;
  logger: Logger;
  /** The tenant the service acts in, when known (see `PlanInput.homeTenantId`). */
  homeTenantId?: string;
  /** The identity the service runs as, as far as it is known: no plan acts on it. */
  own: () => readonly OwnIdentity[];
}

/**
 * Creates the plan reader: it looks the caller up in Microsoft Graph, reads its role assignments
 * at the cluster, the one the evidence names and their role definitions from ARM, and builds the
 * remediation plan from what it read.
 */
export function createPlanReader(ctx: PlanReaderContext): (detection: Detection) => Promise<RemediationPlan> {
  const { arm, graph, endpoints, logger } = ctx;

  /** When each cause of a failed read was last logged at warn (see `warnPerCause`). */
  const warnedAt = new Map<string, number>();

  /**
   * A read that fails fails again for every alert while its cause lasts (an expired secret, a
   * missing permission): logged at warn once per cause every 10 minutes, at debug in between.
   */
  function warnPerCause(fields: Record<string, unknown>, cause: string, msg: string): void {
    const key = `${msg}|${cause}`;
    const t = Date.now();
    const last = warnedAt.get(key);
    if (last !== undefined && t - last < WARN_AGAIN_MS) {
      logger.debug(fields, msg);
      return;
    }
    if (warnedAt.size >= 100) warnedAt.clear();
    warnedAt.set(key, t);
    logger.warn(fields, `${msg} (said once per cause every 10 minutes)`);
  }

  /**
   * The role definitions of the assignments ARM returned (never the role the evidence claims: the
   * plan classifies each assignment by its real definition).
   */
  async function readRoles(
    assignments: readonly AssignmentInfo[],
    warnings: string[],
    unchecked: string[],
  ): Promise<Map<string, RoleDefinitionInfo>> {
    const ids = new Map<string, string>();
    for (const a of assignments) {
      const guid = roleGuid(a.roleDefinitionId);
      if (guid && !ids.has(guid) && isSafeScope(a.roleDefinitionId)) ids.set(guid, a.roleDefinitionId);
    }
    const roles = new Map<string, RoleDefinitionInfo>();
    const failures: string[] = [];
    await Promise.all(
      [...ids].map(async ([guid, id]) => {
        try {
          roles.set(guid, await arm.getRoleDefinition(id));
        } catch (error) {
          if (KNOWN_ROLES.has(guid)) return;
          const f = describeFailure(error, {
            service: 'arm',
            action: 'Microsoft.Authorization/roleDefinitions/read',
            scope: id,
          });
          failures.push(`${guid}: ${failureText(f)}${f.fix ? ` (${f.fix})` : ''}`);
        }
      }),
    );
    if (failures.length > 0) {
      warnings.push(`could not read role definitions: ${failures.join('; ')}`);
      unchecked.push(`reading the role definitions of ${failures.length} assignment role(s)`);
    }
    return roles;
  }

  /** Plans, keeping the calls the plan was made from (the audit record of a run lists them). */
  async function plan(detection: Detection, options: PlanOptions = {}): Promise<RemediationPlan> {
    const made = await withCallLog(() => makePlan(detection, options));
    if (!made.ok) throw made.error;
    if (made.calls.length > 0) made.value.reads = made.calls;
    return made.value;
  }

  async function makePlan(detection: Detection, options: PlanOptions): Promise<RemediationPlan> {
    const warnings: string[] = [];
    const unchecked: string[] = [];
    // The caller as Graph knows it: the detection's object id alone is never acted on.
    const lookup = callerLookup(detection);
    const caller: CallerRead =
      lookup.kind === 'none' ? { status: 'unverifiable', reason: lookup.reason } : await readCaller(lookup);
    if (caller.status === 'unreadable') {
      unchecked.push(`looking the caller up in Microsoft Graph (${caller.error})`);
    }
    const principalId = callerPrincipal(detection, caller).id;
    const clusterId = detection.cluster?.id;
    let assignments: AssignmentInfo[] | undefined;
    if (!principalId) {
      // Why no principal was confirmed is the plan's own warning (callerPrincipal).
    } else if (!clusterId || !isSafeScope(clusterId)) {
      warnings.push('the detection names no valid cluster id: other role assignments were not listed');
    } else {
      try {
        assignments = await arm.listAssignmentsForPrincipal(clusterId, principalId);
      } catch (error) {
        const f = describeFailure(error, {
          service: 'arm',
          action: 'Microsoft.Authorization/roleAssignments/read',
          scope: clusterId,
        });
        warnings.push(
          `could not list the role assignments at the cluster (${failureText(f)}): the plan rests on the evidence alone${f.fix ? `; ${f.fix}` : ''}`,
        );
        unchecked.push(`listing the role assignments at the cluster (${failureText(f)})`);
        logger.warn(
          { err: f.message, cluster: clusterId },
          'listing role assignments failed; planning from evidence',
        );
      }
    }
    // The assignment the evidence names, read by id: the plan trusts ARM's record, not the evidence.
    const evidenceAssignment = await readEvidenceAssignment(detection);
    if (evidenceAssignment?.status === 'unreadable') {
      unchecked.push(`reading the role assignment named in the evidence (${evidenceAssignment.error})`);
    }
    const found = evidenceAssignment?.status === 'found' ? [evidenceAssignment.assignment] : [];
    const known = [...(assignments ?? []), ...found];
    const [roles, timeBoundUnread] = await Promise.all([
      known.length > 0 ? readRoles(known, warnings, unchecked) : undefined,
      known.length > 0 && principalId && clusterId && isSafeScope(clusterId)
        ? markTimeBound(known, clusterId, principalId, options.timeBoundSeen)
        : undefined,
    ]);
    const planned = buildRemediationPlan({
      detection,
      endpoints,
      ...(assignments ? { assignments } : {}),
      ...(evidenceAssignment ? { evidenceAssignment } : {}),
      ...(roles ? { roles } : {}),
      caller,
      warnings,
      ...(ctx.homeTenantId ? { homeTenantId: ctx.homeTenantId } : {}),
      // Asked after the reads: their tokens have said who the service is.
      own: ctx.own(),
    });
    if (unchecked.length > 0) planned.unchecked = unchecked;
    // Said only where it matters: the plan removes an assignment that Undo would re-create.
    if (timeBoundUnread) {
      planned.timeBoundUnread = timeBoundUnread;
      if (planned.steps.some((step) => step.kind === 'remove-assignment'))
        planned.warnings.push(timeBoundUnread);
    }
    return planned;
  }

  /**
   * Marks the assignments that end at a set time (made or activated through PIM) with their end,
   * so that Undo never re-creates one as permanent. Answers why they could not be read, if so. A
   * tenant without PIM (ARM answers 400 AadPremiumLicenseRequired: no Entra ID P2, so no PIM
   * assignment either) and an ARM without its API (a 404: an older private cloud, a test double)
   * have no schedule, as the README says. Should they not be readable, the end times an earlier
   * plan read (`seen`, the alert's) are kept.
   */
  async function markTimeBound(
    assignments: readonly AssignmentInfo[],
    clusterId: string,
    principalId: string,
    seen: readonly TimeBoundSeen[] | undefined,
  ): Promise<string | undefined> {
    let ends: Map<string, { endsAt: string; activated: boolean }>;
    try {
      const listed = await arm.listTimeBoundForPrincipal(clusterId, principalId);
      ends = new Map(listed.map((t) => [normaliseScope(t.assignmentId).toLowerCase(), t]));
    } catch (error) {
      const f = describeFailure(error, {
        service: 'arm',
        action: 'Microsoft.Authorization/roleAssignmentScheduleInstances/read',
        scope: clusterId,
      });
      if (f.gone || noPim(f)) {
        logger.debug({ err: f.message, cluster: clusterId }, 'no PIM schedules to read');
        return undefined;
      }
      warnPerCause({ err: f.message, cluster: clusterId }, failureText(f), 'reading PIM schedules failed');
      const unread = `could not read which role assignments end at a set time through PIM (${failureText(f)})`;
      const fix = f.fix ? `; ${f.fix}` : '';
      if (!seen) return `${unread}: Undo would re-create a removed one without its end time${fix}`;
      // Also those whose end has passed: one ARM still lists is no permanent assignment either
      // (PIM takes it away), and Undo says it ended rather than making it again.
      ends = new Map(seen.map((t) => [normaliseScope(t.assignmentId).toLowerCase(), t]));
      // The listed assignment and the evidence's read of it by id are one.
      const kept = new Set(
        assignments.map((a) => normaliseScope(a.id).toLowerCase()).filter((id) => ends.has(id)),
      ).size;
      markEnds(assignments, ends);
      return `${unread}: ${kept > 0 ? `the end times read as the alert was posted are kept (${kept}), but ` : 'none of these ended at a set time as the alert was posted, but '}Undo would re-create without its end one made through PIM since${fix}`;
    }
    markEnds(assignments, ends);
    return undefined;
  }

  function markEnds(
    assignments: readonly AssignmentInfo[],
    ends: ReadonlyMap<string, { endsAt: string; activated: boolean }>,
  ): void {
    for (const a of assignments) {
      const bound = ends.get(normaliseScope(a.id).toLowerCase());
      if (bound) {
        a.endsAt = bound.endsAt;
        a.activated = bound.activated;
      }
    }
  }

  /** Looks the caller up: the service principal of the appid, or the user of the object id (or UPN). */
  async function readCaller(lookup: Exclude<CallerLookup, { kind: 'none' }>): Promise<CallerRead> {
    const user = lookup.kind === 'user';
    const path = user
      ? `/v1.0/users/${encodeURIComponent(lookup.key)}?$select=id,userPrincipalName,mail,otherMails`
      : `/v1.0/servicePrincipals(appId='${lookup.appId}')?$select=id,appId,servicePrincipalType,appOwnerOrganizationId`;
    try {
      const res = await graph.call('GET', path);
      if (res.status === 404) {
        return {
          status: 'absent',
          what: user
            ? `Microsoft Graph has no user ${lookup.key} in this tenant`
            : `application ${lookup.appId} has no service principal in this tenant`,
        };
      }
      const body = (res.body ?? {}) as {
        id?: unknown;
        userPrincipalName?: unknown;
        mail?: unknown;
        otherMails?: unknown;
        servicePrincipalType?: unknown;
        appOwnerOrganizationId?: unknown;
      };
      const id = dashGuid(body.id);
      if (!id) return { status: 'unreadable', error: 'Graph answered without an id' };
      const upn = typeof body.userPrincipalName === 'string' ? body.userPrincipalName : undefined;
      const mails = [body.mail, ...(Array.isArray(body.otherMails) ? body.otherMails : [])].filter(
        (m): m is string => typeof m === 'string' && m !== '',
      );
      return {
        status: 'found',
        kind: user ? 'user' : 'serviceprincipal',
        id,
        ...(upn ? { upn } : {}),
        ...(mails.length > 0 ? { mails } : {}),
        ...(!user && typeof body.servicePrincipalType === 'string'
          ? { servicePrincipalType: body.servicePrincipalType }
          : {}),
        ...(!user && typeof body.appOwnerOrganizationId === 'string'
          ? { appOwnerOrganizationId: body.appOwnerOrganizationId }
          : {}),
      };
    } catch (error) {
      const f = describeFailure(error, {
        service: 'graph',
        graphPermissions: user ? 'User.Read.All' : SP_READ_PERMISSIONS,
      });
      warnPerCause(
        { err: f.message, fix: f.fix, caller: user ? lookup.key : lookup.appId },
        f.message,
        'looking the caller up in Microsoft Graph failed',
      );
      return { status: 'unreadable', error: failureText(f), ...(f.fix ? { fix: f.fix } : {}) };
    }
  }

  /** Reads the assignment named in the evidence by id; undefined when the evidence names none. */
  async function readEvidenceAssignment(detection: Detection): Promise<EvidenceAssignmentRead | undefined> {
    const ev = detection.evidence;
    const name = dashGuid(ev.roleAssignmentId);
    if (!name || !ev.roleAssignmentScope || !isSafeScope(ev.roleAssignmentScope)) return undefined;
    const id = assignmentId(normaliseScope(ev.roleAssignmentScope), name);
    try {
      const assignment = await arm.getAssignment(id);
      return assignment ? { status: 'found', assignment } : { status: 'absent' };
    } catch (error) {
      const f = describeFailure(error, {
        service: 'arm',
        action: 'Microsoft.Authorization/roleAssignments/read',
        scope: id,
      });
      warnPerCause(
        { err: f.message, fix: f.fix, assignment: id },
        f.message,
        'reading the evidence role assignment failed',
      );
      return { status: 'unreadable', error: failureText(f), ...(f.fix ? { fix: f.fix } : {}) };
    }
  }

  return plan;
}

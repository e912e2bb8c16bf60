import { dashGuid, isGroup } from '../core/azure-ids.ts';
import type { PlannedStep, RemediationPlan, StepResult } from '../core/remediation.ts';
import {
  type AssignmentInfo,
  type AssignmentToRestore,
  isSafeScope,
  isUpn,
  restoreInfo,
  roleGuid,
  scopeOfAssignmentId,
} from '../core/remediation-plan.ts';
import type { ArmGateway } from './arm.ts';
import { loggedCalls } from './call-log.ts';
import {
  callMayHaveApplied,
  describeFailure,
  type FailureContext,
  failureText,
  SP_PERMISSIONS,
  SP_READ_PERMISSIONS,
  UnconfirmedWriteError,
  USER_DISABLE_PERMISSIONS,
  USER_SESSIONS_PERMISSIONS,
  writeMayHaveApplied,
} from './errors.ts';
import type { GraphClient } from './graph.ts';

/** What running or undoing a step came to: a step's result without its id. */
export type StepOutcome = Omit<StepResult, 'stepId'>;

/**
 * The outcome of a step whose call failed: what was tried, what Azure answered and, when known,
 * the fix.
 */
export function failed(error: unknown, ctx: FailureContext, what: string): StepOutcome {
  const f = describeFailure(error, ctx);
  const out: StepOutcome = { status: 'failed', detail: `${what} failed: ${failureText(f)}` };
  if (f.fix) out.fix = f.fix;
  return out;
}

/** What an unexpected answer's body was, for a person: never the body itself (a page of HTML). */
function describeBody(body: unknown): string {
  if (body === undefined) return 'no body';
  if (typeof body === 'string') return /^\s*</.test(body) ? 'an HTML or XML page' : 'a body that is not JSON';
  return 'JSON without the expected fields';
}

function graphPathFor(step: PlannedStep): string | undefined {
  if (step.kind === 'disable-service-principal') {
    const guid = dashGuid(step.target);
    if (!guid) return undefined;
    // A step stored without `targetIs` says it by the call it shows.
    const byAppId =
      (step.targetIs ?? (step.call.includes('servicePrincipals(appId=') ? 'appId' : 'objectId')) === 'appId';
    return byAppId ? `/v1.0/servicePrincipals(appId='${guid}')` : `/v1.0/servicePrincipals/${guid}`;
  }
  const who = dashGuid(step.target) ?? (isUpn(step.target) ? step.target : undefined);
  return who ? `/v1.0/users/${encodeURIComponent(who)}` : undefined;
}

/** The clients the steps are run and undone with. */
export interface StepRunnerContext {
  arm: ArmGateway;
  graph: GraphClient;
}

/**
 * Creates the step runners: `runStep` makes one planned step's change in ARM or Graph, checking
 * first that its target is still what the plan found; `undoStep` reverses one that was done. A
 * write whose answer was lost is settled by a read where one can tell.
 */
export function createStepRunners(ctx: StepRunnerContext) {
  const { arm, graph } = ctx;

  async function disablePrincipal(
    step: PlannedStep,
    plan: RemediationPlan,
    path: string,
    permissions: string,
    earlier: StepResult | undefined,
  ): Promise<StepOutcome> {
    const sp = step.kind === 'disable-service-principal';
    // Read first: an account that is already disabled needs no write (and undo must not enable it).
    try {
      const current = await graph.call('GET', `${path}?$select=id,${sp ? 'appId,' : ''}accountEnabled`);
      if (current.status === 404) return notFoundSincePlan(step);
      const body = current.body as { accountEnabled?: unknown; appId?: unknown } | undefined;
      // A service principal of another application is never disabled for this detection, and one
      // whose application cannot be read (an answer that is not Graph's) is never disabled either.
      const owner = sp ? dashGuid(body?.appId) : undefined;
      if (sp && owner === undefined) {
        return {
          status: 'failed',
          detail: `not disabled: Microsoft Graph's answer for ${step.target} names no application (${describeBody(current.body)}), so it cannot be checked to be the service principal of ${plan.appId}`,
          fix: 'check that nothing between arc-responder and Microsoft Graph (a proxy) answers in its place, then press Revoke again',
        };
      }
      if (owner !== undefined && owner !== dashGuid(plan.appId)) {
        return {
          status: 'failed',
          detail: `not disabled: ${step.target} is the service principal of application ${owner}, not of the detected application ${plan.appId}`,
        };
      }
      if (body?.accountEnabled === false) {
        // Disabled by this service's earlier attempt, whose answer was lost: Undo re-enables it.
        if (earlier?.maybeApplied) {
          return {
            status: 'done',
            detail: `disabled ${step.target} (by the earlier attempt, whose answer was lost)`,
          };
        }
        return { status: 'already-done', detail: `${step.target} was already disabled` };
      }
    } catch (error) {
      // A service principal is disabled only once it is shown to be the application's. A user was
      // confirmed when the plan was made; reading it again only spares a write.
      if (sp) {
        return failed(
          error,
          { service: 'graph', graphPermissions: SP_READ_PERMISSIONS },
          `GET ${graph.base}${path} (the check that it is the service principal of application ${plan.appId})`,
        );
      }
    }
    try {
      const res = await graph.call('PATCH', path, { body: { accountEnabled: false } });
      if (res.status === 404) return notFoundSincePlan(step);
      if (res.status !== 204) {
        // Graph answers an update with 204 No Content; another success is not Graph's word.
        throw new UnconfirmedWriteError(
          `Microsoft Graph was expected to answer 204, and ${res.status} came (${describeBody(res.body)}): something between arc-responder and Graph (a proxy?) answered, and whether it was disabled is unknown`,
          res.status,
        );
      }
      return { status: 'done', detail: `disabled ${step.target}` };
    } catch (error) {
      const out = failed(
        error,
        { service: 'graph', graphPermissions: permissions },
        `PATCH ${graph.base}${path}`,
      );
      if (!writeMayHaveApplied(error, 'PATCH')) return out;
      // Its answer was lost: a read showing the change made settles it. One showing it not made
      // may be a read behind the write (Graph is eventually consistent): still unsettled, and the
      // retry writes again.
      try {
        const now = await graph.call('GET', `${path}?$select=id,accountEnabled`);
        const enabled = (now.body as { accountEnabled?: unknown } | undefined)?.accountEnabled;
        if (now.status !== 404 && enabled === false) {
          return {
            status: 'done',
            detail: `disabled ${step.target} (the answer was lost; a read shows it disabled)`,
          };
        }
      } catch {
        // Unknown for now: the retry settles it.
      }
      return { ...out, maybeApplied: true };
    }
  }

  /**
   * A principal that Graph does not find, seconds after the plan found it: most likely a Graph
   * replica behind the one the plan read (Graph is eventually consistent), so never taken for
   * "deleted, nothing to do". The retry's plan settles it: a principal Graph no longer has is
   * then no step.
   */
  function notFoundSincePlan(step: PlannedStep): StepOutcome {
    return {
      status: 'failed',
      detail: `not disabled: Microsoft Graph does not find ${step.target}, which it found when the plan was made`,
      fix: 'press Revoke again in a minute: a Graph replica behind catches up within seconds; if it was deleted meanwhile, the new plan says so',
    };
  }

  /**
   * Re-reads an assignment right before deleting it: the id may have been deleted and reused since
   * the plan was made. Undefined when the DELETE may go ahead, else the step's outcome.
   */
  async function recheckAssignment(
    step: PlannedStep,
    plan: RemediationPlan,
    scope: string,
    earlier: StepResult | undefined,
  ): Promise<StepOutcome | undefined> {
    let current: AssignmentInfo | undefined;
    try {
      current = await arm.getAssignment(step.target);
    } catch (error) {
      return failed(
        error,
        { service: 'arm', action: 'Microsoft.Authorization/roleAssignments/read', scope },
        `GET ${step.target} (the check before deleting it)`,
      );
    }
    if (!current) {
      // Removed by this service's earlier attempt, whose answer was lost: Undo re-creates it.
      if (earlier?.maybeApplied) {
        return {
          status: 'done',
          detail: `removed ${step.target} (by the earlier attempt, whose answer was lost)`,
        };
      }
      return { status: 'already-done', detail: `${step.target} was already gone` };
    }
    const expected = dashGuid(plan.principalId) ?? dashGuid(restoreInfo(step)?.principalId);
    const actual = dashGuid(current.principalId);
    if (isGroup(current.principalType)) {
      return {
        status: 'skipped',
        detail: `not removed: ${step.target} is assigned to group ${current.principalId}, and removing it would affect every member`,
      };
    }
    if (!expected || actual !== expected) {
      return {
        status: 'skipped',
        detail: `not removed: ${step.target} is now assigned to ${current.principalId}, not to the plan's principal ${expected ?? '(unknown)'} (the assignment id may have been reused)`,
      };
    }
    const plannedRole = roleGuid(restoreInfo(step)?.roleDefinitionId);
    const currentRole = roleGuid(current.roleDefinitionId);
    if (plannedRole && currentRole !== plannedRole) {
      return {
        status: 'skipped',
        detail: `not removed: ${step.target} now grants role ${currentRole ?? current.roleDefinitionId}, not the planned ${plannedRole} (the assignment id may have been reused)`,
      };
    }
    return undefined;
  }

  /**
   * Runs one step. `earlier`: the step's failed outcome in the run this one retries, if any (a write
   * whose answer was lost is then recognised as this service's).
   */
  async function runStep(
    step: PlannedStep,
    plan: RemediationPlan,
    earlier?: StepResult,
  ): Promise<StepOutcome> {
    switch (step.kind) {
      case 'remove-assignment': {
        const scope = scopeOfAssignmentId(step.target);
        if (!isSafeScope(step.target) || scope === undefined) {
          return { status: 'failed', detail: `not a role assignment id: ${step.target}` };
        }
        const refused = await recheckAssignment(step, plan, scope, earlier);
        if (refused) return refused;
        try {
          const r = await arm.deleteAssignment(step.target);
          if (r === 'deleted') return { status: 'done', detail: `removed ${step.target}` };
          // It was there a moment ago (the re-check). When a try of this DELETE got a server error
          // or lost its connection and the client sent it again, that try removed it: this
          // service's doing.
          const lost = loggedCalls().some((c) => c.method === 'DELETE' && callMayHaveApplied(c));
          return lost
            ? {
                status: 'done',
                detail: `removed ${step.target} (a try whose answer was lost removed it; Azure then answered that it was gone)`,
              }
            : { status: 'already-done', detail: `${step.target} was already gone` };
        } catch (error) {
          const out = failed(
            error,
            { service: 'arm', action: 'Microsoft.Authorization/roleAssignments/delete', scope },
            `DELETE ${step.target}`,
          );
          if (!writeMayHaveApplied(error, 'DELETE')) return out;
          // Its answer was lost: a read showing it gone settles it. One still showing it may be a
          // read behind the delete (ARM is eventually consistent): still unsettled, and the retry
          // deletes again.
          try {
            if ((await arm.getAssignment(step.target)) === undefined) {
              return {
                status: 'done',
                detail: `removed ${step.target} (the answer was lost; a read shows it gone)`,
              };
            }
          } catch {
            // Unknown for now: the retry settles it.
          }
          return { ...out, maybeApplied: true };
        }
      }
      case 'disable-service-principal':
      case 'disable-user': {
        const path = graphPathFor(step);
        if (!path) return { status: 'failed', detail: `not a principal id: ${step.target}` };
        const perms = step.kind === 'disable-user' ? USER_DISABLE_PERMISSIONS : SP_PERMISSIONS;
        return disablePrincipal(step, plan, path, perms, earlier);
      }
      case 'revoke-user-sessions': {
        const path = graphPathFor(step);
        if (!path) return { status: 'failed', detail: `not a user id: ${step.target}` };
        try {
          const res = await graph.call('POST', `${path}/revokeSignInSessions`);
          if (res.status === 404)
            return { status: 'already-done', detail: `${step.target} does not exist (deleted)` };
          // Graph answers `{"value": true}`; another success is not its word.
          if ((res.body as { value?: unknown } | undefined)?.value !== true) {
            return {
              status: 'failed',
              detail: `revoking the sign-in sessions of ${step.target} is not confirmed: Microsoft Graph answered ${res.status} (${describeBody(res.body)}), not {"value": true}`,
              fix: 'check that nothing between arc-responder and Microsoft Graph (a proxy) answers in its place, then press Revoke again',
            };
          }
          return { status: 'done', detail: `revoked the sign-in sessions of ${step.target}` };
        } catch (error) {
          return failed(
            error,
            { service: 'graph', graphPermissions: USER_SESSIONS_PERMISSIONS },
            `POST ${graph.base}${path}/revokeSignInSessions`,
          );
        }
      }
      default:
        return { status: 'failed', detail: `unknown step kind: ${String((step as PlannedStep).kind)}` };
    }
  }

  async function undoStep(step: PlannedStep): Promise<StepOutcome> {
    switch (step.kind) {
      case 'remove-assignment': {
        const restore = restoreInfo(step);
        if (!restore || !isSafeScope(restore.scope) || !dashGuid(restore.principalId)) {
          return {
            status: 'failed',
            detail: `cannot re-create ${step.target}: its role or principal is unknown`,
            fix: 're-create the role assignment by hand (az role assignment create)',
          };
        }
        if (restore.endsAt) return timeBoundNotRestored(restore);
        try {
          const r = await arm.createAssignment(restore);
          return r.result === 'created'
            ? {
                status: 'done',
                detail: `re-created "${restore.roleName ?? restore.roleDefinitionId}" at ${restore.scope}${r.id ? ` as ${r.id}` : ''}`,
              }
            : { status: 'already-done', detail: `the assignment at ${restore.scope} exists again already` };
        } catch (error) {
          return failed(
            error,
            { service: 'arm', action: 'Microsoft.Authorization/roleAssignments/write', scope: restore.scope },
            `PUT role assignment at ${restore.scope}`,
          );
        }
      }
      case 'disable-service-principal':
      case 'disable-user': {
        const path = graphPathFor(step);
        if (!path) return { status: 'failed', detail: `not a principal id: ${step.target}` };
        try {
          const res = await graph.call('PATCH', path, { body: { accountEnabled: true } });
          if (res.status === 404) {
            return {
              status: 'failed',
              detail: `${step.target} no longer exists: it cannot be re-enabled`,
              fix: 'restore it from the deleted items in Entra ID, then enable it',
            };
          }
          if (res.status !== 204) {
            return {
              status: 'failed',
              detail: `re-enabling ${step.target} is not confirmed: Microsoft Graph was expected to answer 204, and ${res.status} came (${describeBody(res.body)})`,
              fix: 'check that nothing between arc-responder and Microsoft Graph (a proxy) answers in its place, then press Undo again',
            };
          }
          return { status: 'done', detail: `re-enabled ${step.target}` };
        } catch (error) {
          const perms = step.kind === 'disable-user' ? USER_DISABLE_PERMISSIONS : SP_PERMISSIONS;
          return failed(error, { service: 'graph', graphPermissions: perms }, `PATCH ${graph.base}${path}`);
        }
      }
      case 'revoke-user-sessions':
        return {
          status: 'already-done',
          detail: 'revoked sessions cannot be restored: the user signs in again',
        };
      default:
        return { status: 'failed', detail: `unknown step kind: ${String((step as PlannedStep).kind)}` };
    }
  }

  return { runStep, undoStep };
}

/**
 * The Undo of a removed assignment that ended at a set time through PIM: a role assignment made
 * here would be permanent, more than the principal had, so none is made. The principal gets it
 * back through PIM (an activation: its eligibility was not removed), and the Undo goes on (the
 * account is enabled again).
 */
function timeBoundNotRestored(restore: AssignmentToRestore): StepOutcome {
  // The step's label names the role and scope: the detail leads with what to do.
  const kind = restore.activated ? 'activation' : 'assignment';
  if (Date.parse(restore.endsAt ?? '') <= Date.now()) {
    return {
      status: 'already-done',
      detail: `not re-created: its PIM ${kind} ended at ${restore.endsAt} anyway`,
    };
  }
  const how = restore.activated
    ? `the principal can activate the role again in PIM (its eligibility was not removed); the activation ran until ${restore.endsAt}`
    : `assign it again in PIM, ending at ${restore.endsAt}`;
  return {
    status: 'already-done',
    detail: `left to PIM (made here it would be permanent): ${how}`,
    leftToPim: true,
  };
}

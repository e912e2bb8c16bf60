import type { Detection } from './detection.ts';
import type { PlannedStep, RemediationPlan, RemediationResult, Remediator } from './remediation.ts';

const ARM_API = 'api-version=2022-04-01';

/**
 * The plan that the detection's own evidence supports, without asking Azure anything: remove the
 * role assignment that granted the access, then disable the caller. The Azure remediator extends it
 * with the other assignments it finds; this one is what dry-run shows when Azure is not reachable.
 */
export function evidencePlan(
  d: Detection,
  endpoints: { arm?: string; graph?: string } = {},
): RemediationPlan {
  const arm = endpoints.arm ?? 'https://management.azure.com';
  const graph = endpoints.graph ?? 'https://graph.microsoft.com';
  const steps: PlannedStep[] = [];
  const warnings: string[] = [];
  const ev = d.evidence;
  const principalId = d.principalId ?? ev.principalId;
  const principalType = ev.principalType ?? d.principalType;

  if (ev.roleAssignmentId && ev.roleAssignmentScope) {
    const scope = ev.roleAssignmentScope.replace(/\/+$/, '');
    const id = `${scope}/providers/Microsoft.Authorization/roleAssignments/${ev.roleAssignmentId}`;
    const step: PlannedStep = {
      id: `remove-assignment:${id.toLowerCase()}`,
      kind: 'remove-assignment',
      description: `Remove the role assignment "${ev.role ?? ev.roleDefinitionId ?? 'unknown role'}" at ${scope} that granted the credential`,
      call: `DELETE ${arm}${id}?${ARM_API}`,
      target: id,
    };
    if (ev.roleDefinitionId && principalId) {
      step.assignment = {
        scope,
        roleDefinitionId: ev.roleDefinitionId,
        principalId,
        ...(principalType ? { principalType } : {}),
        ...(ev.role ? { roleName: ev.role } : {}),
      };
    }
    steps.push(step);
  } else {
    warnings.push('the detection names no role assignment (its format carries no evidence): none to remove');
  }

  if (principalType?.toLowerCase() === 'user') {
    const who = principalId ?? d.user?.upn;
    if (who) {
      steps.push({
        id: `disable-user:${who}`,
        kind: 'disable-user',
        description: `Disable the user account ${d.user?.upn ?? who}`,
        call: `PATCH ${graph}/v1.0/users/${who} {"accountEnabled":false}`,
        target: who,
      });
      steps.push({
        id: `revoke-user-sessions:${who}`,
        kind: 'revoke-user-sessions',
        description: `Revoke the sign-in sessions of ${d.user?.upn ?? who}`,
        call: `POST ${graph}/v1.0/users/${who}/revokeSignInSessions`,
        target: who,
      });
    } else {
      warnings.push('the user has no object id or UPN in the detection: cannot disable the account');
    }
  } else {
    const target = principalId ? `servicePrincipals/${principalId}` : `servicePrincipals(appId='${d.appId}')`;
    steps.push({
      id: `disable-service-principal:${principalId ?? d.appId}`,
      kind: 'disable-service-principal',
      description: `Disable the service principal of application ${d.appId}`,
      call: `PATCH ${graph}/v1.0/${target} {"accountEnabled":false}`,
      target: principalId ?? d.appId,
    });
  }

  const plan: RemediationPlan = { appId: d.appId, steps, stillHasAccessThrough: [], warnings };
  if (principalId) plan.principalId = principalId;
  if (principalType) plan.principalType = principalType;
  if (d.cluster) plan.clusterId = d.cluster.id;
  return plan;
}

/** A dry-run remediator that plans from the evidence alone and changes nothing. */
export function evidencePlanRemediator(endpoints: { arm?: string; graph?: string } = {}): Remediator {
  const wouldDo = (plan: RemediationPlan): RemediationResult => ({
    mode: 'dry-run',
    ok: true,
    steps: plan.steps.map((s) => ({ stepId: s.id, status: 'would-do', detail: `dry-run: would ${s.call}` })),
  });
  return {
    mode: 'dry-run',
    plan: async (d) => evidencePlan(d, endpoints),
    execute: async (plan) => wouldDo(plan),
    undo: async (plan) => wouldDo(plan),
  };
}

import type { RemediationPlan, RemediationResult, Remediator } from './remediation.ts';
import { buildRemediationPlan } from './remediation-plan.ts';

const DEFAULT_ENDPOINTS = { arm: 'https://management.azure.com', graph: 'https://graph.microsoft.com' };

/**
 * A dry-run remediator for a service with no Azure identity configured: it plans from the
 * detection's own evidence (the role assignment that granted the access, the caller to disable),
 * asks Azure nothing and changes nothing. Since nothing is read from ARM, the step removing the
 * evidence assignment says in its description that it is unverified (see `buildRemediationPlan`).
 */
export function evidencePlanRemediator(endpoints: { arm?: string; graph?: string } = {}): Remediator {
  const planEndpoints = { ...DEFAULT_ENDPOINTS, ...endpoints };
  const wouldDo = (plan: RemediationPlan): RemediationResult => ({
    mode: 'dry-run',
    ok: true,
    steps: plan.steps.map((s) => ({ stepId: s.id, status: 'would-do', detail: `dry-run: would ${s.call}` })),
  });
  return {
    mode: 'dry-run',
    plan: async (detection) =>
      buildRemediationPlan({
        detection,
        endpoints: planEndpoints,
        warnings: [
          'no Azure identity is configured: the plan rests on the detection’s evidence alone (other assignments of the principal were not looked up)',
        ],
      }),
    execute: async (plan) => wouldDo(plan),
    undo: async (plan) => wouldDo(plan),
  };
}

import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { type AuditEntry, type AuditStore, listAudit, recordAudit } from '../core/audit.ts';

import {
  assignmentsNotBack,
  isFinished,
  type RemediationContext,
  type RemediationPlan,
  type RemediationResult,
  type Remediator,
  type StepResult,
} from '../core/remediation.ts';
import { buildBroadRemovalPlan } from '../core/remediation-plan.ts';
import { type CallRecord, withCallLog } from './call-log.ts';
import { createPlanReader } from './plan-reader.ts';
import { type AzureDeps, type AzureServices, createAzureServices } from './services.ts';
import { createStepRunners, failed, type StepOutcome } from './steps.ts';

/** The Azure remediator: the core port, with the broad-role action always available. */
export interface AzureRemediator extends Remediator {
  planBroadRemoval(plan: RemediationPlan): RemediationPlan;
}

/** Audit actions written by the remediator. */
export const AUDIT_ACTIONS = {
  revoke: 'azure.revoke',
  removeBroadRoles: 'azure.remove-broad-roles',
  undo: 'azure.undo',
} as const;

/** Creates the Azure remediator (`config.azure.remediation` decides dry-run or live). */
export function createAzureRemediator(config: Config, deps: AzureDeps): AzureRemediator {
  const services = createAzureServices(config, deps);
  return createRemediatorWith(config.azure.remediation, services, deps.store, deps.logger);
}

/** The remediator over already-built services (lets one process share clients). */
export function createRemediatorWith(
  mode: 'dry-run' | 'live',
  services: AzureServices,
  store: AuditStore,
  baseLogger: Logger,
): AzureRemediator {
  const { arm, graph, endpoints, homeTenantId, own } = services;
  const logger = baseLogger.child({ component: 'azure-remediator' });
  const plan = createPlanReader({
    arm,
    graph,
    endpoints,
    logger,
    own,
    ...(homeTenantId ? { homeTenantId } : {}),
  });
  const { runStep, undoStep } = createStepRunners({ arm, graph });
  /**
   * One line per step run against Azure, naming its alert, identity and clicker, and its writes
   * with their ids (to find them in the activity log and Entra's audit log).
   */
  function logStep(
    msg: 'remediation step' | 'undo step',
    plan: RemediationPlan,
    stepId: string,
    outcome: { status: string; fix?: string },
    context: RemediationContext | undefined,
    calls: readonly CallRecord[],
  ): void {
    logger.info(
      {
        alertId: context?.alertId,
        actor: context?.actor,
        appId: plan.appId,
        step: stepId,
        status: outcome.status,
        fix: outcome.fix,
        writes: calls.filter((c) => c.method !== 'GET'),
      },
      msg,
    );
  }

  async function audit(
    action: string,
    context: RemediationContext | undefined,
    plan: RemediationPlan,
    result: RemediationResult,
    calls: CallRecord[],
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    // The reads the plan was made from come first among the calls, as they were made first.
    const { reads, ...planned } = plan;
    const entry: Omit<AuditEntry, 'id' | 'at'> = {
      actor: context?.actor ?? 'system',
      action,
      appId: plan.appId,
      result: result.mode === 'dry-run' ? 'dry-run' : result.ok ? 'ok' : 'failed',
      detail: {
        mode: result.mode,
        plan: planned,
        steps: result.steps,
        calls: [...(reads ?? []), ...calls],
        ...extra,
      },
    };
    if (context?.alertId) entry.alertId = context.alertId;
    if (context?.ip) entry.ip = context.ip;
    try {
      // Said in the log too, as every audit record is: a log pipeline keeps a copy (and the only
      // one when the store refuses it).
      await recordAudit(store, entry, { logger });
    } catch (error) {
      // The change has been made; losing its record must not hide the result from the clicker.
      logger.error(
        { err: (error as Error).message, action },
        'could not store the audit record: check the store',
      );
    }
  }

  async function execute(
    plan: RemediationPlan,
    previous?: RemediationResult,
    context?: RemediationContext,
  ): Promise<RemediationResult> {
    const before = new Map((previous?.mode === 'live' ? previous.steps : []).map((s) => [s.stepId, s]));
    const steps: StepResult[] = [];
    const calls: CallRecord[] = [];
    for (const step of plan.steps) {
      const earlier = before.get(step.id);
      if (earlier && isFinished(earlier)) {
        const detail = earlier.detail.startsWith('earlier attempt: ')
          ? earlier.detail
          : `earlier attempt: ${earlier.detail}`;
        steps.push({ stepId: step.id, status: earlier.status, detail });
        continue;
      }
      if (mode === 'dry-run') {
        steps.push({ stepId: step.id, status: 'would-do', detail: `dry-run: would ${step.call}` });
        continue;
      }
      const run = await withCallLog(() => runStep(step, plan, earlier));
      calls.push(...run.calls);
      const outcome: StepOutcome = run.ok
        ? run.value
        : failed(run.error, { service: step.kind === 'remove-assignment' ? 'arm' : 'graph' }, step.call);
      // Still unsettled: what an earlier attempt may have done is not forgotten by this one.
      if (outcome.status === 'failed' && earlier?.maybeApplied) outcome.maybeApplied = true;
      steps.push({ stepId: step.id, ...outcome });
      logStep('remediation step', plan, step.id, outcome, context, run.calls);
    }
    // A plan made while Azure could not be read may miss an assignment: not done until planned
    // again. A plan with no step at all (no principal confirmed) revoked nothing.
    const ok = mode === 'dry-run' || (steps.length > 0 && steps.every(isFinished) && !plan.unchecked?.length);
    const result: RemediationResult = { mode, ok, steps };
    await audit(
      context?.action === 'remove-broad-roles' ? AUDIT_ACTIONS.removeBroadRoles : AUDIT_ACTIONS.revoke,
      context,
      plan,
      result,
      calls,
      previous ? { retryOf: previous.steps } : {},
    );
    return result;
  }

  async function undo(
    plan: RemediationPlan,
    result: RemediationResult,
    context?: RemediationContext,
    options: { assignmentsNotBack?: number; earlier?: readonly StepResult[] } = {},
  ): Promise<RemediationResult> {
    const byId = new Map(plan.steps.map((s) => [s.id, s]));
    // The removed assignments first, in the reverse order of their removal, and the principal's
    // account last: an Undo that cannot re-create an assignment (its role may not be assigned any
    // more, ARM refuses) leaves the principal disabled, its access still cut, not enabled with
    // part of it back and Revoke held until the Undo is finished.
    const done = result.mode === 'live' ? result.steps.filter((s) => s.status === 'done').reverse() : [];
    const isAssignment = (s: StepResult) => byId.get(s.stepId)?.kind === 'remove-assignment';
    const doneSteps = [...done.filter(isAssignment), ...done.filter((s) => !isAssignment(s))];
    const steps: StepResult[] = [];
    const calls: CallRecord[] = [];
    // The assignments not back: this plan's, and those of the runs undone before (a broad removal's).
    const notBack = () => (options.assignmentsNotBack ?? 0) + assignmentsNotBack(plan, steps);
    // What the Undo this one retries finished: not made again (a re-created assignment would come
    // back under another name, and be taken for one found made by someone else).
    const before = new Map((options.earlier ?? []).filter(isFinished).map((s) => [s.stepId, s]));
    for (const done of doneSteps) {
      const step = byId.get(done.stepId);
      const enables = step?.kind === 'disable-service-principal' || step?.kind === 'disable-user';
      const missing = enables && mode === 'live' ? notBack() : 0;
      if (step && missing > 0) {
        const notBackText = `${missing} removed assignment${missing === 1 ? ' is' : 's are'} not back`;
        const pressAgain = `press Undo again once ${missing === 1 ? 'it' : 'they'} can be re-created`;
        // An earlier Undo enabled it already: one of an earlier release enabled the principal
        // before it re-created the assignments, so the account may be enabled with some not back.
        steps.push(
          before.has(step.id)
            ? {
                stepId: step.id,
                status: 'already-done',
                detail: `enabled again by an earlier Undo, though ${notBackText}; ${pressAgain}`,
              }
            : {
                stepId: step.id,
                status: 'failed',
                detail: `not enabled again: ${notBackText}, and the account stays disabled until ${missing === 1 ? 'it is' : 'they are'}; ${pressAgain}`,
              },
        );
        continue;
      }
      if (!step) {
        steps.push({
          stepId: done.stepId,
          status: 'failed',
          detail: 'this step is not in the plan given to undo',
        });
        continue;
      }
      if (mode === 'dry-run') {
        steps.push({
          stepId: step.id,
          status: 'would-do',
          detail: `dry-run: would undo "${step.description}"`,
        });
        continue;
      }
      const finished = before.get(step.id);
      if (finished) {
        const { stepId: _, ...outcome } = finished;
        // Not what it said then of assignments not back: they are, by now.
        const said =
          enables && /^(earlier attempt: )?enabled again by an earlier Undo/.test(outcome.detail)
            ? 'enabled again by an earlier Undo'
            : outcome.detail.replace(/^earlier attempt: /, '');
        steps.push({ ...outcome, stepId: step.id, detail: `earlier attempt: ${said}` });
        continue;
      }
      const run = await withCallLog(() => undoStep(step));
      calls.push(...run.calls);
      const outcome: StepOutcome = run.ok
        ? run.value
        : failed(
            run.error,
            { service: step.kind === 'remove-assignment' ? 'arm' : 'graph' },
            `undo ${step.id}`,
          );
      steps.push({ stepId: step.id, ...outcome });
      logStep('undo step', plan, step.id, outcome, context, run.calls);
    }
    const ok = mode === 'dry-run' || steps.every(isFinished);
    const undone: RemediationResult = { mode, ok, steps };
    // The Revoke's plan, without the reads it was made from: this record lists the undo's calls.
    const { reads: _madeFrom, ...revokePlan } = plan;
    await audit(AUDIT_ACTIONS.undo, context, revokePlan, undone, calls, {
      undoOf: result.steps,
      ...(options.earlier ? { retryOf: options.earlier } : {}),
    });
    return undone;
  }

  return {
    mode,
    plan,
    execute,
    undo,
    planBroadRemoval: (p) => buildBroadRemovalPlan(p, endpoints),
  };
}

/**
 * Every remediation attempt (revoke, removal of broad roles and undo, dry-run included), oldest
 * first; of one alert or all.
 */
export async function listRemediationAttempts(store: AuditStore, alertId?: string): Promise<AuditEntry[]> {
  const entries = await listAudit(store, alertId);
  const actions: ReadonlySet<string> = new Set(Object.values(AUDIT_ACTIONS));
  return entries.filter((e) => actions.has(e.action));
}

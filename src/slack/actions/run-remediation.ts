import { recordAudit } from '../../core/audit.ts';
import type { RemediationPlan, RemediationResult, StepResult } from '../../core/remediation.ts';
import {
  REMEDIATION_LOCK_TTL_MS,
  type RevokeRun,
  revokedAlertsKey,
  type SlackAlertState,
  updateAlertState,
} from '../alert-state.ts';
import { type RunWords, runThreadText } from '../blocks/thread.ts';
import type { SlackContext } from '../context.ts';
import { auditInThread, showAlert } from '../follow-ups.ts';
import { type RunHandle, STOPPING_NOTE, trackRun, untrackRun } from '../stale-runs.ts';
import type { AlertClick } from './alert-click.ts';

export { REMEDIATION_LOCK_TTL_MS };

/**
 * One kind of remediation run the alert offers: Revoke, or "Remove broad roles too"; its words are
 * what the thread calls it.
 */
export interface RunKind extends RunWords {
  /** Where the run is kept in the alert's state. */
  field: 'revoke' | 'broad';
  /** The audit action. */
  action: 'revoke' | 'remove-broad-roles';
  lockKey: (alertId: string) => string;
  /** Decides what to run; throwing fails the run with that message. */
  plan: (ctx: SlackContext, state: SlackAlertState) => Promise<RemediationPlan>;
}

/**
 * A run's result without the steps a live Undo reversed (done, or found so), when that Undo was of
 * this run (`undo.of`, the run's start: never two clocks compared). An Undo stored by an earlier
 * release, without `of`, counts when it began after the run ended.
 */
function withoutUndone(
  result: RemediationResult,
  undo: SlackAlertState['undo'],
  run: { at: number; finishedAt?: number },
): RemediationResult {
  if (undo?.mode !== 'live' || !undo.result) return result;
  const ofThisRun = undo.of !== undefined ? undo.of === run.at : undo.at >= (run.finishedAt ?? run.at);
  if (!ofThisRun) return result;
  const reversed = new Set(
    undo.result.steps.filter((s) => s.status === 'done' || s.status === 'already-done').map((s) => s.stepId),
  );
  return { ...result, steps: result.steps.filter((s) => !reversed.has(s.stepId)) };
}

/**
 * The new plan of a retry, with the steps the failed earlier run did that it no longer lists: an
 * assignment that run removed is gone from Azure's listing, but the run's result (and its Undo)
 * must still hold it.
 */
function withEarlierDone(
  plan: RemediationPlan,
  earlierPlan: RemediationPlan | undefined,
  previous: RemediationResult | undefined,
): RemediationPlan {
  if (!earlierPlan || !previous) return plan;
  // Also a step whose change may have been made (its answer was lost): the retry settles it.
  const done = new Set(
    previous.steps.filter((s) => s.status === 'done' || s.maybeApplied).map((s) => s.stepId),
  );
  const planned = new Set(plan.steps.map((s) => s.id));
  const carried = earlierPlan.steps.filter((s) => done.has(s.id) && !planned.has(s.id));
  return carried.length === 0 ? plan : { ...plan, steps: [...carried, ...plan.steps] };
}

/**
 * Runs one remediation for an alert whose lock the caller holds: saves and shows progress, plans,
 * executes (re-running only the steps an earlier failed run of the same mode left), shows a result
 * per step, releases the lock when the run failed or was a dry-run (so that a later click runs it
 * again), audits it and
 * reports it in the alert's thread.
 */
export function runRemediation(
  ctx: SlackContext,
  state: SlackAlertState,
  user: string,
  kind: RunKind,
): Promise<void> {
  const alertId = state.alert.id;
  return ctx.runs.track({ alertId, field: kind.field, by: user, locks: [kind.lockKey(alertId)] }, (handle) =>
    run(ctx, state, user, kind, handle),
  );
}

async function run(
  ctx: SlackContext,
  state: SlackAlertState,
  user: string,
  kind: RunKind,
  handle: RunHandle,
): Promise<void> {
  const { store, remediator } = ctx;
  const alertId = state.alert.id;
  const d = state.alert.detection;
  const earlier = state[kind.field];
  // A retry of a failed run carries what that run did, but what an Undo since reversed (a live
  // Undo that failed partway: one that succeeded starts a new round, with no earlier run).
  const previous: RemediationResult | undefined =
    earlier?.mode === remediator.mode && earlier.status === 'failed' && earlier.result
      ? withoutUndone(earlier.result, state.undo, earlier)
      : undefined;
  const run: RevokeRun = { status: 'running', mode: remediator.mode, by: user, at: ctx.now() };
  const save = async () => {
    const latest = await updateAlertState(store, alertId, (s) => {
      // Settled by a stop meanwhile: the alert says cut short, and stays so.
      if (!handle.settled()) s[kind.field] = run;
    });
    if (latest && !handle.settled()) await showAlert(ctx, latest);
    return latest ?? state;
  };
  await trackRun(ctx, alertId);
  await save();
  try {
    run.plan = withEarlierDone(await kind.plan(ctx, state), earlier?.plan, previous);
    await save();
    run.result = await remediator.execute(run.plan, previous, {
      actor: user,
      alertId,
      ip: d.sourceIp,
      action: kind.action,
    });
    run.status = run.result.ok ? 'done' : 'failed';
    const unchecked = run.plan.unchecked ?? [];
    if (!run.result.ok && run.result.mode === 'live' && run.plan.steps.length === 0) {
      run.error = `nothing was changed: the plan has no step (the reasons are below). Press ${kind.verb} again once they are dealt with`;
    } else if (!run.result.ok && run.result.mode === 'live' && unchecked.length > 0) {
      run.error = `Azure could not be read to find every role assignment to remove: ${unchecked.join('; ')}. The steps listed below ran; press ${kind.verb} again to plan anew once Azure answers`;
    }
  } catch (err) {
    run.status = 'failed';
    run.error = (err as Error).message;
    ctx.logger.error({ alertId, err: run.error, action: kind.action }, `${kind.verb} failed`);
  }
  run.finishedAt = ctx.now();
  const latest = await save();
  if (handle.settled()) {
    // The stop marked it cut short and gave its locks back; Azure's own audit record (azure.*)
    // keeps what it did, and the next click plans anew from what Azure holds.
    ctx.logger.info(
      { alertId, run: kind.field, status: run.status },
      `${kind.verb} ended after the stop had marked it cut short; its result is in the azure audit record`,
    );
    return;
  }
  if (kind.field === 'revoke' && run.status === 'done' && run.mode === 'live') {
    // Listed with the identity's other revoked alerts, so that an Undo on any of them restores all.
    await store.addMembers(revokedAlertsKey(d.appId), [alertId]).catch(() => undefined);
  }
  await untrackRun(ctx, alertId);
  // A failed run may be retried; a dry-run changed nothing, so it may run again at once (and a
  // switch to live mode must not wait for its lock).
  if (run.status === 'failed' || run.mode === 'dry-run') await store.releaseClaim(kind.lockKey(alertId));
  await auditRun(ctx, state, user, kind.action, run);
  await auditInThread(ctx, latest, runThreadText(run, kind));
}

/** Records the audit of a finished run (Revoke, broad removal, Undo), which is also logged. */
export async function auditRun(
  ctx: SlackContext,
  state: SlackAlertState,
  user: string,
  action: string,
  run: { status: string; mode: 'dry-run' | 'live'; result?: { steps: StepResult[] }; error?: string },
): Promise<void> {
  const d = state.alert.detection;
  await recordAudit(
    ctx.store,
    {
      actor: user,
      action,
      alertId: state.alert.id,
      appId: d.appId,
      ip: d.sourceIp,
      result: run.status === 'failed' ? 'failed' : run.mode === 'dry-run' ? 'dry-run' : 'ok',
      detail: { mode: run.mode, steps: run.result?.steps ?? [], error: run.error },
    },
    ctx.audit,
  );
}

/**
 * Takes a run's lock for a click, or refuses the click: while the service stops (no run may
 * start), or while the lock is held (`held` says so: a run is going, or just ran). True when taken.
 */
export async function takeRunLock(
  ctx: SlackContext,
  refuse: AlertClick['refuse'],
  key: string,
  held: { detail: string; text: string },
): Promise<boolean> {
  if (ctx.runs.closed) {
    await refuse('service stopping', STOPPING_NOTE, 'refused');
    return false;
  }
  if (await ctx.store.claim(key, REMEDIATION_LOCK_TTL_MS)) return true;
  await refuse(held.detail, held.text);
  return false;
}

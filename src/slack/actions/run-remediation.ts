import type { RemediationPlan, RemediationResult } from '../../core/remediation.ts';
import { evidenceGoneWarning } from '../../core/remediation-plan.ts';
import {
  REMEDIATION_LOCK_TTL_MS,
  type RevokeRun,
  revokedAlertsKey,
  type SlackAlertState,
} from '../alert-state.ts';
import { type RunWords, runThreadText } from '../blocks/thread.ts';
import type { SlackContext } from '../context.ts';
import { STOPPING_NOTE } from '../stale-runs.ts';
import type { AlertClick } from './alert-click.ts';
import { requestMarks } from './revoked-elsewhere.ts';
import { runTracked } from './run-tracked.ts';

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
 * this run (`undo.of`, the run's start: never two clocks compared).
 */
function withoutUndone(
  result: RemediationResult,
  undo: SlackAlertState['undo'],
  run: { at: number },
): RemediationResult {
  if (undo?.mode !== 'live' || !undo.result || undo.of !== run.at) return result;
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
  if (carried.length === 0) return plan;
  // The evidence's assignment is gone because the earlier run removed it: its step says so.
  const gone = new Set(
    carried
      .filter((s) => s.kind === 'remove-assignment')
      .map((s) => evidenceGoneWarning(s.target).toLowerCase()),
  );
  const warnings = plan.warnings.filter((w) => !gone.has(w.toLowerCase()));
  return { ...plan, steps: [...carried, ...plan.steps], warnings };
}

/**
 * Runs one remediation for an alert whose lock the caller holds: saves and shows progress, plans,
 * executes (re-running only the steps an earlier failed run of the same mode left), shows a result
 * per step, releases the lock when the run failed or was a dry-run (so that a later click runs it
 * again), audits it and reports it in the alert's thread.
 */
export function runRemediation(
  ctx: SlackContext,
  state: SlackAlertState,
  user: string,
  kind: RunKind,
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
  const lock = kind.lockKey(alertId);
  return runTracked(ctx, state, {
    field: kind.field,
    run,
    name: kind.verb,
    action: kind.action,
    locks: [lock],
    work: async (save) => {
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
        // What to do first: the failures read (an ARM message) can be long, and are clipped.
        run.error = `Azure could not be read to find every role assignment to remove, so press ${kind.verb} again to plan anew once it answers (the steps listed below ran). Not read: ${unchecked.join('; ')}`;
      }
    },
    logFailure: (err) => ctx.logger.error({ alertId, err, action: kind.action }, `${kind.verb} failed`),
    ended: async (ended) => {
      if (kind.field === 'revoke' && ended.status === 'done' && ended.mode === 'live') {
        // Listed with the identity's other revoked alerts, so that an Undo on any of them restores all.
        await store.addMembers(revokedAlertsKey(d.appId), [alertId]).catch(() => undefined);
      }
    },
    // A failed run may be retried; a dry-run changed nothing, so it may run again at once (and a
    // switch to live mode must not wait for its lock).
    release: (ended) => (ended.status === 'failed' || ended.mode === 'dry-run' ? [lock] : []),
    threadText: (ended) => runThreadText(ended, kind),
    // Once this alert says so: the same principal's other alerts say it is revoked through this one.
    reported: async (ended) => {
      if (kind.field === 'revoke' && ended.status === 'done' && ended.mode === 'live') {
        await requestMarks(ctx, [alertId]);
      }
    },
  });
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

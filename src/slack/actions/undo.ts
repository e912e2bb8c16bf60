import type { App, BlockAction, ButtonAction } from '@slack/bolt';
import type { StepResult } from '../../core/remediation.ts';
import {
  broadLockKey,
  canUndo,
  revokedAlertsKey,
  revokeInForce,
  revokeLockKey,
  revokeUndone,
  type SlackAlertState,
  type UndoRun,
  undoableRuns,
  undoLockKey,
  updateAlertState,
} from '../alert-state.ts';
import { reply } from '../authorise.ts';
import { undoThreadText } from '../blocks/thread.ts';
import type { SlackContext } from '../context.ts';
import { auditInThread, showAlert } from '../follow-ups.ts';
import { ACTION_IDS } from '../ids.ts';
import { type RunHandle, trackRun, untrackRun } from '../stale-runs.ts';
import { openAlertClick } from './alert-click.ts';
import { auditRun, REMEDIATION_LOCK_TTL_MS, takeRunLock } from './run-remediation.ts';

/**
 * Reverses the live runs (the broad removal first, then the Revoke) for an alert whose undo lock
 * the caller holds: re-creates the removed assignments and re-enables the principal, shows a
 * result per step, releases the lock when it failed (so that Undo can be pressed again), audits it
 * and reports it in the alert's thread. A live Undo that succeeded releases the Revoke lock, so
 * that Revoke, offered again, can run at once.
 */
async function runUndo(
  ctx: SlackContext,
  state: SlackAlertState,
  user: string,
  holdsRevokeLock = false,
  holdsBroadLock = false,
  /** Set once the locks are given back: a failure after that must not release them again. */
  released: { done: boolean } = { done: false },
  handle: RunHandle,
): Promise<void> {
  const { store, remediator } = ctx;
  const alertId = state.alert.id;
  const d = state.alert.detection;
  const runs = undoableRuns(state);
  const undo: UndoRun = {
    status: 'running',
    mode: remediator.mode,
    by: user,
    at: ctx.now(),
    ...(state.revoke ? { of: state.revoke.at } : {}),
  };
  const save = async () => {
    const latest = await updateAlertState(store, alertId, (s) => {
      // Settled by a stop meanwhile: the alert says cut short, and stays so.
      if (!handle.settled()) s.undo = undo;
    });
    if (latest && !handle.settled()) await showAlert(ctx, latest);
    return latest ?? state;
  };
  await trackRun(ctx, alertId);
  await save();
  try {
    const steps: StepResult[] = [];
    let ok = true;
    for (const run of runs) {
      const r = await remediator.undo(run.plan, run.result, { actor: user, alertId, ip: d.sourceIp });
      steps.push(...r.steps);
      ok &&= r.ok;
    }
    undo.result = { mode: remediator.mode, ok, steps };
    undo.status = ok ? 'done' : 'failed';
  } catch (err) {
    undo.status = 'failed';
    undo.error = (err as Error).message;
    ctx.logger.error({ alertId, err: undo.error }, 'undo failed');
  }
  undo.finishedAt = ctx.now();
  const latest = await save();
  if (handle.settled()) {
    // The stop marked it cut short and gave its locks back (see settleRunsAtStop).
    released.done = true;
    ctx.logger.info(
      { alertId, run: 'undo', status: undo.status },
      'Undo ended after the stop had marked it cut short; its result is in the azure audit record',
    );
    return;
  }
  await untrackRun(ctx, alertId);
  if (undo.status === 'failed') {
    await store.releaseClaim(undoLockKey(alertId));
    if (holdsRevokeLock) await store.releaseClaim(revokeLockKey(alertId));
  } else if (undo.mode === 'live' || holdsRevokeLock) await store.releaseClaim(revokeLockKey(alertId));
  if (holdsBroadLock) await store.releaseClaim(broadLockKey(alertId));
  released.done = true;
  await auditRun(ctx, state, user, 'undo', undo);
  const planSteps = new Map(runs.flatMap((r) => r.plan.steps.map((s) => [s.id, s] as const)));
  await auditInThread(ctx, latest, undoThreadText(undo, planSteps));
  if (undo.status === 'done' && undo.mode === 'live') await restoreOtherAlerts(ctx, state, undo);
}

/**
 * After a live Undo, the identity's other alerts whose Revoke is in force but removed nothing
 * itself (it found the access already removed by this alert's run) no longer tell the truth: each
 * is marked undone through this alert, its message updated and its thread told, and its Revoke
 * offered again. Alerts whose Revoke removed access of its own keep it, with their own Undo.
 */
async function restoreOtherAlerts(ctx: SlackContext, state: SlackAlertState, undo: UndoRun): Promise<void> {
  const { store } = ctx;
  const alertId = state.alert.id;
  const key = revokedAlertsKey(state.alert.detection.appId);
  try {
    const others = (await store.members(key)).filter((id) => id !== alertId);
    for (const id of others) {
      let changed = false;
      const other = await updateAlertState(store, id, (s) => {
        // Only alerts whose Revoke found the access already gone: one that removed access of its
        // own keeps its own Undo, and a running Undo is left alone.
        if (!revokeInForce(s) || undoableRuns(s).length > 0 || s.undo?.status === 'running') return;
        s.undo = { ...undo, result: undefined, elsewhere: alertId };
        changed = true;
      });
      if (!other || !changed) continue;
      await store.releaseClaim(revokeLockKey(id));
      await store.releaseClaim(undoLockKey(id));
      await showAlert(ctx, other);
      await auditInThread(
        ctx,
        other,
        `:leftwards_arrow_with_hook: Audit: <@${undo.by}> undid the revoke through alert \`${alertId}\` of the same identity: its access is back, and Revoke is offered again here.`,
      );
    }
    await store.removeMembers(key, [alertId, ...others]);
  } catch (err) {
    ctx.logger.warn(
      { alertId, err: (err as Error).message },
      'undo: could not update the other alerts of this identity; their messages may still say revoked',
    );
  }
}

/**
 * Undo: offered after a live Revoke that removed something; responders only, behind a confirm
 * dialog stating what is re-created and re-enabled. One per alert (a lock; a second click after it
 * succeeded is refused), audited, reported in the alert and its thread.
 */
export function registerUndo(app: App, ctx: SlackContext): void {
  app.action<BlockAction<ButtonAction>>(ACTION_IDS.undoRevoke, async ({ ack, body, action, respond }) => {
    await ack();
    const click = await openAlertClick(ctx, { body, alertId: action.value, respond }, 'undo');
    if (!click) return;
    const { user, state, refuse } = click;
    if (revokeUndone(state)) {
      await refuse('already undone', `Already undone by <@${state.undo!.by}>.`);
      return;
    }
    if (state.revoke?.status === 'running' || state.broad?.status === 'running') {
      await reply(
        ctx,
        respond,
        'A remediation is still running for this alert: undo it once it has finished.',
      );
      return;
    }
    if (state.undo?.status !== 'running' && !canUndo(state)) {
      await reply(
        ctx,
        respond,
        'Nothing to undo: only a live Revoke that removed or disabled something can be undone.',
      );
      return;
    }
    // Undo reverses a live Revoke: in dry-run it could only describe itself, and would use up the
    // one Undo while the access stays removed. It waits, offered, until remediation is live again.
    if (ctx.remediator.mode === 'dry-run') {
      await refuse(
        'remediation is a dry-run now',
        "Nothing was done: remediation is a dry-run now (AZURE_REMEDIATION=dry-run), and Undo re-creates real access. The access this alert's Revoke removed is still removed; *Undo* stays offered and works once remediation is live again.",
        'refused',
      );
      return;
    }
    const taken = await takeRunLock(ctx, refuse, undoLockKey(state.alert.id), {
      detail: 'undo already running',
      text: 'Undo is already running (or just ran) for this alert: see its message.',
    });
    if (!taken) return;
    // Undo of a failed run: its Revoke lock was given back for a retry; Undo takes it, so that no
    // retry runs against the Undo (a click on each at once, or on two replicas).
    const failedRun = state.revoke?.status === 'failed';
    if (failedRun && !(await ctx.store.claim(revokeLockKey(state.alert.id), REMEDIATION_LOCK_TTL_MS))) {
      await ctx.store.releaseClaim(undoLockKey(state.alert.id));
      await refuse('revoke running', 'Revoke is running for this alert: undo it once it has finished.');
      return;
    }
    // The same for "Remove broad roles too" (failed, dry-run or not run yet: its lock is free), so
    // that none starts or retries during the Undo. A live one that succeeded keeps its lock.
    const id = state.alert.id;
    const holdBroad = !(state.broad?.status === 'done' && state.broad.mode === 'live');
    if (holdBroad && !(await ctx.store.claim(broadLockKey(id), REMEDIATION_LOCK_TTL_MS))) {
      await ctx.store.releaseClaim(undoLockKey(id));
      if (failedRun) await ctx.store.releaseClaim(revokeLockKey(id));
      await refuse(
        'broad removal running',
        'Remove broad roles is running for this alert: undo it once it has finished.',
      );
      return;
    }
    const released = { done: false };
    const locks = [
      undoLockKey(id),
      ...(failedRun ? [revokeLockKey(id)] : []),
      ...(holdBroad ? [broadLockKey(id)] : []),
    ];
    try {
      await ctx.runs.track({ alertId: id, field: 'undo', by: user, locks }, (handle) =>
        runUndo(ctx, state, user, failedRun, holdBroad, released, handle),
      );
    } catch (err) {
      ctx.logger.error({ alertId: id, err: (err as Error).message }, 'undo was cut short');
      // Cut short (the store failed) before it gave its locks back: given back here, so that a
      // later click can run. Once given back they may be another run's: left alone.
      if (released.done) return;
      await ctx.store.releaseClaim(undoLockKey(id)).catch(() => {});
      if (failedRun) await ctx.store.releaseClaim(revokeLockKey(id)).catch(() => {});
      if (holdBroad) await ctx.store.releaseClaim(broadLockKey(id)).catch(() => {});
    }
  });
}

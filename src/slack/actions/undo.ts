import type { App, BlockAction, ButtonAction } from '@slack/bolt';
import { assignmentsNotBack, leftToPim, type StepResult } from '../../core/remediation.ts';
import { samePrincipal } from '../../core/remediation-plan.ts';
import {
  broadLockKey,
  canUndo,
  loadAlertState,
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
import { leftToPimText } from '../blocks/run-text.ts';
import { undoThreadText } from '../blocks/thread.ts';
import type { SlackContext } from '../context.ts';
import { auditInThread, showAlert } from '../follow-ups.ts';
import { ACTION_IDS } from '../ids.ts';
import { openAlertClick } from './alert-click.ts';
import { requestMarks } from './revoked-elsewhere.ts';
import { REMEDIATION_LOCK_TTL_MS, takeRunLock } from './run-remediation.ts';
import { runTracked } from './run-tracked.ts';

/**
 * Reverses the live runs (the broad removal first, then the Revoke) for an alert whose undo lock
 * the caller holds, with the Revoke and broad-removal locks `holds` says it took too: re-creates
 * the removed assignments and re-enables the principal, shows a result per step, releases the lock
 * when it failed (so that Undo can be pressed again), audits it and reports it in the alert's
 * thread. A live Undo that succeeded releases the Revoke lock, so that Revoke, offered again, can
 * run at once. Cut short by the store before it gave the locks back, it gives them back.
 */
function runUndo(
  ctx: SlackContext,
  state: SlackAlertState,
  user: string,
  holds: { revokeLock: boolean; broadLock: boolean },
): Promise<void> {
  const { remediator } = ctx;
  const alertId = state.alert.id;
  const d = state.alert.detection;
  const runs = undoableRuns(state);
  // What an earlier Undo of this Revoke finished, when this one retries it.
  const earlier =
    state.undo?.mode === 'live' && state.undo.of === state.revoke?.at ? state.undo.result : undefined;
  const undo: UndoRun = {
    status: 'running',
    mode: remediator.mode,
    by: user,
    at: ctx.now(),
    ...(state.revoke ? { of: state.revoke.at } : {}),
  };
  const revokeLock = holds.revokeLock ? [revokeLockKey(alertId)] : [];
  const broadLock = holds.broadLock ? [broadLockKey(alertId)] : [];
  return runTracked(ctx, state, {
    field: 'undo',
    run: undo,
    name: 'Undo',
    action: 'undo',
    locks: [undoLockKey(alertId), ...revokeLock, ...broadLock],
    work: async () => {
      const steps: StepResult[] = [];
      let ok = true;
      // The principal is enabled only once every run's assignments are back (the broad removal's,
      // undone first, as well as the Revoke's).
      let notBack = 0;
      for (const run of runs) {
        const r = await remediator.undo(
          run.plan,
          run.result,
          { actor: user, alertId, ip: d.sourceIp },
          { assignmentsNotBack: notBack, ...(earlier ? { earlier: earlier.steps } : {}) },
        );
        steps.push(...r.steps);
        ok &&= r.ok;
        notBack += assignmentsNotBack(run.plan, r.steps);
      }
      undo.result = { mode: remediator.mode, ok, steps };
      undo.status = ok ? 'done' : 'failed';
    },
    logFailure: (err) => ctx.logger.error({ alertId, err }, 'undo failed'),
    release: (ended) => [
      ...(ended.status === 'failed'
        ? [undoLockKey(alertId), ...revokeLock]
        : ended.mode === 'live' || holds.revokeLock
          ? [revokeLockKey(alertId)]
          : []),
      ...broadLock,
    ],
    threadText: (ended) =>
      undoThreadText(ended, new Map(runs.flatMap((r) => r.plan.steps.map((s) => [s.id, s] as const)))),
    reported: async (ended) => {
      if (ended.status === 'done' && ended.mode === 'live') {
        const restored = await restoreOtherAlerts(ctx, state, ended);
        await requestMarks(ctx, [alertId, ...restored]);
      }
    },
    cutShort: (err) => ctx.logger.error({ alertId, err }, 'undo was cut short'),
  });
}

/**
 * After a live Undo, the identity's other alerts whose Revoke is in force but removed nothing
 * itself (it found the access already removed by this alert's run) no longer tell the truth: each
 * is marked undone through this alert, its message updated and its thread told, and its Revoke
 * offered again. Alerts whose Revoke removed access of its own keep it, with their own Undo.
 * Returns the ids of the alerts it marked undone.
 */
async function restoreOtherAlerts(
  ctx: SlackContext,
  state: SlackAlertState,
  undo: UndoRun,
): Promise<string[]> {
  const { store } = ctx;
  const alertId = state.alert.id;
  const key = revokedAlertsKey(state.alert.detection.appId);
  const restored: string[] = [];
  try {
    const others = (await store.members(key)).filter((id) => id !== alertId);
    // Alerts of another principal of the appid (another user of a shared client appid, as the
    // Azure CLI's) stay listed and untouched: this Undo gave nothing of theirs back.
    const kept: string[] = [];
    for (const id of others) {
      const seen = await loadAlertState(store, id);
      if (seen && !samePrincipal(seen.alert.detection, state.alert.detection)) {
        kept.push(id);
        continue;
      }
      let changed = false;
      const other = await updateAlertState(store, id, (s) => {
        // Only alerts whose Revoke found the access already gone: one that removed access of its
        // own keeps its own Undo, and a running Undo is left alone.
        if (!revokeInForce(s) || undoableRuns(s).length > 0 || s.undo?.status === 'running') return;
        const { result: _, ...without } = undo;
        const pim = leftToPim(undo.result?.steps);
        s.undo = { ...without, elsewhere: alertId, ...(pim > 0 ? { leftToPim: pim } : {}) };
        changed = true;
      });
      if (!other || !changed) {
        // Its own Revoke stands (it removed access of its own, or its Undo runs): it stays listed,
        // so that /arc-history names it and its own Undo restores the alerts revoked through it.
        if (other && revokeInForce(other)) kept.push(id);
        continue;
      }
      restored.push(id);
      await store.releaseClaim(revokeLockKey(id));
      await store.releaseClaim(undoLockKey(id));
      await showAlert(ctx, other);
      await auditInThread(
        ctx,
        other,
        `:leftwards_arrow_with_hook: Audit: <@${undo.by}> undid the revoke through alert \`${alertId}\` of the same identity: its access is back${leftToPimText(undo)}, and Revoke is offered again here.`,
      );
    }
    await store.removeMembers(key, [alertId, ...others.filter((id) => !kept.includes(id))]);
  } catch (err) {
    ctx.logger.warn(
      { alertId, err: (err as Error).message },
      'undo: could not update the other alerts of this identity; their messages may still say revoked',
    );
  }
  return restored;
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
      await refuse(
        'a remediation is running',
        'A remediation is still running for this alert: undo it once it has finished.',
        'refused',
      );
      return;
    }
    if (state.undo?.status !== 'running' && !canUndo(state)) {
      await refuse(
        'nothing to undo',
        'Nothing to undo: only a live Revoke that removed or disabled something can be undone.',
        'refused',
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
    await runUndo(ctx, state, user, { revokeLock: failedRun, broadLock: holdBroad });
  });
}

import type { App, BlockAction, ButtonAction } from '@slack/bolt';
import {
  broadLockKey,
  revokeInForce,
  revokeLockKey,
  revokeUndone,
  startNewRevokeRound,
  undoLockKey,
  undoneSteps,
  updateAlertState,
} from '../alert-state.ts';
import { REVOKE_BUTTON } from '../blocks/alert.ts';
import type { SlackContext } from '../context.ts';
import { showAlert } from '../follow-ups.ts';
import { ACTION_IDS } from '../ids.ts';
import { openAlertClick } from './alert-click.ts';
import { type RunKind, runRemediation, takeRunLock } from './run-remediation.ts';

const REVOKE: RunKind = {
  field: 'revoke',
  action: 'revoke',
  verb: 'Revoke',
  doneHead: 'revoked the access',
  lockKey: revokeLockKey,
  // With what the alert's plan read of PIM, kept should PIM's schedules be unreadable now.
  plan: (ctx, state) =>
    ctx.remediator.plan(
      state.alert.detection,
      state.timeBoundSeen ? { timeBoundSeen: state.timeBoundSeen } : {},
    ),
};

/**
 * Revoke: responders only, behind Slack's confirm dialog. Acknowledges at once, takes the
 * per-alert lock (double clicks and other replicas get a private note), then plans and runs the
 * remediation, updating the alert with progress and a result per step, and audits it in the thread.
 *
 * Offered again after a failed run, after a run interrupted long ago (still marked running after
 * the lock expired), and after a successful Undo: then a new round starts (the undone one is kept
 * short in the alert) and Undo and "Remove broad roles too" become possible again.
 */
export function registerRevoke(app: App, ctx: SlackContext): void {
  app.action<BlockAction<ButtonAction>>(ACTION_IDS.revoke, async ({ ack, body, action, respond }) => {
    await ack();
    const click = await openAlertClick(ctx, { body, alertId: action.value, respond }, 'revoke');
    if (!click) return;
    const { user, state, refuse } = click;
    if (revokeInForce(state)) {
      const undo = state.undo;
      const restored = undo?.status === 'failed' ? undoneSteps(undo) : 0;
      if (undo && restored > 0) {
        // Part of the access is back: what is left is to finish the Undo, then revoke anew.
        await refuse(
          'undo partway',
          `Undo by <@${undo.by}> ran partway: it restored ${restored} of ${undo.result?.steps.length ?? restored} steps, so part of the access is back. Press *Undo* again to finish restoring; then *Revoke* starts a new round.`,
        );
        return;
      }
      await refuse('already revoked', `Already revoked by <@${state.revoke!.by}>.`);
      return;
    }
    // An Undo of a failed run is reversing what that run did: a retry now would work against it.
    if (state.undo?.status === 'running') {
      await refuse(
        'undo running',
        'Undo is running for this alert: press Revoke again once it has finished.',
      );
      return;
    }
    // A button shown while remediation was a dry-run, pressed after a switch to live: its confirm
    // dialog promised that nothing would change, so it changes nothing. The alert is shown again
    // with the live button and its own dialog.
    if (ctx.remediator.mode === 'live' && /\(dry-run\)/.test(action.text?.text ?? '')) {
      await showAlert(ctx, state);
      await refuse(
        'button shown in dry-run, remediation now live',
        'Nothing was done: this button was shown while remediation was a dry-run, and it is live now (AZURE_REMEDIATION=live). The alert now shows the live *Revoke*; press it to act.',
        'refused',
      );
      return;
    }
    // And the other way: a live button, whose dialog promised a removal, pressed after a switch to
    // dry-run. A dry-run in its place would leave the responder believing the access removed.
    if (ctx.remediator.mode === 'dry-run' && action.text?.text === REVOKE_BUTTON.live) {
      await showAlert(ctx, state);
      await refuse(
        'button shown live, remediation now a dry-run',
        'Nothing was done: this button was shown while remediation was live, and it is a dry-run now (AZURE_REMEDIATION=dry-run), so nothing would be removed. The alert now shows *Revoke (dry-run)*; to remove the access, set AZURE_REMEDIATION=live.',
        'refused',
      );
      return;
    }
    const taken = await takeRunLock(ctx, refuse, revokeLockKey(state.alert.id), {
      detail: 'revoke already running',
      text: 'Revoke is already running (or just ran) for this alert: see its message.',
    });
    if (!taken) return;
    let current = state;
    if (revokeUndone(state)) {
      // Revoke again after an Undo: a new round, whose Undo and broad removal can run again.
      current = (await updateAlertState(ctx.store, state.alert.id, startNewRevokeRound)) ?? state;
      await ctx.store.releaseClaim(undoLockKey(state.alert.id));
      await ctx.store.releaseClaim(broadLockKey(state.alert.id));
    }
    await runRemediation(ctx, current, user, REVOKE);
  });
}

import type { App, BlockAction, ButtonAction } from '@slack/bolt';
import { broadLockKey, liveUndo, removableBroadAccess } from '../alert-state.ts';
import type { SlackContext } from '../context.ts';
import { showAlert } from '../follow-ups.ts';
import { ACTION_IDS } from '../ids.ts';
import { openAlertClick } from './alert-click.ts';
import { type RunKind, runRemediation, takeRunLock } from './run-remediation.ts';

const BROAD: RunKind = {
  field: 'broad',
  action: 'remove-broad-roles',
  verb: 'Remove broad roles',
  doneHead: 'removed the broad roles too',
  lockKey: broadLockKey,
  // Exactly what the confirm dialog named: the broad roles the finished Revoke's plan left.
  plan: async (ctx, state) => {
    const plan = state.revoke?.plan;
    if (!plan || !ctx.remediator.planBroadRemoval) throw new Error('there is no Revoke plan to extend');
    return ctx.remediator.planBroadRemoval(plan);
  },
};

/**
 * "Remove broad roles too": responders only, behind its own confirm dialog naming the assignments.
 * After a finished Revoke whose plan left broad roles (Owner, Contributor, custom `*`), removes
 * exactly those with the same per-alert lock, progress, per-step results, audit and thread report
 * as Revoke; in dry-run it lists the calls it would make.
 */
export function registerRemoveBroadRoles(app: App, ctx: SlackContext): void {
  app.action<BlockAction<ButtonAction>>(
    ACTION_IDS.removeBroadRoles,
    async ({ ack, body, action, respond }) => {
      await ack();
      const click = await openAlertClick(ctx, { body, alertId: action.value, respond }, 'remove-broad-roles');
      if (!click) return;
      const { user, state, refuse } = click;
      if (state.broad?.status === 'done' && state.broad.mode === 'live') {
        await refuse('already removed', `The broad roles were already removed by <@${state.broad.by}>.`);
        return;
      }
      if (!ctx.remediator.planBroadRemoval) {
        await refuse(
          'this installation cannot remove broad roles',
          'This installation cannot remove broad roles: remove them in Azure by hand.',
          'refused',
        );
        return;
      }
      const undo = liveUndo(state);
      if (undo) {
        await refuse(
          'the revoke was undone',
          `The revoke was undone by <@${undo.by}>: there is nothing to remove.`,
          'refused',
        );
        return;
      }
      const revoke = state.revoke;
      if (revoke?.status !== 'done' || revoke.mode !== ctx.remediator.mode) {
        // A button left from a dry-run after the switch to live: show the alert as it is now.
        if (revoke?.mode === 'dry-run' && ctx.remediator.mode === 'live') await showAlert(ctx, state);
        await refuse(
          'no revoke done',
          'Run Revoke first: this removes what Revoke leaves in place.',
          'refused',
        );
        return;
      }
      if (removableBroadAccess(revoke.plan).length === 0) {
        await refuse('no broad roles left', 'Revoke left no broad roles to remove.', 'refused');
        return;
      }
      const taken = await takeRunLock(ctx, refuse, broadLockKey(state.alert.id), {
        detail: 'broad removal already running',
        text: 'Remove broad roles is already running (or just ran) for this alert: see its message.',
      });
      if (!taken) return;
      await runRemediation(ctx, state, user, BROAD);
    },
  );
}

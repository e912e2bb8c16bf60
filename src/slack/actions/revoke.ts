import type { App, BlockAction, ButtonAction } from '@slack/bolt';
import { recordAudit } from '../../core/audit.ts';
import {
  broadLockKey,
  loadAlertState,
  revokeInForce,
  revokeLockKey,
  revokeUndone,
  startNewRevokeRound,
  undoLockKey,
  updateAlertState,
} from '../alert-state.ts';
import { authorise, channelOfClick, reply } from '../authorise.ts';
import type { SlackContext } from '../context.ts';
import { ACTION_IDS } from '../ids.ts';
import { REMEDIATION_LOCK_TTL_MS, type RunKind, runRemediation } from './run-remediation.ts';

/** Holds a running revoke; long enough for ARM and Graph, short enough to retry after a crash. */
export const REVOKE_LOCK_TTL_MS = REMEDIATION_LOCK_TTL_MS;
export { revokeLockKey };

const REVOKE: RunKind = {
  field: 'revoke',
  action: 'revoke',
  verb: 'Revoke',
  doneHead: 'revoked the access',
  lockKey: revokeLockKey,
  plan: (ctx, state) => ctx.remediator.plan(state.alert.detection),
};

/** Text of the note for an alert id that no state is kept for. */
export const UNKNOWN_ALERT =
  'This alert is no longer known to arc-responder (too old, or from another installation).';

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
    const user = body.user.id;
    const state = await loadAlertState(ctx.store, action.value ?? '', ctx.now());
    if (!state) {
      await reply(ctx, respond, UNKNOWN_ALERT);
      return;
    }
    const d = state.alert.detection;
    const subject = { action: 'revoke' as const, alertId: state.alert.id, appId: d.appId, ip: d.sourceIp };
    const place = { where: channelOfClick(body), home: state.channel };
    if (!(await authorise(ctx, user, subject, respond, place))) return;
    if (revokeInForce(state)) {
      await recordAudit(ctx.store, {
        actor: user,
        ...subject,
        result: 'duplicate',
        detail: 'already revoked',
      });
      await reply(ctx, respond, `Already revoked by <@${state.revoke!.by}>.`);
      return;
    }
    if (!(await ctx.store.claim(revokeLockKey(state.alert.id), REVOKE_LOCK_TTL_MS))) {
      await recordAudit(ctx.store, {
        actor: user,
        ...subject,
        result: 'duplicate',
        detail: 'revoke already running',
      });
      await reply(ctx, respond, 'Revoke is already running (or just ran) for this alert: see its message.');
      return;
    }
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

import type { App, BlockAction, ButtonAction } from '@slack/bolt';
import { recordAudit } from '../../core/audit.ts';
import { loadAlertState } from '../alert-state.ts';
import { authorise, reply } from '../authorise.ts';
import type { SlackContext } from '../context.ts';
import { ACTION_IDS } from '../ids.ts';
import { REMEDIATION_LOCK_TTL_MS, type RunKind, runRemediation } from './run-remediation.ts';

/** Holds a running revoke; long enough for ARM and Graph, short enough to retry after a crash. */
export const REVOKE_LOCK_TTL_MS = REMEDIATION_LOCK_TTL_MS;
export const revokeLockKey = (alertId: string): string => `revoke-lock:${alertId}`;

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
 */
export function registerRevoke(app: App, ctx: SlackContext): void {
  app.action<BlockAction<ButtonAction>>(ACTION_IDS.revoke, async ({ ack, body, action, respond }) => {
    await ack();
    const user = body.user.id;
    const state = await loadAlertState(ctx.store, action.value ?? '');
    if (!state) {
      await reply(ctx, respond, UNKNOWN_ALERT);
      return;
    }
    const d = state.alert.detection;
    const subject = { action: 'revoke' as const, alertId: state.alert.id, appId: d.appId, ip: d.sourceIp };
    if (!(await authorise(ctx, user, subject, respond))) return;
    if (state.revoke?.status === 'done' && state.revoke.mode === 'live') {
      await recordAudit(ctx.store, {
        actor: user,
        ...subject,
        result: 'duplicate',
        detail: 'already revoked',
      });
      const undone = state.undo?.status === 'done' ? ` <@${state.undo.by}> undid it since.` : '';
      await reply(ctx, respond, `Already revoked by <@${state.revoke.by}>.${undone}`);
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
    await runRemediation(ctx, state, user, REVOKE);
  });
}

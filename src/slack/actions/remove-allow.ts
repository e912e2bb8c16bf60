import type { App, BlockAction, ButtonAction } from '@slack/bolt';
import { recordAudit } from '../../core/audit.ts';
import { alertRef, loadAlertState, updateAlertState } from '../alert-state.ts';
import { authorise, channelOfClick, decide, reply } from '../authorise.ts';
import { buildHistoryMessage, parseRemoveAllowValue } from '../blocks/history.ts';
import { code } from '../blocks/text.ts';
import { revokedNotes } from '../commands/arc-history.ts';
import type { SlackContext } from '../context.ts';
import { auditInThread, showAlert } from '../follow-ups.ts';
import { ACTION_IDS, actionMatcher } from '../ids.ts';

/** The alert the entry was marked benign from says it is gone, in its message and its thread. */
async function showRemoval(ctx: SlackContext, alertId: string, user: string): Promise<void> {
  const at = ctx.now();
  const latest = await updateAlertState(ctx.store, alertId, (s) => {
    if (s.benign) s.benign.removed = { by: user, at };
  });
  if (!latest?.benign) return;
  await showAlert(ctx, latest);
  await auditInThread(
    ctx,
    latest,
    `Audit: allowlist entry removed by <@${user}> (from /arc-history): detections of this pair are no longer allowlisted.`,
  );
}

/**
 * Remove allowlist (from /arc-history): who may is decided as for Mark benign (anyone in the alert
 * channel, and responders anywhere); refreshes the private reply for who may read the history.
 */
export function registerRemoveAllow(app: App, ctx: SlackContext): void {
  // Each button of a reply has its own numbered id; a button with the bare id is served alike.
  app.action<BlockAction<ButtonAction>>(
    { action_id: actionMatcher(ACTION_IDS.removeAllow) },
    async ({ ack, body, action, respond }) => {
      await ack();
      const user = body.user.id;
      const pair = parseRemoveAllowValue(action.value);
      if (!pair) {
        await reply(ctx, respond, 'That button carries no identity and IP; run /arc-history again.');
        return;
      }
      const subject = { action: 'remove-allowlist' as const, appId: pair.appId, ip: pair.ip };
      const place = { where: channelOfClick(body), home: ctx.alertChannel };
      if (!(await authorise(ctx, user, subject, respond, place))) return;
      const entry = await ctx.history.getAllow(pair.appId, pair.ip);
      const removed = await ctx.history.unallow(pair.appId, pair.ip);
      // What was removed (who made it, why, until when), under the alert it was marked benign
      // from: that alert's audit then shows the removal too, with the alert's `ref` while known.
      // A state that cannot be read only leaves `ref` out: the removal is audited all the same.
      const from = entry?.alertId
        ? await loadAlertState(ctx.store, entry.alertId).catch(() => undefined)
        : undefined;
      await recordAudit(
        ctx.store,
        {
          actor: user,
          ...subject,
          ...(entry?.alertId ? { alertId: entry.alertId } : {}),
          result: removed ? 'ok' : 'not-found',
          // The entry this click removed: none when another click removed it first.
          ...(entry && removed ? { detail: { removed: entry } } : {}),
          ...(from ? { ref: alertRef(from) } : {}),
        },
        ctx.audit,
      );
      if (removed && entry?.alertId) await showRemoval(ctx, entry.alertId, user);
      // The reply is read again only for who may still read the history: SLACK_HISTORY may have
      // been tightened since it was given.
      const reading = await decide(ctx, user, 'history', place);
      if (!reading.ok) {
        await respond({
          replace_original: true,
          text: `${removed ? 'Removed' : 'Already removed'}: the allowlist entry of ${code(pair.appId, 80)} from ${code(pair.ip, 60)}. The history is not shown again: ${reading.reason}`,
        }).catch((err: unknown) =>
          ctx.logger.warn({ err: (err as Error).message }, 'cannot refresh the /arc-history reply'),
        );
        return;
      }
      const [{ entries, dormant }, revoked] = await Promise.all([
        ctx.history.readIdentity(pair.appId),
        revokedNotes(ctx, pair.appId),
      ]);
      // Replaces the message holding the button: the first of the reply, from the same IP on.
      const message = buildHistoryMessage({
        appId: pair.appId,
        windowMs: ctx.history.windowMs,
        entries,
        dormant,
        // As the reply it replaces, it begins with the identity's Revokes in force.
        revoked,
        canRemove: true,
        start: pair.start,
      });
      try {
        await respond({ ...message, replace_original: true });
      } catch (err) {
        ctx.logger.warn({ err: (err as Error).message }, 'cannot refresh the /arc-history reply');
      }
    },
  );
}

import type { App, BlockAction, ButtonAction } from '@slack/bolt';
import { recordAudit } from '../../core/audit.ts';
import { authorise, channelOfClick, reply } from '../authorise.ts';
import { buildHistoryMessage, parseRemoveAllowValue } from '../blocks/history.ts';
import type { SlackContext } from '../context.ts';
import { ACTION_IDS } from '../ids.ts';

/**
 * Remove allowlist (from /arc-history): who may is decided as for Mark benign (anyone in the alert
 * channel, and responders anywhere); refreshes the private reply.
 */
export function registerRemoveAllow(app: App, ctx: SlackContext): void {
  app.action<BlockAction<ButtonAction>>(ACTION_IDS.removeAllow, async ({ ack, body, action, respond }) => {
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
    const removed = await ctx.history.unallow(pair.appId, pair.ip);
    await recordAudit(ctx.store, { actor: user, ...subject, result: removed ? 'ok' : 'not-found' });
    ctx.logger.info({ user, ...subject, removed }, 'allowlist entry removed from Slack');
    const entries = await ctx.history.listIdentity(pair.appId);
    // Replaces the message holding the button: the first of the reply, from the same IP on.
    const message = buildHistoryMessage({
      appId: pair.appId,
      windowMs: ctx.history.windowMs,
      entries,
      canRemove: true,
      start: pair.start,
    });
    try {
      await respond({ ...message, replace_original: true });
    } catch (err) {
      ctx.logger.warn({ err: (err as Error).message }, 'cannot refresh the /arc-history reply');
    }
  });
}

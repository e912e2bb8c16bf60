import type { App } from '@slack/bolt';
import { buildHistoryMessage, historyUsage } from '../blocks/history.ts';
import { code } from '../blocks/text.ts';
import type { SlackContext } from '../context.ts';
import { COMMANDS } from '../ids.ts';

/** What an appid may look like here (GUIDs, in practice); anything else gets a clear refusal. */
const APP_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * `/arc-history <appid>`: a private reply listing the identity's source IPs in the window. The
 * reply goes in the acknowledgement itself, so it is always private and immediate.
 */
export function registerArcHistory(app: App, ctx: SlackContext): void {
  app.command(COMMANDS.history, async ({ ack, command }) => {
    const windowMs = ctx.history.windowMs;
    const arg = (command.text ?? '').trim().split(/\s+/)[0] ?? '';
    if (arg === '' || arg === 'help') {
      await ack(historyUsage(windowMs));
      return;
    }
    if (!APP_ID.test(arg)) {
      await ack({
        response_type: 'ephemeral',
        text: `${code(arg, 80)} is not an application id. ${historyUsage(windowMs).text}`,
      });
      return;
    }
    try {
      const entries = await ctx.history.listIdentity(arg);
      const canRemove = entries.some((e) => e.allow) && (await ctx.responders.isResponder(command.user_id));
      await ack(buildHistoryMessage({ appId: arg, windowMs, entries, canRemove }));
    } catch (err) {
      ctx.logger.error({ err: (err as Error).message }, '/arc-history could not read the history');
      await ack({
        response_type: 'ephemeral',
        text: ':warning: Could not read the history right now (the store did not answer). Try again shortly.',
      });
    }
  });
}

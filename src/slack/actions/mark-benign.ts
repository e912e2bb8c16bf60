import type { App, BlockAction, ButtonAction } from '@slack/bolt';
import { channelOfClick, reply } from '../authorise.ts';
import { buildBenignModal } from '../blocks/benign-modal.ts';
import type { SlackContext } from '../context.ts';
import { ACTION_IDS } from '../ids.ts';
import { openAlertClick } from './alert-click.ts';

/**
 * Mark benign: opens the modal that asks a reason and an expiry. Anyone pressing it in the alert
 * channel, and responders anywhere (see `decide`).
 */
export function registerMarkBenign(app: App, ctx: SlackContext): void {
  app.action<BlockAction<ButtonAction>>(
    ACTION_IDS.markBenign,
    async ({ ack, body, action, respond, client }) => {
      await ack();
      const click = await openAlertClick(ctx, { body, alertId: action.value, respond }, 'mark-benign');
      if (!click) return;
      const { state } = click;
      const where = channelOfClick(body);
      try {
        // trigger_id lives 3 seconds: open the modal before anything slow. The modal keeps the
        // channel of the click, so that the submission is judged by the same rule.
        await client.views.open({
          trigger_id: body.trigger_id,
          view: buildBenignModal(state.alert, where, state.benign),
        });
      } catch (err) {
        ctx.logger.warn(
          { alertId: state.alert.id, err: (err as Error).message },
          'cannot open the Mark benign modal',
        );
        await reply(ctx, respond, ':warning: Could not open the Mark benign dialog; please try again.');
      }
    },
  );
}

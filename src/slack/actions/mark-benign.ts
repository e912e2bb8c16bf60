import type { App, BlockAction, ButtonAction } from '@slack/bolt';
import { loadAlertState } from '../alert-state.ts';
import { authorise, reply } from '../authorise.ts';
import { buildBenignModal } from '../blocks/benign-modal.ts';
import type { SlackContext } from '../context.ts';
import { ACTION_IDS } from '../ids.ts';

/** Mark benign: responders only; opens the modal that asks a reason and an expiry. */
export function registerMarkBenign(app: App, ctx: SlackContext): void {
  app.action<BlockAction<ButtonAction>>(
    ACTION_IDS.markBenign,
    async ({ ack, body, action, respond, client }) => {
      await ack();
      const user = body.user.id;
      const state = await loadAlertState(ctx.store, action.value ?? '');
      if (!state) {
        await reply(
          ctx,
          respond,
          'This alert is no longer known to arc-responder (too old, or from another installation).',
        );
        return;
      }
      const d = state.alert.detection;
      const subject = {
        action: 'mark-benign' as const,
        alertId: state.alert.id,
        appId: d.appId,
        ip: d.sourceIp,
      };
      if (!(await authorise(ctx, user, subject, respond))) return;
      try {
        // trigger_id lives 3 seconds: open the modal before anything slow.
        await client.views.open({ trigger_id: body.trigger_id, view: buildBenignModal(state.alert) });
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

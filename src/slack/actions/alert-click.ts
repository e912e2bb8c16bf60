import { recordAudit } from '../../core/audit.ts';
import { alertRef, isAlertId, type SlackAlertState } from '../alert-state.ts';
import { type ActionSubject, authorise, channelOfClick, type Respond, reply } from '../authorise.ts';
import type { SlackContext } from '../context.ts';
import { postPending } from '../sink.ts';
import { loadClickedAlert } from '../stale-runs.ts';

/** Text of the note for an alert id that no state is kept for. */
const UNKNOWN_ALERT =
  "This alert is no longer known to arc-responder (too old, from another installation, or its store was emptied), so its buttons do nothing. If its Revoke removed access that should come back, restore it in Azure by hand: the alert's thread lists what was removed.";
/** Text of the note for an alert whose post Slack has not clearly answered yet (its state is kept once it has). */
const PENDING_ALERT =
  'This alert is still being confirmed with Slack (its post got no clear answer); press again in a minute or two.';

/** A button click on an alert, once the alert is found and the clicker allowed. */
export interface AlertClick {
  user: string;
  state: SlackAlertState;
  subject: ActionSubject & { alertId: string; appId: string; ip: string };
  /**
   * Refuses the click: audited (as `duplicate`, a repeat of an action that already ran, unless
   * `result` says otherwise), answered privately.
   */
  refuse(detail: string, text: string, result?: 'duplicate' | 'refused'): Promise<void>;
}

/** What an action on an alert is about: the alert and its (identity, IP) pair. */
export function alertSubject(action: ActionSubject['action'], state: SlackAlertState): AlertClick['subject'] {
  const d = state.alert.detection;
  return { action, alertId: state.alert.id, appId: d.appId, ip: d.sourceIp, ref: alertRef(state) };
}

/**
 * Audits an action on an alert that no state is kept for (a press on a button that does nothing is
 * still someone acting on an alert), and says why there is none: `pending` while the alert's post
 * waits for a clear answer from Slack (the message may be live; its state is stored once the
 * answer is), else `unknown`. `from` names what carried the id, for the audit of one without.
 */
export async function refuseUnknownAlert(
  ctx: SlackContext,
  user: string,
  action: ActionSubject['action'],
  value: string | undefined,
  from: 'button' | 'dialog',
): Promise<'pending' | 'unknown'> {
  const alertId = isAlertId(value) ? value : undefined;
  const why = alertId && (await postPending(ctx.store, alertId)) ? 'pending' : 'unknown';
  await recordAudit(
    ctx.store,
    {
      actor: user,
      action,
      ...(alertId ? { alertId } : {}),
      result: 'refused',
      detail: !alertId
        ? `the ${from} carries no alert id`
        : why === 'pending'
          ? 'alert post pending: Slack has not clearly answered it yet'
          : 'unknown alert',
    },
    ctx.audit,
    // Not stored (the store failed): the log has the record, and the clicker the answer.
  ).catch(() => undefined);
  return why;
}

/**
 * The start every alert button shares: find the alert its value names and check that the clicker
 * may use `action` (refusals are answered and audited by `authorise`). Undefined when the click
 * goes no further.
 */
export async function openAlertClick(
  ctx: SlackContext,
  click: { body: { user: { id: string } }; alertId: string | undefined; respond: Respond | undefined },
  action: ActionSubject['action'],
): Promise<AlertClick | undefined> {
  const user = click.body.user.id;
  const state = await loadClickedAlert(ctx, click.alertId ?? '');
  if (!state) {
    const why = await refuseUnknownAlert(ctx, user, action, click.alertId, 'button');
    await reply(ctx, click.respond, why === 'pending' ? PENDING_ALERT : UNKNOWN_ALERT);
    return undefined;
  }
  const subject = alertSubject(action, state);
  const place = { where: channelOfClick(click.body), home: state.channel };
  if (!(await authorise(ctx, user, subject, click.respond, place))) return undefined;
  return {
    user,
    state,
    subject,
    refuse: async (detail, text, result = 'duplicate') => {
      await recordAudit(ctx.store, { actor: user, ...subject, result, detail }, ctx.audit);
      await reply(ctx, click.respond, text);
    },
  };
}

import type { App } from '@slack/bolt';
import { recordAudit } from '../../core/audit.ts';
import { valueWithin } from '../../timeout.ts';
import { alertSubject, refuseUnknownAlert } from '../actions/alert-click.ts';
import { type SlackAlertState, updateAlertState } from '../alert-state.ts';
import { decide } from '../authorise.ts';
import { benignText } from '../blocks/alert.ts';
import { benignNotice, parseBenignMetadata, parseBenignSubmission } from '../blocks/benign-modal.ts';
import type { SlackContext } from '../context.ts';
import { auditInThread, showAlert } from '../follow-ups.ts';
import { BENIGN_MODAL, CALLBACK_IDS } from '../ids.ts';
import { loadClickedAlert } from '../stale-runs.ts';

/** How long a submission's checks may take before it is answered and its outcome shown later. */
const READ_BEFORE_ANSWER_MS = 2000;

/**
 * The Mark benign modal's submission: checks who submits it by the same rule as the button
 * (`decide`: anyone who pressed it in the alert channel, and responders anywhere), validates it (errors shown in the modal), then allowlists the pair, updates the alert
 * (who, why, until), audits it and posts the audit line in the thread.
 */
export function registerMarkBenignSubmit(app: App, ctx: SlackContext): void {
  app.view(CALLBACK_IDS.markBenign, async ({ ack, body, view, client }) => {
    const user = body.user.id;
    const meta = parseBenignMetadata(view.private_metadata);
    // The form first: its errors need no store, and are shown in the modal at once.
    const answer = parseBenignSubmission(view.state.values);
    if (!answer.ok) {
      await ack({ response_action: 'errors', errors: answer.errors });
      return;
    }
    // Slack wants its answer within 3 s. Past READ_BEFORE_ANSWER_MS of a slow store, the modal
    // turns into a notice that says it is being saved, and then what came of it.
    const checking = checkSubmitter(ctx, user, meta).catch((err: unknown) => {
      ctx.logger.error({ err: (err as Error).message }, 'Mark benign could not read its alert');
      return { refused: 'Could not read the alert right now (the store did not answer). Try again shortly.' };
    });
    const early = await valueWithin(checking, READ_BEFORE_ANSWER_MS);
    if (early === undefined) {
      await ack({
        response_action: 'update',
        view: benignNotice(
          'Saving the allowlist entry: the store is slow to answer. This dialog says when it is done.',
        ),
      });
    }
    /** Shows how a submission answered late ended, in the notice it was answered with. */
    const tell = async (text: string) => {
      if (early !== undefined) return;
      await client.views
        .update({ view_id: view.id, view: benignNotice(text) })
        .catch((err: unknown) =>
          ctx.logger.warn(
            { err: (err as Error).message },
            'cannot show the outcome of Mark benign in its dialog',
          ),
        );
    };
    const checked = early ?? (await checking);
    if ('refused' in checked) {
      if (early)
        await ack({ response_action: 'errors', errors: { [BENIGN_MODAL.reasonBlock]: checked.refused } });
      else await tell(checked.refused);
      return;
    }
    if (early) await ack();
    const { state, subject, decision } = checked;

    const at = ctx.now();
    const until = answer.expiryMs === undefined ? undefined : at + answer.expiryMs;
    // The entry this one replaces (a change of Mark benign), for the audit: a failed read of it
    // leaves the audit without it, never the pair without its entry.
    const previous = await ctx.history.getAllow(subject.appId, subject.ip).catch(() => undefined);
    try {
      await ctx.history.allow({
        appId: subject.appId,
        ip: subject.ip,
        by: user,
        reason: answer.reason,
        ...(until === undefined ? {} : { until }),
        alertId: state.alert.id,
      });
    } catch (err) {
      ctx.logger.error(
        { alertId: state.alert.id, err: (err as Error).message },
        'cannot store the allowlist entry',
      );
      await recordAudit(
        ctx.store,
        {
          actor: user,
          ...subject,
          result: 'failed',
          detail: (err as Error).message,
        },
        ctx.audit,
      ).catch(() => undefined);
      await auditInThread(
        ctx,
        state,
        `:x: <@${user}> tried to mark this benign, but the allowlist could not be stored.`,
      );
      await tell(':x: The allowlist entry could not be stored (the store failed). Try again shortly.');
      return;
    }
    const mark = { by: user, reason: answer.reason, at, ...(until === undefined ? {} : { until }) };
    // The entry is made: its audit record, the dialog and the thread say so even when the alert's
    // own record cannot take the mark.
    const latest =
      (await updateAlertState(ctx.store, state.alert.id, (s) => {
        s.benign = mark;
      }).catch((err: unknown) => {
        ctx.logger.error(
          { alertId: state.alert.id, err: (err as Error).message },
          'cannot record the Mark benign on its alert; the allowlist entry is made',
        );
        return undefined;
      })) ?? state;
    await recordAudit(
      ctx.store,
      {
        actor: user,
        ...subject,
        result: 'ok',
        detail: {
          reason: answer.reason,
          until: until ?? null,
          expiry: answer.expiry,
          as: decision.as,
          ...(previous ? { previous } : {}),
        },
      },
      ctx.audit,
      // Not stored (the store failed): the log has the record; the entry is made, and shown.
    ).catch(() => undefined);
    await tell(`:white_check_mark: ${benignText(mark)}`);
    await showAlert(ctx, latest);
    await auditInThread(ctx, latest, `Audit: ${benignText(mark)}`);
  });
}

/**
 * Finds the alert a submission is about and checks its submitter by the same rule as the button
 * (refusals are audited): what a submission needs the store for before it is answered.
 */
async function checkSubmitter(
  ctx: SlackContext,
  user: string,
  meta: ReturnType<typeof parseBenignMetadata>,
): Promise<
  | { refused: string }
  | {
      state: SlackAlertState;
      subject: ReturnType<typeof alertSubject>;
      decision: Extract<Awaited<ReturnType<typeof decide>>, { ok: true }>;
    }
> {
  const state = meta ? await loadClickedAlert(ctx, meta.alertId) : undefined;
  if (!state) {
    const why = await refuseUnknownAlert(ctx, user, 'mark-benign', meta?.alertId, 'dialog');
    return {
      refused:
        why === 'pending'
          ? 'This alert is still being confirmed with Slack (its post got no clear answer); submit again in a minute or two.'
          : 'This alert is no longer known to arc-responder.',
    };
  }
  const subject = alertSubject('mark-benign', state);
  const decision = await decide(ctx, user, 'mark-benign', { where: meta?.channel, home: state.channel });
  if (!decision.ok) {
    await recordAudit(
      ctx.store,
      { actor: user, ...subject, result: 'refused', detail: decision.detail },
      ctx.audit,
    );
    return {
      refused: ctx.responders.empty
        ? 'SLACK_RESPONDERS is not set: only members of the alert channel may mark alerts benign, from the alert there.'
        : ctx.allowlistBy === 'responders'
          ? 'Only responders (SLACK_RESPONDERS) may mark alerts benign.'
          : 'Only members of the alert channel, from the alert there, and responders (SLACK_RESPONDERS) may mark alerts benign.',
    };
  }
  return { state, subject, decision };
}

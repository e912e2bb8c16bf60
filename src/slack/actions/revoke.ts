import type { App, BlockAction, ButtonAction } from '@slack/bolt';
import { recordAudit } from '../../core/audit.ts';
import type { RemediationResult } from '../../core/remediation.ts';
import { loadAlertState, type RevokeRun, type SlackAlertState, updateAlertState } from '../alert-state.ts';
import { authorise, reply } from '../authorise.ts';
import { clip, code, esc } from '../blocks/text.ts';
import type { SlackContext } from '../context.ts';
import { ACTION_IDS } from '../ids.ts';

/** Holds a running revoke; long enough for ARM and Graph, short enough to retry after a crash. */
export const REVOKE_LOCK_TTL_MS = 15 * 60 * 1000;
export const revokeLockKey = (alertId: string): string => `revoke-lock:${alertId}`;

const STATUS_MARK: Record<string, string> = {
  done: ':white_check_mark:',
  'already-done': ':ballot_box_with_check:',
  failed: ':x:',
  'would-do': ':small_orange_diamond:',
  skipped: ':fast_forward:',
};

function threadText(run: RevokeRun): string {
  const who = `<@${run.by}>`;
  const steps = run.plan?.steps ?? [];
  const results = new Map((run.result?.steps ?? []).map((r) => [r.stepId, r]));
  const lines = steps.map((s) => {
    const r = results.get(s.id);
    return `${STATUS_MARK[r?.status ?? ''] ?? ':grey_question:'} ${code(s.call, 300)}${r && r.status !== 'would-do' ? ` ${clip(esc(r.detail), 200)}` : ''}${r?.fix ? ` *Fix:* ${clip(esc(r.fix), 200)}` : ''}`;
  });
  let head: string;
  if (run.status === 'failed')
    head = `:x: Audit: Revoke by ${who} failed${run.error ? `: ${clip(esc(run.error), 300)}` : ''}.`;
  else if (run.mode === 'dry-run')
    head = `:test_tube: Audit: Revoke pressed by ${who} in dry-run: nothing was changed. It would call:`;
  else head = `:no_entry: Audit: ${who} revoked the access:`;
  return [head, ...lines].join('\n');
}

async function runRevoke(ctx: SlackContext, state: SlackAlertState, user: string): Promise<void> {
  const { store, remediator } = ctx;
  const alertId = state.alert.id;
  const d = state.alert.detection;
  const previous: RemediationResult | undefined =
    state.revoke?.mode === remediator.mode && state.revoke.status === 'failed'
      ? state.revoke.result
      : undefined;
  const run: RevokeRun = { status: 'running', mode: remediator.mode, by: user, at: ctx.now() };
  const save = async () => {
    const latest = await updateAlertState(store, alertId, (s) => {
      s.revoke = run;
    });
    if (latest) await ctx.messenger.updateAlert(latest).catch(() => undefined);
    return latest ?? state;
  };
  await save();
  try {
    run.plan = await remediator.plan(d);
    await save();
    run.result = await remediator.execute(run.plan, previous, {
      actor: user,
      alertId,
      ip: d.sourceIp,
    });
    run.status = run.result.ok ? 'done' : 'failed';
  } catch (err) {
    run.status = 'failed';
    run.error = (err as Error).message;
    ctx.logger.error({ alertId, err: run.error }, 'remediation failed');
  }
  run.finishedAt = ctx.now();
  const latest = await save();
  if (run.status === 'failed') await store.releaseClaim(revokeLockKey(alertId));
  await recordAudit(store, {
    actor: user,
    action: 'revoke',
    alertId,
    appId: d.appId,
    ip: d.sourceIp,
    result: run.status === 'failed' ? 'failed' : run.mode === 'dry-run' ? 'dry-run' : 'ok',
    detail: { mode: run.mode, steps: run.result?.steps ?? [], error: run.error },
  });
  await ctx.messenger.postThread(latest, threadText(run)).catch(() => undefined);
}

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
      await reply(
        ctx,
        respond,
        'This alert is no longer known to arc-responder (too old, or from another installation).',
      );
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
      await reply(ctx, respond, `Already revoked by <@${state.revoke.by}>.`);
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
    await runRevoke(ctx, state, user);
  });
}

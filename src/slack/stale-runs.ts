import { recordAudit } from '../core/audit.ts';
import {
  isStale,
  loadAlertState,
  type SlackAlertState,
  settleStaleRuns,
  updateAlertState,
} from './alert-state.ts';
import type { SlackContext } from './context.ts';
import { auditInThread, showAlert } from './follow-ups.ts';

/**
 * The store set of alerts with a remediation run (Revoke, Remove broad roles, Undo) in progress.
 * A process that stops mid-run leaves its alert here, marked running; `sweepStaleRuns` finds it.
 */
export const RUNS_IN_PROGRESS = 'slack-runs-in-progress';

/** How often each process looks for interrupted runs (and once at start). */
export const STALE_SWEEP_INTERVAL_MS = 60_000;

const WORDS = {
  revoke: { action: 'revoke', name: 'Revoke', button: 'Revoke' },
  broad: { action: 'remove-broad-roles', name: 'Remove broad roles too', button: 'Remove broad roles too' },
  undo: { action: 'undo', name: 'Undo', button: 'Undo' },
} as const;

/** Notes that a run for `alertId` started; failures are logged, never thrown. */
export async function trackRun(ctx: Pick<SlackContext, 'store' | 'logger'>, alertId: string): Promise<void> {
  try {
    await ctx.store.addMembers(RUNS_IN_PROGRESS, [alertId]);
  } catch (err) {
    ctx.logger.warn({ alertId, err: (err as Error).message }, 'cannot note the run in progress');
  }
}

/** Notes that the run for `alertId` ended; failures are logged, never thrown. */
export async function untrackRun(
  ctx: Pick<SlackContext, 'store' | 'logger'>,
  alertId: string,
): Promise<void> {
  try {
    await ctx.store.removeMembers(RUNS_IN_PROGRESS, [alertId]);
  } catch (err) {
    ctx.logger.warn({ alertId, err: (err as Error).message }, 'cannot note the end of a run');
  }
}

/**
 * Finds runs left marked running for longer than the lock lasts (the process running them
 * stopped), marks them failed as interrupted, shows that in the alert (whose buttons are offered
 * again), audits it and says so in the thread. Runs still within their lock (possibly running in
 * another replica) are left alone. Returns the ids of the alerts it changed.
 */
export async function sweepStaleRuns(ctx: SlackContext): Promise<string[]> {
  const changed: string[] = [];
  for (const alertId of await ctx.store.members(RUNS_IN_PROGRESS)) {
    const now = ctx.now();
    const known = await loadAlertState(ctx.store, alertId);
    if (!known) {
      await untrackRun(ctx, alertId);
      continue;
    }
    const runs = (s: SlackAlertState) => [s.revoke, s.broad, s.undo];
    // Written only when a run is stale: a needless write could undo what another replica just saved.
    if (!runs(known).some((r) => isStale(r, now))) {
      if (!runs(known).some((r) => r?.status === 'running')) await untrackRun(ctx, alertId);
      continue;
    }
    let settled: Array<keyof typeof WORDS> = [];
    const state = await updateAlertState(ctx.store, alertId, (s) => {
      settled = settleStaleRuns(s, now);
    });
    if (!state) continue;
    if (!runs(state).some((r) => r?.status === 'running')) await untrackRun(ctx, alertId);
    if (settled.length === 0) continue;
    changed.push(alertId);
    const d = state.alert.detection;
    for (const field of settled) {
      const run = state[field]!;
      const words = WORDS[field];
      ctx.logger.warn({ alertId, run: field, startedBy: run.by }, `${words.name} was interrupted`);
      await recordAudit(ctx.store, {
        actor: run.by,
        action: words.action,
        alertId,
        appId: d.appId,
        ip: d.sourceIp,
        result: 'failed',
        detail: { mode: run.mode, error: 'interrupted', startedAt: run.at },
      });
      await auditInThread(
        ctx,
        state,
        `:warning: Audit: ${words.name} started by <@${run.by}> did not finish within 15 minutes (arc-responder stopped mid-run). What it changed is unknown: press ${words.button} again to finish it.`,
      );
    }
    await showAlert(ctx, state);
  }
  return changed;
}

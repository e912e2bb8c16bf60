import { recordAudit } from '../core/audit.ts';
import type { RemediationPlan, RemediationResult } from '../core/remediation.ts';
import { waitAtMost } from '../timeout.ts';
import {
  alertRef,
  isStale,
  loadAlertState,
  type RevokeRun,
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
 * stopped; never one this process is running), marks them failed as interrupted, shows that in the alert (whose buttons are offered
 * again), audits it and says so in the thread. Runs still within their lock (possibly running in
 * another replica) are left alone. Returns the ids of the alerts it changed.
 */
export async function sweepStaleRuns(ctx: SlackContext): Promise<string[]> {
  const changed: string[] = [];
  for (const alertId of await ctx.store.members(RUNS_IN_PROGRESS)) {
    // A run of this process ends, or a stop settles it.
    if (ctx.runs.has(alertId)) continue;
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
      await recordAudit(
        ctx.store,
        {
          actor: run.by,
          action: words.action,
          alertId,
          appId: d.appId,
          ip: d.sourceIp,
          result: 'failed',
          detail: { mode: run.mode, error: 'interrupted', startedAt: run.at },
          ref: alertRef(state),
        },
        ctx.audit,
      );
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

/** A remediation run of this process, with the locks it holds (its own, and those it took to keep others off). */
interface ActiveRun {
  alertId: string;
  field: keyof typeof WORDS;
  by: string;
  locks: readonly string[];
  ended: Promise<void>;
  /** Marked cut short by a stop: the run writes nothing more of its own. */
  settled: boolean;
}

/**
 * An alert's state as a click sees it: a run whose lock has lapsed reads as interrupted, except a
 * run of this process, which is at work whatever the clock says (see `ActiveRuns.has`).
 */
export function loadClickedAlert(
  ctx: Pick<SlackContext, 'store' | 'runs' | 'now'>,
  alertId: string,
): Promise<SlackAlertState | undefined> {
  return loadAlertState(ctx.store, alertId, ctx.runs.has(alertId) ? undefined : ctx.now());
}

/** What a run asks of its entry: whether a stop has settled it meanwhile. */
export interface RunHandle {
  settled(): boolean;
}

/**
 * The remediation runs in progress in this process. A stop waits a few seconds for them; one
 * still running then is settled at once (see `settleRunsAtStop`) rather than left to the sweep,
 * which would wait for its lock to lapse (15 minutes) before a responder could press again.
 */
export class ActiveRuns {
  readonly #runs = new Set<ActiveRun>();
  #closed = false;

  /**
   * Runs `work` as one remediation run; resolves or rejects as it does. `work` checks its handle
   * before each write of its own: once a stop has settled the run, the alert and the locks are
   * the stop's (and a responder's who presses again), not the run's.
   */
  track<T>(run: Omit<ActiveRun, 'ended' | 'settled'>, work: (handle: RunHandle) => Promise<T>): Promise<T> {
    const entry: ActiveRun = { ...run, settled: false, ended: Promise.resolve() };
    const result = work({ settled: () => entry.settled });
    entry.ended = result.then(
      () => undefined,
      () => undefined,
    );
    this.#runs.add(entry);
    void entry.ended.then(() => this.#runs.delete(entry));
    return result;
  }

  list(): ActiveRun[] {
    return [...this.#runs];
  }

  /**
   * Whether a run of this process is at work on the alert. Such a run is never taken for one
   * interrupted, whatever the clock says (a wall clock set ahead makes it look older than its lock).
   */
  has(alertId: string): boolean {
    for (const run of this.#runs) if (run.alertId === alertId) return true;
    return false;
  }

  /** The service stops: no new run may start (a click is told to press again after the restart). */
  close(): void {
    this.#closed = true;
  }

  /** The Slack side starts (again): runs may start. */
  open(): void {
    this.#closed = false;
  }

  get closed(): boolean {
    return this.#closed;
  }
}

/** The answer to a click that would start a run while the service stops. */
export const STOPPING_NOTE =
  'arc-responder is restarting: nothing was done. Press the button again in a minute.';

/** The result of a live run cut short during its plan: every step failed, and may have been made. */
function mayHaveBeenMade(plan: RemediationPlan): RemediationResult {
  return {
    mode: 'live',
    ok: false,
    steps: plan.steps.map((step) => ({
      stepId: step.id,
      status: 'failed',
      detail: 'cut short by a stop: it may have been made',
      maybeApplied: true,
    })),
  };
}

/** What a run cut short by a stop says in the alert. */
export const INTERRUPTED_AT_STOP =
  'arc-responder stopped while it ran (a restart or a deployment). What it changed is unknown; pressing the button again re-plans and finishes it';

/**
 * At a stop: waits up to `waitMs` for this process's remediation runs, then settles each one
 * still running: marked failed as cut short, its locks given back (a responder can press again at
 * once, on this replica after its restart or on another), audited, said in the alert's thread
 * and shown. Failures are logged, never thrown: the stop goes on.
 */
export async function settleRunsAtStop(ctx: SlackContext, waitMs: number): Promise<void> {
  ctx.runs.close();
  const active = ctx.runs.list();
  if (active.length === 0) return;
  ctx.logger.info(
    { runs: active.map((r) => ({ alertId: r.alertId, run: r.field })) },
    `stopping: waiting up to ${waitMs / 1000} s for the remediation runs in progress`,
  );
  await waitAtMost(Promise.all(active.map((r) => r.ended)), waitMs);
  for (const run of ctx.runs.list()) {
    const words = WORDS[run.field];
    try {
      const now = ctx.now();
      // Decided under the alert's write: a run that saved its end first keeps it, and its locks.
      const state = await updateAlertState(ctx.store, run.alertId, (s) => {
        const current = s[run.field];
        if (current?.status !== 'running') return;
        s[run.field] = { ...current, status: 'failed', error: INTERRUPTED_AT_STOP, finishedAt: now };
        if (run.field !== 'undo') {
          const cut = s[run.field] as RevokeRun;
          // Each planned change may have been sent: the retry counts what it finds made as this
          // alert's (Undo then re-creates it), as after an answer that was lost.
          if (cut.mode === 'live' && cut.plan && !cut.result) cut.result = mayHaveBeenMade(cut.plan);
        }
        run.settled = true;
      });
      if (!state || !run.settled) continue;
      for (const key of run.locks) await ctx.store.releaseClaim(key);
      await untrackRun(ctx, run.alertId);
      const d = state.alert.detection;
      ctx.logger.warn(
        { alertId: run.alertId, run: run.field, startedBy: run.by },
        `${words.name} was cut short by the stop: marked failed, and it can be pressed again at once`,
      );
      await recordAudit(
        ctx.store,
        {
          actor: run.by,
          action: words.action,
          alertId: run.alertId,
          appId: d.appId,
          ip: d.sourceIp,
          result: 'failed',
          detail: { mode: state[run.field]?.mode, error: 'stopped', startedAt: state[run.field]?.at },
          ref: alertRef(state),
        },
        ctx.audit,
      );
      await auditInThread(
        ctx,
        state,
        `:warning: Audit: ${words.name} started by <@${run.by}> was cut short: arc-responder stopped while it ran. What it changed is unknown: press ${words.button} again to finish it.`,
      );
      await showAlert(ctx, state);
    } catch (err) {
      ctx.logger.warn(
        { alertId: run.alertId, run: run.field, err: (err as Error).message },
        `${words.name} was cut short by the stop, and could not be marked so: it shows as running until the sweep after its lock lapses (15 minutes)`,
      );
    }
  }
}

import { recordAudit } from '../../core/audit.ts';
import { scrubSecrets } from '../../secrets.ts';
import { alertRef, type SlackAlertState, updateAlertState } from '../alert-state.ts';
import type { SlackContext } from '../context.ts';
import { auditInThread, showAlert } from '../follow-ups.ts';
import { trackRun, untrackRun } from '../stale-runs.ts';

/** Where a remediation run is kept in the alert's state. */
type RunField = 'revoke' | 'broad' | 'undo';

/** The run kept at `F`: a `RevokeRun` (Revoke, Remove broad roles) or an `UndoRun`. */
type RunAt<F extends RunField> = NonNullable<SlackAlertState[F]>;

/** What one kind of remediation run does in `runTracked`, and how it differs from the others. */
export interface TrackedRun<F extends RunField> {
  /** Where the run is kept in the alert's state. */
  field: F;
  /** The run as it starts: running, by the clicker, at now. `runTracked` writes its end into it. */
  run: RunAt<F>;
  /** What the log calls it (`Revoke`, `Undo`), and its audit action. */
  name: string;
  action: string;
  /** Every lock the run holds: a stop that cuts it short gives them back. */
  locks: readonly string[];
  /**
   * Does the run: sets its result and status. `save` stores the run as it is now and shows it in
   * the alert. Throwing fails the run with that message, which `logFailure` logs.
   */
  work: (save: () => Promise<SlackAlertState>) => Promise<void>;
  logFailure: (error: string) => void;
  /** Once the run has ended and is saved (unless a stop cut it short): before its locks go back. */
  ended?: (run: RunAt<F>) => Promise<void>;
  /** The locks given back once the run has ended, in this order (those it may run again under). */
  release: (run: RunAt<F>) => readonly string[];
  /** The audit line for the alert's thread. */
  threadText: (run: RunAt<F>) => string;
  /** After the run is audited and said in the thread. */
  reported?: (run: RunAt<F>) => Promise<void>;
  /**
   * Given, a failure of the run's own writes (the store) is passed here to be logged instead of
   * thrown, and the locks are given back unless they were already: a later click can run. Absent,
   * the failure is thrown, and the locks lapse with their TTL.
   */
  cutShort?: (error: string) => void;
}

/**
 * Runs one remediation run for an alert whose locks the caller holds, as an entry of `ctx.runs`
 * (a stop waits for it, then cuts it short): notes it in progress, saves and shows it, does its
 * work, saves and shows its end, gives back the locks `release` names, audits it and says it in
 * the alert's thread. Once a stop has cut it short, it writes nothing more of its own: the alert
 * and the locks are the stop's then.
 */
export function runTracked<F extends RunField>(
  ctx: SlackContext,
  state: SlackAlertState,
  opts: TrackedRun<F>,
): Promise<void> {
  const alertId = state.alert.id;
  const { field, run } = opts;
  /** Set once the locks are given back (by the run, or by a stop): they may be another run's then. */
  let released = false;
  const tracked = ctx.runs.track({ alertId, field, by: run.by, locks: opts.locks }, async (handle) => {
    const save = async () => {
      const latest = await updateAlertState(ctx.store, alertId, (s) => {
        // Cut short by a stop meanwhile: the alert says so, and stays so.
        if (!handle.settled()) s[field] = run;
      });
      if (latest && !handle.settled()) await showAlert(ctx, latest);
      return latest ?? state;
    };
    await trackRun(ctx, alertId);
    await save();
    try {
      await opts.work(save);
    } catch (err) {
      run.status = 'failed';
      // Shown in Slack and kept in the store.
      run.error = scrubSecrets((err as Error).message);
      opts.logFailure(run.error);
    }
    run.finishedAt = ctx.now();
    const latest = await save();
    if (handle.settled()) {
      // The stop marked it cut short and gave its locks back (see settleRunsAtStop); Azure's own
      // audit record (azure.*) keeps what it did, and the next click plans anew from what Azure holds.
      released = true;
      ctx.logger.info(
        { alertId, run: field, status: run.status },
        `${opts.name} ended after the stop had marked it cut short; its result is in the azure audit record`,
      );
      return;
    }
    await opts.ended?.(run);
    await untrackRun(ctx, alertId);
    for (const key of opts.release(run)) await ctx.store.releaseClaim(key);
    released = true;
    // Not stored (the store failed): the log has the record, and the thread and the alert say
    // what was done all the same.
    await auditRun(ctx, state, opts.action, run).catch(() => undefined);
    await auditInThread(ctx, latest, opts.threadText(run));
    await opts.reported?.(run);
  });
  const { cutShort } = opts;
  if (!cutShort) return tracked;
  return tracked.catch(async (err: unknown) => {
    cutShort((err as Error).message);
    if (released) return;
    for (const key of opts.locks) await ctx.store.releaseClaim(key).catch(() => {});
  });
}

/** Records the audit of a finished run (Revoke, broad removal, Undo), which is also logged. */
async function auditRun(
  ctx: SlackContext,
  state: SlackAlertState,
  action: string,
  run: RunAt<RunField>,
): Promise<void> {
  const d = state.alert.detection;
  await recordAudit(
    ctx.store,
    {
      actor: run.by,
      action,
      alertId: state.alert.id,
      appId: d.appId,
      ip: d.sourceIp,
      result: run.status === 'failed' ? 'failed' : run.mode === 'dry-run' ? 'dry-run' : 'ok',
      detail: {
        mode: run.mode,
        // The record's own time is when it was stored, after the run: these say when it ran.
        startedAt: run.at,
        finishedAt: run.finishedAt,
        steps: run.result?.steps ?? [],
        error: run.error,
      },
      ref: alertRef(state),
    },
    ctx.audit,
  );
}

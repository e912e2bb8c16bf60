import { hash, randomUUID } from 'node:crypto';
import { loadAlertState, type SlackAlertState, type ThreadLine, updateAlertState } from './alert-state.ts';
import type { SlackContext } from './context.ts';
import { certainlyNotDone, isTransient, SlackDeliveryError } from './delivery-queue.ts';
import { GONE } from './messenger.ts';

/**
 * The store set of alerts whose message or thread is behind their state: a `chat.update` or an
 * audit line in the thread that Slack refused or never answered. `sweepFollowUps` catches up.
 */
export const FOLLOW_UPS = 'slack-follow-ups';

/** Lines kept for one alert's thread while Slack cannot take them; older ones go first. */
const PENDING_LINES_KEPT = 50;

type Ctx = Pick<SlackContext, 'store' | 'logger' | 'messenger'>;

async function note(ctx: Ctx, alertId: string): Promise<void> {
  try {
    await ctx.store.addMembers(FOLLOW_UPS, [alertId]);
  } catch (err) {
    ctx.logger.error({ alertId, err: (err as Error).message }, 'cannot note the alert for Slack to catch up');
  }
}

/**
 * Shows the alert's current state in its message. When Slack fails, the alert is noted and
 * `sweepFollowUps` updates the message later, from the state as it is then. Never throws.
 */
export async function showAlert(ctx: Ctx, state: SlackAlertState): Promise<void> {
  try {
    await ctx.messenger.updateAlert(state);
  } catch {
    // The messenger logged why.
    await note(ctx, state.alert.id);
  }
}

/**
 * Posts an audit line in the alert's thread, after the lines still waiting for Slack (so that the
 * thread keeps their order). When Slack fails, the line is kept in the alert's state and
 * `sweepFollowUps` posts it later. Never throws.
 */
export async function auditInThread(ctx: Ctx, state: SlackAlertState, text: string): Promise<void> {
  const alertId = state.alert.id;
  const line: ThreadLine = { text, id: randomUUID() };
  if (!state.pendingThread?.length) {
    try {
      await ctx.messenger.postThread(state, line);
      return;
    } catch (err) {
      if (err instanceof SlackDeliveryError && GONE.has(err.code)) {
        threadGone(ctx, alertId, err);
        return;
      }
      if (mayHaveGone(err)) line.uncertainSince = Date.now();
    }
  }
  try {
    const saved = await updateAlertState(ctx.store, alertId, (s) => {
      s.pendingThread = [...(s.pendingThread ?? []), line].slice(-PENDING_LINES_KEPT);
    });
    if (saved) await note(ctx, alertId);
    else ctx.logger.error({ alertId }, 'the alert is no longer known: its thread line is dropped');
  } catch (err) {
    ctx.logger.error({ alertId, err: (err as Error).message }, 'cannot keep the thread line to send again');
  }
}

/** How long one process holds an alert while it catches it up (other replicas leave it alone). */
const CATCH_UP_LEASE_MS = 60_000;

/**
 * Catches up every noted alert: updates its message from its current state, then posts the
 * thread lines it keeps, in order, dropping each once posted. A message deleted in Slack drops
 * them all. A failure that says Slack is down or overloaded (no answer, a 5xx, rate limits) ends
 * the pass, as every alert would fail alike; any other failure (one message Slack refuses, a
 * missing scope) moves on to the next alert, which keeps its place for the next pass. Each alert
 * is caught up under a lease, so that two passes (here or on another replica) never post its
 * lines twice. Returns the ids of the alerts caught up.
 */
export async function sweepFollowUps(ctx: Ctx): Promise<string[]> {
  const done: string[] = [];
  for (const alertId of await ctx.store.members(FOLLOW_UPS)) {
    const lease = `slack-follow-up-lease:${alertId}`;
    if (!(await ctx.store.claim(lease, CATCH_UP_LEASE_MS))) continue;
    try {
      const state = await loadAlertState(ctx.store, alertId);
      if (state) await catchUp(ctx, state);
    } catch (err) {
      if (err instanceof SlackDeliveryError && !isTransient(err)) continue;
      return done;
    } finally {
      await ctx.store.releaseClaim(lease);
    }
    await ctx.store.removeMembers(FOLLOW_UPS, [alertId]);
    // A line kept while this pass ran notes the alert again.
    if ((await loadAlertState(ctx.store, alertId))?.pendingThread?.length) await note(ctx, alertId);
    done.push(alertId);
  }
  return done;
}

/**
 * Says that an alert's thread lines are dropped: its message was deleted in Slack. Once per
 * message: a line for a message the log already called gone is dropped at debug.
 */
function threadGone(ctx: Ctx, alertId: string, err: SlackDeliveryError): void {
  (err.goneBefore ? ctx.logger.debug : ctx.logger.warn).call(
    ctx.logger,
    { alertId, code: err.code },
    "the alert's Slack message is gone (deleted): its thread lines are dropped; its audit records are kept",
  );
}

/** A failed post that Slack may have taken all the same (no clear answer). */
const mayHaveGone = (err: unknown): boolean => !(err instanceof SlackDeliveryError && certainlyNotDone(err));

/** The kept line that is `line`: by its id, or by its text when it has none. */
const sameLine = (kept: ThreadLine, line: ThreadLine): boolean =>
  line.id ? kept.id === line.id : kept.id === '' && kept.text === line.text;

/** The alert's state as its message shows it: without its thread's waiting lines and this mark. */
function shownState(state: SlackAlertState): string {
  const { pendingThread: _lines, caughtUp: _shown, ...shown } = state;
  return hash('sha256', JSON.stringify(shown), 'base64url');
}

async function catchUp(ctx: Ctx, state: SlackAlertState): Promise<void> {
  const alertId = state.alert.id;
  // Once per state: a line still settling keeps the alert noted, and each pass (of every replica)
  // would send the same update again.
  const shown = shownState(state);
  if (state.caughtUp !== shown) {
    await ctx.messenger.updateAlert(state);
    await updateAlertState(ctx.store, alertId, (s) => {
      s.caughtUp = shown;
    });
  }
  for (const line of state.pendingThread ?? []) {
    let gone = false;
    let posting = false;
    try {
      // A line whose earlier post got no clear answer is looked for first: Slack may have it.
      const there = line.uncertainSince !== undefined && (await ctx.messenger.findThreadLine(state, line));
      // Too early to tell: this line and those after it (their order) wait for a later pass.
      if (there === 'later') return;
      posting = true;
      if (!there) await ctx.messenger.postThread(state, line);
    } catch (err) {
      if (!(err instanceof SlackDeliveryError && GONE.has(err.code))) {
        if (posting && mayHaveGone(err)) {
          // This post may have gone out too: searched for, once Slack is surely done with it,
          // before the next.
          await updateAlertState(ctx.store, alertId, (s) => {
            const at = s.pendingThread?.findIndex((k) => sameLine(k, line)) ?? -1;
            if (at >= 0) s.pendingThread![at] = { ...line, uncertainSince: Date.now() };
          });
        }
        throw err;
      }
      gone = true;
      threadGone(ctx, alertId, err);
    }
    await updateAlertState(ctx.store, alertId, (s) => {
      if (gone) delete s.pendingThread;
      const at = s.pendingThread?.findIndex((k) => sameLine(k, line)) ?? -1;
      if (at >= 0) s.pendingThread!.splice(at, 1);
      if (s.pendingThread?.length === 0) delete s.pendingThread;
    });
    if (gone) return;
  }
}

import { randomUUID } from 'node:crypto';
import { samePrincipal } from '../../core/remediation-plan.ts';
import {
  ALERT_STATE_TTL_MS,
  loadAlertState,
  markedElsewhereKey,
  type RevokedElsewhere,
  type RevokeRun,
  revokeInForce,
  type SlackAlertState,
  updateAlertState,
} from '../alert-state.ts';
import type { SlackContext } from '../context.ts';
import { auditInThread, showAlert } from '../follow-ups.ts';

/** The most alerts one Revoke marks (each is a store update and a message update). */
export const MARK_ELSEWHERE_AT_MOST = 200;

/**
 * The least time between two of these message updates: under Slack's about 50 `chat.update` a
 * minute (Tier 3), so that 200 of them never hold back the channel's new alerts with a 429.
 */
const UPDATE_GAP_MS = 1300;

/** When this process last let one of these message updates through (monotonic). */
let lastUpdate = Number.NEGATIVE_INFINITY;

/**
 * Waits until `UPDATE_GAP_MS` have passed since the last update this process let through: one
 * pace for every marking and clearing at once (two Revokes of two identities, a Revoke and an
 * Undo), since Slack's limit is the workspace's, not one marking's.
 */
async function paced(): Promise<void> {
  for (;;) {
    const wait = lastUpdate + UPDATE_GAP_MS - performance.now();
    if (wait <= 0) break;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  lastUpdate = performance.now();
}

/**
 * Shows the alert once its turn comes (`paced`), as it is then: a repeat's count or a click
 * meanwhile is not overwritten by the state read before the wait.
 */
async function showAfterPace(ctx: SlackContext, state: SlackAlertState): Promise<void> {
  await paced();
  await showAlert(ctx, (await loadAlertState(ctx.store, state.alert.id)) ?? state);
}

/**
 * The most alerts read to find those of the principal: a client appid that many users share (the
 * Azure CLI's) may name thousands, most of them other users'.
 */
const READ_AT_MOST = 1000;

/** The alerts of the identity's pairs in the history window, most recent first, but `except`, each once. */
async function identityAlerts(ctx: SlackContext, appId: string, except: string): Promise<string[]> {
  const { entries } = await ctx.history.readIdentity(appId);
  const ids = new Set<string>();
  for (const { pair } of entries) if (pair.alertId && pair.alertId !== except) ids.add(pair.alertId);
  return [...ids];
}

/** Alerts whose marks on their principal's other alerts are to be brought in line with their Revoke. */
export const MARKS_PENDING = 'revoked-elsewhere-pending';
/** Held by the process that brings one alert's marks in line. */
export const marksLockKey = (alertId: string): string => `revoked-elsewhere-lock:${alertId}`;
/** The latest request for one alert's marks: a pass that began before it runs again. */
const marksRequestKey = (alertId: string): string => `revoked-elsewhere-request:${alertId}`;
/**
 * How long a process holds an alert's marks: longer than a pass lasts (200 updates at 1.3 s). A
 * stop gives it back at once; after a crash, the sweep takes the work up once it has lapsed.
 */
const MARKS_LOCK_MS = 8 * 60_000;
/** The most passes of one call: the Revoke and its Undo changing back and forth meanwhile. */
const MAX_PASSES = 5;

/**
 * The marks work of this process: one sync at a time per alert (a request meanwhile runs it again
 * once it ends), none after a stop, which waits a little for those running.
 */
export class MarksWork {
  readonly #running = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();
  #closed = false;

  /** Runs `work` for `alertId` in the background, or once more after the one running. */
  start(alertId: string, work: () => Promise<unknown>): void {
    if (this.#closed) return;
    if (this.#running.has(alertId)) {
      this.#again.add(alertId);
      return;
    }
    const run: Promise<void> = work()
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        this.#running.delete(alertId);
        if (this.#again.delete(alertId)) this.start(alertId, work);
      });
    this.#running.set(alertId, run);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The service stops: passes end after their current step; what is left stays pending. */
  async close(waitMs: number): Promise<void> {
    this.#closed = true;
    this.#again.clear();
    const all = Promise.all(this.#running.values());
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
  }

  /** The Slack side starts (again). */
  open(): void {
    this.#closed = false;
  }
}

/**
 * Asks that the marks of `alertIds` on their principals' other alerts be brought in line with
 * their Revokes (after a live Revoke ended done, or a live Undo), and starts that in the
 * background. The request is stored first: a pass that a stop or a crash cuts short is taken up
 * again by the sweep (`resumeMarks`), here or on another replica. Never throws (failures are logged).
 */
export async function requestMarks(ctx: SlackContext, alertIds: readonly string[]): Promise<void> {
  try {
    for (const id of alertIds) await ctx.store.set(marksRequestKey(id), randomUUID(), ALERT_STATE_TTL_MS);
    await ctx.store.addMembers(MARKS_PENDING, alertIds);
  } catch (err) {
    ctx.logger.warn(
      { alertIds, err: (err as Error).message },
      'cannot note that the other alerts of this identity are to be marked; check the store (STORE_URL): they may not say whether the identity is revoked',
    );
  }
  for (const id of alertIds) ctx.marks?.start(id, () => syncMarks(ctx, id));
}

/** Takes up the marks that a stopped or crashed process left pending (at start, then each sweep). */
export async function resumeMarks(ctx: SlackContext): Promise<void> {
  for (const id of await ctx.store.members(MARKS_PENDING)) ctx.marks?.start(id, () => syncMarks(ctx, id));
}

/** How one pass ended: in line, stopped by a stop, or the alert's Revoke changed meanwhile. */
type PassEnd = 'done' | 'stopped' | 'changed';

/**
 * Brings alert A's marks on its principal's other alerts in line with A's Revoke: while a live
 * Revoke of A stands, they say "Identity revoked" through A (`markPass`); otherwise no alert says
 * so through A (`clearPass`). A pass that finds A changed meanwhile (an Undo, a new Revoke) runs
 * again, as does one that a newer request overtook. `'busy'` when another process holds A's marks
 * (it runs again for a request it missed, or the sweep does, once the lock lapses). Never throws.
 */
export async function syncMarks(ctx: SlackContext, alertId: string): Promise<PassEnd | 'busy'> {
  const { store, logger } = ctx;
  try {
    if (!(await store.claim(marksLockKey(alertId), MARKS_LOCK_MS))) return 'busy';
  } catch (err) {
    logger.warn(
      { alertId, err: (err as Error).message },
      'cannot take up the marks of the other alerts of this identity; retried at the next sweep',
    );
    return 'busy';
  }
  try {
    for (let pass = 0; pass < MAX_PASSES; pass++) {
      const request = await store.get<string>(marksRequestKey(alertId));
      const state = await loadAlertState(store, alertId);
      const end: PassEnd = !state
        ? 'done'
        : state.revoke && revokeInForce(state)
          ? await markPass(ctx, state, state.revoke)
          : await clearPass(ctx, state);
      if (end === 'stopped') return end;
      if (end === 'changed') continue;
      // In line for every request up to now: no longer pending, unless one came meanwhile.
      await store.removeMembers(MARKS_PENDING, [alertId]);
      if ((await store.get<string>(marksRequestKey(alertId))) === request) return 'done';
      await store.addMembers(MARKS_PENDING, [alertId]);
    }
    return 'changed';
  } catch (err) {
    logger.warn(
      { alertId, err: (err as Error).message },
      'could not bring the marks of the other alerts of this identity in line with its Revoke; retried at the next sweep. Check the store (STORE_URL) and Slack: they may not say whether the identity is revoked',
    );
    return 'changed';
  } finally {
    await store.releaseClaim(marksLockKey(alertId)).catch(() => undefined);
  }
}

/** The round a mark belongs to: the Revoke run's start (marks from before it was kept carry none). */
const sameRound = (mark: RevokedElsewhere | undefined, alertId: string, round: number): boolean =>
  mark?.alertId === alertId && (mark.of === undefined || mark.of === round);

/**
 * A's live Revoke `run` stands: A's own mark gives way, and the other alerts of the same principal
 * (`samePrincipal`: for a user, the same object id too) that the history names are marked revoked
 * through A, each under its lock, and shown again, one at a time (`UPDATE_GAP_MS`); A's thread
 * says how many, once a round. Alerts whose own Revoke is in force, and those marked for this
 * round already, are left. The ids go into A's list (`markedElsewhereKey`) before their marks, so
 * that a clearing finds each. At most `MARK_ELSEWHERE_AT_MOST` alerts.
 */
async function markPass(ctx: SlackContext, state: SlackAlertState, run: RevokeRun): Promise<PassEnd> {
  const { store, logger } = ctx;
  const alertId = state.alert.id;
  const d = state.alert.detection;
  if (state.revokedElsewhere) {
    await updateAlertState(store, alertId, (s) => {
      delete s.revokedElsewhere;
    });
  }
  const key = markedElsewhereKey(alertId);
  const mark: RevokedElsewhere = {
    alertId,
    channel: state.channel,
    ...(state.ts ? { ts: state.ts } : {}),
    by: run.by,
    at: run.finishedAt ?? ctx.now(),
    of: run.at,
  };
  const all = await identityAlerts(ctx, d.appId, alertId);
  const candidates = all.slice(0, READ_AT_MOST);
  if (all.length > candidates.length) {
    logger.warn(
      { alertId, alerts: all.length, read: candidates.length },
      `revoke: the identity has ${all.length} other alerts in the window; only the ${READ_AT_MOST} most recent are looked at to mark those of the same principal`,
    );
  }
  /** Whether this round of A's Revoke still stands: else the pass ends, to run again. */
  const stands = async (): Promise<boolean> => {
    const now = await loadAlertState(store, alertId);
    return now !== undefined && revokeInForce(now) && now.revoke?.at === run.at;
  };
  let marked = 0;
  let shown = 0;
  let left = 0;
  for (const id of candidates) {
    if (ctx.marks?.closed) return 'stopped';
    // Read first without the lock: another principal's alerts (users of a shared appid) are
    // neither locked nor written.
    const seen = await loadAlertState(store, id);
    if (!seen || !samePrincipal(seen.alert.detection, d) || revokeInForce(seen)) continue;
    if (sameRound(seen.revokedElsewhere, alertId, run.at)) {
      marked++;
      continue;
    }
    if (marked >= MARK_ELSEWHERE_AT_MOST) {
      left++;
      continue;
    }
    if (!(await stands())) return 'changed';
    try {
      // Read again before each write: another write of the list is kept.
      const listed = (await store.get<string[]>(key)) ?? [];
      if (!listed.includes(id)) await store.set(key, [...listed, id], ALERT_STATE_TTL_MS);
      let changed = false;
      const other = await updateAlertState(store, id, (s) => {
        if (revokeInForce(s) || sameRound(s.revokedElsewhere, alertId, run.at)) return;
        s.revokedElsewhere = mark;
        changed = true;
      });
      if (!other || !changed) continue;
      marked++;
      await showAfterPace(ctx, other);
      shown++;
    } catch (err) {
      logger.warn(
        { alertId, other: id, err: (err as Error).message },
        'revoke: could not mark an alert of the same identity revoked through this one; check the store (STORE_URL) and Slack: it may still look open',
      );
    }
  }
  if (!(await stands())) return 'changed';
  // One line in A's thread rather than one in each (200 thread posts would queue ahead of the
  // channel's new alerts), once a round.
  if (marked > 0) {
    await toldOnce(ctx, alertId, `mark:${run.at}`, (s) =>
      auditInThread(
        ctx,
        s,
        `:no_entry: Audit: ${marked} other alert${marked === 1 ? '' : 's'} of the same principal now say${marked === 1 ? 's' : ''} "Identity revoked" through this one.`,
      ),
    );
  }
  if (left > 0) {
    logger.warn(
      { alertId, marked, left },
      `revoke: marked the first ${MARK_ELSEWHERE_AT_MOST} alerts of the same identity revoked through this one; ${left} more still look open (their messages name the identity, which is revoked)`,
    );
  }
  if (shown > 0)
    logger.info(
      { alertId, shown },
      'revoke: the other alerts of the same principal say revoked through this one',
    );
  return 'done';
}

/**
 * A has no live Revoke standing (undone, or its Undo restored it through another alert): each
 * alert of A's list whose mark still names A is cleared and shown again, one at a time
 * (`UPDATE_GAP_MS`); A's thread says how many, once per Undo. The list goes once all are cleared.
 */
async function clearPass(ctx: SlackContext, state: SlackAlertState): Promise<PassEnd> {
  const { store } = ctx;
  const alertId = state.alert.id;
  const key = markedElsewhereKey(alertId);
  const listed = (await store.get<string[]>(key)) ?? [];
  const stillDown = async () => {
    const now = await loadAlertState(store, alertId);
    return !now || !revokeInForce(now);
  };
  let shown = 0;
  for (const id of listed) {
    if (ctx.marks?.closed) return 'stopped';
    if (!(await stillDown())) return 'changed';
    let changed = false;
    const other = await updateAlertState(store, id, (s) => {
      if (s.revokedElsewhere?.alertId !== alertId) return;
      delete s.revokedElsewhere;
      changed = true;
    });
    if (!other || !changed) continue;
    await showAfterPace(ctx, other);
    shown++;
  }
  if (!(await stillDown())) return 'changed';
  if (listed.length > 0) await store.delete(key);
  const undo = state.undo;
  if (shown > 0 && undo) {
    const through = undo.elsewhere ? ` (through alert \`${undo.elsewhere}\`)` : '';
    await toldOnce(ctx, alertId, `clear:${undo.at}`, (s) =>
      auditInThread(
        ctx,
        s,
        `:leftwards_arrow_with_hook: Audit: <@${undo.by}>'s Undo${through} took "Identity revoked" off ${shown} other alert${shown === 1 ? '' : 's'} of the same principal.`,
      ),
    );
  }
  return 'done';
}

/** Says `say` in A's thread once for `what` (a round's marking, an Undo's clearing). */
async function toldOnce(
  ctx: SlackContext,
  alertId: string,
  what: string,
  say: (state: SlackAlertState) => Promise<void>,
): Promise<void> {
  let first = false;
  const state = await updateAlertState(ctx.store, alertId, (s) => {
    if (s.marksTold === what) return;
    s.marksTold = what;
    first = true;
  });
  if (state && first) await say(state);
}

import { randomUUID } from 'node:crypto';
import { samePrincipal } from '../../core/remediation-plan.ts';
import { waitAtMost } from '../../timeout.ts';
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
import { auditInThread, FOLLOW_UPS } from '../follow-ups.ts';

/** The most alerts one Revoke marks (each is a store update and a message update). */
const MARK_ELSEWHERE_AT_MOST = 200;

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
 * Shows a marked or cleared alert as it is now. Its write was preceded by a note for the Slack
 * catch-up (`FOLLOW_UPS`), so that a crash or a stop between the two leaves the message to the
 * sweep rather than wrong for good; the note goes once the message is shown. While Slack slows
 * the updates down (429), it does not wait: the sweep shows it later.
 */
async function showMarked(ctx: SlackContext, alertId: string): Promise<boolean> {
  const state = await loadAlertState(ctx.store, alertId);
  if (!state) return false;
  try {
    await ctx.messenger.updateAlert(state, { refresh: true });
  } catch {
    // The messenger logged why; the note stays, for the sweep.
    return false;
  }
  await ctx.store.removeMembers(FOLLOW_UPS, [alertId]).catch(() => undefined);
  return true;
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
 * How long a process holds an alert's marks. A call works on them for at most `WORK_BUDGET_MS`
 * (then gives them back and takes them again, or another process does), so that the claim never
 * lapses under work in progress. A stop gives it back; after a crash, the sweep takes the work up
 * once it has lapsed.
 */
const MARKS_LOCK_MS = 8 * 60_000;
const WORK_BUDGET_MS = 4 * 60_000;
/** The most passes of one call: the Revoke and its Undo changing back and forth meanwhile. */
const MAX_PASSES = 5;

/** How a call on an alert's marks ended (see `syncMarks`). */
export type MarksEnd = 'done' | 'stopped' | 'changed' | 'busy' | 'later';

/**
 * The marks work of this process: one call at a time per alert (a request meanwhile runs it again
 * once it ends, as does a call that used up its time), none after a stop. A stop waits a little
 * for the calls running, then gives back the claims of those still running, so that the next
 * start need not wait for them to lapse.
 */
export class MarksWork {
  readonly #running = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();
  readonly #release: ((alertId: string) => Promise<void>) | undefined;
  #closed = false;

  constructor(release?: (alertId: string) => Promise<void>) {
    this.#release = release;
  }

  /** Runs `work` for `alertId` in the background, or once more after the one running. */
  start(alertId: string, work: () => Promise<MarksEnd>): void {
    if (this.#closed) return;
    if (this.#running.has(alertId)) {
      this.#again.add(alertId);
      return;
    }
    const run: Promise<void> = work()
      .then(
        (end) => {
          if (end === 'later') this.#again.add(alertId);
        },
        () => undefined,
      )
      .finally(() => {
        this.#running.delete(alertId);
        if (this.#again.delete(alertId)) this.start(alertId, work);
      });
    this.#running.set(alertId, run);
  }

  /** `start`, unless a call on `alertId` runs already (the sweep's: that call sees every request). */
  resume(alertId: string, work: () => Promise<MarksEnd>): void {
    if (!this.#running.has(alertId)) this.start(alertId, work);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The service stops: calls end after their current step; what is left stays pending. */
  async close(waitMs: number): Promise<void> {
    this.#closed = true;
    this.#again.clear();
    await waitAtMost(Promise.all(this.#running.values()), waitMs);
    // Still at a step (Slack slow to answer): their claims go now, before the store closes.
    for (const alertId of this.#running.keys()) await this.#release?.(alertId).catch(() => undefined);
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
  for (const id of await ctx.store.members(MARKS_PENDING)) ctx.marks?.resume(id, () => syncMarks(ctx, id));
}

/** How one pass ended: in line, stopped by a stop, its time used up, or the alert's Revoke changed meanwhile. */
type PassEnd = 'done' | 'stopped' | 'later' | 'changed';

/** What a pass checks between two alerts: `'stopped'` or `'later'` when it should end there. */
type Between = () => 'stopped' | 'later' | undefined;

/**
 * Brings alert A's marks on its principal's other alerts in line with A's Revoke: while a live
 * Revoke of A stands, they say "Identity revoked" through A (`markPass`); otherwise no alert says
 * so through A (`clearPass`). A pass that finds A changed meanwhile (an Undo, a new Revoke) runs
 * again, as does one that a newer request overtook. `'busy'` when another process holds A's marks
 * (it runs again for a request it missed, or the sweep does, once the lock lapses); `'later'` when
 * it used up its time (`WORK_BUDGET_MS`), the work left pending. Never throws.
 */
export async function syncMarks(ctx: SlackContext, alertId: string): Promise<MarksEnd> {
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
  const until = performance.now() + WORK_BUDGET_MS;
  const between: Between = () =>
    ctx.marks?.closed ? 'stopped' : performance.now() > until ? 'later' : undefined;
  try {
    for (let pass = 0; pass < MAX_PASSES; pass++) {
      const request = await store.get<string>(marksRequestKey(alertId));
      const state = await loadAlertState(store, alertId);
      const end: PassEnd = !state
        ? 'done'
        : state.revoke && revokeInForce(state)
          ? await markPass(ctx, state, state.revoke, between)
          : await clearPass(ctx, state, between);
      if (end === 'stopped' || end === 'later') return end;
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
async function markPass(
  ctx: SlackContext,
  state: SlackAlertState,
  run: RevokeRun,
  between: Between,
): Promise<PassEnd> {
  const { store, logger } = ctx;
  const alertId = state.alert.id;
  const d = state.alert.detection;
  if (state.revokedElsewhere) {
    await updateAlertState(store, alertId, (s) => {
      delete s.revokedElsewhere;
    });
  }
  const key = markedElsewhereKey(alertId);
  // Read once: this call alone writes it while it holds A's lock.
  const listed = (await store.get<string[]>(key)) ?? [];
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
    const halt = between();
    if (halt) return halt;
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
    // Its turn first (`paced`), so that the mark is shown as soon as it is made.
    await paced();
    const then = between();
    if (then) return then;
    if (!(await stands())) return 'changed';
    try {
      if (!listed.includes(id)) {
        listed.push(id);
        await store.set(key, listed, ALERT_STATE_TTL_MS);
      }
      await store.addMembers(FOLLOW_UPS, [id]);
      let changed = false;
      const other = await updateAlertState(store, id, (s) => {
        if (revokeInForce(s) || sameRound(s.revokedElsewhere, alertId, run.at)) return;
        s.revokedElsewhere = mark;
        changed = true;
      });
      if (!other || !changed) continue;
      marked++;
      if (await showMarked(ctx, id)) shown++;
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
async function clearPass(ctx: SlackContext, state: SlackAlertState, between: Between): Promise<PassEnd> {
  const { store } = ctx;
  const alertId = state.alert.id;
  const key = markedElsewhereKey(alertId);
  const listed = (await store.get<string[]>(key)) ?? [];
  const stillDown = async () => {
    const now = await loadAlertState(store, alertId);
    return !now || !revokeInForce(now);
  };
  // Those cleared now, and those a pass cut short by a stop cleared before (the list goes only
  // once all are cleared): the thread's count is of them all.
  let cleared = 0;
  for (const id of listed) {
    const halt = between();
    if (halt) return halt;
    const seen = await loadAlertState(store, id);
    if (!seen) continue;
    if (seen.revokedElsewhere?.alertId !== alertId) {
      cleared++;
      continue;
    }
    await paced();
    const then = between();
    if (then) return then;
    if (!(await stillDown())) return 'changed';
    await store.addMembers(FOLLOW_UPS, [id]);
    let changed = false;
    const other = await updateAlertState(store, id, (s) => {
      if (s.revokedElsewhere?.alertId !== alertId) return;
      delete s.revokedElsewhere;
      changed = true;
    });
    if (!other || !changed) continue;
    cleared++;
    await showMarked(ctx, id);
  }
  if (!(await stillDown())) return 'changed';
  if (listed.length > 0) await store.delete(key);
  const undo = state.undo;
  if (cleared > 0 && undo) {
    const through = undo.elsewhere ? ` (through alert \`${undo.elsewhere}\`)` : '';
    await toldOnce(ctx, alertId, `clear:${undo.at}`, (s) =>
      auditInThread(
        ctx,
        s,
        `:leftwards_arrow_with_hook: Audit: <@${undo.by}>'s Undo${through} took "Identity revoked" off ${cleared} other alert${cleared === 1 ? '' : 's'} of the same principal.`,
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

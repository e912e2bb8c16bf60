import { samePrincipal } from '../../core/remediation-plan.ts';
import {
  ALERT_STATE_TTL_MS,
  loadAlertState,
  markedElsewhereKey,
  type RevokedElsewhere,
  type RevokeRun,
  revokeInForce,
  type SlackAlertState,
  type UndoRun,
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
function pacer(): () => Promise<void> {
  return async () => {
    for (;;) {
      const wait = lastUpdate + UPDATE_GAP_MS - performance.now();
      if (wait <= 0) break;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    lastUpdate = performance.now();
  };
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

/**
 * After a live Revoke on alert A ended done: A's own Revoke now stands (a mark from another
 * alert gives way), and the other alerts of the same principal (`samePrincipal`: for a user, the
 * same object id too) that the history names are marked revoked through A, each under its lock,
 * and shown again, one at a time (`UPDATE_GAP_MS`); A's thread says how many. Alerts whose own
 * Revoke is in force, and those A marked already, are left. The ids go into A's list
 * (`markedElsewhereKey`) before their marks, so that A's Undo finds each. At most `MARK_ELSEWHERE_AT_MOST` alerts; never throws (failures are logged).
 */
export async function markRevokedElsewhere(
  ctx: SlackContext,
  state: SlackAlertState,
  run: RevokeRun,
): Promise<void> {
  const { store, logger } = ctx;
  const alertId = state.alert.id;
  const d = state.alert.detection;
  const where = 'check the store (STORE_URL) and Slack; the other alerts may still look open';
  try {
    if ((await loadAlertState(store, alertId))?.revokedElsewhere) {
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
    };
    const all = await identityAlerts(ctx, d.appId, alertId);
    const candidates = all.slice(0, READ_AT_MOST);
    if (all.length > candidates.length) {
      logger.warn(
        { alertId, alerts: all.length, read: candidates.length },
        `revoke: the identity has ${all.length} other alerts in the window; only the ${READ_AT_MOST} most recent are looked at to mark those of the same principal`,
      );
    }
    // A's Undo may run while this loop does (its button shows once the Revoke has ended): each mark
    // is made while this Revoke stands, and taken back here once an Undo is found. Either that
    // Undo's clearing, which reads A's list after it marked A undone, finds the mark, or this
    // loop's check after the mark finds the Undo.
    const stands = async (): Promise<boolean> => {
      const now = await loadAlertState(store, alertId);
      return now !== undefined && revokeInForce(now) && now.revoke?.at === run.at;
    };
    let marked = 0;
    let shown = 0;
    let left = 0;
    const paced = pacer();
    for (const id of candidates) {
      // Read first without the lock: another principal's alerts (users of a shared appid) are
      // neither locked nor written.
      const seen = await loadAlertState(store, id);
      if (!seen || !samePrincipal(seen.alert.detection, d) || revokeInForce(seen)) continue;
      if (seen.revokedElsewhere?.alertId === alertId) continue;
      if (marked >= MARK_ELSEWHERE_AT_MOST) {
        left++;
        continue;
      }
      if (!(await stands())) break;
      marked++;
      try {
        // Read again before each write: another write of the list (a repeat of this Revoke on
        // another replica) is kept.
        const listed = (await store.get<string[]>(key)) ?? [];
        if (!listed.includes(id)) await store.set(key, [...listed, id], ALERT_STATE_TTL_MS);
        let changed = false;
        const other = await updateAlertState(store, id, (s) => {
          if (revokeInForce(s) || s.revokedElsewhere?.alertId === alertId) return;
          s.revokedElsewhere = mark;
          changed = true;
        });
        if (!other || !changed) continue;
        if (!(await stands())) {
          // Undone meanwhile: this mark is taken back (the Undo's own clearing may have missed it).
          await updateAlertState(store, id, (s) => {
            if (s.revokedElsewhere?.alertId === alertId && s.revokedElsewhere.at === mark.at) {
              delete s.revokedElsewhere;
            }
          });
          break;
        }
        await paced();
        await showAlert(ctx, other);
        shown++;
      } catch (err) {
        logger.warn(
          { alertId, other: id, err: (err as Error).message },
          `revoke: could not mark an alert of the same identity revoked through this one; ${where}`,
        );
      }
    }
    // One line in A's thread rather than one in each: 200 thread posts would queue ahead of the
    // channel's new alerts.
    if (shown > 0) {
      await auditInThread(
        ctx,
        state,
        `:no_entry: Audit: ${shown} other alert${shown === 1 ? '' : 's'} of the same principal now say${shown === 1 ? 's' : ''} "Identity revoked" through this one.`,
      );
    }
    if (left > 0) {
      logger.warn(
        { alertId, marked, left },
        `revoke: marked the first ${MARK_ELSEWHERE_AT_MOST} alerts of the same identity revoked through this one; ${left} more still look open (their messages name the identity, which is revoked)`,
      );
    }
  } catch (err) {
    logger.warn(
      { alertId, err: (err as Error).message },
      `revoke: could not mark the other alerts of this identity revoked through this one; ${where}`,
    );
  }
}

/**
 * After a live Undo on alert A: the alerts that A's Revoke marked, and those that the Revoke of
 * each alert in `restored` marked (their Revoke was undone through A too), no longer tell the
 * truth. Each mark that still names its alert is cleared and the alert shown again, one at a
 * time (`UPDATE_GAP_MS`); A's thread says how many. The lists go. Never throws (failures are logged).
 */
export async function clearRevokedElsewhere(
  ctx: SlackContext,
  state: SlackAlertState,
  undo: UndoRun,
  restored: readonly string[],
): Promise<void> {
  const { store, logger } = ctx;
  const alertId = state.alert.id;
  const paced = pacer();
  let shown = 0;
  for (const source of [alertId, ...restored]) {
    try {
      const key = markedElsewhereKey(source);
      for (const id of (await store.get<string[]>(key)) ?? []) {
        let changed = false;
        const other = await updateAlertState(store, id, (s) => {
          if (s.revokedElsewhere?.alertId !== source) return;
          delete s.revokedElsewhere;
          changed = true;
        });
        if (!other || !changed) continue;
        await paced();
        await showAlert(ctx, other);
        shown++;
      }
      await store.delete(key);
    } catch (err) {
      logger.warn(
        { alertId, marksOf: source, err: (err as Error).message },
        'undo: could not clear the revoked-elsewhere marks of the other alerts of this identity; check the store (STORE_URL) and Slack: their messages may still say revoked',
      );
    }
  }
  if (shown > 0) {
    await auditInThread(
      ctx,
      state,
      `:leftwards_arrow_with_hook: Audit: <@${undo.by}>'s Undo took "Identity revoked" off ${shown} other alert${shown === 1 ? '' : 's'} of the same principal.`,
    ).catch((err: unknown) =>
      logger.warn(
        { alertId, err: (err as Error).message },
        'undo: could not say in the thread which alerts no longer say revoked',
      ),
    );
  }
}

import type { App } from '@slack/bolt';
import { appIdFromTyped, isAppIdText } from '../../core/app-id.ts';
import { callerKind } from '../../core/remediation-plan.ts';
import { valueWithin } from '../../timeout.ts';
import { loadAlertStates, revokedAlertsKey, revokeInForce } from '../alert-state.ts';
import { authorise, decide, type Respond } from '../authorise.ts';
import { buildHistoryPages, historyUsage, REVOKED_NOTES_MAX, type RevokedNote } from '../blocks/history.ts';
import { code } from '../blocks/text.ts';
import type { SlackContext } from '../context.ts';
import { COMMANDS } from '../ids.ts';

/** The optional second argument: the number of the IP to start at (1 = the most recent). */
const START = /^[1-9]\d{0,6}$/;

/** How long the reply may take to read before the command is answered and the list follows. */
const READ_BEFORE_ANSWER_MS = 2000;

/** The answer when the store fails. */
const STORE_SILENT =
  ':warning: Could not read the history right now (the store did not answer). Try again shortly.';

/** What asks for the usage help, in any letter case. */
const HELP = new Set(['help', '-h', '--help', '?']);

/**
 * How many of the identity's revoked alerts are read for the reply's Revoke line, in one read of
 * the store (the list holds the alerts whose live Revoke is in force, and is kept short: an Undo
 * takes its alerts off it, and this reading drops those whose state has expired).
 */
const REVOKED_READ_MAX = 1000;

/**
 * The identity's live Revokes in force, latest first, from the alerts they ran on (the list that
 * Undo goes through). Unread, they are left out: the history is answered all the same.
 */
export async function revokedNotes(ctx: SlackContext, appId: string): Promise<RevokedNote[]> {
  try {
    const key = revokedAlertsKey(appId);
    const all = await ctx.store.members(key);
    const ids = all.slice(0, REVOKED_READ_MAX);
    if (all.length > ids.length) {
      ctx.logger.warn(
        { appId, listed: all.length, read: ids.length },
        `/arc-history read ${ids.length} of the identity's ${all.length} revoked alerts`,
      );
    }
    const states = await loadAlertStates(ctx.store, ids);
    // Alerts whose state has expired (90 days) are gone for good: off the list.
    const gone = ids.filter((_, i) => states[i] === undefined);
    if (gone.length > 0) await ctx.store.removeMembers(key, gone).catch(() => undefined);
    const notes: RevokedNote[] = [];
    for (const [i, id] of ids.entries()) {
      const state = states[i];
      if (!state?.revoke || !revokeInForce(state)) continue;
      const d = state.alert.detection;
      notes.push({
        alertId: id,
        channel: state.channel,
        ...(state.ts ? { ts: state.ts } : {}),
        by: state.revoke.by,
        at: state.revoke.finishedAt ?? state.revoke.at,
        // The appid of a user is a client application's: say whom the Revoke was for.
        ...(callerKind(d) === 'user' ? { user: d.user?.upn ?? d.principalId ?? 'a user' } : {}),
      });
    }
    return notes.sort((a, b) => b.at - a.at).slice(0, REVOKED_NOTES_MAX);
  } catch (err) {
    ctx.logger.warn(
      { appId, err: (err as Error).message },
      "/arc-history could not read the identity's revoked alerts; the reply leaves them out (check the store)",
    );
    return [];
  }
}

/**
 * `/arc-history <appid> [n]`: a private reply listing every source IP of the identity in the
 * window (from the n-th on). The first message goes in the acknowledgement itself, so it is always
 * private and immediate; when the list needs more, the next messages follow through the command's
 * response_url, also private, in order (see `buildHistoryPages`).
 */
export function registerArcHistory(app: App, ctx: SlackContext): void {
  app.command(COMMANDS.history, async ({ ack, command, respond }) => {
    const windowMs = ctx.history.windowMs;
    // Slack sends `&`, `<` and `>` of the typed text escaped.
    const text = (command.text ?? '').replace(/&(amp|lt|gt);/g, (_, e: string) =>
      e === 'amp' ? '&' : e === 'lt' ? '<' : '>',
    );
    const [raw = '', startArg, ...extra] = text.trim().split(/\s+/);
    // Any GUID form (braces, no dashes, upper case, in the quotes or backticks it was copied
    // with) is shown and carried by the buttons as the history keeps it: the dashed lower-case GUID.
    const arg = appIdFromTyped(raw);
    if (arg === '' || HELP.has(arg.toLowerCase())) {
      await ack(historyUsage(windowMs));
      return;
    }
    // Who may read an identity's history (`SLACK_HISTORY`, see `decide`): anyone unless it is kept
    // to the alert channel or to responders. A refusal is private and audited, as a refused click
    // is; it shows nothing of the history.
    const asked = performance.now();
    const subject = { action: 'history' as const, ...(isAppIdText(arg) ? { appId: arg } : {}) };
    const refuse: Respond = ({ text }) => ack({ response_type: 'ephemeral', text });
    const place = { where: command.channel_id, home: ctx.alertChannel };
    if (!(await authorise(ctx, command.user_id, subject, refuse, { ...place, answerFirst: true }))) return;
    // Any identity ingest accepts (GUIDs, in practice); anything else gets a clear refusal.
    if (!isAppIdText(arg)) {
      await ack({
        response_type: 'ephemeral',
        text: `${code(arg, 80)} is not an application id. ${historyUsage(windowMs).text}`,
      });
      return;
    }
    if (startArg !== undefined && !START.test(startArg)) {
      await ack({
        response_type: 'ephemeral',
        text: `${code(startArg, 40)} is not the number of an IP to start at. ${historyUsage(windowMs).text}`,
      });
      return;
    }
    if (extra.length > 0) {
      await ack({
        response_type: 'ephemeral',
        text: `${code(extra.join(' '), 40)} is more than the command takes: an appid and the number of an IP to start at. ${historyUsage(windowMs).text}`,
      });
      return;
    }
    // Who read whose history, for the security team's own review (a log line, not an audit record:
    // a read changes nothing, and the answer must not wait for a store write).
    ctx.logger.info(
      { actor: command.user_id, appId: arg, channel: command.channel_id },
      `/arc-history of ${arg} read by ${command.user_id}`,
    );
    const reading = (async () => {
      const [{ entries, dormant }, revoked] = await Promise.all([
        ctx.history.readIdentity(arg),
        revokedNotes(ctx, arg),
      ]);
      // Remove buttons for whoever may remove allowlist entries (see `decide`).
      const canRemove =
        (dormant.length > 0 || entries.some((e) => e.allow)) &&
        (await decide(ctx, command.user_id, 'remove-allowlist', place)).ok;
      return buildHistoryPages({
        appId: arg,
        windowMs,
        entries,
        dormant,
        revoked,
        canRemove,
        start: startArg === undefined ? 0 : Number(startArg) - 1,
      });
    })().then(
      (pages) => ({ pages }),
      (err: unknown) => {
        ctx.logger.error({ err: (err as Error).message }, '/arc-history could not read the history');
        return { failed: STORE_SILENT };
      },
    );
    // Slack wants its answer within 3 s: a store slower than that gets the list through the
    // response_url instead (its 5 uses hold every page). A responder group's lookup for the
    // caller's right spends the same seconds.
    const early = await valueWithin(reading, READ_BEFORE_ANSWER_MS - (performance.now() - asked));
    if (early === undefined) {
      await ack({
        response_type: 'ephemeral',
        text: `Reading the history of ${code(arg, 80)}: the store is slow to answer, so the list follows here.`,
      });
    }
    const read = early ?? (await reading);
    if ('failed' in read) {
      if (early) await ack({ response_type: 'ephemeral', text: read.failed });
      else await respond({ response_type: 'ephemeral', text: read.failed }).catch(() => undefined);
      return;
    }
    const { pages } = read;
    // In the acknowledgement, the first page is always private and immediate.
    if (early) await ack(pages[0]);
    for (const [i, page] of pages.slice(early ? 1 : 0).entries()) {
      try {
        await respond(page);
      } catch (err) {
        ctx.logger.warn(
          { err: (err as Error).message, part: i + (early ? 2 : 1), parts: pages.length },
          'cannot send the rest of the /arc-history reply through the response_url',
        );
        return;
      }
    }
  });
}

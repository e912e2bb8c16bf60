import type { types } from '@slack/bolt';
import { dashGuid } from '../../core/azure-ids.ts';
import type { IdentityHistoryEntry } from '../../core/history.ts';
import type { AllowlistEntry } from '../../core/pair.ts';
import { ACTION_IDS, BLOCK_IDS, COMMANDS, numberedAction } from '../ids.ts';
import { blocksTextLength, LIMITS, TOTAL_TEXT_BUDGET } from './limits.ts';
import { elsewhereLink } from './run-text.ts';
import {
  clip,
  code,
  describeDuration,
  describePlace,
  esc,
  literal,
  mention,
  mrkdwn,
  slackDate,
} from './text.ts';

/**
 * How many messages one `/arc-history` answer may use: the command's own answer plus 4 follow-ups
 * through its response_url (Slack accepts 5 posts to a response_url within 30 minutes; one is
 * left for a "Remove allowlist" refresh).
 */
export const HISTORY_MAX_MESSAGES = 5;

/** Remove-allowlist buttons in one reply (the most recent allowlisted IPs first). */
export const HISTORY_MAX_BUTTONS = 10;

/** Room kept in each message for its head and its tail (both clipped to fit). */
const HEAD_MAX = 550;
const TAIL_MAX = 400;
/** Blocks besides the sections of lines: head, divider, allowlisted IPs not seen, buttons, their note, tail. */
const FIXED_BLOCKS = 6;

/** What `/arc-history` shows. */
export interface HistoryView {
  appId: string;
  windowMs: number;
  /** The identity's IPs in the window, most recent first (`History.listIdentity`). */
  entries: readonly IdentityHistoryEntry[];
  /** Whether the caller may remove allowlist entries: adds the buttons. */
  canRemove: boolean;
  /** Index (0-based) of the first IP to list: `/arc-history <appid> <n>` starts at IP n. */
  start?: number;
  /** Allowlist entries of IPs with no sighting in the window (`History.readIdentity`). */
  dormant?: readonly AllowlistEntry[];
  /** The identity's Revokes in force, from its alerts: said first, so a hand-over sees them. */
  revoked?: readonly RevokedNote[];
}

/** A live Revoke in force on one of the identity's alerts. */
export interface RevokedNote {
  alertId: string;
  channel: string;
  ts?: string;
  by: string;
  at: number;
  /** For a user caller, whom it revoked (the appid is then a client application's, shared). */
  user?: string;
}

/** At most this many Revokes are named in a reply. */
export const REVOKED_NOTES_MAX = 5;

/** The first reply's line that names the identity's Revokes in force; none when there are none. */
function revokedBlocks(view: HistoryView): types.KnownBlock[] {
  const notes = (view.revoked ?? []).slice(0, REVOKED_NOTES_MAX);
  if (notes.length === 0) return [];
  const lines = notes.map(
    (n) =>
      `:no_entry: *Revoked*${n.user ? ` for ${clip(literal(n.user), 200)}` : ''} through ${elsewhereLink(n)} by <@${n.by}> ${slackDate(n.at)}`,
  );
  return [{ type: 'context', elements: [mrkdwn(clip(lines.join('\n'), 2000))] }];
}

/** Lines for allowlisted IPs with no sighting in the window, in the first message. */
const DORMANT_LINES_MAX = 20;

/** A private (ephemeral) reply: text plus optional blocks. */
export interface EphemeralMessage {
  response_type: 'ephemeral';
  text: string;
  blocks?: types.KnownBlock[];
}

/**
 * The value of a remove-allowlist button: `<appid>|<ip>`, and `|<start>` when the reply started
 * further down the list. It is read from the right: an IP never holds `|` and is never all digits,
 * while an identity may hold `|`.
 */
export const removeAllowValue = (appId: string, ip: string, start = 0): string =>
  start > 0 ? `${appId}|${ip}|${start}` : `${appId}|${ip}`;

/** Parses a remove-allowlist button value; undefined when malformed. */
export function parseRemoveAllowValue(
  value: unknown,
): { appId: string; ip: string; start: number } | undefined {
  if (typeof value !== 'string' || value.length > LIMITS.buttonValue) return undefined;
  const parts = value.split('|');
  const start = parts.length >= 3 && /^\d{1,7}$/.test(parts.at(-1)!) ? Number(parts.pop()) : 0;
  const ip = parts.pop();
  const appId = parts.join('|');
  if (!appId || !ip || !/^[0-9a-f.:]*[.:][0-9a-f.:]*$/i.test(ip)) return undefined;
  return { appId, ip, start };
}

/**
 * Usage help for `/arc-history` without an argument. Its placeholders are written escaped: Slack
 * reads any `<…>` of a text as a link, mention or date of its own, in code too.
 */
export function historyUsage(windowMs: number): EphemeralMessage {
  return {
    response_type: 'ephemeral',
    text: `Usage: \`${COMMANDS.history} &lt;appid&gt;\`: lists every source IP that identity (the application id in the alert) used to list Arc cluster credentials in the last ${describeDuration(windowMs)}, most recent first, with first and last seen, count, geo, AS and allowlist state. Only you see the answer. \`${COMMANDS.history} &lt;appid&gt; &lt;n&gt;\` starts the list at the n-th IP.`,
  };
}

/** The reply for an identity with no sightings in the window. */
function historyEmpty(appId: string, windowMs: number): EphemeralMessage {
  // An id that is no GUID may still be an identity (Elastic's rule takes any appid), but Azure
  // writes GUIDs: a typo is the likelier cause. A GUID may be the principal's object id, which
  // the alert shows too (under Principal type): the history is kept by application id.
  const hint =
    dashGuid(appId) !== undefined
      ? " The history is kept by application id: the alert's *Identity (appid)*, not the object id of its principal."
      : appId.includes('@')
        ? " The history is kept by application id, not by user: for a user, the alert's *Identity (appid)* (the application it signed in with)."
        : ' Azure writes application ids as GUIDs: check the id.';
  return {
    response_type: 'ephemeral',
    text: `${code(appId, 120)}: no sightings in the last ${describeDuration(windowMs)}.${hint}`,
  };
}

/**
 * The history CLI's command that lists an identity, for a person to paste into a shell: with the
 * appid when it is a GUID; another id may hold what a shell reads as syntax, so it is left to them.
 */
function listCommand(appId: string): string {
  return dashGuid(appId) === appId
    ? `\`npm run history -- list ${appId}\``
    : '`npm run history -- list` and the appid in single quotes';
}

/** `2026-03-12 09:16`, in UTC: short, so that hundreds of lines fit. */
function shortUtc(epochMs: number): string {
  if (!Number.isFinite(epochMs)) return 'unknown';
  return new Date(epochMs).toISOString().slice(0, 16).replace('T', ' ');
}

const plural = (n: number, one: string, many = `${one}s`) =>
  `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;

/**
 * One IP on one line: IP · count · first seen → last seen (UTC) · geo and AS · allowlisted or not.
 * At most about 300 characters, whatever the values.
 */
function allowText(allow: AllowlistEntry): string {
  const until = allow.until === undefined ? 'with no expiry' : `until ${shortUtc(allow.until)} UTC`;
  return `:white_check_mark: Allowlisted ${until} by ${mention(allow.by)}: “${clip(literal(allow.reason), 60)}”`;
}

/** The section on allowlisted IPs with no sighting in the window: they still hold detections back. */
function dormantBlocks(view: HistoryView): types.KnownBlock[] {
  const dormant = view.dormant ?? [];
  if (dormant.length === 0) return [];
  const head = `*Allowlisted, with no sighting in the last ${describeDuration(view.windowMs)}* (their detections are still not alerted):`;
  const lines = [head];
  let length = head.length;
  for (const entry of dormant.slice(0, DORMANT_LINES_MAX)) {
    const line = `${code(entry.ip, 60)} · ${allowText(entry)}`;
    if (length + line.length + 1 > LIMITS.sectionText - 80) break;
    lines.push(line);
    length += line.length + 1;
  }
  if (lines.length - 1 < dormant.length)
    lines.push(`…and ${plural(dormant.length - (lines.length - 1), 'more')}.`);
  return [{ type: 'section', text: mrkdwn(lines.join('\n')) }];
}

/**
 * One IP's line. `compact` (a list too long for one answer otherwise) leaves out the geo and AS,
 * and who allowlisted it and why: what the contract asks of each IP stays.
 */
export function historyLine(entry: IdentityHistoryEntry, compact = false): string {
  const { pair, allow } = entry;
  const first = shortUtc(pair.firstSeen);
  const last = shortUtc(pair.lastSeen);
  // Same day: the last sighting's time only (`2026-03-12 08:16 → 09:16`).
  const lastShown = first.slice(0, 10) === last.slice(0, 10) ? last.slice(11) : last;
  const parts = [`${code(pair.ip, 60)} ${pair.count}×`, `${first} → ${lastShown}`];
  if (!compact) {
    const place = describePlace(pair.last.geo, pair.last.as, pair.last.located, (t) => clip(literal(t), 48));
    if (place) parts.push(place);
  }
  if (allow && compact) {
    parts.push(
      `Allowlisted ${allow.until === undefined ? 'with no expiry' : `until ${shortUtc(allow.until)} UTC`}`,
    );
  } else if (allow) {
    parts.push(allowText(allow));
  } else {
    parts.push('Not allowlisted');
  }
  return parts.join(' · ');
}

function removeButtons(view: HistoryView, start: number): { blocks: types.KnownBlock[]; size: number } {
  if (!view.canRemove) return { blocks: [], size: 0 };
  const allowed = [
    ...view.entries
      .slice(start)
      .filter((e) => e.allow)
      .map((e) => e.pair.ip),
    ...(view.dormant ?? []).map((a) => a.ip),
  ];
  if (allowed.length === 0) return { blocks: [], size: 0 };
  const shown = allowed.slice(0, HISTORY_MAX_BUTTONS);
  const elements: types.Button[] = [];
  for (const ip of shown) {
    const value = removeAllowValue(view.appId, ip, start);
    if (value.length > LIMITS.buttonValue) continue;
    elements.push({
      type: 'button',
      action_id: numberedAction(ACTION_IDS.removeAllow, elements.length),
      text: { type: 'plain_text', text: clip(`Remove allowlist: ${ip}`, LIMITS.buttonText) },
      value,
      confirm: {
        title: { type: 'plain_text', text: 'Remove the allowlist entry?' },
        text: mrkdwn(
          clip(
            `Detections of ${literal(view.appId)} from ${code(ip, 60)} will no longer be allowlisted (within the history window they count as known).`,
            300,
          ),
        ),
        confirm: { type: 'plain_text', text: 'Remove' },
        deny: { type: 'plain_text', text: 'Cancel' },
      },
    });
  }
  if (elements.length === 0) return { blocks: [], size: 0 };
  const blocks: types.KnownBlock[] = [{ type: 'actions', block_id: BLOCK_IDS.historyAllowlist, elements }];
  if (allowed.length > shown.length) {
    blocks.push({
      type: 'context',
      elements: [
        mrkdwn(
          `Buttons for the ${shown.length} most recent of ${allowed.length} allowlisted IPs: after a removal, the refreshed reply offers the next.`,
        ),
      ],
    });
  }
  return { blocks, size: blocksTextLength(blocks) };
}

/** Splits lines into pages of sections, each page within Slack's limits. */
function paginate(lines: readonly string[], firstPageExtra: number): string[][][] {
  const pages: string[][][] = [];
  let i = 0;
  while (i < lines.length && pages.length < HISTORY_MAX_MESSAGES) {
    let budget = TOTAL_TEXT_BUDGET - HEAD_MAX - TAIL_MAX - (pages.length === 0 ? firstPageExtra : 0);
    const sections: string[][] = [];
    let section: string[] = [];
    let sectionLength = 0;
    while (i < lines.length) {
      const line = lines[i]!;
      const cost = line.length + 1;
      if (cost > budget) break;
      if (section.length > 0 && sectionLength + cost > LIMITS.sectionText) {
        if (sections.length + 1 >= LIMITS.blocks - FIXED_BLOCKS) break;
        sections.push(section);
        section = [];
        sectionLength = 0;
      }
      section.push(line);
      sectionLength += cost;
      budget -= cost;
      i += 1;
    }
    if (section.length > 0) sections.push(section);
    if (sections.length === 0) break;
    pages.push(sections);
  }
  return pages;
}

/**
 * The `/arc-history` reply: every source IP of the identity in the window, most recent first,
 * several IPs per section (one compact line each), as up to `HISTORY_MAX_MESSAGES` messages,
 * each within Slack's limits (50 blocks, 3000 characters a section, the ~12k characters Slack
 * accepts in one message's blocks). The first is the command's answer, the others follow through
 * the response_url. Only beyond what those carry is the list cut, with a count of what was left
 * out and the command that lists the rest. Remove buttons (at most `HISTORY_MAX_BUTTONS`, for
 * allowlisted IPs, when the caller may remove entries) are in the first message. `alone`: only
 * the first message will be sent (a refresh), so it names the command for the rest instead.
 */
export function buildHistoryPages(view: HistoryView, alone = false): EphemeralMessage[] {
  const { entries } = view;
  const dormant = dormantBlocks(view);
  if (entries.length === 0) {
    const empty = historyEmpty(view.appId, view.windowMs);
    if (dormant.length === 0 && (view.revoked ?? []).length === 0) return [empty];
    const { blocks: buttons } = removeButtons(view, 0);
    const ips = (view.dormant ?? []).map((a) => a.ip);
    return [
      {
        response_type: 'ephemeral',
        text: clip(
          ips.length === 0
            ? `${empty.text} Revoked through one of its alerts.`
            : `${empty.text} Allowlisted: ${ips.slice(0, 10).join(', ')}${ips.length > 10 ? ', …' : ''}`,
          LIMITS.text,
        ),
        blocks: [
          { type: 'section', text: mrkdwn(empty.text) },
          ...revokedBlocks(view),
          ...dormant,
          ...buttons,
        ],
      },
    ];
  }
  const window = describeDuration(view.windowMs);
  const start = Math.max(0, Math.floor(view.start ?? 0));
  const id = code(view.appId, 120);
  if (start >= entries.length) {
    return [
      {
        response_type: 'ephemeral',
        text: `${id} has ${plural(entries.length, 'source IP')} in the last ${window}: start at most at ${entries.length.toLocaleString('en-US')}.`,
      },
    ];
  }
  const buttons = removeButtons(view, start);
  const firstPageExtra = buttons.size + blocksTextLength([...dormant, ...revokedBlocks(view)]);
  const shown = entries.slice(start);
  const listedIn = (pages: string[][][]) =>
    pages.reduce((n, p) => n + p.reduce((m, s) => m + s.length, 0), 0);
  let lines = shown.map((e) => historyLine(e));
  let pages = paginate(lines, firstPageExtra);
  // Too long for one answer: compact lines, when they carry more of the list.
  let compact = false;
  if (listedIn(pages) < lines.length) {
    const compactLines = shown.map((e) => historyLine(e, true));
    const compactPages = paginate(compactLines, firstPageExtra);
    if (listedIn(compactPages) > listedIn(pages)) {
      [lines, pages, compact] = [compactLines, compactPages, true];
    }
  }
  const listed = listedIn(pages);
  const left = lines.length - listed;
  const allowed = entries.filter((e) => e.allow).length;

  let from = start;
  return pages.map((sections, p) => {
    const count = sections.reduce((n, s) => n + s.length, 0);
    const range = `${(from + 1).toLocaleString('en-US')}–${(from + count).toLocaleString('en-US')}`;
    const rest =
      p === 0 && pages.length > 1 && !alone
        ? `; the rest follow as ${pages.length - 1} more private ${pages.length === 2 ? 'reply' : 'replies'}`
        : '';
    const part =
      pages.length > 1 || start > 0
        ? alone
          ? ` IPs ${range} of ${entries.length.toLocaleString('en-US')}${rest}.`
          : ` Part ${p + 1} of ${pages.length}: IPs ${range} of ${entries.length.toLocaleString('en-US')}${rest}.`
        : '';
    const legend = compact
      ? `Each line: IP · count (times seen) · first seen → last seen (UTC) · allowlisted or not (geo, AS and who allowlisted left out to fit more IPs; a shorter list, \`${COMMANDS.history} &lt;appid&gt; &lt;n&gt;\` from the n-th IP, shows them).`
      : 'Each line: IP · count (times seen) · first seen → last seen (UTC) · geo and AS · allowlisted or not.';
    const head =
      p === 0
        ? `*Source IPs of ${id} in the last ${window}*: ${plural(entries.length, 'IP')}, ${allowed.toLocaleString('en-US')} allowlisted, most recent first. ${legend} Count and first seen run until ${window} pass without a sighting.${part}`
        : `*Source IPs of ${id} in the last ${window}*, continued.${part}`;
    const blocks: types.KnownBlock[] = [
      { type: 'section', text: mrkdwn(clip(head, HEAD_MAX)) },
      ...(p === 0 ? revokedBlocks(view) : []),
      { type: 'divider' },
      ...sections.map((s): types.SectionBlock => ({ type: 'section', text: mrkdwn(s.join('\n')) })),
    ];
    if (p === 0) blocks.push(...dormant, ...buttons.blocks);
    if (p === 0 && alone && pages.length > 1) {
      // Standing alone (a refresh): the command for the rest, in a block of its own, never clipped.
      const next = from + count + 1;
      blocks.push({
        type: 'context',
        elements: [
          mrkdwn(
            clip(
              `List the rest with \`${COMMANDS.history} ${esc(view.appId)} ${next}\` (starting at IP ${next.toLocaleString('en-US')}), or all of them at once on the service's host with ${listCommand(view.appId)}.`,
              TAIL_MAX,
            ),
          ),
        ],
      });
    }
    const last = p === pages.length - 1;
    if (last && left > 0) {
      const next = start + listed + 1;
      blocks.push({
        type: 'context',
        elements: [
          mrkdwn(
            clip(
              `…and ${plural(left, 'older IP')} not shown (one answer holds ${HISTORY_MAX_MESSAGES} messages at most). List them with \`${COMMANDS.history} ${esc(view.appId)} ${next}\` (starting at IP ${next.toLocaleString('en-US')}), or all of them at once on the service's host with ${listCommand(view.appId)}.`,
              TAIL_MAX,
            ),
          ),
        ],
      });
    }
    const ips = sections.flat().length;
    const firstIps = entries
      .slice(from, from + Math.min(ips, 10))
      .map((e) => e.pair.ip)
      .join(', ');
    const text = `${plural(entries.length, 'source IP')} of ${clip(literal(view.appId), 120)} in the last ${window}${pages.length > 1 || start > 0 ? ` (IPs ${range})` : ''}${last && left > 0 ? ` (${left.toLocaleString('en-US')} not shown)` : ''}: ${firstIps}${ips > 10 ? ', …' : ''}`;
    from += count;
    return { response_type: 'ephemeral', text: clip(text, LIMITS.text), blocks };
  });
}

/**
 * The first message of the `/arc-history` reply, standing alone (what a "Remove allowlist" refresh
 * replaces): no further replies follow it, so it says how to list the IPs it leaves out.
 */
export function buildHistoryMessage(view: HistoryView): EphemeralMessage {
  return buildHistoryPages(view, true)[0]!;
}

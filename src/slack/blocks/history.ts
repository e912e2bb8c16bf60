import type { types } from '@slack/bolt';
import type { IdentityHistoryEntry } from '../../core/history.ts';
import { ACTION_IDS, COMMANDS } from '../ids.ts';
import { LIMITS } from './limits.ts';
import { clip, code, describeDuration, describePlace, esc, slackDate } from './text.ts';

/** At most this many IPs are listed; the rest are counted. Keeps the reply within 50 blocks. */
export const HISTORY_MAX_ROWS = 40;

/** What `/arc-history` shows. */
export interface HistoryView {
  appId: string;
  windowMs: number;
  entries: readonly IdentityHistoryEntry[];
  /** Whether the caller may remove allowlist entries (a responder): adds the buttons. */
  canRemove: boolean;
}

/** A private (ephemeral) reply: text plus optional blocks. */
export interface EphemeralMessage {
  response_type: 'ephemeral';
  text: string;
  blocks?: types.KnownBlock[];
}

/** The value of a remove-allowlist button: `<appid>|<ip>` (IPv6 addresses contain `:`). */
export const removeAllowValue = (appId: string, ip: string): string => `${appId}|${ip}`;

/** Parses a remove-allowlist button value; undefined when malformed. */
export function parseRemoveAllowValue(value: unknown): { appId: string; ip: string } | undefined {
  if (typeof value !== 'string' || value.length > LIMITS.buttonValue) return undefined;
  const bar = value.indexOf('|');
  if (bar <= 0 || bar === value.length - 1) return undefined;
  return { appId: value.slice(0, bar), ip: value.slice(bar + 1) };
}

/** Usage help for `/arc-history` without an argument. */
export function historyUsage(windowMs: number): EphemeralMessage {
  return {
    response_type: 'ephemeral',
    text: `Usage: \`${COMMANDS.history} <appid>\`: lists every source IP that identity (the application id in the alert) used to list Arc cluster credentials in the last ${describeDuration(windowMs)}, most recent first, with first and last seen, count, geo, AS and allowlist state. Only you see the answer.`,
  };
}

/** The reply for an identity with no sightings in the window. */
export function historyEmpty(appId: string, windowMs: number): EphemeralMessage {
  return {
    response_type: 'ephemeral',
    text: `${code(appId, 120)}: no sightings in the last ${describeDuration(windowMs)}.`,
  };
}

function row(view: HistoryView, entry: IdentityHistoryEntry): types.SectionBlock {
  const { pair, allow } = entry;
  const place = describePlace(pair.last.geo, pair.last.as);
  const lines = [
    `${code(pair.ip, 60)}${place ? ` · ${clip(esc(place), 200)}` : ''}`,
    `First seen ${slackDate(pair.firstSeen)} · last seen ${slackDate(pair.lastSeen)} · ${pair.count} time${pair.count === 1 ? '' : 's'}`,
  ];
  if (allow) {
    const until = allow.until === undefined ? 'with no expiry' : `until ${slackDate(allow.until)}`;
    lines.push(
      `:white_check_mark: Allowlisted ${until} by <@${allow.by}>: “${clip(esc(allow.reason), 200)}”`,
    );
  } else {
    lines.push('Not allowlisted');
  }
  const block: types.SectionBlock = { type: 'section', text: { type: 'mrkdwn', text: lines.join('\n') } };
  const value = removeAllowValue(view.appId, pair.ip);
  if (allow && view.canRemove && value.length <= LIMITS.buttonValue) {
    block.accessory = {
      type: 'button',
      action_id: ACTION_IDS.removeAllow,
      text: { type: 'plain_text', text: 'Remove allowlist' },
      value,
      confirm: {
        title: { type: 'plain_text', text: 'Remove the allowlist entry?' },
        text: {
          type: 'mrkdwn',
          text: clip(`Detections of ${esc(view.appId)} from ${esc(pair.ip)} will alert again.`, 300),
        },
        confirm: { type: 'plain_text', text: 'Remove' },
        deny: { type: 'plain_text', text: 'Cancel' },
      },
    };
  }
  return block;
}

/**
 * The `/arc-history` reply: one section per source IP, most recent first, cut after
 * `HISTORY_MAX_ROWS` with a count of what was left out.
 */
export function buildHistoryMessage(view: HistoryView): EphemeralMessage {
  const { entries } = view;
  if (entries.length === 0) return historyEmpty(view.appId, view.windowMs);
  const window = describeDuration(view.windowMs);
  const shown = entries.slice(0, HISTORY_MAX_ROWS);
  const left = entries.length - shown.length;
  const allowed = entries.filter((e) => e.allow).length;
  const blocks: types.KnownBlock[] = [
    {
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: `*Source IPs of ${code(view.appId, 120)} in the last ${window}*: ${entries.length} IP${entries.length === 1 ? '' : 's'}, ${allowed} allowlisted, most recent first.`,
      },
    },
    { type: 'divider' },
    ...shown.map((e) => row(view, e)),
  ];
  if (left > 0) {
    blocks.push({
      type: 'context',
      elements: [{ type: 'mrkdwn', text: `…and ${left} older IP${left === 1 ? '' : 's'} not shown.` }],
    });
  }
  const text = `${entries.length} source IP${entries.length === 1 ? '' : 's'} of ${clip(esc(view.appId), 120)} in the last ${window}${left > 0 ? ` (${left} not shown)` : ''}: ${shown
    .slice(0, 10)
    .map((e) => e.pair.ip)
    .join(', ')}${shown.length > 10 ? ', …' : ''}`;
  return { response_type: 'ephemeral', text: clip(text, LIMITS.text), blocks };
}

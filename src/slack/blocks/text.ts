/**
 * Small pure helpers for Slack text: escaping, clipping to Slack's limits, links and dates.
 * Everything that comes from a detection is untrusted and goes through `esc` and `clip`.
 */
import type { types } from '@slack/bolt';
import { INVISIBLE } from '../../core/app-id.ts';
import { cutBefore } from '../../core/formats/fields.ts';

/**
 * A mrkdwn text object. `verbatim`: Slack changes nothing of the plain text in it (no web address
 * or channel name made a link, no mention parsed from a value); formatting and the links,
 * mentions and dates written out here (`<url|label>`, `<@U…>`, `<!date^…>`) still render.
 */
export function mrkdwn(text: string): types.MrkdwnElement {
  return { type: 'mrkdwn', text, verbatim: true };
}

/** Escapes the three characters Slack's mrkdwn treats as control characters. */
export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * `text` to show inline: every line break (CR, LF, vertical tab, form feed, NEL, the Unicode line
 * and paragraph separators) as a space, and every invisible or direction-turning character named
 * (`[U+202E]`). A value from a detection is shown inline, so that a line break in it cannot start
 * a line of its own that reads as part of the message (a status, another IP), and what it holds
 * reads as it is stored: a right-to-left override would show the rest of its line reversed, and a
 * zero-width space would make two different names look the same.
 */
export function inline(text: string): string {
  return text
    .replace(/[\r\n\v\f\u0085\u2028\u2029]+/g, ' ')
    .replace(INVISIBLE, (c) => `[U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`);
}

/**
 * An untrusted value to show in mrkdwn outside code: on one line (`inline`), escaped (`esc`), and
 * unable to format. mrkdwn has no escape, so the characters that would open bold (`*`),
 * strike-through (`~`) or code, an underscore that could open italics (one beside a space,
 * punctuation or an end: `rg_prod` keeps its own), and the colon that would open an emoji code
 * become look-alikes that format nothing. A name that reads `*Revoked* :white_check_mark:` then
 * shows as text, not as a status of the message.
 */
export function literal(text: string): string {
  return esc(inline(unformatted(text)));
}

const LOOK_ALIKES: Record<string, string> = { '*': '\u2217', '~': '\u223c', '`': '\u02cb' };

function unformatted(text: string): string {
  return text
    .replace(/[*~`]/g, (c) => LOOK_ALIKES[c]!)
    .replace(/(?<![\p{L}\p{N}])_|_(?![\p{L}\p{N}])/gu, '\uff3f')
    .replace(/:(?=[\w+'-]*[a-z][\w+'-]*:)/gi, '\u2236');
}

/**
 * Cuts `text` to at most `max` characters (UTF-16 units, as Slack counts), ending with `…` when
 * cut. Never splits a surrogate pair or an HTML entity produced by `esc`.
 */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max <= 1) return '…'.slice(0, max);
  // Nor a `&amp;`-style entity.
  const cut = cutBefore(text, max - 1).replace(/&[a-z]{0,4}$/, '');
  // At the end of a word when one ends shortly before, so that the last word shown is whole.
  const space = cut.lastIndexOf(' ');
  const atWord =
    space > 0 && cut.length - space <= WORD_BACKTRACK && text[cut.length] !== ' ' ? cut.slice(0, space) : cut;
  return `${atWord}…`;
}

/** How far `clip` goes back to end on a whole word. */
const WORD_BACKTRACK = 20;

/** A clip size scaled down when a message must shrink to fit Slack's total budget. */
export function clipSize(n: number, k: number): number {
  return Math.max(24, Math.floor(n * k));
}

/** A user mention for a Slack user id; anything that is not one is shown as escaped text. */
export function mention(userId: string): string {
  return /^[UW][A-Z0-9]{1,20}$/.test(userId) ? `<@${userId}>` : code(userId, 40);
}

/** Inline code for an untrusted value (backticks inside would end the code span). */
export function code(text: string, max = 200): string {
  return `\`${clip(esc(inline(text.replace(/`/g, "'"))), max)}\``;
}

/**
 * A mrkdwn link. The URL must be http(s); characters that would end Slack's `<url|text>` syntax
 * are percent-encoded, and so are invisible ones. Returns the label alone when the URL is not usable.
 */
export function link(url: string | undefined, label: string, maxUrl = 1500): string {
  if (!url || !/^https?:\/\//i.test(url) || url.length > maxUrl) return label;
  const safeUrl = url
    .replace(/[<>|\s"]/g, (c) => encodeURIComponent(c))
    .replace(INVISIBLE, (c) => encodeURIComponent(c));
  return `<${safeUrl}|${label.replace(/[|>]/g, '')}>`;
}

/**
 * A link to a message of the workspace from its channel and ts (Slack opens `slack.com/archives`
 * links in the reader's workspace), with no Web API call; the label alone when either is unusable.
 */
export function messageLink(channel: string, ts: string | undefined, label: string): string {
  if (!ts || !/^[A-Z0-9]{1,40}$/.test(channel) || !/^\d{1,12}\.\d{1,8}$/.test(ts)) return label;
  return link(`https://slack.com/archives/${channel}/p${ts.replace('.', '')}`, label);
}

/** A Slack date token: shown in the reader's time zone, with the ISO time as fallback. */
export function slackDate(epochMs: number): string {
  if (!Number.isFinite(epochMs)) return 'unknown time';
  const iso = new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return `<!date^${Math.floor(epochMs / 1000)}^{date_short_pretty} {time_secs}|${iso}>`;
}

/** Parses an ISO time; undefined when it is not a time. */
export function parseTime(iso: string | undefined): number | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : undefined;
}

/** Plain-text time for notifications and fallbacks (no Slack tokens). */
export function isoTime(epochMs: number): string {
  return Number.isFinite(epochMs)
    ? new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z')
    : 'unknown time';
}

/** A window for people: `7 days`, `36 hours`, `90 minutes`. */
export function describeDuration(ms: number): string {
  for (const [unit, size] of [
    ['day', 86_400_000],
    ['hour', 3_600_000],
    ['minute', 60_000],
    ['second', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) {
      const n = ms / size;
      return `${n} ${unit}${n === 1 ? '' : 's'}`;
    }
  }
  // Not a whole number of any unit.
  const about = (size: number, unit: string) => {
    const n = Math.round(ms / size);
    return `about ${n} ${unit}${n === 1 ? '' : 's'}`;
  };
  if (ms >= 3_600_000) return about(3_600_000, 'hour');
  return ms >= 1000 ? about(1000, 'second') : `${ms} ms`;
}

/**
 * "City, Country · AS<n> Organisation". A part looked up here (GeoIP) rather than carried by the
 * event says so after it, so that it is never mistaken for the event's own. `shape` escapes or
 * clips each part before its mark, so that clipping never cuts the mark.
 */
export function describePlace(
  geo: { cityName?: string; countryName?: string; countryIsoCode?: string } | undefined,
  as: { number?: number; organizationName?: string } | undefined,
  located?: { geo?: true; as?: true },
  shape: (text: string) => string = (text) => text,
): string {
  const parts: string[] = [];
  const where = [geo?.cityName, geo?.countryName ?? geo?.countryIsoCode].filter(Boolean).join(', ');
  if (where) parts.push(`${shape(where)}${located?.geo ? GEOIP_MARK : ''}`);
  const asText = [as?.number !== undefined ? `AS${as.number}` : undefined, as?.organizationName]
    .filter(Boolean)
    .join(' ');
  if (asText) parts.push(`${shape(asText)}${located?.as ? GEOIP_MARK : ''}`);
  return parts.join(' · ');
}

const GEOIP_MARK = ' (GeoIP)';

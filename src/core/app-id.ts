import { dashGuid } from './azure-ids.ts';

/**
 * What an identity (`appid`) may be. Application ids are GUIDs; any other id is accepted as long
 * as it is printable ASCII without `:`, at most `MAX_APP_ID_LENGTH` characters. Ingest, the
 * `/arc-history` command and the history CLI apply the same rule, so every identity ingest accepts
 * can be listed, and every key built from one fits every store (PostgreSQL's Keyv keys are at most
 * 255 characters: `arc-responder:pairinfo:<appid>:<IPv6>` stays under that).
 */
export const MAX_APP_ID_LENGTH = 128;

/** Why `appId` cannot be an application id, or undefined: only printable ASCII without `:`. */
export function appIdProblem(appId: string): string | undefined {
  for (let i = 0; i < appId.length; i++) {
    const c = appId.charCodeAt(i);
    if (c === 0x3a) return "it holds ':'";
    if (c < 0x21 || c > 0x7e) {
      return c < 0x80
        ? `it holds the control or white-space character U+${c.toString(16).padStart(4, '0').toUpperCase()}`
        : `it holds the non-ASCII character U+${c.toString(16).padStart(4, '0').toUpperCase()}`;
    }
  }
  return undefined;
}

/** True for text that ingest accepts as an identity (after GUID normalisation). */
export const isAppIdText = (s: string): boolean =>
  s.length > 0 && s.length <= MAX_APP_ID_LENGTH && appIdProblem(s) === undefined;

/**
 * Characters that show nothing or turn the text's direction: zero-width spaces, direction marks,
 * embeddings, overrides and isolates, word joiners, the BOM, the soft hyphen, the combining
 * grapheme joiner, the blank fillers (Hangul, Khmer, Mongolian, the blank Braille pattern). Also
 * variation selectors after a character that is not one of emoji's (plain ASCII, or nothing; not
 * a keycap's `1️⃣`), and tag characters outside a flag's tag sequence (every one of a run). Not the zero-width joiner (U+200D), which emoji
 * sequences hold: text shown to people keeps it. Matches whole code points (`u`).
 */
export const INVISIBLE =
  /\u034F|\u17B4|\u17B5|[\u180B-\u180F]|[\u00AD\u061C\u115F\u1160\u200B\u200C\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\u2800\u3164\uFEFF\uFFA0]|(?<![\u0080-\u{10FFFF}])[\uFE00-\uFE0F](?!\u20E3)|(?<!\u{1F3F4}[\u{E0020}-\u{E007E}]*)[\u{E0000}-\u{E007F}]/gu;

/** Pairs that wrap an id copied from a message, a log line or JSON. */
const WRAPPERS: ReadonlyArray<readonly [string, string]> = [
  ['"', '"'],
  ["'", "'"],
  ['`', '`'],
  ['<', '>'],
  ['(', ')'],
  ['[', ']'],
  ['“', '”'],
  ['‘', '’'],
];

/**
 * The identity a person typed or pasted (`/arc-history`, `history list`): invisible characters
 * left out, and, when what remains is a GUID once the quotes, backticks or brackets around it and
 * a comma or full stop after it are taken off, that GUID in the dashed lower-case form the history
 * keeps. Anything else is returned as typed (less the invisible characters), for `isAppIdText`.
 */
export function appIdFromTyped(typed: string): string {
  // An id holds no joiner either.
  const text = typed.replace(INVISIBLE, '').replaceAll('\u200D', '').trim();
  // A GUID in its wrappings is at most some 45 characters.
  if (text.length > 64) return text;
  let rest = text;
  for (let i = 0; i < 4; i++) {
    const guid = dashGuid(rest);
    if (guid) return guid;
    const before = rest;
    rest = rest.replace(/[,.;:]+$/, '');
    const pair = WRAPPERS.find(
      ([open, close]) => rest.length > 2 && rest.startsWith(open) && rest.endsWith(close),
    );
    if (pair) rest = rest.slice(pair[0].length, -pair[1].length).trim();
    if (rest === before) break;
  }
  return text;
}

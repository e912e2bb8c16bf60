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

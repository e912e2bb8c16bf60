/**
 * Secrets in text. Field redaction (the logger's paths) keeps credentials that the service itself
 * puts in a log line out of it; this catches those that come back inside someone else's text: an
 * Entra ID error that quotes the client secret it refused, a proxy that echoes the Authorization
 * header of a call it refuses, a Slack client message that names the token. Every log line, and
 * every Azure error text that reaches Slack or the store, goes through `scrubSecrets`.
 */

/** Shown in a secret's place. */
const HIDDEN = '***';

/** A secret value as plain text holds it, and as a JSON string does (a log line is JSON). */
interface Secret {
  plain: string;
  json: string;
}

/** The secret values this process holds (see `keepSecretsOut`), longest first. */
let secrets: Secret[] = [];

/**
 * Shorter values are no secrets worth the name, and would hide ordinary words (`postgres` as a
 * password would blank every mention of the store).
 */
const MIN_SECRET_LENGTH = 12;

/**
 * Credentials by their shape, whoever's they are: a bearer or basic authorization (a token of 16
 * characters or more that holds a digit or a sign, so that "Basic Information" stays), a secret in
 * a form or query parameter, Slack tokens, and JSON web tokens (Entra ID's access tokens). None
 * takes a backslash or a quote: in a JSON line, a match never ends inside an escape.
 */
const SHAPES: ReadonlyArray<readonly [RegExp, string]> = [
  [/\b(Bearer|Basic)(\s+)(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{16,}/gi, `$1$2${HIDDEN}`],
  [
    /\b(client_secret|client_assertion|access_token|refresh_token|id_token|password)=[^&\s"'<>\\]+/gi,
    `$1=${HIDDEN}`,
  ],
  [/\b(xox[abposer]|xapp)-[A-Za-z0-9-]{6,}/g, `$1-${HIDDEN}`],
  [/\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g, HIDDEN],
];

/**
 * Adds the values that no text may carry: the tokens, secrets and passwords the configuration
 * gives. Kept for the life of the process.
 */
export function keepSecretsOut(values: ReadonlyArray<string | undefined>): void {
  const added = values.filter(
    (v): v is string =>
      typeof v === 'string' && v.length >= MIN_SECRET_LENGTH && !secrets.some((s) => s.plain === v),
  );
  if (added.length === 0) return;
  secrets = [...secrets, ...added.map((plain) => ({ plain, json: JSON.stringify(plain).slice(1, -1) }))].sort(
    (a, b) => b.plain.length - a.plain.length,
  );
}

/**
 * `text` with every secret value and every credential-shaped string replaced by `***`. With
 * `json`, `text` is a JSON document (a log line): values are matched as its strings hold them,
 * so that a replacement never breaks an escape.
 */
export function scrubSecrets(text: string, json = false): string {
  const out = scrubbed(text, json);
  if (!json || out === text) return out;
  try {
    JSON.parse(out);
    return out;
  } catch {
    // A value matched from within an escape (`\n` before it): each string on its own, then.
  }
  try {
    return `${JSON.stringify(scrubbedStrings(JSON.parse(text)))}${text.endsWith('\n') ? '\n' : ''}`;
  } catch {
    return out;
  }
}

function scrubbed(text: string, json: boolean): string {
  let out = text;
  for (const secret of secrets) {
    const value = json ? secret.json : secret.plain;
    if (out.includes(value)) out = out.split(value).join(HIDDEN);
  }
  for (const [shape, by] of SHAPES) out = out.replace(shape, by);
  return out;
}

/** A parsed JSON value with each string (keys too) scrubbed as plain text. */
function scrubbedStrings(value: unknown): unknown {
  if (typeof value === 'string') return scrubbed(value, false);
  if (Array.isArray(value)) return value.map(scrubbedStrings);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, v]) => [scrubbed(key, false), scrubbedStrings(v)]),
  );
}

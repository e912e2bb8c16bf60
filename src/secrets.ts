/**
 * Secrets in text. Field redaction (the logger's paths) keeps credentials that the service itself
 * puts in a log line out of it; this catches those that come back inside someone else's text: an
 * Entra ID error that quotes the client secret it refused, a proxy that echoes the Authorization
 * header of a call it refuses, a Slack client message that names the token. Every log line, and
 * every Azure error text that reaches Slack or the store, goes through `scrubSecrets`.
 */

/** Shown in a secret's place. */
export const HIDDEN = '***';

/** The secret values this process holds (see `keepSecretsOut`), longest first. */
let values: string[] = [];

/** Shorter values are no secrets worth the name, and would hide ordinary words. */
const MIN_SECRET_LENGTH = 8;

/**
 * Credentials by their shape, whoever's they are: a bearer or basic authorization, a secret in a
 * form or query parameter, Slack tokens, and JSON web tokens (Entra ID's access tokens).
 */
const SHAPES: ReadonlyArray<readonly [RegExp, string]> = [
  [/\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/=-]{8,}/gi, `$1$2${HIDDEN}`],
  [
    /\b(client_secret|client_assertion|access_token|refresh_token|id_token|password)=[^&\s"'<>]+/gi,
    `$1=${HIDDEN}`,
  ],
  [/\b(xox[abposer]|xapp)-[A-Za-z0-9-]{6,}/g, `$1-${HIDDEN}`],
  [/\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g, HIDDEN],
];

/**
 * Adds the values that no text may carry: the tokens, secrets and passwords the configuration
 * gives. Kept for the life of the process.
 */
export function keepSecretsOut(secrets: ReadonlyArray<string | undefined>): void {
  const added = secrets
    .filter((s): s is string => typeof s === 'string' && s.length >= MIN_SECRET_LENGTH)
    // As written, and as a JSON string holds it (a log line is JSON).
    .flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]);
  if (added.every((s) => values.includes(s))) return;
  values = [...new Set([...values, ...added])].sort((a, b) => b.length - a.length);
}

/** `text` with every secret value and every credential-shaped string replaced by `***`. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const value of values) if (out.includes(value)) out = out.split(value).join(HIDDEN);
  for (const [shape, by] of SHAPES) out = out.replace(shape, by);
  return out;
}

import { StoreError } from './store-error.ts';

/** A parsed `STORE_URL`. `display` is the URL with its password masked, safe for messages. */
export type StoreLocation =
  | { kind: 'sqlite'; path: string; display: string }
  | { kind: 'memory'; display: string }
  | { kind: 'redis'; url: string; display: string; password: string }
  | {
      kind: 'postgres';
      url: string;
      display: string;
      password: string;
      /** The schema of the tables (`?schema=`, taken out of `url`); default `public`. */
      schema: string;
    };

const EXPECTED =
  'expected sqlite://<path>, memory://, redis://host:port, rediss://host:port or postgres://user@host/db';

/**
 * Masks the credentials of anything that looks like `scheme://user:password@host`: everything
 * between the user name and the last `@`, so that a password holding an unencoded `/`, `?` or
 * `#` (base64 keys often do) is masked too.
 */
export function redactUrl(url: string): string {
  // Secrets in the query first: their values may hold an `@`, which would pass for the end of
  // the user info below.
  const masked = url.replace(SECRET_PARAM, '$1***');
  const start = masked.indexOf('://');
  const at = masked.lastIndexOf('@');
  if (start === -1 || at < start) return masked;
  const userInfo = masked.slice(start + 3, at);
  const colon = userInfo.indexOf(':');
  const user = colon === -1 ? userInfo : userInfo.slice(0, colon);
  return `${masked.slice(0, start + 3)}${colon === -1 && user.length > 0 ? '***' : `${user}:***`}@${masked.slice(at + 1)}`;
}

/**
 * A query parameter that can carry a secret (drivers take `?password=` as the password, say),
 * with its value up to the next parameter or fragment.
 */
const SECRET_PARAM = /([?&][^=&#?]*(?:pass|secret|token|key|credential)[^=&#?]*=)[^&#]*/gi;

/** The password a URL gives, in its user info or as a `password` query parameter (both are used by drivers). */
function passwordOf(parsed: URL): string {
  return parsed.password || parsed.searchParams.get('password') || '';
}

/**
 * Removes `secret` (as written and percent-decoded) from `text`. Driver messages do not normally
 * echo a password, but this keeps that a guarantee rather than an observation.
 */
export function scrubSecret(text: string, secret: string): string {
  if (!secret) return text;
  let out = text.split(secret).join('***');
  try {
    const decoded = decodeURIComponent(secret);
    if (decoded) out = out.split(decoded).join('***');
  } catch {
    // A password with a stray % is only present in its raw form, already removed above.
  }
  return out;
}

/**
 * Parses `STORE_URL`: `sqlite://<path>` (`sqlite://./data/x.db` relative to the working
 * directory, `sqlite:///abs/x.db` absolute, `sqlite://:memory:`), `memory://`, `redis://`,
 * `rediss://`, `postgres://` and `postgresql://`. Throws a `StoreError` naming the problem.
 */
export function parseStoreUrl(raw: string): StoreLocation {
  if (typeof raw !== 'string' || raw.trim() === '') {
    throw new StoreError('STORE_URL_INVALID', `Store URL is empty; ${EXPECTED}`);
  }
  const url = raw.trim();
  const display = redactUrl(url);
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    throw new StoreError('STORE_URL_INVALID', `Store URL "${display}" has no scheme; ${EXPECTED}`);
  }
  const rest = url.slice(scheme.length + 1);

  if (scheme === 'sqlite') {
    if (!rest.startsWith('//')) {
      throw new StoreError(
        'STORE_URL_INVALID',
        `Store URL "${display}" must start with sqlite:// (e.g. sqlite://./data/arc-responder.db)`,
      );
    }
    // Everything after `sqlite://` is the file path as written: `./x.db`, `data/x.db` or, with a
    // third slash, `/abs/x.db`. No host part and no percent-decoding, so what you see is the path.
    const path = rest.slice(2);
    if (path === '' || path.endsWith('/')) {
      throw new StoreError(
        'STORE_URL_INVALID',
        `Store URL "${display}" names no database file (e.g. sqlite://./data/arc-responder.db)`,
      );
    }
    if (path.includes('\0')) {
      throw new StoreError('STORE_URL_INVALID', `Store URL "${display}" contains a NUL character`);
    }
    return { kind: 'sqlite', path, display };
  }

  if (scheme === 'memory') {
    if (rest !== '//' && rest !== '') {
      throw new StoreError('STORE_URL_INVALID', `Store URL "${display}": memory:// takes no host or path`);
    }
    return { kind: 'memory', display: 'memory://' };
  }

  if (scheme === 'redis' || scheme === 'rediss' || scheme === 'postgres' || scheme === 'postgresql') {
    // Credentials holding a `/`, `?` or `#` end the host part early: say so rather than fail later.
    const userInfo = url.slice(
      url.indexOf('://') + 3,
      Math.max(url.lastIndexOf('@'), url.indexOf('://') + 3),
    );
    if (/[/?#]/.test(userInfo)) {
      throw new StoreError(
        'STORE_URL_INVALID',
        `Store URL "${display}": the user name or password holds a character that must be percent-encoded (/ as %2F, ? as %3F, # as %23)`,
      );
    }
    const kind = scheme.startsWith('redis') ? 'redis' : 'postgres';
    // PostgreSQL over a Unix socket names no host but its directory: `postgres://user@/db?host=/run/postgresql`
    // (a form the URL standard refuses, so it is checked with a placeholder host).
    const socketForm = kind === 'postgres' && /^[a-z]+:\/\/[^/?#]*@\//i.test(url);
    let parsed: URL;
    try {
      parsed = new URL(socketForm ? url.replace('@/', '@localhost/') : url);
    } catch {
      throw new StoreError('STORE_URL_INVALID', `Store URL "${display}" is not a valid URL; ${EXPECTED}`);
    }
    const socketDir = kind === 'postgres' && parsed.searchParams.get('host')?.startsWith('/') === true;
    if ((socketForm || parsed.hostname === '') && !socketDir) {
      throw new StoreError(
        'STORE_URL_INVALID',
        `Store URL "${display}" names no host; ${EXPECTED}${kind === 'postgres' ? ' (for a Unix socket: postgres://user@/db?host=/var/run/postgresql)' : ''}`,
      );
    }
    if (kind === 'redis' && !/^\/?(\d{1,5})?$/.test(parsed.pathname)) {
      throw new StoreError(
        'STORE_URL_INVALID',
        `Store URL "${display}": the path of a Redis URL is a database number (redis://host:6379/2), not "${parsed.pathname.slice(0, 40)}"`,
      );
    }
    // The Redis client reads no query: `?db=2` or `?password=` would be dropped without a word,
    // and the service would write to database 0, or connect without the password.
    if (kind === 'redis' && (parsed.search !== '' || url.includes('?'))) {
      throw new StoreError(
        'STORE_URL_INVALID',
        `Store URL "${display}": a Redis URL takes no query (?db=, ?password= and the like are not read); put the database number in the path (redis://host:6379/2) and the password in the user info (redis://:password@host:6379)`,
      );
    }
    if (kind === 'postgres')
      return { kind, ...postgresSchema(url, display), display, password: passwordOf(parsed) };
    return { kind, url, display, password: passwordOf(parsed) };
  }

  throw new StoreError('STORE_URL_INVALID', `Store URL scheme "${scheme}:" is not supported; ${EXPECTED}`);
}

/** A PostgreSQL schema name that needs no quoting (the @keyv/postgres adapter does not quote it). */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The `schema` parameter of a PostgreSQL URL, taken out of the URL (it is no connection
 * parameter of PostgreSQL's): the schema of the state tables, `public` when absent.
 */
function postgresSchema(url: string, display: string): { url: string; schema: string } {
  const query = url.indexOf('?');
  if (query === -1) return { url, schema: 'public' };
  const params = url
    .slice(query + 1)
    .split('&')
    .filter((p) => p !== '');
  const named = params.filter((p) => p.split('=', 1)[0] === 'schema');
  if (named.length === 0) return { url, schema: 'public' };
  let value: string | undefined;
  try {
    value = decodeURIComponent(named.at(-1)!.slice('schema='.length));
  } catch {
    value = undefined;
  }
  if (named.length > 1 || value === undefined || !SCHEMA_NAME.test(value)) {
    throw new StoreError(
      'STORE_URL_INVALID',
      `Store URL "${display}": schema= takes one schema name in lower case (letters, digits and _, at most 63, not starting with a digit), e.g. ?schema=arc_responder`,
    );
  }
  const rest = params.filter((p) => p.split('=', 1)[0] !== 'schema');
  return {
    url: rest.length > 0 ? `${url.slice(0, query)}?${rest.join('&')}` : url.slice(0, query),
    schema: value,
  };
}

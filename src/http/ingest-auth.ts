import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.ts';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** True for 127.0.0.0/8, ::1 and IPv4-mapped 127.x addresses. */
function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.toLowerCase();
  if (a === '::1' || a === '0:0:0:0:0:0:0:1') return true;
  const v4 = a.startsWith('::ffff:') ? a.slice('::ffff:'.length) : a;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

const challenge = (error?: string) => ({
  'www-authenticate': error
    ? `Bearer realm="arc-responder", error="${error}"`
    : 'Bearer realm="arc-responder"',
});

/**
 * Checks a `POST /ingest` caller. With tokens configured: `Authorization: Bearer <token>` (or,
 * for senders that cannot set headers such as Azure Monitor action groups, `?token=<token>` in the
 * URL, read when the header carries no valid token) must match one of them (compared as SHA-256 digests with `timingSafeEqual`, every token compared, so
 * neither the length nor which token matched shows in the timing). Without tokens: only loopback
 * clients. The peer address is the socket's; `X-Forwarded-For` is never trusted.
 * Throws a 401 `HttpError` that says what to fix. Returns which token matched (its place in
 * INGEST_TOKEN, from 1; found after every comparison), or undefined for a loopback client.
 */
export function createIngestAuth(tokens: readonly string[]): (req: IncomingMessage) => number | undefined {
  const digests = tokens.map(digest);

  if (digests.length === 0) {
    return (req) => {
      if (isLoopbackAddress(req.socket.remoteAddress)) return undefined;
      throw new HttpError(
        401,
        'unauthorized',
        'INGEST_TOKEN is not set, so only loopback clients (127.0.0.1, ::1) may post to /ingest; set INGEST_TOKEN on the service and send Authorization: Bearer <token>',
        { headers: challenge() },
      );
    };
  }

  /** The place of the token in INGEST_TOKEN (from 1), or 0: every token is compared. */
  const matches = (token: string) => {
    const presented = digest(token);
    let place = 0;
    digests.forEach((d, i) => {
      if (timingSafeEqual(presented, d)) place = i + 1;
    });
    return place;
  };

  /** The place of the header's token in INGEST_TOKEN (see `matches`), or the 401 for a header that carries no valid token. */
  const byHeader = (header: string | undefined): HttpError | number => {
    if (!header) {
      return new HttpError(
        401,
        'unauthorized',
        'missing Authorization header: send Authorization: Bearer <INGEST_TOKEN>',
        { headers: challenge() },
      );
    }
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!match) {
      return new HttpError(
        401,
        'unauthorized',
        'Authorization header must use the Bearer scheme: Authorization: Bearer <INGEST_TOKEN>',
        { headers: challenge('invalid_request') },
      );
    }
    const place = matches(match[1]!);
    if (place > 0) return place;
    return new HttpError(401, 'unauthorized', 'invalid bearer token: it matches none of INGEST_TOKEN', {
      headers: challenge('invalid_token'),
    });
  };

  return (req) => {
    const fromHeader = byHeader(req.headers.authorization);
    if (typeof fromHeader === 'number') return fromHeader;
    // Azure Monitor action groups cannot set headers: they carry the token in the URL. A secure
    // webhook sends its own Entra ID token in Authorization as well, which is not ours to check.
    const queryToken = tokenFromQuery(req.url);
    if (queryToken === undefined) throw fromHeader;
    const place = matches(queryToken);
    if (place > 0) return place;
    throw new HttpError(
      401,
      'unauthorized',
      'invalid token in the URL: it matches none of INGEST_TOKEN (a token holding %, &, # or spaces must be percent-encoded in the URL)',
      { headers: challenge('invalid_token') },
    );
  };
}

/**
 * The `token` query parameter of `/ingest?token=…`, if present, percent-decoded. A `+` stays a `+`
 * (not a space, as form decoding would read it): base64 tokens hold `+`, and a sender pastes them
 * into the URL as they are.
 */
function tokenFromQuery(url: string | undefined): string | undefined {
  const q = url?.indexOf('?') ?? -1;
  if (q === -1 || url === undefined) return undefined;
  for (const param of url.slice(q + 1).split('&')) {
    if (!param.startsWith('token=')) continue;
    const raw = param.slice('token='.length);
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw; // a stray '%': compared as sent
    }
  }
  return undefined;
}

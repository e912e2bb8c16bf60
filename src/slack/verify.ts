import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { HttpError } from '../http/http-error.ts';
import { ClientGoneError, readBody } from '../http/read-body.ts';
import { createRefusalLog } from '../http/refusal-log.ts';

/** Slack signs with the current time; anything further than this from our clock is refused. */
const MAX_SKEW_SECONDS = 300;
/** Slack's payloads are small; larger bodies are refused before any parsing. */
const MAX_BODY_BYTES = 256 * 1024;

/** Why a request was refused: `code` is one of a few, for counting; `reason` says it for people. */
export type VerifyResult =
  | { ok: true }
  | {
      ok: false;
      code: 'bad_timestamp' | 'bad_signature_header' | 'stale' | 'signature_mismatch';
      reason: string;
    };

/**
 * Verifies a Slack request: `v0=` HMAC-SHA256 of `v0:<timestamp>:<body>` with the signing secret,
 * compared in constant time, and a timestamp within 5 minutes either way (Bolt itself refuses only
 * stale ones, not those from the future).
 */
export function verifySlackSignature(opts: {
  signingSecret: string;
  body: Buffer | string;
  timestamp: string | string[] | undefined;
  signature: string | string[] | undefined;
  nowMs: number;
}): VerifyResult {
  const { timestamp, signature } = opts;
  if (typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp)) {
    return { ok: false, code: 'bad_timestamp', reason: 'missing or malformed X-Slack-Request-Timestamp' };
  }
  if (typeof signature !== 'string' || !/^v0=[0-9a-f]{64}$/.test(signature)) {
    return { ok: false, code: 'bad_signature_header', reason: 'missing or malformed X-Slack-Signature' };
  }
  const skew = Math.abs(Math.floor(opts.nowMs / 1000) - Number(timestamp));
  if (skew > MAX_SKEW_SECONDS) {
    return {
      ok: false,
      code: 'stale',
      reason: `timestamp is ${skew}s away from now (more than ${MAX_SKEW_SECONDS}s)`,
    };
  }
  const mac = createHmac('sha256', opts.signingSecret);
  mac.update(`v0:${timestamp}:`);
  mac.update(opts.body);
  const expected = Buffer.from(`v0=${mac.digest('hex')}`, 'utf8');
  const given = Buffer.from(signature, 'utf8');
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    return { ok: false, code: 'signature_mismatch', reason: 'signature does not match' };
  }
  return { ok: true };
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** Slack's certificate check of a slash command URL: a form with `ssl_check=1` (and its `token`). */
function isSslCheck(req: IncomingMessage, body: Buffer): boolean {
  const type = req.headers['content-type'];
  if (
    typeof type !== 'string' ||
    type.split(';', 1)[0]!.trim().toLowerCase() !== 'application/x-www-form-urlencoded'
  ) {
    return false;
  }
  // The check is a short form; a click or command is never one, so a long body is not parsed here.
  if (body.length > 1024) return false;
  return new URLSearchParams(body.toString('utf8')).get('ssl_check') === '1';
}

const reply = (res: ServerResponse, status: number, text?: string) => {
  if (res.headersSent) return;
  res.writeHead(status, text ? { 'content-type': 'text/plain; charset=utf-8' } : {});
  res.end(text);
};

/**
 * Wraps Bolt's request listener: reads the body once, refuses unsigned, badly signed, stale or
 * future requests with 401 before Bolt sees them, then hands Bolt the buffered body (Bolt reuses a
 * `rawBody` buffer instead of reading the stream again).
 */
export function guardSlackRequests(opts: {
  signingSecret: string;
  inner: Listener;
  logger: Logger;
  now: () => number;
}): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  // A flood of forged or misconfigured requests writes at most a few lines a minute per cause.
  const refusals = createRefusalLog(opts.logger);
  return async (req, res) => {
    try {
      if (req.method !== 'POST') return reply(res, 405, 'POST only');
      let body: Buffer;
      try {
        body = await readBody(req, MAX_BODY_BYTES, []);
      } catch (err) {
        if (err instanceof ClientGoneError) return;
        if (err instanceof HttpError)
          return reply(res, err.status, err.status === 413 ? 'body too large' : err.message);
        throw err;
      }
      if (isSslCheck(req, body)) {
        // Slack's SSL check (`ssl_check=1&token=…`, unsigned) carries nothing to act on: it is
        // answered here and goes no further, whatever else its form holds.
        return reply(res, 200);
      }
      const verdict = verifySlackSignature({
        signingSecret: opts.signingSecret,
        body,
        timestamp: req.headers['x-slack-request-timestamp'],
        signature: req.headers['x-slack-signature'],
        nowMs: opts.now(),
      });
      if (!verdict.ok) {
        if (refusals.admit({ method: 'POST', route: '/slack/events', status: 401, code: verdict.code })) {
          opts.logger.warn(
            {
              code: verdict.code,
              reason: verdict.reason,
              client: req.socket.remoteAddress,
              retry: req.headers['x-slack-retry-num'],
            },
            'refused a Slack request (401): if Slack itself is refused, check SLACK_SIGNING_SECRET and the server clock',
          );
        }
        return reply(res, 401);
      }
      (req as IncomingMessage & { rawBody?: Buffer }).rawBody = body;
      opts.inner(req, res);
    } catch (err) {
      // Bolt throws this for a path or method it does not serve.
      if ((err as { code?: string }).code === 'slack_bolt_http_receiver_deferred_request_error') {
        return reply(res, 404);
      }
      opts.logger.error({ err: (err as Error).message }, 'Slack request handling failed');
      reply(res, 500);
    }
  };
}

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { HttpError, noteRefusal } from '../http/http-error.ts';
import { createLimiter } from '../http/limiter.ts';
import { ClientGoneError, readBody } from '../http/read-body.ts';
import { createRefusalLog } from '../http/refusal-log.ts';

/** Slack signs with the current time; anything further than this from our clock is refused. */
const MAX_SKEW_SECONDS = 300;
/** Slack's payloads are small; larger bodies are refused before any parsing. */
const MAX_BODY_BYTES = 256 * 1024;
/**
 * A request without well-formed signature headers can only be Slack's SSL check (a short form):
 * its body is read up to this much, so that unsigned requests cost next to no memory.
 */
const UNSIGNED_MAX_BYTES = 4 * 1024;
/**
 * Bodies of signed-looking requests read at once (the signature is checked once one is in), those
 * waiting for a turn, and how long one may wait: a flood of forged requests that hold their
 * bodies back costs a bounded amount of memory, never the process. Slack's requests are few.
 */
const READ_SLOTS = 16;
const READ_QUEUE = 64;
const READ_WAIT_MS = 5_000;
/** How long a body may take to arrive once its read began: Slack sends it at once. */
const BODY_DEADLINE_MS = 10_000;

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
  const headers = checkSignatureHeaders(opts);
  if (!headers.ok) return headers;
  const { timestamp, signature } = opts as { timestamp: string; signature: string };
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

/**
 * What can be checked of a Slack request's signature before its body is read: both headers well
 * formed, and the timestamp within 5 minutes either way.
 */
function checkSignatureHeaders(opts: {
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

const reply = (res: ServerResponse, status: number, text?: string, headers: Record<string, string> = {}) => {
  if (res.headersSent) return;
  res.writeHead(status, text ? { 'content-type': 'text/plain; charset=utf-8', ...headers } : headers);
  res.end(text);
};

/**
 * The shapes Bolt relies on without checking, in a body whose signature is good: a `payload`
 * form field holding a JSON object with a `type` (and, in a click or a modal's submission, a
 * `user` object with an `id`), a slash command's `command` and `user_id`, an Events API body that
 * is a JSON object. Only Slack can sign a body, so this guards against its own mistakes (and a
 * leaked signing secret): such a body would make Bolt fail without answering. Undefined when
 * the body is fine, else why not.
 */
function malformedPayload(req: IncomingMessage, body: Buffer): string | undefined {
  const type = String(req.headers['content-type'] ?? '')
    .split(';', 1)[0]!
    .trim()
    .toLowerCase();
  const object = (value: unknown): value is Record<string, unknown> =>
    typeof value === 'object' && value !== null && !Array.isArray(value);
  const parse = (text: string): unknown => {
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  };
  if (type === 'application/json') {
    return object(parse(body.toString('utf8'))) ? undefined : 'the body is not a JSON object';
  }
  if (type !== 'application/x-www-form-urlencoded') return undefined;
  const form = new URLSearchParams(body.toString('utf8'));
  const payload = form.get('payload');
  if (payload !== null) {
    const p = parse(payload);
    if (!object(p) || typeof p.type !== 'string') return 'its payload is not a JSON object with a type';
    if (USER_ACTIONS.has(p.type) && !(object(p.user) && typeof p.user.id === 'string')) {
      return `its ${p.type} payload names no user`;
    }
    return undefined;
  }
  if (form.has('command') && typeof form.get('user_id') !== 'string') return 'its command names no user';
  return undefined;
}

/** Interaction payloads that always come from a user. */
const USER_ACTIONS = new Set([
  'block_actions',
  'view_submission',
  'view_closed',
  'shortcut',
  'message_action',
  'block_suggestion',
]);

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
  /** The reads' bounds (see `READ_SLOTS`), for tests. */
  limits?: { slots: number; queue: number; waitMs: number; deadlineMs: number };
}): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const limits = opts.limits ?? {
    slots: READ_SLOTS,
    queue: READ_QUEUE,
    waitMs: READ_WAIT_MS,
    deadlineMs: BODY_DEADLINE_MS,
  };
  // A flood of forged or misconfigured requests writes at most a few lines a minute per cause.
  const refusals = createRefusalLog(opts.logger);
  const readers = createLimiter(limits.slots, limits.queue, limits.waitMs, 'Slack requests');
  return async (req, res) => {
    try {
      if (req.method !== 'POST') {
        noteRefusal(res, 'method_not_allowed', 'Slack requests are POSTs');
        return reply(res, 405, 'POST only');
      }
      const timestamp = req.headers['x-slack-request-timestamp'];
      const signature = req.headers['x-slack-signature'];
      // Checked before the body is read: a request that cannot be Slack's costs no read slot.
      const headers = checkSignatureHeaders({ timestamp, signature, nowMs: opts.now() });
      let body: Buffer;
      try {
        body = headers.ok
          ? await readers.run(() => readBody(req, MAX_BODY_BYTES, [], limits.deadlineMs))
          : await readBody(req, UNSIGNED_MAX_BYTES, [], limits.deadlineMs);
      } catch (err) {
        if (err instanceof ClientGoneError) return;
        if (err instanceof HttpError) {
          noteRefusal(res, err.code, err.message);
          if (err.status === 503) {
            opts.logger.warn({ err: err.message }, 'refused a Slack request (503): too many at once');
          }
          return reply(res, err.status, err.status === 413 ? 'body too large' : err.message, err.headers);
        }
        throw err;
      }
      if (isSslCheck(req, body)) {
        // Slack's SSL check (`ssl_check=1&token=…`, unsigned) carries nothing to act on: it is
        // answered here and goes no further, whatever else its form holds.
        return reply(res, 200);
      }
      const verdict = headers.ok
        ? verifySlackSignature({
            signingSecret: opts.signingSecret,
            body,
            timestamp,
            signature,
            nowMs: opts.now(),
          })
        : headers;
      if (!verdict.ok) {
        noteRefusal(res, verdict.code, verdict.reason);
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
      const malformed = malformedPayload(req, body);
      if (malformed) {
        noteRefusal(res, 'malformed', malformed);
        opts.logger.warn({ reason: malformed }, 'refused a signed Slack request (400): malformed');
        return reply(res, 400, `malformed Slack request: ${malformed}`);
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

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { HttpError, noteRefusal } from '../http/http-error.ts';
import { createLimiter } from '../http/limiter.ts';
import { askForBody, bodyUnasked, ClientGoneError, readBody } from '../http/read-body.ts';
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
 * The bodies of signed-looking requests (the signature is checked once one is in): read so many
 * at once, so many more waiting for a turn (for so long), and so many at once from one address.
 * Slack sends a whole body at once and gives up on an answer after 3 seconds, so a body still
 * coming after that is no request of Slack's: forged requests that hold their bodies back cost a
 * bounded amount of memory, hold a slot for 3 seconds at most, and from one address take only a
 * few of the slots.
 */
const READ_SLOTS = 64;
const READ_QUEUE = 64;
const READ_WAIT_MS = 1_000;
const READS_PER_CLIENT = 8;
const BODY_DEADLINE_MS = 3_000;

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
  return macMatches(opts.signingSecret, timestamp, signature, opts.body) ? { ok: true } : MISMATCH;
}

const MISMATCH: VerifyResult = { ok: false, code: 'signature_mismatch', reason: 'signature does not match' };

/** Whether `signature` (its headers checked) is the HMAC of the body, compared in constant time. */
function macMatches(secret: string, timestamp: string, signature: string, body: Buffer | string): boolean {
  const mac = createHmac('sha256', secret);
  mac.update(`v0:${timestamp}:`);
  mac.update(body);
  const expected = Buffer.from(`v0=${mac.digest('hex')}`, 'utf8');
  const given = Buffer.from(signature, 'utf8');
  return expected.length === given.length && timingSafeEqual(expected, given);
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
 * The shapes Bolt relies on without checking, in a body whose signature is good: a form holding
 * either a `payload` field with a JSON object with a `type` (and, in a click or a modal's
 * submission, a `user` object with an `id`) or a slash command's `command` and `user_id`; an
 * Events API body that is a JSON object. Only Slack can sign a body, so this guards against its
 * own mistakes (and a leaked signing secret): such a body would make Bolt fail without answering.
 * Undefined when the body is fine, else why not.
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
  if (form.has('command')) return form.get('user_id') === null ? 'its command names no user' : undefined;
  // Neither an interaction nor a command (nor the SSL check, answered before): Bolt would wait
  // for a listener that never comes, and answer 404 three seconds later.
  return 'it is neither an interaction (a payload) nor a slash command';
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
  limits?: { slots: number; queue: number; waitMs: number; perClient: number; deadlineMs: number };
}): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const limits = opts.limits ?? {
    slots: READ_SLOTS,
    queue: READ_QUEUE,
    waitMs: READ_WAIT_MS,
    perClient: READS_PER_CLIENT,
    deadlineMs: BODY_DEADLINE_MS,
  };
  /** Reads under way or waiting, per client address. */
  const perClient = new Map<string, number>();
  // A flood of forged or misconfigured requests writes at most a few lines a minute per cause.
  const refusals = createRefusalLog(opts.logger);
  const readers = createLimiter(limits.slots, limits.queue, limits.waitMs, 'Slack requests');
  /** Answers a refusal, and notes why for the request log. */
  const refuse = (
    res: ServerResponse,
    status: number,
    code: string,
    reason: string,
    text?: string,
    headers?: Record<string, string>,
  ) => {
    noteRefusal(res, code, reason);
    reply(res, status, text, headers);
  };
  /** Logs a refusal that says what to check, at most a few lines a minute per cause. */
  const logRefusal = (req: IncomingMessage, status: number, code: string, reason: string, msg: string) => {
    if (!refusals.admit({ method: 'POST', route: '/slack/events', status, code })) return;
    opts.logger.warn(
      { code, reason, client: req.socket.remoteAddress, retry: req.headers['x-slack-retry-num'] },
      msg,
    );
  };
  const SIGNATURE_HINT =
    'refused a Slack request (401): if Slack itself is refused, check SLACK_SIGNING_SECRET and the server clock';

  /** Reads a signed-looking request's body within the bounds above; undefined once answered. */
  async function readSigned(req: IncomingMessage, res: ServerResponse): Promise<Buffer | undefined> {
    const client = req.socket.remoteAddress ?? '';
    const mine = perClient.get(client) ?? 0;
    if (mine >= limits.perClient) {
      const reason = `${mine} Slack requests from this address are being read already`;
      logRefusal(
        req,
        503,
        'overloaded',
        reason,
        'refused a Slack request (503): too many at once from one address',
      );
      refuse(
        res,
        503,
        'overloaded',
        reason,
        `too many Slack requests in progress (${reason}): retry shortly`,
        {
          'retry-after': '1',
        },
      );
      return undefined;
    }
    perClient.set(client, mine + 1);
    try {
      // A client that waits for `100 Continue` is told to send its body only now.
      askForBody(req, res);
      return await readers.run(() => readBody(req, MAX_BODY_BYTES, [], limits.deadlineMs));
    } finally {
      const left = (perClient.get(client) ?? 1) - 1;
      if (left > 0) perClient.set(client, left);
      else perClient.delete(client);
    }
  }

  return async (req, res) => {
    try {
      if (req.method !== 'POST')
        return refuse(res, 405, 'method_not_allowed', 'Slack requests are POSTs', 'POST only');
      const timestamp = req.headers['x-slack-request-timestamp'];
      const signature = req.headers['x-slack-signature'];
      // Checked before the body is read: a request that cannot be Slack's takes no read slot.
      const headers = checkSignatureHeaders({ timestamp, signature, nowMs: opts.now() });
      // Dated outside the 5 minutes: refused on its headers (only an SSL check, which is
      // unsigned, needs its body read).
      if (!headers.ok && (headers.code === 'stale' || bodyUnasked(req, res))) {
        logRefusal(req, 401, headers.code, headers.reason, SIGNATURE_HINT);
        res.setHeader('connection', 'close');
        return refuse(res, 401, headers.code, headers.reason);
      }
      let body: Buffer | undefined;
      try {
        body = headers.ok
          ? await readSigned(req, res)
          : await readBody(req, UNSIGNED_MAX_BYTES, [], limits.deadlineMs);
        if (body === undefined) return;
      } catch (err) {
        if (err instanceof ClientGoneError) return;
        if (err instanceof HttpError) {
          // Said as the Slack endpoint's, not as the ingest's (whose limit the reader names).
          const reason =
            err.status === 413
              ? headers.ok
                ? `the body is over ${MAX_BODY_BYTES / 1024} KiB, more than Slack sends`
                : `a request without a valid Slack signature is read up to ${UNSIGNED_MAX_BYTES} bytes only (for Slack's SSL check)`
              : err.status === 408
                ? `the body did not arrive within ${limits.deadlineMs / 1000} s of its read starting (Slack sends it at once)`
                : err.message;
          if (err.status === 503)
            logRefusal(req, 503, err.code, reason, 'refused a Slack request (503): too many at once');
          return refuse(
            res,
            err.status,
            err.code,
            reason,
            err.status === 413 ? 'body too large' : reason,
            err.headers,
          );
        }
        throw err;
      }
      if (isSslCheck(req, body)) {
        // Slack's SSL check (`ssl_check=1&token=…`, unsigned) carries nothing to act on: it is
        // answered here and goes no further, whatever else its form holds.
        return reply(res, 200);
      }
      // The headers were checked before the read: only the MAC is left.
      const verdict = !headers.ok
        ? headers
        : macMatches(opts.signingSecret, timestamp as string, signature as string, body)
          ? headers
          : MISMATCH;
      if (!verdict.ok) {
        logRefusal(req, 401, verdict.code, verdict.reason, SIGNATURE_HINT);
        return refuse(res, 401, verdict.code, verdict.reason);
      }
      const malformed = malformedPayload(req, body);
      if (malformed) {
        logRefusal(req, 400, 'malformed', malformed, 'refused a signed Slack request (400): malformed');
        return refuse(res, 400, 'malformed', malformed, `malformed Slack request: ${malformed}`);
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

/**
 * Slack delivery: a per-channel queue that posts at most one message a second to each channel
 * (Slack's documented chat.postMessage pace), honours 429 `Retry-After`, and sorts failures into
 * those worth retrying and those that only a person can fix (shown by `problems()`).
 */

/**
 * Slack errors that retrying cannot fix, with what to do about them; `needed` is the scope Slack
 * names in a `missing_scope` answer (see `neededScopes`).
 */
const UNFIXABLE_ERRORS: Readonly<Record<string, (channel: string, needed?: string) => string>> = {
  channel_not_found: (ch) =>
    `Slack says channel ${ch} does not exist or the bot cannot see it (channel_not_found): set SLACK_ALERT_CHANNEL to the channel's id (channel details > About, at the bottom), and for a private channel invite the app with /invite @arc-responder.`,
  not_in_channel: (ch) =>
    `The bot is not a member of ${ch} (not_in_channel): run /invite @arc-responder in that channel.`,
  is_archived: (ch) =>
    `Channel ${ch} is archived (is_archived): unarchive it or set SLACK_ALERT_CHANNEL to another channel.`,
  invalid_auth: () =>
    'Slack rejected SLACK_BOT_TOKEN (invalid_auth): copy the Bot User OAuth Token (xoxb-...) from OAuth & Permissions of the installed app.',
  not_authed: () =>
    'No Slack token was sent (not_authed): set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-...).',
  account_inactive: () =>
    'The Slack token belongs to a deactivated app or user (account_inactive): reinstall the app to the workspace and update SLACK_BOT_TOKEN.',
  token_revoked: () =>
    'SLACK_BOT_TOKEN was revoked (token_revoked): reinstall the app to the workspace and update SLACK_BOT_TOKEN.',
  token_expired: () =>
    'SLACK_BOT_TOKEN expired (token_expired): turn token rotation off in the app settings (manifest.yml does) and reinstall.',
  missing_scope: (_ch, needed) => {
    const what = !needed
      ? 'a scope the app needs'
      : needed.includes(',')
        ? `the ${needed} scopes Slack says are needed`
        : `the ${needed} scope Slack says is needed`;
    return `The bot token lacks ${what} (missing_scope): update the app from manifest.yml and reinstall it to the workspace.`;
  },
  restricted_action: (ch) =>
    `The workspace does not let the bot post in ${ch} (restricted_action): ask a Slack admin to allow apps to post there.`,
};

/** A failed Slack delivery. `retryable: false` means a person must fix something first. */
export class SlackDeliveryError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly fix?: string;
  /** The HTTP status of an answer that was not 200 (not for a 429). */
  httpStatus?: number;
  /** The socket's error code when no answer came (`ECONNREFUSED`, `ETIMEDOUT`, ...). */
  socketCode?: string;
  /** The call got no answer at all (a network failure or a timeout). */
  unanswered?: boolean;
  /**
   * Only this message failed (Slack refuses its content): other deliveries may go on. Read by the
   * outbox, which then retries this item alone instead of pausing every delivery.
   */
  itemOnly?: boolean;
  /** The call was not sent at all: the queue refused it while Slack's 429 back-off lasted. */
  unsent?: boolean;
  /** A message Slack said earlier is gone: the call was not sent, and the log has said so. */
  goneBefore?: boolean;
  constructor(code: string, message: string, retryable: boolean, fix?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SlackDeliveryError';
    this.code = code;
    this.retryable = retryable;
    if (fix !== undefined) this.fix = fix;
  }
}

/**
 * Slack refused the message itself, its layout or its size: the same message is refused again,
 * whatever the channel or the token. Nothing was posted.
 */
export const CONTENT_REFUSED: ReadonlySet<string> = new Set([
  'invalid_blocks',
  'invalid_blocks_format',
  'invalid_attachments',
  'invalid_arguments',
  'msg_too_long',
  // The blocks' undocumented total size (see TOTAL_TEXT_BUDGET).
  'msg_blocks_too_long',
  'no_text',
  'too_many_attachments',
]);

/** Slack refused a message's metadata: nothing was posted; the message goes without it. */
export const METADATA_REFUSED: ReadonlySet<string> = new Set([
  'invalid_metadata_format',
  'invalid_metadata_schema',
  'metadata_too_large',
  'metadata_must_be_sent_from_app',
]);

/**
 * Slack errors after which a call certainly did nothing (a person must fix something, or the
 * request itself was refused). Anything else (`internal_error`, an answer without ts, ...) may
 * have done it.
 */
const REFUSED = new Set([
  ...Object.keys(UNFIXABLE_ERRORS),
  'rate_limited',
  // Slack's own word for a rate-limited call answered `ok: false` (HTTP 200): nothing was done.
  'ratelimited',
  ...CONTENT_REFUSED,
  ...METADATA_REFUSED,
]);

/** Network errors that happen before a request is sent: it never reached Slack. */
const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH']);

/** What a Slack error code looks like (`channel_not_found`); anything else is not Slack's answer. */
const SLACK_ERROR_CODE = /^[a-z0-9_.]{1,64}$/;
/** The code of an answer that was not a Web API answer (an HTML page from a proxy, say). */
const INVALID_RESPONSE = 'invalid_response';

/** Slack errors that pass by themselves. */
const TRANSIENT_ERRORS = new Set([
  INVALID_RESPONSE,
  'internal_error',
  'fatal_error',
  'service_unavailable',
  'request_timeout',
  'ratelimited',
]);

/**
 * The error codes that `arc_chat_api_failures_total` names; any other counts as `other` (the log
 * line still names it). A fixed set, so that a proxy on SLACK_API_URL that answers codes of its
 * own cannot make series without end: those the service handles or gives itself (a network
 * failure or a timeout is `request_failed`), and Slack's common ones.
 */
const API_FAILURE_REASONS: ReadonlySet<string> = new Set([
  ...REFUSED,
  ...TRANSIENT_ERRORS,
  'request_failed',
  'bad_response',
  // The alert's message is gone or too old to edit.
  'message_not_found',
  'cant_update_message',
  'edit_window_closed',
  'thread_not_found',
  'unknown_method',
  'method_deprecated',
  'deprecated_endpoint',
  'not_allowed_token_type',
  'no_permission',
  'team_access_not_granted',
  'ekm_access_denied',
  'accesslimited',
  'two_factor_setup_required',
  'invalid_arg_name',
  'invalid_form_data',
  'invalid_post_type',
  'missing_post_type',
  'invalid_charset',
  'invalid_cursor',
]);

/** The `reason` label of a failed chat API call with Slack error `code`. */
export const apiFailureReason = (code: string): string => (API_FAILURE_REASONS.has(code) ? code : 'other');

/**
 * Whether a failed call certainly did nothing on Slack's side: Slack refused it, it was refused as
 * a request (HTTP 4xx) or as unavailable (503), or the connection was never made. A timeout, a
 * reset connection, a 500, and a gateway's 502 or 504 (it may have passed the call on, and given
 * up waiting for the answer) may have done it.
 */
export function certainlyNotDone(e: SlackDeliveryError): boolean {
  if (REFUSED.has(e.code)) return true;
  const status = e.httpStatus;
  if (status !== undefined) return (status >= 400 && status < 500) || status === 503;
  return e.socketCode !== undefined && NEVER_SENT.has(e.socketCode);
}

/**
 * Whether a failed call may succeed if asked again: a 429, a 5xx, no answer at all, or a Slack
 * error that passes by itself. Anything else (`missing_scope`, `unknown_method`, a 404) will not.
 */
export function isTransient(e: SlackDeliveryError): boolean {
  if (e.code === 'rate_limited' || TRANSIENT_ERRORS.has(e.code) || e.unanswered === true) return true;
  return e.httpStatus !== undefined && e.httpStatus >= 500;
}

/** The Slack error code of a Web API failure (`channel_not_found`, ...), if it carries one. */
function slackErrorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; data?: { error?: unknown } } | undefined;
  if (e?.code === 'slack_webapi_platform_error' && typeof e.data?.error === 'string') return e.data.error;
  return undefined;
}

/** What a Slack scope name looks like (`chat:write`, `chat:write.public`, `bot`). */
const SCOPE_NAME = /^[a-z][a-z0-9_.:-]{0,63}$/;

/**
 * The scopes a `missing_scope` answer names as `needed` (comma-separated), those that look like
 * scope names only and at most four, so that a proxy's odd answer stays out of the log and
 * `/readyz`; undefined when it names none.
 */
function neededScopes(err: unknown): string | undefined {
  const needed = (err as { data?: { needed?: unknown } } | undefined)?.data?.needed;
  if (typeof needed !== 'string' || needed.length > 300) return undefined;
  const scopes = needed
    .split(',')
    .map((scope) => scope.trim())
    .filter((scope) => SCOPE_NAME.test(scope));
  return scopes.length > 0 ? scopes.slice(0, 4).join(', ') : undefined;
}

/** Seconds to wait for a 429, when `err` is one. */
export function retryAfterSeconds(err: unknown): number | undefined {
  const e = err as { code?: unknown; retryAfter?: unknown } | undefined;
  if (e?.code !== 'slack_webapi_rate_limited_error') return undefined;
  return typeof e.retryAfter === 'number' && Number.isFinite(e.retryAfter) && e.retryAfter >= 0
    ? e.retryAfter
    : 1;
}

/**
 * The `reason` a failed answer counts under in `arc_chat_api_failures_total` (`apiFailureReason`
 * then bounds it), given its classified error `e`: Slack's error code, and for a 429 Slack's own
 * `ratelimited` (the code in the 429's body), the same as a rate-limit refusal answered `ok: false`.
 */
export function failureReason(err: unknown, e: SlackDeliveryError): string {
  return retryAfterSeconds(err) !== undefined ? 'ratelimited' : e.code;
}

/** Classifies a Web API failure for `channel`. */
export function classify(err: unknown, channel: string): SlackDeliveryError {
  if (err instanceof SlackDeliveryError) return err;
  const code = slackErrorCode(err);
  if (code !== undefined && !SLACK_ERROR_CODE.test(code)) {
    // Not Slack's word: a proxy's or gateway's page came back instead. It may have passed the
    // call on, so it is not known to have done nothing; its text stays out of logs and labels.
    return new SlackDeliveryError(
      INVALID_RESPONSE,
      "Slack's answer was not a Web API answer (an HTML page from a proxy or gateway?); check SLACK_API_URL and any proxy in between",
      true,
      undefined,
      { cause: err },
    );
  }
  if (code) {
    const fix = UNFIXABLE_ERRORS[code]?.(channel, neededScopes(err));
    return new SlackDeliveryError(code, `Slack refused the call: ${code}`, fix === undefined, fix, {
      cause: err,
    });
  }
  if (retryAfterSeconds(err) !== undefined) {
    return new SlackDeliveryError(
      'rate_limited',
      'Slack kept answering 429 (rate limited)',
      true,
      undefined,
      {
        cause: err,
      },
    );
  }
  const message = err instanceof Error ? err.message : String(err);
  const failed = new SlackDeliveryError(
    'request_failed',
    `Slack request failed: ${message}`,
    true,
    undefined,
    {
      cause: err,
    },
  );
  const e = err as
    | { code?: unknown; statusCode?: unknown; original?: { cause?: { code?: unknown } } }
    | undefined;
  if (e?.code === 'slack_webapi_http_error') failed.httpStatus = Number(e.statusCode);
  else if (e?.code === 'slack_webapi_request_error') {
    failed.unanswered = true;
    // fetch's "fetch failed" carries the socket's error as its cause.
    const socket = e.original?.cause?.code;
    if (typeof socket === 'string') failed.socketCode = socket;
  }
  return failed;
}

export interface DeliveryQueueOptions {
  /** Least time between two posts to the same channel; 1000 ms unless tests set less. */
  intervalMs?: number;
  /** How many 429 answers one call may get before it fails (retryable). */
  maxRateLimitRetries?: number;
  /**
   * Longest wait (429 back-off plus pacing) one call accepts before failing as retryable, so a
   * caller with a deadline (the outbox's delivery timeout) is not left waiting. Default 15 s.
   */
  maxWaitMs?: number;
  /** Waits; injectable so that tests do not wait for real. */
  sleep?: (ms: number) => Promise<void>;
  /**
   * The clock the waits are measured on. Default: a monotonic one, so that a wall clock set back
   * (an NTP step, a VM's clock corrected) does not hold every post back as rate limited for as long.
   */
  now?: () => number;
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A call waiting for its turn in a lane. */
interface Waiting {
  /** A new alert: it goes before the thread lines waiting in its lane. */
  first: boolean;
  /** When it joined the lane (the queue's clock). */
  since: number;
  /** Makes the call; settles the caller's promise, never rejects. */
  start: () => Promise<void>;
}

/**
 * How long a thread line lets new alerts go first: past that it takes its turn, so that a flood of
 * alerts delays the audit lines of a channel but never holds them back for good.
 */
const LINE_PATIENCE_MS = 15_000;

/** Runs Slack calls one at a time per channel, paced and with 429 handling. */
export class DeliveryQueue {
  /** The calls waiting in each lane that has one under way. */
  readonly #lanes = new Map<string, Waiting[]>();
  readonly #lastPost = new Map<string, number>();
  /** Lane (posts or updates, of one channel) → time before which nothing may be sent there (after a 429). */
  readonly #blockedUntil = new Map<string, number>();
  readonly #interval: number;
  readonly #maxRetries: number;
  readonly #maxWait: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #now: () => number;

  constructor(opts: DeliveryQueueOptions = {}) {
    this.#interval = opts.intervalMs ?? 1000;
    this.#maxRetries = opts.maxRateLimitRetries ?? 5;
    this.#maxWait = opts.maxWaitMs ?? 15_000;
    this.#sleep = opts.sleep ?? realSleep;
    this.#now = opts.now ?? (() => performance.now());
  }

  /**
   * Queues `call` on `channel`. `paced` calls (new messages, thread lines) keep the per-channel
   * interval; others (updates) only wait their turn and any 429 back-off. Posts and updates wait in
   * separate lines, each with its own 429 back-off: Slack limits `chat.update` apart from
   * `chat.postMessage`, so a burst of updates that Slack slows down never holds back a new alert.
   * A `first` call (a new alert) goes before the thread lines waiting in its line, unless they have
   * waited `LINE_PATIENCE_MS`: twenty audit lines of a burst of clicks do not make the next alert
   * twenty seconds late. With `failWhenLimited`, a call that would wait for a 429 back-off fails at
   * once instead (retryable, `rate_limited`; `unsent` when it was not sent at all), for a caller
   * that retries later by itself. Failures reject with a classified `SlackDeliveryError`.
   */
  run<T>(
    channel: string,
    paced: boolean,
    call: () => Promise<T>,
    opts: { failWhenLimited?: boolean; first?: boolean } = {},
  ): Promise<T> {
    const lane = `${paced ? 'post' : 'update'}\u0000${channel}`;
    const failWhenLimited = opts.failWhenLimited === true;
    // Not queued behind calls that wait out the back-off either.
    const held = failWhenLimited ? this.#heldBack(lane) : undefined;
    if (held) return Promise.reject(held);
    return new Promise<T>((resolve, reject) => {
      const start = () => this.#attempt(lane, channel, paced, call, failWhenLimited).then(resolve, reject);
      const waiting = this.#lanes.get(lane);
      const job = { first: opts.first === true, since: this.#now(), start };
      if (waiting) waiting.push(job);
      else {
        this.#lanes.set(lane, [job]);
        // From the next turn: calls queued with it meanwhile take their places first.
        queueMicrotask(() => void this.#drain(lane));
      }
    });
  }

  /** Makes the calls of `lane` one after another, new alerts first (see `run`), then forgets it. */
  async #drain(lane: string): Promise<void> {
    const waiting = this.#lanes.get(lane)!;
    while (waiting.length > 0) {
      const now = this.#now();
      const next = waiting.findIndex((w) => w.first || now - w.since >= LINE_PATIENCE_MS);
      const [job] = waiting.splice(Math.max(next, 0), 1);
      await job!.start();
    }
    this.#lanes.delete(lane);
  }

  async #attempt<T>(
    lane: string,
    channel: string,
    paced: boolean,
    call: () => Promise<T>,
    failWhenLimited: boolean,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const held = failWhenLimited ? this.#heldBack(lane) : undefined;
      if (held) {
        // After a 429 answer to this very call, it was sent.
        if (attempt > 0) delete held.unsent;
        throw held;
      }
      const notBefore = Math.max(
        this.#blockedUntil.get(lane) ?? 0,
        paced ? (this.#lastPost.get(channel) ?? Number.NEGATIVE_INFINITY) + this.#interval : 0,
      );
      const wait = notBefore - this.#now();
      if (wait > this.#maxWait) {
        throw new SlackDeliveryError(
          'rate_limited',
          `Slack asked to wait ${Math.ceil(wait / 1000)}s (rate limited); try later`,
          true,
        );
      }
      if (wait > 0) await this.#sleep(wait);
      try {
        const result = await call();
        if (paced) this.#lastPost.set(channel, this.#now());
        return result;
      } catch (err) {
        const seconds = retryAfterSeconds(err);
        if (seconds === undefined || attempt >= this.#maxRetries) throw classify(err, channel);
        this.#blockedUntil.set(lane, this.#now() + seconds * 1000);
      }
    }
  }

  /** The error of a call that may not wait, while `lane`'s 429 back-off lasts; else undefined. */
  #heldBack(lane: string): SlackDeliveryError | undefined {
    const blocked = (this.#blockedUntil.get(lane) ?? 0) - this.#now();
    if (blocked <= 0) return undefined;
    const e = new SlackDeliveryError(
      'rate_limited',
      `Slack asked to wait ${Math.ceil(blocked / 1000)}s (rate limited); not sent, to be retried later`,
      true,
    );
    e.unsent = true;
    return e;
  }
}

/** Unfixable delivery problems, by kind, for `/readyz`; cleared when a later call succeeds. */
export class DeliveryProblems {
  readonly #problems = new Map<string, string>();
  /** Alerts whose message Slack refuses even in plain form, with Slack's word for it. */
  readonly #refused = new Map<string, string>();

  /** Slack refuses the alert's message, full and plain: shown until it is posted or dropped. */
  messageRefused(alertId: string, code: string): void {
    this.#refused.delete(alertId);
    this.#refused.set(alertId, code);
    // Bounded: the oldest names go first; the count still says how many there were.
    if (this.#refused.size > 100) this.#refused.delete(this.#refused.keys().next().value!);
  }

  /** The alert's message was posted (or is gone for good). */
  messageSettled(alertId: string): void {
    this.#refused.delete(alertId);
  }

  /**
   * Records a problem; the key groups problems that one fix clears. True when it is new (not
   * already recorded since the last success), so that it is logged at error once per cause.
   */
  record(err: SlackDeliveryError, channel: string): boolean {
    if (err.retryable || !err.fix) return true;
    const key = this.#keyOf(err.code, channel);
    // Slack refusing a channel took the token: a token problem recorded earlier is gone.
    if (key !== 'token') this.#problems.delete('token');
    const known = this.#problems.get(key) === err.fix;
    this.#problems.set(key, err.fix);
    return !known;
  }

  /** A call to `channel` succeeded: its channel problems and any token problem are gone. */
  succeeded(channel: string): void {
    for (const key of [...this.#problems.keys()]) {
      if (key === 'token' || key === `channel:${channel}`) this.#problems.delete(key);
    }
  }

  /** Slack accepted the token (`auth.test` succeeded): token problems are gone, channel ones stay. */
  tokenAccepted(): void {
    this.#problems.delete('token');
  }

  list(): string[] {
    return [...this.#problems.values()];
  }

  /** The alerts Slack refuses in every form: one alert's content, so readiness holds (a warning). */
  warnings(): string[] {
    const n = this.#refused.size;
    if (n === 0) return [];
    const codes = [...new Set(this.#refused.values())].join(', ');
    const ids = [...this.#refused.keys()].slice(-3).join(', ');
    return [
      `Slack refuses ${n} alert message${n === 1 ? '' : 's'} in every form, text alone too (${codes}): ${n === 1 ? 'it is' : 'they are'} retried while the other alerts are posted; the log names each (alert ${ids}), and /arc-history lists ${n === 1 ? 'its pair' : 'their pairs'}`,
    ];
  }

  #keyOf(code: string, channel: string): string {
    return ['channel_not_found', 'not_in_channel', 'is_archived', 'restricted_action'].includes(code)
      ? `channel:${channel}`
      : 'token';
  }
}

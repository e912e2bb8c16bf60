import type { AuthorizeResult } from '@slack/bolt';
import type { Logger } from 'pino';
import { classify, type DeliveryProblems, retryAfterSeconds } from './delivery-queue.ts';

/** Who the bot is, as `auth.test` says. */
export interface BotIdentity {
  botUserId: string;
  botId?: string;
  teamId?: string;
}

/** The one Web API call this needs. */
export interface AuthTestClient {
  auth: { test(): Promise<{ user_id?: string; bot_id?: string; team_id?: string }> };
}

export interface BotAuthOptions {
  client: AuthTestClient;
  botToken: string;
  problems: DeliveryProblems;
  logger: Logger;
  /** Names the channel in problems that are about it (`classify`). */
  alertChannel: string;
  /** First wait before `auth.test` is tried again after a failure retrying can fix (1 s). */
  retryBaseMs?: number;
  /** Longest wait between two tries (5 minutes). */
  retryMaxMs?: number;
}

/**
 * Calls `auth.test` once and keeps what it says, for Bolt's `authorize`.
 *
 * - `start()` makes the first call and never throws. A failure that retrying can fix (Slack
 *   unreachable, 5xx, 429) is retried in the background with exponential backoff (1 s doubling to
 *   5 minutes, or Slack's `Retry-After` when longer) until it succeeds or `stop()`.
 * - A failure that only a person can fix (`invalid_auth`, `token_revoked`, ...) is shown through
 *   `problems()` (so `/readyz`) and the logs with its fix, and not retried: the token comes from
 *   the environment, so fixing it means a restart anyway.
 * - `authorize` never calls Slack: it answers with the bot token, plus the bot's ids once known.
 *   Slash commands and button clicks therefore never wait for, or fail with, `auth.test`.
 */
export class BotAuth {
  readonly #opts: BotAuthOptions;
  #identity: BotIdentity | undefined;
  #attempt: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #stopped = false;

  constructor(opts: BotAuthOptions) {
    this.#opts = opts;
  }

  /** The bot's identity once `auth.test` has answered. */
  get identity(): BotIdentity | undefined {
    return this.#identity;
  }

  /** Bolt's `authorize`: answers from memory, never with a Web API call. */
  readonly authorize = async (): Promise<AuthorizeResult> => {
    const id = this.#identity;
    return {
      botToken: this.#opts.botToken,
      ...(id ? { botUserId: id.botUserId, ...(id.botId ? { botId: id.botId } : {}) } : {}),
    };
  };

  /** Runs the first `auth.test` (retries continue in the background). Never rejects. */
  start(): Promise<void> {
    this.#stopped = false;
    return this.#try();
  }

  /** Stops background retries. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #try(): Promise<void> {
    if (this.#identity || this.#stopped) return Promise.resolve();
    this.#attempt ??= this.#call().finally(() => {
      this.#attempt = undefined;
    });
    return this.#attempt;
  }

  async #call(): Promise<void> {
    const { client, problems, logger, alertChannel } = this.#opts;
    try {
      const res = await client.auth.test();
      if (typeof res.user_id !== 'string') throw new Error('auth.test answered without a user_id');
      this.#identity = {
        botUserId: res.user_id,
        ...(typeof res.bot_id === 'string' ? { botId: res.bot_id } : {}),
        ...(typeof res.team_id === 'string' ? { teamId: res.team_id } : {}),
      };
      this.#failures = 0;
      problems.tokenAccepted();
      logger.info({ ...this.#identity }, 'Slack accepted the bot token (auth.test)');
    } catch (err) {
      const e = classify(err, alertChannel);
      if (!e.retryable) {
        // Shown by /readyz; the service keeps running so that the rest of it stays useful.
        problems.record(e, alertChannel);
        logger.error({ code: e.code, fix: e.fix }, `Slack auth.test failed: ${e.fix ?? e.message}`);
        return;
      }
      this.#failures += 1;
      const { retryBaseMs = 1000, retryMaxMs = 5 * 60 * 1000 } = this.#opts;
      const backoff = Math.min(retryMaxMs, retryBaseMs * 2 ** Math.min(this.#failures - 1, 30));
      const waitMs = Math.max(backoff, (retryAfterSeconds(err) ?? 0) * 1000);
      logger.warn(
        { code: e.code, err: e.message, retryInMs: waitMs, failures: this.#failures },
        'Slack auth.test failed; trying again in the background (clicks and commands keep working)',
      );
      if (this.#stopped) return;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.#try();
      }, waitMs);
      this.#timer.unref();
    }
  }
}

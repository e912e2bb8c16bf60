import { App, type Authorize, HTTPReceiver, SocketModeReceiver, webApi } from '@slack/bolt';
import type { ExtendedErrorHandler } from '@slack/bolt/dist/App.js';
import type { Logger } from 'pino';
import { describeError, isStoreDown } from '../store/store-error.ts';
import { register as registerActions } from './actions/index.ts';
import { type Respond, reply } from './authorise.ts';
import { boltLogger } from './bolt-logger.ts';
import { register as registerCommands } from './commands/index.ts';
import type { SlackContext } from './context.ts';
import { registerDedupe } from './dedupe.ts';
import type { SocketClient } from './socket-supervisor.ts';
import { registerUnknownRequests } from './unknown-requests.ts';
import { register as registerViews } from './views/index.ts';

/** The Slack settings the app needs (`Config['slack']`). */
export interface SlackSettings {
  botToken: string;
  signingSecret: string;
  appToken?: string;
  apiUrl: string;
}

/** The Bolt app with its receiver: HTTP (`/slack/events`) or Socket Mode with an app token. */
export interface BoltApp {
  app: App;
  /** Set in HTTP mode. */
  http?: HTTPReceiver;
  socketMode: boolean;
  /** Set in Socket Mode: the client that holds the WebSocket. */
  socketClient?: SocketClient;
}

/** Web API client tuning shared by our client and the clients Bolt hands to listeners. */
export interface ClientTuning {
  webApiRetries?: number;
  slackTimeoutMs?: number;
}

/**
 * The Web API client options: rate-limited calls are rejected to our delivery queue instead of
 * being retried inside the client (which would stall every call).
 */
function clientOptions(settings: SlackSettings, opts: ClientTuning): webApi.WebClientOptions {
  return {
    slackApiUrl: settings.apiUrl,
    rejectRateLimitedCalls: true,
    retryConfig: { retries: opts.webApiRetries ?? 2, factor: 2, minTimeout: 500, maxTimeout: 5000 },
    timeout: opts.slackTimeoutMs ?? 15_000,
  };
}

/** The bot-token Web API client that posts alerts, expands user groups and calls `auth.test`. */
export function createWebClient(
  settings: SlackSettings,
  logger: Logger,
  opts: ClientTuning = {},
): webApi.WebClient {
  return new webApi.WebClient(settings.botToken, {
    ...clientOptions(settings, opts),
    logger: boltLogger(logger),
  });
}

/**
 * Creates the Bolt app. Bolt is given an `authorize` function instead of the token: with a token
 * and without `botId`/`botUserId`, Bolt 5 runs `auth.test` on every incoming request when token
 * verification is off (and in its constructor when on), so a rate-limited or failed `auth.test`
 * would drop clicks and commands. `authorize` (see `BotAuth`) answers from memory: the bot token,
 * plus the bot's ids once the single `auth.test` at start has told them.
 */
export function createBoltApp(
  settings: SlackSettings,
  logger: Logger,
  opts: ClientTuning & { authorize: Authorize<boolean> },
): BoltApp {
  const log = boltLogger(logger);
  const socketMode = Boolean(settings.appToken);
  const receiver = settings.appToken
    ? new SocketModeReceiver({
        appToken: settings.appToken,
        logger: log,
        // The client that opens the WebSocket (apps.connections.open) calls the same API base,
        // with a timeout and a few quick retries: its defaults (no timeout, 100 retries with
        // waits that grow without bound) would leave the socket down for minutes after Slack is
        // back. A start that fails is started again by the supervisor (`superviseSocket`).
        installerOptions: {
          clientOptions: {
            slackApiUrl: settings.apiUrl,
            timeout: 15_000,
            retryConfig: { retries: 2, factor: 2, minTimeout: 1000, maxTimeout: 5000 },
          },
        },
      })
    : new HTTPReceiver({
        signingSecret: settings.signingSecret,
        endpoints: ['/slack/events'],
        logger: log,
        // Our handlers ack first, and a request none of them serves is acked by
        // `registerUnknownRequests`; Bolt's own answer after 3 s is the last resort.
        unhandledRequestTimeoutMillis: 3001,
      });
  const app = new App({
    authorize: opts.authorize,
    receiver,
    logger: log,
    clientOptions: clientOptions(settings, opts),
    // The error handler is given the request's body, so that it can answer the clicker.
    extendedErrorHandler: true,
  });
  return receiver instanceof SocketModeReceiver
    ? { app, socketMode, socketClient: receiver.client }
    : { app, socketMode, http: receiver };
}

/** Registers the middleware and every handler on the app. */
export function registerHandlers(app: App, ctx: SlackContext): void {
  registerDedupe(app, ctx.store, ctx.logger);
  registerUnknownRequests(app, ctx.logger);
  registerActions(app, ctx);
  registerViews(app, ctx);
  registerCommands(app, ctx);
  app.error(async ({ error, body }: Parameters<ExtendedErrorHandler>[0]) => {
    const cause = (error as { original?: unknown }).original ?? error;
    const storeDown = isStoreDown(cause);
    ctx.logger.error(
      { err: describeError(cause), code: (cause as { code?: unknown }).code },
      storeDown
        ? 'Slack handler failed: the store did not answer; check the store (/readyz)'
        : 'Slack handler failed',
    );
    await tellClicker(ctx, body, storeDown ? STORE_DOWN_NOTE : FAILED_NOTE);
  });
}

/** The private note to a click or command whose handler failed before it could answer. */
export const STORE_DOWN_NOTE =
  ':warning: arc-responder could not finish this: its store did not answer. Look at the alert before you try again in a minute; the service’s /readyz says when the store is back.';
export const FAILED_NOTE =
  ':warning: arc-responder could not finish this because of an unexpected error; its log has the details. Look at the alert before you try again.';

/**
 * Answers a failed click or slash command privately through its `response_url` (a view submission
 * has none: its modal has closed), so that the person is not left waiting on silence. Bolt hands
 * the error handler no `respond`, so it is made here; `reply` says in the log when it fails.
 */
async function tellClicker(ctx: SlackContext, body: unknown, text: string): Promise<void> {
  const url = (body as { response_url?: unknown } | undefined)?.response_url;
  if (typeof url !== 'string' || !/^https?:\/\//.test(url)) return;
  const respond: Respond = async (message) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(message),
      signal: AbortSignal.timeout(REPLY_TIMEOUT_MS),
    });
    if (!res.ok) throw new Error(`Slack answered ${res.status}`);
  };
  await reply(ctx, respond, text);
}

const REPLY_TIMEOUT_MS = 5000;

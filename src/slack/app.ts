import { App, type Authorize, HTTPReceiver, SocketModeReceiver, webApi } from '@slack/bolt';
import type { Logger } from 'pino';
import { register as registerActions } from './actions/index.ts';
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
  app.error(async (err) => {
    ctx.logger.error({ err: err.message, code: (err as { code?: string }).code }, 'Slack handler failed');
  });
}

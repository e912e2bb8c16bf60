import { App, HTTPReceiver, SocketModeReceiver } from '@slack/bolt';
import type { Logger } from 'pino';
import { register as registerActions } from './actions/index.ts';
import { boltLogger } from './bolt-logger.ts';
import { register as registerCommands } from './commands/index.ts';
import type { SlackContext } from './context.ts';
import { registerDedupe } from './dedupe.ts';
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
}

/**
 * Creates the Bolt app. Rate-limited calls are rejected to our delivery queue instead of being
 * retried inside the client (which would stall every call), and `auth.test` waits for the first
 * request instead of running in the constructor.
 */
export function createBoltApp(
  settings: SlackSettings,
  logger: Logger,
  opts: { webApiRetries?: number; slackTimeoutMs?: number } = {},
): BoltApp {
  const log = boltLogger(logger);
  const socketMode = Boolean(settings.appToken);
  const receiver = settings.appToken
    ? new SocketModeReceiver({ appToken: settings.appToken, logger: log })
    : new HTTPReceiver({
        signingSecret: settings.signingSecret,
        endpoints: ['/slack/events'],
        logger: log,
        // Our handlers ack first; an unanswered request still gets Bolt's answer after 3 s.
        unhandledRequestTimeoutMillis: 3001,
      });
  const app = new App({
    token: settings.botToken,
    receiver,
    logger: log,
    tokenVerificationEnabled: false,
    clientOptions: {
      slackApiUrl: settings.apiUrl,
      rejectRateLimitedCalls: true,
      retryConfig: { retries: opts.webApiRetries ?? 2, factor: 2, minTimeout: 500, maxTimeout: 5000 },
      timeout: opts.slackTimeoutMs ?? 15_000,
    },
  });
  return socketMode ? { app, socketMode } : { app, socketMode, http: receiver as HTTPReceiver };
}

/** Registers the middleware and every handler on the app. */
export function registerHandlers(app: App, ctx: SlackContext): void {
  registerDedupe(app, ctx.store, ctx.logger);
  registerActions(app, ctx);
  registerViews(app, ctx);
  registerCommands(app, ctx);
  app.error(async (err) => {
    ctx.logger.error({ err: err.message, code: (err as { code?: string }).code }, 'Slack handler failed');
  });
}

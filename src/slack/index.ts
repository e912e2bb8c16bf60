import type { Logger } from 'pino';
import type { ChatAdapter } from '../chat-adapter.ts';
import type { Config } from '../config.ts';
import type { AuditObserver } from '../core/audit.ts';
import type { History } from '../core/history.ts';
import type { StateStore } from '../core/ports.ts';
import type { Enricher, Remediator } from '../core/remediation.ts';
import { waitAtMost } from '../timeout.ts';
import { MarksWork, marksLockKey, resumeMarks } from './actions/revoked-elsewhere.ts';
import { createBoltApp, createWebClient, registerHandlers } from './app.ts';
import { portalForArm } from './blocks/alert.ts';
import { BotAuth } from './bot-identity.ts';
import type { SlackContext } from './context.ts';
import { DeliveryProblems, DeliveryQueue } from './delivery-queue.ts';
import { sweepFollowUps } from './follow-ups.ts';
import { createMessenger, type DeliveryFailureCounter } from './messenger.ts';
import { createResponderCheck } from './responders.ts';
import { createSlackSink } from './sink.ts';
import { type SocketSupervisor, superviseSocket } from './socket-supervisor.ts';
import { ActiveRuns, STALE_SWEEP_INTERVAL_MS, settleRunsAtStop, sweepStaleRuns } from './stale-runs.ts';
import { guardSlackRequests } from './verify.ts';

export { SlackDeliveryError } from './delivery-queue.ts';

/** Knobs for tests and unusual deployments; production uses the defaults. */
export interface SlackTuning {
  /** How long a stop waits for remediation runs in progress (default 5000 ms). */
  runStopWaitMs?: number;
  /** Least time between two posts to one channel (default 1000 ms). */
  deliveryIntervalMs?: number;
  /** How `DeliveryQueue` waits (pacing, 429 Retry-After); tests pass a fake clock's sleep. */
  sleep?: (ms: number) => Promise<void>;
  /** 429 answers one call may get before failing (default 5). */
  maxRateLimitRetries?: number;
  /** Longest 429 back-off one call waits for before failing as retryable (default 15 s). */
  maxWaitMs?: number;
  /** Web API client retries of network errors and 5xx (default 2). */
  webApiRetries?: number;
  /** How long user-group members are cached (default 5 minutes). */
  responderCacheTtlMs?: number;
  /** Longest wait for a user group's members before a check answers with what it knows (1.5 s). */
  responderLookupBudgetMs?: number;
  /**
   * Longest wait for enrichment and the remediation plan before an alert is posted without them
   * (default 2 s); the message is updated when they arrive.
   */
  lookupBudgetMs?: number;
  /** Longest time a late lookup may take before it is given up (default 60 s). */
  lateLookupTimeoutMs?: number;
  /** First wait before retrying a failed `auth.test` in the background (default 1 s, doubling). */
  authRetryBaseMs?: number;
  /** Longest wait between two `auth.test` retries (default 5 minutes). */
  authRetryMaxMs?: number;
  /** How often interrupted remediation runs are looked for after the first look at start (60 s). */
  staleSweepIntervalMs?: number;
  /** Longest time `start()` waits for the first `auth.test` and look for interrupted runs (5 s). */
  startWaitMs?: number;
  /**
   * Socket Mode: how long a drop may last before readiness says so, and the step of the wait
   * between the supervisor's reconnection attempts (30 s, 10 s).
   */
  socketGraceMs?: number;
  socketRetryStepMs?: number;
  /** Socket Mode: how long an opened socket may wait for Slack's `hello` (30 s). */
  socketHelloMs?: number;
  /**
   * How long after an audit line's post got no clear answer its thread is first searched for it
   * (default 2 minutes: Slack has surely finished with the post by then).
   */
  threadSettleMs?: number;
}

/** Longest time `start()` waits for Slack before the service goes on starting. */
const START_WAIT_MS = 5000;
/** How long a stop waits for the remediation runs in progress before it marks them cut short. */
const RUN_STOP_WAIT_MS = 5000;
/** How long a stop waits for the marks being brought in line to end their current step. */
const MARKS_STOP_WAIT_MS = 3000;

/** What the Slack chat needs from the service. */
export interface SlackDeps {
  store: StateStore;
  logger: Logger;
  history: History;
  remediator: Remediator;
  enricher?: Enricher;
  metrics?: {
    deliveryFailures?: DeliveryFailureCounter;
    responderActions?: AuditObserver['counter'];
  };
  now?: () => number;
  tuning?: SlackTuning;
}

/**
 * Creates the Slack chat adapter: the alert sink (posts and repeat updates), the request listener
 * for `POST /slack/events` (HTTP mode; none in Socket Mode, when `SLACK_APP_TOKEN` is set), and
 * the unfixable delivery problems for `/readyz`.
 */
export async function createSlackChat(config: Config, deps: SlackDeps): Promise<ChatAdapter> {
  const slack = config.slack;
  if (!slack)
    throw new Error(
      'Slack is not configured: set SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and SLACK_ALERT_CHANNEL',
    );
  const logger = deps.logger.child({ component: 'slack' });
  const now = deps.now ?? Date.now;
  const tuning = deps.tuning ?? {};

  const settings = {
    botToken: slack.botToken,
    signingSecret: slack.signingSecret,
    apiUrl: slack.apiUrl,
    ...(slack.appToken ? { appToken: slack.appToken } : {}),
  };
  // Bolt's and the Web API client's own lines: one `component` key per line (see boltLogger).
  const boltLog = deps.logger.child({ component: 'slack-bolt' });
  const clientTuning = tuning.webApiRetries === undefined ? {} : { webApiRetries: tuning.webApiRetries };
  const client = createWebClient(settings, boltLog, clientTuning);
  const problems = new DeliveryProblems();
  const auth = new BotAuth({
    client,
    botToken: slack.botToken,
    problems,
    logger,
    alertChannel: slack.alertChannel,
    ...(tuning.authRetryBaseMs === undefined ? {} : { retryBaseMs: tuning.authRetryBaseMs }),
    ...(tuning.authRetryMaxMs === undefined ? {} : { retryMaxMs: tuning.authRetryMaxMs }),
  });
  const { app, http, socketMode, socketClient } = createBoltApp(settings, boltLog, {
    ...clientTuning,
    authorize: auth.authorize,
  });

  const queue = new DeliveryQueue({
    ...(tuning.deliveryIntervalMs === undefined ? {} : { intervalMs: tuning.deliveryIntervalMs }),
    ...(tuning.maxRateLimitRetries === undefined ? {} : { maxRateLimitRetries: tuning.maxRateLimitRetries }),
    ...(tuning.maxWaitMs === undefined ? {} : { maxWaitMs: tuning.maxWaitMs }),
    ...(tuning.sleep ? { sleep: tuning.sleep } : {}),
    // Its waits are durations: on the queue's monotonic clock, unless a test sets the time.
    ...(deps.now ? { now: deps.now } : {}),
  });
  const runs = new ActiveRuns();
  const messenger = createMessenger({
    client,
    // A new alert's chat.postMessage is never re-sent by the client itself: a retry after a timeout
    // could post the alert twice. The outbox retries it, after searching the channel for it.
    postClient: createWebClient(settings, boltLog, { ...clientTuning, webApiRetries: 0 }),
    queue,
    problems,
    logger,
    mode: deps.remediator.mode,
    broadRemoval: typeof deps.remediator.planBroadRemoval === 'function',
    portal: portalForArm(config.azure.armEndpoint),
    alertChannel: slack.alertChannel,
    now,
    runsHere: (alertId) => runs.has(alertId),
    ...(deps.metrics?.deliveryFailures ? { failures: deps.metrics.deliveryFailures } : {}),
    ...(tuning.threadSettleMs === undefined ? {} : { threadSettleMs: tuning.threadSettleMs }),
  });
  const responders = createResponderCheck({
    responders: slack.responders,
    client,
    logger,
    ...(deps.now ? { now: deps.now } : {}),
    ...(tuning.responderCacheTtlMs === undefined ? {} : { ttlMs: tuning.responderCacheTtlMs }),
    ...(tuning.responderLookupBudgetMs === undefined
      ? {}
      : { lookupBudgetMs: tuning.responderLookupBudgetMs }),
  });
  const marks = new MarksWork((alertId) => deps.store.releaseClaim(marksLockKey(alertId)));
  const ctx: SlackContext = {
    store: deps.store,
    logger,
    history: deps.history,
    remediator: deps.remediator,
    responders,
    allowlistBy: slack.allowlistBy,
    historyBy: slack.historyBy,
    messenger,
    client,
    alertChannel: slack.alertChannel,
    now,
    runs,
    marks,
    audit: {
      logger,
      ...(deps.metrics?.responderActions ? { counter: deps.metrics.responderActions } : {}),
    },
    ...(deps.enricher ? { enricher: deps.enricher } : {}),
  };
  registerHandlers(app, ctx);
  if (responders.empty) {
    logger.warn(
      'SLACK_RESPONDERS is not set: nobody can use Revoke, Undo or Remove broad roles; members of the alert channel may use Mark benign and Remove allowlist there',
    );
  }

  let sweepTimer: NodeJS.Timeout | undefined;
  let socketStart: Promise<void> | undefined;
  /** Watches the Socket Mode connection once started: why it is down, for `/readyz`. */
  let supervisor: SocketSupervisor | undefined;
  let sweeping: Promise<void> | undefined;
  // One sweep at a time: a long one (a backlog under rate limits) is not joined by the next tick.
  const sweep = () => {
    sweeping ??= sweepOnce().finally(() => {
      sweeping = undefined;
    });
    return sweeping;
  };
  const sweepOnce = async () => {
    try {
      await sweepStaleRuns(ctx);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'cannot look for interrupted remediation runs');
    }
    try {
      await resumeMarks(ctx);
    } catch (err) {
      logger.warn(
        { err: (err as Error).message },
        'cannot take up the marks of revoked identities left pending',
      );
    }
    try {
      await sweepFollowUps(ctx);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'cannot catch up alert messages and threads');
    }
  };

  const adapter: ChatAdapter = {
    name: 'slack',
    sink: createSlackSink(ctx, {
      ...(tuning.lookupBudgetMs === undefined ? {} : { lookupBudgetMs: tuning.lookupBudgetMs }),
      ...(tuning.lateLookupTimeoutMs === undefined
        ? {}
        : { lateLookupTimeoutMs: tuning.lateLookupTimeoutMs }),
    }),
    problems: () => {
      const socketProblem = supervisor?.problem();
      return socketProblem === undefined ? problems.list() : [...problems.list(), socketProblem];
    },
    warnings: () => [...problems.warnings(), ...responders.warnings()],
    async start() {
      ctx.runs.open();
      marks.open();
      // One auth.test, now; never per request: failures are retried in the background or
      // reported through problems(), never thrown. And the runs a stopped process left marked
      // running are shown as interrupted, their button offered again. Both are waited for at most
      // `startWaitMs`, so that a slow or unreachable Slack does not hold up the service's start.
      // The user groups of SLACK_RESPONDERS are listed once too: one Slack refuses is said now.
      await waitAtMost(
        Promise.all([auth.start(), sweep(), responders.warm()]),
        tuning.startWaitMs ?? START_WAIT_MS,
      );
      clearInterval(sweepTimer);
      sweepTimer = setInterval(() => void sweep(), tuning.staleSweepIntervalMs ?? STALE_SWEEP_INTERVAL_MS);
      sweepTimer.unref();
      // The WebSocket connects in the background: until it does (Slack slow or unreachable), the
      // service still takes detections and posts alerts; only clicks and commands wait.
      if (socketMode && socketClient && supervisor === undefined) {
        const watch = superviseSocket(socketClient, {
          logger,
          ...(tuning.socketGraceMs === undefined ? {} : { graceMs: tuning.socketGraceMs }),
          ...(tuning.socketRetryStepMs === undefined ? {} : { retryStepMs: tuning.socketRetryStepMs }),
          ...(tuning.socketHelloMs === undefined ? {} : { helloMs: tuning.socketHelloMs }),
        });
        supervisor = watch;
        socketStart = app.start().then(
          () => logger.info('Slack Socket Mode connected: receiving clicks and commands'),
          (err: unknown) => {
            const reason = String((err as Error)?.message ?? err).slice(0, 300);
            watch.startFailed(reason);
            logger.error(
              { err: reason },
              'Slack Socket Mode could not connect (SLACK_APP_TOKEN): clicks and commands are not received; check the app-level token and its connections:write scope; it keeps retrying',
            );
          },
        );
      }
    },
    async stop() {
      auth.stop();
      clearInterval(sweepTimer);
      sweepTimer = undefined;
      await Promise.all([
        settleRunsAtStop(ctx, tuning.runStopWaitMs ?? RUN_STOP_WAIT_MS),
        // Its passes end after their current step; what is left is taken up at the next start.
        marks.close(MARKS_STOP_WAIT_MS),
      ]);
      if (socketMode) {
        supervisor?.stop();
        await waitAtMost(socketStart ?? Promise.resolve(), tuning.startWaitMs ?? START_WAIT_MS);
        await app.stop().catch(() => undefined);
      }
    },
  };
  if (http) {
    adapter.requestListener = guardSlackRequests({
      signingSecret: slack.signingSecret,
      inner: http.requestListener,
      logger,
      now,
    });
  }
  return adapter;
}

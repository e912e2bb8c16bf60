import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, Server as NetServer } from 'node:net';
import type { ChatAdapter } from './chat-adapter.ts';
import type { Config } from './config.ts';
import { createEngine, type Engine } from './core/engine.ts';
import { evidencePlanRemediator } from './core/evidence-plan.ts';
import { createHistory, type History } from './core/history.ts';
import type { StateStore } from './core/ports.ts';
import type { Enricher, Remediator } from './core/remediation.ts';
import { openGeoLocator } from './geoip.ts';
import { clientErrorResponse } from './http/http-error.ts';
import { bodyDeadlineFor, createIngestHandler } from './http/ingest-handler.ts';
import { createLimiter } from './http/limiter.ts';
import { createRequestListener } from './http/server.ts';
import { createLogger, type Logger } from './log.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { createLogChat } from './outbox/log-chat.ts';
import { createStoreOutbox, type DurableOutbox, type OutboxOptions } from './outbox/store-outbox.ts';
import { type ReplicaWatch, sharedSettings, watchReplicas } from './replicas.ts';
import { keepSecretsOut } from './secrets.ts';
import { openStateStore } from './store/open-state-store.ts';
import { type StoreWatch, watchStore } from './store/write-probe.ts';
import { waitAtMost } from './timeout.ts';

/** What `createApp` builds the service from. Only `config` is required. */
export interface AppOptions {
  config: Readonly<Config>;
  /** The chat adapter; default: Slack when configured, else the log-only chat. */
  chat?: ChatAdapter;
  logger?: Logger;
  now?: () => number;
  /** Default: a dry-run remediator that plans from the detection's evidence alone. */
  remediator?: Remediator;
  enricher?: Enricher;
  outbox?: OutboxOptions;
  /**
   * `POST /ingest` requests evaluated at once (default 16), bodies read and held at once (default
   * 32: with 1 MiB bodies this bounds the memory they take; a stalled upload holds a read slot
   * for at most `bodyDeadlineMs`, default 15 s), and requests waiting beyond that (default 256,
   * then 503).
   */
  ingestConcurrency?: number;
  ingestReaders?: number;
  ingestQueue?: number;
  bodyDeadlineMs?: number;
  /** How long a client may take to read its ingest answer before its connection is cut (default 30 s). */
  answerReadMs?: number;
  /**
   * How long an ingest evaluation may wait for the store before a 503, and the start for the
   * store's first write and read (default 20 s).
   */
  storeDeadlineMs?: number;
  /**
   * On stop, how long connections kept alive by clients stay open (default 1000 ms): a request
   * sent on one meanwhile is answered `503` with `Connection: close` instead of meeting a closed
   * socket. New connections are refused from the start.
   */
  stopDrainMs?: number;
  /** How often this replica renews its settings in the store and compares them with the others' (default 60 s). */
  replicaCheckMs?: number;
  /**
   * While a learning period runs, how often its end is read again (default 30 s): a replica
   * started with `LEARNING_PERIOD=0` ends it for every replica.
   */
  learningCheckMs?: number;
  /**
   * On stop, how long the outbox, the chat and the store may take to finish and close once the
   * requests are done (default 10 s): a store that hangs must not keep the process from exiting
   * before an orchestrator's grace period ends (everything answered 200 is stored already).
   */
  stopCloseMs?: number;
  /**
   * On stop, how long requests in flight may take to finish (default 10 s). An ingest request
   * still waiting for the store then is answered `503` (`shutting_down`, with `Retry-After`) before
   * its connection is closed.
   */
  stopGraceMs?: number;
  /** Store namespace (default `arc-responder`); lets tests share one Redis or PostgreSQL. */
  storeNamespace?: string;
}

/** The composed service. */
export interface App {
  readonly config: Readonly<Config>;
  readonly server: Server;
  readonly store: StateStore;
  readonly engine: Engine;
  readonly history: History;
  readonly outbox: DurableOutbox;
  readonly chat: ChatAdapter;
  readonly remediator: Remediator;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Starts the outbox worker and the chat, then listens; resolves with the bound address. */
  start(): Promise<{ port: number; host: string }>;
  /** Stops accepting, lets in-flight requests finish, stops the worker and the chat, closes the store. */
  stop(): Promise<void>;
}

/** How long `stop` waits for in-flight requests before closing their connections. */
const STOP_GRACE_MS = 10_000;
/** How long the 503 answers of abandoned requests get to be written before their connections close. */
const ABANDON_ANSWER_MS = 100;
/** See `AppOptions.stopDrainMs`. */
const STOP_DRAIN_MS = 1000;
/** See `AppOptions.stopCloseMs`. */
const STOP_CLOSE_MS = 10_000;

async function loadSlack(
  config: Readonly<Config>,
  deps: {
    store: StateStore;
    logger: Logger;
    metrics: Metrics;
    history: History;
    remediator: Remediator;
    enricher?: Enricher;
    now?: () => number;
  },
): Promise<ChatAdapter> {
  // Loaded on demand so that a service without Slack never loads Bolt.
  const { createSlackChat } = await import('./slack/index.ts');
  return createSlackChat(config as Config, {
    store: deps.store,
    logger: deps.logger,
    history: deps.history,
    remediator: deps.remediator,
    metrics: {
      deliveryFailures: {
        inc: (labels) => deps.metrics.chatApiFailures.inc({ reason: labels?.reason ?? 'unknown' }),
      },
      responderActions: deps.metrics.responderActions,
    },
    ...(deps.enricher ? { enricher: deps.enricher } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  });
}

/**
 * The Azure remediator and enricher, sharing their clients, when Azure is configured
 * (`config.azure.enabled`); loaded on demand so that a service without Azure never loads the SDK.
 */
async function loadAzure(
  config: Readonly<Config>,
  deps: { store: StateStore; logger: Logger },
): Promise<{ remediator: Remediator; enricher: Enricher } | undefined> {
  if (!config.azure.enabled) return undefined;
  const azure = await import('./azure/index.ts');
  // One credential, one ARM gateway and one Graph client for both.
  const services = azure.createAzureServices(config as Config, {});
  return {
    remediator: azure.createRemediatorWith(config.azure.remediation, services, deps.store, deps.logger),
    enricher: azure.createEnricherWith(services),
  };
}

/**
 * The composition root: opens the store, picks the chat adapter, wires the durable outbox, the
 * engine and the HTTP server. Nothing listens until `start()`.
 */
export async function createApp(options: AppOptions): Promise<App> {
  const { config } = options;
  // Whatever text quotes them (an Azure error, a library's log line) is written without them.
  keepSecretsOut(config.secrets);
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const metrics = createMetrics();
  // Before the store: a database that cannot be opened stops the start with nothing to close.
  const geo = config.geoip ? await openGeoLocator(config.geoip, logger) : undefined;
  let store: StateStore;
  try {
    store = await openStateStore(config.storeUrl, {
      maintain: true,
      warn: (message) => logger.warn(message),
      ...(options.storeNamespace ? { namespace: options.storeNamespace } : {}),
    });
  } catch (err) {
    geo?.close?.();
    throw err;
  }
  // A store that answers but takes no write (a read-only file, a full disk) stops the start here,
  // rather than failing every request once listening.
  let storeWatch: StoreWatch;
  /** Set once created; a store found emptied before then needs no marks written again. */
  let engine: Engine | undefined;
  let replicas: ReplicaWatch | undefined;
  /** Reads a running learning period's end again (see `watchLearning`); stopped first on stop. */
  let learningWatch: ReturnType<typeof setInterval> | undefined;
  try {
    storeWatch = await watchStore(
      store,
      (message) => {
        logger.error({ store: store.kind }, message);
        engine?.markInUse().catch((err: unknown) => {
          logger.warn(
            { store: store.kind, err: (err as Error).message },
            'could not mark the emptied store as in use: a restart with LEARNING_PERIOD set would open a learning period on it',
          );
        });
      },
      options.now ?? Date.now,
      options.storeDeadlineMs,
    );
  } catch (err) {
    geo?.close?.();
    // Bounded: a store that did not answer may not close either (a pool waits for its queries).
    await waitAtMost(store.close(), 2_000);
    throw err;
  }
  for (const warning of store.warnings?.() ?? []) logger.warn({ store: store.kind }, warning);
  try {
    const history = createHistory({
      store,
      windowMs: config.historyWindowMs,
      ...(options.now ? { now: options.now } : {}),
    });
    const azure = await loadAzure(config, { store, logger });
    const remediator =
      options.remediator ??
      azure?.remediator ??
      evidencePlanRemediator({ arm: config.azure.armEndpoint, graph: config.azure.graphEndpoint });
    const enricher = options.enricher ?? azure?.enricher;
    const chat =
      options.chat ??
      (config.slack
        ? await loadSlack(config, {
            store,
            logger,
            metrics,
            history,
            remediator,
            ...(enricher ? { enricher } : {}),
            ...(options.now ? { now: options.now } : {}),
          })
        : createLogChat(logger));
    metrics.setChatProblemsSource(() => chat.problems().length);
    const outbox = createStoreOutbox(
      { store, sink: chat.sink, logger, metrics, ...(options.now ? { now: options.now } : {}) },
      { windowMs: config.historyWindowMs, ...options.outbox },
    );
    engine = await createEngine({
      store,
      windowMs: config.historyWindowMs,
      outbox,
      ...(geo ? { geo } : {}),
      ...(config.learningPeriodMs !== undefined ? { learningPeriodMs: config.learningPeriodMs } : {}),
      ...(options.now ? { now: options.now } : {}),
    });

    learningWatch = watchLearning(engine, logger, options.now ?? Date.now, options.learningCheckMs);

    replicas = await watchReplicas(store, sharedSettings(config), logger, {
      ...(options.replicaCheckMs !== undefined ? { everyMs: options.replicaCheckMs } : {}),
      ...(engine.learningReplacedEnd !== undefined
        ? { learningReplacedEnd: engine.learningReplacedEnd }
        : {}),
      ...(options.now ? { now: options.now } : {}),
    });
    const replicaWatch = replicas;

    let stopping = false;
    const bodyDeadlineMs = options.bodyDeadlineMs ?? bodyDeadlineFor(config.ingestMaxBytes);
    const ingest = createIngestHandler({
      engine,
      outbox,
      metrics,
      ingestTokens: config.ingestTokens,
      ingestMaxBytes: config.ingestMaxBytes,
      limiter: createLimiter(options.ingestConcurrency ?? 16, options.ingestQueue ?? 256),
      readers: createLimiter(options.ingestReaders ?? 32, options.ingestQueue ?? 256),
      bodyDeadlineMs,
      ...(options.answerReadMs !== undefined ? { answerReadMs: options.answerReadMs } : {}),
      ...(options.storeDeadlineMs !== undefined ? { storeDeadlineMs: options.storeDeadlineMs } : {}),
    });
    // Node cuts a request still arriving after `requestTimeout` with a bare 400: it covers the
    // largest body's own deadline, and 45 s of waiting for a read slot besides.
    const listener = createRequestListener({
      logger,
      metrics,
      store,
      chat,
      outbox,
      ingest,
      isStopping: () => stopping,
      // Replicas with other settings are a warning of the store they share.
      storeWatch: { check: async () => [...(await storeWatch.check()), ...replicaWatch.warnings()] },
      ingestStall: ingest.storeStall,
      secrets: config.ingestTokens,
    });
    const server = createServer(
      { requestTimeout: bodyDeadlineMs + 45_000, headersTimeout: 20_000, keepAliveTimeout: 5_000 },
      listener,
    );
    // `Expect: 100-continue`: the request reaches the listener without Node's automatic `100`; the
    // handlers send it once they will read the body, so a refused request is answered before its
    // client uploads anything.
    server.on('checkContinue', listener);
    server.on('clientError', (err: Error & { code?: string }, socket) => {
      // Malformed HTTP (or a request Node timed out) never reaches a handler: answer as Node would
      // (400, 431 or 408), with the JSON error every other answer has, and close; log it with the
      // other refused requests. As Node does, nothing is written into an answer to an earlier
      // request that has begun on this connection (nor to a connection already closing).
      const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
      if (!socket.writable || inFlight?.headersSent) {
        logger.debug({ code: err.code }, 'malformed HTTP request');
        socket.destroy();
        return;
      }
      const requestId = randomUUID();
      socket.end(clientErrorResponse(err.code, requestId));
      listener.parserRefused(err.code, requestId, (socket as { remoteAddress?: string }).remoteAddress);
    });

    let started = false;
    const app: App = {
      config,
      server,
      store,
      engine,
      history,
      outbox,
      chat,
      remediator,
      metrics,
      logger,
      async start() {
        await outbox.start();
        await chat.start?.();
        await new Promise<void>((resolve, reject) => {
          const failed = (err: Error & { code?: string }) =>
            reject(listenError(err, config.host, config.port));
          server.once('error', failed);
          server.listen(config.port, config.host, () => {
            server.off('error', failed);
            // Once listening, an error of the listening socket (a failed accept the runtime does
            // not absorb) must not become an uncaught exception that takes ingest down.
            server.on('error', (error: Error & { code?: string }) => {
              logger.error(
                { code: error.code, error: error.message },
                'the HTTP server reported an error; it keeps listening (check the open-file limit, ulimit -n, when this repeats)',
              );
            });
            resolve();
          });
        });
        started = true;
        const address = server.address() as AddressInfo;
        return { port: address.port, host: address.address };
      },
      async stop() {
        if (stopping) return;
        stopping = true;
        clearInterval(learningWatch);
        if (started) {
          // The listener stops at once: new connections are refused, which a sender can always
          // retry. HTTP's own close() would also end idle keep-alive connections at once, racing
          // a client that is just sending on one (it would see a reset): so the listener is closed
          // as a plain socket server, and while stopping, a request on a connection still open is
          // answered 503 with Connection: close (ingest) or served and closed (the rest). Open
          // connections are given a moment for that before idle ones are closed.
          const closed = new Promise<void>((resolve) =>
            NetServer.prototype.close.call(server, () => resolve()),
          );
          const drainMs = options.stopDrainMs ?? STOP_DRAIN_MS;
          const open = await new Promise<number>((resolve) =>
            server.getConnections((err, count) => resolve(err ? 0 : count)),
          );
          if (drainMs > 0 && open > 0) await new Promise((resolve) => setTimeout(resolve, drainMs));
          // Keep-alive connections between requests are closed at once, busy ones after their answer.
          const sweep = setInterval(() => server.closeIdleConnections(), 50);
          const grace = new Promise<'timeout'>((resolve) =>
            setTimeout(resolve, options.stopGraceMs ?? STOP_GRACE_MS, 'timeout').unref(),
          );
          server.closeIdleConnections();
          if ((await Promise.race([closed, grace])) === 'timeout') {
            logger.warn(
              'requests still running after the grace period: those waiting for the store are answered 503; closing their connections',
            );
            // The sender is told to retry rather than meeting a reset connection.
            ingest.abandon();
            await new Promise((resolve) => setTimeout(resolve, ABANDON_ANSWER_MS));
            server.closeAllConnections();
            await closed;
          }
          clearInterval(sweep);
        }
        // The refusals counted in a minute that the stop cuts short are written now.
        listener.flushRefusals();
        let closingPart = 'the outbox worker';
        const closing = (async () => {
          await outbox.stop();
          closingPart = `the ${chat.name} chat`;
          await chat.stop?.();
          closingPart = `the ${store.kind} store`;
          await replicaWatch.stop();
          await store.close();
        })();
        const closeMs = options.stopCloseMs ?? STOP_CLOSE_MS;
        let finished = false;
        await waitAtMost(
          closing.finally(() => {
            finished = true;
          }),
          closeMs,
        );
        geo?.close?.();
        if (!finished) {
          logger.warn(
            `${closingPart} did not finish within ${closeMs / 1000} s (it waits for an answer); stopping anyway: every request answered 200 is stored, and undelivered alerts are delivered after the restart`,
          );
          return;
        }
        await closing;
      },
    };
    return app;
  } catch (err) {
    clearInterval(learningWatch);
    await replicas?.stop();
    await store.close().catch(() => {});
    geo?.close?.();
    throw err;
  }
}

/**
 * Reads the end of a learning period that runs again every `everyMs` (30 s), until it is over, and
 * says so when another replica's start (`LEARNING_PERIOD=0`) ended it. A failed read waits for the
 * next round (the store's own checks report the store).
 */
function watchLearning(
  engine: Engine,
  logger: Logger,
  now: () => number,
  everyMs = 30_000,
): ReturnType<typeof setInterval> | undefined {
  if (!((engine.learningUntil ?? 0) > now())) return undefined;
  const timer = setInterval(() => {
    if (!((engine.learningUntil ?? 0) > now())) {
      clearInterval(timer);
      return;
    }
    engine.refreshLearning().then(
      (ended) => {
        if (!ended) return;
        clearInterval(timer);
        logger.info(
          { learningUntil: new Date(engine.learningUntil ?? now()).toISOString() },
          'the learning period was ended early by another start (LEARNING_PERIOD=0): new pairs alert from now on',
        );
      },
      () => {},
    );
  }, everyMs);
  timer.unref();
  return timer;
}

/** A listen failure, said in terms of the variables that cause it (HOST, PORT). */
function listenError(err: Error & { code?: string }, host: string, port: number): Error {
  const why: Record<string, string> = {
    EADDRINUSE: `PORT ${port} is already in use on HOST ${host}: stop the other process or set another PORT`,
    EACCES: `PORT ${port} needs privileges on this machine: use a port above 1023`,
    EADDRNOTAVAIL: `HOST ${host} is not an address of this machine: use one of its addresses, 0.0.0.0 or 127.0.0.1`,
    ENOTFOUND: `HOST ${host} does not resolve to an address: use an IP address or a name this machine resolves`,
    EAI_AGAIN: `HOST ${host} could not be resolved (name service unavailable): use an IP address`,
  };
  const text = err.code ? why[err.code] : undefined;
  return text ? Object.assign(new Error(`${text} (${err.code})`, { cause: err }), { code: err.code }) : err;
}

/**
 * `npm start`: reads the configuration, starts the service, says on one line what it runs with,
 * and stops gracefully on SIGTERM/SIGINT.
 */
import { createApp } from './app.ts';
import { ConfigError, listenUrl, loadConfig } from './config.ts';
import { formatDuration } from './core/duration.ts';
import { createLogger } from './log.ts';
import { parseStoreUrl } from './store/parse-store-url.ts';

/**
 * An invalid configuration stops the start: said for a person at a terminal, and as a JSON line on
 * stdout like every other failed start, for a pipeline that collects the log alone.
 */
function stopOnConfigError(err: ConfigError): never {
  process.stderr.write(`arc-responder: ${err.message}\n`);
  createLogger({ level: 'info' }).fatal({ code: 'config' }, `arc-responder could not start: ${err.message}`);
  process.exit(1);
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) stopOnConfigError(err);
  throw err;
}

const logger = createLogger({ level: config.logLevel });

process.on('unhandledRejection', (reason) => {
  // Logged rather than fatal: one failed background task must not take ingest down.
  logger.error({ err: reason }, 'unhandled promise rejection');
});

let app: Awaited<ReturnType<typeof createApp>> | undefined;
/** When the stop began (monotonic), and on which signal. */
let stopping: { signal: string; at: number } | undefined;
/**
 * The same signal again within this time is the same stop: a Ctrl-C, or a service manager's
 * signal to the process group, reaches the service both directly and forwarded by `npm start`.
 */
const SAME_STOP_MS = 1000;
/** A history window shorter than this is said at start (see below). */
const SHORT_WINDOW_MS = 3600 * 1000;
/** Ingest tokens shorter than this are warned of at start. */
const SHORT_TOKEN_CHARS = 16;
async function shutdown(signal: string) {
  if (stopping) {
    if (signal === stopping.signal && performance.now() - stopping.at < SAME_STOP_MS) return;
    logger.warn(`${signal} again: exiting now`);
    process.exit(1);
  }
  stopping = { signal, at: performance.now() };
  logger.info(`${signal}: no longer accepting requests; finishing those in flight`);
  try {
    // A signal during start-up finds no app yet: nothing to finish.
    await app?.stop();
    logger.info('stopped');
    process.exit(0);
  } catch (err) {
    logger.error({ err }, 'error while stopping');
    process.exit(1);
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

let address: { port: number; host: string };
try {
  app = await createApp({ config, logger });
  address = await app.start();
} catch (err) {
  // A file named by a variable that turns out unusable once opened (a GeoIP database).
  if (err instanceof ConfigError) stopOnConfigError(err);
  const message = err instanceof Error ? err.message : String(err);
  // Said on stderr too, like a configuration error, for a person at a terminal.
  process.stderr.write(`arc-responder could not start: ${message}\n`);
  logger.fatal({ code: (err as { code?: unknown }).code }, `arc-responder could not start: ${message}`);
  process.exit(1);
}

const running = app!;
const store = parseStoreUrl(config.storeUrl);
const auth =
  config.ingestTokens.length > 0
    ? `bearer token (${config.ingestTokens.length} configured)`
    : 'loopback clients only (INGEST_TOKEN unset)';
const remediation = config.azure.enabled
  ? `${running.remediator.mode} through Azure`
  : `${running.remediator.mode} from the detection's evidence (no Azure identity configured)`;
const geoip = config.geoip
  ? `, GeoIP ${[config.geoip.cityDb ? 'city' : undefined, config.geoip.asnDb ? 'ASN' : undefined].filter(Boolean).join(' and ')} database`
  : '';
const learningUntil = running.engine.learningUntil;
const elsewhereUntil = running.engine.learningRunsElsewhereUntil;
let learning = '';
if (elsewhereUntil !== undefined) {
  // A period an earlier start opened runs on for replicas that set LEARNING_PERIOD; not here.
  learning = `, alerting at once (LEARNING_PERIOD unset), though replicas started with LEARNING_PERIOD learn until ${new Date(elsewhereUntil).toISOString()} (the period an earlier start opened; LEARNING_PERIOD=0 ends it for all)`;
} else if (config.learningPeriodMs !== undefined) {
  if (running.engine.learningEndedHere) {
    learning = `, learning period ended ${new Date(learningUntil!).toISOString()} by LEARNING_PERIOD=0 (for every replica of this release: unset it now)`;
  } else if (config.learningPeriodMs === 0 && learningUntil === undefined) {
    learning = ', no learning period running (LEARNING_PERIOD=0 ends one)';
  } else if (learningUntil === undefined) {
    learning = ', learning period not applied (LEARNING_PERIOD only opens on an empty history)';
  } else if (learningUntil > Date.now()) {
    // A restart keeps the end fixed at the first start, whatever LEARNING_PERIOD says now.
    const fixed = running.engine.learningFixedEarlier ? ' (fixed at the first start)' : '';
    learning = `, learning (sightings recorded, no alerts) until ${new Date(learningUntil).toISOString()}${fixed}`;
  } else {
    learning = `, learning period ended ${new Date(learningUntil).toISOString()}`;
  }
}
// Slack's two ways of taking clicks and commands, which a deployer must have wired the app for.
const chat = !config.slack
  ? running.chat.name
  : config.slack.appToken
    ? `slack in ${config.slack.alertChannel} (Socket Mode)`
    : `slack in ${config.slack.alertChannel} (HTTP mode: POST /slack/events)`;
// The one line that says what runs is written whatever LOG_LEVEL filters out (at that level).
const startLevel = logger.isLevelEnabled('info') ? 'info' : (logger.level as 'warn' | 'error');
logger[startLevel](
  {
    port: address.port,
    host: address.host,
    store: store.kind,
    storeUrl: store.display,
    historyWindow: formatDuration(config.historyWindowMs),
    learningPeriod:
      config.learningPeriodMs === undefined
        ? undefined
        : config.learningPeriodMs === 0
          ? '0'
          : formatDuration(config.learningPeriodMs),
    learningUntil: learningUntil === undefined ? undefined : new Date(learningUntil).toISOString(),
    chat: running.chat.name,
    remediation: running.remediator.mode,
    ingestAuth: config.ingestTokens.length > 0 ? 'token' : 'loopback-only',
    ingestMaxBytes: config.ingestMaxBytes,
  },
  `arc-responder listening on ${listenUrl(address.host, address.port)}: store ${store.display}, history window ${formatDuration(config.historyWindowMs)}, chat ${chat}, remediation ${remediation}, ingest auth: ${auth}${learning}${geoip}`,
);
// Allowed (a token is whatever the senders were given), but a short one can be guessed, and one
// under the length that log scrubbing masks could show in a log line that quotes it.
const shortTokens = config.ingestTokens.flatMap((token, i) =>
  token.length < SHORT_TOKEN_CHARS ? [i + 1] : [],
);
if (shortTokens.length > 0) {
  logger.warn(
    { tokens: shortTokens },
    `INGEST_TOKEN: token${shortTokens.length > 1 ? 's' : ''} ${shortTokens.join(', ')} (by place in the list) ${shortTokens.length > 1 ? 'are' : 'is'} shorter than ${SHORT_TOKEN_CHARS} characters and can be guessed; give senders a random one, e.g. openssl rand -hex 32`,
  );
}
// Allowed (a test of expiry, say), but a unit typed wrong (`7s`, `7m` for `7d`) alerts on nearly
// every sighting.
if (config.historyWindowMs < SHORT_WINDOW_MS) {
  logger.warn(
    { historyWindow: formatDuration(config.historyWindowMs) },
    `HISTORY_WINDOW is ${formatDuration(config.historyWindowMs)}: a pair not seen within it is new again, so nearly every sighting alerts (Elastic's rule looks back 7d); was d meant?`,
  );
}

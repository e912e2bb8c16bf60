import { pino } from 'pino';
import { scrubSecrets } from './secrets.ts';

/** The structured logger every module receives (pino). */
export type Logger = pino.Logger;

/**
 * Paths whose values never reach a log line: credentials in request headers and in any object
 * that carries configuration or tokens. Pino's wildcards match one level, so the common nestings
 * are listed explicitly.
 */
const REDACTED_PATHS: readonly string[] = [
  'authorization',
  'headers.authorization',
  'headers.cookie',
  'headers["x-slack-signature"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-slack-signature"]',
  'token',
  'botToken',
  'appToken',
  'signingSecret',
  'clientSecret',
  'password',
  'secret',
  'ingestTokens',
  '*.token',
  '*.botToken',
  '*.appToken',
  '*.signingSecret',
  '*.clientSecret',
  '*.password',
  '*.secret',
  '*.ingestTokens',
  '*.authorization',
  'config.slack.botToken',
  'config.slack.signingSecret',
  'config.slack.appToken',
];

export interface LoggerOptions {
  level?: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Where lines go; stdout when absent. Tests pass a stream to read the lines back. */
  destination?: pino.DestinationStream;
}

/** Creates the JSON-lines logger with secrets redacted. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const opts: pino.LoggerOptions = {
    level: options.level ?? 'info',
    base: { service: 'arc-responder' },
    redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  // Stdout written synchronously: each line is out before the next step, nothing is left in a
  // buffer to flush at exit, and a reader that went away (EPIPE) silences the log instead of
  // holding the exit (pino's buffered default flushes at exit in a loop that never ends then).
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  return pino(opts, scrubbing(destination));
}

/**
 * Writes each line to `destination` without the secrets it may quote (see `scrubSecrets`): the
 * paths above keep the service's own fields out, this the credentials that another's text (an
 * error message, a library's log line) carries.
 */
function scrubbing(destination: pino.DestinationStream): pino.DestinationStream {
  return {
    write: (line: string) => destination.write(scrubSecrets(line, true)),
  };
}

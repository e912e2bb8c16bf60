import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { ChatAdapter } from '../chat-adapter.ts';
import { cutBefore } from '../core/formats/fields.ts';
import type { StoreLifecycle } from '../core/ports.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { DurableOutbox } from '../outbox/store-outbox.ts';
import type { StoreWatch } from '../store/write-probe.ts';
import { withTimeout } from '../timeout.ts';
import { clientErrorAnswer, HttpError, refusalOf, sendError, sendJson } from './http-error.ts';
import { lingeringClose } from './lingering-close.ts';
import { askForBody, bodyUnasked, ClientGoneError } from './read-body.ts';
import { createRefusalLog } from './refusal-log.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, log: Logger) => void | Promise<void>;

export interface ServerDeps {
  logger: Logger;
  metrics: Metrics;
  store: Pick<StoreLifecycle, 'kind' | 'ping' | 'warnings'>;
  chat: ChatAdapter;
  outbox: Pick<DurableOutbox, 'isFull' | 'depth' | 'pendingAlerts' | 'maxPending'>;
  ingest: Handler;
  /** True once shutdown began: readiness fails and answers ask clients to reconnect. */
  isStopping: () => boolean;
  /** Checks that the store takes a write, and notices one that lost its data (a `/readyz` warning). */
  storeWatch?: StoreWatch;
  /** How long ingest has waited for the store past its deadline (it turns requests away), else 0. */
  ingestStall?: () => number;
  /**
   * Secrets a sender may put into a mistyped URL (the ingest tokens: `/ingest&token=…`): masked,
   * as sent and percent-encoded (wholly or in part), wherever a request's path goes into the log
   * or a 404. Any `token=` value there is masked too, whatever it holds.
   */
  secrets?: readonly string[];
}

/** A valid incoming `x-request-id` is kept so a call can be followed across services. */
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;
const READY_TIMEOUT_MS = 2000;
/** Longest reason a request's log line repeats from its answer. */
const MAX_LOGGED_REASON = 300;
/** Longest path a log line holds: a URL may be as long as Node's 16 KB of headers. */
const MAX_LOGGED_PATH = 200;

/** `text` cut to `max` characters, the cut marked with an ellipsis. */
const clip = (text: string, max: number): string =>
  text.length <= max ? text : `${cutBefore(text, max - 1)}…`;

const LEVEL_METHODS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);
const noop = () => {};

/**
 * The request's logger: a pino child with the request id, made on the first line actually
 * written. Most requests write nothing at the configured level, and a child with redaction costs
 * a few microseconds, so a call at a disabled level is a no-op that creates nothing.
 */
function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  return new Proxy({} as Logger, {
    get(_target, prop) {
      if (typeof prop === 'string' && LEVEL_METHODS.has(prop) && !parent.isLevelEnabled(prop)) return noop;
      child ??= parent.child(bindings);
      const value: unknown = Reflect.get(child, prop, child);
      return typeof value === 'function' ? value.bind(child) : value;
    },
  });
}

/**
 * How long the connection of a refused body still coming (413) stays open once the answer is out,
 * its body thrown away, so that a client still sending reads the answer rather than a reset.
 */
const LINGER_MS = 5000;
/** How long a refused request's connection waits, idle, for a body its client was never asked to send. */
const UNSENT_BODY_IDLE_MS = 1000;

const ABSOLUTE_FORM = /^https?:\/\//i;

/** The value of a `token=` parameter in a mistyped URL (`/ingest&token=…`), whatever it holds. */
const TOKEN_VALUE = /(token=)[^&]*/gi;

/** `path` percent-decoded; a sequence that is not UTF-8 (`%FF`) decodes to its byte, a stray `%` stays. */
function percentDecoded(path: string): string {
  if (!path.includes('%')) return path;
  try {
    return decodeURIComponent(path);
  } catch {
    return path.replace(/%[0-9a-f]{2}/gi, (hex) => String.fromCharCode(Number.parseInt(hex.slice(1), 16)));
  }
}

/** The path and query of an absolute URL (`/` when it has no path), or the URL as it is when it is none. */
function originForm(url: string): string {
  try {
    const u = new URL(url);
    return `${u.pathname}${u.search}`;
  } catch {
    return url;
  }
}

/**
 * The one request listener of the service: routing, request ids, JSON errors at one place,
 * request logging and the ingest metrics. Routes: `POST /ingest`, `POST /slack/events`,
 * `GET /healthz`, `GET /readyz`, `GET /metrics`; an unknown path is a 404, a known path with
 * another method a 405 with `Allow`.
 */
export function createRequestListener(deps: ServerDeps): RequestListener & {
  /** Logs the refusal counts not written yet; for the stop. */
  flushRefusals(): void;
  /**
   * Logs a request that Node's HTTP parser refused (`clientError`), answered with
   * `clientErrorResponse` under `requestId`, with the other refusals.
   */
  parserRefused(errorCode: string | undefined, requestId: string, client: string | undefined): void;
} {
  const { logger, metrics, store, chat, outbox } = deps;

  const slackEvents: Handler = chat.requestListener
    ? (req, res) => chat.requestListener!(req, res)
    : () => {
        throw new HttpError(
          404,
          'not_found',
          chat.name === 'slack'
            ? 'Slack runs in Socket Mode (SLACK_APP_TOKEN is set), so it takes no HTTP callbacks'
            : 'Slack is not configured: set SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and SLACK_ALERT_CHANNEL to receive Slack events here',
        );
      };

  const healthz: Handler = (_req, res) => {
    sendJson(res, 200, { status: 'ok', uptimeSeconds: Math.round(process.uptime()) });
  };

  /**
   * Ready means that ingest can take detections: the store answers and the service is not
   * stopping. What only delays chat delivery (Slack refusing the bot, Socket Mode down, a full
   * outbox: ingest then answers 503 itself) is listed under `warnings` and leaves it ready, so that
   * a readiness probe never takes every replica out of rotation over a Slack problem.
   */
  const readyz: Handler = async (_req, res) => {
    const problems: string[] = [];
    let storeWarnings: string[] = [];
    if (deps.isStopping()) problems.push('the service is shutting down');
    // The store may answer the checks below (a ping, a claim) while the evaluation waits on it: a
    // table locked by another session, a connection that stopped answering.
    const stall = deps.ingestStall?.() ?? 0;
    if (stall > 0) {
      problems.push(
        `the ${store.kind} store has not answered an evaluation for ${Math.round(stall / 1000)} s: ingest answers 503 until it does`,
      );
    }
    // One budget for the checks of the store together, so that a slow store answers the probe in
    // about READY_TIMEOUT_MS, not in one such wait per check.
    const deadline = performance.now() + READY_TIMEOUT_MS;
    // Whole milliseconds: the wait is said in the problem when it runs out.
    const left = () => Math.max(1, Math.round(deadline - performance.now()));
    try {
      await withTimeout(store.ping(), left(), `the ${store.kind} store`);
      try {
        if (deps.storeWatch) {
          storeWarnings = await withTimeout(
            deps.storeWatch.check(),
            left(),
            `a write to the ${store.kind} store`,
          );
        }
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
      }
    } catch (err) {
      problems.push(
        `the ${store.kind} store is not reachable: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const warnings: string[] = [...storeWarnings, ...(store.warnings?.() ?? [])];
    try {
      warnings.push(...chat.problems());
    } catch (err) {
      warnings.push(`the ${chat.name} chat could not report its state: ${String(err)}`);
    }
    if (outbox.isFull()) {
      warnings.push(
        `the outbox holds ${outbox.pendingAlerts()} undelivered alerts (limit ${outbox.maxPending}): chat delivery is failing or behind (Slack takes about one post per second per channel); ingest answers 503 until it drains`,
      );
    }
    try {
      warnings.push(...(chat.warnings?.() ?? []));
    } catch {
      // Warnings are advice: a chat that cannot give them changes nothing.
    }
    const state = {
      store: store.kind,
      chat: chat.name,
      outbox: { pending: outbox.depth(), alerts: outbox.pendingAlerts() },
      ...(warnings.length > 0 ? { warnings } : {}),
    };
    if (problems.length > 0) {
      throw new HttpError(503, 'not_ready', `not ready: ${problems.join('; ')}`, {
        details: { problems, ...state },
      });
    }
    sendJson(res, 200, { status: 'ready', ...state });
  };

  const metricsRoute: Handler = async (_req, res) => {
    const text = await metrics.registry.metrics();
    res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' });
    res.end(text);
  };

  const routes = new Map<string, Partial<Record<string, Handler>>>([
    ['/ingest', { POST: deps.ingest }],
    ['/slack/events', { POST: slackEvents }],
    ['/healthz', { GET: healthz, HEAD: healthz }],
    ['/readyz', { GET: readyz, HEAD: readyz }],
    ['/metrics', { GET: metricsRoute, HEAD: metricsRoute }],
  ]);

  const refusals = createRefusalLog(logger);
  const secretForms = [
    ...new Set((deps.secrets ?? []).filter((x) => x !== '').flatMap((x) => [x, encodeURIComponent(x)])),
  ].sort((a, b) => b.length - a.length);
  const redact = (text: string): string => {
    for (const secret of secretForms) if (text.includes(secret)) text = text.split(secret).join('[redacted]');
    return text;
  };
  const redactPath = (path: string): string => redact(path).replace(TOKEN_VALUE, '$1[redacted]');
  /**
   * An unknown path as the log and its 404 may show it: the secrets masked, as sent or encoded in
   * any way (a token partly percent-encoded, `%2B` for its `+`, is found in the decoded path,
   * which is then shown), and any `token=` value masked whatever it holds. A known path holds none.
   */
  const shownPath = (path: string): string => {
    if (routes.has(path)) return path;
    const decoded = percentDecoded(path);
    if (decoded !== path) {
      const masked = redactPath(decoded);
      if (masked !== decoded) return masked;
    }
    return redactPath(path);
  };

  const listener: RequestListener = (req, res) => {
    const started = performance.now();
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('x-request-id', requestId);
    if (deps.isStopping()) res.setHeader('connection', 'close');
    // An absolute-form request line (`POST http://host/ingest HTTP/1.1`, as a proxy may send it),
    // which HTTP/1.1 servers must accept, is routed (and handed on) by its path and query.
    if (req.url !== undefined && ABSOLUTE_FORM.test(req.url)) req.url = originForm(req.url);
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    const method = req.method ?? 'GET';
    const pathShown = shownPath(path);
    const loggedPath = clip(pathShown, MAX_LOGGED_PATH);
    const log = lazyChild(logger, { reqId: requestId });
    const client = req.socket.remoteAddress;
    let errorCode: string | undefined;
    /** What a refused or failed request was told (its answer's `error`): the log line says it too. */
    let told: string | undefined;

    res.once('finish', () => {
      const seconds = (performance.now() - started) / 1000;
      if (path === '/ingest' && method === 'POST') {
        const status = String(res.statusCode);
        metrics.ingestRequests.inc({ status });
        metrics.ingestLatency.observe({ status }, seconds);
      }
      // A handler that answered by itself may have noted why it refused.
      const noted = errorCode === undefined ? refusalOf(res) : undefined;
      const code = errorCode ?? noted?.code;
      const error = told ?? noted?.reason;
      const line = {
        method,
        path: loggedPath,
        status: res.statusCode,
        ms: Math.round(seconds * 10_000) / 10,
        code,
        client,
      };
      if (res.statusCode < 400) {
        log.debug(line, 'request');
        return;
      }
      const route = routes.has(path) ? path : undefined;
      if (!refusals.admit({ method, route, status: res.statusCode, code })) return;
      if (res.statusCode >= 500) log.warn({ ...line, error }, 'request failed');
      else log.info({ ...line, error }, 'request refused');
    });

    const run = async () => {
      const route = routes.get(path);
      if (!route) {
        throw new HttpError(
          404,
          'not_found',
          `no such endpoint: ${clip(pathShown, 100)} (endpoints: POST /ingest, POST /slack/events, GET /healthz, GET /readyz, GET /metrics)`,
        );
      }
      const handler = route[method];
      if (!handler) {
        const allow = Object.keys(route).join(', ');
        throw new HttpError(
          405,
          'method_not_allowed',
          `${path} accepts ${allow}, not ${method.slice(0, 20)}`,
          {
            headers: { allow },
          },
        );
      }
      if (path === '/ingest' && deps.isStopping()) {
        // A request sent on a kept-alive connection while the service stops: refused, so that
        // the sender retries it elsewhere or after the restart, rather than seeing a reset.
        throw new HttpError(
          503,
          'shutting_down',
          'the service is shutting down and takes no new detections; retry shortly',
          { headers: { 'retry-after': '5' } },
        );
      }
      // The ingest and Slack's endpoint send `100 Continue` themselves, after their checks; the
      // others read their body now.
      if (path !== '/ingest' && path !== '/slack/events') askForBody(req, res);
      await handler(req, res, log);
    };

    /**
     * A refusal while the request's body is unfinished: a body still coming (413), or one never
     * asked for (`100 Continue` not sent: the client may never send it). The connection cannot
     * carry another request; it closes in stages, so that a client still sending gets the answer
     * rather than a reset. Most clients never send a body they were not asked for: a second
     * without any of it ends that wait.
     */
    const closeUnfinished = (status: number) => {
      if (req.complete || req.destroyed) return;
      const unasked = bodyUnasked(req, res);
      if (status !== 413 && !unasked) return;
      res.setHeader('connection', 'close');
      lingeringClose(req, LINGER_MS, unasked ? UNSENT_BODY_IDLE_MS : undefined);
    };

    run().catch((err: unknown) => {
      if (err instanceof ClientGoneError) {
        errorCode = 'client_gone';
        log.debug({ method, path: loggedPath }, err.message);
        res.destroy();
        return;
      }
      if (err instanceof HttpError) {
        errorCode = err.code;
        told = clip(redact(err.message), MAX_LOGGED_REASON);
        closeUnfinished(err.status);
        sendError(res, err, requestId);
        return;
      }
      errorCode = 'internal';
      log.error({ err, method, path: loggedPath }, 'unhandled error while answering a request');
      closeUnfinished(500);
      sendError(
        res,
        new HttpError(
          500,
          'internal',
          `internal error; the service log has the details under request id ${requestId}`,
        ),
        requestId,
      );
    });
  };
  const parserRefused = (errorCode: string | undefined, requestId: string, client: string | undefined) => {
    const { status, code, message } = clientErrorAnswer(errorCode);
    // Neither its method nor its path is known: such requests share one count.
    if (!refusals.admit({ method: '', route: undefined, status, code })) return;
    logger.info({ reqId: requestId, status, code, error: message, client }, 'request refused');
  };
  return Object.assign(listener, { flushRefusals: () => refusals.flush(), parserRefused });
}

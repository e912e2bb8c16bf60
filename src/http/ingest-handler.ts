import type { IncomingMessage, ServerResponse } from 'node:http';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import type { EventResult, Outcome } from '../core/alert.ts';
import { OUTCOMES } from '../core/alert.ts';
import type { Engine } from '../core/engine.ts';
import { extractEvents } from '../core/formats/index.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { DurableOutbox } from '../outbox/store-outbox.ts';
import { isStoreDown } from '../store/store-error.ts';
import { createEvaluationBatcher, DeadlineError } from './evaluation-batcher.ts';
import { HttpError, sendJson } from './http-error.ts';
import { createIngestAuth } from './ingest-auth.ts';
import {
  bodyKind,
  type IngestDocument,
  inTurns,
  LINES_PER_TURN,
  MAX_EVENTS_PER_REQUEST,
  parseIngestBody,
  tooManyEvents,
} from './ingest-body.ts';

export { MAX_EVENTS_PER_REQUEST };

import type { Limiter } from './limiter.ts';
import { askForBody, bodyEncoding, declaredTooLarge, readBody } from './read-body.ts';

/** An event that was not accepted (not alerted, known or allowlisted), and why. */
export interface RejectedEvent {
  /** Position in the request's events: array elements and envelope entries flattened in order. */
  index: number;
  /** NDJSON bodies: the 1-based line the event came from. */
  line?: number;
  outcome: Extract<Outcome, 'duplicate' | 'ignored' | 'invalid'>;
  reason: string;
}

/** The `200` answer of `POST /ingest`. */
export interface IngestSummary {
  /** Events found in the body. */
  events: number;
  /** Events alerted, known or allowlisted: recorded in the history (unless older than the window). */
  accepted: number;
  counts: Record<Outcome, number>;
  rejected: RejectedEvent[];
}

const MAX_REASON = 500;
const ACCEPTED: ReadonlySet<Outcome> = new Set(['alerted', 'known', 'allowlisted']);

export interface IngestDeps {
  engine: Pick<Engine, 'evaluate'>;
  outbox: Pick<DurableOutbox, 'isFull' | 'depth' | 'pendingAlerts' | 'maxPending'>;
  metrics: Metrics;
  ingestTokens: readonly string[];
  ingestMaxBytes: number;
  /** Evaluations at once (parse and engine). */
  limiter: Limiter;
  /** Bodies read at once; a read slot is held until the request's answer is written out. */
  readers: Limiter;
  /**
   * How long a client may take to read its answer before its connection is cut (default 30 s):
   * an answer listing many refused events can be megabytes, and one never read must not hold
   * its memory (and its read slot) for long.
   */
  answerReadMs?: number;
  /** How long a body may take to arrive once its read began; default 15 s (more above 1 MiB). */
  bodyDeadlineMs?: number;
  /**
   * How long an evaluation may wait for the store before the request is answered 503; default
   * 20 s. A store that hangs (rather than refusing connections) must not hold senders forever.
   */
  storeDeadlineMs?: number;
}

const STORE_DEADLINE_MS = 20_000;
/** Events of one request evaluated at once (a request with more is evaluated in chunks). */
const EVALUATION_CHUNK = 2000;
/** Refused events per piece of a long answer (see `answer`). */
const ANSWER_PIECE = 1000;
/** How long a client may take to read its answer (see `IngestDeps.answerReadMs`). */
const ANSWER_READ_MS = 30_000;

/**
 * How long a body may take: 15 s, or longer for an INGEST_MAX_BYTES above 1 MiB, so that the
 * largest body never needs more than 70 KB/s.
 */
const BODY_DEADLINE_MIN_MS = 15_000;
const BODY_MIN_BYTES_PER_S = 70_000;
export const bodyDeadlineFor = (maxBytes: number): number =>
  Math.max(BODY_DEADLINE_MIN_MS, Math.ceil((maxBytes / BODY_MIN_BYTES_PER_S) * 1000));

/**
 * The events of one request, flattened (array elements and envelope entries in order), and the
 * documents that could not be read. Each takes one position (`slot`) in the request's events.
 */
interface Expanded {
  /** What goes to the engine, in slot order. */
  events: unknown[];
  /** Slot of each event; absent while no document failed (then the slot is the event's index). */
  slots?: number[];
  /** NDJSON: the line of each event. */
  lines?: number[];
  /** Documents that cannot be evaluated, in slot order. */
  errors: Array<{ slot: number; line?: number; error: string }>;
  /** Number of slots: events plus errors. */
  size: number;
}

/**
 * Expands each document into its events (envelopes, Kibana `alerts`), keeping the line;
 * `LINES_PER_TURN` documents per turn of the event loop, and at once (no promise) for a body of
 * fewer documents, as nearly every request is.
 */
function expand(docs: IngestDocument[]): Expanded | Promise<Expanded> {
  const events: unknown[] = [];
  const errors: Expanded['errors'] = [];
  const ndjson = docs.length > 0 && docs[0]!.line !== undefined;
  const lines: number[] | undefined = ndjson ? [] : undefined;
  let slots: number[] | undefined;
  let size = 0;
  const expandSlice = (from: number, to: number) => {
    for (let d = from; d < to; d++) {
      const doc = docs[d]!;
      if (doc.error !== undefined) {
        // From the first error on, events and slots no longer line up.
        slots ??= Array.from({ length: events.length }, (_, i) => i);
        errors.push(
          doc.line === undefined
            ? { slot: size, error: doc.error }
            : { slot: size, line: doc.line, error: doc.error },
        );
        size++;
      } else {
        const found = extractEvents(doc.value);
        for (let i = 0; i < found.length; i++) {
          events.push(found[i]);
          if (lines) lines.push(doc.line!);
          if (slots) slots.push(size);
          size++;
        }
      }
      if (size > MAX_EVENTS_PER_REQUEST) throw tooManyEvents();
    }
  };
  const expanded = (): Expanded => ({
    events,
    errors,
    size,
    ...(slots ? { slots } : {}),
    ...(lines ? { lines } : {}),
  });
  const turns = inTurns(docs.length, LINES_PER_TURN, expandSlice);
  return turns ? turns.then(expanded) : expanded();
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * The store has not answered within the deadline. What the evaluation stores once it does is
 * recognised when the sender retries (its events are then `duplicate`), so nothing is lost.
 */
function storeTooSlow(ms: number, started = true): HttpError {
  return new HttpError(
    503,
    'store_unavailable',
    `the history store has not answered for ${Math.round(ms / 1000)} s; retry later (${started ? 'what it stores meanwhile is recognised on the retry' : 'nothing from this request was recorded'})`,
    { headers: { 'retry-after': '5' } },
  );
}

function unavailable(err: unknown): HttpError {
  return new HttpError(
    503,
    'store_unavailable',
    `the history store failed (${messageOf(err).slice(0, 300)}); retry: what was recorded of this request before the failure is recognised on the retry, and no alert is lost`,
    { headers: { 'retry-after': '5' } },
  );
}

/**
 * `POST /ingest`: authenticate, check framing and size, refuse when the outbox is full, read and
 * parse the body, evaluate every event, answer the summary. A `200` is sent only after the engine
 * has stored the sightings and handed the alerts to the durable outbox.
 */
export function createIngestHandler(deps: IngestDeps) {
  const { engine, outbox, metrics, limiter, readers, ingestMaxBytes } = deps;
  const bodyDeadlineMs = deps.bodyDeadlineMs ?? bodyDeadlineFor(ingestMaxBytes);
  const answerReadMs = deps.answerReadMs ?? ANSWER_READ_MS;
  const authenticate = createIngestAuth(deps.ingestTokens);
  /** A store that stopped answering was said at error; said again once it answers. */
  let stallSaid = false;
  const batcher = createEvaluationBatcher(engine);
  const storeDeadlineMs = deps.storeDeadlineMs ?? STORE_DEADLINE_MS;

  /**
   * Evaluates the batch. If it throws for a reason other than the store being down (a value the
   * store refuses, a bug), the events are evaluated one by one so one bad event cannot fail the
   * rest; the one that fails is reported `invalid`.
   */
  async function evaluate(
    events: unknown[],
    log: Logger,
    afterChunks = false,
    deadlineMs = storeDeadlineMs,
  ): Promise<EventResult[]> {
    /** A store that hangs or is down answers the whole request: 503. */
    const storeFailure = (err: unknown): HttpError | undefined => {
      // Earlier chunks of the request were stored: the retry recognises them.
      const started = err instanceof DeadlineError && (err.started || afterChunks);
      if (err instanceof DeadlineError && err.shutdown) {
        return new HttpError(
          503,
          'shutting_down',
          `the service is shutting down while the history store does not answer; retry shortly (${started ? 'what it stores meanwhile is recognised on the retry' : 'nothing from this request was recorded'})`,
          { headers: { 'retry-after': '5' } },
        );
      }
      if (err instanceof DeadlineError) return storeTooSlow(storeDeadlineMs, started);
      return isStoreDown(err) ? unavailable(err) : undefined;
    };
    try {
      return await batcher.evaluate(events, deadlineMs);
    } catch (err) {
      const failure = storeFailure(err);
      if (failure) throw failure;
      if (events.length === 1) {
        log.error({ err }, 'event could not be evaluated');
        return [{ outcome: 'invalid', reason: `could not be evaluated: ${messageOf(err).slice(0, 200)}` }];
      }
      log.warn({ err: messageOf(err) }, 'batch could not be evaluated; evaluating its events one by one');
    }
    const results: EventResult[] = [];
    for (const event of events) {
      try {
        const [r] = await batcher.evaluate([event], storeDeadlineMs);
        results.push(r ?? { outcome: 'invalid', reason: 'no result' });
      } catch (err) {
        const failure = storeFailure(err);
        if (failure) throw failure;
        log.error({ err }, 'event could not be evaluated');
        results.push({
          outcome: 'invalid',
          reason: `could not be evaluated: ${messageOf(err).slice(0, 200)}`,
        });
      }
    }
    return results;
  }

  /**
   * Evaluates a request's events `EVALUATION_CHUNK` at a time, one after the other: each chunk is
   * a turn of its own, so one body of many events does not hold the event loop (health checks,
   * other senders) for the whole of its evaluation. The store's deadline is the request's: each
   * chunk has what the ones before it left.
   */
  async function evaluateInChunks(events: unknown[], log: Logger): Promise<EventResult[]> {
    const deadlineAt = performance.now() + storeDeadlineMs;
    const results: EventResult[] = [];
    for (let from = 0; from < events.length; from += EVALUATION_CHUNK) {
      // A turn of the event loop between two chunks: other work runs (the batcher would take the
      // next chunk at once, in the same turn).
      if (from > 0) await setImmediatePromise();
      const left = deadlineAt - performance.now();
      if (left <= 0) throw storeTooSlow(storeDeadlineMs, from > 0);
      const chunk = await evaluate(events.slice(from, from + EVALUATION_CHUNK), log, from > 0, left);
      for (const r of chunk) results.push(r);
    }
    return results;
  }

  async function handleIngest(req: IncomingMessage, res: ServerResponse, log: Logger): Promise<void> {
    const token = authenticate(req);
    // Which of INGEST_TOKEN the sender used: during a rotation, shows when the old one is unused.
    if (token !== undefined) metrics.ingestTokenUses.inc({ token: String(token) });
    const kind = bodyKind(req);
    const encoding = bodyEncoding(req);
    // A store that hangs holds the evaluation in progress: later requests are told at once rather
    // than queued behind it (their bodies would pile up in memory).
    const stalled = batcher.stalledMs();
    if (stalled > storeDeadlineMs) {
      // Said once per stall at error (the refused requests are logged apart, bounded).
      if (!stallSaid) {
        stallSaid = true;
        log.error(
          { stalledMs: stalled },
          `the history store has not answered for ${Math.round(stalled / 1000)} s: ingest answers 503 until it does; check the store`,
        );
      }
      throw storeTooSlow(stalled, false);
    }
    if (stallSaid && stalled <= storeDeadlineMs) {
      stallSaid = false;
      log.info('the history store answers again: ingest takes detections');
    }
    if (outbox.isFull()) {
      throw new HttpError(
        503,
        'outbox_full',
        `${outbox.pendingAlerts()} alerts are waiting for chat delivery (limit ${outbox.maxPending}); check the chat connection (/readyz) and retry later`,
        { headers: { 'retry-after': '30' }, details: { pending: outbox.pendingAlerts() } },
      );
    }

    // A body declared too large is refused at once, without waiting for a read slot.
    const oversized = declaredTooLarge(req, ingestMaxBytes);
    if (oversized) throw oversized;

    // The body is read under a slot of its own, with a deadline: uploads that stall hold read
    // slots for a while, never the evaluation slots. The read slot is held until the answer is
    // written out, so at most that many bodies, or answers, are in memory.
    const summary = await readers.run(async () => {
      // A client that waits for `100 Continue` is told to send its body only now, once every
      // check that needs no body has passed: a refused one never uploads it.
      askForBody(req, res);
      const body = await readBody(req, ingestMaxBytes, encoding, bodyDeadlineMs);
      const summary = await limiter.run(async () => {
        // Awaited only when there is something to wait for: a small body is parsed and expanded
        // at once, and its events evaluated in one go.
        const parsed = parseIngestBody(body, kind);
        const expanded = expand(Array.isArray(parsed) ? parsed : await parsed);
        const batch = expanded instanceof Promise ? await expanded : expanded;
        const { events } = batch;
        const evaluated =
          events.length === 0
            ? []
            : events.length <= EVALUATION_CHUNK
              ? await evaluate(events, log)
              : await evaluateInChunks(events, log);
        return summarise(batch, evaluated);
      });
      await answer(res, summary);
      return summary;
    });

    // Ignored and duplicate events are normal traffic (an Event Hub stream is mostly other
    // operations); an alert, or an event the sender got wrong, is worth a line at info.
    if (summary.counts.alerted > 0 || summary.counts.invalid > 0) {
      log.info({ counts: summary.counts, events: summary.events }, 'ingested');
    } else {
      log.debug({ counts: summary.counts, events: summary.events }, 'ingested');
    }
  }

  /**
   * Sends the answer and waits until it is written out, or the connection is gone; a client that
   * has not read it within `answerReadMs` is cut off. A long list of refused events is written in
   * pieces, each once the connection has taken the one before: neither its serialisation nor its
   * memory comes all at once (100,000 refused events make about 25 MB of JSON).
   */
  async function answer(res: ServerResponse, summary: IngestSummary): Promise<void> {
    const { rejected } = summary;
    if (rejected.length <= ANSWER_PIECE) {
      sendJson(res, 200, summary);
      // Handed whole to the connection already (any answer but a large one): nothing to wait for.
      if (res.writableFinished || res.destroyed || res.writableLength === 0) return;
    }
    const timer = setTimeout(() => res.destroy(), answerReadMs);
    try {
      if (rejected.length > ANSWER_PIECE) await writeInPieces(res, summary);
      if (!res.writableFinished && !res.destroyed) await until(res, 'finish');
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The answer: a count per outcome and, in order, every event not accepted. Only those get an
   * entry, so a large batch that is all accepted costs no per-event objects here.
   */
  function summarise(batch: Expanded, results: EventResult[]): IngestSummary {
    const counts = newCounts();
    // Per source format, a count per outcome (OUTCOMES order), for the events metric.
    const byFormat = new Map<string, number[]>();
    const tally = (format: string, outcome: Outcome) => {
      let row = byFormat.get(format);
      if (row === undefined) {
        row = new Array<number>(OUTCOMES.length).fill(0);
        byFormat.set(format, row);
      }
      const o = OUTCOME_INDEX[outcome];
      row[o] = (row[o] ?? 0) + 1;
    };
    const rejected: RejectedEvent[] = [];
    const { events, slots, lines, errors } = batch;
    let e = 0;
    const flushErrorsBefore = (slot: number) => {
      for (; e < errors.length && errors[e]!.slot < slot; e++) {
        const { slot: index, line, error } = errors[e]!;
        rejected.push(rejection(index, line, 'invalid', error));
      }
    };
    for (let i = 0; i < events.length; i++) {
      const r = results[i] ?? NO_RESULT;
      const outcome = r.outcome;
      counts[outcome]++;
      tally(r.detection?.sourceFormat ?? r.format ?? 'unknown', outcome);
      if (!ACCEPTED.has(outcome)) {
        const index = slots ? slots[i]! : i;
        flushErrorsBefore(index);
        rejected.push(rejection(index, lines?.[i], outcome, r.reason ?? outcome));
      }
    }
    flushErrorsBefore(Number.POSITIVE_INFINITY);
    counts.invalid += errors.length;
    for (let k = 0; k < errors.length; k++) tally('unknown', 'invalid');
    for (const [format, row] of byFormat) {
      for (let o = 0; o < OUTCOMES.length; o++) {
        const n = row[o] ?? 0;
        if (n > 0) metrics.ingestEvents.inc({ format, outcome: OUTCOMES[o]! }, n);
      }
    }
    return {
      events: batch.size,
      accepted: counts.alerted + counts.known + counts.allowlisted,
      counts,
      rejected,
    };
  }

  /**
   * The handler; `abandon()` answers the requests still waiting for the store 503 (the service
   * stops); `storeStall()` is how long the evaluation in progress has waited for the store once past
   * the deadline (ingest then turns requests away), else 0.
   */
  return Object.assign(handleIngest, {
    abandon: () => batcher.abandon(),
    storeStall: () => {
      const stalled = batcher.stalledMs();
      return stalled > storeDeadlineMs ? stalled : 0;
    },
  });
}

/** Writes the `200` answer with its refused events `ANSWER_PIECE` at a time. */
async function writeInPieces(res: ServerResponse, summary: IngestSummary): Promise<void> {
  const { rejected, ...head } = summary;
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  // The same text as `JSON.stringify(summary)`: its keys in the same order, `rejected` last.
  let text = `${JSON.stringify(head).slice(0, -1)},"rejected":[`;
  for (let from = 0; from < rejected.length; from += ANSWER_PIECE) {
    text += `${from > 0 ? ',' : ''}${JSON.stringify(rejected.slice(from, from + ANSWER_PIECE)).slice(1, -1)}`;
    if (res.destroyed) return;
    if (!res.write(text)) await until(res, 'drain');
    // 'drain' can come in the same turn (a socket write that completes at once): a turn of the
    // event loop between two pieces all the same.
    await setImmediatePromise();
    text = '';
  }
  if (!res.destroyed) res.end(']}');
}

/** Resolves on `event`, or once the connection is gone. */
function until(res: ServerResponse, event: 'drain' | 'finish'): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off(event, done);
      res.off('close', done);
      resolve();
    };
    res.once(event, done);
    res.once('close', done);
  });
}

const NO_RESULT: EventResult = { outcome: 'invalid', reason: 'no result' };
const OUTCOME_INDEX = Object.fromEntries(OUTCOMES.map((o, i) => [o, i])) as Record<Outcome, number>;

const newCounts = (): Record<Outcome, number> => ({
  alerted: 0,
  known: 0,
  allowlisted: 0,
  duplicate: 0,
  ignored: 0,
  invalid: 0,
});

/** One entry of `rejected`; `line` only for NDJSON bodies. */
function rejection(index: number, line: number | undefined, outcome: Outcome, reason: string): RejectedEvent {
  return {
    index,
    ...(line === undefined ? {} : { line }),
    outcome: outcome as RejectedEvent['outcome'],
    reason: reason.slice(0, MAX_REASON),
  };
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventResult, Outcome } from '../core/alert.ts';
import { OUTCOMES } from '../core/alert.ts';
import type { Engine } from '../core/engine.ts';
import { extractEvents } from '../core/formats/index.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { DurableOutbox } from '../outbox/store-outbox.ts';
import { StoreError } from '../store/store-error.ts';
import { createEvaluationBatcher } from './evaluation-batcher.ts';
import { HttpError, sendJson } from './http-error.ts';
import { createIngestAuth } from './ingest-auth.ts';
import { bodyKind, type IngestDocument, parseIngestBody } from './ingest-body.ts';
import type { Limiter } from './limiter.ts';
import { bodyEncoding, readBody } from './read-body.ts';

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
  /** Events alerted, known or allowlisted: recorded in the history. */
  accepted: number;
  counts: Record<Outcome, number>;
  rejected: RejectedEvent[];
}

/** Most events evaluated from one request; more is a degenerate body (e.g. `[0,0,0,…]`). */
export const MAX_EVENTS_PER_REQUEST = 100_000;
const MAX_REASON = 500;
const ACCEPTED: ReadonlySet<Outcome> = new Set(['alerted', 'known', 'allowlisted']);

export interface IngestDeps {
  engine: Pick<Engine, 'evaluate'>;
  outbox: Pick<DurableOutbox, 'isFull' | 'depth' | 'maxPending'>;
  metrics: Metrics;
  ingestTokens: readonly string[];
  ingestMaxBytes: number;
  limiter: Limiter;
}

interface Slot {
  event?: unknown;
  line?: number;
  error?: string;
}

/** Expands each document into its events (envelopes, Kibana `alerts`), keeping the line. */
function expand(docs: IngestDocument[]): Slot[] {
  const slots: Slot[] = [];
  for (const doc of docs) {
    if (doc.error !== undefined) {
      slots.push(doc.line === undefined ? { error: doc.error } : { line: doc.line, error: doc.error });
    } else {
      for (const event of extractEvents(doc.value)) {
        slots.push(doc.line === undefined ? { event } : { event, line: doc.line });
      }
    }
    if (slots.length > MAX_EVENTS_PER_REQUEST) {
      throw new HttpError(
        413,
        'payload_too_large',
        `the body holds more than ${MAX_EVENTS_PER_REQUEST} events: split it into smaller requests`,
      );
    }
  }
  return slots;
}

const storeDown = (err: unknown) =>
  err instanceof StoreError && (err.code === 'STORE_UNREACHABLE' || err.code === 'STORE_CLOSED');

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

function unavailable(err: unknown): HttpError {
  return new HttpError(
    503,
    'store_unavailable',
    `the history store did not answer (${messageOf(err).slice(0, 300)}); nothing from this request was recorded: retry`,
    { headers: { 'retry-after': '5' } },
  );
}

/**
 * `POST /ingest`: authenticate, check framing and size, refuse when the outbox is full, read and
 * parse the body, evaluate every event, answer the summary. A `200` is sent only after the engine
 * has stored the sightings and handed the alerts to the durable outbox.
 */
export function createIngestHandler(deps: IngestDeps) {
  const { engine, outbox, metrics, limiter, ingestMaxBytes } = deps;
  const authenticate = createIngestAuth(deps.ingestTokens);
  const batcher = createEvaluationBatcher(engine);

  /**
   * Evaluates the batch. If it throws for a reason other than the store being down (a value the
   * store refuses, a bug), the events are evaluated one by one so one bad event cannot fail the
   * rest; the one that fails is reported `invalid`.
   */
  async function evaluate(events: unknown[], log: Logger): Promise<EventResult[]> {
    try {
      return await batcher.evaluate(events);
    } catch (err) {
      if (storeDown(err)) throw unavailable(err);
      if (events.length === 1) {
        log.error({ err }, 'event could not be evaluated');
        return [{ outcome: 'invalid', reason: `could not be evaluated: ${messageOf(err).slice(0, 200)}` }];
      }
      log.warn({ err: messageOf(err) }, 'batch could not be evaluated; evaluating its events one by one');
    }
    const results: EventResult[] = [];
    for (const event of events) {
      try {
        const [r] = await engine.evaluate([event]);
        results.push(r ?? { outcome: 'invalid', reason: 'no result' });
      } catch (err) {
        if (storeDown(err)) throw unavailable(err);
        log.error({ err }, 'event could not be evaluated');
        results.push({
          outcome: 'invalid',
          reason: `could not be evaluated: ${messageOf(err).slice(0, 200)}`,
        });
      }
    }
    return results;
  }

  return async function handleIngest(req: IncomingMessage, res: ServerResponse, log: Logger): Promise<void> {
    authenticate(req);
    const kind = bodyKind(req);
    const encoding = bodyEncoding(req);
    if (outbox.isFull()) {
      throw new HttpError(
        503,
        'outbox_full',
        `${outbox.depth()} alerts are waiting for chat delivery (limit ${outbox.maxPending}); check the chat connection (/readyz) and retry later`,
        { headers: { 'retry-after': '30' }, details: { pending: outbox.depth() } },
      );
    }

    const summary = await limiter.run(async () => {
      const body = await readBody(req, ingestMaxBytes, encoding);
      const slots = expand(parseIngestBody(body, kind));
      const toEvaluate: unknown[] = [];
      const positions: number[] = [];
      slots.forEach((slot, i) => {
        if (slot.error === undefined) {
          toEvaluate.push(slot.event);
          positions.push(i);
        }
      });
      const evaluated = toEvaluate.length > 0 ? await evaluate(toEvaluate, log) : [];
      const results: EventResult[] = slots.map((slot) => ({ outcome: 'invalid', reason: slot.error ?? '' }));
      positions.forEach((slotIndex, i) => {
        results[slotIndex] = evaluated[i] ?? { outcome: 'invalid', reason: 'no result' };
      });
      return summarise(slots, results);
    });

    sendJson(res, 200, summary);
    if (summary.counts.alerted > 0 || summary.rejected.length > 0) {
      log.info({ counts: summary.counts, events: summary.events }, 'ingested');
    } else {
      log.debug({ counts: summary.counts, events: summary.events }, 'ingested');
    }
  };

  function summarise(slots: Slot[], results: EventResult[]): IngestSummary {
    const counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
    const byFormat = new Map<string, number>();
    const rejected: RejectedEvent[] = [];
    results.forEach((r, index) => {
      counts[r.outcome]++;
      const labelKey = `${r.detection?.sourceFormat ?? 'unknown'}\u0000${r.outcome}`;
      byFormat.set(labelKey, (byFormat.get(labelKey) ?? 0) + 1);
      if (!ACCEPTED.has(r.outcome)) {
        const line = slots[index]?.line;
        const entry: RejectedEvent = {
          index,
          ...(line === undefined ? {} : { line }),
          outcome: r.outcome as RejectedEvent['outcome'],
          reason: (r.reason ?? r.outcome).slice(0, MAX_REASON),
        };
        rejected.push(entry);
      }
    });
    for (const [labelKey, n] of byFormat) {
      const [format, outcome] = labelKey.split('\u0000') as [string, string];
      metrics.ingestEvents.inc({ format, outcome }, n);
    }
    return {
      events: results.length,
      accepted: counts.alerted + counts.known + counts.allowlisted,
      counts,
      rejected,
    };
  }
}

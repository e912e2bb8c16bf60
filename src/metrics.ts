import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { OUTCOMES } from './core/alert.ts';
import type { SourceFormat } from './core/detection.ts';
import { apiFailureReason } from './slack/delivery-queue.ts';

/**
 * The Prometheus metrics of one app instance. Each instance has its own registry (never the
 * global one), so several apps in one process (tests, benchmarks) do not share counters.
 */
export interface Metrics {
  readonly registry: Registry;
  /** Events evaluated, by source format (`unknown` when unparseable) and outcome. */
  readonly ingestEvents: Counter<'format' | 'outcome'>;
  /** `POST /ingest` answers by HTTP status. */
  readonly ingestRequests: Counter<'status'>;
  /** `POST /ingest` requests let in by a token, by its place in INGEST_TOKEN (from 1). */
  readonly ingestTokenUses: Counter<'token'>;
  /** Time from receiving `POST /ingest` to the answer (the alerts are in the outbox by then). */
  readonly ingestLatency: Histogram<'status'>;
  /** Chat deliveries that failed and will be retried, by kind (`post`, `repeat`). */
  readonly chatDeliveryFailures: Counter<'kind'>;
  /** Chat deliveries that succeeded, by kind. */
  readonly chatDeliveries: Counter<'kind'>;
  /**
   * Failed calls to the chat platform's API, by its error code (one delivery may make several); a
   * code outside a fixed set of known ones counts as `other`.
   */
  readonly chatApiFailures: { inc(labels: { reason: string }): void };
  /** Audited responder actions (Revoke, Undo, Mark benign, ...) by action and result. */
  readonly responderActions: { inc(labels: { action: string; result: string }): void };
  /** Sets where the outbox depth gauge reads from (called once by the outbox). */
  setOutboxDepthSource(read: () => number): void;
  /** Sets where the gauge of the longest wait of an undelivered alert (seconds) reads from (called once by the outbox). */
  setOutboxOldestSource(read: () => number): void;
  /** Sets where the chat problems gauge reads from (called once by the app). */
  setChatProblemsSource(read: () => number): void;
}

/** Creates the metrics of one app instance, default process metrics included. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'arc_' });

  let oldestSource: () => number = () => 0;
  new Gauge({
    name: 'arc_outbox_oldest_wait_seconds',
    help: 'How long the alert waiting longest for chat delivery has waited since it was stored, in seconds; 0 when none waits',
    registers: [registry],
    collect() {
      this.set(oldestSource());
    },
  });

  let depthSource: () => number = () => 0;
  new Gauge({
    name: 'arc_outbox_depth',
    help: 'Alerts and repeats stored in the outbox, waiting for chat delivery',
    registers: [registry],
    collect() {
      this.set(depthSource());
    },
  });

  let chatProblemsSource: () => number = () => 0;
  new Gauge({
    name: 'arc_chat_problems',
    help: 'Problems that stop chat delivery until a person acts (Slack refusing the bot, Socket Mode down); 0 when none',
    registers: [registry],
    collect() {
      try {
        this.set(chatProblemsSource());
      } catch {
        this.set(1);
      }
    },
  });

  const chatApiFailures = new Counter({
    name: 'arc_chat_api_failures_total',
    help: "Failed calls to the chat platform's API, by error code (`other` for a code it does not know)",
    labelNames: ['reason'] as const,
    registers: [registry],
  });

  const responderActions = new Counter({
    name: 'arc_responder_actions_total',
    help: 'Audited responder actions (revoke, undo, remove-broad-roles, mark-benign, remove-allowlist, and history: a refused /arc-history), by action and result (ok, dry-run, failed, refused, duplicate, not-found)',
    labelNames: ['action', 'result'] as const,
    registers: [registry],
  });

  const metrics: Metrics = {
    registry,
    ingestEvents: new Counter({
      name: 'arc_ingest_events_total',
      help: 'Events evaluated by POST /ingest, by source format and outcome',
      labelNames: ['format', 'outcome'] as const,
      registers: [registry],
    }),
    ingestTokenUses: new Counter({
      name: 'arc_ingest_token_uses_total',
      help: 'POST /ingest requests let in by a token, by its place in the INGEST_TOKEN list (1 = first); during a rotation, the old token is unused once its count stops growing',
      labelNames: ['token'] as const,
      registers: [registry],
    }),
    ingestRequests: new Counter({
      name: 'arc_ingest_requests_total',
      help: 'POST /ingest requests, by HTTP status',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    ingestLatency: new Histogram({
      name: 'arc_ingest_duration_seconds',
      help: 'Time to answer POST /ingest (accepted alerts are stored in the outbox by then)',
      labelNames: ['status'] as const,
      // Up to 30 s: a body may take 15 s to arrive and the store 20 s to answer.
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30],
      registers: [registry],
    }),
    chatDeliveryFailures: new Counter({
      name: 'arc_chat_delivery_failures_total',
      help: 'Chat deliveries that failed (they are retried), by kind',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    chatDeliveries: new Counter({
      name: 'arc_chat_deliveries_total',
      help: 'Chat deliveries that succeeded, by kind',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    chatApiFailures: {
      inc: ({ reason }) => chatApiFailures.inc({ reason: apiFailureReason(reason) }),
    },
    responderActions: {
      // Both labels come from the service's own audit records; bounded all the same.
      inc: ({ action, result }) =>
        responderActions.inc({
          action: boundedLabel(action, ACTIONS),
          result: boundedLabel(result, RESULTS),
        }),
    },
    setOutboxDepthSource(read) {
      depthSource = read;
    },
    setOutboxOldestSource(read) {
      oldestSource = read;
    },
    setChatProblemsSource(read) {
      chatProblemsSource = read;
    },
  };
  startAtZero(metrics);
  return metrics;
}

/** Every source format; a record, so that a format added to `SourceFormat` is added here too. */
const FORMATS: Readonly<Record<SourceFormat, true>> = {
  'elastic-ecs': true,
  'elastic-alert': true,
  'azure-activity-log-rest': true,
  'azure-activity-log-record': true,
  'azure-monitor-common': true,
  'azure-monitor-legacy': true,
};

/** The statuses of `POST /ingest` that every deployment sees sooner or later. */
const INGEST_STATUSES = ['200', '400', '401', '413', '415', '503'];

/**
 * Gives the series of known label sets a 0 from the start: a labelled counter has no series until
 * its first increment, and `increase()` over a series that appears with 1 misses that first one.
 */
function startAtZero(m: Metrics): void {
  for (const format of Object.keys(FORMATS)) {
    for (const outcome of OUTCOMES) m.ingestEvents.inc({ format, outcome }, 0);
  }
  // An event in no known format is invalid, or ignored (another Azure Monitor schema).
  for (const outcome of ['ignored', 'invalid']) m.ingestEvents.inc({ format: 'unknown', outcome }, 0);
  for (const status of INGEST_STATUSES) m.ingestRequests.inc({ status }, 0);
  for (const kind of ['post', 'repeat']) {
    m.chatDeliveries.inc({ kind }, 0);
    m.chatDeliveryFailures.inc({ kind }, 0);
  }
}

/** The audited actions and results that get a series of their own; any other counts as `other`. */
const ACTIONS = new Set([
  'revoke',
  'undo',
  'remove-broad-roles',
  'mark-benign',
  'remove-allowlist',
  'history',
]);
const RESULTS = new Set(['ok', 'dry-run', 'failed', 'refused', 'duplicate', 'not-found']);
const boundedLabel = (value: string, known: ReadonlySet<string>) => (known.has(value) ? value : 'other');

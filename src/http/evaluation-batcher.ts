import type { EventResult } from '../core/alert.ts';
import type { Engine } from '../core/engine.ts';
import { isStoreDown } from '../store/store-error.ts';

/** Evaluates the events of concurrent requests together (group commit). */
export interface EvaluationBatcher {
  /**
   * Resolves with one result per event, in order, once they are stored, like `Engine.evaluate`.
   * When `deadlineMs` passes first, rejects with a `DeadlineError`: a request still in the queue is
   * withdrawn from it (nothing of it will be stored), one already being evaluated goes on.
   */
  evaluate(events: readonly unknown[], deadlineMs?: number): Promise<EventResult[]>;
  /** How long the evaluation in progress has been waiting, in ms (0 when none is): a store that hangs shows here. */
  stalledMs(): number;
  /**
   * Rejects every request waiting, queued or being evaluated, with a `DeadlineError` marked
   * `shutdown` (the service stops): as at a deadline, what is being evaluated goes on.
   */
  abandon(): void;
}

interface Waiting {
  events: readonly unknown[];
  resolve: (results: EventResult[]) => void;
  reject: (err: unknown) => void;
  /** When the request gives up (on `clock`); infinite without a deadline. */
  deadlineAt: number;
}

/** How often deadlines are checked while requests with one wait (one timer for all of them). */
const DEADLINE_CHECK_MS = 100;

/**
 * Deadlines and stalls are durations: measured on a monotonic clock, so that a wall clock set
 * ahead (an NTP step, a VM resumed) neither times out the requests in progress nor reports a
 * store stall, and one set back does not hold them past their deadline.
 */
const clock = () => performance.now();

/** A request's deadline passed before its evaluation ended. */
export class DeadlineError extends Error {
  /** Its evaluation had begun, and goes on: what it stores is recognised when the sender retries. */
  readonly started: boolean;
  /** Given up because the service stops, not at the request's own deadline. */
  readonly shutdown: boolean;
  constructor(started: boolean, shutdown = false) {
    super(started ? 'the evaluation did not finish in time' : 'the evaluation did not start in time');
    this.name = 'DeadlineError';
    this.started = started;
    this.shutdown = shutdown;
  }
}

/**
 * Requests that arrive while a batch is being evaluated (or in the same turn of the event loop)
 * are evaluated as one batch: the store then commits a few transactions per batch instead of per
 * request, which is what makes many small requests (one event each, as webhooks send them) cheap.
 * A lone request waits for nothing but the current turn.
 *
 * If a combined batch fails, each request's events are evaluated on their own, so one request's
 * failure never becomes another's; an error of a request's own events rejects only that request.
 * A store that is down rejects the whole batch at once.
 */
export function createEvaluationBatcher(
  engine: Pick<Engine, 'evaluate'>,
  options: { maxBatchEvents?: number } = {},
): EvaluationBatcher {
  const maxBatchEvents = options.maxBatchEvents ?? 5000;
  const queue: Waiting[] = [];
  /** The requests of the engine call in progress. */
  let inFlight: Waiting[] = [];
  let flushing = false;
  let deadlineTimer: NodeJS.Timeout | undefined;

  /**
   * Rejects the requests whose deadline passed: one still queued is withdrawn (nothing of it will
   * be stored), one being evaluated is told so (its evaluation goes on; a later resolve is a no-op).
   */
  function checkDeadlines() {
    const t = clock();
    for (let i = queue.length - 1; i >= 0; i--) {
      const w = queue[i]!;
      if (w.deadlineAt <= t) {
        queue.splice(i, 1);
        w.reject(new DeadlineError(false));
      }
    }
    for (const w of inFlight) if (w.deadlineAt <= t) w.reject(new DeadlineError(true));
    if (queue.length === 0 && inFlight.length === 0) {
      clearInterval(deadlineTimer);
      deadlineTimer = undefined;
    }
  }
  /** When the engine call in progress began (on `clock`), or undefined. */
  let evaluatingSince: number | undefined;
  const timed = <T>(work: () => Promise<T>): Promise<T> => {
    evaluatingSince = clock();
    return work().finally(() => {
      evaluatingSince = undefined;
    });
  };

  function schedule() {
    flushing = true;
    // Let the other requests read in this turn of the event loop join the batch.
    setImmediate(() => void flush());
  }

  async function flush() {
    try {
      await drain();
    } finally {
      flushing = false;
      // A request queued after drain() last looked at the queue must not be left waiting.
      if (queue.length > 0) schedule();
    }
  }

  async function drain() {
    while (queue.length > 0) {
      const batch: Waiting[] = [];
      let size = 0;
      while (queue.length > 0 && (batch.length === 0 || size + queue[0]!.events.length <= maxBatchEvents)) {
        const next = queue.shift()!;
        batch.push(next);
        size += next.events.length;
      }
      inFlight = batch;
      try {
        await evaluateBatch(batch);
      } finally {
        inFlight = [];
      }
    }
  }

  async function evaluateBatch(batch: Waiting[]) {
    if (batch.length === 1) {
      const only = batch[0]!;
      await timed(() => engine.evaluate(only.events)).then(only.resolve, only.reject);
      return;
    }
    let results: EventResult[] | undefined;
    try {
      results = await timed(() => engine.evaluate(batch.flatMap((w) => w.events)));
    } catch (err) {
      // A store that is down fails every request alike: no point asking it again for each.
      if (isStoreDown(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      results = undefined;
    }
    if (results) {
      let offset = 0;
      for (const w of batch) {
        w.resolve(results.slice(offset, offset + w.events.length));
        offset += w.events.length;
      }
    } else {
      for (const w of batch) await timed(() => engine.evaluate(w.events)).then(w.resolve, w.reject);
    }
  }

  return {
    stalledMs: () => (evaluatingSince === undefined ? 0 : clock() - evaluatingSince),
    abandon() {
      for (const w of queue.splice(0)) w.reject(new DeadlineError(false, true));
      for (const w of inFlight) w.reject(new DeadlineError(true, true));
    },
    evaluate(events, deadlineMs) {
      return new Promise<EventResult[]>((resolve, reject) => {
        const deadlineAt = deadlineMs === undefined ? Number.POSITIVE_INFINITY : clock() + deadlineMs;
        queue.push({ events, resolve, reject, deadlineAt });
        if (deadlineMs !== undefined && deadlineTimer === undefined) {
          deadlineTimer = setInterval(checkDeadlines, Math.min(DEADLINE_CHECK_MS, deadlineMs));
          deadlineTimer.unref();
        }
        if (!flushing) schedule();
      });
    },
  };
}

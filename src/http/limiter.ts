import { HttpError } from './http-error.ts';

/** Runs at most `concurrency` tasks at once, queues up to `maxQueued` more, and refuses the rest. */
export interface Limiter {
  run<T>(task: () => Promise<T>): Promise<T>;
  readonly active: number;
  readonly queued: number;
}

/**
 * A counting semaphore with a bounded queue. A task beyond the queue is refused with a 503
 * `overloaded` `HttpError` (with `Retry-After`), so bursts cost sockets waiting, never unbounded
 * memory.
 */
export function createLimiter(concurrency: number, maxQueued: number): Limiter {
  let active = 0;
  const waiting: Array<() => void> = [];

  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };

  return {
    get active() {
      return active;
    },
    get queued() {
      return waiting.length;
    },
    async run<T>(task: () => Promise<T>): Promise<T> {
      if (active >= concurrency) {
        if (waiting.length >= maxQueued) {
          throw new HttpError(
            503,
            'overloaded',
            `too many ingest requests in progress (${active} running, ${waiting.length} waiting): retry shortly`,
            { headers: { 'retry-after': '1' } },
          );
        }
        // The slot is handed over by `release` without decrementing `active`.
        await new Promise<void>((resolve) => waiting.push(resolve));
      } else {
        active++;
      }
      try {
        return await task();
      } finally {
        release();
      }
    },
  };
}

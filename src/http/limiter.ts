import { HttpError } from './http-error.ts';

/** Runs at most `concurrency` tasks at once, queues up to `maxQueued` more, and refuses the rest. */
export interface Limiter {
  run<T>(task: () => Promise<T>): Promise<T>;
  readonly active: number;
  readonly queued: number;
}

/**
 * A counting semaphore with a bounded queue. A task beyond the queue, or one that waited
 * `maxWaitMs` in it, is refused with a 503 `overloaded` `HttpError` (with `Retry-After`), so
 * bursts cost sockets waiting, never unbounded memory, and a sender is told to retry rather than
 * left to Node's request timeout.
 */
export function createLimiter(
  concurrency: number,
  maxQueued: number,
  maxWaitMs = 30_000,
  what = 'ingest requests',
): Limiter {
  let active = 0;
  const waiting: Array<() => void> = [];

  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  const overloaded = (state: string) =>
    new HttpError(503, 'overloaded', `too many ${what} in progress (${state}): retry shortly`, {
      headers: { 'retry-after': '1' },
    });

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
          throw overloaded(`${active} running, ${waiting.length} waiting`);
        }
        // The slot is handed over by `release` without decrementing `active`.
        await new Promise<void>((resolve, reject) => {
          const take = () => {
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(() => {
            const at = waiting.indexOf(take);
            if (at !== -1) waiting.splice(at, 1);
            const waited = maxWaitMs >= 1000 ? `${Math.round(maxWaitMs / 1000)} s` : `${maxWaitMs} ms`;
            reject(overloaded(`waited ${waited} for a turn`));
          }, maxWaitMs);
          waiting.push(take);
        });
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

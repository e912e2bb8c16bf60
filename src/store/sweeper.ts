/** What one step did: the rows it deleted, and whether it passed the table's end. */
export interface SweepResult {
  done: boolean;
  deleted: number;
}

/** Walks one step from where the last one ended. */
export type SweepStep = () => SweepResult;

export interface SweeperOptions {
  intervalMs: number;
  stepsPerTick: number;
  /** Rows a step walks: a tick that deleted a tenth of what it walked is behind. */
  stepRows: number;
  /** How soon a tick follows one that found the table behind. */
  catchUpMs: number;
  /** Told of a step that failed (another process holding the write lock, say); the next tick goes on. */
  onError(error: unknown): void;
}

export interface Sweeper {
  stop(): void;
}

/**
 * The housekeeping sweep of a SQLite table, a bounded step at a time: each timer tick runs up to
 * `stepsPerTick` steps, each in its own turn of the event loop, so that no request ever waits
 * for more than one step. A tick that found the table behind (many expired rows where it walked)
 * is followed by the next one after `catchUpMs` rather than after the interval, so that a store
 * taking many events a second sheds its expired rows as fast as they come.
 */
export function startSweeper(step: SweepStep, options: SweeperOptions): Sweeper {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  const schedule = (ms: number) => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(tick, ms);
    // Housekeeping: it never keeps the process alive on its own.
    timer.unref();
  };
  const tick = () => {
    if (running || stopped) return;
    running = true;
    let steps = 0;
    let deleted = 0;
    const next = () => {
      if (stopped) return;
      let result: SweepResult;
      try {
        result = step();
      } catch (error) {
        running = false;
        options.onError(error);
        schedule(options.intervalMs);
        return;
      }
      steps++;
      deleted += result.deleted;
      if (!result.done && steps < options.stepsPerTick) {
        setImmediate(next);
        return;
      }
      running = false;
      const behind = !result.done && deleted * 10 >= steps * options.stepRows;
      schedule(behind ? options.catchUpMs : options.intervalMs);
    };
    next();
  };
  schedule(options.intervalMs);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

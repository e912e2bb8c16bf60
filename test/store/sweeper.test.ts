/**
 * The SQLite sweep's pacing: each step in its own turn of the event loop, the next tick soon when
 * a table is behind and at the interval otherwise, a failed step waiting for the next tick.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { type Sweeper, type SweepStep, startSweeper } from '../../src/store/sweeper.ts';

const sweepers: Sweeper[] = [];
afterEach(() => {
  for (const s of sweepers.splice(0)) s.stop();
});

const options = { intervalMs: 60_000, stepsPerTick: 5, stepRows: 100, catchUpMs: 20, onError: () => {} };

/** A table of `rows` rows, of which the first `expired` have expired; each step walks `stepRows`. */
function table(rows: number, expired: number) {
  let cursor = 0;
  const steps: number[] = [];
  const step: SweepStep = () => {
    const from = cursor;
    cursor = Math.min(rows, cursor + options.stepRows);
    const deleted = Math.max(0, Math.min(cursor, expired) - from);
    expired -= deleted;
    rows -= deleted;
    cursor -= deleted;
    steps.push(deleted);
    const done = cursor >= rows;
    if (done) cursor = 0;
    return { done, deleted };
  };
  return { step, steps, left: () => expired };
}

it('lets other work run between its steps: no step follows another in the same turn', async () => {
  const order: string[] = [];
  let n = 0;
  const step: SweepStep = () => {
    order.push(`step ${++n}`);
    setImmediate(() => order.push(`other ${n}`));
    return { done: n === 3, deleted: 0 };
  };
  sweepers.push(startSweeper(step, { ...options, intervalMs: 10 }));
  await vi.waitFor(() => expect(order.length).toBeGreaterThanOrEqual(6));
  expect(order.slice(0, 6)).toEqual(['step 1', 'other 1', 'step 2', 'other 2', 'step 3', 'other 3']);
});

it('follows a tick that found the table behind with the next one soon, until it has caught up', async () => {
  // 2,000 expired rows: four ticks of five 100-row steps, all deleting.
  const t = table(3000, 2000);
  sweepers.push(startSweeper(t.step, { ...options, intervalMs: 1000 }));
  // The first tick comes at the interval; the three after it follow 20 ms apart, not a second.
  await vi.waitFor(() => expect(t.left()).toBe(0), { timeout: 2500, interval: 5 });
});

it('waits the interval after a tick that found little to delete, and after a failed step', async () => {
  const t = table(100_000, 10);
  sweepers.push(startSweeper(t.step, { ...options, intervalMs: 1500 }));
  await vi.waitFor(() => expect(t.steps.length).toBe(5), { interval: 5, timeout: 5000 });
  await new Promise((resolve) => setTimeout(resolve, 100));
  // One tick walked 500 rows and found 10 expired: not behind, so nothing more before the interval.
  expect(t.steps.length).toBe(5);

  const errors: unknown[] = [];
  let calls = 0;
  const failing: SweepStep = () => {
    calls++;
    throw new Error('database is locked');
  };
  sweepers.push(startSweeper(failing, { ...options, intervalMs: 1500, onError: (e) => errors.push(e) }));
  await vi.waitFor(() => expect(calls).toBe(1), { interval: 5, timeout: 5000 });
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect(calls).toBe(1);
  expect(errors).toEqual([new Error('database is locked')]);
  await vi.waitFor(() => expect(calls).toBe(2), { interval: 5, timeout: 5000 });
});

it('runs no step once stopped', async () => {
  let calls = 0;
  const sweeper = startSweeper(
    () => {
      calls++;
      return { done: false, deleted: 100 };
    },
    { ...options, intervalMs: 10 },
  );
  await vi.waitFor(() => expect(calls).toBeGreaterThan(0));
  sweeper.stop();
  const stoppedAt = calls;
  await new Promise((resolve) => setTimeout(resolve, 60));
  expect(calls).toBe(stoppedAt);
});

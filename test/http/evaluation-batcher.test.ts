import { describe, expect, it, vi } from 'vitest';
import type { EventResult } from '../../src/core/alert.ts';
import { createEvaluationBatcher } from '../../src/http/evaluation-batcher.ts';
import { StoreError } from '../../src/store/store-error.ts';

/** An engine stand-in that records each evaluate call and answers `known` with the event as reason. */
function recordingEngine(failOn?: unknown) {
  const calls: unknown[][] = [];
  return {
    calls,
    async evaluate(events: readonly unknown[]): Promise<EventResult[]> {
      calls.push([...events]);
      if (failOn !== undefined && events.includes(failOn)) throw new Error(`cannot store ${String(failOn)}`);
      return events.map((e) => ({ outcome: 'known', reason: String(e) }));
    },
  };
}

describe('evaluation batcher (group commit of concurrent requests)', () => {
  it('withdraws a request whose deadline passes while it waits: none of it reaches the engine', async () => {
    let release!: () => void;
    const calls: unknown[][] = [];
    const engine = {
      async evaluate(events: readonly unknown[]): Promise<EventResult[]> {
        calls.push([...events]);
        // The first call hangs, as on a store that does not answer.
        if (calls.length === 1) await new Promise<void>((resolve) => (release = resolve));
        return events.map((e) => ({ outcome: 'known', reason: String(e) }));
      },
    };
    const batcher = createEvaluationBatcher(engine);
    const running = batcher.evaluate(['a1'], 50);
    await new Promise((resolve) => setImmediate(resolve));
    const withdrawn = batcher.evaluate(['b1'], 20);
    const kept = batcher.evaluate(['c1']);
    await expect(withdrawn).rejects.toMatchObject({ name: 'DeadlineError', started: false });
    // The one already evaluated goes on; its sender is told so.
    await expect(running).rejects.toMatchObject({ name: 'DeadlineError', started: true });
    release();
    expect((await kept).map((r) => r.reason)).toEqual(['c1']);
    expect(calls).toEqual([['a1'], ['c1']]);
  });

  it('measures deadlines and stalls on a monotonic clock: a wall clock set an hour ahead mid-evaluation times nothing out', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      let release!: () => void;
      const engine = {
        async evaluate(events: readonly unknown[]): Promise<EventResult[]> {
          await new Promise<void>((resolve) => (release = resolve));
          return events.map((e) => ({ outcome: 'known', reason: String(e) }));
        },
      };
      const batcher = createEvaluationBatcher(engine);
      const running = batcher.evaluate(['a1'], 20_000);
      await new Promise((resolve) => setImmediate(resolve));
      vi.setSystemTime(Date.now() + 3_600_000);
      // The deadline check runs every 100 ms: give it a few turns.
      await new Promise((resolve) => setTimeout(resolve, 250));
      // Ingest refuses new requests (503, "the store has not answered") once this passes its deadline.
      expect(batcher.stalledMs()).toBeLessThan(20_000);
      release();
      expect((await running).map((r) => r.reason)).toEqual(['a1']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('evaluates the requests of one turn as one batch and hands each its own results', async () => {
    const engine = recordingEngine();
    const batcher = createEvaluationBatcher(engine);
    const [a, b, c] = await Promise.all([
      batcher.evaluate(['a1', 'a2']),
      batcher.evaluate(['b1']),
      batcher.evaluate(['c1', 'c2', 'c3']),
    ]);
    expect(engine.calls).toEqual([['a1', 'a2', 'b1', 'c1', 'c2', 'c3']]);
    expect(a?.map((r) => r.reason)).toEqual(['a1', 'a2']);
    expect(b?.map((r) => r.reason)).toEqual(['b1']);
    expect(c?.map((r) => r.reason)).toEqual(['c1', 'c2', 'c3']);
  });

  it('keeps batches under maxBatchEvents, never splitting a request', async () => {
    const engine = recordingEngine();
    const batcher = createEvaluationBatcher(engine, { maxBatchEvents: 3 });
    await Promise.all([
      batcher.evaluate(['a1', 'a2']),
      batcher.evaluate(['b1', 'b2']),
      batcher.evaluate(['c1']),
    ]);
    expect(engine.calls).toEqual([
      ['a1', 'a2'],
      ['b1', 'b2', 'c1'],
    ]);
    await batcher.evaluate(['d1', 'd2', 'd3', 'd4']);
    expect(engine.calls.at(-1)).toEqual(['d1', 'd2', 'd3', 'd4']);
  });

  it('when a combined batch fails, retries each request alone so only the failing one is rejected', async () => {
    const engine = recordingEngine('bad');
    const batcher = createEvaluationBatcher(engine);
    const results = await Promise.allSettled([
      batcher.evaluate(['a1']),
      batcher.evaluate(['bad', 'b2']),
      batcher.evaluate(['c1']),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('cannot store bad');
    expect(engine.calls).toEqual([['a1', 'bad', 'b2', 'c1'], ['a1'], ['bad', 'b2'], ['c1']]);
    // The batcher keeps working afterwards.
    expect((await batcher.evaluate(['z']))[0]?.reason).toBe('z');
  });

  it('when the store is down, rejects every request of the batch at once without asking it again', async () => {
    const calls: unknown[][] = [];
    const down = new StoreError('STORE_UNREACHABLE', 'The redis store failed: Socket closed unexpectedly');
    const batcher = createEvaluationBatcher({
      async evaluate(events: readonly unknown[]): Promise<EventResult[]> {
        calls.push([...events]);
        throw down;
      },
    });
    const results = await Promise.allSettled([batcher.evaluate(['a1']), batcher.evaluate(['b1'])]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(results.map((r) => (r as PromiseRejectedResult).reason)).toEqual([down, down]);
    expect(calls).toEqual([['a1', 'b1']]);
  });
});

import { expect, it } from 'vitest';
import { createRefusalLog } from '../../src/http/refusal-log.ts';
import { createLogger } from '../../src/log.ts';

it('writes the count of a window when the window ends, with no later refusal to trigger it', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  const refusals = createRefusalLog(logger, { linesPerWindow: 2, windowMs: 100 });
  const kind = { method: 'GET', route: undefined, status: 503, code: 'overloaded' };
  const admitted = Array.from({ length: 5 }, () => refusals.admit(kind));
  expect(admitted).toEqual([true, true, false, false, false]);
  expect(lines).toEqual([]);
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(lines).toEqual([
    expect.objectContaining({
      level: 'warn',
      method: 'GET',
      status: 503,
      code: 'overloaded',
      more: 3,
      msg: '3 more GET requests to unknown paths failed with 503 (overloaded) in the last 0.1 s (at most 2 per 0.1 s are logged one by one)',
    }),
  ]);
  // The next window starts afresh.
  expect(refusals.admit(kind)).toBe(true);
});

/**
 * The ingest limiter: a bounded number of requests at once, a bounded queue, and a bounded wait
 * in it; what it turns away is a 503 `overloaded` with `Retry-After`, never a hang.
 */
import { expect, it } from 'vitest';
import { HttpError } from '../../src/http/http-error.ts';
import { createLimiter } from '../../src/http/limiter.ts';

const held = () => {
  let release!: () => void;
  const done = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { done, release };
};

it('runs a waiting task when a slot frees, and refuses one that waited past its limit', async () => {
  const limiter = createLimiter(1, 10, 100);
  const first = held();
  const running = limiter.run(() => first.done);
  const second = limiter
    .run(async () => 'second')
    .then(
      (v) => v,
      (e: unknown) => e,
    );
  const late = held();
  // The third waits behind the second; the first holds the slot past the third's limit.
  const third = limiter.run(() => late.done.then(() => 'third'));
  expect(limiter.queued).toBe(2);
  const refused = await Promise.race([
    third.then(
      () => undefined,
      (e: unknown) => e,
    ),
    new Promise((resolve) => setTimeout(() => resolve('still waiting'), 1000)),
  ]);
  expect(refused).toBeInstanceOf(HttpError);
  expect(refused).toMatchObject({ status: 503, code: 'overloaded' });
  expect((refused as HttpError).message).toMatch(/waited 100 ms for a turn\): retry shortly$/);
  expect(limiter.queued).toBe(0);
  first.release();
  await running;
  // The second's own wait had passed too: refused the same way, not run.
  expect(await second).toMatchObject({ status: 503, code: 'overloaded' });
  // The slot is free again.
  expect(await limiter.run(async () => 'next')).toBe('next');
  expect(limiter.active).toBe(0);
});

it('refuses a task beyond the queue at once', async () => {
  const limiter = createLimiter(1, 1, 10_000);
  const first = held();
  const running = limiter.run(() => first.done);
  const queued = limiter.run(async () => 'queued');
  await expect(limiter.run(async () => 'beyond')).rejects.toMatchObject({ status: 503, code: 'overloaded' });
  first.release();
  await running;
  expect(await queued).toBe('queued');
});

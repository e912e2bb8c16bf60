/**
 * A store that hangs (a paused Redis, a network that drops packets) rather than refusing
 * connections: ingest answers 503 at its deadline instead of holding the sender, turns later
 * requests away at once, and works again as soon as the store answers. Redis is reached through
 * a TCP proxy of the test's own, which stops passing bytes on while paused. `/readyz` says not
 * ready for as long as ingest turns detections away, also when the store still answers its own
 * probe (a PostgreSQL table locked by another session holds the evaluation, not `SELECT 1`).
 */
import { connect } from 'node:net';
import pg from 'pg';
import { expect, it, vi } from 'vitest';
import { describeWithService, ownPostgresDatabase, uniqueNamespace } from '../store/helpers.ts';
import { answer, arcRecord, freshAppId, postIngest, startTestApp } from '../support/http-app.ts';
import { tcpProxy } from '../support/tcp-proxy.ts';

/**
 * Sends the headers of a POST /ingest and the first bytes of its body, and keeps the connection
 * open without sending the rest: resolves with the answer, as soon as a complete one has come.
 */
function unfinishedUpload(port: number) {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const event = JSON.stringify(arcRecord({ appId: freshAppId() }));
  socket.write(
    `POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(event)}\r\n\r\n${event.slice(0, 10)}`,
  );
  const answer = new Promise<{ status: number; body: { code?: string; error?: string } }>((resolve) => {
    let text = '';
    const done = () => {
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return false;
      const length = /^content-length: (\d+)$/im.exec(text.slice(0, end));
      const body = text.slice(end + 4);
      if (!length || Buffer.byteLength(body) < Number(length[1])) return false;
      resolve({ status: Number(text.slice(9, 12)), body: JSON.parse(body) });
      return true;
    };
    socket.on('data', (d) => {
      text += d.toString();
      done();
    });
    socket.on('close', () => done() || resolve({ status: 0, body: {} }));
  });
  return { answer, socket };
}

/** The app on the Redis at `url`, reached through a pausable proxy; a 400 ms store deadline. */
async function appBehindProxy(
  url: string,
  tag: string,
  options: {
    stopCloseMs?: number;
    stopGraceMs?: number;
    storeDeadlineMs?: number;
    bodyDeadlineMs?: number;
  } = {},
) {
  const proxy = await tcpProxy(new URL(url));
  const t = await startTestApp({
    env: { STORE_URL: proxy.url },
    storeNamespace: uniqueNamespace(tag),
    storeDeadlineMs: 400,
    ...options,
  });
  return { proxy, t };
}

describeWithService('ingest while the store hangs (Redis)', 'TEST_REDIS_URL', (url) => {
  it('answers 503 at the deadline, turns the next request away at once, unread, and recovers without a restart', async () => {
    // A body that never completes would be answered 408 after 3 s, were it read.
    const { proxy, t } = await appBehindProxy(url, 'hang', { bodyDeadlineMs: 3000 });
    try {
      expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(200);

      proxy.pause();
      const late = arcRecord({ appId: freshAppId() });
      const first = await postIngest<{ code: string; error: string }>(t.url, late);
      expect(first.status).toBe(503);
      expect(first.body.code).toBe('store_unavailable');
      expect(first.body.error).toMatch(/has not answered for 0 s; retry later/);
      expect(first.headers.get('retry-after')).toBe('5');
      // The evaluation still waits: a request after the deadline is told at once, unread.
      await new Promise((resolve) => setTimeout(resolve, 450));
      const next = await postIngest<{ code: string }>(t.url, arcRecord({ appId: freshAppId() }));
      expect(next.status).toBe(503);
      expect(next.body.code).toBe('store_unavailable');
      // Told before its body is read: one whose body never comes gets the same answer.
      const unfinished = unfinishedUpload(Number(new URL(t.url).port));
      try {
        const told = await unfinished.answer;
        expect(told.status).toBe(503);
        expect(told.body.code).toBe('store_unavailable');
        expect(told.body.error).toMatch(/retry later \(nothing from this request was recorded\)/);
        expect(unfinished.socket.destroyed).toBe(false);
      } finally {
        unfinished.socket.destroy();
      }

      proxy.resume();
      await vi.waitFor(
        async () => expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(200),
        { timeout: 10_000, interval: 100 },
      );
      // The event answered 503 is not lost: its retry is evaluated, or recognised as stored meanwhile.
      const retry = await postIngest<{ counts: { alerted: number; duplicate: number } }>(t.url, late);
      expect(retry.status).toBe(200);
      expect(retry.body.counts.alerted + retry.body.counts.duplicate).toBe(1);
      // The stall is said at error once (the refused requests are logged apart), and its end too.
      const said = (re: RegExp) => t.logs.filter((l) => re.test(String(l.msg)));
      expect(
        said(/^the history store has not answered for \d+ s: ingest answers 503/).map((l) => l.level),
      ).toEqual(['error']);
      expect(said(/^the history store answers again/)).toHaveLength(1);
    } finally {
      await t.close();
      await proxy.close();
    }
  });
});

describeWithService('stopping while the store hangs (Redis)', 'TEST_REDIS_URL', (url) => {
  it('stops within its bound instead of waiting for the store forever, and says so', async () => {
    const { proxy, t } = await appBehindProxy(url, 'hang-stop', { stopCloseMs: 500 });
    try {
      expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(200);
      proxy.pause();
      // An evaluation now waits on the store, and so does closing it.
      expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(503);
      const started = Date.now();
      await t.close();
      expect(Date.now() - started).toBeLessThan(5000);
      // The outbox worker waits on the store too: whichever part waits is named.
      expect(t.rawLogs()).toMatch(/(the outbox worker|the redis store) did not finish within 0\.5 s/);
    } finally {
      proxy.resume();
      await proxy.close();
    }
  });

  it('answers a request still waiting for the store 503 (shutting down, retry) before closing its connection', async () => {
    const { proxy, t } = await appBehindProxy(url, 'hang-stop-waiting', {
      stopCloseMs: 500,
      stopGraceMs: 300,
      storeDeadlineMs: 30_000,
    });
    try {
      expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(200);
      proxy.pause();
      const waiting = postIngest<{ code: string; error: string }>(t.url, arcRecord({ appId: freshAppId() }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await t.close();
      const answer = await waiting;
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe('shutting_down');
      expect(answer.body.error).toMatch(
        /shutting down while the history store does not answer; retry shortly/,
      );
      expect(answer.headers.get('retry-after')).toBe('5');
    } finally {
      proxy.resume();
      await proxy.close();
    }
  });
});

describeWithService('readiness while a lock holds ingest (PostgreSQL)', 'TEST_POSTGRES_URL', (url) => {
  // A database of the test's own: the lock would hold every other test sharing the server's.
  const own = ownPostgresDatabase(url, 'lock');

  it('readyz answers 503 while ingest waits past its deadline for a locked table, though SELECT 1 and the claims answer, and 200 once the lock goes', async () => {
    const t = await startTestApp({ env: { STORE_URL: own.url }, storeDeadlineMs: 400 });
    const locker = new pg.Client({ connectionString: own.url });
    await locker.connect();
    try {
      expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(200);
      // A migration, a VACUUM FULL or a transaction left open holds the values table.
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE public.keyv IN ACCESS EXCLUSIVE MODE');
      const held = await postIngest<{ code: string }>(t.url, arcRecord({ appId: freshAppId() }));
      expect(held.status).toBe(503);
      expect(held.body.code).toBe('store_unavailable');
      await new Promise((resolve) => setTimeout(resolve, 450));
      expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(503);
      const ready = await answer<{ code: string; problems: string[] }>(await fetch(`${t.url}/readyz`));
      expect(ready.status).toBe(503);
      expect(ready.body.problems.join()).toMatch(
        /the postgres store has not answered an evaluation for \d+ s: ingest answers 503 until it does/,
      );

      await locker.query('ROLLBACK');
      await vi.waitFor(
        async () => expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(200),
        { timeout: 10_000, interval: 100 },
      );
      expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
      await t.close();
    }
  });
});

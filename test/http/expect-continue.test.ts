import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApp, type TestApp } from '../support/http-app.ts';
import { arcEvent } from '../support/samples.ts';

const TOKEN = 'tok-expect-continue-1';
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

interface Exchange {
  /** Everything the server sent, `100 Continue` included. */
  raw: string;
  /** The final answer's status line and headers, and its body parsed. */
  status: number;
  head: string;
  body: Record<string, unknown>;
  /** Whether the client sent its body (only after a `100 Continue`). */
  sentBody: boolean;
  /** Whether the server closed the connection after its answer. */
  closed: boolean;
}

/**
 * Sends `head` on a raw connection and, as curl does for large bodies, sends `body` only once the
 * server says `100 Continue`. Resolves once the final answer has come whole (and the connection
 * closed, or stayed open for a moment after it).
 */
function exchange(port: number, head: string, body: string): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, '127.0.0.1');
    let raw = '';
    let sentBody = false;
    let done: Omit<Exchange, 'closed'> | undefined;
    const finish = (closed: boolean) => {
      if (done === undefined) return;
      s.destroy();
      resolve({ ...done, closed });
    };
    s.on('data', (d: Buffer) => {
      raw += d.toString('utf8');
      if (!sentBody && raw.startsWith(CONTINUE)) {
        sentBody = true;
        s.write(body);
      }
      const final = raw.startsWith(CONTINUE) ? raw.slice(CONTINUE.length) : raw;
      const end = final.indexOf('\r\n\r\n');
      if (end === -1 || done) return;
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(final.slice(0, end))?.[1]);
      if (final.length - end - 4 < length) return;
      done = {
        raw,
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(final)?.[1]),
        head: final.slice(0, end),
        body: JSON.parse(final.slice(end + 4, end + 4 + length)) as Record<string, unknown>,
        sentBody,
      };
      // A connection kept open is told apart from a closed one by a wait (the server closes at
      // once after a refusal).
      setTimeout(() => finish(false), 1000);
    });
    s.on('close', () => finish(true));
    s.on('error', (err) => {
      if (done === undefined) reject(err);
    });
    s.on('connect', () => s.write(head));
  });
}

const headOf = (path: string, headers: Record<string, string | number>) =>
  `POST ${path} HTTP/1.1\r\nHost: localhost\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;

describe('POST /ingest with Expect: 100-continue', () => {
  let t: TestApp;
  let port: number;
  const body = JSON.stringify(arcEvent('azure-activity-log-record', { ip: '203.0.113.77' }));
  const headers = (extra: Record<string, string | number> = {}) => ({
    authorization: `Bearer ${TOKEN}`,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    expect: '100-continue',
    ...extra,
  });

  beforeAll(async () => {
    t = await startTestApp({ env: { INGEST_TOKEN: TOKEN } });
    port = Number(new URL(t.url).port);
  });
  afterAll(async () => {
    await t.close();
  });

  it('says 100 Continue, reads the body, and answers its summary', async () => {
    const x = await exchange(port, headOf('/ingest', headers()), body);
    expect(x.raw.startsWith(CONTINUE)).toBe(true);
    expect(x.sentBody).toBe(true);
    expect(x.status).toBe(200);
    expect(x.body).toMatchObject({ events: 1, accepted: 1, counts: { alerted: 1 } });
    // The connection stays usable for the next request.
    expect(x.closed).toBe(false);
  });

  it.each([
    ['without a valid token', '/ingest', { authorization: 'Bearer wrong-token-0000' }, 401, 'unauthorized'],
    ['of another content type', '/ingest', { 'content-type': 'text/plain' }, 415, 'unsupported_media_type'],
    [
      'declaring a body over INGEST_MAX_BYTES',
      '/ingest',
      { 'content-length': 2 * 1024 * 1024 },
      413,
      'payload_too_large',
    ],
    ['to an unknown path', '/ingst', {}, 404, 'not_found'],
  ])(
    'refuses a request %s before the client sends its body, and closes the connection',
    async (_what, path, extra, status, code) => {
      const x = await exchange(port, headOf(path, headers(extra)), body);
      expect(x.raw).not.toContain('100 Continue');
      expect(x.sentBody).toBe(false);
      expect(x.status).toBe(status);
      expect(x.body.code).toBe(code);
      expect(x.head.toLowerCase()).toContain('connection: close');
      expect(x.closed).toBe(true);
    },
  );
});

/**
 * Sends `head` and, without waiting for `100 Continue` (as RFC 9110 allows), a body of `bytes`
 * spaces in the same write; resolves with all the server sent that it read once the connection
 * closes.
 */
function sendAtOnce(port: number, head: string, bytes: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    // As many clients do, it reads only once it has sent everything (or its sending failed).
    s.pause();
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => {});
    s.on('close', () => resolve(Buffer.concat(got).toString('utf8')));
    s.on('connect', () =>
      s.end(Buffer.concat([Buffer.from(head), Buffer.alloc(bytes, 0x20)]), () => s.resume()),
    );
  });
}

describe('a refused request whose client does not wait for 100 Continue', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { INGEST_TOKEN: TOKEN } });
  });
  afterAll(async () => {
    await t.close();
  });

  it.each([
    ['of another content type', { 'content-type': 'text/plain' }, 415],
    ['without a valid token', { authorization: 'Bearer wrong-token-0000' }, 401],
  ])('reads the answer to one %s, not a reset connection', async (_what, extra, status) => {
    const bytes = 4 * 1024 * 1024;
    const raw = await sendAtOnce(
      Number(new URL(t.url).port),
      headOf('/ingest', {
        authorization: `Bearer ${TOKEN}`,
        'content-type': 'application/json',
        'content-length': bytes,
        expect: '100-continue',
        ...extra,
      }),
      bytes,
    );
    expect(raw).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(raw).not.toContain('100 Continue');
  });

  it.each([
    ['without a valid token', { authorization: 'Bearer wrong-token-0000' }, 401],
    ['declaring a body over INGEST_MAX_BYTES', { 'content-length': 5 * 1024 * 1024 }, 413],
  ])(
    'has its connection let go once it sent no body for a second, with its side kept open, not held for the 5 s of a body still coming: a request %s',
    async (_what, extra, status) => {
      const s = connect({ port: Number(new URL(t.url).port), host: '127.0.0.1', allowHalfOpen: true });
      let raw = '';
      s.on('data', (d: Buffer) => {
        raw += d.toString('utf8');
      });
      s.on('error', () => {});
      await new Promise<void>((resolve) => s.on('connect', resolve));
      s.write(
        headOf('/ingest', {
          authorization: `Bearer ${TOKEN}`,
          'content-type': 'application/json',
          'content-length': 100_000,
          expect: '100-continue',
          ...extra,
        }),
      );
      await vi.waitFor(() => expect(raw).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `)));
      // The service lets go of the connection (the client, keeping its side open, is not told).
      const open = () =>
        new Promise<number>((resolve, reject) =>
          t.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
        );
      await vi.waitFor(async () => expect(await open()).toBe(0), { timeout: 3000, interval: 50 });
      s.destroy();
    },
  );
});

describe('a body declared over INGEST_MAX_BYTES', () => {
  let t: TestApp;
  beforeAll(async () => {
    // One read slot and no queue: a request that finds the slot taken is refused 503 at once.
    t = await startTestApp({ env: { INGEST_TOKEN: TOKEN }, ingestReaders: 1, ingestQueue: 0 });
  });
  afterAll(async () => {
    await t.close();
  });

  it('is refused 413 at once, even while every read slot is taken', async () => {
    const port = Number(new URL(t.url).port);
    const post = (length: number) =>
      exchange(
        port,
        headOf('/ingest', {
          authorization: `Bearer ${TOKEN}`,
          'content-type': 'application/json',
          'content-length': length,
          expect: '100-continue',
        }),
        // A body of the declared length, sent if the server asks for it (spaces: refused as not JSON).
        ' '.repeat(Math.min(length, 1000)),
      );
    // An upload that stalls holds the only read slot (for up to its 15 s deadline).
    const stalled = connect(port, '127.0.0.1');
    stalled.on('error', () => {});
    await new Promise<void>((resolve) => stalled.on('connect', resolve));
    stalled.write(
      headOf('/ingest', {
        authorization: `Bearer ${TOKEN}`,
        'content-type': 'application/json',
        'content-length': 100_000,
      }),
    );
    stalled.write('{"records": [');
    await expect.poll(async () => (await post(100)).body.code).toBe('overloaded');

    const x = await post(5 * 1024 * 1024);
    expect(x.status).toBe(413);
    expect(x.body.code).toBe('payload_too_large');
    expect(x.raw).not.toContain('100 Continue');
    stalled.destroy();
  });
});

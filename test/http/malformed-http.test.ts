import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/http-app.ts';

/** Writes `text` on a new connection and resolves with everything the server sent until it closed. */
function exchange(url: string, text: string | ((s: Socket) => void)): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const s = connect(Number(port), '127.0.0.1', () => (typeof text === 'string' ? s.write(text) : text(s)));
    s.on('data', (d) => got.push(d));
    const done = () => resolve(Buffer.concat(got).toString('utf8'));
    s.on('close', done);
    s.on('error', done);
  });
}

function parse(raw: string) {
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, end);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  return { status, head, body: JSON.parse(raw.slice(end + 4)) as { error: string; code: string } };
}

describe('HTTP the parser refuses: answered like any other error, as JSON', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { INGEST_TOKEN: 'tok-malformed-1' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('431 with a JSON error for headers larger than Node accepts', async () => {
    const raw = await exchange(
      t.url,
      `POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(60_000)}\r\nContent-Length: 2\r\n\r\n[]`,
    );
    const res = parse(raw);
    expect(res.status).toBe(431);
    expect(res.head).toMatch(/content-type: application\/json/i);
    expect(res.body.error).toMatch(/header/i);
    expect(typeof res.body.code).toBe('string');
  });

  it('400 with a JSON error for a malformed chunked body', async () => {
    const raw = await exchange(
      t.url,
      'POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-malformed-1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
    );
    const res = parse(raw);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('bad_request');
    expect(res.body.error).toMatch(/HTTP/);
  });

  it('logs each at info as a refused request, with its status, code, request id and client', async () => {
    const sent = [
      `POST /ingest HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\n[]`,
      'POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n[]',
    ];
    for (const text of sent) {
      const res = parse(await exchange(t.url, text));
      const requestId = /^x-request-id: (.+)$/im.exec(res.head)?.[1];
      expect(requestId).toBeDefined();
      const line = t.logs.find((l) => l.reqId === requestId);
      expect(line).toMatchObject({
        level: 'info',
        msg: 'request refused',
        status: res.status,
        code: res.body.code,
        error: res.body.error,
        client: expect.stringMatching(/127\.0\.0\.1$/),
      });
    }
  });

  it('408, not 400, when Node times a request out (a body still unread after requestTimeout)', async () => {
    // Node's requestTimeout is at least 45 s here: its clientError is raised directly.
    const serverSide = new Promise<Socket>((resolve) => t.app.server.once('connection', resolve));
    const raw = exchange(t.url, (s) =>
      s.write(
        'POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-malformed-1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[',
      ),
    );
    const socket = await serverSide;
    await new Promise((r) => setTimeout(r, 100));
    t.app.server.emit(
      'clientError',
      Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }),
      socket,
    );
    const res = parse(await raw);
    expect(res.status).toBe(408);
    expect(res.body.code).toBe('body_timeout');
  });
});

it('logs at most 10 a minute of the requests the parser refuses, and counts the rest', async () => {
  const t = await startTestApp();
  try {
    const text = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`;
    for (let i = 0; i < 12; i++) expect(parse(await exchange(t.url, text)).status).toBe(431);
  } finally {
    await t.close();
  }
  const refused = t.logs.filter((l) => l.status === 431);
  expect(refused.filter((l) => l.msg === 'request refused')).toHaveLength(10);
  expect(refused.at(-1)).toMatchObject({
    level: 'info',
    code: 'headers_too_large',
    more: 2,
    msg: expect.stringMatching(
      /^2 more requests that could not be read refused with 431 \(headers_too_large\)/,
    ),
  });
});

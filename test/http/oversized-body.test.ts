import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApp, type TestApp } from '../support/http-app.ts';

interface Upload {
  /** Everything the server sent before the connection closed. */
  raw: string;
  /** Body bytes handed to the socket. */
  sent: number;
}

/**
 * Sends `head`, then a body of `bytes` spaces as fast as the connection takes them (chunked when
 * told), on a raw connection. A client that reads (as curl does) stops sending once an answer
 * comes; one that does not reads only once it has sent everything, or the connection failed.
 */
function upload(
  url: string,
  head: string,
  bytes: number,
  opts: { chunked?: boolean; reads?: boolean } = {},
): Promise<Upload> {
  const { port } = new URL(url);
  const reads = opts.reads ?? true;
  const piece = Buffer.alloc(64 * 1024, 0x20);
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    let sent = 0;
    let answered = false;
    const s = connect(Number(port), '127.0.0.1');
    const listen = () => s.on('data', (d: Buffer) => got.push(d));
    const pump = () => {
      while (!answered && !s.destroyed && sent < bytes) {
        const n = Math.min(piece.length, bytes - sent);
        sent += n;
        const data = piece.subarray(0, n);
        const framed = opts.chunked
          ? Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), data, Buffer.from('\r\n')])
          : data;
        if (!s.write(framed)) {
          s.once('drain', pump);
          return;
        }
      }
      if (opts.chunked && !answered && !s.destroyed) s.write('0\r\n\r\n');
      if (!reads) listen();
    };
    if (reads) {
      listen();
      s.once('data', () => {
        answered = true;
      });
    }
    s.on('connect', () => {
      s.write(head);
      pump();
    });
    s.on('error', () => {
      if (!reads) listen();
    });
    s.on('close', () => resolve({ raw: Buffer.concat(got).toString('utf8'), sent }));
  });
}

function parse(raw: string) {
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, end);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  const body = end === -1 ? undefined : (JSON.parse(raw.slice(end + 4)) as { error: string; code: string });
  return { status, head, body };
}

describe('a body far over INGEST_MAX_BYTES is answered 413, logged and counted', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { INGEST_TOKEN: 'tok-oversized-1' } });
  });
  afterAll(async () => {
    await t.close();
  });

  const head = (framing: string) =>
    `POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-oversized-1\r\nContent-Type: application/json\r\n${framing}\r\n\r\n`;

  const refused413 = async () => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    return Number(/^arc_ingest_requests_total\{status="413"\} (\d+)/m.exec(text)?.[1] ?? 0);
  };
  const refusedLines = () => t.logs.filter((l) => l.msg === 'request refused' && l.status === 413).length;

  it.each([
    ['declared by Content-Length', 20_000_000, false],
    ['declared by Content-Length, 17 MB', 17_000_000, false],
    ['chunked', 20_000_000, true],
  ])('a sender that reads while it writes gets the 413 (%s)', async (_how, bytes, chunked) => {
    const counted = await refused413();
    const lines = refusedLines();
    const framing = chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${bytes}`;
    const res = await upload(t.url, head(framing), bytes, { chunked });
    const answer = parse(res.raw);
    expect(answer.status, res.raw.slice(0, 200)).toBe(413);
    expect(answer.head).toMatch(/^connection: close$/im);
    expect(answer.body?.code).toBe('payload_too_large');
    expect(res.sent).toBeLessThan(bytes);
    await vi.waitFor(() => expect(refusedLines()).toBe(lines + 1));
    expect(await refused413()).toBe(counted + 1);
  });

  it('a sender that reads only once it stopped sending, its body unfinished, still gets the 413', async () => {
    const res = await upload(t.url, head('Content-Length: 40000000'), 8_000_000, { reads: false });
    const answer = parse(res.raw);
    expect(answer.status, res.raw.slice(0, 200)).toBe(413);
    expect(answer.body?.code).toBe('payload_too_large');
  });

  it('a sender that never reads is cut off after a while, and its refusal is still logged and counted', async () => {
    const counted = await refused413();
    const lines = refusedLines();
    await upload(t.url, head('Content-Length: 40000000'), 40_000_000, { reads: false });
    await vi.waitFor(() => expect(refusedLines()).toBe(lines + 1));
    expect(await refused413()).toBe(counted + 1);
    // The service still answers on a new connection.
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  });
});

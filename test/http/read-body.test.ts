import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { bodyDeadlineFor } from '../../src/http/ingest-handler.ts';
import { ClientGoneError, readBody } from '../../src/http/read-body.ts';
import { arcRecord, postIngest, startTestApp } from '../support/http-app.ts';

/** A server whose handler hands each request to `onRequest` and never answers by itself. */
async function serve(onRequest: (req: IncomingMessage) => void): Promise<{ server: Server; port: number }> {
  const server = createServer((req) => onRequest(req));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Sends a complete POST with a body, then closes the connection without waiting for an answer. */
function postAndHangUp(port: number, body: string): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      const request = `POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      // Gone as soon as the whole request is on its way.
      s.write(request, () => s.destroy());
    });
    s.on('close', () => resolve());
    s.on('error', () => {});
  });
}

describe('readBody', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  it('rejects at once for a request whose client hung up before its body was read (a request that waited)', async () => {
    const outcome = new Promise<unknown>((resolve) => {
      void serve((req) => {
        // The body is read only after the connection is gone, as for a request that waited for
        // a slot of the ingest limiter.
        req.once('close', () => readBody(req, 1_000_000, []).then(resolve, resolve));
      }).then((s) => {
        server = s.server;
        void postAndHangUp(s.port, '{"a":1}');
      });
    });
    expect(await outcome).toBeInstanceOf(ClientGoneError);
  });
});

describe('POST /ingest after clients hung up while waiting for the limiter', () => {
  it('keeps answering: a request whose client left never keeps its slot', async () => {
    const t = await startTestApp({ ingestConcurrency: 1, ingestReaders: 1, ingestQueue: 1000 });
    const { port } = new URL(t.url);
    const connections = () =>
      new Promise<number>((resolve, reject) =>
        t.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
      );
    // A slow sender holds the only read slot: its body is not complete yet.
    const slow = connect(Number(port), '127.0.0.1');
    slow.on('error', () => {});
    const slowAnswer = new Promise<string>((resolve) => {
      let text = '';
      slow.on('data', (d) => {
        text += d.toString();
      });
      slow.on('close', () => resolve(text));
    });
    try {
      const event = JSON.stringify(arcRecord());
      await new Promise<void>((resolve) =>
        slow.write(
          `POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(event)}\r\n\r\n${event.slice(0, 10)}`,
          () => resolve(),
        ),
      );
      // These wait for the slot, and their clients leave meanwhile.
      await Promise.all(
        Array.from({ length: 20 }, () => postAndHangUp(Number(port), JSON.stringify(arcRecord()))),
      );
      for (let i = 0; i < 500 && (await connections()) > 1; i++) await new Promise((r) => setTimeout(r, 10));
      slow.end(event.slice(10));
      expect(await slowAnswer).toMatch(/^HTTP\/1\.1 200/);
      const res = await postIngest(t.url, arcRecord());
      expect(res.status).toBe(200);
    } finally {
      slow.destroy();
      await t.close();
    }
  });
});

/** Opens a POST /ingest whose body stops after a few bytes; resolves with everything answered. */
function stalledUpload(port: number): { answer: Promise<string>; socket: ReturnType<typeof connect> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const event = JSON.stringify(arcRecord());
  socket.write(
    `POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(event)}\r\n\r\n${event.slice(0, 5)}`,
  );
  const answer = new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (d) => {
      text += d.toString();
    });
    socket.on('close', () => resolve(text));
  });
  return { answer, socket };
}

describe('POST /ingest with stalled uploads', () => {
  it('gives a body 15 s, and more when INGEST_MAX_BYTES allows bodies above 1 MiB (70 KB/s)', () => {
    expect(bodyDeadlineFor(1_048_576)).toBe(15_000);
    expect(bodyDeadlineFor(1024)).toBe(15_000);
    expect(bodyDeadlineFor(50 * 1_048_576)).toBe(Math.ceil((50 * 1_048_576) / 70));
  });

  it('answers other requests while uploads stall: they hold read slots, never the evaluation slots', async () => {
    const t = await startTestApp({ ingestConcurrency: 1, ingestReaders: 8, bodyDeadlineMs: 60_000 });
    const stalled = Array.from({ length: 4 }, () => stalledUpload(Number(new URL(t.url).port)));
    try {
      let answered = 0;
      for (const s of stalled) void s.answer.then(() => answered++);
      const res = await postIngest(t.url, arcRecord());
      expect(res.status).toBe(200);
      expect(answered).toBe(0);
    } finally {
      for (const s of stalled) s.socket.destroy();
      await t.close();
    }
  });

  it('answers 408 when a body does not arrive within the deadline, and frees its slot', async () => {
    const t = await startTestApp({ ingestConcurrency: 1, ingestReaders: 1, bodyDeadlineMs: 200 });
    const stalled = stalledUpload(Number(new URL(t.url).port));
    try {
      const text = await stalled.answer;
      expect(text).toMatch(/^HTTP\/1\.1 408/);
      expect(text).toContain('"code":"body_timeout"');
      expect(text).toContain('did not arrive within');
      expect((await postIngest(t.url, arcRecord())).status).toBe(200);
    } finally {
      stalled.socket.destroy();
      await t.close();
    }
  });

  it('answers 408 at the deadline: a body that stalled is not waited for a while longer', async () => {
    const t = await startTestApp({ ingestConcurrency: 1, ingestReaders: 1, bodyDeadlineMs: 200 });
    const stalled = stalledUpload(Number(new URL(t.url).port));
    const started = performance.now();
    try {
      const text = await stalled.answer;
      expect(text).toMatch(/^HTTP\/1\.1 408/);
      expect(performance.now() - started).toBeLessThan(2000);
    } finally {
      stalled.socket.destroy();
      await t.close();
    }
  });
});

describe('POST /ingest uploads that end without their body', () => {
  it('takes a client that leaves mid-body for a client gone, not for an error of the service', async () => {
    const t = await startTestApp();
    const stalled = stalledUpload(Number(new URL(t.url).port));
    try {
      // The request is read (its first bytes are in), then the sender goes away.
      await new Promise((r) => setTimeout(r, 100));
      stalled.socket.destroy();
      await stalled.answer;
      for (let i = 0; i < 200 && !t.logs.some((l) => l.code === 'client_gone' || l.level === 'error'); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(t.logs.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
      expect(t.logs.some((l) => /client closed the connection/.test(String(l.msg)))).toBe(true);
      expect((await postIngest(t.url, arcRecord())).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('lets the largest body INGEST_MAX_BYTES allows take its whole deadline, and waiting for a read slot besides', async () => {
    const t = await startTestApp({ env: { INGEST_MAX_BYTES: String(16 * 1_048_576) } });
    try {
      // Node cuts a request still arriving after `requestTimeout`, with a bare 400 and no JSON.
      expect(t.app.server.requestTimeout).toBeGreaterThanOrEqual(bodyDeadlineFor(16 * 1_048_576) + 30_000);
      expect(t.app.server.requestTimeout).toBeGreaterThanOrEqual(60_000);
    } finally {
      await t.close();
    }
  });
});

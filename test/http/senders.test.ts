/**
 * What log forwarders put on the wire, byte for byte where it matters (their request line, their
 * headers in their order, their framing), sent over a plain socket so that no client library
 * tidies it up.
 */
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestSummary } from '../../src/http/ingest-handler.ts';
import { arcRecord, freshAppId, startTestApp, type TestApp } from '../support/http-app.ts';
import { recordsEnvelope } from '../support/samples.ts';

const TOKEN = 'sender-token-0123456789';

/** A body labelled `application/json`, with the token, sent as it is. */
const postJson = (url: string, body: string) =>
  rawPost(
    url,
    [
      ['Content-Type', 'application/json'],
      ['Authorization', `Bearer ${TOKEN}`],
    ],
    Buffer.from(body),
  );

/** Sends one raw HTTP/1.1 request and reads the answer until the service closes the connection. */
function rawPost(
  url: string,
  headers: Array<[string, string]>,
  body: Buffer,
): Promise<{ status: number; json: unknown }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      const head = [
        'POST /ingest HTTP/1.1',
        `Host: ${hostname}:${port}`,
        `Content-Length: ${body.length}`,
        ...headers.map(([name, value]) => `${name}: ${value}`),
        'Connection: close',
      ];
      socket.write(`${head.join('\r\n')}\r\n\r\n`);
      socket.write(body);
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
      const bodyText = text.slice(text.indexOf('\r\n\r\n') + 4);
      resolve({ status, json: JSON.parse(bodyText) as unknown });
    });
  });
}

/** A Fluent Bit record: the message's fields with the `date` key Fluent Bit adds (a double). */
const fluentRecord = (message: object) => ({ date: 1_764_000_000.123456, ...message });

describe('POST /ingest as forwarders send it', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { INGEST_TOKEN: TOKEN } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('Fluent Bit json_lines before 3.0.3: one record per line, labelled application/json, gzipped', async () => {
    const lines = [
      fluentRecord(recordsEnvelope([arcRecord({ appId: freshAppId() })])),
      fluentRecord(recordsEnvelope([arcRecord({ appId: freshAppId() }), arcRecord({ outcome: 'Start' })])),
    ]
      .map((r) => `${JSON.stringify(r)}\n`)
      .join('');
    // Its http output adds Content-Type first; a `header Content-Type …` of the user's comes after
    // it, and the first of two is the one read.
    const res = await rawPost(
      t.url,
      [
        ['Content-Type', 'application/json'],
        ['Content-Encoding', 'gzip'],
        ['User-Agent', 'Fluent-Bit'],
        ['Authorization', `Bearer ${TOKEN}`],
        ['Content-Type', 'application/x-ndjson'],
      ],
      gzipSync(lines),
    );
    expect(res.status).toBe(200);
    const summary = res.json as IngestSummary;
    expect(summary).toMatchObject({ events: 3, accepted: 2, counts: { alerted: 2, ignored: 1 } });
    expect(summary.rejected).toEqual([expect.objectContaining({ index: 2, line: 2, outcome: 'ignored' })]);
  });

  it('Fluent Bit json_stream: records with nothing between them, labelled application/json', async () => {
    const tricky = arcRecord({ appId: freshAppId() });
    // Brackets and escaped quotes inside strings do not end a record.
    tricky.description = 'a "}{" and a \\ and ]]';
    const stream = [
      fluentRecord(recordsEnvelope([tricky])),
      fluentRecord(recordsEnvelope([arcRecord({ appId: freshAppId() })])),
      fluentRecord({ log: 'not a detection' }),
    ]
      .map((r) => JSON.stringify(r))
      .join('');
    const res = await rawPost(
      t.url,
      [
        ['Content-Type', 'application/json'],
        ['User-Agent', 'Fluent-Bit'],
        ['Authorization', `Bearer ${TOKEN}`],
      ],
      Buffer.from(stream),
    );
    expect(res.status).toBe(200);
    const summary = res.json as IngestSummary;
    expect(summary).toMatchObject({ events: 3, accepted: 2, counts: { alerted: 2, invalid: 1 } });
    expect(summary.rejected).toEqual([expect.objectContaining({ index: 2, outcome: 'invalid' })]);
  });

  it('documents one after another read whole when one after the first is written over several lines', async () => {
    // The first is on a line of its own, so the body looks like NDJSON until a later document
    // spans lines: that one is read whole, not as lines that are no JSON.
    const body = [
      JSON.stringify(fluentRecord(recordsEnvelope([arcRecord({ appId: freshAppId() })]))),
      JSON.stringify(fluentRecord(recordsEnvelope([arcRecord({ appId: freshAppId() })])), null, 2),
    ].join('\n');
    const res = await postJson(t.url, body);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ events: 2, accepted: 2, counts: { alerted: 2, invalid: 0 } });
  });

  it('JSON written over several lines but labelled NDJSON: read as the JSON it is, one document or several', async () => {
    const ndjson = (body: string) =>
      rawPost(
        t.url,
        [
          ['Content-Type', 'application/x-ndjson'],
          ['Authorization', `Bearer ${TOKEN}`],
        ],
        Buffer.from(body),
      );
    // Pretty-printed: no line is JSON of its own...
    const pretty = JSON.stringify(recordsEnvelope([arcRecord({ appId: freshAppId() })]), null, 2);
    const one = await ndjson(`${pretty}\n`);
    expect(one.status).toBe(200);
    expect(one.json).toMatchObject({ events: 1, accepted: 1, counts: { alerted: 1, invalid: 0 } });
    // ...or one is: the last of a list of strings (`"prod"` alone).
    const listed = { ...recordsEnvelope([arcRecord({ appId: freshAppId() })]), tags: ['arc', 'prod'] };
    const withList = await ndjson(JSON.stringify(listed, null, 2));
    expect(withList.json).toMatchObject({ events: 1, accepted: 1, counts: { alerted: 1, invalid: 0 } });
    const two = await ndjson(
      `${JSON.stringify(recordsEnvelope([arcRecord({ appId: freshAppId() })]), null, 2)}\n${JSON.stringify(arcRecord({ appId: freshAppId() }), null, 2)}`,
    );
    expect(two.json).toMatchObject({ events: 2, counts: { alerted: 2, invalid: 0 } });
    // NDJSON with a bad first line stays NDJSON: the others are evaluated, the bad one reported.
    const lines = await ndjson(`{"broken":\n${JSON.stringify(arcRecord({ appId: freshAppId() }))}`);
    expect(lines.json).toMatchObject({ events: 2, counts: { alerted: 1, invalid: 1 } });
  });

  it('arrays one after another: each element is a document, as in a body of one array', async () => {
    // 64 levels: the deepest a document may be on its own, not one more inside its array.
    let deep: unknown = 'x';
    for (let i = 0; i < 64; i++) deep = { nested: deep };
    const body = `[${JSON.stringify(arcRecord({ appId: freshAppId() }))},${JSON.stringify(deep)}][${JSON.stringify(arcRecord({ appId: freshAppId() }))}]`;
    const res = await postJson(t.url, body);
    expect(res.status).toBe(200);
    const summary = res.json as IngestSummary;
    expect(summary).toMatchObject({ events: 3, accepted: 2, counts: { alerted: 2, invalid: 1 } });
    expect(summary.rejected).toEqual([
      expect.objectContaining({
        index: 1,
        outcome: 'invalid',
        reason: expect.stringMatching(/not a recognised/),
      }),
    ]);
  });

  it('documents one per line without a Content-Type: read as NDJSON too, a bad line reported by its line', async () => {
    const body = `\uFEFF${JSON.stringify(arcRecord({ appId: freshAppId() }))}\r\n{"broken":\r\n${JSON.stringify(arcRecord({ appId: freshAppId() }))}`;
    const res = await rawPost(t.url, [['Authorization', `Bearer ${TOKEN}`]], Buffer.from(body));
    expect(res.status).toBe(200);
    const summary = res.json as IngestSummary;
    expect(summary).toMatchObject({ events: 3, counts: { alerted: 2, invalid: 1 } });
    expect(summary.rejected).toEqual([expect.objectContaining({ index: 1, line: 2, outcome: 'invalid' })]);
  });
});

import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Readable } from 'node:stream';
import {
  brotliCompressSync,
  constants,
  createDeflateRaw,
  createGzip,
  createZstdCompress,
  deflateSync,
  gzipSync,
  zstdCompressSync,
} from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestSummary } from '../../src/http/ingest-handler.ts';
import {
  answer,
  arcRecord,
  freshAppId,
  postIngest,
  startTestApp,
  type TestApp,
} from '../support/http-app.ts';

type ErrorBody = { error: string; code: string; position?: number; line?: number; column?: number };

/** A gzip stream (or bare deflate data) of `mib` MiB of zeros: a few kB compressed. */
async function gzipBomb(mib: number, raw = false): Promise<Buffer> {
  const zero = Buffer.alloc(1024 * 1024);
  const gz = raw ? createDeflateRaw({ level: 9 }) : createGzip({ level: 9 });
  const out: Buffer[] = [];
  gz.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((resolve) => gz.on('end', resolve));
  for (let i = 0; i < mib; i++) {
    if (!gz.write(zero)) await new Promise((resolve) => gz.once('drain', resolve));
  }
  gz.end();
  await done;
  return Buffer.concat(out);
}

/** Posts `body` to `/ingest` in two chunks with no Content-Length (chunked transfer encoding). */
async function postStreamed<T>(url: string, body: Buffer, headers: Record<string, string> = {}) {
  const half = Math.floor(body.length / 2);
  const res = await fetch(`${url}/ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: Readable.toWeb(Readable.from([body.subarray(0, half), body.subarray(half)])) as ReadableStream,
    duplex: 'half',
  } as RequestInit);
  return answer<T>(res);
}

/** A JSON body of exactly `bytes` bytes holding one fresh event (padded with trailing spaces). */
function bodyOf(bytes: number): Buffer {
  const json = JSON.stringify(arcRecord({ appId: freshAppId() }));
  return Buffer.from(json.padEnd(bytes, ' '));
}

describe('POST /ingest: refused bodies', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { INGEST_MAX_BYTES: '65536' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('400 with the position for a body that is not JSON', async () => {
    const res = await postIngest<ErrorBody>(t.url, '{"records": [ {"a": 1,} ]}');
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('invalid_json');
    expect(res.body.error).toMatch(/^the body is not valid JSON: .*position 22/);
    expect(res.body).toMatchObject({ position: 22, line: 1, column: 23 });
  });

  it('400 hints at NDJSON when documents posted as application/json are not all complete', async () => {
    // Complete documents one after another are read (senders.test.ts); here the second is cut.
    const body = `${JSON.stringify(arcRecord(), null, 2)}\n${JSON.stringify(arcRecord()).slice(0, 40)}`;
    const res = await postIngest<ErrorBody>(t.url, body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/application\/x-ndjson/);
  });

  it('400 for documents one after another names where a later one stops being JSON, not where the first ends', async () => {
    const rec = JSON.stringify(arcRecord());
    const trailing = await postIngest<ErrorBody>(t.url, `${rec}${rec}${rec} trailing`);
    expect(trailing.status).toBe(400);
    const at = 3 * rec.length + 1;
    expect(trailing.body.error).toMatch(
      new RegExp(
        `^the body is not valid JSON: Unexpected non-whitespace character after JSON at position ${at} `,
      ),
    );
    expect(trailing.body).toMatchObject({ position: at, line: 1, column: at + 1 });
    // A later document that does not parse: its own error, placed in the body.
    const pretty = JSON.stringify(arcRecord(), null, 2);
    const bad = await postIngest<ErrorBody>(t.url, `${pretty}\n{"b":}`);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/Unexpected token '}'/);
    expect(bad.body).toMatchObject({
      position: pretty.length + 6,
      line: pretty.split('\n').length + 1,
      column: 6,
    });
    // A body cut in a later document: it ends too early.
    const cut = `${rec}${rec.slice(0, 40)}`;
    const early = await postIngest<ErrorBody>(t.url, cut);
    expect(early.status).toBe(400);
    expect(early.body.error).toMatch(/Unexpected end of JSON input/);
    expect(early.body).toMatchObject({ position: cut.length, line: 1, column: cut.length + 1 });
  });

  it('400 for an empty body and for NDJSON in which no line is JSON', async () => {
    const empty = await postIngest<ErrorBody>(t.url, '   ');
    expect(empty.status).toBe(400);
    expect(empty.body.error).toMatch(/empty/);
    const xml = await postIngest<ErrorBody>(t.url, '<alert>\n<id>1</id>\n</alert>', {
      contentType: 'application/x-ndjson',
    });
    expect(xml.status).toBe(400);
    expect(xml.body.error).toMatch(
      /not NDJSON: no line holds a JSON document \(line 1 column 1 is not valid JSON/,
    );
    // The position is the body's line and the column within it, also as fields.
    const garbled = await postIngest<ErrorBody & { line?: number; column?: number }>(t.url, '\n{x\n{y', {
      contentType: 'application/x-ndjson',
    });
    expect(garbled.status).toBe(400);
    expect(garbled.body).toMatchObject({ line: 2, column: 2 });
    expect(garbled.body.error).toContain('(line 2 column 2 is not valid JSON: ');
    expect(garbled.body.error).not.toMatch(/line 1 column/);
  });

  it('gives the position where V8 names none (an unexpected token, an early end)', async () => {
    const res = await postIngest<ErrorBody & { position?: number; line?: number; column?: number }>(
      t.url,
      '{"a":\n tru}',
    );
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ position: 10, line: 2, column: 5 });
    expect(res.body.error).toContain('at position 10 (line 2 column 5)');
    const ndjson = await postIngest<IngestSummary>(
      t.url,
      `${JSON.stringify(arcRecord({ appId: freshAppId() }))}\n[1,2,}`,
      {
        contentType: 'application/x-ndjson',
      },
    );
    expect(ndjson.body.rejected[0]?.reason).toMatch(/^line 2 column 6 is not valid JSON: Unexpected token/);
  });

  it('names a bad NDJSON line by its line and column in the body', async () => {
    const good = JSON.stringify(arcRecord({ appId: freshAppId() }));
    const res = await postIngest<IngestSummary>(t.url, `${good}\n{"a":1} x`, {
      contentType: 'application/x-ndjson',
    });
    expect(res.status).toBe(200);
    expect(res.body.rejected[0]?.reason).toMatch(
      /^line 2 column 9 is not valid JSON: Unexpected non-whitespace/,
    );
    expect(res.body.rejected[0]?.reason).not.toMatch(/\(line 1 column/);
  });

  it('400 for a JSON body that is not UTF-8; an NDJSON line that is not UTF-8 is one invalid event', async () => {
    const good = JSON.stringify(arcRecord({ appId: freshAppId() }));
    const bad = Buffer.concat([
      Buffer.from('{"note": "'),
      Buffer.from([0xc3, 0x28, 0xff]),
      Buffer.from('"}'),
    ]);
    const json = await postIngest<ErrorBody>(t.url, Buffer.concat([Buffer.from('['), bad, Buffer.from(']')]));
    expect(json.status).toBe(400);
    expect(json.body).toMatchObject({ code: 'invalid_utf8', error: 'the body is not valid UTF-8' });

    const nd = await postIngest<IngestSummary>(t.url, Buffer.concat([Buffer.from(`${good}\n`), bad]), {
      contentType: 'application/x-ndjson',
    });
    expect(nd.status).toBe(200);
    expect(nd.body.counts).toMatchObject({ alerted: 1, invalid: 1 });
    expect(nd.body.rejected).toEqual([
      { index: 1, line: 2, outcome: 'invalid', reason: 'line 2 is not valid UTF-8' },
    ]);
  });

  it('413 above INGEST_MAX_BYTES, declared by Content-Length or streamed without one', async () => {
    const big = JSON.stringify([{ pad: 'x'.repeat(70_000) }]);
    const declared = await postIngest<ErrorBody>(t.url, big);
    expect(declared.status).toBe(413);
    expect(declared.body.code).toBe('payload_too_large');
    expect(declared.body.error).toMatch(/INGEST_MAX_BYTES \(65536 bytes\)/);

    const chunked = await postStreamed<ErrorBody>(t.url, Buffer.from(big));
    expect(chunked.status).toBe(413);
  });

  it('takes a body of exactly INGEST_MAX_BYTES, declared, streamed or decompressed; one byte more is 413', async () => {
    const max = 65536;
    const gzip = { 'content-encoding': 'gzip' };
    const send = {
      declared: (body: Buffer) => postIngest<ErrorBody>(t.url, body),
      streamed: (body: Buffer) => postStreamed<ErrorBody>(t.url, body),
      decompressed: (body: Buffer) => postIngest<ErrorBody>(t.url, gzipSync(body), { headers: gzip }),
    };
    for (const [how, post] of Object.entries(send)) {
      const exact = await post(bodyOf(max));
      expect(exact.status, `${how}: ${exact.text}`).toBe(200);
      const over = await post(bodyOf(max + 1));
      expect(over.status, how).toBe(413);
      expect(over.body.code).toBe('payload_too_large');
    }
  });

  it('413 for a gzip bomb: the limit counts decompressed bytes and inflating stops there', async () => {
    const bomb = await gzipBomb(64);
    expect(bomb.length).toBeLessThan(65536);
    const res = await postIngest<ErrorBody>(t.url, bomb, { headers: { 'content-encoding': 'gzip' } });
    expect(res.status).toBe(413);
    expect(res.body.error).toMatch(/^the decompressed request body is larger than INGEST_MAX_BYTES/);
    // The same in bare deflate data, labelled deflate.
    const raw = await postIngest<ErrorBody>(t.url, await gzipBomb(64, true), {
      headers: { 'content-encoding': 'deflate' },
    });
    expect(raw.status).toBe(413);
    // The service is still answering.
    const ok = await postIngest<IngestSummary>(t.url, [arcRecord({ appId: freshAppId() })], { gzip: true });
    expect(ok.status).toBe(200);
  });

  it('400 for a body that says gzip but is not', async () => {
    const res = await postIngest<ErrorBody>(t.url, '{"not":"gzip"}', {
      headers: { 'content-encoding': 'gzip' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/not valid gzip data/);
    const truncated = gzipSync(JSON.stringify(arcRecord())).subarray(0, 40);
    const res2 = await postIngest<ErrorBody>(t.url, truncated, { headers: { 'content-encoding': 'gzip' } });
    expect(res2.status).toBe(400);
  });

  it('decodes stacked codings in the reverse order of Content-Encoding, and counts the limit after the last', async () => {
    const record = JSON.stringify(arcRecord({ appId: freshAppId() }));
    const twice = brotliCompressSync(gzipSync(record));
    const ok = await postIngest<IngestSummary>(t.url, twice, { headers: { 'content-encoding': 'gzip, br' } });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.accepted).toBe(1);
    // identity in the list is no coding.
    const same = await postIngest<IngestSummary>(t.url, gzipSync(record), {
      headers: { 'content-encoding': 'identity, gzip' },
    });
    expect(same.status).toBe(200);
    expect(same.body.counts.duplicate).toBe(1);
    // Listed in the wrong order: the outer layer is not what the header's last coding says.
    const swapped = await postIngest<ErrorBody>(t.url, twice, {
      headers: { 'content-encoding': 'br, gzip' },
    });
    expect(swapped.status).toBe(400);
    expect(swapped.body.error).toMatch(/^the body is not valid gzip data/);
    // A bomb inside another coding is stopped at the limit all the same.
    const bomb = gzipSync(await gzipBomb(64));
    const big = await postIngest<ErrorBody>(t.url, bomb, { headers: { 'content-encoding': 'gzip, gzip' } });
    expect(big.status).toBe(413);
    expect(big.body.error).toMatch(/^the decompressed request body is larger than INGEST_MAX_BYTES/);
    const many = await postIngest<ErrorBody>(t.url, '{}', {
      headers: { 'content-encoding': 'gzip, gzip, gzip, gzip' },
    });
    expect(many.status).toBe(415);
    expect(many.body.error).toMatch(/lists 4 codings; at most 3 are decoded/);
  });

  it('takes zstd, as Vector sends it (compression = "zstd"), held to the limit as gzip is', async () => {
    const zstd = { 'content-encoding': 'zstd' };
    const ok = await postIngest<IngestSummary>(
      t.url,
      zstdCompressSync(JSON.stringify([arcRecord({ appId: freshAppId() })])),
      { headers: zstd },
    );
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.counts.alerted).toBe(1);
    // A bomb: 64 MiB of zeros in about 2 kB.
    const bomb = zstdCompressSync(Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(65536);
    const big = await postIngest<ErrorBody>(t.url, bomb, { headers: zstd });
    expect(big.status).toBe(413);
    expect(big.body.error).toMatch(/^the decompressed request body is larger than INGEST_MAX_BYTES/);
    // Inside another coding, each layer is counted.
    const inner = await postIngest<ErrorBody>(t.url, gzipSync(bomb), {
      headers: { 'content-encoding': 'zstd, gzip' },
    });
    expect(inner.status).toBe(413);
    // Not zstd at all, and a frame that asks for a 128 MiB window whatever its size: 400.
    const notZstd = await postIngest<ErrorBody>(t.url, '{"not":"zstd"}', { headers: zstd });
    expect(notZstd.status).toBe(400);
    expect(notZstd.body.error).toMatch(/^the body is not valid zstd data/);
    const wide = createZstdCompress({ params: { [constants.ZSTD_c_windowLog]: 27 } });
    const chunks: Buffer[] = [];
    wide.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise((resolve) => wide.on('end', resolve));
    wide.end(JSON.stringify(arcRecord()));
    await ended;
    const res = await postIngest<ErrorBody>(t.url, Buffer.concat(chunks), { headers: zstd });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/windowTooLarge/);
  });

  it('413 for a coding inside another that inflates past the limit, though the body it decodes to is empty', async () => {
    // A zlib stream of 8 MB of empty stored blocks: it inflates to nothing, and compresses well.
    const empty = Buffer.alloc(5 * 1_600_000);
    for (let i = 0; i < empty.length; i += 5) empty.set([0x00, 0x00, 0x00, 0xff, 0xff], i);
    const inner = Buffer.concat([
      Buffer.from([0x78, 0x01]),
      empty,
      Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01]),
    ]);
    const res = await postIngest<ErrorBody>(t.url, deflateSync(inner, { level: 9 }), {
      headers: { 'content-encoding': 'deflate, deflate' },
    });
    expect(res.status, res.text).toBe(413);
    expect(res.body.error).toMatch(/^the decompressed request body is larger than INGEST_MAX_BYTES/);
  });

  it('415 for another content type, another charset or an unknown Content-Encoding', async () => {
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const res = await postIngest<ErrorBody>(t.url, JSON.stringify(arcRecord()), { contentType });
      expect(res.status, contentType).toBe(415);
      expect(res.body.code).toBe('unsupported_media_type');
      expect(res.body.error).toContain(`Content-Type "${contentType}" is not accepted`);
    }
    const latin1 = await postIngest<ErrorBody>(t.url, '{}', {
      contentType: 'application/json; charset=iso-8859-1',
    });
    expect(latin1.status).toBe(415);
    expect(latin1.body.error).toMatch(/charset "iso-8859-1" is not supported/);
    const compress = await postIngest<ErrorBody>(t.url, '{}', {
      headers: { 'content-encoding': 'compress' },
    });
    expect(compress.status).toBe(415);
    expect(compress.body.error).toMatch(/Content-Encoding "compress"/);
  });

  it('reports every bad NDJSON line, the first hundred with their column, the rest by line', async () => {
    const body = `${'{\n'.repeat(150)}${JSON.stringify(arcRecord({ appId: freshAppId() }))}\n`;
    const res = await postIngest<{
      counts: { alerted: number; invalid: number };
      rejected: Array<{ reason: string }>;
    }>(t.url, body, { contentType: 'application/x-ndjson' });
    expect(res.status).toBe(200);
    expect(res.body.counts).toMatchObject({ alerted: 1, invalid: 150 });
    expect(res.body.rejected[0]!.reason).toMatch(/^line 1 column 2 is not valid JSON: /);
    expect(res.body.rejected[99]!.reason).toMatch(/^line 100 column 2 is not valid JSON: /);
    expect(res.body.rejected[100]!.reason).toMatch(/^line 101 is not valid JSON: /);
  });

  it('413 for a body that holds an absurd number of events', async () => {
    const app = await startTestApp({ env: { INGEST_MAX_BYTES: String(2 * 1024 * 1024) } });
    try {
      const res = await postIngest<ErrorBody>(app.url, `[${new Array(100_001).fill('0').join(',')}]`);
      expect(res.status).toBe(413);
      expect(res.body.error).toMatch(/more than 100000 events/);
      // NDJSON of bad lines: refused as soon as the count is passed, not after every line is read.
      const lines = await postIngest<ErrorBody>(app.url, '{\n'.repeat(150_000), {
        contentType: 'application/x-ndjson',
      });
      expect(lines.status).toBe(413);
      expect(lines.body.error).toMatch(/more than 100000 events/);
    } finally {
      await app.close();
    }
  });
});

describe('POST /ingest: hostile input never crashes, never pollutes, never 5xx', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('reports a deeply nested document as invalid and still evaluates its neighbours', async () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const good = JSON.stringify(arcRecord({ appId: freshAppId() }));
    const res = await postIngest<IngestSummary>(t.url, `[${good},${deep}]`);
    expect(res.status).toBe(200);
    expect(res.body.counts).toMatchObject({ alerted: 1, invalid: 1 });
    expect(res.body.rejected).toEqual([
      { index: 1, outcome: 'invalid', reason: 'nested deeper than 64 levels' },
    ]);

    const deepObject = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
    const nd = await postIngest<IngestSummary>(
      t.url,
      `${deepObject}\n${JSON.stringify(arcRecord({ appId: freshAppId() }))}`,
      {
        contentType: 'application/x-ndjson',
      },
    );
    expect(nd.status).toBe(200);
    expect(nd.body.rejected).toEqual([
      { index: 0, line: 1, outcome: 'invalid', reason: 'line 1: nested deeper than 64 levels' },
    ]);
  });

  it('drops __proto__, constructor and prototype keys without touching any prototype', async () => {
    const record = arcRecord({ appId: freshAppId() });
    const text = JSON.stringify(record).replace(
      /^\{/,
      '{"__proto__":{"polluted":"yes","isAdmin":true},"constructor":{"prototype":{"polluted":"yes"}},',
    );
    const payload = `{"records":[${text}],"__proto__":{"polluted":"yes"}}`;
    const res = await postIngest<IngestSummary>(t.url, payload);
    expect(res.status).toBe(200);
    expect(res.body.counts.alerted).toBe(1);
    const probe: Record<string, unknown> = {};
    expect(probe.polluted).toBeUndefined();
    expect(probe.isAdmin).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('reads an event as if its __proto__, constructor and prototype keys had never been sent', async () => {
    const res = await postIngest<IngestSummary>(
      t.url,
      '[{"__proto__":{"polluted":"yes"},"constructor":1,"hello":"world","prototype":{}},{"constructor":{"prototype":{}}}]',
    );
    expect(res.status).toBe(200);
    expect(res.body.rejected.map((r) => r.reason)).toEqual([
      expect.stringMatching(/^not a recognised detection format \(keys: "hello"\);/),
      expect.stringMatching(/^not a recognised detection format \(keys: none\);/),
    ]);
  });

  it('answers huge strings with a short reason', async () => {
    const res = await postIngest<IngestSummary>(t.url, [
      arcRecord({ appId: 'a'.repeat(500_000) }),
      { ['k'.repeat(200_000)]: 'v'.repeat(200_000) },
    ]);
    expect(res.status).toBe(200);
    expect(res.body.counts.invalid + res.body.counts.ignored).toBe(2);
    for (const r of res.body.rejected) expect(r.reason.length).toBeLessThanOrEqual(500);
    expect(res.text.length).toBeLessThan(5000);
  });

  it('answers JSON scalars, nulls and nested arrays as invalid events', async () => {
    const res = await postIngest<IngestSummary>(t.url, [null, true, 'text', [], [[1]], {}]);
    expect(res.status).toBe(200);
    expect(res.body.counts.invalid).toBe(res.body.events);
    expect(res.body.accepted).toBe(0);
  });

  it('survives malformed HTTP and a client that disconnects mid-body', async () => {
    const { connect } = await import('node:net');
    const { port } = new URL(t.url);
    await new Promise<void>((resolve) => {
      const s = connect(Number(port), '127.0.0.1', () => {
        s.write(
          'POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"records":[',
        );
        setTimeout(() => s.destroy(), 50);
      });
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    await new Promise<void>((resolve) => {
      const s = connect(Number(port), '127.0.0.1', () => s.write('GARBAGE \x00\x01 HTTP/9\r\n\r\n'));
      s.on('data', (d) => expect(d.toString()).toMatch(/^HTTP\/1\.1 400/));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    const res = await fetch(`${t.url}/healthz`);
    expect(res.status).toBe(200);
  });
});

describe('POST /ingest: authentication', () => {
  it('401 with WWW-Authenticate without a valid bearer token; either rotated token works', async () => {
    const t = await startTestApp({ env: { INGEST_TOKEN: 'tok-alpha-123, tok-beta-456' } });
    try {
      const none = await postIngest<ErrorBody>(t.url, arcRecord());
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(none.body.error).toMatch(/missing Authorization header/);

      const basic = await postIngest<ErrorBody>(t.url, arcRecord(), {
        headers: { authorization: 'Basic dXNlcjpwYXNz' },
      });
      expect(basic.status).toBe(401);
      expect(basic.body.error).toMatch(/Bearer scheme/);

      const wrong = await postIngest<ErrorBody>(t.url, arcRecord(), {
        headers: { authorization: 'Bearer tok-alpha-12' },
      });
      expect(wrong.status).toBe(401);
      expect(wrong.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(wrong.text).not.toContain('tok-alpha');

      for (const token of ['tok-alpha-123', 'tok-beta-456']) {
        const ok = await postIngest<IngestSummary>(t.url, arcRecord({ appId: freshAppId() }), {
          headers: { authorization: `bearer ${token}` },
        });
        expect(ok.status).toBe(200);
        expect(ok.body.counts.alerted).toBe(1);
      }
      // Authentication comes first: an unauthenticated caller learns nothing about the body rules.
      const unauthBadType = await postIngest<ErrorBody>(t.url, 'x', { contentType: 'text/plain' });
      expect(unauthBadType.status).toBe(401);
      expect(t.rawLogs()).not.toContain('tok-alpha-123');
      expect(t.rawLogs()).not.toContain('tok-beta-456');
    } finally {
      await t.close();
    }
  });

  it('a base64 token in the URL works pasted as it is or percent-encoded; a wrong one says to encode', async () => {
    const token = 'k3y+with/slash==';
    const t = await startTestApp({ env: { INGEST_TOKEN: token } });
    try {
      const post = async (query: string) =>
        answer<IngestSummary & ErrorBody>(
          await fetch(`${t.url}/ingest?${query}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(arcRecord({ appId: freshAppId() })),
          }),
        );
      for (const query of [`token=${token}`, `token=${encodeURIComponent(token)}`, `x=1&token=${token}`]) {
        const ok = await post(query);
        expect(ok.status, query).toBe(200);
        expect(ok.body.counts.alerted).toBe(1);
      }
      const wrong = await post('token=k3y with/slash==');
      expect(wrong.status).toBe(401);
      expect(wrong.body.error).toMatch(/percent-encoded/);
      const stray = await post('token=k3y%');
      expect(stray.status).toBe(401);
      expect(t.rawLogs()).not.toContain(token);
    } finally {
      await t.close();
    }
  });

  // On '::' an IPv4 client's address is IPv4-mapped (::ffff:127.0.0.1), and must be read as IPv4.
  it.each([
    ['0.0.0.0', ''],
    ['::', '::ffff:'],
  ])(
    'without INGEST_TOKEN accepts loopback clients and refuses others with 401 saying why (HOST %s)',
    async (host, mapped) => {
      const external = Object.values(networkInterfaces())
        .flat()
        .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
      expect(external, 'this test needs a non-loopback IPv4 interface').toBeDefined();
      const t = await startTestApp({ env: { HOST: host } });
      try {
        const { port } = new URL(t.url);
        const local = await postIngest<IngestSummary>(
          `http://127.0.0.1:${port}`,
          arcRecord({ appId: freshAppId() }),
        );
        expect(local.status).toBe(200);
        const res = await fetch(`http://${external}:${port}/ingest`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(arcRecord()),
        });
        const remote = await answer<ErrorBody>(res);
        expect(remote.status).toBe(401);
        expect(remote.headers.get('www-authenticate')).toMatch(/^Bearer/);
        expect(remote.body.error).toMatch(/INGEST_TOKEN is not set, so only loopback clients/);
        const clients = t.logs.filter((l) => l.path === '/ingest').map((l) => [l.status, l.client]);
        expect(clients).toEqual([
          [200, `${mapped}127.0.0.1`],
          [401, `${mapped}${external}`],
        ]);
      } finally {
        await t.close();
      }
    },
  );
});

describe('routing', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('404 for an unknown path, 405 with Allow for a wrong method, all as JSON', async () => {
    const nf = await answer<ErrorBody>(await fetch(`${t.url}/nope`));
    expect(nf.status).toBe(404);
    expect(nf.body.error).toMatch(/no such endpoint: \/nope/);
    const wrong = await answer<ErrorBody>(await fetch(`${t.url}/ingest`));
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    expect(wrong.body).toMatchObject({ code: 'method_not_allowed', error: '/ingest accepts POST, not GET' });
    const del = await answer<ErrorBody>(await fetch(`${t.url}/metrics`, { method: 'DELETE' }));
    expect(del.status).toBe(405);
    expect(del.headers.get('allow')).toBe('GET, HEAD');
  });

  it('404 with a clear message on /slack/events when Slack is not configured', async () => {
    const res = await answer<ErrorBody>(await fetch(`${t.url}/slack/events`, { method: 'POST', body: 'x' }));
    expect(res.status).toBe(404);
    expect(res.body.error).toMatch(/Slack is not configured: set SLACK_BOT_TOKEN/);
  });

  it('routes a request line in absolute form (as a proxy sends it) by its path and query', async () => {
    const { port } = new URL(t.url);
    const send = (target: string, method: string, body?: string) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port, method, path: target, headers: { 'content-type': 'application/json' } },
          (res) => {
            let text = '';
            res.on('data', (c: Buffer) => {
              text += c.toString();
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    expect((await send(`http://127.0.0.1:${port}/healthz`, 'GET')).status).toBe(200);
    const ingested = await send(
      `HTTP://arc-responder.internal:${port}/ingest?probe=1`,
      'POST',
      JSON.stringify(arcRecord({ appId: freshAppId() })),
    );
    expect(ingested.status).toBe(200);
    expect((JSON.parse(ingested.text) as IngestSummary).accepted).toBe(1);
  });

  it('ignores the query string when routing', async () => {
    const res = await fetch(`${t.url}/healthz?probe=1`);
    expect(res.status).toBe(200);
  });
});

describe('POST /ingest: an answer the client never reads', () => {
  it('is cut off after its read deadline, and holds its read slot until then, never for good', async () => {
    const t = await startTestApp({ ingestReaders: 1, answerReadMs: 300 });
    try {
      const { port } = new URL(t.url);
      // 100,000 refused events in 200 KB: an answer of over 20 MB, which this client never reads.
      const body = `[${Array(100_000).fill('0').join(',')}]`;
      const reader = connect(Number(port), '127.0.0.1');
      reader.on('error', () => {});
      reader.write(
        `POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      reader.pause();
      // Another sender waits for the one read slot until the unread answer lets it go.
      const other = await postIngest<IngestSummary>(t.url, arcRecord({ appId: freshAppId() }));
      expect(other.status).toBe(200);
      expect(other.body.accepted).toBe(1);
      // Reading now finds the connection cut, the answer unfinished.
      const closed = new Promise<boolean>((resolve) => {
        reader.once('close', () => resolve(true));
        setTimeout(() => resolve(false), 5000);
      });
      reader.resume();
      expect(await closed).toBe(true);
      expect(reader.bytesRead).toBeLessThan(20_000_000);
    } finally {
      await t.close();
    }
  });
});

describe('POST /ingest: a body of many events', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('lists every refused event, in order, in an answer that reads as one JSON document', async () => {
    // 2,500 refused events: more than one piece of the answer is written.
    const lines = Array.from({ length: 2500 }, (_, i) => (i % 2 === 0 ? '{}' : `not json ${i}`));
    const res = await fetch(`${t.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: lines.join('\n'),
    });
    expect(res.status).toBe(200);
    const summary = JSON.parse(await res.text()) as IngestSummary;
    expect(summary.events).toBe(2500);
    expect(summary.accepted).toBe(0);
    expect(summary.counts.ignored + summary.counts.invalid).toBe(2500);
    expect(summary.rejected.map((r) => r.index)).toEqual(lines.map((_, i) => i));
    expect(summary.rejected.map((r) => r.line)).toEqual(lines.map((_, i) => i + 1));
    expect(summary.rejected[1]!.reason).toMatch(/^line 2 column \d+ is not valid JSON/);
    expect(summary.rejected[2]!.outcome).toMatch(/ignored|invalid/);
  });

  it('gives the store the deadline of the request, not of each chunk of its events', async () => {
    // Each chunk of 2,000 events is stored well within the deadline; all of them take longer.
    const slow = await startTestApp({ storeDeadlineMs: 1000, env: { INGEST_MAX_BYTES: '134217728' } });
    try {
      const body = Array.from({ length: 30_000 }, () => JSON.stringify(arcRecord({ appId: freshAppId() })));
      const res = await postIngest<ErrorBody>(slow.url, body.join('\n'), {
        contentType: 'application/x-ndjson',
      });
      expect(res.status, res.text.slice(0, 300)).toBe(503);
      expect(res.body.code).toBe('store_unavailable');
      expect(res.body.error).toMatch(
        /has not answered for 1 s; retry later \(what it stores meanwhile is recognised/,
      );
    } finally {
      await slow.close();
    }
  }, 60_000);

  it('leaves the service answering other requests while it is parsed, evaluated and answered', async () => {
    const body = Array.from({ length: 100_000 }, () => '{}').join('\n');
    const { port } = new URL(t.url);
    const order: string[] = [];
    const big = new Promise<void>((resolve, reject) => {
      const req = httpRequest(
        {
          port,
          host: '127.0.0.1',
          path: '/ingest',
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
        },
        (res) => {
          order.push(`big ${res.statusCode}`);
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      // Once the whole body is sent, the service spends a while on its 100,000 events: a health
      // check and a detection sent then are answered in the meantime, not after them.
      req.end(body, () => {
        void fetch(`${t.url}/healthz`).then((r) => order.push(`healthz ${r.status}`));
        void postIngest<IngestSummary>(t.url, arcRecord({ appId: freshAppId() })).then((r) =>
          order.push(`small ${r.status} ${r.body.accepted}`),
        );
      });
    });
    await big;
    await expect.poll(() => order.length).toBe(3);
    expect(order.slice(0, 2).sort()).toEqual(['healthz 200', 'small 200 1']);
    expect(order[2]).toBe('big 200');
  });
});

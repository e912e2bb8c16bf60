import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestSummary } from '../../src/http/ingest-handler.ts';
import { arcRecord, freshAppId, postIngest, startTestApp, type TestApp } from '../support/http-app.ts';
import { arcEvent, kibanaWebhookBody, recordsEnvelope } from '../support/samples.ts';

describe('POST /ingest: accepted bodies [derived Arc events]', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('takes one JSON object and answers the count per outcome', async () => {
    const res = await postIngest<IngestSummary>(t.url, arcRecord({ appId: freshAppId() }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.body).toEqual({
      events: 1,
      accepted: 1,
      counts: { alerted: 1, known: 0, allowlisted: 0, duplicate: 0, ignored: 0, invalid: 0 },
      rejected: [],
    });
  });

  it('counts an event of an allowlisted pair as accepted, not rejected', async () => {
    const appId = freshAppId();
    const ip = '198.51.100.20';
    await t.app.history.allow({ appId, ip, by: 'U1', reason: 'build agent' });
    const res = await postIngest<IngestSummary>(t.url, arcRecord({ appId, ip }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      events: 1,
      accepted: 1,
      counts: { alerted: 0, known: 0, allowlisted: 1, duplicate: 0, ignored: 0, invalid: 0 },
      rejected: [],
    });
  });

  it('takes a JSON array and reports the repeat of a pair as known and a resent event as duplicate', async () => {
    const appId = freshAppId();
    const first = arcRecord({ appId, ip: '198.51.100.10' });
    const res = await postIngest<IngestSummary>(t.url, [
      first,
      arcRecord({ appId, ip: '198.51.100.10' }),
      arcRecord({ appId, ip: '198.51.100.11' }),
    ]);
    expect(res.status).toBe(200);
    expect(res.body.counts).toMatchObject({ alerted: 2, known: 1 });
    expect(res.body.rejected).toEqual([]);

    const again = await postIngest<IngestSummary>(t.url, [first]);
    expect(again.body.counts.duplicate).toBe(1);
    expect(again.body.accepted).toBe(0);
    expect(again.body.rejected).toEqual([
      { index: 0, outcome: 'duplicate', reason: expect.stringContaining('already') },
    ]);
  });

  it('processes the good events of a mixed batch and reports each bad one with its index and reason', async () => {
    const appId = freshAppId();
    const res = await postIngest<IngestSummary>(t.url, [
      arcRecord({ appId }),
      { hello: 'world' },
      arcRecord({ appId: freshAppId(), outcome: 'Start' }),
      arcRecord({ appId: freshAppId(), operation: 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION' }),
      arcRecord({ appId: freshAppId(), ip: null }),
      42,
    ]);
    expect(res.status).toBe(200);
    expect(res.body.events).toBe(6);
    expect(res.body.counts).toEqual({
      alerted: 1,
      known: 0,
      allowlisted: 0,
      duplicate: 0,
      ignored: 2,
      invalid: 3,
    });
    expect(res.body.rejected.map((r) => [r.index, r.outcome])).toEqual([
      [1, 'invalid'],
      [2, 'ignored'],
      [3, 'ignored'],
      [4, 'invalid'],
      [5, 'invalid'],
    ]);
    for (const r of res.body.rejected) expect(r.reason.length).toBeGreaterThan(10);
    expect(res.body.rejected[0]?.reason).toMatch(/not a recognised detection/);
  });

  it('takes NDJSON, skips blank lines, and reports a bad line as an invalid event with its line', async () => {
    const a = arcRecord({ appId: freshAppId() });
    const b = arcRecord({ appId: freshAppId() });
    const body = `${JSON.stringify(a)}\n\n   \n{"broken": \n${JSON.stringify(b)}\r\n`;
    const res = await postIngest<IngestSummary>(t.url, body, { contentType: 'application/x-ndjson' });
    expect(res.status).toBe(200);
    expect(res.body.events).toBe(3);
    expect(res.body.counts).toMatchObject({ alerted: 2, invalid: 1 });
    expect(res.body.rejected).toEqual([
      {
        index: 1,
        line: 4,
        outcome: 'invalid',
        reason: expect.stringMatching(/^line 4 column 12 is not valid JSON: Unexpected end of JSON input/),
      },
    ]);
  });

  it('skips a byte order mark before the first NDJSON line', async () => {
    const lines = [arcRecord({ appId: freshAppId() }), arcRecord({ appId: freshAppId() })].map((r) =>
      JSON.stringify(r),
    );
    const res = await postIngest<IngestSummary>(t.url, `\uFEFF${lines.join('\n')}`, {
      contentType: 'application/x-ndjson',
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ events: 2, accepted: 2, rejected: [] });
  });

  it('expands NDJSON lines that are themselves envelopes, keeping each event’s line', async () => {
    const body = [
      JSON.stringify(recordsEnvelope([arcRecord({ appId: freshAppId() }), { nope: true }])),
      JSON.stringify(arcRecord({ appId: freshAppId() })),
    ].join('\n');
    const res = await postIngest<IngestSummary>(t.url, body, {
      contentType: 'application/x-ndjson; charset=utf-8',
    });
    expect(res.status).toBe(200);
    expect(res.body.events).toBe(3);
    expect(res.body.rejected).toEqual([expect.objectContaining({ index: 1, line: 1, outcome: 'invalid' })]);
  });

  it('keeps the order of index and line when bad lines, envelopes and rejected events interleave', async () => {
    const a = arcRecord({ appId: freshAppId() });
    const b = arcRecord({ appId: freshAppId() });
    const deep = `${'{"a":'.repeat(100)}1${'}'.repeat(100)}`;
    const body = [
      JSON.stringify(recordsEnvelope([a, { nope: true }])),
      '{"broken": ',
      JSON.stringify(a),
      '',
      deep,
      JSON.stringify(b),
    ].join('\n');
    const res = await postIngest<IngestSummary>(t.url, body, { contentType: 'application/x-ndjson' });
    expect(res.status).toBe(200);
    expect(res.body.events).toBe(6);
    expect(res.body.accepted).toBe(2);
    expect(res.body.counts).toEqual({
      alerted: 2,
      known: 0,
      allowlisted: 0,
      duplicate: 1,
      ignored: 0,
      invalid: 3,
    });
    expect(res.body.rejected.map((r) => [r.index, r.line, r.outcome])).toEqual([
      [1, 1, 'invalid'],
      [2, 2, 'invalid'],
      [3, 3, 'duplicate'],
      [4, 5, 'invalid'],
    ]);
    expect(res.body.rejected[1]?.reason).toMatch(/^line 2 column \d+ is not valid JSON/);
    expect(res.body.rejected[3]?.reason).toBe('line 5: nested deeper than 64 levels');
  });

  it('takes the Azure {"records": [...]} envelope', async () => {
    const res = await postIngest<IngestSummary>(
      t.url,
      recordsEnvelope([arcRecord({ appId: freshAppId() }), arcRecord({ appId: freshAppId() })]),
    );
    expect(res.body).toMatchObject({ events: 2, accepted: 2, counts: { alerted: 2 } });
  });

  it('takes a Kibana webhook body {"alerts": [...]}', async () => {
    const res = await postIngest<IngestSummary>(
      t.url,
      kibanaWebhookBody([
        arcEvent('elastic-alert', { appId: freshAppId(), time: new Date(), alertUuid: crypto.randomUUID() }),
      ]),
    );
    expect(res.body).toMatchObject({ events: 1, counts: { alerted: 1 } });
  });

  it('takes Azure Monitor action-group payloads (common and legacy schema)', async () => {
    const common = await postIngest<IngestSummary>(
      t.url,
      arcEvent('azure-monitor-common', { appId: freshAppId(), time: new Date() }),
    );
    expect(common.status).toBe(200);
    expect(common.body.events).toBe(1);
    expect(common.body.counts.alerted).toBe(1);
    const legacy = await postIngest<IngestSummary>(
      t.url,
      arcEvent('azure-monitor-legacy', { appId: freshAppId(), time: new Date() }),
    );
    expect(legacy.body.counts.alerted).toBe(1);
  });

  it('takes gzip- (also labelled x-gzip) and deflate-compressed bodies, deflate with or without its zlib header', async () => {
    const gz = await postIngest<IngestSummary>(t.url, [arcRecord({ appId: freshAppId() })], { gzip: true });
    expect(gz.status).toBe(200);
    expect(gz.body.counts.alerted).toBe(1);

    const res = await fetch(`${t.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'deflate' },
      body: deflateSync(JSON.stringify(arcRecord({ appId: freshAppId() }))),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as IngestSummary).counts.alerted).toBe(1);

    // Labelled deflate but bare deflate data, without the zlib header (.NET's DeflateStream).
    for (const body of [
      deflateRawSync(JSON.stringify(arcRecord({ appId: freshAppId() }))),
      deflateRawSync(JSON.stringify(arcRecord({ appId: freshAppId() })), { level: 0 }),
    ]) {
      const raw = await postIngest<IngestSummary>(t.url, body, {
        headers: { 'content-encoding': 'deflate' },
      });
      expect(raw.status, raw.text).toBe(200);
      expect(raw.body.counts.alerted).toBe(1);
    }
    for (const junk of [Buffer.from([0x78]), Buffer.from('{"not":"deflate"}')]) {
      const bad = await postIngest<{ error: string }>(t.url, junk, {
        headers: { 'content-encoding': 'deflate' },
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error).toMatch(/^the body is not valid deflate data/);
    }

    const xgz = await postIngest<IngestSummary>(
      t.url,
      gzipSync(JSON.stringify(arcRecord({ appId: freshAppId() }))),
      {
        headers: { 'content-encoding': 'x-gzip' },
      },
    );
    expect(xgz.status).toBe(200);
    expect(xgz.body.counts.alerted).toBe(1);
  });

  it('treats a missing Content-Type as JSON and accepts a UTF-8 charset and a BOM', async () => {
    const res = await postIngest<IngestSummary>(t.url, JSON.stringify(arcRecord({ appId: freshAppId() })), {
      contentType: null,
    });
    expect(res.status).toBe(200);
    expect(res.body.counts.alerted).toBe(1);
    const bom = await postIngest<IngestSummary>(
      t.url,
      `\uFEFF${JSON.stringify(arcRecord({ appId: freshAppId() }))}`,
      {
        contentType: 'application/json; charset=UTF-8',
      },
    );
    expect(bom.status).toBe(200);
    expect(bom.body.counts.alerted).toBe(1);
  });

  it('accepts the UTF-8 charset in every spelling HTTP allows: quoted, any case, utf8', async () => {
    for (const charset of ['"utf8"', '"UTF8"', '"Utf-8"', 'utf8', 'UTF-8']) {
      const res = await postIngest<IngestSummary>(t.url, arcRecord({ appId: freshAppId() }), {
        contentType: `application/json; charset=${charset}`,
      });
      expect(res.status, charset).toBe(200);
      expect(res.body.counts.alerted).toBe(1);
    }
  });

  it('answers an empty array with zero events', async () => {
    const res = await postIngest<IngestSummary>(t.url, []);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ events: 0, accepted: 0, rejected: [] });
  });

  it('has the alert in the outbox by the time it answers 200', async () => {
    await t.app.outbox.stop();
    try {
      const before = t.app.outbox.depth();
      const res = await postIngest<IngestSummary>(t.url, arcRecord({ appId: freshAppId() }));
      expect(res.body.counts.alerted).toBe(1);
      const pending = await t.app.store.members('outbox:pending');
      expect(pending.length).toBeGreaterThanOrEqual(1);
      expect(t.app.outbox.depth()).toBe(before + 1);
    } finally {
      await t.app.outbox.start();
    }
  });
});

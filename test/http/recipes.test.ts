/**
 * The recipes of docs/ingest.md, posted as documented. The Kibana body template and the Event Hub
 * message are read from the document itself, so the document and the service cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestSummary } from '../../src/http/ingest-handler.ts';
import { arcRecord, freshAppId, postIngest, startTestApp, type TestApp } from '../support/http-app.ts';
import { ARC, arcEvent, recordsEnvelope } from '../support/samples.ts';

const DOC = readFileSync(path.resolve(import.meta.dirname, '../../docs/ingest.md'), 'utf8');
const TOKEN = 'recipe-token-0123456789';

/** The fenced block right after `<!-- recipe:NAME -->`. */
function recipe(name: string): string {
  const m = new RegExp(`<!-- recipe:${name} -->\\s*\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\``).exec(DOC);
  if (!m?.[1]) throw new Error(`docs/ingest.md has no recipe block ${name}`);
  return m[1];
}

/**
 * Renders a webhook body template the way Kibana's mustache renderer does (FORMATS.md §3):
 * `{{x}}` is JSON-string-escaped without quotes, `{{{x}}}` is raw, an array renders as its
 * elements joined by commas and an object as JSON.
 */
function renderKibana(template: string, context: Record<string, unknown>): string {
  const lookup = (dotted: string) =>
    dotted.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], context);
  const text = (v: unknown): string =>
    Array.isArray(v)
      ? v.map(text).join(',')
      : typeof v === 'object' && v !== null
        ? JSON.stringify(v)
        : String(v ?? '');
  return template
    .replace(/\{\{\{([\w.]+)\}\}\}/g, (_, name: string) => text(lookup(name)))
    .replace(/\{\{([\w.]+)\}\}/g, (_, name: string) => JSON.stringify(text(lookup(name))).slice(1, -1));
}

describe('docs/ingest.md recipes, posted as documented [derived Arc events]', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { INGEST_TOKEN: `${TOKEN},another-token-for-vector` } });
  });
  afterAll(async () => {
    await t.close();
  });
  const auth = { authorization: `Bearer ${TOKEN}` };

  it('Kibana Webhook connector: the documented body template with one and with several alerts', async () => {
    const template = recipe('kibana-body');
    expect(template).toContain('[{{{context.alerts}}}]');
    const context = (alerts: unknown[]) => ({
      context: {
        rule: {
          rule_id: '022c37cd-5a4f-422b-8227-b136b7a23180',
          name: 'Azure Arc Cluster Credential Access by Identity from "Unusual" Source',
        },
        results_link:
          'https://kibana.example.com/app/security/detections/rules/id/c2a4e6f8?timeline=(a:1)&x=1',
        alerts,
      },
    });
    const alert = () =>
      arcEvent('elastic-alert', { appId: freshAppId(), time: new Date(), alertUuid: crypto.randomUUID() });

    const one = renderKibana(template, context([alert()]));
    const res1 = await postIngest<IngestSummary>(t.url, one, { headers: auth });
    expect(res1.status).toBe(200);
    expect(res1.body).toMatchObject({ events: 1, counts: { alerted: 1 } });

    const many = renderKibana(template, context([alert(), alert(), alert()]));
    const res3 = await postIngest<IngestSummary>(t.url, many, { headers: auth });
    expect(res3.body).toMatchObject({ events: 3, accepted: 3, counts: { alerted: 3 } });
  });

  it('Azure Monitor action group: the common alert schema posted with the token in the URL', async () => {
    expect(recipe('azure-monitor-cli')).toContain('/ingest?token=<INGEST_TOKEN>" usecommonalertschema');
    const payload = arcEvent('azure-monitor-common', { appId: freshAppId(), time: new Date() });
    const res = await fetch(`${t.url}/ingest?token=${TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as IngestSummary).counts.alerted).toBe(1);

    const wrong = await fetch(`${t.url}/ingest?token=not-${TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
    expect(wrong.status).toBe(401);
    expect(t.rawLogs()).not.toContain(TOKEN);
  });

  it('Azure Monitor secure webhook: its own Entra ID token in Authorization leaves the token in the URL to decide', async () => {
    // What a secure webhook adds: an Entra ID access token for its application (not ours to check).
    const entra = `Bearer ${['eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9', 'eyJhdWQiOiJhcGk6Ly9hcmMifQ', 'c2ln'].join('.')}`;
    const post = (query: string) =>
      fetch(`${t.url}/ingest?${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: entra },
        body: JSON.stringify(arcEvent('azure-monitor-common', { appId: freshAppId(), time: new Date() })),
      });
    const ok = await post(`token=${TOKEN}`);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as IngestSummary).counts.alerted).toBe(1);
    const wrong = await post(`token=not-${TOKEN}`);
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: string }).error).toMatch(/invalid token in the URL/);
    // Without a token in the URL, the header is what is judged.
    const none = await post('x=1');
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: string }).error).toMatch(/invalid bearer token/);
  });

  it('Azure Monitor action group: a payload without the caller IP is invalid and says to use the diagnostic setting', async () => {
    const payload = arcEvent('azure-monitor-common', { appId: freshAppId(), ip: null, time: new Date() });
    const res = await fetch(`${t.url}/ingest?token=${TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
    const body = (await res.json()) as IngestSummary;
    expect(res.status).toBe(200);
    expect(body.rejected).toEqual([
      { index: 0, outcome: 'invalid', reason: expect.stringMatching(/no caller IP.*diagnostic setting/) },
    ]);
  });

  it('Event Hub: one message as JSON, and messages batched one per line as gzipped NDJSON', async () => {
    // The documented message shape: a records envelope of Event Hub records.
    const documented = JSON.parse(recipe('event-hub-message')) as { records: Array<Record<string, unknown>> };
    expect(Object.keys(documented.records[0]!)).toEqual(
      expect.arrayContaining([
        'time',
        'resourceId',
        'operationName',
        'resultType',
        'callerIpAddress',
        'identity',
      ]),
    );
    expect(documented.records[0]?.operationName).toBe(ARC.operationUpper);

    const message = recordsEnvelope([arcRecord({ appId: freshAppId() }), arcRecord({ appId: freshAppId() })]);
    const single = await postIngest<IngestSummary>(t.url, message, { headers: auth });
    expect(single.body).toMatchObject({ events: 2, counts: { alerted: 2 } });

    const batch = [
      recordsEnvelope([arcRecord({ appId: freshAppId() })]),
      recordsEnvelope([
        arcRecord({ appId: freshAppId() }),
        arcRecord({ appId: freshAppId(), outcome: 'Start' }),
      ]),
      message,
    ]
      .map((m) => JSON.stringify(m))
      .join('\n');
    const res = await postIngest<IngestSummary>(t.url, `${batch}\n`, {
      contentType: 'application/x-ndjson',
      gzip: true,
      headers: { authorization: 'Bearer another-token-for-vector' },
    });
    expect(res.status).toBe(200);
    expect(res.body.events).toBe(5);
    expect(res.body.counts).toMatchObject({ alerted: 2, ignored: 1, duplicate: 2 });
    expect(res.body.rejected.find((r) => r.outcome === 'ignored')).toMatchObject({ index: 2, line: 2 });
  });
});

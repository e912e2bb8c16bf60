import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/http-app.ts';
import { type FakeSlack, startFakeSlack } from '../support/http-fake-slack.ts';

const SECRET = 'test-signing-secret';

describe('POST /slack/events with Slack configured', () => {
  let slack: FakeSlack;
  let t: TestApp;
  beforeAll(async () => {
    slack = await startFakeSlack();
    t = await startTestApp({
      env: {
        SLACK_BOT_TOKEN: 'xoxb-test',
        SLACK_SIGNING_SECRET: SECRET,
        SLACK_ALERT_CHANNEL: 'C0TEST',
        SLACK_API_URL: slack.apiUrl,
      },
    });
  });
  afterAll(async () => {
    await t.close();
    await slack.close();
  });

  it('hands Slack callbacks to the Slack adapter: unsigned ones refused, signed ones answered', async () => {
    expect(t.app.chat.name).toBe('slack');
    const body = JSON.stringify({ token: 'x', challenge: 'ch-123', type: 'url_verification' });
    const unsigned = await fetch(`${t.url}/slack/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(unsigned.status).toBe(401);
    // The request log line says why, as it does for the other endpoints.
    const refused = t
      .rawLogs()
      .split('\n')
      .filter((l) => l.includes('"msg":"request refused"') && l.includes('/slack/events'));
    expect(refused.at(-1)).toContain('"code":"bad_timestamp","client"');
    expect(refused.at(-1)).toContain('"error":"missing or malformed X-Slack-Request-Timestamp"');
    // A body refused for its size is said as the Slack endpoint's limit, not the ingest's.
    const large = await fetch(`${t.url}/slack/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `payload=${'x'.repeat(8000)}`,
    });
    expect(large.status).toBe(413);
    const tooLarge = t
      .rawLogs()
      .split('\n')
      .filter((l) => l.includes('"msg":"request refused"') && l.includes('"status":413'));
    expect(tooLarge.at(-1)).toContain(`"code":"payload_too_large"`);
    expect(tooLarge.at(-1)).toContain(
      `"error":"a request without a valid Slack signature is read up to 4096 bytes only (for Slack's SSL check)"`,
    );

    const ts = String(Math.floor(Date.now() / 1000));
    const signature = `v0=${createHmac('sha256', SECRET).update(`v0:${ts}:${body}`).digest('hex')}`;
    const signed = await fetch(`${t.url}/slack/events`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-slack-request-timestamp': ts,
        'x-slack-signature': signature,
      },
      body,
    });
    expect(signed.status).toBe(200);
    expect(await signed.text()).toContain('ch-123');
    expect(t.rawLogs()).not.toContain(signature.slice(3));
  });

  it('still serves ingest, health and readiness on the same port', async () => {
    const ready = await fetch(`${t.url}/readyz`);
    expect(((await ready.json()) as { chat: string }).chat).toBe('slack');
    const wrong = await fetch(`${t.url}/slack/events`);
    expect(wrong.status).toBe(405);
  });
});

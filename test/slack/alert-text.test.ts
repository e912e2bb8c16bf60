/**
 * The alert's own wording, through the real service (`createApp`, SQLite, HTTP, outbox) with Slack
 * faked at its Web API: the texts it writes itself keep to mrkdwn's rules and say where the
 * detection came from.
 */
import { afterEach, expect, it } from 'vitest';
import { type FakeSlack, startFakeSlack } from '../support/fake-slack.ts';
import { arcRecord, freshAppId, postIngest, startTestApp, type TestApp } from '../support/http-app.ts';
import { arcEvent } from '../support/samples.ts';

let app: TestApp | undefined;
let fake: FakeSlack | undefined;
afterEach(async () => {
  await app?.close();
  await fake?.stop();
});

async function start(): Promise<{ app: TestApp; fake: FakeSlack }> {
  fake = await startFakeSlack();
  app = await startTestApp({
    env: {
      SLACK_BOT_TOKEN: 'xoxb-alert-text',
      SLACK_SIGNING_SECRET: 'alert-text-signing-secret',
      SLACK_ALERT_CHANNEL: 'C0ALERTS',
      SLACK_API_URL: fake.apiUrl,
    },
  });
  return { app, fake };
}

/** Every mrkdwn text of a message's blocks. */
function mrkdwnTexts(blocks: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (o.type === 'mrkdwn' && typeof o.text === 'string') out.push(o.text);
      else Object.values(o).forEach(walk);
    }
  };
  walk(blocks);
  return out;
}

it('writes every & of its own texts as &amp;, as Slack asks of a character it reads as the start of an entity', async () => {
  const { app, fake } = await start();
  const ingest = await postIngest(app.url, arcRecord({ appId: freshAppId(), ip: '198.51.100.41' }));
  expect(ingest.body).toMatchObject({ counts: { alerted: 1 } });
  await app.app.outbox.drain();
  const [post] = fake.callsOf('chat.postMessage');
  const texts = mrkdwnTexts(post!.args.blocks);
  expect(texts.some((t) => t.includes('*MITRE ATT&amp;CK*'))).toBe(true);
  // Outside the links (whose URLs Slack takes as they are), no & that opens no entity.
  for (const text of texts) expect(text.replace(/<[^>]*>/g, ''), text).not.toMatch(/&(?!amp;|lt;|gt;)/);
});

it('says that a common-schema payload without its essentials came from Azure Monitor, not from an Event Hub record', async () => {
  const { app, fake } = await start();
  // An action group's payload as some relays pass it on: the alert context alone under data.
  const payload = arcEvent('azure-monitor-common', {
    appId: freshAppId(),
    ip: '198.51.100.42',
    time: new Date(),
  }) as { data: Record<string, unknown> };
  delete payload.data.essentials;
  const ingest = await postIngest(app.url, payload);
  expect(ingest.body).toMatchObject({ counts: { alerted: 1 } });
  await app.app.outbox.drain();
  const [post] = fake.callsOf('chat.postMessage');
  const source = mrkdwnTexts(post!.args.blocks).find((t) => t.startsWith('*Source*'));
  expect(source).toBe('*Source*\nAzure Monitor alert (common alert schema)');
});

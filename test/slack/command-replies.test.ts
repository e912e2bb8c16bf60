/**
 * What `/arc-history` answers for arguments it cannot use, through the real service (`createApp`,
 * SQLite, HTTP) with Slack faked at its Web API and the command signed as Slack signs it.
 */
import { afterEach, expect, it } from 'vitest';
import {
  commandBody,
  type FakeSlack,
  sendSigned,
  slashCommand,
  startFakeSlack,
} from '../support/fake-slack.ts';
import { startTestApp, type TestApp } from '../support/http-app.ts';
import { ARC } from '../support/samples.ts';

const SECRET = 'command-replies-signing-secret';

let app: TestApp | undefined;
let fake: FakeSlack | undefined;
afterEach(async () => {
  await app?.close();
  await fake?.stop();
});

async function start(): Promise<void> {
  fake = await startFakeSlack();
  app = await startTestApp({
    env: {
      SLACK_BOT_TOKEN: 'xoxb-command-replies',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_ALERT_CHANNEL: 'C0ALERTS',
      SLACK_API_URL: fake.apiUrl,
    },
  });
}

async function command(name: string, text: string): Promise<{ text: string }> {
  const raw = commandBody(
    slashCommand({ command: name, text, user: 'UALICE', responseUrl: fake!.responseUrl('cmd') }),
  );
  const res = await sendSigned(`${app!.url}/slack/events`, SECRET, raw);
  expect(res.status).toBe(200);
  return res.json() as { text: string };
}

/** Every `<…>` of a mrkdwn text that Slack would take for a link, mention or date of its own. */
const controlSequences = (text: string) => [...text.matchAll(/<[^>]*>/g)].map((m) => m[0]);

it('writes the placeholders of its usage help escaped, so that Slack shows them rather than parsing them as links', async () => {
  await start();
  for (const text of ['', 'help', `${ARC.appId} 0`]) {
    const reply = await command('/arc-history', text);
    expect(reply.text, text).toContain('Usage: `/arc-history &lt;appid&gt;`');
    expect(reply.text, text).toContain('`/arc-history &lt;appid&gt; &lt;n&gt;`');
    expect(controlSequences(reply.text), text).toEqual([]);
  }
  const unserved = await command('/arc-foo', 'x');
  expect(unserved.text).toBe('arc-responder does not serve /arc-foo. It answers /arc-history &lt;appid&gt;.');
});

it('names the argument it cannot use: one too many, not the valid number before it', async () => {
  await start();
  const extra = await command('/arc-history', `${ARC.appId} 3 now`);
  expect(extra.text).toMatch(/^`now` /);
  expect(extra.text).not.toContain('`3`');
  const badStart = await command('/arc-history', `${ARC.appId} 0`);
  expect(badStart.text).toMatch(/^`0` is not the number of an IP to start at\./);
});

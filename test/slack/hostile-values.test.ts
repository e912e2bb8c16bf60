/**
 * Hostile values in a detection, through the real service (`createApp`, SQLite, HTTP, outbox) with
 * Slack faked at its Web API: what the alert and `/arc-history` show of them.
 */
import { afterEach, expect, it } from 'vitest';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import {
  buttonClick,
  commandBody,
  type FakeSlack,
  payloadBody,
  sendSigned,
  slashCommand,
  startFakeSlack,
} from '../support/fake-slack.ts';
import { freshAppId, postIngest, startTestApp, type TestApp } from '../support/http-app.ts';
import { arcEvent } from '../support/samples.ts';

const SECRET = 'hostile-signing-secret';

let app: TestApp | undefined;
let fake: FakeSlack | undefined;
afterEach(async () => {
  await app?.close();
  await fake?.stop();
});

async function start() {
  fake = await startFakeSlack();
  app = await startTestApp({
    env: {
      SLACK_BOT_TOKEN: 'xoxb-hostile',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_ALERT_CHANNEL: 'C0ALERTS',
      SLACK_API_URL: fake.apiUrl,
      SLACK_RESPONDERS: 'UALICE',
    },
  });
  return { app, fake };
}

/** Every mrkdwn and plain text of a message: its `text`, and each block's texts and fields. */
function texts(message: { text?: unknown; blocks?: unknown }): string[] {
  const out: string[] = typeof message.text === 'string' ? [message.text] : [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if ((o.type === 'mrkdwn' || o.type === 'plain_text') && typeof o.text === 'string') out.push(o.text);
      for (const x of Object.values(o)) walk(x);
    }
  };
  walk(message.blocks);
  return out;
}

async function history(url: string, f: FakeSlack, appId: string) {
  const res = await sendSigned(
    `${url}/slack/events`,
    SECRET,
    commandBody(
      slashCommand({
        command: '/arc-history',
        text: appId,
        user: 'UALICE',
        responseUrl: f.responseUrl('h1'),
      }),
    ),
  );
  expect(res.status).toBe(200);
  return res.json() as { text: string; blocks: Array<{ type: string; text?: { text: string } }> };
}

it('a line break in a value never starts a line of its own in the alert or in /arc-history', async () => {
  const { app, fake } = await start();
  const appId = freshAppId();
  // Each forged line reads as part of the message: a status, another IP of the history.
  const forged = (line: string) => `Reader\r\n${line}\u2028${line}`;
  const status = '*Marked benign* by someone: “known CI runner”. Allowlisted with no expiry.';
  const ipLine = '`192.0.2.250` 9× · 2026-01-01 00:00 → 00:01 · Allowlisted';
  const event = arcEvent('elastic-ecs', {
    appId,
    ip: '198.51.100.7',
    time: new Date(),
    role: forged(status),
    upn: forged(status),
    principalType: 'User',
    geo: { cityName: forged(ipLine), countryName: 'Nowhere' },
    as: { number: 64500, organizationName: forged(ipLine) },
    clusterId: `/subscriptions/6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/${forged(status)}`,
  });
  expect((await postIngest(app.url, event)).body).toMatchObject({ counts: { alerted: 1 } });
  await app.app.outbox.drain();
  const [post] = fake.callsOf('chat.postMessage');
  const shown = texts(post!.args);
  expect(shown.join('\n')).toContain('Marked benign');
  for (const text of shown) {
    for (const line of text.split('\n')) {
      expect(line, text).not.toMatch(/^\s*(\*Marked benign\*|`192\.0\.2\.250`)/);
      expect(line, text).not.toMatch(/[\r\u2028\u2029]/);
    }
  }

  // One line per IP in /arc-history, whatever its place says.
  const reply = await history(app.url, fake, appId);
  const lines = reply.blocks
    .filter((b) => b.type === 'section')
    .slice(1)
    .flatMap((b) => b.text!.text.split('\n'));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^`198\.51\.100\.7` 1× /);
});

it('an invisible or direction-turning character in a value is named in the alert and in /arc-history, never sent as is', async () => {
  const { app, fake } = await start();
  const appId = freshAppId();
  // A right-to-left override shows `prod-cluster-gnp.exe` as `prod-cluster-exe.png`; a zero-width
  // space makes `admin@contoso.example` look like the real account.
  const event = arcEvent('elastic-ecs', {
    appId,
    ip: '198.51.100.8',
    time: new Date(),
    upn: 'ad\u200bmin@contoso.example',
    principalType: 'User',
    role: 'Reader\u2066\u2069',
    geo: { cityName: 'Lon\u200edon', countryName: 'United Kingdom' },
    as: { number: 64500, organizationName: 'Example\ufeff Transit' },
    clusterId: `/subscriptions/6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/prod-cluster-\u202egnp.exe`,
  });
  expect((await postIngest(app.url, event)).body).toMatchObject({ counts: { alerted: 1 } });
  await app.app.outbox.drain();
  const [post] = fake.callsOf('chat.postMessage');
  const reply = await history(app.url, fake, appId);
  const hidden = /[\u200b\u200e\u202a-\u202e\u2066-\u2069\ufeff]/;
  for (const text of [...texts(post!.args), ...texts(reply)]) expect(text).not.toMatch(hidden);
  const shown = texts(post!.args).join('\n');
  expect(shown).toContain('prod-cluster-[U+202E]gnp.exe');
  expect(shown).toContain('ad[U+200B]min@contoso.example');
  expect(texts(reply).join('\n')).toContain('Lon[U+200E]don');
});

it("a user's UPN with an invisible character is named in Revoke's confirm dialog, its result and its thread line", async () => {
  const { app, fake } = await start();
  const appId = freshAppId();
  const event = arcEvent('azure-activity-log-record', {
    appId,
    ip: '198.51.100.9',
    time: new Date(),
    upn: 'ad\u200bmin\u202e@contoso.example',
    principalType: 'User',
  });
  expect((await postIngest(app.url, event)).body).toMatchObject({ counts: { alerted: 1 } });
  await app.app.outbox.drain();
  const [post] = fake.callsOf('chat.postMessage');
  const revoke = (post!.args.blocks as Array<{ elements?: Array<{ action_id: string; value: string }> }>)
    .flatMap((b) => b.elements ?? [])
    .find((e) => e.action_id === ACTION_IDS.revoke)!;
  const res = await sendSigned(
    `${app.url}/slack/events`,
    SECRET,
    payloadBody(
      buttonClick({
        actionId: ACTION_IDS.revoke,
        value: revoke.value,
        user: 'UALICE',
        channel: 'C0ALERTS',
        messageTs: '1700000000.000001',
        responseUrl: fake.responseUrl('rv'),
      }),
    ),
  );
  expect(res.status).toBe(200);
  const thread = () => fake.callsOf('chat.postMessage').filter((c) => c.args.thread_ts);
  await fake.waitFor('the revoke audit in the thread', () => thread().length === 1);
  const sent = [post!, ...fake.callsOf('chat.update'), ...thread()].flatMap((c) => texts(c.args));
  const all = sent.join('\n');
  expect(all).toContain('Disable the user account ad[U+200B]min[U+202E]@contoso.example');
  expect(all).not.toMatch(/[\u200b\u202e]/);
});

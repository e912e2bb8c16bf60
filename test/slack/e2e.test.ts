/**
 * End to end through the real service (`createApp`, real config, SQLite, HTTP server, outbox,
 * engine) with Slack faked at the Web API: POST /ingest → one alert in the channel → each button
 * clicked through signed requests on POST /slack/events → a repeat and an allowlisted pair.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { ACTION_IDS, BENIGN_MODAL, CALLBACK_IDS } from '../../src/slack/ids.ts';
import {
  buttonClick,
  commandBody,
  type FakeSlack,
  payloadBody,
  sendSigned,
  slashCommand,
  startFakeSlack,
  viewSubmission,
} from '../support/fake-slack.ts';
import { arcRecord, freshAppId, postIngest, startTestApp, type TestApp } from '../support/http-app.ts';

const SECRET = 'e2e-signing-secret';
const TOKEN = 'xoxb-e2e-token';
const RESPONDER = 'UALICE';

let app: TestApp | undefined;
let fake: FakeSlack | undefined;
afterEach(async () => {
  await app?.close();
  await fake?.stop();
});

it('alerts once from POST /ingest, and each button and /arc-history work through /slack/events', async () => {
  fake = await startFakeSlack();
  app = await startTestApp({
    env: {
      SLACK_BOT_TOKEN: TOKEN,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_ALERT_CHANNEL: 'C0ALERTS',
      SLACK_API_URL: fake.apiUrl,
      SLACK_RESPONDERS: RESPONDER,
    },
  });
  const f = fake;
  const slack = `${app.url}/slack/events`;
  const send = (raw: string) => sendSigned(slack, SECRET, raw);
  const appId = freshAppId();
  const ip = '198.51.100.77';
  const posts = () => f.callsOf('chat.postMessage');
  const threads = () => posts().filter((c) => c.args.thread_ts);

  // 1. A new pair: exactly one chat.postMessage to the alert channel.
  const first = await postIngest(app.url, arcRecord({ appId, ip }));
  expect(first.status).toBe(200);
  expect(first.body).toMatchObject({ counts: { alerted: 1 } });
  await app.app.outbox.drain();
  expect(posts()).toHaveLength(1);
  const alertPost = posts()[0]!;
  expect(alertPost.token).toBe(TOKEN);
  expect(alertPost.args.channel).toBe('C0ALERTS');
  const blocks = JSON.stringify(alertPost.args.blocks);
  for (const needle of [appId, ip, 'Mark benign', 'Revoke']) expect(blocks).toContain(needle);
  // Event Hub records carry the resource id upper-cased, as Azure sends it.
  expect(blocks).toContain('ARC-PROD-01');
  const ts = '1700000000.000001'; // the fake's first message ts
  const buttons = (
    alertPost.args.blocks as Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }>
  )
    .flatMap((b) => b.elements ?? [])
    .filter((e) => e.action_id);
  const alertId = buttons.find((b) => b.action_id === ACTION_IDS.revoke)!.value;

  // 2. A repeat of the pair updates the message instead of posting.
  await postIngest(app.url, arcRecord({ appId, ip }));
  await app.app.outbox.drain();
  expect(posts()).toHaveLength(1);
  expect(JSON.stringify(f.callsOf('chat.update').at(-1)!.args.blocks)).toContain('Seen 2 times');

  // 3. Revoke (dry-run by default): the alert shows the calls it would make; audit in the thread.
  const revoke = await send(
    payloadBody(
      buttonClick({
        actionId: ACTION_IDS.revoke,
        value: alertId,
        user: RESPONDER,
        channel: 'C0ALERTS',
        messageTs: ts,
        responseUrl: f.responseUrl('rv'),
      }),
    ),
  );
  expect(revoke.status).toBe(200);
  await f.waitFor('the revoke audit in the thread', () => threads().length === 1);
  expect(String(threads()[0]!.args.text)).toContain('dry-run');
  expect(JSON.stringify(f.callsOf('chat.update').at(-1)!.args.blocks)).toContain('nothing was changed');

  // 4. Mark benign: modal, submit, allowlisted; a later detection of the pair is not alerted.
  await send(
    payloadBody(
      buttonClick({
        actionId: ACTION_IDS.markBenign,
        value: alertId,
        user: RESPONDER,
        channel: 'C0ALERTS',
        messageTs: ts,
        responseUrl: f.responseUrl('mb'),
      }),
    ),
  );
  await f.waitFor('the modal', () => f.callsOf('views.open').length === 1);
  const view = f.callsOf('views.open')[0]!.args.view as { private_metadata: string };
  const submitted = await send(
    payloadBody(
      viewSubmission({
        callbackId: CALLBACK_IDS.markBenign,
        user: RESPONDER,
        privateMetadata: view.private_metadata,
        values: {
          [BENIGN_MODAL.reasonBlock]: {
            [BENIGN_MODAL.reasonInput]: { type: 'plain_text_input', value: 'pipeline runner' },
          },
          [BENIGN_MODAL.expiryBlock]: {
            [BENIGN_MODAL.expiryInput]: { type: 'static_select', selected_option: { value: '7d' } },
          },
        },
      }),
    ),
  );
  expect(submitted.status).toBe(200);
  await f.waitFor('the benign audit in the thread', () => threads().length === 2);
  expect(JSON.stringify(f.callsOf('chat.update').at(-1)!.args.blocks)).toContain('Marked benign');

  // The allowlisted pair is not alerted again.
  const again = await postIngest(app.url, arcRecord({ appId, ip }));
  expect(again.body).toMatchObject({ counts: { alerted: 0 } });
  await app.app.outbox.drain();
  expect(posts().filter((c) => !c.args.thread_ts)).toHaveLength(1);

  // 5. /arc-history answers privately with the pair, allowlisted.
  const history = await send(
    commandBody(
      slashCommand({
        command: '/arc-history',
        text: appId,
        user: RESPONDER,
        responseUrl: f.responseUrl('h'),
      }),
    ),
  );
  expect(history.status).toBe(200);
  const reply = history.json() as { response_type: string; blocks: unknown[] };
  expect(reply.response_type).toBe('ephemeral');
  expect(JSON.stringify(reply.blocks)).toContain(ip);
  expect(JSON.stringify(reply.blocks)).toContain('Allowlisted until');

  const audit = (await listAudit(app.app.store, alertId)).map((e) => `${e.action}:${e.result}`);
  expect(audit).toEqual(expect.arrayContaining(['revoke:dry-run', 'mark-benign:ok']));
  // Counted too, for dashboards and alerts on refused or failed clicks.
  const metrics = await (await fetch(`${app.url}/metrics`)).text();
  expect(metrics).toContain('arc_responder_actions_total{action="revoke",result="dry-run"} 1');
  expect(metrics).toContain('arc_responder_actions_total{action="mark-benign",result="ok"} 1');
  expect(app.rawLogs()).not.toContain(SECRET);
  expect(app.rawLogs()).not.toContain(TOKEN);
});

it('after SLACK_ALERT_CHANNEL moves, an old message the bot may no longer update holds back only its own updates', async () => {
  fake = await startFakeSlack();
  const f = fake;
  const dir = mkdtempSync(path.join(tmpdir(), 'arc-channel-move-'));
  const slackEnv = (channel: string) => ({
    SLACK_BOT_TOKEN: TOKEN,
    SLACK_SIGNING_SECRET: SECRET,
    SLACK_ALERT_CHANNEL: channel,
    SLACK_API_URL: f.apiUrl,
  });
  try {
    const old = freshAppId();
    app = await startTestApp({ dir, env: slackEnv('C0OLD') });
    await postIngest(app.url, arcRecord({ appId: old, ip: '198.51.100.1' }));
    await app.app.outbox.drain();
    await app.close();

    // Restarted on the new channel; the bot has left the old one.
    app = await startTestApp({ dir, env: slackEnv('C0NEW') });
    f.script('chat.update', { error: 'not_in_channel' }, { error: 'not_in_channel' });
    const repeat = await postIngest(app.url, arcRecord({ appId: old, ip: '198.51.100.1' }));
    expect(repeat.body).toMatchObject({ counts: { known: 1 } });
    const fresh = freshAppId();
    await postIngest(app.url, arcRecord({ appId: fresh, ip: '198.51.100.2' }));
    await app.app.outbox.drain();

    const updates = f.callsOf('chat.update');
    expect(updates.map((c) => c.args.channel)).toEqual(['C0OLD']);
    const posts = f.callsOf('chat.postMessage').filter((c) => !c.args.thread_ts);
    expect(posts.map((c) => c.args.channel)).toEqual(['C0OLD', 'C0NEW']);
    expect(JSON.stringify(posts[1]!.args.blocks)).toContain(fresh);
  } finally {
    await app?.close();
    app = undefined;
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * The audit trail as an auditor reads it after an incident: each allowlist change says what it
 * changed (before and after) and belongs to its alert, so that `history audit <alert id>` tells
 * the whole story of that alert.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { ACTION_IDS, CALLBACK_IDS } from '../../src/slack/ids.ts';
import {
  benignValues,
  type Harness,
  postWithRefusedUpdate,
  RESPONDER,
  startHarness,
  warningsAbout,
} from './harness.ts';
import { sampleAlert } from './sample-alert.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const alert = sampleAlert();
const { appId, sourceIp: ip } = alert.detection;

it('a removal of an allowlist entry is audited with the entry it removed, under the alert it was marked benign from', async () => {
  h = await startHarness();
  await h.chat.sink.post(alert);
  const until = Date.now() + 7 * 24 * 3600 * 1000;
  const made = await h.history.allow({
    appId,
    ip,
    by: RESPONDER,
    reason: 'office VPN',
    until,
    alertId: alert.id,
  });
  const reply = (await h.command(appId, RESPONDER)).json();
  const value = /"value":"([^"]*\|[^"]*)"/.exec(JSON.stringify(reply))![1]!;
  const { responseId } = await h.click(`${ACTION_IDS.removeAllow}:0`, value, RESPONDER, { ephemeral: true });
  await h.fake.waitFor('the refreshed reply', () => h!.fake.responsesTo(responseId).length === 1);

  const removal = (await listAudit(h.store, alert.id)).filter((e) => e.action === 'remove-allowlist');
  expect(removal).toMatchObject([
    {
      actor: RESPONDER,
      alertId: alert.id,
      appId,
      ip,
      result: 'ok',
      detail: { removed: { by: RESPONDER, reason: 'office VPN', at: made.at, until, alertId: alert.id } },
      // Filed under the alert, it keeps the alert's message and detection as its other records do.
      ref: expect.objectContaining({
        channel: h.fake.callsOf('chat.postMessage')[0]!.args.channel,
        eventId: alert.detection.eventId,
      }),
    },
  ]);
});

const benign = benignValues;

/** Presses Mark benign on the alert and submits its modal; waits for the audit line in the thread. */
async function markBenign(reason: string, expiry: string, n: number) {
  await h!.click(ACTION_IDS.markBenign, alert.id, RESPONDER);
  await h!.fake.waitFor('the modal', () => h!.fake.callsOf('views.open').length === n);
  const view = h!.fake.callsOf('views.open')[n - 1]!.args.view as { private_metadata: string };
  await h!.submit(CALLBACK_IDS.markBenign, RESPONDER, view.private_metadata, benign(reason, expiry));
  await h!.fake.waitFor('the audit line', () =>
    h!.fake.callsOf('chat.postMessage').some((c) => c.args.thread_ts && String(c.args.text).includes(reason)),
  );
}

it('a change of a Mark benign is audited with the entry it replaced', async () => {
  h = await startHarness();
  await h.chat.sink.post(alert);
  await markBenign('office VPN', '7d', 1);
  const first = await h.history.getAllow(appId, ip);
  await markBenign('build agent, for good', 'never', 2);

  const marks = (await listAudit(h.store, alert.id)).filter((e) => e.action === 'mark-benign');
  expect(marks).toHaveLength(2);
  expect(marks[0]!.detail).not.toHaveProperty('previous');
  expect(marks[1]!.detail).toMatchObject({
    reason: 'build agent, for good',
    until: null,
    previous: { by: RESPONDER, reason: 'office VPN', at: first!.at, until: first!.until },
  });
});

it('every audit record of an alert keeps where the alert is in Slack and what detection it came from: they outlive the alert', async () => {
  h = await startHarness();
  await h.chat.sink.post(alert);
  const posted = h.fake.callsOf('chat.postMessage')[0]!;
  const ts = String((await h.store.get<{ ts?: string }>(`slack-alert:${alert.id}`))?.ts);
  await markBenign('office VPN', '7d', 1);
  await h.click(ACTION_IDS.revoke, alert.id, 'UMALLORY');
  await h.click(ACTION_IDS.revoke, alert.id, RESPONDER, { text: 'Revoke (dry-run)' });
  await h.fake.waitFor('the revoke', () =>
    h!.fake.callsOf('chat.postMessage').some((c) => c.args.thread_ts && /dry-run/i.test(String(c.args.text))),
  );
  const d = alert.detection;
  const ref = {
    channel: posted.args.channel,
    ts,
    eventId: d.eventId,
    eventTime: d.eventTime,
    correlationId: d.correlationId,
    tenantId: d.tenantId,
    clusterId: d.cluster!.id,
    elasticAlertUuid: d.elasticAlert!.alertUuid,
  };
  const records = await listAudit(h.store, alert.id);
  expect(records.map((r) => `${r.action} ${r.result}`)).toEqual([
    'mark-benign ok',
    'revoke refused',
    'revoke dry-run',
  ]);
  for (const r of records) expect(r.ref).toEqual(ref);
});

it('the record of a run says when it started (the click) as well as when it ended (its time)', async () => {
  h = await startHarness();
  await h.chat.sink.post(alert);
  await h.click(ACTION_IDS.revoke, alert.id, RESPONDER, { text: 'Revoke (dry-run)' });
  await h.fake.waitFor('the revoke', () =>
    h!.fake.callsOf('chat.postMessage').some((c) => c.args.thread_ts && /dry-run/i.test(String(c.args.text))),
  );
  const state = await h.store.get<{ revoke: { at: number; finishedAt: number } }>(`slack-alert:${alert.id}`);
  const [record] = (await listAudit(h.store, alert.id)).filter((e) => e.action === 'revoke');
  expect(record!.detail).toMatchObject({ startedAt: state!.revoke.at, finishedAt: state!.revoke.finishedAt });
});

/**
 * A message Slack will not let the bot edit (too old, or no longer the bot's to edit) is still
 * there: its thread goes on taking the audit lines of what responders do on it.
 */
it.each(['edit_window_closed', 'cant_update_message'])(
  'an alert whose message Slack refuses to update (%s) still gets its audit lines in the thread',
  async (error) => {
    h = await startHarness();
    await postWithRefusedUpdate(h, alert, error);
    expect(h.fake.callsOf('chat.update')).toHaveLength(1);
    await markBenign('office VPN', '7d', 1);
    expect(h.logs.join('')).not.toContain('its thread lines are dropped');
  },
);

it('an alert whose message was deleted in Slack drops its audit lines with one warning however many come, and keeps its audit records', async () => {
  h = await startHarness();
  await postWithRefusedUpdate(h, alert, 'message_not_found');
  for (const [n, reason] of [
    [1, 'office VPN'],
    [2, 'build agent'],
  ] as const) {
    await h.click(ACTION_IDS.markBenign, alert.id, RESPONDER);
    await h.fake.waitFor('the modal', () => h!.fake.callsOf('views.open').length === n);
    const view = h.fake.callsOf('views.open')[n - 1]!.args.view as { private_metadata: string };
    await h.submit(CALLBACK_IDS.markBenign, RESPONDER, view.private_metadata, benign(reason, '7d'));
    await vi.waitFor(async () => expect(await listAudit(h!.store, alert.id)).toHaveLength(n));
  }
  expect(h.fake.callsOf('chat.postMessage').filter((c) => c.args.thread_ts)).toEqual([]);
  expect(warningsAbout(h, alert.id)).toEqual([
    "the alert's Slack message is gone (deleted): it is no longer updated, and its thread lines are dropped; its audit records are kept",
  ]);
  expect((await listAudit(h.store, alert.id)).map((r) => r.action)).toEqual(['mark-benign', 'mark-benign']);
});

it('an audit line goes in a section sent verbatim, so Slack makes no link of a web address a clicker typed, and its text is the notification text', async () => {
  h = await startHarness();
  await h.chat.sink.post(alert);
  await markBenign('runbook at wiki.example.com/arc and #ops-room', '7d', 1);
  const [line] = h.fake.callsOf('chat.postMessage').filter((c) => c.args.thread_ts);
  const text = String(line!.args.text);
  expect(text).toContain('runbook at wiki.example.com/arc and #ops-room');
  expect(line!.args.blocks).toEqual([{ type: 'section', text: { type: 'mrkdwn', text, verbatim: true } }]);
});

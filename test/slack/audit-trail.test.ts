/**
 * The audit trail as an auditor reads it after an incident: each allowlist change says what it
 * changed (before and after) and belongs to its alert, so that `history audit <alert id>` tells
 * the whole story of that alert.
 */
import { afterEach, expect, it } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import { type Harness, RESPONDER, startHarness } from './harness.ts';
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
    },
  ]);
});

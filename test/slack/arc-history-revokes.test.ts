/**
 * /arc-history begins with the identity's live Revokes in force: also once the identity's list
 * holds alerts whose state has expired (they go off it), and in the answer that a Remove
 * allowlist click puts in its place.
 */
import { afterEach, expect, it } from 'vitest';
import { createEngine } from '../../src/core/engine.ts';
import { revokedAlertsKey, updateAlertState } from '../../src/slack/alert-state.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import { ARC, arcEvent } from '../support/samples.ts';
import { type Harness, RESPONDER, startHarness } from './harness.ts';
import { sampleAlert } from './sample-alert.ts';

let h: Harness;
afterEach(async () => h?.close());

it('the reply refreshed by Remove allowlist still names the Revokes in force', async () => {
  h = await startHarness();
  const engine = await createEngine({
    store: h.store,
    windowMs: 7 * 24 * 3600 * 1000,
    outbox: { add: async () => {} },
  });
  await engine.evaluate(
    [
      arcEvent('elastic-ecs', {
        appId: ARC.appId,
        ip: '198.51.100.1',
        time: new Date(Date.now() - 5 * 60_000),
        correlationId: 'c-1',
        set: { 'event.id': 'evt-1' },
      }),
    ],
    { silent: true },
  );
  await h.history.allow({ appId: ARC.appId, ip: '198.51.100.1', by: RESPONDER, reason: 'VPN' });
  const alert = sampleAlert({ id: 'alrevoked' }, { appId: ARC.appId, sourceIp: '198.51.100.2' });
  await h.chat.sink.post(alert);
  const at = Date.now() - 60_000;
  await updateAlertState(h.store, alert.id, (s) => {
    s.revoke = { status: 'done', mode: 'live', by: RESPONDER, at, finishedAt: at + 5000 };
  });
  await h.store.addMembers(revokedAlertsKey(ARC.appId), [alert.id]);

  const res = await h.command(ARC.appId, RESPONDER);
  const reply = res.json() as { blocks: Array<{ elements?: Array<{ action_id: string; value: string }> }> };
  expect(JSON.stringify(reply)).toContain('*Revoked* through');
  const button = reply.blocks
    .flatMap((b) => b.elements ?? [])
    .find((e) => e.action_id?.startsWith(ACTION_IDS.removeAllow))!;
  const { responseId } = await h.click(ACTION_IDS.removeAllow, button.value, RESPONDER, {
    ephemeral: true,
    channel: 'C0OTHER',
  });
  await h.fake.waitFor('the refreshed reply', () => h.fake.responsesTo(responseId).length === 1);
  expect(JSON.stringify(h.fake.responsesTo(responseId)[0])).toContain('*Revoked* through');
});

it('names the Revoke in force of a list that holds many alerts whose state has expired, and drops those from the list', async () => {
  h = await startHarness();
  // Alerts revoked months ago: their states expired (90 days), their ids stayed listed.
  const expired = [...Array(60)].map((_, i) => `0${String(i).padStart(23, '0')}`);
  await h.store.addMembers(revokedAlertsKey(ARC.appId), expired);
  const alert = sampleAlert(
    { id: 'ffffffffffffffffffffffff' },
    { appId: ARC.appId, sourceIp: '198.51.100.2' },
  );
  await h.chat.sink.post(alert);
  await updateAlertState(h.store, alert.id, (s) => {
    s.revoke = { status: 'done', mode: 'live', by: RESPONDER, at: Date.now(), finishedAt: Date.now() };
  });
  await h.store.addMembers(revokedAlertsKey(ARC.appId), [alert.id]);
  const res = await h.command(ARC.appId, RESPONDER);
  expect(res.text).toContain('*Revoked* through');
  expect(await h.store.members(revokedAlertsKey(ARC.appId))).toEqual([alert.id]);
});

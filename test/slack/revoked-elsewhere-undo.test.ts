/**
 * Review: an Undo on alert A takes every same-principal alert off the identity's revoked list,
 * also one whose own Revoke removed access of its own and stays in force (with its own Undo).
 * /arc-history reads that list: the Revoke in force is no longer named.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createEngine } from '../../src/core/engine.ts';
import { canUndo, loadAlertState, revokedAlertsKey, revokeInForce } from '../../src/slack/alert-state.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import type { FakeAzure } from '../support/fake-azure.ts';
import { ARC, arcEvent } from '../support/samples.ts';
import { type Harness, RESPONDER, sampleAzure, startHarness } from './harness.ts';

let h: Harness | undefined;
let azure: FakeAzure | undefined;
afterEach(async () => {
  await h?.close();
  await azure?.close();
  h = undefined;
  azure = undefined;
});
const AZURE_WAIT = 15_000;
const threadOf = (ts: string) => h!.fake.callsOf('chat.postMessage').filter((c) => c.args.thread_ts === ts);

async function detect(ips: string[]): Promise<Array<{ id: string; ts: string }>> {
  const engine = await createEngine({
    store: h!.store,
    windowMs: 7 * 24 * 3600 * 1000,
    outbox: {
      add: async (alerts) => {
        for (const alert of alerts) await h!.chat.sink.post(alert);
      },
    },
  });
  const out: Array<{ id: string; ts: string }> = [];
  for (const [i, ip] of ips.entries()) {
    const event = arcEvent('azure-activity-log-record', {
      ip,
      time: new Date(Date.now() - (ips.length - i) * 60_000),
      correlationId: `c0ffee00-0000-4000-8000-${String(i).padStart(12, '0')}`,
    });
    const [result] = await engine.evaluate([event]);
    const id = (result as { alert: { id: string } }).alert.id;
    out.push({ id, ts: (await loadAlertState(h!.store, id))!.ts! });
  }
  return out;
}

describe('Undo on one alert and the Revokes in force on the others', () => {
  it("keeps another alert's own Revoke in force on the identity's list, and /arc-history names it", async () => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    const [first, second] = await detect(['192.0.2.10', '192.0.2.11']);
    await h.click(ACTION_IDS.revoke, first!.id, RESPONDER);
    await h.fake.waitFor('first revoked', () => threadOf(first!.ts).length >= 1, AZURE_WAIT);
    // Someone re-enabled the principal in Entra ID; a second responder revokes through the second alert.
    azure.servicePrincipals.get(ARC.principalId)!.accountEnabled = true;
    await vi.waitFor(
      async () => expect((await loadAlertState(h!.store, second!.id))?.revokedElsewhere).toBeDefined(),
      {
        timeout: AZURE_WAIT,
      },
    );
    await h.click(ACTION_IDS.revoke, second!.id, RESPONDER);
    await h.fake.waitFor('second revoked', () => threadOf(second!.ts).length >= 1, AZURE_WAIT);
    const s2 = (await loadAlertState(h.store, second!.id))!;
    expect(revokeInForce(s2)).toBe(true);
    expect(canUndo(s2)).toBe(true); // it disabled the principal itself

    await h.click(ACTION_IDS.undoRevoke, first!.id, RESPONDER);
    await h.fake.waitFor('first undone', () => threadOf(first!.ts).length >= 3, AZURE_WAIT);
    await new Promise((r) => setTimeout(r, 500));
    const after = (await loadAlertState(h.store, second!.id))!;
    expect(revokeInForce(after)).toBe(true); // the second's Revoke stands, with its own Undo
    expect(await h.store.members(revokedAlertsKey(ARC.appId))).toContain(second!.id);
    const res = await h.command(ARC.appId, RESPONDER);
    expect(res.text).toContain('*Revoked* through');
  }, 60_000);
});

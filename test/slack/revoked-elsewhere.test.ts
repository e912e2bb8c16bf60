/**
 * One principal, many alerts: a live Revoke on one alert marks the same principal's other alerts
 * revoked through it, and its Undo clears the marks. Detections go through the real engine (so the
 * history's pair records name their alerts) and the Slack sink; Revoke and Undo through signed
 * Slack requests, run by the real Azure remediator against the HTTPS fake of ARM and Graph.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createEngine } from '../../src/core/engine.ts';
import { MARKS_PENDING } from '../../src/slack/actions/revoked-elsewhere.ts';
import {
  canUndo,
  loadAlertState,
  markedElsewhereKey,
  revokedAlertsKey,
  revokeInForce,
} from '../../src/slack/alert-state.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import { ROLE } from '../azure/helpers.ts';
import type { FakeAzure } from '../support/fake-azure.ts';
import { ARC, arcEvent } from '../support/samples.ts';
import { CHANNEL, type Harness, RESPONDER, sampleAzure, startHarness } from './harness.ts';

let h: Harness | undefined;
let azure: FakeAzure | undefined;
afterEach(async () => {
  await h?.close();
  await azure?.close();
  h = undefined;
  azure = undefined;
});

const AZURE_WAIT = 15_000;
/** The Azure CLI's client appid: every user who signs in with `az` calls with it. */
const AZURE_CLI = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';
const ALICE = '1a1a1a1a-0000-4000-8000-0000000000a1';
const BOB = '2b2b2b2b-0000-4000-8000-0000000000b2';

type Block = { type: string; text?: { text: string }; elements?: Array<{ action_id: string }> };
const slack = () => h!.fake;
const threads = () =>
  slack()
    .callsOf('chat.postMessage')
    .filter((c) => c.args.thread_ts);
const threadOf = (ts: string) => threads().filter((c) => c.args.thread_ts === ts);
const updatesOf = (ts: string) =>
  slack()
    .callsOf('chat.update')
    .filter((c) => c.args.ts === ts);
const blocksOf = (ts: string) => (updatesOf(ts).at(-1)?.args.blocks ?? []) as Block[];
/** Whether the alert's latest message says its identity was revoked through another alert. */
const saysRevoked = (ts: string) => JSON.stringify(blocksOf(ts)).includes('*Identity revoked* through');
const buttonsOf = (ts: string) =>
  blocksOf(ts)
    .filter((b) => b.type === 'actions')
    .flatMap((b) => b.elements ?? [])
    .map((b) => b.action_id);

/**
 * Each detection through the real engine, its alert posted by the harness's sink. Resolves with
 * the alerts' ids and message ts, in order.
 */
async function detect(
  events: Array<{ ip: string; user?: { id: string; upn: string }; appId?: string }>,
): Promise<Array<{ id: string; ts: string }>> {
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
  for (const [i, e] of events.entries()) {
    const event = arcEvent('azure-activity-log-record', {
      ip: e.ip,
      time: new Date(Date.now() - (events.length - i) * 60_000),
      correlationId: `c0ffee00-0000-4000-8000-${String(i).padStart(12, '0')}`,
      ...(e.appId ? { appId: e.appId } : {}),
      ...(e.user ? { principalType: 'User' as const, principalId: e.user.id, upn: e.user.upn } : {}),
    });
    const [result] = await engine.evaluate([event]);
    expect(result?.outcome).toBe('alerted');
    const id = (result as { alert: { id: string } }).alert.id;
    out.push({ id, ts: (await loadAlertState(h!.store, id))!.ts! });
  }
  return out;
}

/** Azure with two users of the Azure CLI: Alice holds the Arc role the evidence names; Bob enabled or not. */
async function aliceAndBob(bobEnabled: boolean): Promise<FakeAzure> {
  const fake = await sampleAzure();
  fake.assignmentsByName.clear();
  return fake
    .assign({
      name: ARC.roleAssignmentId,
      scope: ARC.roleAssignmentScope,
      roleDefinitionId: ROLE.clusterUser,
      principalId: ALICE,
      principalType: 'User',
    })
    .user({ id: ALICE, userPrincipalName: 'alice@contoso.example', displayName: 'Alice' })
    .user({
      id: BOB,
      userPrincipalName: 'bob@contoso.example',
      displayName: 'Bob',
      accountEnabled: bobEnabled,
    });
}

describe('Revoked elsewhere', () => {
  it("a live Revoke marks the same service principal's other alert, keeping both buttons; its Undo clears the mark", async () => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    const [first, second] = await detect([{ ip: '192.0.2.10' }, { ip: '192.0.2.11' }]);

    await h.click(ACTION_IDS.revoke, first!.id, RESPONDER);
    await slack().waitFor('the second alert marked', () => saysRevoked(second!.ts), AZURE_WAIT);
    await slack().waitFor('the summary in the first', () => threadOf(first!.ts).length === 2, AZURE_WAIT);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
    const text = JSON.stringify(blocksOf(second!.ts));
    expect(text).toContain('*Identity revoked* through');
    expect(text).toContain(`https://slack.com/archives/${CHANNEL}/p${first!.ts.replace('.', '')}`);
    expect(text).toContain(`by <@${RESPONDER}>`);
    expect(buttonsOf(second!.ts)).toEqual([ACTION_IDS.markBenign, ACTION_IDS.revoke]);
    // One line in the revoking alert's thread, none in each marked one (they would queue ahead of new alerts).
    expect(String(threadOf(first!.ts)[1]!.args.text)).toContain(
      'Audit: 1 other alert of the same principal now says "Identity revoked" through this one.',
    );
    expect(threadOf(second!.ts)).toEqual([]);
    expect(updatesOf(second!.ts).at(-1)?.args.text).toContain('(revoked through another alert)');
    expect(await h.store.get(markedElsewhereKey(first!.id))).toEqual([second!.id]);

    await h.click(ACTION_IDS.undoRevoke, first!.id, RESPONDER);
    await slack().waitFor('the second alert cleared', () => !saysRevoked(second!.ts), AZURE_WAIT);
    await slack().waitFor('the summary of the undo', () => threadOf(first!.ts).length === 4, AZURE_WAIT);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
    expect(JSON.stringify(blocksOf(second!.ts))).not.toContain('Identity revoked');
    expect(buttonsOf(second!.ts)).toEqual([ACTION_IDS.markBenign, ACTION_IDS.revoke]);
    expect(String(threadOf(first!.ts)[3]!.args.text)).toContain(
      `<@${RESPONDER}>'s Undo took "Identity revoked" off 1 other alert of the same principal.`,
    );
    expect(threadOf(second!.ts)).toEqual([]);
    expect((await loadAlertState(h.store, second!.id))?.revokedElsewhere).toBeUndefined();
    // The list goes once every alert on it is told.
    await vi.waitFor(async () => expect(await h!.store.get(markedElsewhereKey(first!.id))).toBeUndefined());
  });

  it('a restart during the marking: the stop leaves the rest pending, and the start marks it', async () => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    const [first, second, third] = await detect([
      { ip: '192.0.2.40' },
      { ip: '192.0.2.41' },
      { ip: '192.0.2.42' },
    ]);
    await h.click(ACTION_IDS.revoke, first!.id, RESPONDER);
    // The first mark is shown; the next waits its turn (1.3 s) when the service stops.
    await slack().waitFor('one marked', () => saysRevoked(second!.ts) || saysRevoked(third!.ts), AZURE_WAIT);
    await h.chat.stop!();
    const one = saysRevoked(second!.ts) ? third! : second!;
    expect(saysRevoked(one.ts)).toBe(false);
    expect(await h.store.members(MARKS_PENDING)).toEqual([first!.id]);
    await h.chat.start!();
    await slack().waitFor('both marked', () => saysRevoked(one.ts), AZURE_WAIT);
    await slack().waitFor('the summary', () => threadOf(first!.ts).length === 2, AZURE_WAIT);
    expect(String(threadOf(first!.ts)[1]!.args.text)).toContain(
      'Audit: 2 other alerts of the same principal',
    );
    await vi.waitFor(async () => expect(await h!.store.members(MARKS_PENDING)).toEqual([]));
  });

  it('an Undo also clears the marks of the alerts whose Revoke it undid through them', async () => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    const [first, second, third] = await detect([
      { ip: '192.0.2.10' },
      { ip: '192.0.2.11' },
      { ip: '192.0.2.12' },
    ]);
    await h.click(ACTION_IDS.revoke, first!.id, RESPONDER);
    await slack().waitFor('the third marked', () => saysRevoked(third!.ts), AZURE_WAIT);
    await slack().waitFor('the second marked', () => saysRevoked(second!.ts), AZURE_WAIT);
    // The third alert's own Revoke finds the access gone; the second is marked through it now.
    await h.click(ACTION_IDS.revoke, third!.id, RESPONDER);
    await vi.waitFor(
      async () =>
        expect((await loadAlertState(h!.store, second!.id))?.revokedElsewhere?.alertId).toBe(third!.id),
      { timeout: AZURE_WAIT },
    );

    // The Undo on the first undoes the third's Revoke too (it removed nothing of its own).
    await h.click(ACTION_IDS.undoRevoke, first!.id, RESPONDER);
    await vi.waitFor(
      async () => expect((await loadAlertState(h!.store, second!.id))?.revokedElsewhere).toBeUndefined(),
      { timeout: AZURE_WAIT },
    );
    await slack().waitFor('the second cleared', () => !saysRevoked(second!.ts), AZURE_WAIT);
    expect(JSON.stringify(blocksOf(second!.ts))).not.toContain('Identity revoked');
  });

  it("a Revoke pressed on a marked alert runs as its own: the alert then shows its own run's text", async () => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    const [first, second] = await detect([{ ip: '192.0.2.10' }, { ip: '192.0.2.11' }]);
    await h.click(ACTION_IDS.revoke, first!.id, RESPONDER);
    await slack().waitFor('the second alert marked', () => saysRevoked(second!.ts), AZURE_WAIT);

    await h.click(ACTION_IDS.revoke, second!.id, RESPONDER);
    await slack().waitFor('its own revoke', () => threadOf(second!.ts).length === 1, AZURE_WAIT);
    expect(String(threadOf(second!.ts)[0]!.args.text)).toContain('revoked the access');
    const text = JSON.stringify(blocksOf(second!.ts));
    expect(text).toContain('Revoked* by');
    expect(text).not.toContain('Identity revoked');
  });

  it("revoking one user of the shared Azure CLI appid leaves another user's alert untouched", async () => {
    azure = await aliceAndBob(true);
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    const alice = { id: ALICE, upn: 'alice@contoso.example' };
    // Bob's object id as another token may spell it: upper case, without dashes.
    const bob = { id: BOB.replaceAll('-', '').toUpperCase(), upn: 'bob@contoso.example' };
    const [aliceFirst, bobs, aliceAgain] = await detect([
      { ip: '192.0.2.20', user: alice, appId: AZURE_CLI },
      { ip: '192.0.2.21', user: bob, appId: AZURE_CLI },
      { ip: '192.0.2.22', user: { ...alice, id: ALICE.toUpperCase() }, appId: AZURE_CLI },
    ]);
    const bobUpdates = updatesOf(bobs!.ts).length;

    await h.click(ACTION_IDS.revoke, aliceFirst!.id, RESPONDER);
    await slack().waitFor('the revoke', () => threadOf(aliceFirst!.ts).length === 1, AZURE_WAIT);
    // The marking of the other alerts ends with its line in the revoking alert's thread.
    await slack().waitFor('the marking', () => threadOf(aliceFirst!.ts).length === 2, AZURE_WAIT);
    expect(azure.users.get(ALICE)?.accountEnabled).toBe(false);
    expect(azure.users.get(BOB)?.accountEnabled).toBe(true);
    expect((await loadAlertState(h.store, aliceAgain!.id))?.revokedElsewhere).toMatchObject({
      alertId: aliceFirst!.id,
    });
    expect(saysRevoked(aliceAgain!.ts)).toBe(true);
    expect((await loadAlertState(h.store, bobs!.id))?.revokedElsewhere).toBeUndefined();
    expect(updatesOf(bobs!.ts)).toHaveLength(bobUpdates);
    expect(threadOf(bobs!.ts)).toEqual([]);
  });

  it("an Undo for one user of the shared Azure CLI appid does not mark another user's Revoke undone", async () => {
    // Bob was disabled already (by a Revoke elsewhere, say): his alert's Revoke removes nothing of its own.
    azure = await aliceAndBob(false);
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    const [aliceAlert, bobAlert] = await detect([
      { ip: '192.0.2.30', user: { id: ALICE, upn: 'alice@contoso.example' }, appId: AZURE_CLI },
      { ip: '192.0.2.31', user: { id: BOB, upn: 'bob@contoso.example' }, appId: AZURE_CLI },
    ]);
    await h.click(ACTION_IDS.revoke, bobAlert!.id, RESPONDER);
    await slack().waitFor("Bob's revoke", () => threadOf(bobAlert!.ts).length === 1, AZURE_WAIT);
    expect((await loadAlertState(h.store, bobAlert!.id))?.revoke?.status).toBe('done');
    await h.click(ACTION_IDS.revoke, aliceAlert!.id, RESPONDER);
    await slack().waitFor("Alice's revoke", () => threadOf(aliceAlert!.ts).length === 1, AZURE_WAIT);
    expect(azure.users.get(ALICE)?.accountEnabled).toBe(false);

    await h.click(ACTION_IDS.undoRevoke, aliceAlert!.id, RESPONDER);
    await slack().waitFor("Alice's undo", () => threadOf(aliceAlert!.ts).length === 2, AZURE_WAIT);
    await h.chat.stop!();
    expect(azure.users.get(ALICE)?.accountEnabled).toBe(true);
    expect(azure.users.get(BOB)?.accountEnabled).toBe(false);
    // Bob's alert still says revoked, and tells nothing of Alice's Undo.
    expect((await loadAlertState(h.store, bobAlert!.id))?.undo).toBeUndefined();
    expect(threadOf(bobAlert!.ts)).toHaveLength(1);
  });

  it('a dry-run Revoke marks nothing', async () => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'dry-run' } });
    const [first, second] = await detect([{ ip: '192.0.2.10' }, { ip: '192.0.2.11' }]);
    const secondUpdates = updatesOf(second!.ts).length;

    await h.click(ACTION_IDS.revoke, first!.id, RESPONDER);
    await slack().waitFor('the dry-run', () => threadOf(first!.ts).length === 1, AZURE_WAIT);
    await h.chat.stop!();
    expect(JSON.stringify(blocksOf(first!.ts))).toContain('Dry-run');
    expect((await loadAlertState(h.store, second!.id))?.revokedElsewhere).toBeUndefined();
    expect(updatesOf(second!.ts)).toHaveLength(secondUpdates);
    expect(threadOf(second!.ts)).toEqual([]);
    expect(await h.store.get(markedElsewhereKey(first!.id))).toBeUndefined();
  });
});

describe('Undo on one alert and the Revokes in force on the others', () => {
  it("keeps another alert's own Revoke in force on the identity's list, and /arc-history names it", async () => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    const [first, second] = await detect([{ ip: '192.0.2.10' }, { ip: '192.0.2.11' }]);
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
    // The Undo ended, and the marks of both alerts are in line (nothing left pending).
    await vi.waitFor(
      async () => {
        expect((await loadAlertState(h!.store, first!.id))?.undo?.status).toBe('done');
        expect(await h!.store.members(MARKS_PENDING)).toEqual([]);
      },
      { timeout: AZURE_WAIT },
    );
    const after = (await loadAlertState(h.store, second!.id))!;
    expect(revokeInForce(after)).toBe(true); // the second's Revoke stands, with its own Undo
    expect(await h.store.members(revokedAlertsKey(ARC.appId))).toContain(second!.id);
    const res = await h.command(ARC.appId, RESPONDER);
    expect(res.text).toContain('*Revoked* through');
  }, 60_000);
});

/**
 * The enrichment budget: the alert goes out after at most `lookupBudgetMs` without what has not
 * arrived, and is updated when it does. The real Azure enricher and remediator run against the
 * local HTTPS fake of ARM, Graph and the token endpoint, made slow or failing through its scripts.
 */
import { afterEach, expect, it } from 'vitest';
import { loadAlertState } from '../../src/slack/alert-state.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import type { FakeAzure } from '../support/fake-azure.ts';
import { ARC } from '../support/samples.ts';
import { type Harness, sampleAzure, startHarness } from './harness.ts';
import { sampleAlert } from './sample-alert.ts';

let h: Harness | undefined;
let azure: FakeAzure | undefined;
afterEach(async () => {
  await h?.close();
  await azure?.close();
  h = undefined;
  azure = undefined;
});

const alert = sampleAlert();
/** Far longer than the budget below, so the lookup cannot arrive in time. */
const SLOW_MS = 400;
const BUDGET_MS = 20;
/** Deadline for effects that go through ARM and Graph over HTTPS (not a timing assertion). */
const AZURE_WAIT = 15_000;

const postedBlocks = () => JSON.stringify(h!.fake.callsOf('chat.postMessage')[0]?.args.blocks);
const updates = () => h!.fake.callsOf('chat.update').map((c) => JSON.stringify(c.args.blocks));
const revokeConfirm = (blocks: unknown) =>
  (
    blocks as Array<{
      type: string;
      elements?: Array<{ action_id: string; confirm?: { text: { text: string } } }>;
    }>
  )
    .flatMap((b) => b.elements ?? [])
    .find((e) => e.action_id === ACTION_IDS.revoke)?.confirm?.text.text;

it('posts without enrichment that is slower than the budget, then updates the alert when it arrives', async () => {
  azure = await sampleAzure();
  // Both reads of the service principal: the enricher's, and the Revoke plan's check of the caller.
  azure.delay('graph', 'servicePrincipals', SLOW_MS, 2);
  h = await startHarness({
    azure: { fake: azure, mode: 'dry-run', enrich: true },
    tuning: { lookupBudgetMs: BUDGET_MS },
  });
  await h.chat.sink.post(alert);

  expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
  expect(postedBlocks()).not.toContain('ci-deployer');
  expect(postedBlocks()).toContain('still running');
  expect((await loadAlertState(h.store, alert.id))?.enrichmentPending).toBe(true);

  await h.fake.waitFor(
    'the late enrichment',
    () => updates().some((u) => u.includes('ci-deployer')),
    AZURE_WAIT,
  );
  const updated = updates().find((u) => u.includes('ci-deployer'))!;
  expect(updated).toContain('westeurope');
  expect(updated).toContain('k3s');
  expect(updated).toContain('Service principal created 2026-03-10T08:00:00Z');
  expect(updated).not.toContain('still running');
  const state = await loadAlertState(h.store, alert.id);
  expect(state?.enrichment?.principalDisplayName).toBe('ci-deployer');
  expect(state?.enrichmentPending).toBeUndefined();
  // Still one alert: the late enrichment updated it.
  expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
});

it('posts with the general Revoke confirmation when planning is slow, then states the plan', async () => {
  azure = await sampleAzure({ owner: true });
  azure.delay('arm', /roleAssignments$/i, SLOW_MS);
  h = await startHarness({ azure: { fake: azure, mode: 'live' }, tuning: { lookupBudgetMs: BUDGET_MS } });
  await h.chat.sink.post(alert);

  const first = revokeConfirm(h.fake.callsOf('chat.postMessage')[0]!.args.blocks);
  expect(first).toContain('Removes the Arc role assignment(s) that granted this access');

  await h.fake.waitFor(
    'the late plan',
    () =>
      h!.fake
        .callsOf('chat.update')
        .some((c) => revokeConfirm(c.args.blocks)?.includes('Other access (1) stays')),
    AZURE_WAIT,
  );
  const state = await loadAlertState(h.store, alert.id);
  expect(state?.confirmText).toContain('Other access (1) stays');
  expect(azure.mutations()).toEqual([]);
});

it('never holds an alert back for a failed lookup: it names the failure', async () => {
  azure = await sampleAzure();
  azure.deny('graph', 'GET', 'servicePrincipals');
  h = await startHarness({ azure: { fake: azure, mode: 'dry-run', enrich: true } });
  await h.chat.sink.post(alert);
  // Either in the post or in the update that follows it, the failure is shown with the rest.
  const shown = () =>
    [postedBlocks(), ...updates()].find((t) => t.includes('Lookups that failed') && t.includes('westeurope'));
  await h.fake.waitFor('the enrichment with its failure', () => shown() !== undefined, AZURE_WAIT);
  expect(shown()).toContain('principal: ');
  expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
});

it('gives up a lookup that never finishes and says so in the alert', async () => {
  azure = await sampleAzure();
  azure.delay('graph', 'servicePrincipals', 60_000, 2);
  h = await startHarness({
    azure: { fake: azure, mode: 'dry-run', enrich: true },
    tuning: { lookupBudgetMs: BUDGET_MS, lateLookupTimeoutMs: 400 },
  });
  await h.chat.sink.post(alert);
  expect(postedBlocks()).toContain(ARC.appId);
  await h.fake.waitFor(
    'the given-up lookup',
    () => updates().some((u) => u.includes('not finished in time')),
    AZURE_WAIT,
  );
  const updated = updates().find((u) => u.includes('not finished in time'))!;
  expect(updated).toContain('principal: not finished in time');
  expect(updated).not.toContain('still running');
});

it('says in the Revoke dialog that a principal disabled already is only checked, also when the enrichment is late', async () => {
  const disabled = (fake: FakeAzure) =>
    fake.servicePrincipal({
      id: ARC.principalId,
      appId: ARC.appId,
      displayName: 'ci-deployer',
      appCreatedDateTime: '2026-03-10T08:00:00Z',
      accountEnabled: false,
    });
  const ALREADY = '(disabled already as the alert was posted: the run checks)';
  azure = disabled(await sampleAzure());
  h = await startHarness({ azure: { fake: azure, mode: 'live', enrich: true } });
  await h.chat.sink.post(alert);
  expect(revokeConfirm(h.fake.callsOf('chat.postMessage')[0]!.args.blocks)).toContain(ALREADY);
  await h.close();
  await azure.close();

  // The enrichment (its cluster read) late, after the plan: the dialog is told once it arrives.
  azure = disabled(await sampleAzure());
  azure.delay('arm', /connectedClusters\/[^/]+$/i, SLOW_MS);
  h = await startHarness({
    azure: { fake: azure, mode: 'live', enrich: true },
    tuning: { lookupBudgetMs: BUDGET_MS },
  });
  const later = sampleAlert({ id: 'b2c3d4e5f6a7b8c9d0e1f2a3' });
  await h.chat.sink.post(later);
  expect(revokeConfirm(h.fake.callsOf('chat.postMessage')[0]!.args.blocks)).not.toContain(ALREADY);
  await h.fake.waitFor(
    'the late enrichment in the dialog',
    () => h!.fake.callsOf('chat.update').some((c) => revokeConfirm(c.args.blocks)?.includes(ALREADY)),
    AZURE_WAIT,
  );
  expect((await loadAlertState(h.store, later.id))?.confirmText).toContain(ALREADY);
  expect(azure.mutations()).toEqual([]);
});

/**
 * Revoke offered again: after a successful Undo (a new round, through the real Azure remediator
 * against the HTTPS fake of ARM and Graph), and after a run that a stopped process left marked
 * running (interrupted: found at start, shown as failed, its button offered again).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { evidencePlanRemediator } from '../../src/core/evidence-plan.ts';
import {
  ALERT_STATE_TTL_MS,
  alertStateKey,
  loadAlertState,
  REMEDIATION_LOCK_TTL_MS,
  revokedAlertsKey,
  revokeLockKey,
  type SlackAlertState,
  updateAlertState,
} from '../../src/slack/alert-state.ts';
import { buildAlertMessage } from '../../src/slack/blocks/alert.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import { RUNS_IN_PROGRESS } from '../../src/slack/stale-runs.ts';
import { ROLE } from '../azure/helpers.ts';
import type { FakeAzure } from '../support/fake-azure.ts';
import { buttonClick, payloadBody } from '../support/fake-slack.ts';
import { ARC } from '../support/samples.ts';
import { EVIDENCE_ASSIGNMENT_ID, type Harness, RESPONDER, sampleAzure, startHarness } from './harness.ts';
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
const AZURE_WAIT = 15_000;

type Button = { action_id: string; text: { text: string } };
const slack = () => h!.fake;
const threads = () =>
  slack()
    .callsOf('chat.postMessage')
    .filter((c) => c.args.thread_ts);
const lastUpdate = () => slack().callsOf('chat.update').at(-1)?.args.blocks as unknown[];
const lastUpdateText = () => JSON.stringify(lastUpdate());
const buttonIds = () =>
  (lastUpdate() as Array<{ type: string; elements?: Button[] }>)
    .filter((b) => b.type === 'actions')
    .flatMap((b) => b.elements ?? [])
    .map((b) => b.action_id);
const auditOf = async (action: string) =>
  (await listAudit(h!.store, alert.id)).filter((e) => e.action === action).map((e) => e.result);

/** The sample alert posted, remediated by the real Azure remediator in `mode` against the fake. */
async function posted(mode: 'dry-run' | 'live') {
  const fake = await sampleAzure();
  const harness = await startHarness({ azure: { fake, mode } });
  [azure, h] = [fake, harness];
  await harness.chat.sink.post(alert);
  return { azure: fake, h: harness };
}

async function clickAndWait(actionId: string, thread: number) {
  await h!.click(actionId, alert.id, RESPONDER);
  await slack().waitFor(`thread post ${thread}`, () => threads().length === thread, AZURE_WAIT);
}

describe('Revoke after Undo', () => {
  it('offers Revoke again after a successful Undo, and the new round revokes and undoes again', async () => {
    const { azure } = await posted('live');

    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(buttonIds()).toEqual([ACTION_IDS.markBenign, ACTION_IDS.undoRevoke]);
    await clickAndWait(ACTION_IDS.undoRevoke, 2);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
    // Undone: Revoke is offered again (it was hidden for good before).
    expect(buttonIds()).toEqual([ACTION_IDS.markBenign, ACTION_IDS.revoke]);

    // Revoke again, within the 15 minutes the first run's lock would have lasted.
    const deletesBefore = azure.calls('arm', 'DELETE').length;
    await clickAndWait(ACTION_IDS.revoke, 3);
    expect(String(threads()[2]!.args.text)).toContain('revoked the access');
    // The re-created assignment (a new name) is removed and the principal disabled again.
    const deletes = azure.calls('arm', 'DELETE').map((r) => r.path);
    expect(deletes).toHaveLength(deletesBefore + 1);
    expect(deletes.at(-1)).not.toBe(EVIDENCE_ASSIGNMENT_ID);
    expect(deletes.at(-1)).toMatch(
      new RegExp(`^${ARC.roleAssignmentScope}/providers/Microsoft.Authorization/roleAssignments/`),
    );
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
    const left = [...azure.assignmentsByName.values()].filter((a) => a.principalId === ARC.principalId);
    expect(left).toEqual([]);
    // The message shows the new round, keeps the undone one short, and offers Undo again.
    expect(lastUpdateText()).toContain('Earlier rounds');
    expect(lastUpdateText()).toContain(`undone by <@${RESPONDER}>`);
    expect(lastUpdateText()).toContain('Revoked* by');
    expect(buttonIds()).toEqual([ACTION_IDS.markBenign, ACTION_IDS.undoRevoke]);

    // And the second round can be undone too (its lock was released with the new round).
    await clickAndWait(ACTION_IDS.undoRevoke, 4);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
    expect(buttonIds()).toEqual([ACTION_IDS.markBenign, ACTION_IDS.revoke]);
    expect(await auditOf('revoke')).toEqual(['ok', 'ok']);
    expect(await auditOf('undo')).toEqual(['ok', 'ok']);
  });

  it("an Undo that left a PIM activation to PIM says so on the identity's other alerts it restores", async () => {
    azure = await sampleAzure();
    azure.assignmentsByName.get(ARC.roleAssignmentId.toLowerCase())!.pim = {
      assignmentType: 'Activated',
      endDateTime: new Date(Date.now() + 4 * 3_600_000).toISOString(),
    };
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    const other = sampleAlert({ id: 'other-alert-of-the-identity' }, { sourceIp: '192.0.2.77' });
    await h.chat.sink.post(alert);
    await h.chat.sink.post(other);
    const otherTs = '1700000000.000002';
    await clickAndWait(ACTION_IDS.revoke, 1);
    await h.click(ACTION_IDS.revoke, other.id, RESPONDER);
    await slack().waitFor('the other thread', () => threads().length === 2, AZURE_WAIT);
    await clickAndWait(ACTION_IDS.undoRevoke, 3);
    await slack().waitFor('the other alert told', () => threads().length === 4, AZURE_WAIT);
    const leftToPim = 'but for a role assignment that PIM made for a set time, left to PIM';
    expect(String(threads()[2]!.args.text)).toContain('Leave "');
    expect(String(threads()[3]!.args.text)).toContain(
      `its access is back, ${leftToPim}, and Revoke is offered again here`,
    );
    const otherBlocks = slack()
      .callsOf('chat.update')
      .filter((c) => c.args.ts === otherTs)
      .at(-1)?.args.blocks;
    expect(JSON.stringify(otherBlocks)).toContain(
      `the access removed above is back, ${leftToPim}, and the principal enabled`,
    );
    // Not made permanent, and the principal enabled again.
    expect(azure.assignmentsByName.size).toBe(0);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
  });

  it('keeps the PIM end the alert read when the schedules cannot be read at the click: Undo leaves it to PIM', async () => {
    azure = await sampleAzure();
    azure.assignmentsByName.get(ARC.roleAssignmentId.toLowerCase())!.pim = {
      assignmentType: 'Activated',
      endDateTime: new Date(Date.now() + 4 * 3_600_000).toISOString(),
    };
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    await h.chat.sink.post(alert);
    expect((await loadAlertState(h.store, alert.id))?.timeBoundSeen).toEqual([
      expect.objectContaining({ assignmentId: EVIDENCE_ASSIGNMENT_ID, activated: true }),
    ]);
    // The read permission taken away between the alert and the click.
    azure.deny(
      'arm',
      'GET',
      /roleAssignmentScheduleInstances/i,
      'Microsoft.Authorization/roleAssignmentScheduleInstances/read',
    );
    await clickAndWait(ACTION_IDS.revoke, 1);
    const run = (await loadAlertState(h.store, alert.id))!.revoke!;
    expect(run.plan!.warnings.join('\n')).toContain(
      'the end times read as the alert was posted are kept (1), but Undo would re-create without its end one made through PIM since',
    );
    expect(run.plan!.steps[0]!.description).toContain('a PIM activation until');
    expect(azure.assignmentsByName.size).toBe(0);
    await clickAndWait(ACTION_IDS.undoRevoke, 2);
    expect(String(threads()[1]!.args.text)).toContain('Leave "');
    // Not made permanent, and the principal enabled again.
    expect(azure.assignmentsByName.size).toBe(0);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
  });

  it("an Undo on one alert restores the identity's other revoked alerts: they say so and offer Revoke again", async () => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    const other = sampleAlert({ id: 'other-alert-of-the-identity' }, { sourceIp: '192.0.2.77' });
    await h.chat.sink.post(alert);
    await h.chat.sink.post(other);
    const otherTs = '1700000000.000002';
    const blocksOf = (ts: string) =>
      slack()
        .callsOf('chat.update')
        .filter((c) => c.args.ts === ts)
        .at(-1)?.args.blocks as Array<{ type: string; elements?: Button[] }>;
    const buttonsOf = (ts: string) =>
      blocksOf(ts)
        .filter((b) => b.type === 'actions')
        .flatMap((b) => b.elements ?? [])
        .map((b) => b.action_id);

    await clickAndWait(ACTION_IDS.revoke, 1);
    // A third alert of the identity whose Revoke removed access of its own (its run copied from
    // the first): the Undo elsewhere must leave it, with its own Undo.
    const own = sampleAlert({ id: 'alert-that-removed-its-own' }, { sourceIp: '192.0.2.78' });
    await h.chat.sink.post(own);
    const firstRun = (await loadAlertState(h.store, alert.id))!.revoke!;
    await updateAlertState(h.store, own.id, (s) => {
      s.revoke = firstRun;
    });
    await h.store.addMembers(revokedAlertsKey(ARC.appId), [own.id]);
    // The other alert's Revoke finds the access gone: revoked, nothing left to undo there.
    await h.click(ACTION_IDS.revoke, other.id, RESPONDER);
    await slack().waitFor('the other thread', () => threads().length === 2, AZURE_WAIT);
    expect(JSON.stringify(blocksOf(otherTs))).toContain('Revoked* by');
    expect(buttonsOf(otherTs)).not.toContain(ACTION_IDS.revoke);

    await clickAndWait(ACTION_IDS.undoRevoke, 3);
    await slack().waitFor('the other alert told', () => threads().length === 4, AZURE_WAIT);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
    const told = threads()[3]!.args;
    expect(told).toMatchObject({ thread_ts: otherTs });
    expect(String(told.text)).toContain(`undid the revoke through alert \`${alert.id}\``);
    expect(JSON.stringify(blocksOf(otherTs))).toContain(`through alert \`${alert.id}\` of the same identity`);
    expect(buttonsOf(otherTs)).toEqual([ACTION_IDS.markBenign, ACTION_IDS.revoke]);
    const untouched = await loadAlertState(h.store, own.id);
    expect(untouched?.undo).toBeUndefined();
    expect(untouched?.revoke?.status).toBe('done');

    // Revoke on the other alert now runs (a new round there) and removes the access again.
    await h.click(ACTION_IDS.revoke, other.id, RESPONDER);
    await slack().waitFor('the new round', () => threads().length === 5, AZURE_WAIT);
    expect(String(threads()[4]!.args.text)).toContain('revoked the access');
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
  });

  it('still refuses Revoke while a live revoke is in force', async () => {
    const { azure, h } = await posted('live');
    await clickAndWait(ACTION_IDS.revoke, 1);
    const mutations = azure.mutations().length;
    const { responseId } = await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await slack().waitFor('the note', () => slack().responsesTo(responseId).length === 1);
    expect(String(slack().responsesTo(responseId)[0]!.text)).toContain('Already revoked');
    expect(azure.mutations()).toHaveLength(mutations);
  });

  it('after an Undo that ran partway, a Revoke says what is back and to finish the Undo, not "Already revoked"', async () => {
    const { azure, h } = await posted('live');
    await clickAndWait(ACTION_IDS.revoke, 1);
    // The assignment is re-created; re-enabling the principal is refused.
    azure.fail({ service: 'graph', method: 'PATCH', status: 403, times: 10 });
    await clickAndWait(ACTION_IDS.undoRevoke, 2);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
    const mutations = azure.mutations().length;
    const { responseId } = await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await slack().waitFor('the note', () => slack().responsesTo(responseId).length === 1);
    const note = String(slack().responsesTo(responseId)[0]!.text);
    expect(note).toContain(`Undo by <@${RESPONDER}> ran partway: it restored 1 of 2 steps`);
    expect(note).toContain('Press *Undo* again to finish restoring');
    expect(azure.mutations()).toHaveLength(mutations);

    // Finishing the Undo offers Revoke again.
    azure.clearRules();
    await clickAndWait(ACTION_IDS.undoRevoke, 3);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
    expect(buttonIds()).toEqual([ACTION_IDS.markBenign, ACTION_IDS.revoke]);
  });
});

describe('Revoke retried after a failed run', () => {
  const CLUSTER_ASSIGNMENT = 'aaaaaaaa-0000-4000-8000-000000000001';

  /** Live, with a second Arc Cluster User assignment of the principal, at the cluster. */
  async function withClusterAssignment() {
    const { azure } = await posted('live');
    return azure.assign({
      name: CLUSTER_ASSIGNMENT,
      scope: ARC.clusterId,
      roleDefinitionId: ROLE.clusterUser,
      principalId: ARC.principalId,
      principalType: 'ServicePrincipal',
    });
  }
  const atCluster = () =>
    [...azure!.assignmentsByName.values()].filter(
      (a) => a.principalId === ARC.principalId && a.scope === ARC.clusterId,
    );

  it.each([
    ['', false],
    [', also when the store holds that Undo without `of` (the run it reversed)', true],
  ])(
    'a failed Undo of the failed run leaves the principal disabled, and a retry of the Revoke finishes the run%s',
    async (_, noOf) => {
      const azure = await withClusterAssignment();
      // Removes the cluster's assignment and disables the principal; the evidence's is refused.
      azure.deny('arm', 'DELETE', ARC.roleAssignmentId);
      await clickAndWait(ACTION_IDS.revoke, 1);
      expect(lastUpdateText()).toContain('Revoke failed');
      expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
      // The Undo cannot re-create the assignment: it does not enable the principal either.
      azure.deny('arm', 'PUT', 'roleAssignments');
      await clickAndWait(ACTION_IDS.undoRevoke, 2);
      expect(lastUpdateText()).toContain('Undo failed');
      expect(lastUpdateText()).toContain('not enabled again: 1 removed assignment is not back');
      expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
      if (noOf) {
        const stored = (await h!.store.get<SlackAlertState>(alertStateKey(alert.id)))!;
        expect(stored.undo?.of).toBe(stored.revoke?.at);
        delete stored.undo!.of;
        await h!.store.set(alertStateKey(alert.id), stored, ALERT_STATE_TTL_MS);
      }

      azure.clearScripts();
      await clickAndWait(ACTION_IDS.revoke, 3);
      expect(lastUpdateText()).toContain('Revoked');
      expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
      expect(azure.calls('graph', 'PATCH').map((r) => r.body)).toEqual([{ accountEnabled: false }]);
      expect(atCluster()).toEqual([]);
    },
  );

  it("a retry after a failed removal shows the evidence's assignment as the earlier attempt's removal, not also as found gone", async () => {
    const azure = await withClusterAssignment();
    azure.deny('arm', 'DELETE', CLUSTER_ASSIGNMENT);
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(lastUpdateText()).toContain('Revoke failed');
    expect(lastUpdateText()).toContain('(its removal failed)');
    azure.clearScripts();
    await clickAndWait(ACTION_IDS.revoke, 2);
    expect(lastUpdateText()).toContain('Revoked');
    expect(lastUpdateText()).toContain(`earlier attempt: removed`);
    expect(lastUpdateText()).not.toContain('is already gone (ARM has no');
    expect(lastUpdateText()).not.toContain('its removal failed');
    expect(atCluster()).toEqual([]);
  });

  it('an Undo pressed again after one that failed partway makes again only what the first left undone', async () => {
    const azure = await withClusterAssignment();
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(lastUpdateText()).toContain('Revoked');
    // The cluster's assignment cannot be re-created the first time: the other one is.
    azure.deny('arm', 'PUT', ARC.clusterId);
    await clickAndWait(ACTION_IDS.undoRevoke, 2);
    expect(lastUpdateText()).toContain('Undo failed');
    const firstPuts = azure
      .calls('arm', 'PUT')
      .filter((r) => r.status === 201)
      .map((r) => r.path);
    expect(firstPuts).toHaveLength(1);
    azure.clearScripts();
    azure.clearRequests();
    await clickAndWait(ACTION_IDS.undoRevoke, 3);
    // Only the cluster's: the one re-created before is not made again under another name.
    expect(azure.calls('arm', 'PUT').map((r) => r.path)).toEqual([
      expect.stringMatching(
        new RegExp(`^${ARC.clusterId}/providers/Microsoft.Authorization/roleAssignments/`, 'i'),
      ),
    ]);
    expect(lastUpdateText()).toContain('earlier attempt: re-created');
    expect(lastUpdateText()).not.toContain('exists again already');
    // Its audit record says which Undo it retried.
    const undos = (await listAudit(h!.store, alert.id)).filter((e) => e.action === 'azure.undo');
    expect(undos.map((e) => e.result)).toEqual(['failed', 'ok']);
    const detail = (i: number) => undos[i]!.detail as { steps: unknown[]; retryOf?: unknown[] };
    expect(detail(1).retryOf).toEqual(detail(0).steps);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
    expect(atCluster()).toHaveLength(1);
  });

  it('keeps a removal whose answer was lost in the retry, so that Undo re-creates it', async () => {
    const azure = await withClusterAssignment();
    // The cluster's assignment: found by the check, removed by a DELETE answered 500 every time,
    // and the read that would settle it refused.
    azure.fail({
      service: 'arm',
      method: 'GET',
      path: CLUSTER_ASSIGNMENT,
      status: 200,
      passThrough: true,
    });
    azure.deny('arm', 'GET', CLUSTER_ASSIGNMENT);
    azure.fail({
      service: 'arm',
      method: 'DELETE',
      path: CLUSTER_ASSIGNMENT,
      status: 500,
      applied: true,
      times: Number.POSITIVE_INFINITY,
    });
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(lastUpdateText()).toContain('Revoke failed');
    expect(atCluster()).toEqual([]);
    const first = (await loadAlertState(h!.store, alert.id))!.revoke!.result!.steps;
    const removal = `${ARC.clusterId}/providers/Microsoft.Authorization/roleAssignments/${CLUSTER_ASSIGNMENT}`;
    expect(first.filter((s) => s.maybeApplied).map((s) => s.stepId)).toEqual([
      `remove-assignment:${removal.toLowerCase()}`,
    ]);

    // The retry finds it gone: this service's removal, kept in the run.
    azure.clearScripts();
    await clickAndWait(ACTION_IDS.revoke, 2);
    expect(lastUpdateText()).toContain('Revoked');
    expect(lastUpdateText()).toContain(CLUSTER_ASSIGNMENT);

    await clickAndWait(ACTION_IDS.undoRevoke, 3);
    expect(atCluster()).toHaveLength(1);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
  });

  it('an Undo retried after one of an earlier release that enabled the principal before an assignment it could not re-create does not say the account stays disabled', async () => {
    const { azure } = await posted('live');
    await clickAndWait(ACTION_IDS.revoke, 1);
    // Earlier releases undid the steps in reverse: the principal enabled first, then the
    // assignment, refused here. Stored as they wrote it, with the principal enabled in Azure.
    const stored = (await h!.store.get<SlackAlertState>(alertStateKey(alert.id)))!;
    const [removal, disable] = stored.revoke!.result!.steps.map((s) => s.stepId);
    const at = Date.now();
    stored.undo = {
      status: 'failed',
      mode: 'live',
      by: RESPONDER,
      at,
      of: stored.revoke!.at,
      finishedAt: at,
      result: {
        mode: 'live',
        ok: false,
        steps: [
          { stepId: disable!, status: 'done', detail: `re-enabled ${ARC.principalId}` },
          { stepId: removal!, status: 'failed', detail: 'ARM refused the request (403 AuthorizationFailed)' },
        ],
      },
    };
    await h!.store.set(alertStateKey(alert.id), stored, ALERT_STATE_TTL_MS);
    azure.servicePrincipals.get(ARC.principalId)!.accountEnabled = true;

    azure.deny('arm', 'PUT', 'roleAssignments');
    await clickAndWait(ACTION_IDS.undoRevoke, 2);
    expect(lastUpdateText()).toContain('Undo failed');
    expect(lastUpdateText()).not.toContain('stays disabled');
    expect(lastUpdateText()).toContain('enabled again by an earlier Undo');
    expect(azure.calls('graph', 'PATCH').map((r) => r.body)).toEqual([{ accountEnabled: false }]);
    expect(buttonIds()).toEqual([ACTION_IDS.markBenign, ACTION_IDS.undoRevoke]);

    // Pressed once more with the assignment re-created: what it said then of the assignment not
    // back is not carried into an Undo that is done.
    azure.clearScripts();
    await clickAndWait(ACTION_IDS.undoRevoke, 3);
    expect(lastUpdateText()).toContain('Undone');
    expect(lastUpdateText()).toContain('earlier attempt: enabled again by an earlier Undo');
    expect(lastUpdateText()).not.toContain('not back');
  });
});

describe('Revoke in dry-run', () => {
  it("does not list the alert among the identity's revoked alerts", async () => {
    const { h } = await posted('dry-run');
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(lastUpdateText()).toContain('Dry-run');
    expect(await h.store.members(revokedAlertsKey(ARC.appId))).toEqual([]);
  });
});

describe('a run left marked running by a stopped process', () => {
  /**
   * What a process that stopped mid-Revoke leaves behind: the alert marked running since
   * `minutesAgo`, noted as in progress, and its lock (which the store expires after the TTL).
   */
  async function leftRunning(minutesAgo: number) {
    const at = Date.now() - minutesAgo * 60_000;
    await updateAlertState(h!.store, alert.id, (s) => {
      s.revoke = { status: 'running', mode: 'dry-run', by: RESPONDER, at };
    });
    await h!.store.addMembers(RUNS_IN_PROGRESS, [alert.id]);
    const lockLeft = REMEDIATION_LOCK_TTL_MS - minutesAgo * 60_000;
    if (lockLeft > 0) await h!.store.claim(revokeLockKey(alert.id), lockLeft);
  }

  it('is shown as interrupted at start, with Revoke offered again, audited, and Revoke then runs', async () => {
    h = await startHarness({ now: () => Date.now() });
    await h.chat.sink.post(alert);
    await leftRunning(16);

    await h.chat.start?.();
    expect(lastUpdateText()).toContain('Revoke (dry-run) failed');
    expect(lastUpdateText()).toContain('interrupted');
    expect(buttonIds()).toEqual([ACTION_IDS.markBenign, ACTION_IDS.revoke]);
    expect(String(threads()[0]!.args.text)).toContain('did not finish within 15 minutes');
    expect(await listAudit(h.store, alert.id)).toMatchObject([
      { actor: RESPONDER, action: 'revoke', result: 'failed', detail: { error: 'interrupted' } },
    ]);
    expect(await h.store.members(RUNS_IN_PROGRESS)).toEqual([]);

    // A second look changes nothing more.
    const updates = slack().callsOf('chat.update').length;
    await h.chat.stop?.();
    await h.chat.start?.();
    expect(slack().callsOf('chat.update')).toHaveLength(updates);

    await clickAndWait(ACTION_IDS.revoke, 2);
    expect(lastUpdateText()).toContain('Dry-run');
    expect(lastUpdateText()).not.toContain('interrupted');
    expect(await auditOf('revoke')).toEqual(['failed', 'dry-run']);
  });

  it("is never one of this process's own runs, even when the wall clock jumps past its lock", async () => {
    let offset = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const base = evidencePlanRemediator();
    let executing: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      executing = resolve;
    });
    h = await startHarness({
      now: () => Date.now() + offset,
      remediator: {
        ...base,
        execute: async (plan, previous, context) => {
          executing();
          await gate;
          return base.execute(plan, previous, context);
        },
      },
    });
    const { ref } = await h.chat.sink.post(alert);
    await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await started;
    expect(await h.store.members(RUNS_IN_PROGRESS)).toEqual([alert.id]);

    // The wall clock is set 16 minutes ahead while the run waits for Azure; the sweep runs.
    offset = 16 * 60_000;
    await h.chat.start?.();
    expect(threads()).toEqual([]);
    expect(await auditOf('revoke')).toEqual([]);
    expect((await loadAlertState(h.store, alert.id))?.revoke?.status).toBe('running');
    // A repeat shows it in progress; a second click is told it runs (signed at the service's clock).
    await h.chat.sink.repeat(ref, alert, { alertId: alert.id, count: 2, lastSeen: Date.now() });
    expect(lastUpdateText()).toContain('in progress');
    expect(lastUpdateText()).not.toContain('interrupted');
    const click = payloadBody(
      buttonClick({
        actionId: ACTION_IDS.revoke,
        value: alert.id,
        user: RESPONDER,
        responseUrl: slack().responseUrl('second-click'),
      }),
    );
    expect((await h.send(click, { timestamp: Math.floor((Date.now() + offset) / 1000) })).status).toBe(200);
    await slack().waitFor('the note', () => slack().responsesTo('second-click').length === 1);
    expect(String(slack().responsesTo('second-click')[0]!.text)).toContain('already running');

    release();
    await slack().waitFor('the run ends', () => threads().length === 1);
    expect(String(threads()[0]!.args.text)).toContain('in dry-run');
    expect(await auditOf('revoke')).toEqual(['duplicate', 'dry-run']);
  });

  it('is left alone while its lock lasts (another replica may be running it)', async () => {
    h = await startHarness({ now: () => Date.now() });
    await h.chat.sink.post(alert);
    await leftRunning(1);

    await h.chat.start?.();
    expect(slack().callsOf('chat.update')).toEqual([]);
    expect(await h.store.members(RUNS_IN_PROGRESS)).toEqual([alert.id]);
    const { responseId } = await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await slack().waitFor('the note', () => slack().responsesTo(responseId).length === 1);
    expect(String(slack().responsesTo(responseId)[0]!.text)).toContain('already running');
    expect(await auditOf('revoke')).toEqual(['duplicate']);
  });

  it('renders as interrupted once older than the lock, whatever updates the message (pure builder)', () => {
    const at = Date.parse('2026-03-12T10:00:00Z');
    const view = {
      alert,
      channel: 'C123',
      ts: '1700000000.000001',
      confirmText: 'x',
      mode: 'live' as const,
      revoke: { status: 'running' as const, mode: 'live' as const, by: RESPONDER, at },
    };
    const ids = (m: ReturnType<typeof buildAlertMessage>) =>
      m.blocks.flatMap((b) => (b.type === 'actions' ? b.elements.map((e) => e.action_id) : []));
    const fresh = buildAlertMessage({ ...view, now: at + REMEDIATION_LOCK_TTL_MS - 1 });
    expect(ids(fresh)).toEqual([ACTION_IDS.markBenign]);
    expect(JSON.stringify(fresh.blocks)).toContain('in progress');
    const stale = buildAlertMessage({ ...view, now: at + REMEDIATION_LOCK_TTL_MS });
    expect(ids(stale)).toEqual([ACTION_IDS.markBenign, ACTION_IDS.revoke]);
    expect(JSON.stringify(stale.blocks)).toContain('interrupted');
    // The stored state is not changed by rendering.
    expect(view.revoke.status).toBe('running');
  });
});

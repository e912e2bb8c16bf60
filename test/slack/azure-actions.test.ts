/**
 * Revoke, Undo and "Remove broad roles too" through signed Slack requests, run by the real Azure
 * remediator (SDK clients, `DefaultAzureCredential`) against the local HTTPS fake of ARM, Graph
 * and the token endpoint, which records every call.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { canUndo, loadAlertState, revokeLockKey, updateAlertState } from '../../src/slack/alert-state.ts';
import { FOLLOW_UPS } from '../../src/slack/follow-ups.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import { INTERRUPTED_AT_STOP, RUNS_IN_PROGRESS } from '../../src/slack/stale-runs.ts';
import { ROLE } from '../azure/helpers.ts';
import type { FakeAzure } from '../support/fake-azure.ts';
import { ARC } from '../support/samples.ts';
import {
  CHANNEL,
  EVIDENCE_ASSIGNMENT_ID,
  type Harness,
  OUTSIDER,
  OWNER_ASSIGNMENT,
  OWNER_ASSIGNMENT_ID,
  RESPONDER,
  SUB_SCOPE,
  sampleAzure,
  startHarness,
} from './harness.ts';
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
/** Deadline for effects that go through ARM and Graph over HTTPS (not a timing assertion). */
const AZURE_WAIT = 15_000;

type Button = {
  action_id: string;
  text: { text: string };
  confirm?: { title: { text: string }; text: { text: string }; style?: string };
  style?: string;
};

async function posted(mode: 'dry-run' | 'live', opts: { owner?: boolean } = {}) {
  azure = await sampleAzure(opts);
  h = await startHarness({ azure: { fake: azure, mode } });
  await h.chat.sink.post(alert);
  return { h, azure };
}

const slack = () => h!.fake;
const threads = () =>
  slack()
    .callsOf('chat.postMessage')
    .filter((c) => c.args.thread_ts);
const lastUpdate = () => slack().callsOf('chat.update').at(-1)?.args.blocks as unknown[];
const lastUpdateText = () => JSON.stringify(lastUpdate());
const buttonsOfLastUpdate = (): Button[] =>
  (lastUpdate() as Array<{ type: string; elements?: Button[] }>)
    .filter((b) => b.type === 'actions')
    .flatMap((b) => b.elements ?? []);
const button = (actionId: string) => buttonsOfLastUpdate().find((b) => b.action_id === actionId);
const auditOf = async (action: string) =>
  (await listAudit(h!.store, alert.id)).filter((e) => e.action === action).map((e) => e.result);
const noteTo = (responseId: string) => String(slack().responsesTo(responseId)[0]?.text);

/**
 * Presses a button as shown before the switch to live (its dry-run text), and waits for the
 * clicker's note and for the alert to be shown again. Resolves with the note.
 */
async function pressStale(actionId: string, text: string): Promise<string> {
  const updates = slack().callsOf('chat.update').length;
  const { responseId } = await h!.click(actionId, alert.id, RESPONDER, { text });
  await slack().waitFor('the note', () => slack().responsesTo(responseId).length === 1);
  await slack().waitFor('the alert shown again', () => slack().callsOf('chat.update').length > updates);
  return noteTo(responseId);
}

async function clickAndWait(actionId: string, thread: number) {
  await h!.click(actionId, alert.id, RESPONDER);
  await slack().waitFor(`thread post ${thread}`, () => threads().length === thread, AZURE_WAIT);
}

/**
 * A live Revoke whose DELETE ARM answers after `deleteMs`, and a stop of the Slack side once that
 * DELETE is under way, which waits `runStopWaitMs` for the run.
 */
async function stopDuringRevoke(deleteMs: number, runStopWaitMs: number) {
  azure = await sampleAzure();
  azure.fail({ service: 'arm', method: 'DELETE', status: 200, delayMs: deleteMs, passThrough: true });
  h = await startHarness({ azure: { fake: azure, mode: 'live' }, tuning: { runStopWaitMs } });
  await h.chat.sink.post(alert);
  await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
  await vi.waitFor(() => expect(azure!.calls('arm', 'DELETE')).toHaveLength(1), {
    timeout: AZURE_WAIT,
    interval: 20,
  });
  await h.chat.stop!();
}

describe('Revoke, live', () => {
  it('a run still going when the service stops is marked cut short and its lock given back, so it can be pressed again at once', async () => {
    await stopDuringRevoke(1500, 100);
    const state = (await loadAlertState(h!.store, alert.id, Date.now()))!;
    expect(state.revoke).toMatchObject({ status: 'failed', error: INTERRUPTED_AT_STOP, by: RESPONDER });
    expect(await h!.store.members(RUNS_IN_PROGRESS)).toEqual([]);
    expect(await auditOf('revoke')).toEqual(['failed']);
    expect(String(threads()[0]!.args.text)).toContain(
      `Revoke started by <@${RESPONDER}> was cut short: arc-responder stopped while it ran`,
    );
    // Offered again, and its lock is free: the next click (after the restart) runs at once.
    expect(button(ACTION_IDS.revoke)?.text.text).toBe('Revoke');
    expect(await h!.store.claim(revokeLockKey(alert.id), 60_000)).toBe(true);

    // The run itself goes on until the process exits; once it ends, it writes nothing of its own:
    // the alert stays cut short, and the lock taken since is left to its new holder.
    await vi.waitFor(() => expect(azure!.calls('graph', 'PATCH')).toHaveLength(1), { timeout: AZURE_WAIT });
    await vi.waitFor(() =>
      expect(h!.logs.join('')).toContain('Revoke ended after the stop had marked it cut short'),
    );
    expect((await loadAlertState(h!.store, alert.id, Date.now()))!.revoke).toMatchObject({
      status: 'failed',
      error: INTERRUPTED_AT_STOP,
    });
    expect(await auditOf('revoke')).toEqual(['failed']);
    expect(await h!.store.claim(revokeLockKey(alert.id), 60_000)).toBe(false);
    expect(threads()).toHaveLength(1);

    // A click while the service stops starts nothing: the clicker is told to press again.
    await h!.store.releaseClaim(revokeLockKey(alert.id));
    const { responseId } = await h!.click(ACTION_IDS.revoke, alert.id, RESPONDER, { text: 'Revoke' });
    await slack().waitFor('the note', () => slack().responsesTo(responseId).length === 1);
    expect(noteTo(responseId)).toContain('arc-responder is restarting: nothing was done');

    // After the restart, Revoke again finds the assignment the cut-short run deleted gone, and
    // counts its removal as this alert's: Undo re-creates it.
    await h!.chat.start?.();
    await h!.click(ACTION_IDS.revoke, alert.id, RESPONDER, { text: 'Revoke' });
    await slack().waitFor('the revoke', () => threads().length === 2, AZURE_WAIT);
    expect((await loadAlertState(h!.store, alert.id, Date.now()))!.revoke).toMatchObject({ status: 'done' });
    await clickAndWait(ACTION_IDS.undoRevoke, 3);
    expect(azure!.calls('arm', 'PUT')).toHaveLength(1);
    expect(azure!.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
  });

  it('a stop waits for a run that ends within its wait, which then keeps its own result', async () => {
    await stopDuringRevoke(300, AZURE_WAIT);
    expect((await loadAlertState(h!.store, alert.id, Date.now()))!.revoke).toMatchObject({
      status: 'done',
      mode: 'live',
    });
    expect(azure!.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
    expect(await auditOf('revoke')).toEqual(['ok']);
  });

  it('removes the evidence assignment and disables the principal, offers Undo, and refuses a later click', async () => {
    const { azure } = await posted('live');
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(azure.calls('arm', 'DELETE').map((r) => r.path)).toEqual([EVIDENCE_ASSIGNMENT_ID]);
    expect(azure.calls('graph', 'PATCH')).toMatchObject([
      { path: `/v1.0/servicePrincipals/${ARC.principalId}`, body: { accountEnabled: false } },
    ]);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
    expect(String(threads()[0]!.args.text)).toContain('revoked the access');
    expect(lastUpdateText()).toContain('Revoked');
    expect(button(ACTION_IDS.revoke)).toBeUndefined();
    expect(button(ACTION_IDS.undoRevoke)).toBeDefined();
    expect(await auditOf('revoke')).toEqual(['ok']);
    expect(await auditOf('azure.revoke')).toEqual(['ok']);

    const mutations = azure.mutations().length;
    const { responseId } = await h!.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await slack().waitFor('the note', () => slack().responsesTo(responseId).length === 1);
    expect(noteTo(responseId)).toContain('Already revoked');
    expect(azure.mutations()).toHaveLength(mutations);
  });

  it('shows a failed step with its fix, and a later click re-runs only that step', async () => {
    const { azure } = await posted('live');
    azure.deny('graph', 'PATCH', 'servicePrincipals');
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(lastUpdateText()).toContain('Revoke failed');
    expect(lastUpdateText()).toContain('Application.ReadWrite.OwnedBy');
    expect(button(ACTION_IDS.revoke)).toBeDefined();
    // What the failed run did (the assignment removed) can be undone as well as retried.
    expect(button(ACTION_IDS.undoRevoke)!.confirm!.text.text).toContain('Re-creates the role assignment');
    expect(button(ACTION_IDS.undoRevoke)!.confirm!.text.text).not.toContain('Re-enables');
    expect(await auditOf('revoke')).toEqual(['failed']);
    // The log's audit lines, the remediator's and the Slack side's, say which step failed and why.
    const failedLines = h!.logs
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.audit !== undefined && l.result === 'failed');
    expect(failedLines.map((l) => [l.action, l.why])).toEqual(
      ['azure.revoke', 'revoke'].map((action) => [
        action,
        expect.stringMatching(
          /^disable-service-principal: 403 Authorization_RequestDenied: .*; fix: grant .*Application\.ReadWrite\.OwnedBy/,
        ),
      ]),
    );

    // The permission is granted; the retry removes nothing twice.
    azure.clearScripts();
    await clickAndWait(ACTION_IDS.revoke, 2);
    expect(azure.calls('arm', 'DELETE')).toHaveLength(1);
    expect(azure.calls('graph', 'PATCH').map((r) => r.status)).toEqual([403, 204]);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
    expect(lastUpdateText()).toContain('Revoked');
    expect(await auditOf('revoke')).toEqual(['failed', 'ok']);
  });

  it('a Revoke that failed partway can be undone: what it changed is reversed, and Revoke starts a new round', async () => {
    const { azure } = await posted('live');
    azure.deny('arm', 'DELETE', 'roleAssignments');
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(lastUpdateText()).toContain('Revoke failed');
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
    expect(button(ACTION_IDS.undoRevoke)).toBeDefined();

    // While an Undo runs, a retry of the Revoke would work against it: refused, and not offered.
    await updateAlertState(h!.store, alert.id, (s) => {
      s.undo = { status: 'running', mode: 'live', by: RESPONDER, at: Date.now() };
    });
    const during = await h!.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await slack().waitFor('the note', () => slack().responsesTo(during.responseId).length === 1);
    expect(noteTo(during.responseId)).toContain('Undo is running for this alert');
    expect(azure.calls('graph', 'PATCH')).toHaveLength(1);
    await updateAlertState(h!.store, alert.id, (s) => {
      delete s.undo;
    });

    await clickAndWait(ACTION_IDS.undoRevoke, 2);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
    // Nothing was removed, so nothing is re-created.
    expect(azure.calls('arm', 'PUT')).toHaveLength(0);
    expect(await auditOf('undo')).toEqual(['ok']);
    expect(button(ACTION_IDS.undoRevoke)).toBeUndefined();

    // A new round: both steps planned and run afresh.
    azure.clearScripts();
    await clickAndWait(ACTION_IDS.revoke, 3);
    expect(lastUpdateText()).toContain('Revoked');
    expect(azure.calls('arm', 'DELETE').filter((r) => r.status < 300)).toHaveLength(1);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
  });

  it('a retry after an Undo that failed carries what the Undo did not reverse, so the next Undo still re-creates it', async () => {
    const { azure } = await posted('live');
    azure.deny('graph', 'PATCH', 'servicePrincipals');
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(azure.calls('arm', 'DELETE').filter((r) => r.status < 300)).toHaveLength(1);
    // The Undo cannot re-create the assignment (no write permission on role assignments).
    azure.deny('arm', 'PUT', 'roleAssignments');
    await clickAndWait(ACTION_IDS.undoRevoke, 2);
    expect(lastUpdateText()).toContain('Undo failed');
    // Permissions fixed: the retry disables the principal, and still holds the removal it did.
    azure.clearScripts();
    await clickAndWait(ACTION_IDS.revoke, 3);
    expect(lastUpdateText()).toContain('Revoked');
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
    await clickAndWait(ACTION_IDS.undoRevoke, 4);
    expect(azure.calls('arm', 'PUT').filter((r) => r.status < 300)).toHaveLength(1);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
  });

  it('fails, not "Revoked", when Azure could not be read to find the assignments, and a later click finishes', async () => {
    const { azure } = await posted('live');
    // Every read of role assignments (the listing and the evidence's by id) is refused.
    azure.deny('arm', 'GET', 'roleAssignments');
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(azure.calls('arm', 'DELETE')).toHaveLength(0);
    // What could run did: the principal is disabled.
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
    expect(lastUpdateText()).toContain('Revoke failed');
    expect(lastUpdateText()).toContain('could not be read to find every role assignment');
    expect(String(threads()[0]!.args.text)).toMatch(/^:x: Audit: Revoke by .* failed/);
    expect(button(ACTION_IDS.revoke)).toBeDefined();
    expect(button(ACTION_IDS.undoRevoke)!.confirm!.text.text).toContain('Re-enables the service principal');
    expect(await auditOf('revoke')).toEqual(['failed']);

    azure.clearScripts();
    await clickAndWait(ACTION_IDS.revoke, 2);
    expect(azure.calls('arm', 'DELETE').map((r) => r.path)).toEqual([EVIDENCE_ASSIGNMENT_ID]);
    expect(azure.calls('graph', 'PATCH')).toHaveLength(1);
    expect(lastUpdateText()).toContain('Revoked');
    expect(button(ACTION_IDS.undoRevoke)).toBeDefined();
    expect(await auditOf('revoke')).toEqual(['failed', 'ok']);

    // Undo then puts back all of it.
    await clickAndWait(ACTION_IDS.undoRevoke, 3);
    expect(azure.calls('arm', 'PUT')).toHaveLength(1);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
    expect(await auditOf('undo')).toEqual(['ok']);
  });

  it('keeps what a failed run removed in the result of its retry, so that Undo re-creates it', async () => {
    const { azure } = await posted('live');
    const clusterAssignment = 'aaaaaaaa-0000-4000-8000-000000000001';
    azure.assign({
      name: clusterAssignment,
      scope: ARC.clusterId,
      roleDefinitionId: ROLE.clusterUser,
      principalId: ARC.principalId,
      principalType: 'ServicePrincipal',
    });
    // The first run removes the cluster's assignment, then fails on the evidence's and on Graph.
    azure.deny('arm', 'DELETE', ARC.roleAssignmentId);
    azure.deny('graph', 'PATCH', 'servicePrincipals');
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(lastUpdateText()).toContain('Revoke failed');
    expect(azure.assignmentsByName.has(clusterAssignment)).toBe(false);

    azure.clearScripts();
    await clickAndWait(ACTION_IDS.revoke, 2);
    expect(lastUpdateText()).toContain('Revoked');
    expect(lastUpdateText()).toContain(clusterAssignment);

    await clickAndWait(ACTION_IDS.undoRevoke, 3);
    const puts = azure.calls('arm', 'PUT').map((r) => r.path);
    expect(puts).toHaveLength(2);
    expect(
      puts.some((p) => p.startsWith(`${ARC.clusterId}/providers/Microsoft.Authorization/roleAssignments/`)),
    ).toBe(true);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
  });

  it('does nothing for a button shown in dry-run and pressed after the switch to live, and shows the live one', async () => {
    const { azure } = await posted('live');
    expect(await pressStale(ACTION_IDS.revoke, 'Revoke (dry-run)')).toContain('Nothing was done');
    expect(azure.mutations()).toHaveLength(0);
    expect(button(ACTION_IDS.revoke)?.text.text).toBe('Revoke');
    expect(await auditOf('revoke')).toEqual(['refused']);

    await h!.click(ACTION_IDS.revoke, alert.id, RESPONDER, { text: 'Revoke' });
    await slack().waitFor('thread post 1', () => threads().length === 1, AZURE_WAIT);
    expect(azure.calls('arm', 'DELETE')).toHaveLength(1);
  });

  it('does nothing for a live button pressed after the switch to dry-run, and shows the dry-run one', async () => {
    const { azure } = await posted('dry-run');
    const note = await pressStale(ACTION_IDS.revoke, 'Revoke');
    expect(note).toContain('Nothing was done: this button was shown while remediation was live');
    expect(note).toContain('AZURE_REMEDIATION=live');
    expect(azure.mutations()).toHaveLength(0);
    expect(button(ACTION_IDS.revoke)?.text.text).toBe('Revoke (dry-run)');
    expect((await loadAlertState(h!.store, alert.id, Date.now()))?.revoke).toBeUndefined();
    expect(threads()).toHaveLength(0);
    expect(await auditOf('revoke')).toEqual(['refused']);
  });

  it('a "Remove broad roles too (dry-run)" button pressed after the switch to live changes nothing and shows the alert as it is', async () => {
    const { azure } = await posted('live');
    // What a dry-run Revoke left before the switch: a finished dry-run naming a broad role.
    await updateAlertState(h!.store, alert.id, (s) => {
      s.revoke = {
        status: 'done',
        mode: 'dry-run',
        by: RESPONDER,
        at: Date.now(),
        plan: {
          appId: ARC.appId,
          steps: [],
          stillHasAccessThrough: [
            {
              kind: 'broad-role',
              assignmentId: `/subscriptions/${ARC.subscriptionId}/providers/Microsoft.Authorization/roleAssignments/0a0a0a0a-0000-4000-8000-000000000001`,
              roleName: 'Owner',
              scope: `/subscriptions/${ARC.subscriptionId}`,
            } as never,
          ],
          warnings: [],
        },
      };
    });
    expect(await pressStale(ACTION_IDS.removeBroadRoles, 'Remove broad roles too (dry-run)')).toContain(
      'Run Revoke first',
    );
    expect(azure.mutations()).toHaveLength(0);
    expect(await listAudit(h!.store, alert.id)).toContainEqual(
      expect.objectContaining({ action: 'remove-broad-roles', result: 'refused', detail: 'no revoke done' }),
    );
    // Shown again in live mode: the live Revoke, and no dry-run broad button.
    expect(button(ACTION_IDS.revoke)?.text.text).toBe('Revoke');
    expect(button(ACTION_IDS.removeBroadRoles)).toBeUndefined();
  });

  it('a live Revoke that could confirm no principal says that nothing was changed, never "Revoked"', async () => {
    const { azure } = await posted('live');
    azure.servicePrincipals.clear();
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(lastUpdateText()).toContain('Revoke failed');
    expect(lastUpdateText()).toContain('nothing was changed: the plan has no step');
    expect(lastUpdateText()).not.toContain('retry the steps that did not finish');
    expect(lastUpdateText()).toContain('has no service principal in this tenant');
    expect(lastUpdateText()).not.toContain('*Revoked*');
    expect(azure.mutations()).toHaveLength(0);
    // Revoke is offered again.
    expect(button(ACTION_IDS.revoke)?.text.text).toBe('Revoke');
  });

  it("shows the plan's tampering alarm in the alert before anyone presses Revoke", async () => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'live' } });
    // The detection's object id is not the appid's service principal.
    const other = '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a';
    const tampered = sampleAlert({ id: 'tampered-alert' }, { principalId: other });
    await h.chat.sink.post(tampered);
    const posts = slack().callsOf('chat.postMessage');
    const shown =
      JSON.stringify(posts.at(-1)?.args.blocks ?? []) + JSON.stringify(slack().callsOf('chat.update'));
    expect(shown).toContain(`:rotating_light: POSSIBLE TAMPERING: the detection's object id ${other}`);
    expect(azure.mutations()).toHaveLength(0);
  });

  it('runs once for a double click; the second click is told privately', async () => {
    const { azure } = await posted('live');
    const [a, b] = await Promise.all([
      h!.click(ACTION_IDS.revoke, alert.id, RESPONDER),
      h!.click(ACTION_IDS.revoke, alert.id, RESPONDER),
    ]);
    await slack().waitFor(
      'the run and the note',
      () =>
        threads().length === 1 &&
        slack().responsesTo(a.responseId).length + slack().responsesTo(b.responseId).length === 1,
      AZURE_WAIT,
    );
    expect(azure.calls('arm', 'DELETE')).toHaveLength(1);
    expect(azure.calls('graph', 'PATCH')).toHaveLength(1);
    const note = [...slack().responsesTo(a.responseId), ...slack().responsesTo(b.responseId)][0]!;
    expect(String(note.text)).toContain('already running');
    expect((await auditOf('revoke')).sort()).toEqual(['duplicate', 'ok']);
  });
});

function started(harness: Harness | undefined): asserts harness is Harness {
  if (!harness) throw new Error('no harness');
}

/**
 * The alert posted in dry-run, with catch-ups every 50 ms and a minute's settling for uncertain
 * audit lines; its message ts.
 */
async function postedSettling(): Promise<string> {
  azure = await sampleAzure();
  h = await startHarness({
    azure: { fake: azure, mode: 'dry-run' },
    tuning: { staleSweepIntervalMs: 50, threadSettleMs: 60_000 },
  });
  await h.chat.sink.post(alert);
  return (await loadAlertState(h.store, alert.id))!.ts!;
}

describe('Slack failing during a run', () => {
  it('shows the result and posts the audit line in the thread once Slack takes them again', async () => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'live' }, tuning: { staleSweepIntervalMs: 50 } });
    await h.chat.sink.post(alert);
    const failing = Array.from({ length: 50 }, () => ({ status: 500 }));
    slack()
      .script('chat.update', ...failing)
      .script('chat.postMessage', ...failing);
    await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    // Azure is changed; the alert and its thread are behind, and remembered.
    await vi.waitFor(
      async () => expect((await loadAlertState(h!.store, alert.id))?.pendingThread).toHaveLength(1),
      { timeout: AZURE_WAIT },
    );
    expect(await h.store.members(FOLLOW_UPS)).toEqual([alert.id]);
    expect(azure!.calls('arm', 'DELETE')).toHaveLength(1);

    // Slack is back (the failed attempts are forgotten): the next sweep catches up, once.
    slack().clearScripts();
    slack().clear();
    await h.chat.start!();
    await slack().waitFor('the audit line', () => threads().length === 1, AZURE_WAIT);
    await vi.waitFor(async () => expect(await h!.store.members(FOLLOW_UPS)).toEqual([]), {
      timeout: AZURE_WAIT,
    });
    expect(String(threads()[0]!.args.text)).toContain('revoked the access');
    expect(lastUpdateText()).toContain('Revoked');
    expect(button(ACTION_IDS.undoRevoke)).toBeDefined();
    expect((await loadAlertState(h.store, alert.id))?.pendingThread).toBeUndefined();
    expect(threads()).toHaveLength(1);
    await h.chat.stop!();
  });

  it.each([
    ['Slack took it and answered 500: it is found in the thread, not posted again', true],
    ['Slack did not take it (a 500): it is posted once the thread shows it is missing', false],
  ])('an audit line whose post got no clear answer: %s', async (_what, created) => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'dry-run' }, tuning: { staleSweepIntervalMs: 50 } });
    await h.chat.sink.post(alert);
    const ts = (await loadAlertState(h.store, alert.id))!.ts!;
    slack().script('chat.postMessage', { status: 500, created });
    await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await vi.waitFor(
      async () => expect((await loadAlertState(h!.store, alert.id))?.pendingThread).toHaveLength(1),
      { timeout: AZURE_WAIT },
    );
    const [kept] = (await loadAlertState(h.store, alert.id))!.pendingThread!;
    expect(kept!.uncertainSince).toBeGreaterThan(0);
    // The client never re-sent it by itself; the post carried the line's id.
    expect(threads()).toHaveLength(1);
    expect(threads()[0]!.args.metadata).toEqual({
      event_type: 'arc_responder_audit_line',
      event_payload: { alert_id: alert.id, line_id: kept!.id },
    });
    await h.chat.start!();
    await vi.waitFor(async () => expect(await h!.store.members(FOLLOW_UPS)).toEqual([]), {
      timeout: AZURE_WAIT,
    });
    expect(slack().threadTexts(ts)).toEqual([kept!.text]);
    expect(slack().callsOf('conversations.replies')[0]?.args).toMatchObject({ channel: CHANNEL, ts });
    expect(threads()).toHaveLength(created ? 1 : 2);
    expect((await loadAlertState(h.store, alert.id))?.pendingThread).toBeUndefined();
    await h.chat.stop!();
  });

  it('an uncertain audit line waits for Slack to settle, and only its id (not the same text from someone else) counts as posted', async () => {
    const ts = await postedSettling();
    started(h);
    slack().script('chat.postMessage', { status: 500 });
    await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await vi.waitFor(
      async () => expect((await loadAlertState(h!.store, alert.id))?.pendingThread).toHaveLength(1),
      { timeout: AZURE_WAIT },
    );
    const line = (await loadAlertState(h.store, alert.id))!.pendingThread![0]!;
    // Someone posts the same text in the thread, without the line's metadata.
    await fetch(`${slack().apiUrl}chat.postMessage`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer xoxp-person' },
      body: JSON.stringify({ channel: CHANNEL, thread_ts: ts, text: line.text }),
    });
    // Within the settle time: neither searched nor posted; the alert stays noted. Its message is
    // brought in line once, not at each of the passes meanwhile.
    const updates = slack().callsOf('chat.update').length;
    await h.chat.start!();
    await new Promise((r) => setTimeout(r, 300));
    expect(slack().callsOf('conversations.replies')).toHaveLength(0);
    expect(await h.store.members(FOLLOW_UPS)).toEqual([alert.id]);
    expect(slack().callsOf('chat.update').length - updates).toBe(1);
    await h.chat.stop!();
    // Once settled: searched, not found by its id, posted once.
    await updateAlertState(h.store, alert.id, (s) => {
      s.pendingThread = [{ ...line, uncertainSince: Date.now() - 61_000 }];
    });
    await h.chat.start!();
    await vi.waitFor(async () => expect(await h!.store.members(FOLLOW_UPS)).toEqual([]), {
      timeout: AZURE_WAIT,
    });
    expect(slack().callsOf('conversations.replies')).toHaveLength(1);
    expect(slack().threadTexts(ts)).toEqual([line.text, line.text]);
    await h.chat.stop!();
  });

  it('a line posted again after a search, whose post again got no clear answer, waits to settle again before the next search', async () => {
    const ts = await postedSettling();
    started(h);
    const line = { text: 'Audit: a line', id: 'line-1', uncertainSince: Date.now() - 61_000 };
    await updateAlertState(h.store, alert.id, (s) => {
      s.pendingThread = [line];
    });
    await h.store.addMembers(FOLLOW_UPS, [alert.id]);
    const before = Date.now();
    slack().script('chat.postMessage', { status: 500, created: true });
    await h.chat.start!();
    await slack().waitFor('the post', () => slack().threadTexts(ts).length === 1, AZURE_WAIT);
    // Several sweeps later: searched once, posted once, the line marked anew.
    await new Promise((r) => setTimeout(r, 400));
    expect(slack().callsOf('conversations.replies')).toHaveLength(1);
    expect(slack().threadTexts(ts)).toEqual(['Audit: a line']);
    const [kept] = (await loadAlertState(h.store, alert.id))!.pendingThread!;
    expect(kept!.uncertainSince).toBeGreaterThanOrEqual(before);
    await h.chat.stop!();
  });

  it('drops the lines kept for a thread whose message was deleted in Slack, and keeps their order otherwise', async () => {
    azure = await sampleAzure();
    h = await startHarness({ azure: { fake: azure, mode: 'dry-run' }, tuning: { staleSweepIntervalMs: 50 } });
    await h.chat.sink.post(alert);
    const failing = Array.from({ length: 50 }, () => ({ status: 500 }));
    slack().script('chat.postMessage', ...failing);
    await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await vi.waitFor(
      async () => expect((await loadAlertState(h!.store, alert.id))?.pendingThread).toHaveLength(1),
      { timeout: AZURE_WAIT },
    );
    await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await vi.waitFor(
      async () => expect((await loadAlertState(h!.store, alert.id))?.pendingThread).toHaveLength(2),
      { timeout: AZURE_WAIT },
    );
    const kept = (await loadAlertState(h.store, alert.id))!.pendingThread!;
    slack().clearScripts();
    slack().clear();
    // The first line goes out; then Slack says the message is gone: the rest is dropped.
    slack().script('chat.postMessage', {}, { error: 'thread_not_found' });
    await h.chat.start!();
    await vi.waitFor(async () => expect(await h!.store.members(FOLLOW_UPS)).toEqual([]), {
      timeout: AZURE_WAIT,
    });
    expect(threads().map((c) => c.args.text)).toEqual(kept.map((k) => k.text));
    expect((await loadAlertState(h.store, alert.id))?.pendingThread).toBeUndefined();
    expect(h.logs.join('')).toContain(
      "the alert's Slack message is gone (deleted): its thread lines are dropped",
    );
    await h.chat.stop!();
  });
});

describe('Catching up Slack', () => {
  it('goes past an alert whose update Slack refuses for good, and catches the others up', async () => {
    h = await startHarness({ tuning: { staleSweepIntervalMs: 50 } });
    const [one, two] = [
      sampleAlert({ id: 'a1a1a1a1a1a1a1a1a1a1a1a1' }),
      sampleAlert({ id: 'b2b2b2b2b2b2b2b2b2b2b2b2' }),
    ];
    for (const a of [one, two]) {
      await h.chat.sink.post(a);
      await updateAlertState(h.store, a.id, (s) => {
        s.pendingThread = [{ text: `line of ${a.id}`, id: `line-${a.id}` }];
      });
    }
    await h.store.addMembers(FOLLOW_UPS, [one.id, two.id]);
    slack().clear();
    // The first alert's update is refused in every form, text alone too (a message Slack will
    // never take); the second goes.
    slack().script('chat.update', ...Array.from({ length: 3 }, () => ({ error: 'invalid_blocks' })));
    await h.chat.start!();
    await slack().waitFor('the second alert caught up', () => threads().length >= 1, AZURE_WAIT);
    expect(threads()[0]!.args.text).toBe(`line of ${two.id}`);
    // The next pass catches the first up (Slack takes its update now).
    await vi.waitFor(async () => expect(await h!.store.members(FOLLOW_UPS)).toEqual([]), {
      timeout: AZURE_WAIT,
    });
    expect(threads().map((c) => c.args.text)).toEqual([`line of ${two.id}`, `line of ${one.id}`]);
    await h.chat.stop!();
  });
});

describe('Undo', () => {
  it('states what it re-creates and re-enables, then does exactly that, once', async () => {
    const { azure } = await posted('live');
    await clickAndWait(ACTION_IDS.revoke, 1);
    const undo = button(ACTION_IDS.undoRevoke)!;
    expect(undo.confirm!.title.text).toBe('Undo the revoke?');
    const confirm = undo.confirm!.text.text;
    expect(confirm).toContain(`Re-creates the role assignment: "${ARC.role}" at ${ARC.roleAssignmentScope}`);
    expect(confirm).toContain(`Re-enables the service principal ${ARC.principalId}`);
    expect(confirm.length).toBeLessThanOrEqual(300);

    await clickAndWait(ACTION_IDS.undoRevoke, 2);
    const puts = azure.calls('arm', 'PUT');
    expect(puts).toHaveLength(1);
    expect(puts[0]!.path).toMatch(
      new RegExp(
        `^${ARC.roleAssignmentScope}/providers/Microsoft.Authorization/roleAssignments/[0-9a-f-]{36}$`,
      ),
    );
    expect(puts[0]!.body).toMatchObject({
      properties: {
        roleDefinitionId: expect.stringContaining(ROLE.clusterUser),
        principalId: ARC.principalId,
        principalType: 'ServicePrincipal',
      },
    });
    expect(azure.calls('graph', 'PATCH').map((r) => r.body)).toEqual([
      { accountEnabled: false },
      { accountEnabled: true },
    ]);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
    const restored = [...azure.assignmentsByName.values()].filter(
      (a) => a.principalId === ARC.principalId && a.scope === ARC.roleAssignmentScope,
    );
    expect(restored).toHaveLength(1);

    expect(String(threads()[1]!.args.text)).toContain('undid the revoke');
    expect(String(threads()[1]!.args.text)).toContain(`Re-create "${ARC.role}"`);
    expect(lastUpdateText()).toContain('Undone');
    expect(lastUpdateText()).toContain(`Re-enable the service principal ${ARC.principalId}`);
    expect(button(ACTION_IDS.undoRevoke)).toBeUndefined();
    expect(await auditOf('undo')).toEqual(['ok']);
    expect(await auditOf('azure.undo')).toEqual(['ok']);
    // The log alone says who revoked and undid what, and each step's result.
    const lines = h!.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const about = { alertId: alert.id, appId: alert.detection.appId, actor: RESPONDER };
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          ...about,
          level: 30,
          action: 'revoke',
          result: 'ok',
          msg: `revoke by ${RESPONDER}: ok`,
        }),
        expect.objectContaining({
          ...about,
          level: 30,
          action: 'undo',
          result: 'ok',
          msg: `undo by ${RESPONDER}: ok`,
        }),
        expect.objectContaining({ ...about, status: 'done', msg: 'remediation step' }),
        expect.objectContaining({ ...about, status: 'done', msg: 'undo step' }),
      ]),
    );
    // Each step's line names its writes with the ids Azure answered, as the audit record does.
    const steps = lines.filter((l) => l.msg === 'remediation step' || l.msg === 'undo step');
    expect(steps.length).toBeGreaterThan(1);
    for (const step of steps) {
      const writes = step.writes as Array<Record<string, unknown>>;
      expect(writes.length).toBeGreaterThan(0);
      for (const w of writes) {
        expect(w.method).not.toBe('GET');
        expect(w).toMatchObject({ clientRequestId: expect.any(String), requestId: expect.any(String) });
      }
    }

    // A second click changes nothing.
    const mutations = azure.mutations().length;
    const { responseId } = await h!.click(ACTION_IDS.undoRevoke, alert.id, RESPONDER);
    await slack().waitFor('the note', () => slack().responsesTo(responseId).length === 1);
    expect(noteTo(responseId)).toContain('Already undone');
    expect(azure.mutations()).toHaveLength(mutations);
    expect(await auditOf('undo')).toEqual(['ok', 'duplicate']);
  });

  it('refuses someone not in SLACK_RESPONDERS, privately, with an audit entry', async () => {
    const { azure } = await posted('live');
    await clickAndWait(ACTION_IDS.revoke, 1);
    const mutations = azure.mutations().length;
    const { responseId } = await h!.click(ACTION_IDS.undoRevoke, alert.id, OUTSIDER);
    await slack().waitFor('the refusal', () => slack().responsesTo(responseId).length === 1);
    expect(noteTo(responseId)).toContain('Only responders (SLACK_RESPONDERS) may use Undo');
    expect(azure.mutations()).toHaveLength(mutations);
    expect(await auditOf('undo')).toEqual(['refused']);
    const refusal = h!.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.action === 'undo');
    expect(refusal).toMatchObject({
      level: 40,
      actor: OUTSIDER,
      alertId: alert.id,
      result: 'refused',
      why: expect.stringContaining('SLACK_RESPONDERS'),
    });
  });

  it('re-creates once for a double click', async () => {
    const { azure } = await posted('live');
    await clickAndWait(ACTION_IDS.revoke, 1);
    const [a, b] = await Promise.all([
      h!.click(ACTION_IDS.undoRevoke, alert.id, RESPONDER),
      h!.click(ACTION_IDS.undoRevoke, alert.id, RESPONDER),
    ]);
    await slack().waitFor(
      'the undo and the note',
      () =>
        threads().length === 2 &&
        slack().responsesTo(a.responseId).length + slack().responsesTo(b.responseId).length === 1,
      AZURE_WAIT,
    );
    expect(azure.calls('arm', 'PUT')).toHaveLength(1);
    expect(
      azure
        .calls('graph', 'PATCH')
        .filter((r) => r.body && (r.body as { accountEnabled?: boolean }).accountEnabled),
    ).toHaveLength(1);
    expect((await auditOf('undo')).sort()).toEqual(['duplicate', 'ok']);
  });

  it('pressed after the switch to dry-run, changes nothing and stays offered for when remediation is live again', async () => {
    const { azure } = await posted('live');
    await clickAndWait(ACTION_IDS.revoke, 1);
    const revoked = (await loadAlertState(h!.store, alert.id, Date.now()))!.revoke!;
    expect(revoked).toMatchObject({ status: 'done', mode: 'live' });
    // The service restarts with AZURE_REMEDIATION=dry-run; the alert is as the live Revoke left it.
    await h!.close();
    h = await startHarness({ azure: { fake: azure, mode: 'dry-run' } });
    await h.chat.sink.post(alert);
    await updateAlertState(h.store, alert.id, (s) => {
      s.revoke = revoked;
    });
    const mutations = azure.mutations().length;
    const { responseId } = await h.click(ACTION_IDS.undoRevoke, alert.id, RESPONDER);
    await slack().waitFor('the note', () => slack().responsesTo(responseId).length === 1);
    expect(noteTo(responseId)).toContain('Nothing was done: remediation is a dry-run now');
    expect(noteTo(responseId)).toContain('stays offered');
    expect(azure.mutations()).toHaveLength(mutations);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
    const after = (await loadAlertState(h.store, alert.id, Date.now()))!;
    expect(after.undo).toBeUndefined();
    expect(canUndo(after)).toBe(true);
    expect(await auditOf('undo')).toEqual(['refused']);
    // A state may hold an Undo in dry-run: it changed nothing, and Undo is still offered.
    await updateAlertState(h.store, alert.id, (s) => {
      s.undo = { status: 'done', mode: 'dry-run', by: RESPONDER, at: Date.now() };
    });
    expect(canUndo((await loadAlertState(h.store, alert.id, Date.now()))!)).toBe(true);
  });

  it('is not offered after a dry-run, and a click then has nothing to undo', async () => {
    const { azure } = await posted('dry-run');
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(button(ACTION_IDS.undoRevoke)).toBeUndefined();
    const { responseId } = await h!.click(ACTION_IDS.undoRevoke, alert.id, RESPONDER);
    await slack().waitFor('the note', () => slack().responsesTo(responseId).length === 1);
    expect(noteTo(responseId)).toContain('Nothing to undo');
    expect(azure.mutations()).toEqual([]);
    // The press is audited, with why it did nothing.
    expect(await listAudit(h!.store, alert.id)).toContainEqual(
      expect.objectContaining({
        action: 'undo',
        actor: RESPONDER,
        result: 'refused',
        detail: 'nothing to undo',
      }),
    );
  });
});

describe('Remove broad roles too', () => {
  it('is offered for the broad role Revoke leaves, names it, and removes exactly it, once', async () => {
    const { azure } = await posted('live', { owner: true });
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(azure.calls('arm', 'DELETE').map((r) => r.path)).toEqual([EVIDENCE_ASSIGNMENT_ID]);
    expect(lastUpdateText()).toContain(`Still has access through Owner at \`${SUB_SCOPE}\``);
    expect(String(threads()[0]!.args.text)).toContain(`Still has access through Owner at \`${SUB_SCOPE}\``);
    const broad = button(ACTION_IDS.removeBroadRoles)!;
    expect(broad.style).toBe('danger');
    expect(broad.text.text).toBe('Remove broad roles too');
    expect(broad.confirm!.style).toBe('danger');
    expect(broad.confirm!.text.text).toContain(`Removes this assignment: Owner at ${SUB_SCOPE}.`);

    // Someone else is refused; nothing changes.
    const refused = await h!.click(ACTION_IDS.removeBroadRoles, alert.id, OUTSIDER);
    await slack().waitFor('the refusal', () => slack().responsesTo(refused.responseId).length === 1);
    expect(noteTo(refused.responseId)).toContain('Only responders');
    expect(azure.calls('arm', 'DELETE')).toHaveLength(1);

    // A double click removes it once.
    const [a, b] = await Promise.all([
      h!.click(ACTION_IDS.removeBroadRoles, alert.id, RESPONDER),
      h!.click(ACTION_IDS.removeBroadRoles, alert.id, RESPONDER),
    ]);
    await slack().waitFor(
      'the removal and the note',
      () =>
        threads().length === 2 &&
        slack().responsesTo(a.responseId).length + slack().responsesTo(b.responseId).length === 1,
      AZURE_WAIT,
    );
    expect(azure.calls('arm', 'DELETE').map((r) => r.path)).toEqual([
      EVIDENCE_ASSIGNMENT_ID,
      OWNER_ASSIGNMENT_ID,
    ]);
    expect(azure.assignmentsByName.has(OWNER_ASSIGNMENT)).toBe(false);
    expect(azure.calls('graph', 'PATCH')).toHaveLength(1);
    expect(String(threads()[1]!.args.text)).toContain('removed the broad roles too');
    expect(lastUpdateText()).toContain('Broad roles removed');
    expect(lastUpdateText()).not.toContain('Still has access through Owner');
    expect(button(ACTION_IDS.removeBroadRoles)).toBeUndefined();
    expect((await auditOf('remove-broad-roles')).sort()).toEqual(['duplicate', 'ok', 'refused']);
    // The Azure side's record names the run for what it was.
    expect(await auditOf('azure.remove-broad-roles')).toEqual(['ok']);
    expect(await auditOf('azure.revoke')).toEqual(['ok']);
  });

  it('Undo afterwards re-creates the broad role as well', async () => {
    const { azure } = await posted('live', { owner: true });
    await clickAndWait(ACTION_IDS.revoke, 1);
    await clickAndWait(ACTION_IDS.removeBroadRoles, 2);
    const confirm = button(ACTION_IDS.undoRevoke)!.confirm!.text.text;
    expect(confirm).toContain('Owner');
    expect(confirm).toContain(ARC.role);
    await clickAndWait(ACTION_IDS.undoRevoke, 3);
    const puts = azure.calls('arm', 'PUT').map((r) => r.path.replace(/\/providers\/.*$/, ''));
    expect(puts).toEqual([SUB_SCOPE, ARC.roleAssignmentScope]);
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(true);
    expect(await auditOf('undo')).toEqual(['ok']);
  });

  it('Undo that cannot re-create the broad role leaves the principal disabled, though the Arc assignment is back', async () => {
    const { azure } = await posted('live', { owner: true });
    await clickAndWait(ACTION_IDS.revoke, 1);
    await clickAndWait(ACTION_IDS.removeBroadRoles, 2);
    // ARM refuses the broad role's assignment only, at the subscription.
    azure.deny(
      'arm',
      'PUT',
      new RegExp(`^${SUB_SCOPE}/providers/Microsoft\\.Authorization/roleAssignments/`, 'i'),
    );
    await clickAndWait(ACTION_IDS.undoRevoke, 3);
    expect(lastUpdateText()).toContain('Undo failed');
    expect(lastUpdateText()).toContain('not enabled again: 1 removed assignment is not back');
    expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
    expect(azure.calls('graph', 'PATCH').map((r) => r.body)).toEqual([{ accountEnabled: false }]);
  });

  it('in dry-run lists the call it would make and changes nothing', async () => {
    const { azure } = await posted('dry-run', { owner: true });
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(lastUpdateText()).toContain('Still has access through Owner');
    const broad = button(ACTION_IDS.removeBroadRoles)!;
    expect(broad.text.text).toBe('Remove broad roles too (dry-run)');
    expect(broad.confirm!.text.text).toContain('Dry-run');
    expect(broad.confirm!.text.text).toContain(`Owner at ${SUB_SCOPE}`);
    await clickAndWait(ACTION_IDS.removeBroadRoles, 2);
    const thread = String(threads()[1]!.args.text);
    expect(thread).toContain('Remove broad roles pressed by');
    expect(thread).toContain('nothing was changed');
    expect(thread).toContain(`DELETE ${azure.armUrl}${OWNER_ASSIGNMENT_ID}?api-version=2022-04-01`);
    expect(lastUpdateText()).toContain('Remove broad roles too would make these calls');
    expect(azure.mutations()).toEqual([]);
    expect(await auditOf('remove-broad-roles')).toEqual(['dry-run']);
  });

  it("shows the plan's warnings in the revoke report and its thread", async () => {
    azure = await sampleAzure();
    // The assignments at the cluster cannot be listed: the plan rests on the evidence and says so.
    azure.deny('arm', 'GET', /roleAssignments$/i);
    h = await startHarness({ azure: { fake: azure, mode: 'dry-run' } });
    await h.chat.sink.post(alert);
    await clickAndWait(ACTION_IDS.revoke, 1);
    expect(lastUpdateText()).toContain('could not list the role assignments at the cluster');
    expect(String(threads()[0]!.args.text)).toContain('could not list the role assignments at the cluster');
    expect(button(ACTION_IDS.removeBroadRoles)).toBeUndefined();
  });
});

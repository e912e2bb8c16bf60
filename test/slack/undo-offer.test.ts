/**
 * Undo is offered for what it can reverse: a removed assignment, a disabled principal. A Revoke
 * whose only change was to revoke a user's sign-in sessions (the account was disabled already, by
 * another alert's Revoke say) offers no Undo: nothing restores sessions, and its dialog would
 * promise access given back while nothing is.
 */
import { expect, it } from 'vitest';
import type { RemediationResult } from '../../src/core/remediation.ts';
import { canUndo, type RevokeRun, type SlackAlertState } from '../../src/slack/alert-state.ts';
import { undoConfirmText, undoText } from '../../src/slack/blocks/run-text.ts';
import { DETECTED_AT, sampleAlert } from './sample-alert.ts';

const alert = sampleAlert();
const USER = 'alice@contoso.example';

function userRevoke(statuses: { disable: string; sessions: string }): SlackAlertState {
  const result: RemediationResult = {
    mode: 'live',
    ok: true,
    steps: [
      { stepId: `disable-user:${USER}`, status: statuses.disable as 'done', detail: statuses.disable },
      {
        stepId: `revoke-user-sessions:${USER}`,
        status: statuses.sessions as 'done',
        detail: statuses.sessions,
      },
    ],
  };
  const revoke: RevokeRun = {
    status: 'done',
    mode: 'live',
    by: 'UALICE',
    at: DETECTED_AT + 1000,
    plan: {
      appId: alert.detection.appId,
      steps: [
        { id: `disable-user:${USER}`, kind: 'disable-user', description: 'd', call: 'PATCH', target: USER },
        {
          id: `revoke-user-sessions:${USER}`,
          kind: 'revoke-user-sessions',
          description: 's',
          call: 'POST',
          target: USER,
        },
      ],
      stillHasAccessThrough: [],
      warnings: [],
    },
    result,
  };
  return { alert, channel: 'C123', ts: '1700000000.000001', confirmText: 'x', revoke } as SlackAlertState;
}

it('offers no Undo when the only change was revoking sign-in sessions', () => {
  expect(canUndo(userRevoke({ disable: 'already-done', sessions: 'done' }))).toBe(false);
});

it('offers Undo when the account was disabled by this run', () => {
  expect(canUndo(userRevoke({ disable: 'done', sessions: 'done' }))).toBe(true);
});

it("Undo's dialog says that revoked sign-in sessions stay revoked", () => {
  const text = undoConfirmText(userRevoke({ disable: 'done', sessions: 'done' }));
  expect(text).toContain(`Re-enables the user account ${USER}.`);
  expect(text).toContain('Revoked sign-in sessions stay revoked.');
});

it("Undo's dialog says so also when it is too long for Slack in full (a real assignment's scope): the role list gives way", () => {
  const state = userRevoke({ disable: 'done', sessions: 'done' });
  const scope = `/subscriptions/${'6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b'}/resourceGroups/rg-arc-production-westeurope/providers/Microsoft.Kubernetes/connectedClusters/arc-prod-cluster-01`;
  state.revoke!.plan!.steps.unshift({
    id: 'remove-assignment:1',
    kind: 'remove-assignment',
    description: 'r',
    call: 'DELETE',
    target: `${scope}/providers/Microsoft.Authorization/roleAssignments/5d1f3a7b-9c2e-4b48-a6d0-e8f1a2b3c4d5`,
    assignment: {
      id: `${scope}/providers/Microsoft.Authorization/roleAssignments/5d1f3a7b-9c2e-4b48-a6d0-e8f1a2b3c4d5`,
      roleName: 'Azure Arc Enabled Kubernetes Cluster User Role',
      scope,
    },
  } as never);
  state.revoke!.result!.steps.unshift({ stepId: 'remove-assignment:1', status: 'done', detail: 'removed' });
  const text = undoConfirmText(state);
  expect(text.length).toBeLessThanOrEqual(300);
  expect(text).toContain('Azure Arc Enabled Kubernetes Cluster User Role');
  expect(text).toContain('re-enables the user account');
  expect(text).toMatch(/Revoked sign-in sessions stay revoked\.$/);
});

it("Undo's dialog names the PIM assignments it leaves to PIM apart from those it re-creates, in full and when too long", () => {
  const state = userRevoke({ disable: 'done', sessions: 'done' });
  const scope = '/subscriptions/6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/resourceGroups/rg-arc';
  const removal = (n: number, roleName: string, endsAt?: string) => {
    const target = `${scope}/providers/Microsoft.Authorization/roleAssignments/5d1f3a7b-9c2e-4b48-a6d0-e8f1a2b3c4d${n}`;
    state.revoke!.plan!.steps.unshift({
      id: `remove-assignment:${n}`,
      kind: 'remove-assignment',
      description: 'r',
      call: 'DELETE',
      target,
      assignment: {
        scope,
        roleDefinitionId: 'x',
        principalId: 'p',
        roleName,
        ...(endsAt ? { endsAt, activated: true } : {}),
      },
    } as never);
    state.revoke!.result!.steps.unshift({
      stepId: `remove-assignment:${n}`,
      status: 'done',
      detail: 'removed',
    });
  };
  removal(1, 'Owner', '2026-11-29T17:00:00.000Z');
  expect(undoConfirmText(state)).toBe(
    `Leaves the PIM assignment to PIM (made here it would be permanent): "Owner" at ${scope}. Re-enables the user account ${USER}. The identity can activate its role again in PIM. Revoked sign-in sessions stay revoked.`,
  );
  removal(2, 'Azure Arc Enabled Kubernetes Cluster User Role');
  const long = undoConfirmText(state);
  expect(long.length).toBeLessThanOrEqual(300);
  expect(long).toMatch(
    /^Re-creates the role assignment \(Azure Arc Enabled Kubernetes Cluster User Role\) and leaves a PIM assignment to PIM and re-enables the user account\. The identity can list the cluster credentials again\. Revoked sign-in sessions stay revoked\.$/,
  );
});

it("Undo's status says what it left to PIM: here, and on the identity's other alerts it restored", () => {
  const base = { status: 'done' as const, mode: 'live' as const, by: 'UBOB', at: DETECTED_AT };
  const here = undoText(
    {
      ...base,
      result: {
        mode: 'live',
        ok: true,
        steps: [{ stepId: 'x', status: 'already-done', detail: 'left to PIM', leftToPim: true }],
      },
    },
    [],
  );
  expect(here).toContain(
    'what the revoke changed is reversed, but for a role assignment that PIM made for a set time, left to PIM:',
  );
  const elsewhere = undoText({ ...base, elsewhere: 'alert-1', leftToPim: 2 }, []);
  expect(elsewhere).toContain(
    'the access removed above is back, but for 2 role assignments that PIM made for a set time, left to PIM, and the principal enabled.',
  );
  expect(undoText({ ...base, elsewhere: 'alert-1' }, [])).toContain(
    'the access removed above is back, and the principal enabled.',
  );
});

it("Undo's status keeps the principal's re-enable in sight when the re-created assignments do not all fit, and says how many it left out", () => {
  const state = userRevoke({ disable: 'done', sessions: 'done' });
  const plan = state.revoke!.plan!;
  for (let i = 0; i < 12; i++) {
    const scope = `/subscriptions/6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/resourceGroups/rg-arc-production-${i}`;
    plan.steps.unshift({
      id: `remove-assignment:${i}`,
      kind: 'remove-assignment',
      description: 'r',
      call: 'DELETE',
      target: `${scope}/providers/Microsoft.Authorization/roleAssignments/${i}`,
      assignment: {
        scope,
        roleDefinitionId: 'x',
        principalId: 'p',
        roleName: 'Azure Arc Enabled Kubernetes Cluster User Role',
      },
    });
  }
  const steps = plan.steps.map((st) => ({
    stepId: st.id,
    status: 'done' as const,
    detail:
      st.kind === 'remove-assignment'
        ? `re-created it at ${st.assignment!.scope} as ${st.target}`
        : 're-enabled',
  }));
  const text = undoText(
    { status: 'done', mode: 'live', by: 'UBOB', at: DETECTED_AT, result: { mode: 'live', ok: true, steps } },
    [state.revoke],
  );
  expect(text.length).toBeLessThanOrEqual(2500);
  expect(text).toContain(`Re-enable the user account ${USER}`);
  expect(text).toMatch(/… \d+ more steps not shown here/);
});

it("Undo's dialog, pressed again after one that failed partway, names only what that one left undone", () => {
  const state = userRevoke({ disable: 'done', sessions: 'done' });
  const scope = '/subscriptions/6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/resourceGroups/rg-arc';
  /** A Reader assignment at `at` that the Revoke removed. */
  const removed = (n: number, at: string) => {
    state.revoke!.plan!.steps.unshift({
      id: `remove-assignment:${n}`,
      kind: 'remove-assignment',
      description: 'r',
      call: 'DELETE',
      target: `${at}/providers/Microsoft.Authorization/roleAssignments/${n}`,
      assignment: { scope: at, roleDefinitionId: 'x', principalId: 'p', roleName: 'Reader' },
    } as never);
    state.revoke!.result!.steps.unshift({
      stepId: `remove-assignment:${n}`,
      status: 'done',
      detail: 'removed',
    });
  };
  removed(1, scope);
  expect(undoConfirmText(state)).toContain(`Re-creates the role assignment: "Reader" at ${scope}.`);
  state.undo = {
    status: 'failed',
    mode: 'live',
    by: 'UBOB',
    at: DETECTED_AT + 5000,
    of: state.revoke!.at,
    result: {
      mode: 'live',
      ok: false,
      steps: [
        { stepId: 'remove-assignment:1', status: 'done', detail: 're-created' },
        { stepId: `disable-user:${USER}`, status: 'failed', detail: 'Graph answered 503' },
      ],
    },
  };
  expect(undoConfirmText(state)).toBe(
    `Finishes the Undo that failed partway (what it put back stays). Re-enables the user account ${USER}. The identity can list the cluster credentials again. Revoked sign-in sessions stay revoked.`,
  );
  // Too long for Slack in full (a real scope), it still says that it finishes the Undo.
  removed(2, `${scope}/providers/Microsoft.Kubernetes/connectedClusters/${'c'.repeat(200)}`);
  const short = undoConfirmText(state);
  expect(short.length).toBeLessThanOrEqual(300);
  expect(short).toMatch(
    /^Finishes the Undo that failed partway \(what it put back stays\)\. Re-creates the role assignment \(Reader\) and re-enables the user account\./,
  );
  // An Undo of an earlier round (another Revoke) is no part of this one.
  state.undo.of = state.revoke!.at - 1;
  expect(undoConfirmText(state)).toMatch(/^Re-creates 2 role assignments \(Reader\)/);
});

/**
 * The audit lines a finished run posts in the alert's thread: pure builders from the stored run
 * to mrkdwn, snapshot-tested like the alert's blocks.
 */

import { describe, expect, it } from 'vitest';
import type { RemediationPlan } from '../../src/core/remediation.ts';
import { TAMPERING } from '../../src/core/remediation-plan.ts';
import type { RevokeRun, UndoRun } from '../../src/slack/alert-state.ts';
import { runThreadText, undoThreadText } from '../../src/slack/blocks/thread.ts';
import { threadMessage } from '../../src/slack/messenger.ts';
import { type Overrides, overridden } from '../support/overrides.ts';
import { ARC } from '../support/samples.ts';
import { DETECTED_AT, sampleRevokeSteps } from './sample-alert.ts';

const REVOKE = { verb: 'Revoke', doneHead: 'revoked the access' };
const BROAD = { verb: 'Remove broad roles', doneHead: 'removed the broad roles too' };

const [REMOVE, DISABLE] = sampleRevokeSteps();
const sub = `/subscriptions/${ARC.subscriptionId}`;
const PLAN: RemediationPlan = {
  appId: ARC.appId,
  steps: [REMOVE, DISABLE],
  stillHasAccessThrough: [
    {
      assignmentId: `${sub}/providers/Microsoft.Authorization/roleAssignments/o`,
      roleName: 'Owner',
      scope: sub,
      kind: 'broad-role',
    },
    {
      assignmentId: '/providers/Microsoft.Authorization/roleAssignments/r',
      roleName: 'Contributor',
      scope: '/',
      kind: 'root',
    },
    {
      assignmentId: `${sub}/providers/Microsoft.Authorization/roleAssignments/g`,
      roleName: 'Reader',
      scope: sub,
      kind: 'group',
    },
  ],
  warnings: [
    'could not read role definition x: left in place',
    `${TAMPERING}: the evidence names another principal`,
  ],
};

const run = (over: Overrides<RevokeRun>): RevokeRun =>
  overridden<RevokeRun>(
    {
      status: 'done',
      mode: 'live',
      by: 'UALICE',
      at: DETECTED_AT,
      plan: PLAN,
    },
    over,
  );

describe('the thread line of a Revoke or a broad removal', () => {
  it('a live run that ended: each call with its result and fix, the access it left, the warnings (snapshot)', () => {
    const text = runThreadText(
      run({
        result: {
          mode: 'live',
          ok: true,
          steps: [
            { stepId: 'remove', status: 'done', detail: 'removed' },
            {
              stepId: 'disable',
              status: 'failed',
              detail: 'Forbidden',
              fix: 'grant Application.ReadWrite.All',
            },
          ],
        },
      }),
      REVOKE,
    );
    expect(text).toMatchSnapshot();
    const lines = text.split('\n');
    expect(lines[0]).toBe(':no_entry: Audit: <@UALICE> revoked the access:');
    expect(lines[1]).toBe(`:white_check_mark: \`${REMOVE.call}\` removed`);
    expect(lines[2]).toBe(`:x: \`${DISABLE.call}\` Forbidden *Fix:* grant Application.ReadWrite.All`);
    expect(lines[3]).toBe(`:warning: Still has access through Owner at \`${sub}\``);
    expect(lines[4]).toBe(':warning: Still has access through Contributor at `/` (at the root scope)');
    expect(lines[5]).toBe(`:warning: Still has access through Reader at \`${sub}\` (a group assignment)`);
    expect(lines[6]).toBe(':information_source: could not read role definition x: left in place');
    expect(lines[7]).toBe(`:rotating_light: ${TAMPERING}: the evidence names another principal`);
    expect(lines).toHaveLength(8);
  });

  it('a broad removal says so in its head', () => {
    const text = runThreadText(run({ result: { mode: 'live', ok: true, steps: [] } }), BROAD);
    expect(text.split('\n')[0]).toBe(':no_entry: Audit: <@UALICE> removed the broad roles too:');
  });

  it('a dry-run: what it would call, without the results’ details (snapshot)', () => {
    const text = runThreadText(
      run({
        mode: 'dry-run',
        plan: { ...PLAN, stillHasAccessThrough: [], warnings: [] },
        result: {
          mode: 'dry-run',
          ok: true,
          steps: [
            { stepId: 'remove', status: 'would-do', detail: 'dry-run' },
            { stepId: 'disable', status: 'would-do', detail: 'dry-run' },
          ],
        },
      }),
      REVOKE,
    );
    expect(text).toMatchSnapshot();
    expect(text).toBe(
      [
        ':test_tube: Audit: Revoke pressed by <@UALICE> in dry-run: nothing was changed. It would call:',
        `:small_orange_diamond: \`${REMOVE.call}\``,
        `:small_orange_diamond: \`${DISABLE.call}\``,
      ].join('\n'),
    );
  });

  it('a dry-run of a plan with no step would change nothing', () => {
    const text = runThreadText(
      run({ mode: 'dry-run', plan: { ...PLAN, steps: [], stillHasAccessThrough: [], warnings: [] } }),
      BROAD,
    );
    expect(text).toBe(
      ':test_tube: Audit: Remove broad roles pressed by <@UALICE> in dry-run: nothing was changed. It would change nothing:',
    );
  });

  it('a failed run: its error, and a step it never reached marked unknown', () => {
    const text = runThreadText(
      run({
        status: 'failed',
        error: 'Azure answered 503',
        plan: { ...PLAN, stillHasAccessThrough: [], warnings: [] },
        result: { mode: 'live', ok: false, steps: [{ stepId: 'remove', status: 'done', detail: 'removed' }] },
      }),
      REVOKE,
    );
    expect(text.split('\n')).toEqual([
      ':x: Audit: Revoke by <@UALICE> failed: Azure answered 503.',
      `:white_check_mark: \`${REMOVE.call}\` removed`,
      `:grey_question: \`${DISABLE.call}\``,
    ]);
  });

  it('a run that failed before it planned: the head alone', () => {
    expect(runThreadText(run({ status: 'failed', plan: undefined }), REVOKE)).toBe(
      ':x: Audit: Revoke by <@UALICE> failed.',
    );
  });

  it('escapes and clips what Azure or a hostile detection wrote', () => {
    const hostile = `<!channel> <https://evil.example|click> & ${'y'.repeat(2000)}`;
    const text = runThreadText(
      run({
        status: 'failed',
        error: hostile,
        plan: {
          ...PLAN,
          steps: [{ ...DISABLE, call: hostile }],
          stillHasAccessThrough: [
            { assignmentId: 'a', roleName: hostile, scope: hostile, kind: 'broad-role' },
          ],
          warnings: [hostile],
        },
        result: {
          mode: 'live',
          ok: false,
          steps: [{ stepId: 'disable', status: 'failed', detail: hostile, fix: hostile }],
        },
      }),
      REVOKE,
    );
    expect(text).not.toContain('<!channel>');
    expect(text).not.toContain('<https://evil.example');
    expect(text).toContain('&lt;!channel&gt;');
    expect(text.length).toBeLessThan(4000);
  });
});

describe('the thread line of a long Revoke', () => {
  it('puts the failed steps and the principal first, so that the cut end of the line loses neither', () => {
    const many = [...Array(20)].map((_, i) => ({
      ...REMOVE,
      id: `remove-${i}`,
      call: `${REMOVE.call}-${i}`,
    }));
    const text = runThreadText(
      run({
        status: 'failed',
        plan: { ...PLAN, steps: [...many, DISABLE] },
        result: {
          mode: 'live',
          ok: false,
          steps: [
            ...many.map((st, i) =>
              i === 13
                ? {
                    stepId: st.id,
                    status: 'failed' as const,
                    detail: 'Forbidden',
                    fix: 'grant roleAssignments/delete',
                  }
                : { stepId: st.id, status: 'done' as const, detail: `removed ${'x'.repeat(150)}` },
            ),
            { stepId: 'disable', status: 'done', detail: 'disabled' },
          ],
        },
      }),
      REVOKE,
    );
    const [, first, second] = text.split('\n');
    expect(first).toContain(`${REMOVE.call}-13`);
    expect(first).toContain('*Fix:* grant roleAssignments/delete');
    expect(second).toContain(DISABLE.call);
  });
});

describe('the thread line of an Undo', () => {
  const steps = new Map([REMOVE, DISABLE].map((s) => [s.id, s]));
  const undo = (over: Partial<UndoRun>): UndoRun => ({
    status: 'done',
    mode: 'live',
    by: 'UBOB',
    at: DETECTED_AT,
    ...over,
  });

  it('a live Undo that ended: what each step re-created or re-enabled (snapshot)', () => {
    const text = undoThreadText(
      undo({
        result: {
          mode: 'live',
          ok: true,
          steps: [
            { stepId: 'disable', status: 'done', detail: 're-enabled' },
            { stepId: 'remove', status: 'already-done', detail: 'it exists' },
          ],
        },
      }),
      steps,
    );
    expect(text).toMatchSnapshot();
    expect(text.split('\n')).toEqual([
      ':leftwards_arrow_with_hook: Audit: <@UBOB> undid the revoke:',
      `:white_check_mark: Re-enable the service principal ${ARC.principalId} re-enabled`,
      `:ballot_box_with_check: Re-create "${ARC.role}" at ${ARC.roleAssignmentScope} it exists`,
    ]);
  });

  it('a failed Undo: its error, each step’s fix, and a step no plan names by its id', () => {
    const text = undoThreadText(
      undo({
        status: 'failed',
        error: 'Graph answered 403',
        result: {
          mode: 'live',
          ok: false,
          steps: [
            {
              stepId: 'disable',
              status: 'failed',
              detail: 'Forbidden',
              fix: 'grant Application.ReadWrite.All',
            },
            { stepId: 'gone-step', status: 'skipped', detail: 'not reached' },
          ],
        },
      }),
      steps,
    );
    expect(text.split('\n')).toEqual([
      ':x: Audit: Undo by <@UBOB> failed: Graph answered 403.',
      `:x: Re-enable the service principal ${ARC.principalId} Forbidden *Fix:* grant Application.ReadWrite.All`,
      ':fast_forward: gone-step not reached',
    ]);
  });

  it('a live Undo that left a PIM activation to PIM: the step says so, and what to do, whole', () => {
    const timed = {
      ...REMOVE,
      assignment: { ...REMOVE.assignment!, endsAt: '2026-03-12T17:15:27.355Z', activated: true },
    };
    const detail =
      'left to PIM (made here it would be permanent): the principal can activate the role again in PIM (its eligibility was not removed); the activation ran until 2026-03-12T17:15:27.355Z';
    const text = undoThreadText(
      undo({
        result: {
          mode: 'live',
          ok: true,
          steps: [
            { stepId: 'remove', status: 'already-done', detail, leftToPim: true },
            { stepId: 'disable', status: 'done', detail: 're-enabled' },
          ],
        },
      }),
      new Map([timed, DISABLE].map((st) => [st.id, st])),
    );
    expect(text.split('\n')[1]).toBe(
      `:ballot_box_with_check: Leave "${ARC.role}" at ${ARC.roleAssignmentScope} to PIM ${detail}`,
    );
  });

  it('a long Undo line puts the principal and the failed steps first, so that the cut end of it loses neither', () => {
    const many = [...Array(20)].map((_, i) => ({
      ...REMOVE,
      id: `remove-${i}`,
      assignment: { ...REMOVE.assignment!, scope: `${ARC.roleAssignmentScope}/${i}` },
    }));
    const text = undoThreadText(
      undo({
        result: {
          mode: 'live',
          ok: true,
          steps: [
            ...many.map((st) => ({
              stepId: st.id,
              status: 'done' as const,
              detail: `re-created it as ${'x'.repeat(150)}`,
            })),
            { stepId: 'disable', status: 'done', detail: 're-enabled' },
          ],
        },
      }),
      new Map([...many, DISABLE].map((st) => [st.id, st])),
    );
    expect(text.split('\n')[1]).toBe(
      `:white_check_mark: Re-enable the service principal ${ARC.principalId} re-enabled`,
    );
  });

  it('leaves out the detail of a step it would do', () => {
    const text = undoThreadText(
      undo({
        result: {
          mode: 'dry-run',
          ok: true,
          steps: [{ stepId: 'disable', status: 'would-do', detail: 'dry-run' }],
        },
      }),
      steps,
    );
    expect(text.split('\n')[1]).toBe(
      `:small_orange_diamond: Re-enable the service principal ${ARC.principalId}`,
    );
  });

  it('escapes what a hostile step or answer wrote', () => {
    const hostile = `<!here> ${'z'.repeat(1000)}`;
    const text = undoThreadText(
      undo({
        status: 'failed',
        error: hostile,
        result: {
          mode: 'live',
          ok: false,
          steps: [{ stepId: hostile, status: 'failed', detail: hostile, fix: hostile }],
        },
      }),
      steps,
    );
    expect(text).not.toContain('<!here>');
    expect(text).toContain('&lt;!here&gt;');
    expect(text.length).toBeLessThan(1500);
  });
});

describe('a thread line as Slack gets it', () => {
  it('is a verbatim section with the same text, or message text alone past a section block’s 3,000 characters', () => {
    expect(threadMessage({ text: 'Audit: *Marked benign* by <@UALICE>', id: 'x' })).toEqual({
      text: 'Audit: *Marked benign* by <@UALICE>',
      blocks: [
        {
          type: 'section',
          text: { type: 'mrkdwn', text: 'Audit: *Marked benign* by <@UALICE>', verbatim: true },
        },
      ],
    });
    const long = 'x'.repeat(3001);
    expect(threadMessage({ text: long, id: 'y' })).toEqual({ text: long });
    expect(threadMessage({ text: 'y'.repeat(3000), id: 'z' }).blocks).toHaveLength(1);
  });
});

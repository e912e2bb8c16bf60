import type { PlannedStep, StepResult } from '../../core/remediation.ts';
import type { RevokeRun, UndoRun } from '../alert-state.ts';
import { STEP_EMOJI, undoLabel, WARNING_CLIP, warningMark } from './run-text.ts';
import { clip, code, literal } from './text.ts';

/** What the thread calls a remediation run: its verb, and the head of a finished live run. */
export interface RunWords {
  verb: string;
  /** After the clicker's mention, e.g. `revoked the access`. */
  doneHead: string;
}

/** What a thread line's steps may take before the line is cut (a thread line holds 3,900). */
const THREAD_ROOM = 3000;

/**
 * The lines of `items`, in their order, or, when together they would not fit a thread line (its
 * end is cut), those `first` says first: the failed steps and the principal's.
 */
function firstWhenLong<T>(items: readonly T[], lineOf: (item: T) => string, first: (item: T) => boolean) {
  const inOrder = items.map(lineOf);
  if (inOrder.join('\n').length <= THREAD_ROOM) return inOrder;
  return [...items.filter(first), ...items.filter((item) => !first(item))].map(lineOf);
}

/**
 * The audit line posted in the alert's thread when a remediation run (Revoke, Remove broad roles
 * too) ends: its outcome, then one line per planned step with its result, the access it left and
 * the plan's warnings.
 */
export function runThreadText(run: RevokeRun, words: RunWords): string {
  const who = `<@${run.by}>`;
  const steps = run.plan?.steps ?? [];
  const results = new Map((run.result?.steps ?? []).map((r) => [r.stepId, r]));
  const lineOf = (s: PlannedStep) => {
    const r = results.get(s.id);
    return `${r ? STEP_EMOJI[r.status] : ':grey_question:'} ${code(s.call, 300)}${r && r.status !== 'would-do' ? ` ${clip(literal(r.detail), 400)}` : ''}${r?.fix ? ` *Fix:* ${clip(literal(r.fix), 400)}` : ''}`;
  };
  const lines = firstWhenLong(
    steps,
    lineOf,
    (s) => results.get(s.id)?.status === 'failed' || s.kind !== 'remove-assignment',
  );
  for (const rest of run.plan?.stillHasAccessThrough ?? []) {
    const group =
      rest.kind === 'group' ? ' (a group assignment)' : rest.kind === 'root' ? ' (at the root scope)' : '';
    lines.push(
      `:warning: Still has access through ${clip(literal(rest.roleName), 100)} at ${code(rest.scope, 300)}${group}`,
    );
  }
  for (const w of run.plan?.warnings ?? []) lines.push(`${warningMark(w)} ${clip(literal(w), WARNING_CLIP)}`);
  let head: string;
  if (run.status === 'failed')
    head = `:x: Audit: ${words.verb} by ${who} failed${run.error ? `: ${clip(literal(run.error), 300)}` : ''}.`;
  else if (run.mode === 'dry-run')
    head = `:test_tube: Audit: ${words.verb} pressed by ${who} in dry-run: nothing was changed. ${steps.length === 0 ? 'It would change nothing:' : 'It would call:'}`;
  else head = `:no_entry: Audit: ${who} ${words.doneHead}:`;
  return [head, ...lines].join('\n');
}

/**
 * The audit line posted in the alert's thread when an Undo ends: its outcome, then one line per
 * undone step (named from `steps`, the plans of the runs it reversed) with its result.
 */
export function undoThreadText(undo: UndoRun, steps: ReadonlyMap<string, PlannedStep>): string {
  const who = `<@${undo.by}>`;
  const lineOf = (r: StepResult) => {
    const step = steps.get(r.stepId);
    const what = clip(literal(step ? undoLabel(step) : r.stepId), 300);
    return `${STEP_EMOJI[r.status] ?? ':grey_question:'} ${what}${r.status !== 'would-do' ? ` ${clip(literal(r.detail), 200)}` : ''}${r.fix ? ` *Fix:* ${clip(literal(r.fix), 200)}` : ''}`;
  };
  const lines = firstWhenLong(
    undo.result?.steps ?? [],
    lineOf,
    (r) => r.status === 'failed' || steps.get(r.stepId)?.kind !== 'remove-assignment',
  );
  let head: string;
  if (undo.status === 'failed')
    head = `:x: Audit: Undo by ${who} failed${undo.error ? `: ${clip(literal(undo.error), 300)}` : ''}.`;
  else head = `:leftwards_arrow_with_hook: Audit: ${who} undid the revoke:`;
  return [head, ...lines].join('\n');
}

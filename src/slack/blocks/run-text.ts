/**
 * The texts of remediation runs shown in the alert: the status and step lines of Revoke, Remove
 * broad roles too and Undo, and the texts of their confirm dialogs. Pure, and sized to fit.
 */
import {
  isFinished,
  leftToPim,
  type PlannedStep,
  type RemediationPlan,
  type StepResult,
} from '../../core/remediation.ts';
import { restoreInfo, TAMPERING } from '../../core/remediation-plan.ts';
import {
  type PastRevoke,
  type RevokedElsewhere,
  type RevokeRun,
  removableBroadAccess,
  type SlackAlertState,
  type UndoRun,
  undoableRuns,
} from '../alert-state.ts';
import { LIMITS } from './limits.ts';
import { clip, clipSize, code, esc, literal, mention, messageLink, slackDate } from './text.ts';

/** Room for one plan warning: the longest name two ARM ids and say why (about 500 characters). */
export const WARNING_CLIP = 800;

/** The mark of a plan's warning: an alarm (evidence naming someone else's access) stands out. */
export const warningMark = (warning: string): string =>
  warning.startsWith(TAMPERING) ? ':rotating_light:' : ':information_source:';

/** The mark of each step outcome, in the alert and in thread reports. */
export const STEP_EMOJI: Record<StepResult['status'], string> = {
  done: ':white_check_mark:',
  'already-done': ':ballot_box_with_check:',
  failed: ':x:',
  'would-do': ':small_orange_diamond:',
  skipped: ':fast_forward:',
};

/** The link to the alert whose live Revoke marked this one, for its status line and thread lines. */
export const elsewhereLink = (mark: Pick<RevokedElsewhere, 'alertId' | 'channel' | 'ts'>): string =>
  messageLink(mark.channel, mark.ts, `alert ${literal(mark.alertId)}`);

/**
 * The status line of an alert whose identity was revoked through another alert: where, by whom,
 * when, and that Revoke here stays safe to press.
 */
export function revokedElsewhereText(mark: RevokedElsewhere): string {
  return `:no_entry: *Identity revoked* through ${elsewhereLink(mark)} by ${mention(mark.by)} ${slackDate(mark.at)}: a Revoke here plans again from what Azure holds and repeats nothing already done.`;
}

/** Heads of a run's status text, by kind of run. */
interface RunWords {
  /** `Revoke`, `Remove broad roles`. */
  name: string;
  done: string;
  retry: string;
}

const REVOKE_WORDS: RunWords = {
  name: 'Revoke',
  done: 'Revoked',
  retry: 'Press Revoke again to retry the steps that did not finish.',
};
const BROAD_WORDS: RunWords = {
  name: 'Remove broad roles too',
  done: 'Broad roles removed',
  retry: 'Press "Remove broad roles too" again to retry the steps that did not finish.',
};

function runText(
  run: RevokeRun,
  words: RunWords,
  k: number,
  opts: { removedLater?: ReadonlySet<string> } = {},
): string {
  const s = (text: string, n: number) => clip(literal(text), clipSize(n, k));
  const who = mention(run.by);
  const dry = run.mode === 'dry-run';
  const name = `${words.name}${dry ? ' (dry-run)' : ''}`;
  let head: string;
  if (run.status === 'running') {
    head = `:hourglass_flowing_sand: *${name} in progress*, started by ${who} ${slackDate(run.at)}…`;
  } else if (run.status === 'failed') {
    // With no step planned there is nothing to retry: the error says what to deal with first.
    // Nor when the error already says when to press again (Azure could not be read, say).
    const error = run.error ? s(run.error, 400) : '';
    const retry =
      (run.plan && run.plan.steps.length === 0) || /\bpress \S+ again\b/i.test(error)
        ? ''
        : ` ${words.retry}`;
    head = `:x: *${name} failed*, started by ${who} ${slackDate(run.at)}${error ? `: ${error}` : ''}.${retry}`;
  } else if (dry) {
    const would = run.plan?.steps.length === 0 ? 'would change nothing:' : 'would make these calls:';
    head = `:test_tube: *Dry-run* by ${who} ${slackDate(run.at)}: nothing was changed (AZURE_REMEDIATION=dry-run). ${words.name} ${would}`;
  } else {
    head = `:no_entry: *${words.done}* by ${who} ${slackDate(run.at)}:`;
  }
  const byId = new Map((run.result?.steps ?? []).map((r) => [r.stepId, r]));
  const planned = run.plan?.steps ?? [];
  const lineOf = (step: PlannedStep) => {
    const r = byId.get(step.id);
    const mark = r
      ? STEP_EMOJI[r.status]
      : run.status === 'running'
        ? ':hourglass_flowing_sand:'
        : ':grey_question:';
    let line = `${mark} ${s(step.description, 400)}\n      ${code(step.call, clipSize(400, k))}`;
    if (r && r.status !== 'would-do') line += `\n      ${s(r.detail, 300)}`;
    if (r?.fix) line += `\n      *Fix:* ${s(r.fix, 300)}`;
    return line;
  };
  // The steps that stop the principal itself come last in a plan; they stay in sight (with the
  // notes) when the role assignment removals before them do not all fit, and of those the ones
  // that failed (with what to fix) stay before the ones that went through.
  const failed = (step: PlannedStep) => byId.get(step.id)?.status === 'failed';
  const removalSteps = planned.filter((step) => step.kind === 'remove-assignment');
  const removals = removalSteps.map((step) => ({ line: lineOf(step), first: failed(step) }));
  const principal = planned.filter((step) => step.kind !== 'remove-assignment').map(lineOf);
  // The plan's warnings (a possible tampering) first, then what the run leaves: shown whatever
  // the steps take.
  const notes = (run.plan?.warnings ?? []).map((w) => `${warningMark(w)} ${s(w, WARNING_CLIP)}`);
  if (words === REVOKE_WORDS && run.status === 'done' && !dry) {
    // What no Revoke takes back, said where the responder reads that it is done.
    notes.push(
      `:hourglass: Tokens issued before the Revoke stay valid until they expire: look for use after ${slackDate(run.finishedAt ?? run.at)} in the cluster's Kubernetes audit log.`,
    );
  }
  // The assignments whose removal failed are still there (but one that may have gone: its answer
  // was lost, and its step says so), in one note before the access the plan leaves (it asks for action now).
  const notRemoved =
    !dry && run.status !== 'running'
      ? removalSteps.filter((step) => {
          const r = byId.get(step.id);
          return r?.status === 'failed' && !r.maybeApplied;
        })
      : [];
  const named = (step: PlannedStep) => {
    const a = step.assignment;
    return a
      ? `${s(a.roleName ?? a.roleDefinitionId, 100)} at ${code(a.scope, clipSize(300, k))}`
      : code(step.target, clipSize(300, k));
  };
  if (notRemoved.length === 1) {
    notes.push(`:warning: Still has access through ${named(notRemoved[0]!)} (its removal failed)`);
  } else if (notRemoved.length > 1) {
    const listed = notRemoved.slice(0, NAMED_FAILURES).map(named).join('; ');
    const more = notRemoved.length - NAMED_FAILURES;
    notes.push(
      `:warning: Still has access through the ${notRemoved.length} role assignments whose removal failed: ${listed}${more > 0 ? `; and ${more} more` : ''}`,
    );
  }
  for (const rest of run.plan?.stillHasAccessThrough ?? []) {
    if (opts.removedLater?.has(rest.assignmentId.toLowerCase())) continue;
    const why =
      rest.kind === 'group'
        ? ' (a group assignment: remove the principal from the group)'
        : rest.kind === 'root'
          ? ' (the tenant root: remove it in Azure)'
          : ` (${words.name} leaves it)`;
    notes.push(
      `:warning: Still has access through ${s(rest.roleName, 100)} at ${code(rest.scope, clipSize(300, k))}${why}`,
    );
  }
  return fitRun(head, removals, principal, notes, clipSize(2500, k));
}

/**
 * `head`, as many of `removals` as fit whole (those marked `first` before the others, shown in
 * their own order), the `kept` lines, then as many of `notes` as fit whole, in at most `max`
 * characters. Whole lines and notes are left out rather than one cut in the middle (which could
 * leave a code span open), the first note excepted when it alone is too long. The notes are
 * fitted first, into up to half of the room, then the kept lines into what is left, then the
 * removals: a warning is never pushed out by steps.
 */
function fitRun(
  head: string,
  removals: ReadonlyArray<{ line: string; first: boolean }>,
  kept: readonly string[],
  notes: readonly string[],
  max: number,
): string {
  const all = [head, ...removals.map((r) => r.line), ...kept, ...notes].join('\n');
  if (all.length <= max) return all;
  const tail = wholeLines(notes, Math.floor(max / 2), true, 'notes');
  let room = max - (tail ? tail.length + 1 : 0);
  const head1 = clip(head, room);
  room -= head1.length;
  // The principal's steps stay (the first clipped rather than left out), with room kept for the
  // line that counts the removals left out.
  const keep = wholeLines(kept, room - 1 - (removals.length > 0 ? MORE_ROOM + 1 : 0), true, 'steps');
  room -= keep ? keep.length + 1 : 0;
  const shown = new Set<number>();
  let used = -1;
  // Those marked first, then (only once every one of them is shown) the others.
  for (const first of [true, false]) {
    if (!first && shown.size < removals.filter((r) => r.first).length) break;
    for (const [i, r] of removals.entries()) {
      if (r.first !== first) continue;
      // Room is kept for the line that says how many were left out, unless this is the last.
      const reserve = shown.size + 1 < removals.length ? MORE_ROOM : 0;
      if (used + 1 + r.line.length + reserve > room - 1) continue;
      shown.add(i);
      used += 1 + r.line.length;
    }
  }
  const body = removals.flatMap((r, i) => (shown.has(i) ? [r.line] : []));
  const left = removals.length - shown.size;
  if (left > 0 && used + 1 + moreLine(left, 'steps').length <= room - 1) body.push(moreLine(left, 'steps'));
  return [head1, body.join('\n'), keep, tail].filter((part) => part !== '').join('\n');
}

/** The assignments whose removal failed that the note after a run names (the others counted). */
const NAMED_FAILURES = 3;

/** Room kept for the line that says how many were left out. */
const MORE_ROOM = 32;
const moreLine = (left: number, what: 'steps' | 'notes') =>
  `… ${left} more ${left === 1 ? what.slice(0, -1) : what} not shown here`;

/**
 * As many of `lines` as fit whole in `max` characters, then a line saying how many were left out
 * (room for it is kept). `clipFirst`: a first line too long alone is clipped rather than left out.
 */
function wholeLines(
  lines: readonly string[],
  max: number,
  clipFirst: boolean,
  what: 'steps' | 'notes',
): string {
  const shown: string[] = [];
  let used = -1;
  let n = 0;
  for (; n < lines.length; n++) {
    // Room is kept for the line that says how many were left out, unless this is the last.
    const reserve = n < lines.length - 1 ? MORE_ROOM : 0;
    let line = lines[n]!;
    if (n === 0 && clipFirst && line.length + reserve > max)
      line = clipOutsideCode(line, Math.max(0, max - reserve));
    if (used + 1 + line.length + reserve > max) break;
    shown.push(line);
    used += 1 + line.length;
  }
  const more = moreLine(lines.length - n, what);
  if (n < lines.length && used + 1 + more.length <= max) shown.push(more);
  return shown.join('\n');
}

/**
 * `clip`, but never inside a code span: a cut that leaves one open ends before its opening
 * backtick instead (Slack would show the rest of the section as code).
 */
function clipOutsideCode(text: string, max: number): string {
  const cut = clip(text, max);
  const body = cut.endsWith('…') ? cut.slice(0, -1) : cut;
  if ((body.match(/`/g) ?? []).length % 2 === 0) return cut;
  return `${body.slice(0, body.lastIndexOf('`')).trimEnd()}…`;
}

/** Earlier Revoke rounds that were undone, one line each. */
export function pastText(past: readonly PastRevoke[], k = 1): string {
  const lines = past.map(
    (p) =>
      `:leftwards_arrow_with_hook: Revoked${p.mode === 'dry-run' ? ' (dry-run)' : ''} by ${mention(p.by)} ${slackDate(p.at)}, undone by ${mention(p.undoneBy)} ${slackDate(p.undoneAt)}`,
  );
  return clip(`*Earlier rounds*\n${lines.join('\n')}`, clipSize(1500, k));
}

/** Assignment ids (lower case) that a live "Remove broad roles too" removed. */
function removedByBroad(broad: RevokeRun | undefined): Set<string> {
  const out = new Set<string>();
  if (broad?.mode !== 'live') return out;
  const finished = new Set(
    (broad.result?.steps ?? [])
      .filter((r) => r.status === 'done' || r.status === 'already-done')
      .map((r) => r.stepId),
  );
  for (const step of broad.plan?.steps ?? []) {
    if (finished.has(step.id)) out.add(step.target.toLowerCase());
  }
  return out;
}

/** The status text of a Revoke run: progress, then a line per step with its result. */
export function revokeText(run: RevokeRun, k = 1, broad?: RevokeRun): string {
  return runText(run, REVOKE_WORDS, k, { removedLater: removedByBroad(broad) });
}

/** The status text of "Remove broad roles too": progress, then a line per step with its result. */
export function broadText(run: RevokeRun, k = 1): string {
  return runText(run, BROAD_WORDS, k);
}

/** What an Undo says of the assignments it left to PIM, if any (after "reversed", "is back"). */
export function leftToPimText(undo: Pick<UndoRun, 'leftToPim' | 'result'>): string {
  const n = undo.leftToPim ?? leftToPim(undo.result?.steps);
  if (n === 0) return '';
  return `, but for ${n === 1 ? 'a role assignment' : `${n} role assignments`} that PIM made for a set time, left to PIM`;
}

/** What undoing a step does, for people. */
export function undoLabel(step: PlannedStep): string {
  switch (step.kind) {
    case 'remove-assignment': {
      const a = step.assignment;
      if (!a) return `Re-create the role assignment ${step.target}`;
      // One that PIM made for a set time is not re-created (see the remediator's Undo).
      const verb = restoreInfo(step)?.endsAt ? 'Leave' : 'Re-create';
      return `${verb} "${a.roleName ?? a.roleDefinitionId}" at ${a.scope}${verb === 'Leave' ? ' to PIM' : ''}`;
    }
    case 'disable-service-principal':
      return `Re-enable the service principal ${step.target}`;
    case 'disable-user':
      return `Re-enable the user account ${step.target}`;
    case 'revoke-user-sessions':
      return `Sign-in sessions of ${step.target} (revoked sessions cannot be restored)`;
    default:
      return step.description;
  }
}

/** The steps of the runs Undo reverses, by step id. */
function stepsById(runs: ReadonlyArray<RevokeRun | undefined>): Map<string, PlannedStep> {
  const out = new Map<string, PlannedStep>();
  for (const run of runs) for (const step of run?.plan?.steps ?? []) out.set(step.id, step);
  return out;
}

/** The status text of Undo: progress, then a line per undone step with its result. */
export function undoText(undo: UndoRun, runs: ReadonlyArray<RevokeRun | undefined>, k = 1): string {
  const s = (text: string, n: number) => clip(literal(text), clipSize(n, k));
  const who = mention(undo.by);
  const dry = undo.mode === 'dry-run';
  let head: string;
  if (undo.status === 'running') {
    head = `:hourglass_flowing_sand: *Undo in progress*, started by ${who} ${slackDate(undo.at)}…`;
  } else if (undo.status === 'failed') {
    head = `:x: *Undo failed*, started by ${who} ${slackDate(undo.at)}${undo.error ? `: ${s(undo.error, 400)}` : ''}. Press Undo again to retry.`;
  } else if (dry) {
    head = `:test_tube: *Undo (dry-run)* by ${who} ${slackDate(undo.at)}: nothing was changed. It would:`;
  } else if (undo.elsewhere) {
    head = `:leftwards_arrow_with_hook: *Undone* by ${who} ${slackDate(undo.at)} through alert \`${s(undo.elsewhere, 80)}\` of the same identity: the access removed above is back${leftToPimText(undo)}, and the principal enabled.`;
  } else {
    head = `:leftwards_arrow_with_hook: *Undone* by ${who} ${slackDate(undo.at)}: what the revoke changed is reversed${leftToPimText(undo)}:`;
  }
  const steps = stepsById(runs);
  const lineOf = (r: StepResult) => {
    const step = steps.get(r.stepId);
    let line = `${STEP_EMOJI[r.status]} ${s(step ? undoLabel(step) : r.stepId, 300)}`;
    if (r.status !== 'would-do') line += `\n      ${s(r.detail, 300)}`;
    if (r.fix) line += `\n      *Fix:* ${s(r.fix, 300)}`;
    return line;
  };
  // As a Revoke's: the re-created assignments give way (those that failed last), never the
  // principal's account, nor the notes.
  const results = undo.result?.steps ?? [];
  const isAssignment = (r: StepResult) => steps.get(r.stepId)?.kind === 'remove-assignment';
  const assignments = results
    .filter(isAssignment)
    .map((r) => ({ line: lineOf(r), first: r.status === 'failed' }));
  const others = results.filter((r) => !isAssignment(r)).map(lineOf);
  // A change whose answer was lost and that no read could settle: Undo does not touch it.
  const unsettled = runs.flatMap((run) =>
    (run?.result?.steps ?? []).filter((r) => r.status === 'failed' && r.maybeApplied),
  );
  const notes = unsettled.map((r) => {
    const step = steps.get(r.stepId);
    return `:warning: ${s(step?.description ?? r.stepId, 300)} may have been made (its answer was lost, and Azure could not be read to tell): Undo left it; check it in Azure.`;
  });
  return fitRun(head, assignments, others, notes, clipSize(2500, k));
}

const plural = (n: number, one: string, many: string) => (n === 1 ? one : `${n} ${many}`);

/**
 * The Undo confirm dialog's text (at most 300 characters): the assignments it re-creates and the
 * principal it re-enables, from the steps the live runs completed.
 */
export function undoConfirmText(state: SlackAlertState): string {
  const done = new Set<string>();
  for (const run of undoableRuns(state)) {
    for (const r of run.result.steps) if (r.status === 'done') done.add(r.stepId);
  }
  // An Undo pressed again after one that failed partway makes only what that one left undone.
  const retried =
    state.undo?.mode === 'live' && state.undo.status === 'failed' && state.undo.of === state.revoke?.at
      ? state.undo.result
      : undefined;
  const back = new Set(retried?.steps.filter(isFinished).map((r) => r.stepId));
  const steps = [...stepsById([state.broad, state.revoke]).values()].filter(
    (st) => done.has(st.id) && !back.has(st.id),
  );
  const removals = steps.filter((st) => st.kind === 'remove-assignment');
  // Those PIM made for a set time are not re-created (see the remediator's Undo).
  const timeBound = removals.filter((st) => restoreInfo(st)?.endsAt);
  const assignments = removals.filter((st) => !restoreInfo(st)?.endsAt);
  const enables = steps.filter((st) => st.kind === 'disable-service-principal' || st.kind === 'disable-user');
  const named = (list: readonly PlannedStep[]) =>
    list.map((st) =>
      st.assignment ? `"${st.assignment.roleName ?? 'role'}" at ${st.assignment.scope}` : st.target,
    );
  const parts: string[] = [];
  if (assignments.length > 0) {
    parts.push(
      `Re-creates ${plural(assignments.length, 'the role assignment', 'role assignments')}: ${named(assignments).join('; ')}.`,
    );
  }
  if (timeBound.length > 0) {
    parts.push(
      `Leaves ${plural(timeBound.length, 'the PIM assignment', 'PIM assignments')} to PIM (made here it would be permanent): ${named(timeBound).join('; ')}.`,
    );
  }
  for (const st of enables) {
    parts.push(
      `Re-enables the ${st.kind === 'disable-user' ? 'user account' : 'service principal'} ${st.target}.`,
    );
  }
  const after =
    assignments.length === 0 && timeBound.length > 0
      ? timeBound.every((st) => restoreInfo(st)?.activated)
        ? 'The identity can activate its role again in PIM.'
        : 'Its access comes back once assigned again in PIM.'
      : 'The identity can list the cluster credentials again.';
  parts.push(after);
  const sessions = steps.some((st) => st.kind === 'revoke-user-sessions')
    ? ' Revoked sign-in sessions stay revoked.'
    : '';
  const lead = back.size > 0 ? `Finishes the Undo that failed partway (what it put back stays). ` : '';
  const full = literal(`${lead}${parts.join(' ')}${sessions}`);
  if (full.length <= LIMITS.confirmText) return full;
  const roles = [...new Set(assignments.map((st) => st.assignment?.roleName ?? 'role'))].join(', ');
  const short = [
    assignments.length > 0
      ? `Re-creates ${plural(assignments.length, 'the role assignment', 'role assignments')} (${roles})`
      : '',
    timeBound.length > 0
      ? `leaves ${plural(timeBound.length, 'a PIM assignment', 'PIM assignments')} to PIM`
      : '',
    enables.length > 0
      ? `re-enables the ${enables.some((st) => st.kind === 'disable-user') ? 'user account' : 'service principal'}`
      : '',
  ]
    .filter(Boolean)
    .join(' and ');
  // What cannot be undone is said whatever the length: the role list gives way first.
  const tail = esc(`. ${after}${sessions}`);
  const head = lead + short.charAt(0).toUpperCase() + short.slice(1);
  return `${clip(literal(head), LIMITS.confirmText - tail.length)}${tail}`;
}

/** How a confirm dialog in dry-run begins. */
const DRY_RUN_CONFIRM = '*Dry-run:* nothing will change; it lists the calls it would make. ';

/**
 * A stored Revoke confirm text as the current mode says it: the text was written in the mode of
 * its time (when the alert was posted or planned), and a switch of AZURE_REMEDIATION since must
 * not leave a live dialog promising that nothing will change, nor the other way round.
 */
function confirmTextInMode(text: string, mode: 'dry-run' | 'live'): string {
  const bare = text.startsWith(DRY_RUN_CONFIRM) ? text.slice(DRY_RUN_CONFIRM.length) : text;
  return clip(mode === 'dry-run' ? DRY_RUN_CONFIRM + bare : bare, LIMITS.confirmText);
}

/**
 * The "Remove broad roles too" confirm dialog's text (at most 300 characters): it names the
 * assignments it removes.
 */
export function broadConfirmText(mode: 'dry-run' | 'live', plan: RemediationPlan | undefined): string {
  const prefix = mode === 'dry-run' ? DRY_RUN_CONFIRM : '';
  const broad = removableBroadAccess(plan);
  const tail = ' The principal loses everything these roles grant there, not only the Arc access.';
  const names = broad.map((r) => `${r.roleName} at ${r.scope}`);
  const full = `${prefix}Removes ${plural(broad.length, 'this assignment', 'assignments')}: ${literal(names.join('; '))}.${tail}`;
  if (full.length <= LIMITS.confirmText) return full;
  // The role names give way first: what removing them means must stay in the dialog.
  const head = `${prefix}Removes ${plural(broad.length, 'the assignment', 'assignments')} of `;
  const rest = ` (listed in the alert).${tail}`;
  const roles = clip(
    literal([...new Set(broad.map((r) => r.roleName))].join(', ')),
    Math.max(24, LIMITS.confirmText - head.length - rest.length),
  );
  return clip(`${head}${roles}${rest}`, LIMITS.confirmText);
}

/** The steps that disable the principal, and what they say of one disabled already. */
const DISABLES = new Set(['disable-service-principal', 'disable-user']);
const DISABLED_ALREADY = '(disabled already as the alert was posted: the run checks)';

const STEP_SUMMARY: Record<string, (n: number) => string> = {
  'remove-assignment': (n) =>
    `remove ${n === 1 ? 'the role assignment' : `${n} role assignments`} that granted the access`,
  'disable-service-principal': () => 'disable the service principal',
  'disable-user': () => 'disable the user account (every sign-in, not only Azure)',
  'revoke-user-sessions': () => "revoke the user's sign-in sessions (not restorable)",
};

/**
 * The Revoke confirm dialog's text, from the plan's steps (at most 300 characters): each step's
 * description when they fit, else a summary by kind of step.
 */
export function confirmTextFor(
  mode: 'dry-run' | 'live',
  planned: ReadonlyArray<{ description: string; kind?: string }> | undefined,
  stillHasAccess = 0,
  options: { lead?: string; principalDisabled?: boolean } = {},
): string {
  const prefix = (mode === 'dry-run' ? DRY_RUN_CONFIRM : '') + (options.lead ?? '');
  // A principal disabled already (a Revoke on another alert, say): its step only checks that.
  const steps = options.principalDisabled
    ? planned?.map((s) =>
        DISABLES.has(s.kind ?? '') ? { ...s, description: `${s.description} ${DISABLED_ALREADY}` } : s,
      )
    : planned;
  if (steps?.length === 0) {
    // A plan that found nothing it may act on (no principal confirmed, say): no promise.
    return clip(
      `${prefix}The plan found nothing it may change (its reasons show once it runs): pressing plans again and changes only what Azure then confirms.`,
      LIMITS.confirmText,
    );
  }
  if (!steps) {
    return clip(
      `${prefix}Removes the Arc role assignment(s) that granted this access and disables the service principal.`,
      LIMITS.confirmText,
    );
  }
  const rest = stillHasAccess > 0 ? ` Other access (${stillHasAccess}) stays.` : '';
  const full = `${prefix}${steps.map((s, i) => `${i + 1}) ${literal(s.description)}`).join('; ')}.${rest}`;
  if (full.length <= LIMITS.confirmText) return full;
  const counts = new Map<string, number>();
  for (const s of steps) counts.set(s.kind ?? 'other', (counts.get(s.kind ?? 'other') ?? 0) + 1);
  const parts = [...counts].map(([kind, n]) => {
    const part = STEP_SUMMARY[kind]?.(n) ?? `${n} other change${n === 1 ? '' : 's'}`;
    return options.principalDisabled && DISABLES.has(kind) ? `${part} ${DISABLED_ALREADY}` : part;
  });
  return clip(`${prefix}Will ${parts.join(', then ')}.${rest}`, LIMITS.confirmText);
}

/**
 * The Revoke confirm dialog's text as the alert stands. A live Revoke that failed partway is
 * pressed again to finish it, and keeps what it changed: its dialog names the steps left (the
 * retry plans again first, and also acts on what Azure shows then). Otherwise the plan's text
 * (`state.confirmText`) in the current mode.
 */
export function revokeConfirmText(state: SlackAlertState, mode: 'dry-run' | 'live'): string {
  const run = state.revoke;
  if (run?.status === 'failed' && run.mode === 'live' && mode === 'live' && run.plan && run.result) {
    // What a live Undo of this run put back is to be done again.
    const undone =
      state.undo?.mode === 'live' && state.undo.of === run.at ? (state.undo.result?.steps ?? []) : [];
    const reversed = new Set(undone.filter(isFinished).map((r) => r.stepId));
    const finished = new Set(
      run.result.steps.filter((r) => isFinished(r) && !reversed.has(r.stepId)).map((r) => r.stepId),
    );
    const left = run.plan.steps.filter((st) => !finished.has(st.id));
    if (finished.size > 0 && left.length > 0) {
      return confirmTextFor(mode, left, run.plan.stillHasAccessThrough.length, {
        lead: `Finishes the Revoke that failed partway (${plural(finished.size, 'the change it made stays', 'changes it made stay')}): `,
      });
    }
  }
  return confirmTextInMode(state.confirmText, mode);
}

import type { types } from '@slack/bolt';
import type { AlertRecord } from '../../core/alert.ts';
import { isGroup } from '../../core/azure-ids.ts';
import type { Detection } from '../../core/detection.ts';
import { formatDuration } from '../../core/duration.ts';
import { alertCause, FUTURE_TOLERANCE_MS } from '../../core/engine.ts';
import type { PlannedStep, RemediationPlan, StepResult } from '../../core/remediation.ts';
import { TAMPERING } from '../../core/remediation-plan.ts';
import { ARC_RULE_NAME } from '../../core/rule.ts';
import {
  type BenignMark,
  canRemoveBroad,
  canUndo,
  type PastRevoke,
  type RevokeRun,
  removableBroadAccess,
  revokeInForce,
  type SlackAlertState,
  settleStaleRuns,
  type UndoRun,
  undoableRuns,
} from '../alert-state.ts';
import { ACTION_IDS, BLOCK_IDS } from '../ids.ts';
import { checkMessageLimits, LIMITS, TOTAL_TEXT_BUDGET } from './limits.ts';
import {
  clip,
  code,
  describePlace,
  esc,
  inline,
  isoTime,
  link,
  mention,
  parseTime,
  slackDate,
} from './text.ts';

/** What the alert builder needs: the stored state plus the remediation mode. */
export interface AlertView extends SlackAlertState {
  mode: 'dry-run' | 'live';
  /** The remediator can remove broad roles (offers "Remove broad roles too"). */
  broadRemoval?: boolean;
  /**
   * The current time: runs still marked running after their lock expired are shown as
   * interrupted (failed), with their button offered again. Absent: shown as stored.
   */
  now?: number;
  /** The Azure portal that the cluster links to (`portalForArm`); the public one when absent. */
  portal?: string;
}

/** A message body: the notification fallback `text` and the blocks. */
export interface SlackMessage {
  text: string;
  blocks: types.KnownBlock[];
}

const MITRE = [
  {
    id: 'T1078.004',
    name: 'Valid Accounts: Cloud Accounts',
    url: 'https://attack.mitre.org/techniques/T1078/004/',
  },
  {
    id: 'T1552.007',
    name: 'Unsecured Credentials: Container API',
    url: 'https://attack.mitre.org/techniques/T1552/007/',
  },
] as const;

/** The rule's investigation steps, condensed. */
const TRIAGE = [
  'Is the appid a known application? Look it up in Entra ID; recently created service principals are more suspicious.',
  'Is the source country or AS one your organisation operates from (CI runners, VPN, offices)?',
  'Correlate with the sign-in logs around the event time: service principal sign-in, then the credential listing.',
  'Was the Arc cluster role assigned recently? `Azure Arc Enabled Kubernetes Cluster User Role` is needed for this call.',
  'Check the Kubernetes audit log for Arc-proxied operations (secrets, configmaps) after the access.',
];
const RESPONSE =
  'If it is not expected: *Revoke* (removes the Arc role assignment and disables the principal), review the Kubernetes audit log and rotate the secrets the identity could read.';

const SEVERITY_EMOJI: Record<string, string> = {
  critical: ':red_circle:',
  high: ':large_orange_circle:',
  medium: ':large_yellow_circle:',
  low: ':large_blue_circle:',
};
/**
 * The alert's severity: Elastic's, else the rule's (`medium`). Azure Monitor's is not used: an
 * activity-log alert rule has no severity of its own, and its alerts always say `Sev4`.
 */
function severityOf(d: Detection): string {
  const sev = String(d.elasticAlert?.severity ?? 'medium')
    .trim()
    .toLowerCase();
  return SEVERITY_EMOJI[sev] ? sev : 'medium';
}

const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const DASH = '—';
const MAX_URL = 600;

/** The public cloud's Azure portal. */
const PUBLIC_PORTAL = 'https://portal.azure.com';

/** The portal of each sovereign cloud, by its Resource Manager host (README, Sovereign clouds). */
const SOVEREIGN_PORTALS: Readonly<Record<string, string>> = {
  'management.usgovcloudapi.net': 'https://portal.azure.us',
  'management.chinacloudapi.cn': 'https://portal.azure.cn',
};

/**
 * The Azure portal of the cloud whose Resource Manager is `armEndpoint` (AZURE_ARM_ENDPOINT): a
 * sovereign cloud's resources are not found in the public portal. Any other endpoint (the public
 * one, a private endpoint's, which keeps the public host name) gives the public portal.
 */
export function portalForArm(armEndpoint: string | undefined): string {
  try {
    return SOVEREIGN_PORTALS[new URL(armEndpoint ?? '').hostname.toLowerCase()] ?? PUBLIC_PORTAL;
  } catch {
    return PUBLIC_PORTAL;
  }
}

/** Azure portal link of a resource id: `https://portal.azure.com/#@/resource<id>`. */
export function portalUrl(resourceId: string, portal: string = PUBLIC_PORTAL): string | undefined {
  if (!resourceId.startsWith('/') || resourceId.length > MAX_URL - 40) return undefined;
  return `${portal}/#@/resource${resourceId}`;
}

/** `text` without the full stops and spaces it ends with (a loop: no regex backtracking). */
function withoutFinalStops(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  let end = text.length;
  while (end > 0 && (text[end - 1] === '.' || text[end - 1]!.trim() === '')) end--;
  return text.slice(0, end);
}

/** "Why it fired", from the engine's view: first use of the IP by the identity in the window. */
function whyText(alert: AlertRecord, k = 1): string {
  const others = alert.otherIps;
  const window = formatDuration(alert.windowMs);
  const otherText = `${alert.otherIpsEstimated ? 'about ' : ''}${others} other IP${others === 1 ? '' : 's'} seen`;
  const cause = alertCause(alert);
  let why =
    cause === 'seen-here'
      ? `Elastic judged this IP new for this identity, but this service saw the pair within ${window} (last ${slackDate(alert.seenHereAt!)}); ${otherText}`
      : cause === 'older-than-window'
        ? `an event from longer ago than ${window} (a late delivery or a replay). No history that old is kept, so whether the IP was new then cannot be told: such events alert once per pair, and are not stored; ${otherText} in the last ${window}`
        : `first use of this IP by this identity in ${window}; ${otherText}`;
  if (alert.reason === 'elastic-alert') {
    // Kibana's reasons end in a full stop; the sentence gets its own.
    const reason = withoutFinalStops(alert.detection.elasticAlert?.reason);
    why += reason
      ? `. Elastic: ${clip(esc(inline(reason)), size(600, k))}`
      : '. Raised by the Elastic new-terms rule';
  }
  return `*Why it fired:* ${why}.`;
}

/**
 * Where an investigation field the rule names is not the field Elastic stores: its pipeline
 * renames the evidence's principalType to principal_type (FORMATS.md §0.1), so a search on the
 * rule's name finds nothing.
 */
const STORED_AS: Readonly<Record<string, string>> = {
  'azure.activitylogs.identity.authorization.evidence.principalType':
    'azure.activitylogs.identity.authorization.evidence.principal_type',
};

/** The rule's investigation fields, labelled by their ECS names, for those the detection carried. */
export function investigationFields(d: Detection): Array<[string, string]> {
  const out: Array<[string, string | undefined]> = [
    ['@timestamp', d.eventTime],
    ['azure.activitylogs.operation_name', d.operation],
    // As the event wrote it: the value to search for in Elastic, where the field is a keyword.
    ['azure.activitylogs.identity.claims.appid', d.appIdAsSent ?? d.appId],
    ['azure.activitylogs.identity.authorization.evidence.role', d.evidence.role],
    // Only what the event said: a type inferred from the token (idtyp) is no evidence field.
    ['azure.activitylogs.identity.authorization.evidence.principalType', d.evidence.principalType],
    ['azure.resource.id', d.cluster?.id],
    ['source.ip', d.sourceIp],
    // Only what the event carried: geo and AS looked up here are shown with the source IP instead.
    ['source.geo.country_name', d.located?.geo ? undefined : d.geo?.countryName],
    ['source.geo.city_name', d.located?.geo ? undefined : d.geo?.cityName],
    ['source.as.organization.name', d.located?.as ? undefined : d.as?.organizationName],
  ];
  return out.filter((f): f is [string, string] => typeof f[1] === 'string' && f[1] !== '');
}

/** The host of a web link, as a reader should see where it leads. */
function hostOf(url: string): string {
  try {
    return new URL(url).host || url;
  } catch {
    return url;
  }
}

/**
 * When the detection was raised: by Elastic or Azure Monitor when it came as their alert (with
 * when it was received here), else when it was received and judged here.
 */
function detectedText(d: Detection, receivedAt: number): string {
  const raisedAt = parseTime(d.elasticAlert?.raisedAt ?? d.azureAlert?.firedAt);
  if (raisedAt === undefined) return slackDate(receivedAt);
  const by = d.elasticAlert ? 'Elastic' : 'Azure Monitor';
  return `${slackDate(raisedAt)} by ${by}\nreceived ${slackDate(receivedAt)}`;
}

/**
 * The caller's principal type and object id: the type the evidence gave, else the one the token
 * implies (`idtyp`, or a user's UPN or name), said so. Evidence of an assignment made to a group
 * names the group, not the caller: the group is shown apart.
 */
function principalText(
  d: Detection,
  s: (text: string, n: number) => string,
  c: (text: string, n: number) => string,
): string {
  const ev = d.evidence.principalType;
  const viaGroup = isGroup(ev);
  const fromToken = d.principalType ?? (d.user?.upn || d.user?.name ? 'User' : undefined);
  const lines = [ev && !viaGroup ? s(ev, 60) : fromToken ? `${s(fromToken, 60)} (from the token)` : DASH];
  if (d.principalId) lines.push(c(d.principalId, 60));
  if (viaGroup) {
    const group = d.evidence.principalId ? ` ${c(d.evidence.principalId, 60)}` : '';
    lines.push(`access through a group assignment: group${group}`);
  }
  return lines.join('\n');
}

/** Room for one plan warning: the longest name two ARM ids and say why (about 500 characters). */
export const WARNING_CLIP = 800;

/** The Revoke button's text in each mode: a click sends it back, so the handler knows what the dialog promised. */
export const REVOKE_BUTTON = { live: 'Revoke', dryRun: 'Revoke (dry-run)' } as const;

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

/** A clip size scaled down when a message must shrink to fit Slack's total budget. */
function size(n: number, k: number): number {
  return Math.max(24, Math.floor(n * k));
}

const untilText = (until: number | undefined) =>
  until === undefined ? 'with no expiry' : `until ${slackDate(until)}`;

/** True while the Mark benign's allowlist entry holds detections back (at `now`, when known). */
const benignInForce = (b: BenignMark | undefined, now: number | undefined): b is BenignMark =>
  b !== undefined && b.removed === undefined && (b.until === undefined || now === undefined || b.until > now);

/** The status line of a Mark benign; with `now`, an entry that has expired says so. */
export function benignText(b: BenignMark, k = 1, now?: number): string {
  const mark = `*Marked benign* by ${mention(b.by)} ${slackDate(b.at)}: “${clip(esc(inline(b.reason)), size(500, k))}”.`;
  if (b.removed) {
    return `:heavy_minus_sign: ~${mark}~ Allowlist entry removed by ${mention(b.removed.by)} ${slackDate(b.removed.at)}: detections of this pair are no longer allowlisted.`;
  }
  if (b.until !== undefined && now !== undefined && b.until <= now) {
    return `:heavy_minus_sign: ~${mark}~ The allowlist entry expired ${slackDate(b.until)}: detections of this pair are no longer allowlisted.`;
  }
  return `:white_check_mark: ${mark} Allowlisted ${untilText(b.until)}.`;
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
  const s = (text: string, n: number) => clip(esc(inline(text)), size(n, k));
  const who = mention(run.by);
  const dry = run.mode === 'dry-run';
  const name = `${words.name}${dry ? ' (dry-run)' : ''}`;
  let head: string;
  if (run.status === 'running') {
    head = `:hourglass_flowing_sand: *${name} in progress*, started by ${who} ${slackDate(run.at)}…`;
  } else if (run.status === 'failed') {
    // With no step planned there is nothing to retry: the error says what to deal with first.
    const retry = run.plan && run.plan.steps.length === 0 ? '' : ` ${words.retry}`;
    head = `:x: *${name} failed*, started by ${who} ${slackDate(run.at)}${run.error ? `: ${s(run.error, 400)}` : ''}.${retry}`;
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
    let line = `${mark} ${s(step.description, 300)}\n      ${code(step.call, size(400, k))}`;
    if (r && r.status !== 'would-do') line += `\n      ${s(r.detail, 300)}`;
    if (r?.fix) line += `\n      *Fix:* ${s(r.fix, 300)}`;
    return line;
  };
  // The steps that stop the principal itself come last in a plan; they stay in sight (with the
  // notes) when the role assignment removals before them do not all fit.
  const removals = planned.filter((step) => step.kind === 'remove-assignment').map(lineOf);
  const principal = planned.filter((step) => step.kind !== 'remove-assignment').map(lineOf);
  // The plan's warnings (a possible tampering) first, then what the run leaves: shown whatever
  // the steps take.
  const notes = (run.plan?.warnings ?? []).map((w) => `${warningMark(w)} ${s(w, WARNING_CLIP)}`);
  for (const rest of run.plan?.stillHasAccessThrough ?? []) {
    if (opts.removedLater?.has(rest.assignmentId.toLowerCase())) continue;
    const why =
      rest.kind === 'group'
        ? ' (a group assignment: remove the principal from the group)'
        : rest.kind === 'root'
          ? ' (the tenant root: remove it in Azure)'
          : ` (${words.name} leaves it)`;
    notes.push(
      `:warning: Still has access through ${s(rest.roleName, 100)} at ${code(rest.scope, size(300, k))}${why}`,
    );
  }
  return fitLines(head, removals, principal, notes, size(2500, k));
}

/**
 * `head`, as many of `lines` as fit whole, the `kept` lines, then as many of `notes` as fit whole,
 * in at most `max` characters. Whole lines and notes are left out rather than one cut in the
 * middle (which could leave a code span open), the first note excepted when it alone is too long.
 * The notes are fitted first, into up to half of the room, then the kept lines into what is left,
 * then `lines`: a warning is never pushed out by steps.
 */
function fitLines(
  head: string,
  lines: readonly string[],
  kept: readonly string[],
  notes: readonly string[],
  max: number,
): string {
  const all = [head, ...lines, ...kept, ...notes].join('\n');
  if (all.length <= max) return all;
  const tail = wholeLines(notes, Math.floor(max / 2), true);
  let room = max - (tail ? tail.length + 1 : 0);
  const head1 = clip(head, room);
  room -= head1.length;
  const keep = wholeLines(kept, room - 1, false);
  room -= keep ? keep.length + 1 : 0;
  const body = wholeLines(lines, room - 1, false);
  return [head1, body, keep, tail].filter((part) => part !== '').join('\n');
}

/**
 * As many of `lines` as fit whole in `max` characters, then a line saying how many were left out
 * (room for it is kept). `clipFirst`: a first line too long alone is clipped rather than left out.
 */
function wholeLines(lines: readonly string[], max: number, clipFirst: boolean): string {
  const shown: string[] = [];
  let used = -1;
  let n = 0;
  for (; n < lines.length; n++) {
    // Room is kept for the line that says how many were left out, unless this is the last.
    const reserve = n < lines.length - 1 ? 32 : 0;
    let line = lines[n]!;
    if (n === 0 && clipFirst && line.length + reserve > max) line = clip(line, Math.max(0, max - reserve));
    if (used + 1 + line.length + reserve > max) break;
    shown.push(line);
    used += 1 + line.length;
  }
  const more = `… ${lines.length - n} more not shown here`;
  if (n < lines.length && used + 1 + more.length <= max) shown.push(more);
  return shown.join('\n');
}

/** Earlier Revoke rounds that were undone, one line each. */
function pastText(past: readonly PastRevoke[], k = 1): string {
  const lines = past.map(
    (p) =>
      `:leftwards_arrow_with_hook: Revoked${p.mode === 'dry-run' ? ' (dry-run)' : ''} by ${mention(p.by)} ${slackDate(p.at)}, undone by ${mention(p.undoneBy)} ${slackDate(p.undoneAt)}`,
  );
  return clip(`*Earlier rounds*\n${lines.join('\n')}`, size(1500, k));
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
function revokeText(run: RevokeRun, k = 1, broad?: RevokeRun): string {
  return runText(run, REVOKE_WORDS, k, { removedLater: removedByBroad(broad) });
}

/** The status text of "Remove broad roles too": progress, then a line per step with its result. */
function broadText(run: RevokeRun, k = 1): string {
  return runText(run, BROAD_WORDS, k);
}

/** What undoing a step does, for people. */
export function undoLabel(step: PlannedStep): string {
  switch (step.kind) {
    case 'remove-assignment': {
      const a = step.assignment;
      return a
        ? `Re-create "${a.roleName ?? a.roleDefinitionId}" at ${a.scope}`
        : `Re-create the role assignment ${step.target}`;
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
function undoText(undo: UndoRun, runs: ReadonlyArray<RevokeRun | undefined>, k = 1): string {
  const s = (text: string, n: number) => clip(esc(inline(text)), size(n, k));
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
    head = `:leftwards_arrow_with_hook: *Undone* by ${who} ${slackDate(undo.at)} through alert \`${s(undo.elsewhere, 80)}\` of the same identity: the access removed above is back, and the principal enabled.`;
  } else {
    head = `:leftwards_arrow_with_hook: *Undone* by ${who} ${slackDate(undo.at)}: what the revoke changed is reversed:`;
  }
  const steps = stepsById(runs);
  const lines = (undo.result?.steps ?? []).map((r) => {
    const step = steps.get(r.stepId);
    let line = `${STEP_EMOJI[r.status]} ${s(step ? undoLabel(step) : r.stepId, 300)}`;
    if (r.status !== 'would-do') line += `\n      ${s(r.detail, 300)}`;
    if (r.fix) line += `\n      *Fix:* ${s(r.fix, 300)}`;
    return line;
  });
  // A change whose answer was lost and that no read could settle: Undo does not touch it.
  const unsettled = runs.flatMap((run) =>
    (run?.result?.steps ?? []).filter((r) => r.status === 'failed' && r.maybeApplied),
  );
  for (const r of unsettled) {
    const step = steps.get(r.stepId);
    lines.push(
      `:warning: ${s(step?.description ?? r.stepId, 300)} may have been made (its answer was lost, and Azure could not be read to tell): Undo left it; check it in Azure.`,
    );
  }
  return clip([head, ...lines].join('\n'), size(2500, k));
}

const plural = (n: number, one: string, many: string) => (n === 1 ? one : `${n} ${many}`);

/**
 * The Undo confirm dialog's text (at most 300 characters): the assignments it re-creates and the
 * principal it re-enables, from the steps the live runs completed.
 */
function undoConfirmText(state: SlackAlertState): string {
  const done = new Set<string>();
  for (const run of undoableRuns(state)) {
    for (const r of run.result.steps) if (r.status === 'done') done.add(r.stepId);
  }
  const steps = [...stepsById([state.broad, state.revoke]).values()].filter((st) => done.has(st.id));
  const assignments = steps.filter((st) => st.kind === 'remove-assignment');
  const enables = steps.filter((st) => st.kind === 'disable-service-principal' || st.kind === 'disable-user');
  const parts: string[] = [];
  if (assignments.length > 0) {
    const list = assignments.map((st) =>
      st.assignment ? `"${st.assignment.roleName ?? 'role'}" at ${st.assignment.scope}` : st.target,
    );
    parts.push(
      `Re-creates ${plural(assignments.length, 'the role assignment', 'role assignments')}: ${list.join('; ')}.`,
    );
  }
  for (const st of enables) {
    parts.push(
      `Re-enables the ${st.kind === 'disable-user' ? 'user account' : 'service principal'} ${st.target}.`,
    );
  }
  parts.push('The identity can list the cluster credentials again.');
  const full = esc(inline(parts.join(' ')));
  if (full.length <= LIMITS.confirmText) return full;
  const roles = [...new Set(assignments.map((st) => st.assignment?.roleName ?? 'role'))].join(', ');
  const short = [
    assignments.length > 0
      ? `Re-creates ${plural(assignments.length, 'the role assignment', 'role assignments')} (${roles})`
      : '',
    enables.length > 0
      ? `re-enables the ${enables.some((st) => st.kind === 'disable-user') ? 'user account' : 'service principal'}`
      : '',
  ]
    .filter(Boolean)
    .join(' and ');
  return clip(esc(`${short}. The identity can list the cluster credentials again.`), LIMITS.confirmText);
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
  const full = `${prefix}Removes ${plural(broad.length, 'this assignment', 'assignments')}: ${esc(inline(names.join('; ')))}.${tail}`;
  if (full.length <= LIMITS.confirmText) return full;
  // The role names give way first: what removing them means must stay in the dialog.
  const head = `${prefix}Removes ${plural(broad.length, 'the assignment', 'assignments')} of `;
  const rest = ` (listed in the alert).${tail}`;
  const roles = clip(
    esc([...new Set(broad.map((r) => r.roleName))].join(', ')),
    Math.max(24, LIMITS.confirmText - head.length - rest.length),
  );
  return clip(`${head}${roles}${rest}`, LIMITS.confirmText);
}

const STEP_SUMMARY: Record<string, (n: number) => string> = {
  'remove-assignment': (n) =>
    `remove ${n === 1 ? 'the role assignment' : `${n} role assignments`} that granted the access`,
  'disable-service-principal': () => 'disable the service principal',
  'disable-user': () => 'disable the user account',
  'revoke-user-sessions': () => "revoke the user's sign-in sessions",
};

/**
 * The Revoke confirm dialog's text, from the plan's steps (at most 300 characters): each step's
 * description when they fit, else a summary by kind of step.
 */
export function confirmTextFor(
  mode: 'dry-run' | 'live',
  steps: ReadonlyArray<{ description: string; kind?: string }> | undefined,
  stillHasAccess = 0,
): string {
  const prefix = mode === 'dry-run' ? DRY_RUN_CONFIRM : '';
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
  const full = `${prefix}${steps.map((s, i) => `${i + 1}) ${esc(inline(s.description))}`).join('; ')}.${rest}`;
  if (full.length <= LIMITS.confirmText) return full;
  const counts = new Map<string, number>();
  for (const s of steps) counts.set(s.kind ?? 'other', (counts.get(s.kind ?? 'other') ?? 0) + 1);
  const parts = [...counts].map(
    ([kind, n]) => STEP_SUMMARY[kind]?.(n) ?? `${n} other change${n === 1 ? '' : 's'}`,
  );
  return clip(`${prefix}Will ${parts.join(', then ')}.${rest}`, LIMITS.confirmText);
}

/** The notification fallback: one line that says what happened. */
function alertFallbackText(view: AlertView): string {
  const d = view.alert.detection;
  const where = d.cluster?.name ?? d.cluster?.id ?? 'an Arc cluster';
  let text = `${capital(severityOf(d))}: Arc cluster credentials of ${clip(where, 200)} listed by ${clip(d.appId, 100)} from new IP ${clip(d.sourceIp, 60)}`;
  if (benignInForce(view.benign, view.now)) text += ' (marked benign)';
  if (view.undo?.status === 'done' && view.undo.mode === 'live') text += ' (revoke undone)';
  else if (view.undo?.status === 'failed' && view.undo.mode === 'live') text += ' (undo failed)';
  else if (view.undo?.status === 'running') text += ' (undo in progress)';
  else if (view.revoke?.status === 'done')
    text += view.revoke.mode === 'live' ? ' (revoked)' : ' (dry-run done)';
  return clip(esc(inline(text)), 1000);
}

const plain = (text: string, max: number): types.PlainTextElement => ({
  type: 'plain_text',
  text: clip(text, max),
  emoji: true,
});
const section = (text: string): types.SectionBlock => ({
  type: 'section',
  text: { type: 'mrkdwn', text: clip(text, LIMITS.sectionText) },
});

function buttons(view: AlertView): types.ActionsBlock {
  const id = view.alert.id;
  const benignNow = benignInForce(view.benign, view.now);
  const dry = view.mode === 'dry-run';
  const elements: types.Button[] = [
    {
      type: 'button',
      action_id: ACTION_IDS.markBenign,
      text: plain(benignNow ? 'Mark benign (change)' : 'Mark benign', LIMITS.buttonText),
      value: id,
      ...(benignNow ? {} : { style: 'primary' as const }),
    },
  ];
  // Offered until a live Revoke is in force (again after an Undo), and not while one, or an
  // Undo, runs.
  if (!revokeInForce(view) && view.revoke?.status !== 'running' && view.undo?.status !== 'running') {
    elements.push({
      type: 'button',
      action_id: ACTION_IDS.revoke,
      text: plain(dry ? REVOKE_BUTTON.dryRun : REVOKE_BUTTON.live, LIMITS.buttonText),
      style: 'danger',
      value: id,
      confirm: {
        title: plain(dry ? 'Run Revoke in dry-run?' : "Revoke this identity's access?", LIMITS.confirmTitle),
        text: { type: 'mrkdwn', text: confirmTextInMode(view.confirmText, view.mode) },
        confirm: plain(dry ? 'Run dry-run' : 'Revoke', LIMITS.confirmButton),
        deny: plain('Cancel', LIMITS.confirmButton),
        style: 'danger',
      },
    });
  }
  if (canUndo(view)) {
    elements.push({
      type: 'button',
      action_id: ACTION_IDS.undoRevoke,
      text: plain('Undo', LIMITS.buttonText),
      value: id,
      confirm: {
        title: plain('Undo the revoke?', LIMITS.confirmTitle),
        text: { type: 'mrkdwn', text: undoConfirmText(view) },
        confirm: plain('Undo', LIMITS.confirmButton),
        deny: plain('Cancel', LIMITS.confirmButton),
        style: 'danger',
      },
    });
  }
  if (view.broadRemoval && canRemoveBroad(view, view.mode)) {
    elements.push({
      type: 'button',
      action_id: ACTION_IDS.removeBroadRoles,
      text: plain(dry ? 'Remove broad roles too (dry-run)' : 'Remove broad roles too', LIMITS.buttonText),
      style: 'danger',
      value: id,
      confirm: {
        title: plain(
          dry ? 'Dry-run: remove broad roles?' : 'Remove the broad roles too?',
          LIMITS.confirmTitle,
        ),
        text: { type: 'mrkdwn', text: broadConfirmText(view.mode, view.revoke?.plan) },
        confirm: plain(dry ? 'Run dry-run' : 'Remove them', LIMITS.confirmButton),
        deny: plain('Cancel', LIMITS.confirmButton),
        style: 'danger',
      },
    });
  }
  return { type: 'actions', block_id: BLOCK_IDS.alertActions, elements };
}

function render(view: AlertView, k: number): SlackMessage {
  // Values from the detection and from Azure: escaped, on one line, clipped.
  const s = (text: string, n: number) => clip(esc(inline(text)), size(n, k));
  const c = (text: string, n: number) => code(text, size(n, k));
  const { alert, enrichment: e } = view;
  const d = alert.detection;
  const sev = severityOf(d);
  // Each part escaped and clipped before its GeoIP mark, so that clipping never cuts a mark.
  const place = describePlace(d.geo, d.as, d.located, (t) => s(t, 140));
  const cluster = d.cluster;
  const clusterText = cluster
    ? link(portalUrl(cluster.id, view.portal), s(cluster.name ?? cluster.id, 200))
    : DASH;
  const eventAt = parseTime(d.eventTime);
  const blocks: types.KnownBlock[] = [];

  blocks.push({
    type: 'header',
    text: plain(
      `${SEVERITY_EMOJI[sev]} ${capital(sev)}: Arc cluster credentials accessed from an unusual source`,
      LIMITS.header,
    ),
  });

  const who = e?.principalDisplayName
    ? `*${s(e.principalDisplayName, 200)}* (${c(d.appId, 120)})`
    : `Identity ${c(d.appId, 120)}`;
  blocks.push(
    section(
      `${who} listed the user credentials of Arc cluster *${clusterText}* from ${c(d.sourceIp, 60)}${place ? ` (${place})` : ''}.`,
    ),
  );

  const identity = [c(d.appId, 120)];
  if (e?.principalDisplayName) identity.push(s(e.principalDisplayName, 200));
  if (d.user?.upn ?? d.user?.name) identity.push(s((d.user?.upn ?? d.user?.name)!, 200));
  let source: string;
  if (d.elasticAlert) {
    const label = `Elastic alert${d.elasticAlert.ruleName ? `: ${s(d.elasticAlert.ruleName, 120)}` : ''}`;
    const { url, resultsUrl } = d.elasticAlert;
    // The link's host is shown: whoever can post a detection chooses these links.
    source = url
      ? link(url, `${label} (Kibana at ${s(hostOf(url), 100)})`, MAX_URL)
      : resultsUrl
        ? `${label}\n${link(resultsUrl, `the rule's alerts in Kibana at ${s(hostOf(resultsUrl), 100)}`, MAX_URL)}`
        : label;
  } else if (d.azureAlert) {
    source = `Azure Monitor alert${d.azureAlert.alertRule ? `: ${s(d.azureAlert.alertRule, 120)}` : ''}`;
  } else if (d.sourceFormat === 'azure-monitor-legacy') {
    source = 'Azure Monitor alert (legacy activity-log schema)';
  } else if (d.sourceFormat === 'elastic-ecs') {
    source = 'Elastic (activity log document)';
  } else {
    source = `Azure activity log (${d.sourceFormat === 'azure-activity-log-rest' ? 'REST API' : 'Event Hub record'})`;
  }
  const facts: Array<[string, string]> = [
    ['Identity (appid)', identity.join('\n')],
    ['Source IP', `${c(d.sourceIp, 60)}${place ? `\n${place}` : ''}`],
    ['Cluster', clusterText],
    [
      'Resource group / subscription',
      cluster?.resourceGroup || cluster?.subscriptionId
        ? `${s(cluster.resourceGroup ?? DASH, 120)}\n${s(cluster.subscriptionId ?? DASH, 120)}`
        : DASH,
    ],
    ['Role', d.evidence.role ? s(d.evidence.role, 200) : DASH],
    ['Principal type', principalText(d, s, c)],
    [
      'Event time',
      eventAt === undefined
        ? s(d.eventTime, 60)
        : `${slackDate(eventAt)}${eventAt > alert.detectedAt + FUTURE_TOLERANCE_MS ? '\n(in the future: judged as at detection)' : ''}`,
    ],
    ['Detected', detectedText(d, alert.detectedAt)],
    ['Source', source],
    ['MITRE ATT&CK', MITRE.map((t) => link(t.url, `${t.id} ${t.name}`)).join('\n')],
  ];
  blocks.push({
    type: 'section',
    fields: facts.map(([label, value]) => ({
      type: 'mrkdwn',
      text: clip(`*${label}*\n${value}`, LIMITS.fieldText),
    })),
  });

  blocks.push(section(whyText(alert, k)));

  const notes: string[] = [];
  if (e?.principalCreatedAt) {
    notes.push(
      `${e.principalRecentlyCreated ? ':warning: ' : ''}Service principal created ${s(e.principalCreatedAt, 40)}${e.principalRecentlyCreated ? ' (less than 7 days before the event)' : ''}`,
    );
  }
  if (e?.assignmentCreatedAt) {
    notes.push(
      `${e.assignmentRecent ? ':warning: ' : ''}Role assigned ${s(e.assignmentCreatedAt, 40)}${e.assignmentRecent ? ' (less than 7 days before the event)' : ''}`,
    );
  }
  if (e?.cluster) {
    const parts = [e.cluster.location, e.cluster.distribution].filter(Boolean).map((x) => s(String(x), 60));
    const tags = Object.entries(e.cluster.tags ?? {})
      .slice(0, 8)
      .map(([key, v]) => `${s(key, 40)}=${s(String(v), 60)}`);
    if (tags.length > 0) parts.push(`tags ${tags.join(', ')}`);
    if (parts.length > 0) notes.push(`Cluster: ${parts.join(' · ')}`);
  }
  if (view.enrichmentPending) {
    notes.push(
      ':hourglass_flowing_sand: Azure lookups (identity, role assignment, cluster) are still running: this message is updated when they finish',
    );
  }
  if (e?.errors && e.errors.length > 0) {
    notes.push(
      `Lookups that failed: ${e.errors
        .slice(0, 5)
        .map((x) => s(x, 200))
        .join('; ')}`,
    );
  }
  if (notes.length > 0) blocks.push(section(clip(notes.map((l) => `• ${l}`).join('\n'), size(1200, k))));
  // What the Revoke plan found amiss, in sight before anyone presses it (a run then shows its own).
  if (view.planAlarms && view.planAlarms.length > 0 && !view.revoke) {
    blocks.push(
      section(
        clip(view.planAlarms.map((a) => `:rotating_light: ${s(a, WARNING_CLIP)}`).join('\n'), size(1500, k)),
      ),
    );
  }

  const inv = investigationFields(d);
  if (inv.length > 0) {
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: '*Investigation fields*' },
      fields: inv.slice(0, LIMITS.fields).map(([name, value]) => ({
        type: 'mrkdwn',
        text: clip(
          `*${esc(name)}*\n${c(value, 240)}${STORED_AS[name] ? `\n_in Elastic:_ ${code(STORED_AS[name], 100)}` : ''}`,
          LIMITS.fieldText,
        ),
      })),
    });
  }

  blocks.push(section(`*Triage*\n${TRIAGE.map((t, i) => `${i + 1}. ${t}`).join('\n')}\n${RESPONSE}`));

  if (view.repeat && view.repeat.count > 1) {
    blocks.push({
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: `:repeat: Seen ${view.repeat.count} times from this IP · last ${slackDate(view.repeat.lastSeen)}`,
        },
      ],
    });
  }
  if (view.benign) blocks.push(section(benignText(view.benign, k, view.now)));
  if (view.past && view.past.length > 0) blocks.push(section(pastText(view.past, k)));
  if (view.revoke) blocks.push(section(revokeText(view.revoke, k, view.broad)));
  if (view.broad) blocks.push(section(broadText(view.broad, k)));
  if (view.undo) blocks.push(section(undoText(view.undo, [view.broad, view.revoke], k)));
  blocks.push(buttons(view));
  blocks.push({
    type: 'context',
    elements: [
      {
        type: 'mrkdwn',
        text: `Alert ${c(alert.id, 64)} · ${esc(ARC_RULE_NAME)} · remediation: ${view.mode}${
          eventAt === undefined ? '' : ` · event ${isoTime(eventAt)}`
        }${d.correlationId ? ` · correlation id ${c(d.correlationId, 80)}` : ''}${
          d.tenantId ? ` · tenant ${c(d.tenantId, 80)}` : ''
        }`,
      },
    ],
  });

  return { text: alertFallbackText(view), blocks };
}

/**
 * The alert message, a pure function of the stored state (and `now`): header, summary, facts, why
 * it fired, enrichment, investigation fields, triage steps, repeats, benign/revoke status and the
 * buttons.
 * Untrusted values are escaped and clipped; when hostile values would push the message past
 * Slack's total size, it is rendered again with shorter values.
 */
export function buildAlertMessage(input: AlertView): SlackMessage {
  const view = { ...input };
  if (view.now !== undefined) settleStaleRuns(view, view.now);
  let message = render(view, 1);
  for (const k of [0.5, 0.25, 0.1]) {
    if (checkMessageLimits(message).length === 0) break;
    message = render(view, k);
  }
  return message;
}

/**
 * The alert in its plainest form, for when Slack refuses the full message (`invalid_blocks`,
 * `msg_too_long`): its text in sections of plain lines, with links reduced to their labels and
 * every field kept, and the same buttons. What Slack objected to in the layout is gone; the
 * facts and the actions stay.
 */
export function plainAlertMessage(full: SlackMessage): SlackMessage {
  const text = flatText(full);
  const sections: types.KnownBlock[] = [];
  // Cut at line ends into sections of at most Slack's limit; the message keeps to its total.
  let current = '';
  for (const line of text.split('\n')) {
    const next = current === '' ? line : `${current}\n${line}`;
    if (next.length <= LIMITS.sectionText - 100) {
      current = next;
      continue;
    }
    if (current !== '') sections.push(section(current));
    current = clip(line, LIMITS.sectionText - 100);
  }
  if (current !== '') sections.push(section(current));
  const actions = full.blocks.filter((b) => b.type === 'actions');
  let budget = TOTAL_TEXT_BUDGET - 2000;
  const kept = sections.filter((b) => {
    budget -= (b as types.SectionBlock).text?.text.length ?? 0;
    return budget >= 0;
  });
  return {
    text: clip(unlinked(full.text), LIMITS.text),
    blocks: [...kept.slice(0, LIMITS.blocks - actions.length), ...actions],
  };
}

/**
 * The last resort, for when Slack refuses the plain form too (the buttons themselves, say): the
 * alert's facts as the message's text alone, no blocks, saying why it has no buttons.
 */
export function textOnlyAlertMessage(full: SlackMessage, alertId: string): SlackMessage {
  const note = `\n:warning: Slack refused this alert's layout, so it shows no buttons: the service log names alert ${alertId}; /arc-history lists the pair.`;
  return { text: `${clip(flatText(full), LIMITS.text - note.length)}${note}`, blocks: [] };
}

/** The text of every header, section and context of a message, a line each, links unlinked. */
function flatText(message: SlackMessage): string {
  const lines: string[] = [];
  for (const block of message.blocks) {
    if (block.type === 'header') lines.push(`*${block.text.text}*`);
    else if (block.type === 'section') {
      if (block.text) lines.push(block.text.text);
      for (const field of block.fields ?? []) lines.push(field.text);
    } else if (block.type === 'context') {
      for (const element of block.elements) if ('text' in element) lines.push(element.text);
    }
  }
  return unlinked(lines.join('\n'));
}

/** Slack links (`<url|label>`) as their labels, and bare `<url>` as the URL; mentions stay. */
function unlinked(text: string): string {
  return text
    .replace(/<([^<>|@#!][^<>|]*)\|([^<>]*)>/g, '$2')
    .replace(/<((?:https?|mailto):[^<>|]*)>/g, '$1');
}

import type { types } from '@slack/bolt';
import type { AlertRecord } from '../../core/alert.ts';
import type { Detection } from '../../core/detection.ts';
import { formatDuration } from '../../core/duration.ts';
import type { StepResult } from '../../core/remediation.ts';
import { ARC_RULE_NAME } from '../../core/rule.ts';
import type { BenignMark, RevokeRun, SlackAlertState } from '../alert-state.ts';
import { ACTION_IDS } from '../ids.ts';
import { checkMessageLimits, LIMITS } from './limits.ts';
import { clip, code, describePlace, esc, isoTime, link, parseTime, slackDate } from './text.ts';

/** What the alert builder needs: the stored state plus the remediation mode. */
export interface AlertView extends SlackAlertState {
  mode: 'dry-run' | 'live';
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
const AZURE_SEVERITY: Record<string, string> = {
  sev0: 'critical',
  sev1: 'high',
  sev2: 'medium',
  sev3: 'low',
  sev4: 'low',
};

/** The alert's severity: Elastic's, else Azure Monitor's, else the rule's (`medium`). */
export function severityOf(d: Detection): string {
  const raw = String(d.elasticAlert?.severity ?? d.azureAlert?.severity ?? 'medium')
    .trim()
    .toLowerCase();
  const sev = AZURE_SEVERITY[raw] ?? raw;
  return SEVERITY_EMOJI[sev] ? sev : 'medium';
}

const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const DASH = '—';
const MAX_URL = 600;

/** Azure portal link of a resource id: `https://portal.azure.com/#@/resource<id>`. */
export function portalUrl(resourceId: string): string | undefined {
  if (!resourceId.startsWith('/') || resourceId.length > MAX_URL - 40) return undefined;
  return `https://portal.azure.com/#@/resource${resourceId}`;
}

/** "Why it fired", from the engine's view: first use of the IP by the identity in the window. */
export function whyText(alert: AlertRecord, k = 1): string {
  const others = alert.otherIps;
  const window = formatDuration(alert.windowMs);
  let why = `first use of this IP by this identity in ${window}; ${others} other IP${others === 1 ? '' : 's'} seen`;
  if (alert.reason === 'elastic-alert') {
    const reason = alert.detection.elasticAlert?.reason;
    why += reason
      ? `. Elastic: ${clip(esc(reason), size(600, k))}`
      : '. Raised by the Elastic new-terms rule';
  }
  return `*Why it fired:* ${why}.`;
}

/** The rule's investigation fields, labelled by their ECS names, for those the detection carried. */
export function investigationFields(d: Detection): Array<[string, string]> {
  const out: Array<[string, string | undefined]> = [
    ['@timestamp', d.eventTime],
    ['azure.activitylogs.operation_name', d.operation],
    ['azure.activitylogs.identity.claims.appid', d.appId],
    ['azure.activitylogs.identity.authorization.evidence.role', d.evidence.role],
    [
      'azure.activitylogs.identity.authorization.evidence.principalType',
      d.evidence.principalType ?? d.principalType,
    ],
    ['azure.resource.id', d.cluster?.id],
    ['source.ip', d.sourceIp],
    ['source.geo.country_name', d.geo?.countryName],
    ['source.geo.city_name', d.geo?.cityName],
    ['source.as.organization.name', d.as?.organizationName],
  ];
  return out.filter((f): f is [string, string] => typeof f[1] === 'string' && f[1] !== '');
}

const STEP_EMOJI: Record<StepResult['status'], string> = {
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

/** The status line of a Mark benign. */
export function benignText(b: BenignMark, k = 1): string {
  return `:white_check_mark: *Marked benign* by <@${b.by}> ${slackDate(b.at)}: “${clip(esc(b.reason), size(500, k))}”. Allowlisted ${untilText(b.until)}.`;
}

/** The status text of a Revoke run: progress, then a line per step with its result. */
export function revokeText(run: RevokeRun, k = 1): string {
  const s = (text: string, n: number) => clip(esc(text), size(n, k));
  const who = `<@${run.by}>`;
  const dry = run.mode === 'dry-run';
  let head: string;
  if (run.status === 'running') {
    head = `:hourglass_flowing_sand: *Revoke${dry ? ' (dry-run)' : ''} in progress*, started by ${who} ${slackDate(run.at)}…`;
  } else if (run.status === 'failed') {
    head = `:x: *Revoke${dry ? ' (dry-run)' : ''} failed*, started by ${who} ${slackDate(run.at)}${run.error ? `: ${s(run.error, 400)}` : ''}. Press Revoke again to retry the steps that did not finish.`;
  } else if (dry) {
    head = `:test_tube: *Dry-run* by ${who} ${slackDate(run.at)}: nothing was changed (AZURE_REMEDIATION=dry-run). Revoke would make these calls:`;
  } else {
    head = `:no_entry: *Revoked* by ${who} ${slackDate(run.at)}:`;
  }
  const byId = new Map((run.result?.steps ?? []).map((r) => [r.stepId, r]));
  const lines = (run.plan?.steps ?? []).map((step) => {
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
  });
  for (const rest of run.plan?.stillHasAccessThrough ?? []) {
    lines.push(
      `:warning: Still has access through ${s(rest.roleName, 100)} at ${code(rest.scope, size(300, k))} (Revoke leaves it)`,
    );
  }
  for (const w of run.plan?.warnings ?? []) lines.push(`:information_source: ${s(w, 300)}`);
  return clip([head, ...lines].join('\n'), size(2500, k));
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
  const prefix =
    mode === 'dry-run' ? '*Dry-run:* nothing will change; it lists the calls it would make. ' : '';
  if (!steps || steps.length === 0) {
    return clip(
      `${prefix}Removes the Arc role assignment(s) that granted this access and disables the service principal.`,
      LIMITS.confirmText,
    );
  }
  const rest = stillHasAccess > 0 ? ` Other access (${stillHasAccess}) stays.` : '';
  const full = `${prefix}${steps.map((s, i) => `${i + 1}) ${esc(s.description)}`).join('; ')}.${rest}`;
  if (full.length <= LIMITS.confirmText) return full;
  const counts = new Map<string, number>();
  for (const s of steps) counts.set(s.kind ?? 'other', (counts.get(s.kind ?? 'other') ?? 0) + 1);
  const parts = [...counts].map(
    ([kind, n]) => STEP_SUMMARY[kind]?.(n) ?? `${n} other change${n === 1 ? '' : 's'}`,
  );
  return clip(`${prefix}Will ${parts.join(', then ')}.${rest}`, LIMITS.confirmText);
}

/** The notification fallback: one line that says what happened. */
export function alertFallbackText(view: AlertView): string {
  const d = view.alert.detection;
  const where = d.cluster?.name ?? d.cluster?.id ?? 'an Arc cluster';
  let text = `${capital(severityOf(d))}: Arc cluster credentials of ${clip(where, 200)} listed by ${clip(d.appId, 100)} from new IP ${clip(d.sourceIp, 60)}`;
  if (view.benign) text += ' (marked benign)';
  if (view.revoke?.status === 'done') text += view.revoke.mode === 'live' ? ' (revoked)' : ' (dry-run done)';
  return clip(esc(text.replace(/[\r\n]+/g, ' ')), 1000);
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
  const dry = view.mode === 'dry-run';
  const elements: types.Button[] = [
    {
      type: 'button',
      action_id: ACTION_IDS.markBenign,
      text: plain(view.benign ? 'Mark benign (change)' : 'Mark benign', LIMITS.buttonText),
      value: id,
      ...(view.benign ? {} : { style: 'primary' as const }),
    },
  ];
  const revoked = view.revoke?.status === 'done' && view.revoke.mode === 'live';
  if (!revoked && view.revoke?.status !== 'running') {
    elements.push({
      type: 'button',
      action_id: ACTION_IDS.revoke,
      text: plain(dry ? 'Revoke (dry-run)' : 'Revoke', LIMITS.buttonText),
      style: 'danger',
      value: id,
      confirm: {
        title: plain(dry ? 'Run Revoke in dry-run?' : "Revoke this identity's access?", LIMITS.confirmTitle),
        text: { type: 'mrkdwn', text: clip(view.confirmText, LIMITS.confirmText) },
        confirm: plain(dry ? 'Run dry-run' : 'Revoke', LIMITS.confirmButton),
        deny: plain('Cancel', LIMITS.confirmButton),
        style: 'danger',
      },
    });
  }
  return { type: 'actions', block_id: 'arc_alert_actions', elements };
}

function render(view: AlertView, k: number): SlackMessage {
  const s = (text: string, n: number) => clip(esc(text), size(n, k));
  const c = (text: string, n: number) => code(text, size(n, k));
  const { alert, enrichment: e } = view;
  const d = alert.detection;
  const sev = severityOf(d);
  const place = describePlace(d.geo, d.as);
  const cluster = d.cluster;
  const clusterText = cluster ? link(portalUrl(cluster.id), s(cluster.name ?? cluster.id, 200)) : DASH;
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
      `${who} listed the user credentials of Arc cluster *${clusterText}* from ${c(d.sourceIp, 60)}${place ? ` (${s(place, 300)})` : ''}.`,
    ),
  );

  const identity = [c(d.appId, 120)];
  if (e?.principalDisplayName) identity.push(s(e.principalDisplayName, 200));
  if (d.user?.upn ?? d.user?.name) identity.push(s((d.user?.upn ?? d.user?.name)!, 200));
  let source: string;
  if (d.elasticAlert) {
    const label = `Elastic alert${d.elasticAlert.ruleName ? `: ${s(d.elasticAlert.ruleName, 120)}` : ''}`;
    source = d.elasticAlert.url ? link(d.elasticAlert.url, `${label} (Kibana)`, MAX_URL) : label;
  } else if (d.azureAlert) {
    source = `Azure Monitor alert${d.azureAlert.alertRule ? `: ${s(d.azureAlert.alertRule, 120)}` : ''}`;
  } else if (d.sourceFormat === 'elastic-ecs') {
    source = 'Elastic (activity log document)';
  } else {
    source = `Azure activity log (${d.sourceFormat === 'azure-activity-log-rest' ? 'REST API' : 'Event Hub record'})`;
  }
  const facts: Array<[string, string]> = [
    ['Identity (appid)', identity.join('\n')],
    ['Source IP', `${c(d.sourceIp, 60)}${place ? `\n${s(place, 300)}` : ''}`],
    ['Cluster', clusterText],
    [
      'Resource group / subscription',
      cluster?.resourceGroup || cluster?.subscriptionId
        ? `${s(cluster.resourceGroup ?? DASH, 120)}\n${s(cluster.subscriptionId ?? DASH, 120)}`
        : DASH,
    ],
    ['Role', d.evidence.role ? s(d.evidence.role, 200) : DASH],
    [
      'Principal type',
      `${s(d.evidence.principalType ?? d.principalType ?? DASH, 60)}${d.principalId ? `\n${c(d.principalId, 60)}` : ''}`,
    ],
    ['Event time', eventAt === undefined ? s(d.eventTime, 60) : slackDate(eventAt)],
    ['Detected', slackDate(alert.detectedAt)],
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
  if (e?.errors && e.errors.length > 0) {
    notes.push(
      `Lookups that failed: ${e.errors
        .slice(0, 5)
        .map((x) => s(x, 200))
        .join('; ')}`,
    );
  }
  if (notes.length > 0) blocks.push(section(clip(notes.map((l) => `• ${l}`).join('\n'), size(1200, k))));

  const inv = investigationFields(d);
  if (inv.length > 0) {
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: '*Investigation fields*' },
      fields: inv.slice(0, LIMITS.fields).map(([name, value]) => ({
        type: 'mrkdwn',
        text: clip(`*${esc(name)}*\n${c(value, 240)}`, LIMITS.fieldText),
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
  if (view.benign) blocks.push(section(benignText(view.benign, k)));
  if (view.revoke) blocks.push(section(revokeText(view.revoke, k)));
  blocks.push(buttons(view));
  blocks.push({
    type: 'context',
    elements: [
      {
        type: 'mrkdwn',
        text: `Alert ${c(alert.id, 64)} · ${esc(ARC_RULE_NAME)} · remediation: ${view.mode}${
          eventAt === undefined ? '' : ` · event ${isoTime(eventAt)}`
        }`,
      },
    ],
  });

  return { text: alertFallbackText(view), blocks };
}

/**
 * The alert message, a pure function of the stored state: header, summary, facts, why it fired,
 * enrichment, investigation fields, triage steps, repeats, benign/revoke status and the buttons.
 * Untrusted values are escaped and clipped; when hostile values would push the message past
 * Slack's total size, it is rendered again with shorter values.
 */
export function buildAlertMessage(view: AlertView): SlackMessage {
  let message = render(view, 1);
  for (const k of [0.5, 0.25, 0.1]) {
    if (checkMessageLimits(message).length === 0) break;
    message = render(view, k);
  }
  return message;
}

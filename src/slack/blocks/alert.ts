import type { types } from '@slack/bolt';
import type { AlertRecord } from '../../core/alert.ts';
import { dashGuid, isGroup } from '../../core/azure-ids.ts';
import { FUTURE_TOLERANCE_MS } from '../../core/candidate.ts';
import type { Detection } from '../../core/detection.ts';
import { formatDuration } from '../../core/duration.ts';
import { alertCause } from '../../core/engine.ts';
import { callerKind, claimedObjectId } from '../../core/remediation-plan.ts';
import { ARC_RULE_NAME } from '../../core/rule.ts';
import {
  type BenignMark,
  canRemoveBroad,
  canUndo,
  revokeInForce,
  type SlackAlertState,
  settleStaleRuns,
  showsRevokedElsewhere,
} from '../alert-state.ts';
import { ACTION_IDS, BLOCK_IDS } from '../ids.ts';
import { checkMessageLimits, LIMITS } from './limits.ts';
import {
  broadConfirmText,
  broadText,
  pastText,
  revokeConfirmText,
  revokedElsewhereText,
  revokeText,
  undoConfirmText,
  undoText,
  WARNING_CLIP,
} from './run-text.ts';
import {
  clip,
  clipSize,
  code,
  describePlace,
  esc,
  isoTime,
  link,
  literal,
  mention,
  mrkdwn,
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
/**
 * The same steps for a user caller: its appid is the client application it signed in through (the
 * Azure CLI's, say), so the questions are about the person's account and sign-ins.
 */
const TRIAGE_USER = [
  'Is this person expected to reach this Arc cluster? The appid is the client application they signed in through (shared by its users), not theirs.',
  TRIAGE[1]!,
  "Correlate with the user's sign-in logs around the event time: risk level, MFA, device and location, then the credential listing.",
  TRIAGE[3]!,
  TRIAGE[4]!,
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

/**
 * Azure portal link of a resource id: `https://portal.azure.com/#@<tenant>/resource<id>`. With the
 * detection's tenant, the portal opens in that directory (a responder who is a guest there, or
 * whose default directory is another, lands on the resource rather than on "not found").
 */
export function portalUrl(
  resourceId: string,
  portal: string = PUBLIC_PORTAL,
  tenantId = '',
): string | undefined {
  if (!resourceId.startsWith('/') || resourceId.length > MAX_URL - 80) return undefined;
  return `${portal}/#@${tenantId}/resource${resourceId}`;
}

/** The detection's tenant as a portal link names it (a GUID), else '' (the reader's own directory). */
const tenantOf = (d: Detection): string => dashGuid(d.tenantId) ?? '';

/**
 * The caller's page in Entra ID, from its object id: the user's profile, or the service
 * principal's enterprise application. Undefined without an object id (an appid alone does not
 * name the service principal of this tenant).
 */
function entraUrl(d: Detection, portal: string = PUBLIC_PORTAL): string | undefined {
  const objectId = claimedObjectId(d);
  if (objectId === undefined) return undefined;
  const tenant = tenantOf(d);
  const base = `${portal}/${tenant ? `${tenant}/` : ''}#view`;
  if (callerKind(d) === 'user')
    return `${base}/Microsoft_AAD_UsersAndTenants/UserProfileMenuBlade/~/overview/userId/${objectId}`;
  const appId = dashGuid(d.appId);
  return `${base}/Microsoft_AAD_IAM/ManagedAppMenuBlade/~/Overview/objectId/${objectId}${appId ? `/appId/${appId}` : ''}`;
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
      ? `. Elastic: ${clip(literal(reason), clipSize(600, k))}`
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

/** The most of a link's host shown: a real host name is at most 253 characters, most far fewer. */
const HOST_SHOWN = 100;

/**
 * A link's host as text, escaped: a longer one loses its start, never its end, which names the
 * domain the link leads to (`kibana.example.com.<padding>.attacker.example` must not read as
 * `kibana.example.com…`).
 */
function hostText(url: string): string {
  const host = hostOf(url);
  return literal(host.length <= HOST_SHOWN ? host : `…${host.slice(-(HOST_SHOWN - 1))}`);
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

/** The Revoke button's text in each mode: a click sends it back, so the handler knows what the dialog promised. */
export const REVOKE_BUTTON = { live: 'Revoke', dryRun: 'Revoke (dry-run)' } as const;

const untilText = (until: number | undefined) =>
  until === undefined ? 'with no expiry' : `until ${slackDate(until)}`;

/** True while the Mark benign's allowlist entry holds detections back (at `now`, when known). */
const benignInForce = (b: BenignMark | undefined, now: number | undefined): b is BenignMark =>
  b !== undefined && b.removed === undefined && (b.until === undefined || now === undefined || b.until > now);

/** The status line of a Mark benign; with `now`, an entry that has expired says so. */
export function benignText(b: BenignMark, k = 1, now?: number): string {
  const mark = `*Marked benign* by ${mention(b.by)} ${slackDate(b.at)}: “${clip(literal(b.reason), clipSize(500, k))}”.`;
  if (b.removed) {
    return `:heavy_minus_sign: ~${mark}~ Allowlist entry removed by ${mention(b.removed.by)} ${slackDate(b.removed.at)}: detections of this pair are no longer allowlisted.`;
  }
  if (b.until !== undefined && now !== undefined && b.until <= now) {
    return `:heavy_minus_sign: ~${mark}~ The allowlist entry expired ${slackDate(b.until)}: detections of this pair are no longer allowlisted.`;
  }
  return `:white_check_mark: ${mark} Allowlisted ${untilText(b.until)}.`;
}

/** The notification fallback: one line that says what happened. */
function alertFallbackText(view: AlertView): string {
  const d = view.alert.detection;
  const where = d.cluster?.name ?? d.cluster?.id ?? 'an Arc cluster';
  // The IP as it is (an address, whose colons open no emoji); the names can format nothing.
  let text = `${capital(severityOf(d))}: Arc cluster credentials of ${clip(literal(where), 200)} listed by ${clip(literal(d.appId), 100)} from new IP ${esc(clip(d.sourceIp, 60))}`;
  if (benignInForce(view.benign, view.now)) text += ' (marked benign)';
  // Marked after its own Revoke was undone: the identity is revoked again, through another alert.
  if (showsRevokedElsewhere(view)) text += ' (revoked through another alert)';
  else if (view.undo?.status === 'done' && view.undo.mode === 'live') text += ' (revoke undone)';
  else if (view.undo?.status === 'failed' && view.undo.mode === 'live') text += ' (undo failed)';
  else if (view.undo?.status === 'running') text += ' (undo in progress)';
  else if (view.revoke?.status === 'done' && view.revoke.mode === 'live') text += ' (revoked)';
  else if (view.revoke?.status === 'done') text += ' (dry-run done)';
  return clip(text, 1000);
}

const plain = (text: string, max: number): types.PlainTextElement => ({
  type: 'plain_text',
  text: clip(text, max),
  emoji: true,
});
/** A section of mrkdwn text, clipped to Slack's limit for one. */
export const section = (text: string): types.SectionBlock => ({
  type: 'section',
  text: mrkdwn(clip(text, LIMITS.sectionText)),
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
        text: mrkdwn(revokeConfirmText(view, view.mode)),
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
        text: mrkdwn(undoConfirmText(view)),
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
        text: mrkdwn(broadConfirmText(view.mode, view.revoke?.plan)),
        confirm: plain(dry ? 'Run dry-run' : 'Remove them', LIMITS.confirmButton),
        deny: plain('Cancel', LIMITS.confirmButton),
        style: 'danger',
      },
    });
  }
  return { type: 'actions', block_id: BLOCK_IDS.alertActions, elements };
}

/**
 * What the sections of one rendering share: the view, the scale `k` of its clip sizes, and the
 * parts that more than one section shows.
 */
interface Rendering {
  view: AlertView;
  k: number;
  /** A value from the detection or from Azure as text: escaped, on one line, clipped. */
  s: (text: string, n: number) => string;
  /** A value from the detection or from Azure as a code span, clipped. */
  c: (text: string, n: number) => string;
  /** Where the source IP is (city, country, AS); '' when nothing is known. */
  place: string;
  /** The cluster's name, linked to its page in the portal. */
  clusterText: string;
  /** The event's time, when it reads as one. */
  eventAt: number | undefined;
}

function renderingOf(view: AlertView, k: number): Rendering {
  // Values from the detection and from Azure: escaped, on one line, clipped.
  const s = (text: string, n: number) => clip(literal(text), clipSize(n, k));
  const c = (text: string, n: number) => code(text, clipSize(n, k));
  const d = view.alert.detection;
  // Each part escaped and clipped before its GeoIP mark, so that clipping never cuts a mark.
  const place = describePlace(d.geo, d.as, d.located, (t) => s(t, 140));
  const cluster = d.cluster;
  const clusterText = cluster
    ? link(portalUrl(cluster.id, view.portal, tenantOf(d)), s(cluster.name ?? cluster.id, 200))
    : DASH;
  return { view, k, s, c, place, clusterText, eventAt: parseTime(d.eventTime) };
}

/** The alert's header: its severity and what happened. */
function headerBlock(d: Detection): types.HeaderBlock {
  const sev = severityOf(d);
  return {
    type: 'header',
    text: plain(
      `${SEVERITY_EMOJI[sev]} ${capital(sev)}: Arc cluster credentials accessed from an unusual source`,
      LIMITS.header,
    ),
  };
}

/** The alert's first sentence: who listed the credentials of which cluster, from where. */
function summaryText({ view, s, c, place, clusterText }: Rendering): string {
  const e = view.enrichment;
  const d = view.alert.detection;
  const who = e?.principalDisplayName
    ? `*${s(e.principalDisplayName, 200)}* (${c(d.appId, 120)})`
    : `Identity ${c(d.appId, 120)}`;
  return `${who} listed the user credentials of Arc cluster *${clusterText}* from ${c(d.sourceIp, 60)}${place ? ` (${place})` : ''}.`;
}

/** Where the detection came from: the alert that raised it (linked to Kibana), else its format. */
function sourceText(d: Detection, s: (text: string, n: number) => string): string {
  if (d.elasticAlert) {
    const label = `Elastic alert${d.elasticAlert.ruleName ? `: ${s(d.elasticAlert.ruleName, 120)}` : ''}`;
    const { url, resultsUrl } = d.elasticAlert;
    // The link's host is shown: whoever can post a detection chooses these links.
    return url
      ? link(url, `${label} (Kibana at ${hostText(url)})`, MAX_URL)
      : resultsUrl
        ? `${label}\n${link(resultsUrl, `the rule's alerts in Kibana at ${hostText(resultsUrl)}`, MAX_URL)}`
        : label;
  }
  if (d.azureAlert) {
    return `Azure Monitor alert${d.azureAlert.alertRule ? `: ${s(d.azureAlert.alertRule, 120)}` : ''}`;
  }
  // A common-schema payload without its essentials names no alert rule.
  if (d.sourceFormat === 'azure-monitor-common') return 'Azure Monitor alert (common alert schema)';
  if (d.sourceFormat === 'azure-monitor-legacy') return 'Azure Monitor alert (legacy activity-log schema)';
  if (d.sourceFormat === 'elastic-ecs') return 'Elastic (activity log document)';
  return `Azure activity log (${d.sourceFormat === 'azure-activity-log-rest' ? 'REST API' : 'Event Hub record'})`;
}

/** The facts of the detection, two columns of labelled fields. */
function factsBlock({ view, s, c, place, clusterText, eventAt }: Rendering): types.SectionBlock {
  const { alert, enrichment: e } = view;
  const d = alert.detection;
  const cluster = d.cluster;
  const identity = [c(d.appId, 120)];
  if (e?.principalDisplayName) identity.push(s(e.principalDisplayName, 200));
  if (d.user?.upn ?? d.user?.name) identity.push(s((d.user?.upn ?? d.user?.name)!, 200));
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
    ['Source', sourceText(d, s)],
    // Written escaped: mrkdwn reads a bare & as the start of an entity.
    ['MITRE ATT&amp;CK', MITRE.map((t) => link(t.url, `${t.id} ${t.name}`)).join('\n')],
  ];
  return {
    type: 'section',
    fields: facts.map(([label, value]) => mrkdwn(clip(`*${label}*\n${value}`, LIMITS.fieldText))),
  };
}

/**
 * The notes from the Azure lookups: when the principal was created and its role assigned (marked
 * when recent), the cluster's location, distribution and tags, lookups still running or failed.
 */
function enrichmentNotes({ view, s }: Rendering): string[] {
  const e = view.enrichment;
  const notes: string[] = [];
  const user = callerKind(view.alert.detection) === 'user';
  if (e?.principalDisabled) {
    // A call after a Revoke: the principal cannot sign in anew, but a token it got before still works.
    notes.push(
      `:no_entry: The ${user ? 'user account' : 'service principal'} is disabled in Entra ID (as this alert was posted): it cannot sign in again, but a token issued before it was disabled stays valid until it expires. A call after a Revoke means such a token is in use: check the Kubernetes audit log`,
    );
  }
  if (e?.principalCreatedAt) {
    notes.push(
      `${e.principalRecentlyCreated ? ':warning: ' : ''}${user ? 'User account' : 'Service principal'} created ${s(e.principalCreatedAt, 40)}${e.principalRecentlyCreated ? ' (less than 7 days before the event)' : ''}`,
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
  return notes;
}

/** The rule's investigation fields that the detection carried, with where Elastic stores them. */
function investigationBlock(
  d: Detection,
  c: (text: string, n: number) => string,
): types.SectionBlock | undefined {
  const inv = investigationFields(d);
  if (inv.length === 0) return undefined;
  return {
    type: 'section',
    text: mrkdwn('*Investigation fields*'),
    fields: inv
      .slice(0, LIMITS.fields)
      .map(([name, value]) =>
        mrkdwn(
          clip(
            `*${esc(name)}*\n${c(value, 600)}${STORED_AS[name] ? `\n_in Elastic:_ ${code(STORED_AS[name], 100)}` : ''}`,
            LIMITS.fieldText,
          ),
        ),
      ),
  };
}

/** The alarms of the Revoke plan, a line each. */
function planAlarmsText(alarms: readonly string[], { s, k }: Rendering): string {
  return clip(alarms.map((a) => `:rotating_light: ${s(a, WARNING_CLIP)}`).join('\n'), clipSize(1500, k));
}

/** What has been seen and done since: repeats, Mark benign, the remediation runs and their rounds. */
function statusBlocks(view: AlertView, k: number): types.KnownBlock[] {
  const blocks: types.KnownBlock[] = [];
  if (view.repeat && view.repeat.count > 1) {
    blocks.push({
      type: 'context',
      elements: [
        mrkdwn(
          `:repeat: Seen ${view.repeat.count} times from this IP · last ${slackDate(view.repeat.lastSeen)}`,
        ),
      ],
    });
  }
  if (view.benign) blocks.push(section(benignText(view.benign, k, view.now)));
  if (view.past && view.past.length > 0) blocks.push(section(pastText(view.past, k)));
  if (view.revoke) blocks.push(section(revokeText(view.revoke, k, view.broad)));
  if (view.broad) blocks.push(section(broadText(view.broad, k)));
  if (view.undo) blocks.push(section(undoText(view.undo, [view.broad, view.revoke], k)));
  return blocks;
}

/**
 * Where to look next in the Azure portal: the cluster's activity log (the call itself, and what
 * else the identity did there) and the caller in Entra ID (its sign-ins, credentials, owners).
 */
function portalLinksBlock({ view }: Rendering): types.ContextBlock | undefined {
  const d = view.alert.detection;
  const links: string[] = [];
  const log = d.cluster ? portalUrl(`${d.cluster.id}/eventlogs`, view.portal, tenantOf(d)) : undefined;
  if (log) links.push(link(log, "the cluster's activity log", MAX_URL));
  const entra = entraUrl(d, view.portal);
  if (entra) {
    const label = callerKind(d) === 'user' ? 'the user in Entra ID' : 'the service principal in Entra ID';
    links.push(link(entra, label, MAX_URL));
  }
  if (links.length === 0) return undefined;
  return { type: 'context', elements: [mrkdwn(`:mag: Azure portal: ${links.join(' · ')}`)] };
}

/** The alert's last line: its id, the rule, the remediation mode and the event's ids. */
function footerBlock({ view, c, eventAt }: Rendering): types.ContextBlock {
  const d = view.alert.detection;
  return {
    type: 'context',
    elements: [
      mrkdwn(
        `Alert ${c(view.alert.id, 64)} · ${esc(ARC_RULE_NAME)} · remediation: ${view.mode}${
          eventAt === undefined ? '' : ` · event ${isoTime(eventAt)}`
        }${d.correlationId ? ` · correlation id ${c(d.correlationId, 80)}` : ''}${
          d.tenantId ? ` · tenant ${c(d.tenantId, 80)}` : ''
        }`,
      ),
    ],
  };
}

function render(view: AlertView, k: number): SlackMessage {
  const r = renderingOf(view, k);
  const d = view.alert.detection;
  const blocks: types.KnownBlock[] = [
    headerBlock(d),
    section(summaryText(r)),
    // In sight first: the incident is handled through another alert of the same principal.
    ...(showsRevokedElsewhere(view) ? [section(revokedElsewhereText(view.revokedElsewhere))] : []),
    factsBlock(r),
    section(whyText(view.alert, k)),
  ];
  const notes = enrichmentNotes(r);
  if (notes.length > 0) blocks.push(section(clip(notes.map((l) => `• ${l}`).join('\n'), clipSize(1200, k))));
  // What the Revoke plan found amiss, in sight before anyone presses it (a run then shows its own).
  if (view.planAlarms && view.planAlarms.length > 0 && !view.revoke) {
    blocks.push(section(planAlarmsText(view.planAlarms, r)));
  }
  const investigation = investigationBlock(d, r.c);
  if (investigation) blocks.push(investigation);
  const triage = callerKind(d) === 'user' ? TRIAGE_USER : TRIAGE;
  blocks.push(section(`*Triage*\n${triage.map((t, i) => `${i + 1}. ${t}`).join('\n')}\n${RESPONSE}`));
  const portalLinks = portalLinksBlock(r);
  if (portalLinks) blocks.push(portalLinks);
  blocks.push(...statusBlocks(view, k), buttons(view), footerBlock(r));
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

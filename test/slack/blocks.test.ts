import { describe, expect, it } from 'vitest';
import type { SourceFormat } from '../../src/core/detection.ts';
import type { IdentityHistoryEntry } from '../../src/core/history.ts';
import type { PairRecord } from '../../src/core/pair.ts';
import type { PlannedStep, RemediationPlan, StepResult } from '../../src/core/remediation.ts';
import type { RevokeRun, UndoRun } from '../../src/slack/alert-state.ts';
import {
  type AlertView,
  benignText,
  buildAlertMessage,
  investigationFields,
  portalUrl,
} from '../../src/slack/blocks/alert.ts';
import { buildBenignModal, parseBenignSubmission } from '../../src/slack/blocks/benign-modal.ts';
import {
  buildHistoryMessage,
  buildHistoryPages,
  HISTORY_MAX_BUTTONS,
  HISTORY_MAX_MESSAGES,
  historyLine,
  parseRemoveAllowValue,
  removeAllowValue,
} from '../../src/slack/blocks/history.ts';
import { checkMessageLimits, LIMITS } from '../../src/slack/blocks/limits.ts';
import { broadConfirmText, confirmTextFor, revokeText } from '../../src/slack/blocks/run-text.ts';
import { clip, describeDuration, esc, link, literal } from '../../src/slack/blocks/text.ts';
import { ACTION_IDS, BENIGN_MODAL } from '../../src/slack/ids.ts';
import { ARC } from '../support/samples.ts';
import {
  DETECTED_AT,
  sampleAlert,
  sampleDetection,
  sampleRevokeResult,
  sampleRevokeSteps,
} from './sample-alert.ts';

const CONFIRM_STEPS = [
  { description: 'Remove the role assignment "Azure Arc Enabled Kubernetes Cluster User Role"' },
  { description: `Disable the service principal of application ${ARC.appId}` },
];
const CONFIRM = confirmTextFor('dry-run', CONFIRM_STEPS);

const view = (over: Partial<AlertView> = {}): AlertView => ({
  alert: sampleAlert(),
  channel: 'C123',
  ts: '1700000000.000001',
  confirmText: CONFIRM,
  mode: 'dry-run',
  ...over,
});

/** Every text of a message, for "does it mention X" checks. */
const allText = (m: unknown) => JSON.stringify(m);
const buttonsOf = (m: ReturnType<typeof buildAlertMessage>) =>
  m.blocks.flatMap((b) => (b.type === 'actions' ? b.elements : [])) as unknown as Array<
    Record<string, unknown>
  >;

describe('alert message: the caller as Entra ID has it', () => {
  it("names a user's creation time as the account's, not a service principal's", () => {
    const text = allText(
      buildAlertMessage(
        view({
          alert: sampleAlert({}, { principalType: 'User' }),
          enrichment: { principalCreatedAt: '2024-01-01T00:00:00Z' },
        }),
      ),
    );
    expect(text).toContain('User account created 2024-01-01T00:00:00Z');
    expect(text).not.toContain('Service principal created');
    expect(
      allText(buildAlertMessage(view({ enrichment: { principalCreatedAt: '2024-01-01T00:00:00Z' } }))),
    ).toContain('Service principal created 2024-01-01T00:00:00Z');
  });

  it('says when the caller is disabled already, and what a call after that means', () => {
    const text = allText(buildAlertMessage(view({ enrichment: { principalDisabled: true } })));
    expect(text).toMatch(/service principal is disabled in Entra ID/);
    expect(text).toMatch(/token issued before/);
    expect(allText(buildAlertMessage(view({ enrichment: {} })))).not.toMatch(/disabled in Entra ID/);
  });
});

describe('alert message: the identity revoked through another alert', () => {
  const revokedElsewhere = {
    alertId: 'f0f0f0f0f0f0f0f0f0f0f0f0',
    channel: 'C123',
    ts: '1700000000.000009',
    by: 'UALICE',
    at: DETECTED_AT + 3_600_000,
  };

  it('says so near the top, links the alert, and keeps both buttons', () => {
    const m = buildAlertMessage(view({ mode: 'live', revokedElsewhere }));
    expect(m).toMatchSnapshot();
    expect(checkMessageLimits(m)).toEqual([]);
    const line = (m.blocks[2] as { text: { text: string } }).text.text;
    expect(line).toContain(
      '*Identity revoked* through <https://slack.com/archives/C123/p1700000000000009|alert f0f0f0f0f0f0f0f0f0f0f0f0> by <@UALICE>',
    );
    expect(line).toContain(
      'a Revoke here plans again from what Azure holds and repeats nothing already done',
    );
    expect(buttonsOf(m).map((b) => b.action_id)).toEqual([ACTION_IDS.markBenign, ACTION_IDS.revoke]);
    expect(m.text).toContain('(revoked through another alert)');
  });

  it('names the alert without a link when its message is not known', () => {
    const { ts: _, ...noTs } = revokedElsewhere;
    expect(allText(buildAlertMessage(view({ mode: 'live', revokedElsewhere: noTs })))).toContain(
      '*Identity revoked* through alert f0f0f0f0f0f0f0f0f0f0f0f0 by',
    );
  });

  it("gives way to the alert's own live Revoke, and is back once that was undone", () => {
    const revoke: RevokeRun = {
      status: 'done',
      mode: 'live',
      by: 'UBOB',
      at: DETECTED_AT + 7_200_000,
      plan: { appId: ARC.appId, steps: sampleRevokeSteps(), stillHasAccessThrough: [], warnings: [] },
      result: sampleRevokeResult(),
    };
    const own = allText(buildAlertMessage(view({ mode: 'live', revokedElsewhere, revoke })));
    expect(own).not.toContain('Identity revoked');
    expect(own).toContain('Revoked* by <@UBOB>');
    const undo: UndoRun = { status: 'done', mode: 'live', by: 'UBOB', at: DETECTED_AT + 9_000_000 };
    expect(allText(buildAlertMessage(view({ mode: 'live', revokedElsewhere, revoke, undo })))).toContain(
      '*Identity revoked* through',
    );
  });
});

describe('alert message', () => {
  it('matches the snapshot for a new alert', () => {
    expect(buildAlertMessage(view())).toMatchSnapshot();
  });

  it('shows a name that holds mrkdwn as text: it cannot read as a status of the message', () => {
    const spoof = 'ci-runner :white_check_mark: *Marked benign* by _U0EVIL_ ~ok~ `x`';
    const m = buildAlertMessage(
      view({
        alert: sampleAlert(
          {},
          {
            evidence: { ...sampleDetection().evidence, role: 'Arc role *Revoked* `x`' },
            cluster: { ...sampleDetection().cluster!, resourceGroup: 'rg_prod_east' },
          },
        ),
        enrichment: { principalDisplayName: spoof },
      }),
    );
    const text = allText(m);
    for (const formatting of [':white_check_mark: *Marked', '*Marked benign*', '_U0EVIL_', '~ok~', '`x`']) {
      expect(text).not.toContain(formatting);
    }
    // Still readable, and an underscore inside a name is its own.
    expect(text).toContain('\u2236white_check_mark: \u2217Marked benign\u2217 by \uff3fU0EVIL\uff3f');
    expect(text).toContain('*Role*\\nArc role \u2217Revoked\u2217 \u02cbx\u02cb');
    // In code, where nothing formats, a value keeps its characters (a backtick would end the code).
    expect(text).toContain("`Arc role *Revoked* 'x'`");
    expect(text).toContain('rg_prod_east');
  });

  it('names an IPv6 source in the notification text with its own characters, and a name that holds mrkdwn as text', () => {
    const m = buildAlertMessage(
      view({
        alert: sampleAlert(
          {},
          { sourceIp: '2001:db8:a:b::1', cluster: { ...sampleDetection().cluster!, name: '*prod* :fire:' } },
        ),
      }),
    );
    expect(m.text).toContain('from new IP 2001:db8:a:b::1');
    expect(m.text).toContain('\u2217prod\u2217 \u2236fire:');
  });

  it('marks every mrkdwn text verbatim, so that Slack makes no link or mention of its own from a value', () => {
    const m = buildAlertMessage(
      view({
        enrichment: { principalDisplayName: 'see https://evil.example and #general @channel' },
        benign: { by: 'UALICE', reason: 'https://evil.example', at: DETECTED_AT },
      }),
    );
    const modal = buildBenignModal(sampleAlert());
    const texts: Array<{ type: string; verbatim?: boolean }> = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === 'object') {
        if ((node as { type?: unknown }).type === 'mrkdwn') texts.push(node as { type: string });
        Object.values(node).forEach(walk);
      }
    };
    walk([m.blocks, modal.blocks]);
    expect(texts.length).toBeGreaterThan(10);
    expect(texts.filter((t) => t.verbatim !== true)).toEqual([]);
  });

  it('names the identity, source IP, cluster and every investigation field the detection carried', () => {
    const m = buildAlertMessage(view({ enrichment: { principalDisplayName: 'ci-deployer' } }));
    const text = allText(m);
    for (const needle of [
      ARC.appId,
      ARC.ip,
      ARC.clusterName,
      ARC.resourceGroup,
      ARC.subscriptionId,
      ARC.role,
      'ServicePrincipal',
      'London',
      'United Kingdom',
      'Example Transit Ltd',
      'AS64500',
      'ci-deployer',
      ARC.timeIso,
      ARC.operationUpper,
    ]) {
      expect(text).toContain(needle);
    }
    for (const field of [
      '@timestamp',
      'azure.activitylogs.operation_name',
      'azure.activitylogs.identity.claims.appid',
      'azure.activitylogs.identity.authorization.evidence.role',
      'azure.activitylogs.identity.authorization.evidence.principalType',
      'azure.resource.id',
      'source.ip',
      'source.geo.country_name',
      'source.geo.city_name',
      'source.as.organization.name',
    ]) {
      expect(text).toContain(field);
    }
  });

  it('lists evidence.principalType only when the event carried it; a type from the token says so', () => {
    const alert = sampleAlert(
      {},
      { principalType: 'ServicePrincipal', evidence: { role: 'Azure Arc Kubernetes Viewer' } },
    );
    const text = allText(buildAlertMessage(view({ alert })));
    expect(text).not.toContain('azure.activitylogs.identity.authorization.evidence.principalType');
    expect(text).toContain('azure.activitylogs.identity.authorization.evidence.role');
    expect(text).toContain('ServicePrincipal (from the token)');
  });

  it('shows geo and AS looked up by GeoIP with the source IP, marked so, not as investigation fields', () => {
    const alert = sampleAlert(
      {},
      {
        sourceFormat: 'azure-activity-log-record',
        elasticAlert: undefined,
        geo: { countryName: 'United Kingdom', cityName: 'London' },
        as: { number: 20712, organizationName: 'Andrews & Arnold Ltd' },
        located: { geo: true, as: true },
      },
    );
    const text = allText(buildAlertMessage(view({ alert })));
    expect(text).toContain('London, United Kingdom (GeoIP) · AS20712 Andrews &amp; Arnold Ltd (GeoIP)');
    expect(text).not.toContain('source.geo.country_name');
    expect(text).not.toContain('source.as.organization.name');
    expect(text).toContain('source.ip');
    // A long carried place never cuts the mark of a looked-up AS.
    const long = sampleAlert(
      {},
      {
        geo: { cityName: 'C'.repeat(250), countryName: 'United Kingdom' },
        as: { number: 20712, organizationName: 'Andrews & Arnold Ltd' },
        located: { as: true },
      },
    );
    const longText = allText(buildAlertMessage(view({ alert: long })));
    expect(longText).toContain('AS20712 Andrews &amp; Arnold Ltd (GeoIP)');
    expect(longText).not.toMatch(/C{200}[^…]*\(GeoIP\)/);
  });

  it('links the cluster to the Azure portal, the Kibana alert and both MITRE techniques', () => {
    const text = allText(buildAlertMessage(view()));
    expect(text).toContain(
      `<https://portal.azure.com/#@${ARC.tenantId}/resource${ARC.clusterId}|${ARC.clusterName}>`,
    );
    expect(text).toContain(`<${ARC.kibanaUrl}/app/security/alerts/redirect/${ARC.alertUuid}|`);
    expect(text).toContain('<https://attack.mitre.org/techniques/T1078/004/|T1078.004');
    expect(text).toContain('<https://attack.mitre.org/techniques/T1552/007/|T1552.007');
  });

  it("links the cluster's activity log and the caller in Entra ID, in the detection's tenant", () => {
    const entra = 'https://portal.azure.com';
    const text = allText(buildAlertMessage(view()));
    expect(text).toContain(
      `<${entra}/#@${ARC.tenantId}/resource${ARC.clusterId}/eventlogs|the cluster's activity log>`,
    );
    expect(text).toContain(
      `<${entra}/${ARC.tenantId}/#view/Microsoft_AAD_IAM/ManagedAppMenuBlade/~/Overview/objectId/${ARC.principalId}/appId/${ARC.appId}|the service principal in Entra ID>`,
    );
    // A user: the profile page. Without a tenant (or with one that is no GUID): the reader's own directory.
    const user = allText(
      buildAlertMessage(view({ alert: sampleAlert({}, { principalType: 'User', tenantId: 'x/../evil' }) })),
    );
    expect(user).toContain(
      `<${entra}/#view/Microsoft_AAD_UsersAndTenants/UserProfileMenuBlade/~/overview/userId/${ARC.principalId}|the user in Entra ID>`,
    );
    expect(user).toContain(`<${entra}/#@/resource${ARC.clusterId}|${ARC.clusterName}>`);
    expect(user).not.toMatch(/portal\.azure\.com\/(#@)?x\//);
    // Evidence that names a group gives no caller's object id: no Entra ID link, the log's still.
    const group = allText(
      buildAlertMessage(
        view({
          alert: sampleAlert(
            {},
            { principalId: undefined, evidence: { principalType: 'Group', principalId: ARC.principalId } },
          ),
        }),
      ),
    );
    expect(group).not.toContain('in Entra ID>');
    expect(group).toContain("|the cluster's activity log>");
  });

  it('says why it fired with the window and the number of other IPs', () => {
    const text = allText(buildAlertMessage(view()));
    expect(text).toContain('first use of this IP by this identity in 7d; 2 other IPs seen');
    const one = allText(
      buildAlertMessage(view({ alert: sampleAlert({ otherIps: 1, windowMs: 36 * 3600_000 }) })),
    );
    expect(one).toContain('in 36h; 1 other IP seen');
    // A count estimated from a sample says so.
    expect(allText(buildAlertMessage(view({ alert: sampleAlert({ otherIps: 509 }) })))).toContain(
      'in 7d; 509 other IPs seen',
    );
    expect(
      allText(buildAlertMessage(view({ alert: sampleAlert({ otherIps: 398, otherIpsEstimated: true }) }))),
    ).toContain('in 7d; about 398 other IPs seen');
  });

  it('says that an event from longer ago than the window cannot be told new, and alerts once per pair', () => {
    const old = new Date(DETECTED_AT - 30 * 86_400_000).toISOString();
    const text = allText(buildAlertMessage(view({ alert: sampleAlert({}, { eventTime: old }) })));
    expect(text).toContain('an event from longer ago than 7d (a late delivery or a replay)');
    expect(text).toContain('2 other IPs seen in the last 7d');
    expect(text).not.toContain('first use of this IP');
  });

  it('gives the correlation id and the tenant, to find the event in the activity log', () => {
    const text = allText(buildAlertMessage(view()));
    expect(text).toContain(`correlation id \`${sampleDetection().correlationId}\``);
    expect(text).toContain(`tenant \`${sampleDetection().tenantId}\``);
    const bare = allText(
      buildAlertMessage(view({ alert: sampleAlert({}, { correlationId: undefined, tenantId: undefined }) })),
    );
    expect(bare).not.toContain('correlation id');
  });

  it("shows a cluster id of Azure's longest names whole among the investigation fields, to paste into Kibana or az", () => {
    // A resource group name may have 90 characters and a connected cluster's 63: 270 in all.
    const id = `/subscriptions/${ARC.subscriptionId}/resourceGroups/${'r'.repeat(90)}/providers/Microsoft.Kubernetes/connectedClusters/${'c'.repeat(63)}`;
    const alert = sampleAlert({}, { cluster: { ...sampleDetection().cluster!, id } });
    const m = buildAlertMessage(view({ alert }));
    const fields = m.blocks!.flatMap((b) => ('fields' in b && b.fields ? b.fields : []));
    expect(fields.map((f) => f.text)).toContainEqual(`*azure.resource.id*\n\`${id}\``);
    expect(checkMessageLimits(m)).toEqual([]);
  });

  it('shows the appid investigation field as the event wrote it, to search for in Elastic', () => {
    const sent = ARC.appId.replaceAll('-', '').toUpperCase();
    const fields = investigationFields(sampleDetection({ appIdAsSent: sent }));
    expect(fields).toContainEqual(['azure.activitylogs.identity.claims.appid', sent]);
    expect(investigationFields(sampleDetection())).toContainEqual([
      'azure.activitylogs.identity.claims.appid',
      ARC.appId,
    ]);
  });

  it('says that an event time in the future was judged as at detection', () => {
    const future = allText(
      buildAlertMessage(view({ alert: sampleAlert({}, { eventTime: '2099-01-01T00:00:00Z' }) })),
    );
    expect(future).toContain('(in the future: judged as at detection)');
    expect(allText(buildAlertMessage(view()))).not.toContain('in the future');
  });

  it("says when an alert Elastic judged new is on a pair this history saw, and quotes Elastic's reason once", () => {
    const seenHereAt = Date.parse('2026-03-12T08:00:00Z');
    const text = allText(
      buildAlertMessage(
        view({
          alert: sampleAlert(
            { reason: 'elastic-alert', seenHereAt },
            { elasticAlert: { reason: 'event with source 203.0.113.7 created medium alert X. ' } },
          ),
        }),
      ),
    );
    expect(text).toContain(
      `Elastic judged this IP new for this identity, but this service saw the pair within 7d (last <!date^${seenHereAt / 1000}^`,
    );
    expect(text).not.toContain('first use of this IP');
    expect(text).toContain('Elastic: event with source 203.0.113.7 created medium alert X.');
    expect(text).not.toContain('alert X..');
  });

  it('says the source is Azure when the detection came from the activity log', () => {
    const m = buildAlertMessage(
      view({
        alert: sampleAlert({}, { sourceFormat: 'azure-activity-log-record', elasticAlert: undefined }),
      }),
    );
    expect(allText(m)).toContain('Azure activity log (Event Hub record)');
    expect(allText(m)).not.toContain('Kibana');
    const source = (sourceFormat: SourceFormat) =>
      allText(buildAlertMessage(view({ alert: sampleAlert({}, { sourceFormat, elasticAlert: undefined }) })));
    expect(source('azure-activity-log-rest')).toContain('Azure activity log (REST API)');
    expect(source('azure-monitor-legacy')).toContain('Azure Monitor alert (legacy activity-log schema)');
    expect(source('azure-monitor-legacy')).not.toContain('Event Hub');
  });

  it('has a Mark benign button and a danger Revoke button behind a confirm dialog, carrying the alert id', () => {
    const m = buildAlertMessage(view());
    const [benign, revoke] = buttonsOf(m);
    expect(benign).toMatchObject({ action_id: ACTION_IDS.markBenign, value: sampleAlert().id });
    expect((benign!.text as { text: string }).text).toContain('Mark benign');
    expect(revoke).toMatchObject({ action_id: ACTION_IDS.revoke, style: 'danger', value: sampleAlert().id });
    expect((revoke!.text as { text: string }).text).toContain('Revoke');
    const confirm = revoke!.confirm as { text: { text: string }; style: string };
    expect(confirm.style).toBe('danger');
    expect(confirm.text.text).toContain('Dry-run');
    expect(confirm.text.text).toContain('Disable the service principal');
  });

  it("heads an Azure Monitor alert with the rule's severity: activity-log alerts always say Sev4", () => {
    const azure = (severity: string) =>
      buildAlertMessage(
        view({
          alert: sampleAlert(
            {},
            {
              sourceFormat: 'azure-monitor-common',
              elasticAlert: undefined,
              azureAlert: { alertRule: 'arc-credentials', severity },
            },
          ),
        }),
      ).text;
    expect(azure('Sev4')).toMatch(/^Medium: /);
    expect(azure('Sev0')).toMatch(/^Medium: /);
    const elastic = (severity: string) =>
      buildAlertMessage(view({ alert: sampleAlert({}, { elasticAlert: { severity } }) })).text;
    expect(elastic('high')).toMatch(/^High: /);
    expect(elastic('nonsense')).toMatch(/^Medium: /);
  });

  it('says when Elastic or Azure Monitor raised the alert, and when it was received here', () => {
    const raised = '2026-03-12T08:00:00Z';
    const detected = (over: Parameters<typeof sampleAlert>[1]) =>
      allText(buildAlertMessage(view({ alert: sampleAlert({}, over) })));
    const at = (iso: string) => `<!date^${Date.parse(iso) / 1000}^`;
    const received = `received <!date^${Math.floor(DETECTED_AT / 1000)}^`;
    expect(detected({ elasticAlert: { raisedAt: raised } })).toContain(`*Detected*\\n${at(raised)}`);
    expect(detected({ elasticAlert: { raisedAt: raised } })).toMatch(/by Elastic\\nreceived <!date\^/);
    expect(detected({ elasticAlert: { raisedAt: raised } })).toContain(received);
    const monitor = detected({
      sourceFormat: 'azure-monitor-common',
      elasticAlert: undefined,
      azureAlert: { firedAt: raised },
    });
    expect(monitor).toContain(`*Detected*\\n${at(raised)}`);
    expect(monitor).toContain('by Azure Monitor');
    // An event with no alert of its own was detected here, when it was received.
    const record = detected({ sourceFormat: 'azure-activity-log-record', elasticAlert: undefined });
    expect(record).toContain(`*Detected*\\n<!date^${Math.floor(DETECTED_AT / 1000)}^`);
    expect(record).not.toContain('received');
  });

  it("links the rule's alerts in Kibana when the alert has no link of its own", () => {
    const results = 'https://kibana.example/app/security/detections/rules/id/abc';
    const text = allText(
      buildAlertMessage(view({ alert: sampleAlert({}, { elasticAlert: { resultsUrl: results } }) })),
    );
    // The host is in sight: whoever can post a detection chooses the link.
    expect(text).toContain(`<${results}|the rule's alerts in Kibana at kibana.example>`);
    const own = allText(buildAlertMessage(view()));
    expect(own).not.toContain("the rule's alerts");
  });

  it("shows the end of a Kibana link's long host, the domain it leads to, also when the message must shrink", () => {
    const padded = `kibana.corp.example.com.${'a'.repeat(60)}.${'b'.repeat(60)}.attacker.example`;
    for (const ruleName of ['Arc rule', 'R'.repeat(5000)]) {
      const text = allText(
        buildAlertMessage(
          view({
            alert: sampleAlert(
              {},
              {
                elasticAlert: {
                  ruleName,
                  url: `https://${padded}/app/security/alerts`,
                  resultsUrl: `https://${padded}/app/security/rules`,
                },
              },
            ),
          }),
        ),
      );
      expect(text).toMatch(/\(Kibana at …a*\.b{60}\.attacker\.example\)>/);
      expect(text).not.toContain('Kibana at kibana.corp');
    }
  });

  it("shows a Kibana link's host escaped, also when it is no host a URL parser takes", () => {
    const url = 'https://kibana.example:99999/<!channel>&amp;';
    const text = allText(buildAlertMessage(view({ alert: sampleAlert({}, { elasticAlert: { url } }) })));
    expect(text).toContain('Kibana at https://kibana.example:99999/&lt;!channel&gt;&amp;amp;');
    expect(text).not.toContain('<!channel');
  });

  it('shows the caller apart from the group its access came through', () => {
    const group = '99999999-aaaa-4bbb-bccc-cddddeeeefff';
    const text = allText(
      buildAlertMessage(
        view({
          alert: sampleAlert(
            {},
            {
              principalType: 'ServicePrincipal',
              principalId: ARC.principalId,
              evidence: { role: 'Azure Arc Kubernetes Viewer', principalType: 'Group', principalId: group },
            },
          ),
        }),
      ),
    );
    expect(text).toContain(
      `*Principal type*\\nServicePrincipal (from the token)\\n\`${ARC.principalId}\`\\naccess through a group assignment: group \`${group}\``,
    );
    // A user known from the token's UPN says so, as the Revoke plan treats it.
    const user = allText(
      buildAlertMessage(
        view({
          alert: sampleAlert(
            {},
            {
              principalType: undefined,
              user: { upn: 'eve@contoso.com' },
              evidence: { role: 'Azure Arc Kubernetes Viewer' },
            },
          ),
        }),
      ),
    );
    expect(user).toContain('*Principal type*\\nUser (from the token)');
  });

  it("tells where Elastic stores the evidence's principal type", () => {
    const text = allText(buildAlertMessage(view()));
    expect(text).toContain(
      '*azure.activitylogs.identity.authorization.evidence.principalType*\\n`ServicePrincipal`\\n_in Elastic:_ `azure.activitylogs.identity.authorization.evidence.principal_type`',
    );
  });

  it('after a switch of AZURE_REMEDIATION, the Revoke dialog says what the current mode does', () => {
    const steps = [{ description: `Disable the service principal of application ${ARC.appId}` }];
    const dialog = (confirmText: string, mode: 'dry-run' | 'live') => {
      const revoke = buttonsOf(buildAlertMessage(view({ confirmText, mode })))[1]!;
      return (revoke.confirm as { text: { text: string } }).text.text;
    };
    // Planned in dry-run, shown in live: no promise that nothing will change.
    const live = dialog(confirmTextFor('dry-run', steps), 'live');
    expect(live).not.toContain('Dry-run');
    expect(live).toBe(confirmTextFor('live', steps));
    // And the other way round.
    expect(dialog(confirmTextFor('live', steps), 'dry-run')).toBe(confirmTextFor('dry-run', steps));
    expect(dialog(confirmTextFor('dry-run', steps), 'dry-run')).toBe(confirmTextFor('dry-run', steps));
  });

  it('the Revoke dialog of a live Revoke that failed partway names only the steps left', () => {
    const [remove, disable] = sampleRevokeSteps();
    const failed = (undo?: AlertView['undo']): AlertView =>
      view({
        mode: 'live',
        revoke: {
          status: 'failed',
          mode: 'live',
          by: 'UALICE',
          at: DETECTED_AT + 1000,
          plan: { appId: ARC.appId, steps: [remove, disable], stillHasAccessThrough: [], warnings: [] },
          result: {
            mode: 'live',
            ok: false,
            steps: [
              { stepId: 'remove', status: 'done', detail: 'removed' },
              { stepId: 'disable', status: 'failed', detail: 'Graph answered 403' },
            ],
          },
        },
        ...(undo ? { undo } : {}),
      });
    const dialog = (v: AlertView) => {
      const revoke = buttonsOf(buildAlertMessage(v)).find((b) => b.action_id === ACTION_IDS.revoke)!;
      return (revoke.confirm as { text: { text: string } }).text.text;
    };
    expect(dialog(failed())).toBe(
      'Finishes the Revoke that failed partway (the change it made stays): 1) Disable the service principal.',
    );
    // What an Undo of that run put back is to be done again: the whole plan.
    const undo: AlertView['undo'] = {
      status: 'failed',
      mode: 'live',
      by: 'UBOB',
      at: DETECTED_AT + 2000,
      of: DETECTED_AT + 1000,
      result: { mode: 'live', ok: false, steps: [{ stepId: 'remove', status: 'done', detail: 'back' }] },
    };
    expect(dialog(failed(undo))).toBe(confirmTextFor('live', CONFIRM_STEPS));
    // In dry-run nothing is carried: the plan's dialog.
    expect(dialog({ ...failed(), mode: 'dry-run' })).toBe(CONFIRM);
  });

  it('the Revoke dialog of a principal disabled already says that its step only checks, in full and when summed up', () => {
    const steps = [
      { description: 'Remove the role assignment', kind: 'remove-assignment' },
      { description: 'Disable the service principal', kind: 'disable-service-principal' },
    ];
    expect(confirmTextFor('live', steps, 0, { principalDisabled: true })).toBe(
      '1) Remove the role assignment; 2) Disable the service principal (disabled already as the alert was posted: the run checks).',
    );
    expect(confirmTextFor('live', steps)).toBe(
      '1) Remove the role assignment; 2) Disable the service principal.',
    );
    const long = [{ ...steps[0]!, description: 'x'.repeat(300) }, steps[1]!];
    expect(confirmTextFor('live', long, 0, { principalDisabled: true })).toBe(
      'Will remove the role assignment that granted the access, then disable the service principal (disabled already as the alert was posted: the run checks).',
    );
  });

  it("keeps what removing broad roles means in their dialog, however long the roles' names", () => {
    const long = (n: number) => ({
      kind: 'broad-role' as const,
      assignmentId: `/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/${n}`,
      roleName: `Custom role ${n} ${'word '.repeat(40)}`,
      scope: '/subscriptions/s',
    });
    const plan = { appId: ARC.appId, steps: [], stillHasAccessThrough: [long(1), long(2)], warnings: [] };
    for (const mode of ['dry-run', 'live'] as const) {
      const text = broadConfirmText(mode, plan);
      expect(text.length).toBeLessThanOrEqual(300);
      expect(text).toMatch(
        /\(listed in the alert\)\. The principal loses everything these roles grant there, not only the Arc access\.$/,
      );
    }
  });

  it("shows the plan's alarms until a Revoke runs, which then shows its own", () => {
    const alarm = 'POSSIBLE TAMPERING: the detection names someone else';
    expect(allText(buildAlertMessage(view({ planAlarms: [alarm] })))).toContain(`:rotating_light: ${alarm}`);
    const ran = buildAlertMessage(
      view({
        planAlarms: [alarm],
        revoke: { status: 'failed', mode: 'dry-run', by: 'UALICE', at: DETECTED_AT, error: 'x' },
      }),
    );
    expect(allText(ran)).not.toContain(`:rotating_light: ${alarm}`);
  });

  it('has a plain text fallback for notifications', () => {
    const m = buildAlertMessage(view());
    expect(m.text).toBe(
      `Medium: Arc cluster credentials of ${ARC.clusterName} listed by ${ARC.appId} from new IP ${ARC.ip}`,
    );
  });

  it('shows repeats, a benign mark and a dry-run result (snapshot)', () => {
    const m = buildAlertMessage(
      view({
        repeat: { count: 4, lastSeen: DETECTED_AT + 3600_000 },
        benign: {
          by: 'UALICE',
          reason: 'new CI runner pool',
          at: DETECTED_AT + 7200_000,
          until: DETECTED_AT + 86_400_000,
        },
        revoke: {
          status: 'done',
          mode: 'dry-run',
          by: 'UALICE',
          at: DETECTED_AT + 60_000,
          plan: {
            appId: ARC.appId,
            steps: [
              {
                id: 's1',
                kind: 'disable-service-principal',
                description: 'Disable the service principal',
                call: 'PATCH https://graph.microsoft.com/v1.0/servicePrincipals/x {"accountEnabled":false}',
                target: 'x',
              },
            ],
            stillHasAccessThrough: [],
            warnings: [],
          },
          result: {
            mode: 'dry-run',
            ok: true,
            steps: [{ stepId: 's1', status: 'would-do', detail: 'dry-run' }],
          },
        },
      }),
    );
    expect(m).toMatchSnapshot();
    const text = allText(m);
    expect(text).toContain('Seen 4 times');
    expect(text).toContain('Marked benign');
    expect(text).toContain('new CI runner pool');
    expect(text).toContain('nothing was changed');
    expect(text).toContain('PATCH https://graph.microsoft.com/v1.0/servicePrincipals/x');
  });

  it('shows an allowlist entry that has expired as expired: no check mark, no "(marked benign)", the plain button', () => {
    const benign = { by: 'UALICE', reason: 'CI runner', at: DETECTED_AT, until: DETECTED_AT + 86_400_000 };
    const before = buildAlertMessage(view({ benign, now: DETECTED_AT + 3_600_000 }));
    expect(allText(before)).toContain(':white_check_mark: *Marked benign*');
    expect(before.text).toContain('(marked benign)');
    expect((buttonsOf(before)[0]!.text as { text: string }).text).toBe('Mark benign (change)');

    const after = buildAlertMessage(view({ benign, now: DETECTED_AT + 25 * 3_600_000 }));
    const text = allText(after);
    expect(text).not.toContain(':white_check_mark:');
    expect(text).toContain('The allowlist entry expired');
    expect(text).toContain('detections of this pair are no longer allowlisted');
    expect(after.text).not.toContain('(marked benign)');
    expect((buttonsOf(after)[0]!.text as { text: string }).text).toBe('Mark benign');
  });

  it('does not offer Revoke while an Undo runs (after a failed run)', () => {
    const m = buildAlertMessage(
      view({
        mode: 'live',
        revoke: { status: 'failed', mode: 'live', by: 'UALICE', at: DETECTED_AT },
        undo: { status: 'running', mode: 'live', by: 'UALICE', at: DETECTED_AT },
      }),
    );
    expect(buttonsOf(m).map((b) => b.action_id)).not.toContain(ACTION_IDS.revoke);
  });

  it('drops the Revoke button once a live revoke is done, and while one runs', () => {
    const done = buildAlertMessage(
      view({ mode: 'live', revoke: { status: 'done', mode: 'live', by: 'UALICE', at: DETECTED_AT } }),
    );
    expect(buttonsOf(done).map((b) => b.action_id)).toEqual([ACTION_IDS.markBenign]);
    expect(allText(done)).toContain('Revoked');
    const running = buildAlertMessage(
      view({ mode: 'live', revoke: { status: 'running', mode: 'live', by: 'UALICE', at: DETECTED_AT } }),
    );
    expect(buttonsOf(running).map((b) => b.action_id)).toEqual([ACTION_IDS.markBenign]);
    expect(allText(running)).toContain('in progress');
  });

  it('keeps hostile, huge and markup-laden values within every Slack limit', () => {
    const huge = (c: string) => c.repeat(20_000);
    const hostile = `<!channel> <https://evil.example|click> *bold* \`tick\` & ${huge('x')}`;
    const m = buildAlertMessage(
      view({
        alert: sampleAlert(
          { otherIps: 123456, reason: 'elastic-alert' },
          {
            appId: hostile,
            sourceIp: huge('9'),
            eventTime: hostile,
            operation: hostile,
            principalId: hostile,
            principalType: hostile,
            user: { upn: hostile, name: hostile },
            evidence: { role: hostile, principalType: hostile, roleAssignmentScope: hostile },
            geo: { cityName: hostile, countryName: hostile },
            as: { number: 1, organizationName: hostile },
            cluster: {
              id: `/${hostile}`,
              key: 'k',
              name: hostile,
              resourceGroup: hostile,
              subscriptionId: hostile,
            },
            elasticAlert: {
              ruleName: hostile,
              reason: hostile,
              severity: hostile,
              url: `https://k.example/${hostile}`,
            },
          },
        ),
        enrichment: {
          principalDisplayName: hostile,
          principalCreatedAt: hostile,
          principalRecentlyCreated: true,
          principalDisabled: true,
          assignmentCreatedAt: hostile,
          assignmentRecent: true,
          cluster: {
            location: hostile,
            distribution: hostile,
            tags: Object.fromEntries([...Array(50)].map((_, i) => [`${hostile}${i}`, hostile])),
          },
          errors: [...Array(20)].map(() => hostile),
        },
        repeat: { count: 99, lastSeen: DETECTED_AT },
        benign: { by: 'UALICE', reason: hostile, at: DETECTED_AT },
        revoke: {
          status: 'failed',
          mode: 'live',
          by: 'UALICE',
          at: DETECTED_AT,
          error: hostile,
          plan: {
            appId: hostile,
            steps: [...Array(40)].map((_, i) => ({
              id: `s${i}`,
              kind: 'remove-assignment' as const,
              description: hostile,
              call: hostile,
              target: hostile,
            })),
            stillHasAccessThrough: [...Array(40)].map(() => ({
              assignmentId: hostile,
              roleName: hostile,
              scope: hostile,
            })),
            warnings: [...Array(40)].map(() => hostile),
          },
          result: {
            mode: 'live',
            ok: false,
            steps: [...Array(40)].map((_, i) => ({
              stepId: `s${i}`,
              status: 'failed' as const,
              detail: hostile,
              fix: hostile,
            })),
          },
        },
        confirmText: confirmTextFor(
          'live',
          [...Array(30)].map(() => ({ description: hostile })),
          5,
        ),
      }),
    );
    expect(checkMessageLimits(m)).toEqual([]);
    const text = allText(m);
    // Markup from the detection never becomes a mention or a link of its own.
    expect(text).not.toContain('<!channel>');
    expect(text).not.toContain('<https://evil.example');
    expect(m.text.length).toBeLessThanOrEqual(LIMITS.text);
    expect(m.blocks.length).toBeLessThanOrEqual(LIMITS.blocks);
  });

  /** The plan's step that disables the service principal. */
  const DISABLE_SP: PlannedStep = {
    id: 'sp',
    kind: 'disable-service-principal',
    description: 'Disable the service principal',
    call: 'PATCH https://graph.microsoft.com/v1.0/servicePrincipals/4c2a9e71-8b3d-4f05-a6c1-2d7e9b0f5a38 {"accountEnabled":false}',
    target: '4c2a9e71-8b3d-4f05-a6c1-2d7e9b0f5a38',
  };

  /** `n` planned removals of Arc role assignments, each in a resource group of its own. */
  const removalSteps = (n: number): PlannedStep[] =>
    [...Array(n)].map((_, i) => ({
      id: `r${i}`,
      kind: 'remove-assignment' as const,
      description: `Remove the role assignment ${i} of Azure Arc Enabled Kubernetes Cluster User Role at rg-arc-${i}`,
      call: `DELETE https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-arc-${i}/providers/Microsoft.Authorization/roleAssignments/${i}?api-version=2022-04-01`,
      target: `a${i}`,
    }));

  /** The alert after a Revoke run of `steps` (each step's result from `result`), and its Revoke section. */
  function revokeSection(run: {
    status: 'failed' | 'done';
    mode: 'live' | 'dry-run';
    steps: PlannedStep[];
    result: (step: PlannedStep) => StepResult;
    warnings?: string[];
    still?: RemediationPlan['stillHasAccessThrough'];
  }) {
    const m = buildAlertMessage(
      view({
        revoke: {
          status: run.status,
          mode: run.mode,
          by: 'UALICE',
          at: DETECTED_AT,
          plan: {
            appId: ARC.appId,
            steps: run.steps,
            stillHasAccessThrough: run.still ?? [],
            warnings: run.warnings ?? [],
          },
          result: { mode: run.mode, ok: run.status === 'done', steps: run.steps.map(run.result) },
        },
      }),
    );
    expect(checkMessageLimits(m)).toEqual([]);
    const marker =
      run.mode === 'dry-run' ? '*Dry-run*' : run.status === 'failed' ? 'failed*, started by' : '';
    const section = m.blocks
      .map((b) => (b.type === 'section' ? (b.text?.text ?? '') : ''))
      .find((t) => t.includes(marker))!;
    return section;
  }

  it('shows a failed Revoke`s warnings (a possible tampering) however long its steps, leaving out whole steps only', () => {
    const azure403 =
      "Azure answered 403 AuthorizationFailed: The client '3f6a…' with object id '3f6a…' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/delete' over scope '/subscriptions/…' or the scope is invalid. If access was recently granted, please refresh your credentials. ".repeat(
        2,
      );
    const steps = removalSteps(6);
    const alarm = 'POSSIBLE TAMPERING: the role assignment was created 2 minutes before the detection';
    const section = revokeSection({
      status: 'failed',
      mode: 'live',
      steps,
      warnings: [alarm],
      // Many assignments left: the warning still comes first, and notes are left out whole.
      still: [...Array(12)].map((_, i) => ({
        assignmentId: `left-${i}`,
        roleName: 'Azure Arc Kubernetes Cluster Admin',
        scope: `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-arc-${i}/providers/Microsoft.Kubernetes/connectedClusters/arc-prod-${i}`,
      })),
      result: (st) => ({
        stepId: st.id,
        status: 'failed',
        detail: azure403,
        fix: 'Grant the bot’s identity Role Based Access Control Administrator on the cluster, then press Revoke again.',
      }),
    });
    expect(section).toContain(alarm);
    expect(section).toMatch(/… \d more steps? not shown here/);
    expect(section.indexOf(alarm)).toBeLessThan(section.indexOf('Still has access through'));
    expect(section).toMatch(/… \d+ more notes? not shown here$/);
    // Whole steps only: every code span that opens also closes.
    expect((section.match(/`/g) ?? []).length % 2).toBe(0);
    expect(section).toContain(steps[0]!.call);
  });

  it('keeps a failed removal in sight, with its fix and the access it leaves, when the removals that went through do not all fit', () => {
    const steps = removalSteps(8).map((st, i) => ({
      ...st,
      assignment: {
        scope: `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-arc-${i}`,
        roleDefinitionId: 'x',
        principalId: 'p',
        roleName: 'Azure Arc Enabled Kubernetes Cluster User Role',
      },
    }));
    const long = 'removed, as ARM answered: 200 with the assignment it deleted. '.repeat(4);
    const section = revokeSection({
      status: 'failed',
      mode: 'live',
      steps,
      result: (st) =>
        st.id === 'r5'
          ? {
              stepId: st.id,
              status: 'failed',
              detail: 'DELETE failed: 403 AuthorizationFailed',
              fix: 'grant Microsoft.Authorization/roleAssignments/delete at rg-arc-5',
            }
          : { stepId: st.id, status: 'done', detail: long },
    });
    expect(section).toMatch(/… \d more steps? not shown here/);
    expect(section).toContain(steps[5]!.call);
    expect(section).toContain('403 AuthorizationFailed');
    expect(section).toContain('*Fix:* grant Microsoft.Authorization/roleAssignments/delete at rg-arc-5');
    expect(section).toContain(
      ':warning: Still has access through Azure Arc Enabled Kubernetes Cluster User Role at `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-arc-5` (its removal failed)',
    );
    expect((section.match(/`/g) ?? []).length % 2).toBe(0);
    // The steps are shown in the order they ran.
    const shownSteps = [...section.matchAll(/rg-arc-(\d)\/providers/g)].map((m) => Number(m[1]));
    expect(shownSteps).toEqual([...shownSteps].sort());
  });

  it('when every removal failed, still shows the disable step and the access the plan leaves; the failures are one note', () => {
    const azure403 =
      "DELETE failed: 403 AuthorizationFailed: The client '3f6a…' with object id '3f6a…' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/delete' over scope '/subscriptions/…' or the scope is invalid.";
    const disable = DISABLE_SP;
    const section = revokeSection({
      status: 'failed',
      mode: 'live',
      steps: [...removalSteps(6), disable],
      still: [{ assignmentId: '/x', roleName: 'Owner', scope: '/', kind: 'root' }],
      result: (st) =>
        st.id === 'sp'
          ? { stepId: st.id, status: 'done', detail: 'disabled 4c2a9e71-8b3d-4f05-a6c1-2d7e9b0f5a38' }
          : {
              stepId: st.id,
              status: 'failed',
              detail: azure403,
              fix: 'grant Role Based Access Control Administrator on the cluster to arc-responder, then press Revoke again',
            },
    });
    expect(section).toContain(disable.call);
    expect(section).toContain('Still has access through Owner at `/` (the tenant root: remove it in Azure)');
    expect(section).toContain('Still has access through the 6 role assignments whose removal failed');
    expect(section).toMatch(/… \d more steps? not shown here/);
  });

  it('shows the failed removals before any that went through, and names the first three of them in its note', () => {
    const steps = removalSteps(8).map((st, i) => ({
      ...st,
      assignment: {
        scope: `/subscriptions/s/resourceGroups/rg-arc-${i}`,
        roleDefinitionId: 'x',
        principalId: 'p',
        roleName: `Role ${i}`,
      },
    }));
    const failedIds = new Set(['r1', 'r3', 'r5', 'r7']);
    const section = revokeSection({
      status: 'failed',
      mode: 'live',
      steps,
      result: (st) =>
        failedIds.has(st.id)
          ? {
              stepId: st.id,
              status: 'failed',
              detail: `DELETE failed: 403 AuthorizationFailed: ${'the client has no authorization over the scope. '.repeat(6)}`,
              fix: `grant Microsoft.Authorization/roleAssignments/delete: ${'assign the role at the resource group. '.repeat(7)}`,
            }
          : { stepId: st.id, status: 'done', detail: 'removed' },
    });
    const shownCalls = steps.filter((st) => section.includes(st.call)).map((st) => st.id);
    // Not every failed one fits: then none that went through is shown in its place.
    expect(shownCalls.length).toBeGreaterThan(0);
    expect(shownCalls.every((id) => failedIds.has(id))).toBe(true);
    expect(section).toMatch(/… \d more steps? not shown here/);
    expect(section).toContain(
      'Still has access through the 4 role assignments whose removal failed: Role 1 at `/subscriptions/s/resourceGroups/rg-arc-1`; Role 3 at `/subscriptions/s/resourceGroups/rg-arc-3`; Role 5 at `/subscriptions/s/resourceGroups/rg-arc-5`; and 1 more',
    );
  });

  it("shows a removal's PIM note whole, after a long role name and scope", () => {
    const description = `Remove "Azure Arc Enabled Kubernetes Cluster User Role" at /subscriptions/6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/resourceGroups/${'r'.repeat(90)}: it grants listClusterUserCredential on the cluster (a PIM activation until 2026-11-29T17:00:00.000Z: Undo leaves it to PIM)`;
    const section = revokeSection({
      status: 'failed',
      mode: 'live',
      steps: [{ ...removalSteps(1)[0]!, description }],
      result: (st) => ({ stepId: st.id, status: 'done', detail: 'removed' }),
    });
    expect(section).toContain(description);
  });

  it.each([0.5, 0.3, 0.25])(
    'shrunk to %s of its room, a failed Revoke keeps its principal step, counts the removals it leaves out, and never cuts inside a code span',
    (k) => {
      const scope = (i: number) =>
        `/subscriptions/6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/resourceGroups/rg-arc-production-${i}/providers/Microsoft.Kubernetes/connectedClusters/arc-prod-cluster-${i}`;
      const steps: PlannedStep[] = [
        ...removalSteps(6).map((st, i) => ({
          ...st,
          assignment: {
            scope: scope(i),
            roleDefinitionId: 'x',
            principalId: 'p',
            roleName: 'Azure Arc Enabled Kubernetes Cluster User Role',
          },
        })),
        DISABLE_SP,
      ];
      const text = revokeText(
        {
          status: 'failed',
          mode: 'live',
          by: 'U1',
          at: DETECTED_AT,
          plan: { appId: ARC.appId, steps, stillHasAccessThrough: [], warnings: [] },
          result: {
            mode: 'live',
            ok: false,
            steps: steps.map((st) => ({
              stepId: st.id,
              status: 'failed' as const,
              detail: `403 Authorization_RequestDenied: ${'Insufficient privileges to complete the operation. '.repeat(4)}`,
              fix: `grant ${'Application.ReadWrite.OwnedBy or Application.ReadWrite.All '.repeat(3)}`,
            })),
          },
        },
        k,
      );
      expect(text.length).toBeLessThanOrEqual(Math.ceil(2500 * k) + 1);
      expect((text.match(/`/g) ?? []).length % 2).toBe(0);
      expect(text).toContain('Disable the service principal');
      expect(text).toMatch(/… \d more steps? not shown here/);
    },
  );

  it('says once to press Revoke again when the failure already says when', () => {
    const m = buildAlertMessage(
      view({
        revoke: {
          status: 'failed',
          mode: 'live',
          by: 'U1',
          at: DETECTED_AT + 1000,
          error: `Azure could not be read to find every role assignment to remove, so press Revoke again to plan anew once it answers (the steps listed below ran). Not read: listing the role assignments at the cluster (403 AuthorizationFailed: ${'The client does not have authorization to perform action Microsoft.Authorization/roleAssignments/read. '.repeat(5)})`,
          plan: { appId: ARC.appId, steps: removalSteps(1), stillHasAccessThrough: [], warnings: [] },
          result: { mode: 'live', ok: false, steps: [{ stepId: 'r0', status: 'done', detail: 'removed' }] },
        },
      }),
    );
    const text = allText(m);
    expect(text).toContain('press Revoke again to plan anew once it answers');
    expect(text).not.toContain('Press Revoke again to retry the steps that did not finish.');
  });

  it('keeps the step that disables the principal in sight when the removals before it do not all fit (dry-run)', () => {
    const disable = DISABLE_SP;
    const section = revokeSection({
      status: 'done',
      mode: 'dry-run',
      steps: [...removalSteps(9), disable],
      result: (st) => ({ stepId: st.id, status: 'would-do', detail: 'would do' }),
    });
    expect(section).toMatch(/… \d more steps? not shown here\n.*Disable the service principal/);
    expect(section).toContain(disable.call);
  });

  it('never lets long principal steps push a warning out of the Revoke section', () => {
    const user: PlannedStep[] = [
      {
        id: 'du',
        kind: 'disable-user',
        description: 'Disable the user account',
        call: 'PATCH https://graph.microsoft.com/v1.0/users/u1 {"accountEnabled":false}',
        target: 'u1',
      },
      {
        id: 'rs',
        kind: 'revoke-user-sessions',
        description: 'Revoke the sign-in sessions',
        call: 'POST https://graph.microsoft.com/v1.0/users/u1/revokeSignInSessions',
        target: 'u1',
      },
    ];
    const alarm = 'POSSIBLE TAMPERING: the detection names someone else';
    const section = revokeSection({
      status: 'failed',
      mode: 'live',
      steps: [...removalSteps(6), ...user],
      warnings: [alarm],
      result: (st) => ({ stepId: st.id, status: 'failed', detail: 'd'.repeat(300), fix: 'f'.repeat(300) }),
    });
    expect(section).toContain(alarm);
  });

  it('keeps hostile Undo and "Remove broad roles too" states within every Slack limit', () => {
    const hostile = `<!channel> <https://evil.example|click> *bold* \`tick\` & ${'y'.repeat(20_000)}`;
    const steps = [...Array(40)].map((_, i) => ({
      id: `s${i}`,
      kind: (i % 2 ? 'remove-assignment' : 'disable-service-principal') as PlannedStep['kind'],
      description: hostile,
      call: hostile,
      target: hostile,
      assignment: { scope: hostile, roleDefinitionId: hostile, principalId: hostile, roleName: hostile },
    }));
    const results = (status: StepResult['status']) =>
      steps.map((st) => ({ stepId: st.id, status, detail: hostile, fix: hostile }));
    const plan = {
      appId: hostile,
      steps,
      stillHasAccessThrough: [...Array(40)].map(() => ({
        assignmentId: hostile,
        roleName: hostile,
        scope: hostile,
        kind: 'broad-role' as const,
      })),
      warnings: [...Array(40)].map(() => hostile),
    };
    const revoke: RevokeRun = {
      status: 'done',
      mode: 'live',
      by: 'UALICE',
      at: DETECTED_AT,
      plan,
      result: { mode: 'live', ok: true, steps: results('done') },
    };
    const broad: RevokeRun = {
      status: 'failed',
      mode: 'live',
      by: 'UALICE',
      at: DETECTED_AT,
      error: hostile,
      plan,
      result: { mode: 'live', ok: false, steps: results('failed') },
    };
    const undo: UndoRun = {
      status: 'failed',
      mode: 'live',
      by: 'UALICE',
      at: DETECTED_AT,
      error: hostile,
      result: { mode: 'live', ok: false, steps: results('failed') },
    };
    // Five undone earlier rounds, by users with hostile ids.
    const past = [...Array(5)].map(() => ({
      mode: 'live' as const,
      by: hostile,
      at: DETECTED_AT,
      undoneBy: hostile,
      undoneAt: DETECTED_AT,
    }));
    for (const over of [
      { revoke, broad },
      { revoke, broad, undo },
      { revoke, broad, undo, past },
    ]) {
      const m = buildAlertMessage(view({ mode: 'live', broadRemoval: true, ...over }));
      expect(checkMessageLimits(m)).toEqual([]);
      const ids = buttonsOf(m).map((b) => b.action_id);
      expect(ids).toContain(ACTION_IDS.undoRevoke);
      expect(ids.includes(ACTION_IDS.removeBroadRoles)).toBe(!('undo' in over));
      expect(allText(m)).not.toContain('<!channel>');
    }
  });

  it('after a live revoke that left a broad role: Undo and "Remove broad roles too", each confirmed (snapshot)', () => {
    const scope = `/subscriptions/${ARC.subscriptionId}`;
    const revoke: RevokeRun = {
      status: 'done',
      mode: 'live',
      by: 'UALICE',
      at: DETECTED_AT + 60_000,
      plan: {
        appId: ARC.appId,
        steps: sampleRevokeSteps(),
        stillHasAccessThrough: [
          {
            assignmentId: `${scope}/providers/Microsoft.Authorization/roleAssignments/owner-1`,
            roleName: 'Owner',
            scope,
            kind: 'broad-role',
          },
        ],
        warnings: ['could not read role definition x: left in place'],
      },
      result: sampleRevokeResult(),
    };
    const m = buildAlertMessage(view({ mode: 'live', broadRemoval: true, revoke }));
    expect(m).toMatchSnapshot();
    expect(checkMessageLimits(m)).toEqual([]);
    const text = allText(m);
    expect(text).toContain(`Still has access through Owner at \`${scope}\``);
    expect(text).toContain('could not read role definition x');
    const byId = new Map(buttonsOf(m).map((b) => [b.action_id, b]));
    expect([...byId.keys()]).toEqual([
      ACTION_IDS.markBenign,
      ACTION_IDS.undoRevoke,
      ACTION_IDS.removeBroadRoles,
    ]);
    const undoConfirm = byId.get(ACTION_IDS.undoRevoke)!.confirm as { text: { text: string } };
    expect(undoConfirm.text.text).toBe(
      `Re-creates the role assignment: "${ARC.role}" at ${ARC.roleAssignmentScope}. Re-enables the service principal ${ARC.principalId}. The identity can list the cluster credentials again.`,
    );
    const broad = byId.get(ACTION_IDS.removeBroadRoles)!;
    expect(broad.style).toBe('danger');
    expect((broad.confirm as { text: { text: string } }).text.text).toContain(
      `Removes this assignment: Owner at ${scope}.`,
    );
    // Without the broad-removal capability, the button is not offered.
    const without = buildAlertMessage(view({ mode: 'live', revoke }));
    expect(buttonsOf(without).map((b) => b.action_id)).not.toContain(ACTION_IDS.removeBroadRoles);

    const undone = buildAlertMessage(
      view({
        mode: 'live',
        broadRemoval: true,
        revoke,
        undo: {
          status: 'done',
          mode: 'live',
          by: 'UBOB',
          at: DETECTED_AT + 120_000,
          result: {
            mode: 'live',
            ok: true,
            steps: [
              { stepId: 'disable', status: 'done', detail: 're-enabled' },
              { stepId: 'remove', status: 'done', detail: 're-created' },
            ],
          },
        },
      }),
    );
    // After the Undo, Revoke is offered again (a new round); Undo and broad removal are not.
    expect(buttonsOf(undone).map((b) => b.action_id)).toEqual([ACTION_IDS.markBenign, ACTION_IDS.revoke]);
    expect(allText(undone)).toContain('*Undone* by <@UBOB>');
    expect(allText(undone)).toContain(
      JSON.stringify(`Re-create "${ARC.role}" at ${ARC.roleAssignmentScope}`).slice(1, -1),
    );
    expect(undone.text).toContain('(revoke undone)');
    // A failed Undo leaves the access partly back: the notification text says so, not "(revoked)".
    const failedUndo = buildAlertMessage(
      view({
        mode: 'live',
        revoke,
        undo: { status: 'failed', mode: 'live', by: 'UBOB', at: DETECTED_AT + 120_000, error: '403' },
      }),
    );
    expect(failedUndo.text).toMatch(/\(undo failed\)$/);
    expect(failedUndo.text).not.toContain('(revoked)');

    // Undo of a failed run whose disable could not be settled: the alert says Undo left it.
    const unsettled = buildAlertMessage(
      view({
        mode: 'live',
        revoke: {
          ...revoke,
          status: 'failed',
          result: {
            mode: 'live',
            ok: false,
            steps: [
              { stepId: 'remove', status: 'done', detail: 'removed' },
              { stepId: 'disable', status: 'failed', detail: 'PATCH failed: 500', maybeApplied: true },
            ],
          },
        },
        undo: {
          status: 'done',
          mode: 'live',
          by: 'UBOB',
          at: DETECTED_AT + 120_000,
          result: {
            mode: 'live',
            ok: true,
            steps: [{ stepId: 'remove', status: 'done', detail: 're-created' }],
          },
        },
      }),
    );
    const said = allText(unsettled);
    expect(said).toContain('what the revoke changed is reversed');
    expect(said).not.toContain('re-enabled');
    expect(said).toContain(
      'Disable the service principal may have been made (its answer was lost, and Azure could not be read to tell): Undo left it; check it in Azure.',
    );
  });

  it('says the Azure lookups are still running when the alert went out without them', () => {
    expect(allText(buildAlertMessage(view({ enrichmentPending: true })))).toContain('still running');
    expect(allText(buildAlertMessage(view()))).not.toContain('still running');
  });

  it('refuses portal links for ids that are not resource ids', () => {
    expect(portalUrl('not-an-id')).toBeUndefined();
    expect(portalUrl(ARC.clusterId)).toBe(`https://portal.azure.com/#@/resource${ARC.clusterId}`);
  });
});

describe('confirm dialog text', () => {
  it('states the plan in at most 300 characters, or says what Revoke does in general', () => {
    const live = confirmTextFor('live', [{ description: 'Remove X' }, { description: 'Disable Y' }]);
    expect(live).toBe('1) Remove X; 2) Disable Y.');
    // Not planned yet (or planning failed): what Revoke does in general.
    expect(confirmTextFor('live', undefined)).toContain('disables the service principal');
    // Planned, and nothing found that it may change: no promise of a removal.
    expect(confirmTextFor('live', [])).toBe(
      'The plan found nothing it may change (its reasons show once it runs): pressing plans again and changes only what Azure then confirms.',
    );
    expect(confirmTextFor('dry-run', [{ description: 'a'.repeat(1000) }]).length).toBeLessThanOrEqual(300);
    // Steps too long to list are summarised by kind.
    const long = confirmTextFor(
      'live',
      [
        { kind: 'remove-assignment', description: `Remove the role assignment at ${'/x'.repeat(200)}` },
        { kind: 'disable-service-principal', description: 'Disable the service principal' },
      ],
      2,
    );
    expect(long).toBe(
      'Will remove the role assignment that granted the access, then disable the service principal. Other access (2) stays.',
    );
  });
});

describe('text helpers', () => {
  it('escape, clip without breaking entities or surrogate pairs, and build safe links', () => {
    expect(esc('<a & b>')).toBe('&lt;a &amp; b&gt;');
    expect(clip('abcdef', 4)).toBe('abc…');
    expect(clip(esc('ab&cd'), 4)).toBe('ab…');
    expect(clip('ab😀cd', 4)).toBe('ab…');
    // On a whole word when one ends shortly before the cut; a word longer than that is cut.
    expect(clip('remove the principal from the group', 30)).toBe('remove the principal from the…');
    expect(clip('remove the principal from the group', 29)).toBe('remove the principal from…');
    expect(clip(`see ${'x'.repeat(40)}`, 30)).toBe(`see ${'x'.repeat(25)}…`);
    expect(link('javascript:alert(1)', 'x')).toBe('x');
    expect(link('https://a.example/x|y>z', 'lab|el')).toBe('<https://a.example/x%7Cy%3Ez|label>');
  });

  it('name every character that shows nothing, so that two names that look alike read apart; emoji keep theirs', () => {
    const named: Array<[string, string]> = [
      ['ARC-PROD-01\u3164', 'ARC-PROD-01[U+3164]'],
      ['ARC\u115FPROD\u1160', 'ARC[U+115F]PROD[U+1160]'],
      ['ARC\uFFA0', 'ARC[U+FFA0]'],
      ['ARC-PROD-01\uFE0F', 'ARC-PROD-01[U+FE0F]'],
      ['ARC\u180B', 'ARC[U+180B]'],
      ['AR\u034FC', 'AR[U+034F]C'],
      ['ARC\u{E0041}', 'ARC[U+E0041]'],
      ['pay\u{E0069}\u{E0067}', 'pay[U+E0069][U+E0067]'],
      ['ARC\u2800', 'ARC[U+2800]'],
      ['ARC\u17B4', 'ARC[U+17B4]'],
      ['ad\u200Bmin', 'ad[U+200B]min'],
    ];
    for (const [text, shown] of named) expect(literal(text), shown).toBe(shown);
    // An emoji's variation selector, and a flag's tag sequence, are shown as they are.
    for (const emoji of [
      'Team \u2764\uFE0F',
      '\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}',
      'Team 1\uFE0F\u20E3',
    ]) {
      expect(literal(emoji)).toBe(emoji);
    }
  });
});

const pair = (ip: string, lastSeen: number, extra: Partial<PairRecord> = {}): PairRecord => ({
  appId: ARC.appId,
  ip,
  firstSeen: lastSeen - 86_400_000,
  lastSeen,
  count: 3,
  spans: [[lastSeen, lastSeen]],
  last: { sourceFormat: 'elastic-alert', geo: ARC.geo, as: ARC.as },
  ...extra,
});

describe('/arc-history reply', () => {
  it('marks each part of a place looked up by GeoIP, and a long name never cuts the mark', () => {
    const located = pair('198.51.100.4', DETECTED_AT, {
      last: {
        sourceFormat: 'azure-activity-log-record',
        geo: { cityName: 'Manchester', countryName: 'United Kingdom' },
        as: { number: 20712, organizationName: 'A very long autonomous system organisation name, Limited' },
        located: { geo: true, as: true },
      },
    });
    const line = historyLine({ pair: located });
    expect(line).toContain('Manchester, United Kingdom (GeoIP) · AS20712 A very long');
    expect(line).toMatch(/… \(GeoIP\) · Not allowlisted$/);
    // Only the looked-up part is marked.
    const asOnly = historyLine({
      pair: pair('198.51.100.5', DETECTED_AT, {
        last: { geo: { countryName: 'France' }, as: { number: 64500 }, located: { as: true } },
      }),
    });
    expect(asOnly).toContain('France · AS64500 (GeoIP)');
  });

  const entries: IdentityHistoryEntry[] = [
    {
      pair: pair('203.0.113.7', DETECTED_AT),
      allow: {
        appId: ARC.appId,
        ip: '203.0.113.7',
        by: 'UALICE',
        at: DETECTED_AT,
        reason: 'CI',
        until: DETECTED_AT + 86_400_000,
      },
    },
    { pair: pair('2001:db8::1', DETECTED_AT - 3600_000, { count: 1 }) },
  ];

  // An IP is no free text (its colons open no emoji in code): the dialog names the address as it
  // is, so that what is read or copied from it is that address, not look-alike colons.
  it('names an IPv6 address in the Remove allowlist dialog with its own characters', () => {
    const ip = '2001:db8:a:b::1';
    const m = buildHistoryMessage({
      appId: ARC.appId,
      windowMs: 7 * 86_400_000,
      entries: [
        {
          pair: pair(ip, DETECTED_AT),
          allow: { appId: ARC.appId, ip, by: 'UALICE', at: DETECTED_AT, reason: 'CI' },
        },
      ],
      canRemove: true,
    });
    const dialog = JSON.stringify(m.blocks).match(/"text":"(Detections of [^"]*)"/)?.[1];
    expect(dialog).toContain(`\`${ip}\``);
    expect(dialog).not.toContain('\u2236');
  });

  it('matches the snapshot, with a remove button only for allowlisted pairs and responders', () => {
    const m = buildHistoryMessage({ appId: ARC.appId, windowMs: 7 * 86_400_000, entries, canRemove: true });
    expect(m).toMatchSnapshot();
    const buttons = JSON.stringify(m.blocks).match(new RegExp(ACTION_IDS.removeAllow, 'g')) ?? [];
    expect(buttons).toHaveLength(1);
    const plain = buildHistoryMessage({
      appId: ARC.appId,
      windowMs: 7 * 86_400_000,
      entries,
      canRemove: false,
    });
    expect(JSON.stringify(plain.blocks)).not.toContain(ACTION_IDS.removeAllow);
    expect(m.response_type).toBe('ephemeral');
  });

  /**
   * `n` entries: IPv4 and IPv6, geo and AS, every tenth allowlisted. `worst`: the longest lines
   * (full IPv6, long places, every third allowlisted with a 500-character reason).
   */
  const many = (n: number, worst = false): IdentityHistoryEntry[] =>
    [...Array(n)].map((_, i) => {
      const ip =
        i % 2
          ? worst
            ? `2001:db8:ffff:ffff:ffff:ffff:ffff:${i.toString(16)}`
            : `2001:db8::${i.toString(16)}`
          : `198.18.${i >> 8}.${i & 255}`;
      const place = worst
        ? {
            geo: { cityName: 'Sankt Peterburg'.repeat(3), countryName: 'Bosnia and Herzegovina' },
            as: { number: 4_200_000_000, organizationName: 'Some Very Long Hosting Company Name, Inc.' },
          }
        : { geo: ARC.geo, as: ARC.as };
      const entry: IdentityHistoryEntry = {
        pair: pair(ip, DETECTED_AT - i * 60_000, {
          count: 1 + (i % 40),
          firstSeen: DETECTED_AT - (i % 6) * 86_400_000,
          last: { sourceFormat: 'elastic-alert', ...place },
        }),
      };
      if (i % (worst ? 3 : 10) === 0) {
        entry.allow = {
          appId: ARC.appId,
          ip,
          by: 'UALICE',
          at: DETECTED_AT,
          reason: worst ? 'r'.repeat(500) : 'CI runner pool',
          until: DETECTED_AT + 7 * 86_400_000,
        };
      }
      return entry;
    });
  const pagesFor = (entries: IdentityHistoryEntry[], start = 0) =>
    buildHistoryPages({ appId: ARC.appId, windowMs: 7 * 86_400_000, entries, canRemove: true, start });
  const ipsIn = (m: { blocks?: unknown[] }) =>
    [...JSON.stringify(m.blocks).matchAll(/(?:^|\\n|")`([^`]+)` \d+×/g)].map((x) => x[1]);

  it('packs 250 IPs into a few messages, every one within Slack limits, nothing left out', () => {
    const entries = many(250);
    const pages = pagesFor(entries);
    expect(pages.length).toBeGreaterThan(1);
    expect(pages.length).toBeLessThanOrEqual(HISTORY_MAX_MESSAGES);
    for (const p of pages) {
      expect(checkMessageLimits({ text: p.text, blocks: p.blocks ?? [] })).toEqual([]);
      expect(p.response_type).toBe('ephemeral');
    }
    expect(pages.flatMap(ipsIn)).toEqual(entries.map((e) => e.pair.ip));
    expect(JSON.stringify(pages)).not.toContain('not shown');
    // The heading is whole, its legend and the part it is of included.
    const head = JSON.stringify(pages[0]!.blocks?.[0]);
    expect(head).toContain('run until 7 days pass without a sighting.');
    expect(head).toMatch(new RegExp(`Part 1 of ${pages.length}: IPs 1–\\d+ of 250; the rest follow`));
    // Remove buttons: for allowlisted IPs only, at most HISTORY_MAX_BUTTONS, in the first message.
    const buttons = JSON.stringify(pages[0]!.blocks).match(new RegExp(ACTION_IDS.removeAllow, 'g')) ?? [];
    expect(buttons).toHaveLength(HISTORY_MAX_BUTTONS);
    expect(JSON.stringify(pages[0]!.blocks)).toContain(
      `Buttons for the ${HISTORY_MAX_BUTTONS} most recent of 25 allowlisted IPs`,
    );
    for (const p of pages.slice(1)) expect(JSON.stringify(p.blocks)).not.toContain(ACTION_IDS.removeAllow);
  });

  it('lists 500 IPs with long places whole, in compact lines (no geo, AS or allowlist details), where full lines would cut it', () => {
    const longPlace = {
      geo: { cityName: 'C'.repeat(60), countryName: 'Bosnia and Herzegovina' },
      as: { number: 4_200_000_000, organizationName: 'A'.repeat(80) },
    };
    const entries = many(500).map((e, i) => {
      const ip = `198.18.${i >> 8}.${i & 255}`;
      return {
        pair: { ...e.pair, ip, last: { ...e.pair.last, ...longPlace } },
        ...(e.allow ? { allow: { ...e.allow, ip } } : {}),
      };
    });
    const linesIn = (m: { blocks?: unknown[] }) =>
      ((m.blocks ?? []) as Array<{ type: string; text?: { text: string } }>)
        .flatMap((b) => (b.type === 'section' && b.text ? b.text.text.split('\n') : []))
        .filter((l) => /^`[^`]+` \d+×/.test(l));
    const pages = pagesFor(entries);
    expect(pages.length).toBeLessThanOrEqual(HISTORY_MAX_MESSAGES);
    for (const p of pages) expect(checkMessageLimits({ text: p.text, blocks: p.blocks ?? [] })).toEqual([]);
    expect(pages.flatMap(ipsIn)).toEqual(entries.map((e) => e.pair.ip));
    const all = JSON.stringify(pages);
    expect(all).not.toContain('not shown');
    expect(all).not.toContain('C'.repeat(40));
    expect(all).not.toContain('CI runner pool');
    // Each line still says allowlisted or not, with the entry's end.
    const lines = pages.flatMap((p) => linesIn(p));
    expect(lines).toHaveLength(500);
    const when = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d → (\d{4}-\d\d-\d\d )?\d\d:\d\d`;
    for (const [i, line] of lines.entries()) {
      // IP, count, first seen → last seen, allowlisted or not: what the contract asks of each IP.
      const { ip, count } = entries[i]!.pair;
      expect(line).toMatch(new RegExp(`^\`${ip.replaceAll('.', '\\.')}\` ${count}× · ${when} · `));
      expect(line).toContain(entries[i]!.allow ? 'Allowlisted until ' : 'Not allowlisted');
    }
    const heading = JSON.stringify(pages[0]!.blocks?.[0]);
    expect(heading).toContain('geo, AS and who allowlisted left out to fit more IPs');
    // Its placeholders escaped: Slack reads any <…> as a link or mention, in code too.
    expect(heading).toContain('/arc-history &lt;appid&gt; &lt;n&gt;');
    expect(heading).not.toMatch(/<appid>|<n>/);
    // Fewer of them fit with their places: those are listed in full lines.
    const fewer = pagesFor(entries.slice(0, 100));
    expect(JSON.stringify(fewer)).toContain('C'.repeat(40));
    expect(JSON.stringify(fewer[0]!.blocks?.[0])).not.toContain('left out to fit');
  });

  it.each([
    ['typical', false],
    ['longest', true],
  ])(
    'cuts 2,000 IPs (%s lines) after the last message it may send, counting what it left out',
    (_, worst) => {
      const entries = many(2000, worst);
      const pages = pagesFor(entries);
      expect(pages).toHaveLength(HISTORY_MAX_MESSAGES);
      for (const p of pages) expect(checkMessageLimits({ text: p.text, blocks: p.blocks ?? [] })).toEqual([]);
      const shown = pages.flatMap(ipsIn);
      expect(shown).toEqual(entries.slice(0, shown.length).map((e) => e.pair.ip));
      const left = 2000 - shown.length;
      expect(left).toBeGreaterThan(0);
      const tail = JSON.stringify(pages.at(-1)!.blocks);
      expect(tail).toContain(`and ${left.toLocaleString('en-US')} older IPs not shown`);
      expect(tail).toContain(`/arc-history ${ARC.appId} ${shown.length + 1}`);
      expect(pages.at(-1)!.text).toContain(`(${left.toLocaleString('en-US')} not shown)`);
      // From there on, the next answer carries on where this one stopped.
      const next = pagesFor(entries, shown.length);
      expect(next.flatMap(ipsIn)[0]).toBe(entries[shown.length]!.pair.ip);
      expect(JSON.stringify(next[0]!.blocks)).toContain(`IPs ${(shown.length + 1).toLocaleString('en-US')}–`);
    },
  );

  it('a refreshed first message (after Remove allowlist) stands alone: it names the command for the rest, promising no replies', () => {
    const entries = many(300);
    const first = pagesFor(entries)[0]!;
    const refreshed = buildHistoryMessage({
      appId: ARC.appId,
      windowMs: 7 * 86_400_000,
      entries,
      canRemove: true,
    });
    const head = JSON.stringify(refreshed.blocks?.[0]);
    const shown = ipsIn(refreshed).length;
    expect(shown).toBe(ipsIn(first).length);
    expect(head).not.toContain('the rest follow');
    expect(head).not.toContain('Part 1 of');
    expect(head).toContain(`IPs 1–${shown} of 300.`);
    const tail = JSON.stringify(refreshed.blocks?.at(-1));
    expect(tail).toContain(`List the rest with \`/arc-history ${ARC.appId} ${shown + 1}\``);
    expect(checkMessageLimits({ text: refreshed.text, blocks: refreshed.blocks ?? [] })).toEqual([]);
    // The longest appid the command takes (128 characters) keeps its command whole.
    const longId = 'a'.repeat(128);
    const long = buildHistoryMessage({ appId: longId, windowMs: 7 * 86_400_000, entries, canRemove: true });
    expect(JSON.stringify(long.blocks?.at(-1))).toContain(`/arc-history ${longId} `);
    expect(JSON.stringify(long.blocks?.at(-1))).not.toContain('…');
  });

  it('round-trips the remove button value, IPv6 and a start included', () => {
    expect(parseRemoveAllowValue(`${ARC.appId}|2001:db8::1`)).toEqual({
      appId: ARC.appId,
      ip: '2001:db8::1',
      start: 0,
    });
    expect(parseRemoveAllowValue(`${ARC.appId}|2001:db8::1|430`)).toEqual({
      appId: ARC.appId,
      ip: '2001:db8::1',
      start: 430,
    });
    // An identity may hold `|` (ingest takes any printable ASCII but `:`); an IP never does.
    for (const start of [0, 3]) {
      expect(parseRemoveAllowValue(removeAllowValue('svc|prod', '198.51.100.7', start))).toEqual({
        appId: 'svc|prod',
        ip: '198.51.100.7',
        start,
      });
    }
    expect(parseRemoveAllowValue('nobar')).toBeUndefined();
    expect(parseRemoveAllowValue('a|b|x')).toBeUndefined();
    expect(parseRemoveAllowValue('a|b|1|2')).toBeUndefined();
    expect(parseRemoveAllowValue(42)).toBeUndefined();
  });
});

describe('triage steps', () => {
  const triage = (alert: ReturnType<typeof sampleAlert>) => allText(buildAlertMessage(view({ alert })));

  it("for a user caller, ask about the person's account and sign-ins, not a service principal's", () => {
    const user = triage(sampleAlert({}, { principalType: 'User', evidence: { principalType: 'User' } }));
    expect(user).toContain("the user's sign-in logs");
    expect(user).toContain('the client application they signed in through');
    expect(user).not.toContain('service principal sign-in');
    const sp = triage(sampleAlert());
    expect(sp).toContain('service principal sign-in');
    expect(sp).not.toContain("the user's sign-in logs");
  });
});

describe('Mark benign modal', () => {
  it('matches the snapshot and stays within modal limits', () => {
    const modal = buildBenignModal(sampleAlert());
    expect(modal).toMatchSnapshot();
    // The entry is the pair's, whatever the cluster: the dialog must not suggest otherwise.
    expect(JSON.stringify(modal)).toContain('*on every cluster* (this one was on arc-prod-01)');
    expect(checkMessageLimits({ blocks: modal.blocks as never }, { maxBlocks: 100 })).toEqual([]);
  });

  it("for a user caller, says that the appid is the client's, shared by its users, so the entry covers them too", () => {
    const user = buildBenignModal(
      sampleAlert(
        {},
        {
          principalType: 'User',
          evidence: { principalType: 'User' },
          user: { upn: 'alice@contoso.example' },
        },
      ),
    );
    const text = JSON.stringify(user.blocks[0]);
    expect(text).toContain('The caller is a user (alice@contoso.example)');
    expect(text).toContain("also holds back other users' detections from this IP");
    // A service principal's appid is its own: no such warning.
    expect(JSON.stringify(buildBenignModal(sampleAlert()).blocks[0])).not.toContain('The caller is a user');
  });

  it('for a pair marked benign already, says so and starts from its reason; not for one removed or expired', () => {
    const now = Date.now();
    const mark = { by: 'UALICE', reason: 'CI runner pool', at: now - 60_000, until: now + 86_400_000 };
    const reasonInput = (m: ReturnType<typeof buildBenignModal>) =>
      JSON.stringify(m.blocks.find((b) => b.block_id === BENIGN_MODAL.reasonBlock));
    const change = buildBenignModal(sampleAlert(), undefined, mark);
    expect(JSON.stringify(change.blocks[0])).toContain('Currently marked benign by <@UALICE>, until ');
    expect(reasonInput(change)).toContain('"initial_value":"CI runner pool"');
    for (const gone of [
      { ...mark, removed: { by: 'UBOB', at: now } },
      { ...mark, until: now - 1000 },
    ]) {
      const fresh = buildBenignModal(sampleAlert(), undefined, gone);
      expect(JSON.stringify(fresh)).not.toContain('Currently marked benign');
      expect(reasonInput(fresh)).not.toContain('initial_value');
    }
  });

  it('requires a reason that is not blank and one of the four expiries', () => {
    const values = (reason: unknown, expiry: unknown) => ({
      [BENIGN_MODAL.reasonBlock]: { [BENIGN_MODAL.reasonInput]: { type: 'plain_text_input', value: reason } },
      [BENIGN_MODAL.expiryBlock]: {
        [BENIGN_MODAL.expiryInput]: {
          type: 'static_select',
          selected_option: expiry === undefined ? null : { value: expiry },
        },
      },
    });
    expect(parseBenignSubmission(values('   ', '7d'))).toEqual({
      ok: false,
      errors: { [BENIGN_MODAL.reasonBlock]: expect.stringContaining('reason') },
    });
    expect(parseBenignSubmission(values('ok', 'forever'))).toMatchObject({ ok: false });
    expect(parseBenignSubmission(undefined)).toMatchObject({ ok: false });
    expect(parseBenignSubmission(values(' new runner ', '24h'))).toEqual({
      ok: true,
      reason: 'new runner',
      expiry: '24h',
      expiryMs: 86_400_000,
    });
    expect(parseBenignSubmission(values('x', 'never'))).toMatchObject({ ok: true, expiryMs: undefined });
    expect(parseBenignSubmission(values('x'.repeat(501), '7d'))).toMatchObject({ ok: false });
  });
});

describe('describeDuration', () => {
  it('names whole units, in the singular for one, and says "about" when the window is no whole unit', () => {
    expect(describeDuration(7 * 86_400_000)).toBe('7 days');
    expect(describeDuration(86_400_000)).toBe('1 day');
    expect(describeDuration(36 * 3_600_000)).toBe('36 hours');
    expect(describeDuration(90 * 60_000)).toBe('90 minutes');
    expect(describeDuration(1000)).toBe('1 second');
    expect(describeDuration(3_700_500)).toBe('about 1 hour');
    expect(describeDuration(1500)).toBe('about 2 seconds');
    expect(describeDuration(500)).toBe('500 ms');
  });
});

describe('benignText', () => {
  it('shows a reason typed on several lines, or with an invisible character, on one line and named', () => {
    const text = benignText({
      by: 'UALICE',
      at: Date.parse('2026-03-12T09:00:00Z'),
      reason: 'CI runner\n*Revoked* by\u202Eme',
    });
    expect(text).not.toMatch(/[\n\u202E]/);
    // Nor can it format: its asterisks are look-alikes.
    expect(text).toContain('“CI runner \u2217Revoked\u2217 by[U+202E]me”');
  });
});

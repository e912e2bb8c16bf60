/**
 * The parsers on the REAL public samples in ../shared/fixtures. They are other operations, so as
 * they are they must be ignored with the operation named; with the operation overwritten to the Arc
 * one ("op→Arc" in the test names) every field must come out right.
 */
import { describe, expect, it } from 'vitest';
import type { Detection, ParseResult } from '../../src/core/detection.ts';
import { extractEvents, parseDetection } from '../../src/core/formats/index.ts';
import { LIST_CLUSTER_USER_CREDENTIAL } from '../../src/core/rule.ts';
import { loadFixture, loadNdjsonFixture, setPath } from '../support/samples.ts';

type Json = Record<string, unknown>;
const ARC_UPPER = LIST_CLUSTER_USER_CREDENTIAL.toUpperCase();

function detection(result: ParseResult): Detection {
  if (!result.ok) throw new Error(`expected a detection, got ${result.kind}: ${result.reason}`);
  return result.detection;
}

function failure(result: ParseResult, kind: 'ignored' | 'invalid'): string {
  expect(result).toMatchObject({ ok: false, kind });
  return result.ok ? '' : result.reason;
}

function withSet(doc: Json, set: Record<string, unknown>): Json {
  for (const [key, value] of Object.entries(set)) setPath(doc, key, value);
  return doc;
}

const ecsExpected = () =>
  loadFixture<{ expected: Json[] }>('elastic-activitylogs/test-activitylogs-raw.log-expected.37c97e14.json')
    .expected;
const ecsMixedCaseExpected = () =>
  loadFixture<{ expected: Json[] }>(
    'elastic-activitylogs/test-activitylogs-mixedcase-resourceid.log-expected.55c9a0a3.json',
  ).expected;

describe('every real sample as it is: ignored, operation named', () => {
  const cases: Array<[string, string]> = [
    [
      'azure-activity-log/activity-log-eventhub-records.docs-sample.json',
      'microsoft.support/supporttickets/write',
    ],
    [
      'azure-activity-log/activity-log-rest-administrative.docs-sample.json',
      'Microsoft.Network/networkSecurityGroups/write',
    ],
    [
      'azure-monitor-alert/common-schema-activitylog-administrative.test-action-group.docs-sample.json',
      'Microsoft.Compute/virtualMachines/restart/action',
    ],
    [
      'azure-monitor-alert/alertContext-activitylog-administrative.alerts-common-schema.docs-sample.json',
      'Microsoft.Compute/virtualMachines/restart/action',
    ],
    ['elastic-activitylogs/sample_event.37c97e14.json', 'MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE'],
    ['elastic-alert/kibana-new_terms-alert-source.DERIVED.json', 'user_login'],
  ];
  it.each(cases)('%s', (file, operation) => {
    const events = extractEvents(loadFixture(file));
    expect(events).toHaveLength(1);
    expect(failure(parseDetection(events[0]), 'ignored')).toContain(operation);
  });

  it('the ECS documents of test-activitylogs-raw and mixedcase-resourceid', () => {
    for (const doc of [...ecsExpected(), ...ecsMixedCaseExpected()]) {
      const op = (doc.azure as { activitylogs: Json }).activitylogs.operation_name as string;
      expect(failure(parseDetection(doc), 'ignored')).toContain(op);
    }
  });

  it('the Event Hub records of test-activitylogs-raw and mixedcase-resourceid', () => {
    for (const file of [
      'elastic-activitylogs/test-activitylogs-raw.25043e5f.log',
      'elastic-activitylogs/test-activitylogs-raw.DERIVED-from-expected-37c97e14.event_original.ndjson',
      'elastic-activitylogs/test-activitylogs-mixedcase-resourceid.4f2b318e.log',
      'elastic-activitylogs/test-activitylogs-mixedcase-resourceid.DERIVED-from-expected-55c9a0a3.event_original.ndjson',
    ]) {
      for (const record of loadNdjsonFixture(file)) {
        expect(failure(parseDetection(record), 'ignored')).toContain(record.operationName as string);
      }
    }
  });

  it('the metric alert: ignored as not an activity-log alert', () => {
    const reason = failure(
      parseDetection(
        loadFixture('azure-monitor-alert/common-schema-metric.alerts-common-schema.docs-sample.json'),
      ),
      'ignored',
    );
    expect(reason).toMatch(/"Metric" alert/);
    expect(reason).toMatch(/not an activity-log alert/);
  });

  it('the legacy webhook docs sample (no operationName): ignored', () => {
    const reason = failure(
      parseDetection(
        loadFixture('azure-monitor-alert/legacy-activityLogs-webhook-administrative.docs-sample.json'),
      ),
      'ignored',
    );
    expect(reason).toMatch(/no operation name/);
  });
});

describe('Elastic ECS document (format A), real samples op→Arc', () => {
  it('sample_event (User, undashed evidence ids, `_` claim keys) without source.ip: invalid', () => {
    const doc = withSet(loadFixture('elastic-activitylogs/sample_event.37c97e14.json'), {
      'azure.activitylogs.operation_name': ARC_UPPER,
    });
    expect(failure(parseDetection(doc), 'invalid')).toMatch(/no caller IP in source\.ip/);
  });

  it('sample_event with a source.ip: every field', () => {
    const doc = withSet(loadFixture('elastic-activitylogs/sample_event.37c97e14.json'), {
      'azure.activitylogs.operation_name': ARC_UPPER,
      'source.ip': '77.170.179.229',
    });
    const d = detection(parseDetection(doc));
    expect(d).toMatchObject({
      sourceFormat: 'elastic-ecs',
      eventTime: '2020-11-02T08:51:36.997Z',
      operation: ARC_UPPER,
      outcome: 'success',
      appId: 'c44b4083-3bb0-49c1-b47d-974e53cbdf3c',
      sourceIp: '77.170.179.229',
      // the `http://schemas_microsoft_com/...` claim keys
      principalId: '68b1adf9-3eb7-44b0-8eb8-ce96522a08d3',
      tenantId: '4fa94b7d-a743-486f-abcc-6c276c44cf4b',
      // evidence.principal_type (there is no principalType in Elastic documents)
      principalType: 'User',
      user: { upn: 'john@gmail.com' },
      correlationId: '876190b4-5b99-4a39-b725-4f5644911cf0',
      evidence: {
        role: 'Owner',
        principalType: 'User',
        principalId: '68b1adf9-3eb7-44b0-8eb8-ce96522a08d3',
        roleAssignmentId: '7f06f09d-d676-4b44-930a-dbec3f10e92b',
        roleDefinitionId: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635',
        roleAssignmentScope:
          '/providers/Microsoft.Management/managementGroups/5341238b-665c-4eb4-b259-b250371ae430',
      },
      cluster: {
        id: '/SUBSCRIPTIONS/3f041b6d-fc31-41d8-8ff6-e5f16e6747ff/RESOURCEGROUPS/OBS-TEST/PROVIDERS/MICROSOFT.RESOURCES/DEPLOYMENTS/NOMARKETPLACE',
        subscriptionId: '3f041b6d-fc31-41d8-8ff6-e5f16e6747ff',
        resourceGroup: 'OBS-TEST',
        resourceType: 'MICROSOFT.RESOURCES/DEPLOYMENTS',
        name: 'NOMARKETPLACE',
      },
    });
    expect(d.eventId).toMatch(/^[0-9a-f]{32}$/);
    expect(d.elasticAlert).toBeUndefined();
  });

  it('sample_event with its values as one-element lists (as Elasticsearch `fields` give them): read as the values', () => {
    const doc = withSet(loadFixture('elastic-activitylogs/sample_event.37c97e14.json'), {
      'azure.activitylogs.operation_name': [ARC_UPPER],
      'event.outcome': ['success'],
      'source.ip': ['77.170.179.229'],
      'azure.activitylogs.identity.authorization.evidence.role': ['Owner'],
    });
    const d = detection(parseDetection(doc));
    expect(d).toMatchObject({
      operation: ARC_UPPER,
      outcome: 'success',
      sourceIp: '77.170.179.229',
      evidence: { role: 'Owner' },
    });
  });

  it('sample_event: claims_initiated_by_user.fullname is the user name', () => {
    const doc = withSet(loadFixture('elastic-activitylogs/sample_event.37c97e14.json'), {
      'azure.activitylogs.operation_name': ARC_UPPER,
      'source.ip': '77.170.179.229',
      'azure.activitylogs.identity.claims_initiated_by_user.fullname': 'John Doe',
    });
    expect(detection(parseDetection(doc)).user).toEqual({ upn: 'john@gmail.com', name: 'John Doe' });
  });

  it('the Start document (no event.outcome, result_type Start): ignored, naming Start', () => {
    const doc = withSet(ecsExpected()[0]!, { 'azure.activitylogs.operation_name': ARC_UPPER });
    expect((doc.event as Json).outcome).toBeUndefined();
    expect(failure(parseDetection(doc), 'ignored')).toContain('"Start"');
  });

  it('the same document as a Success (event.outcome absent, result_type Success): falls back to result_type', () => {
    const doc = withSet(ecsExpected()[0]!, {
      'azure.activitylogs.operation_name': ARC_UPPER,
      'azure.activitylogs.result_type': 'Success',
    });
    const d = detection(parseDetection(doc));
    expect(d).toMatchObject({
      eventTime: '2019-10-24T00:13:46.355Z',
      outcome: 'success',
      appId: '8a4de8b5-095c-47d0-a96f-a75130c61d53',
      sourceIp: '81.2.69.144',
      principalType: 'ServicePrincipal',
      geo: { countryName: 'United Kingdom', countryIsoCode: 'GB', cityName: 'London' },
      cluster: { resourceGroup: 'SA-HEMA', name: 'ROOTMANAGESHAREDACCESSKEY' },
    });
    expect(d.as).toBeUndefined();
    expect(d.user).toBeUndefined();
  });

  it('source.as.* when present', () => {
    const doc = withSet(ecsExpected()[0]!, {
      'azure.activitylogs.operation_name': ARC_UPPER,
      'event.outcome': 'success',
      'source.as.number': 64500,
      'source.as.organization.name': 'Example Transit',
    });
    expect(detection(parseDetection(doc)).as).toEqual({ number: 64500, organizationName: 'Example Transit' });
  });

  it('resource id: azure.resource.id, else cloud.resource_id, else azure.resource_id', () => {
    const base = () =>
      withSet(ecsExpected()[0]!, {
        'azure.activitylogs.operation_name': ARC_UPPER,
        'event.outcome': 'success',
        'azure.resource.id':
          '/subscriptions/s/resourceGroups/a/providers/Microsoft.Kubernetes/connectedClusters/from-azure-resource-id',
        'cloud.resource_id':
          '/subscriptions/s/resourceGroups/a/providers/Microsoft.Kubernetes/connectedClusters/from-cloud',
        'azure.resource_id':
          '/subscriptions/s/resourceGroups/a/providers/Microsoft.Kubernetes/connectedClusters/from-legacy',
      });
    expect(detection(parseDetection(base())).cluster?.name).toBe('from-azure-resource-id');
    expect(detection(parseDetection(withSet(base(), { 'azure.resource.id': undefined }))).cluster?.name).toBe(
      'from-cloud',
    );
    expect(
      detection(
        parseDetection(withSet(base(), { 'azure.resource.id': undefined, 'cloud.resource_id': undefined })),
      ).cluster?.name,
    ).toBe('from-legacy');
  });

  it('mixed-case resource id document (only cloud.resource_id, lower-case resourcegroups)', () => {
    const doc = withSet(ecsMixedCaseExpected()[0]!, {
      'azure.activitylogs.operation_name': ARC_UPPER,
    });
    // no identity in this document
    expect(failure(parseDetection(doc), 'invalid')).toMatch(/no caller identity.*claims\.appid/);
    withSet(doc, { 'azure.activitylogs.identity.claims.appid': 'a-p-p', 'source.ip': '81.2.69.144' });
    const d = detection(parseDetection(doc));
    expect(d.cluster).toMatchObject({
      id: '/subscriptions/8a4de8b5-095c-47d0-a96f-a75130c61d53/resourcegroups/sa-hema/providers/Microsoft.EventHub/namespaces/azurelsevents',
      subscriptionId: '8a4de8b5-095c-47d0-a96f-a75130c61d53',
      resourceGroup: 'sa-hema',
      resourceType: 'Microsoft.EventHub/namespaces',
      name: 'azurelsevents',
    });
  });
});

describe('Event Hub record (format D §4.2), real samples op→Arc', () => {
  const rawRecord = () => loadNdjsonFixture('elastic-activitylogs/test-activitylogs-raw.25043e5f.log')[0]!;

  it('the Start record of test-activitylogs-raw: ignored, naming Start', () => {
    const record = withSet(rawRecord(), { operationName: ARC_UPPER });
    expect(failure(parseDetection(record), 'ignored')).toContain('"Start"');
  });

  it('the same record as Success: parsed, 7-digit time cut to ms, upper-case resource id', () => {
    const d = detection(
      parseDetection(withSet(rawRecord(), { operationName: ARC_UPPER, resultType: 'Success' })),
    );
    expect(d).toMatchObject({
      sourceFormat: 'azure-activity-log-record',
      eventTime: '2019-10-24T00:13:46.355Z',
      operation: ARC_UPPER,
      outcome: 'success',
      appId: '8a4de8b5-095c-47d0-a96f-a75130c61d53',
      sourceIp: '81.2.69.144',
      principalType: 'ServicePrincipal',
      principalId: '8a4de8b5-095c-47d0-a96f-a75130c61d53',
      correlationId: '8a4de8b5-095c-47d0-a96f-a75130c61d53',
      evidence: { role: 'Azure EventGrid Service BuiltIn Role', principalType: 'ServicePrincipal' },
      cluster: {
        subscriptionId: '8a4de8b5-095c-47d0-a96f-a75130c61d53',
        resourceGroup: 'SA-HEMA',
        resourceType: 'MICROSOFT.EVENTHUB/NAMESPACES/AUTHORIZATIONRULES',
        name: 'ROOTMANAGESHAREDACCESSKEY',
      },
    });
  });

  it('the docs records sample: undashed evidence ids dashed, bad objectidentifier → evidence principal, upn → user', () => {
    const [record] = extractEvents(
      loadFixture('azure-activity-log/activity-log-eventhub-records.docs-sample.json'),
    );
    const d = detection(
      parseDetection(withSet(record as Json, { operationName: LIST_CLUSTER_USER_CREDENTIAL })),
    );
    expect(d).toMatchObject({
      eventTime: '2019-01-21T22:14:26.979Z',
      appId: '11112222-bbbb-3333-cccc-4444dddd5555',
      sourceIp: '111.111.111.11',
      outcome: 'success',
      // the claim "123abc45-8211-44e3-95xq-85137af64708" is not a GUID
      principalId: 'abcdef03-8c64-44c1-8f1c-31311fabcdef',
      principalType: 'ServicePrincipal',
      tenantId: 'ffffffff-eeee-dddd-cccc-bbbbbbbbbbb0',
      user: { upn: 'admin@contoso.com', name: 'John Smith' },
      evidence: {
        role: 'Azure Eventhubs Service Role',
        roleAssignmentScope: '/subscriptions/bbbb1b1b-cc2c-dd3d-ee4e-ffffff5f5f5f',
        roleAssignmentId: '123abc2a-6c31-4b0a-b03a-891259123abc',
        roleDefinitionId: '12345678-9de0-42a6-a64b-29b123456789',
        principalId: 'abcdef03-8c64-44c1-8f1c-31311fabcdef',
        principalType: 'ServicePrincipal',
      },
      cluster: { subscriptionId: 's1', resourceGroup: 'MSSupportGroup' },
    });
  });

  it('the mixed-case resource id records: no identity → invalid; with one, lower-case and tenant ids parse', () => {
    const [first, second] = loadNdjsonFixture(
      'elastic-activitylogs/test-activitylogs-mixedcase-resourceid.4f2b318e.log',
    );
    const arcFirst = withSet(first!, { operationName: LIST_CLUSTER_USER_CREDENTIAL });
    expect(failure(parseDetection(arcFirst), 'invalid')).toMatch(
      /no caller identity in identity\.claims\.appid/,
    );
    withSet(arcFirst, { 'identity.claims.appid': '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20' });
    const d = detection(parseDetection(arcFirst));
    expect(d.eventTime).toBe('2024-01-01T12:00:00.000Z');
    expect(d.tenantId).toBe('ffffffff-aaaa-bbbb-cccc-dddddddddddd');
    expect(d.cluster).toMatchObject({
      subscriptionId: '12345678-1234-1234-1234-123456789abc',
      resourceGroup: 'my-resource-group',
      name: 'my-app-service',
    });
    const arcSecond = withSet(second!, {
      operationName: LIST_CLUSTER_USER_CREDENTIAL,
      'identity.claims.appid': '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20',
    });
    const d2 = detection(parseDetection(arcSecond));
    expect(d2.cluster?.key).toBe('/tenants/ffffffff-aaaa-bbbb-cccc-dddddddddddd/providers/microsoft.aadiam');
    expect(d2.cluster?.subscriptionId).toBeUndefined();
  });
});

describe('REST activity-log event (format D §4.1), real docs sample op→Arc', () => {
  const rest = () =>
    withSet(loadFixture('azure-activity-log/activity-log-rest-administrative.docs-sample.json'), {
      'operationName.value': LIST_CLUSTER_USER_CREDENTIAL,
    });

  it('without httpRequest (as in the current doc): invalid, naming the field', () => {
    expect(failure(parseDetection(rest()), 'invalid')).toMatch(
      /no caller IP in httpRequest\.clientIpAddress/,
    );
  });

  it.each([
    ['an object', { clientRequestId: 'x', clientIpAddress: '192.168.35.115', method: 'PUT' }],
    ['a JSON string', '{"clientIpAddress":"192.168.35.115"}'],
  ])('with httpRequest as %s: every field', (_, httpRequest) => {
    const d = detection(parseDetection(withSet(rest(), { httpRequest })));
    expect(d).toMatchObject({
      sourceFormat: 'azure-activity-log-rest',
      eventTime: '2018-01-29T20:42:31.381Z',
      operation: LIST_CLUSTER_USER_CREDENTIAL,
      outcome: 'succeeded',
      appId: '00001111-aaaa-2222-bbbb-3333cccc4444',
      sourceIp: '192.168.35.115',
      principalId: 'f409edeb-4d29-44b5-9763-ee9348ad91bb',
      tenantId: 'aaaabbbb-0000-cccc-1111-dddd2222eeee',
      user: { upn: 'rob@contoso.com', name: 'Rob Robertson' },
      correlationId: 'aaaa0000-bb11-2222-33cc-444444dddddd',
      evidence: {},
      cluster: { resourceGroup: 'myResourceGroup', name: 'myNSG' },
    });
    // claims.ipaddr is where the token was issued, not the caller of this operation.
    expect(d.sourceIp).not.toBe('111.111.1.111');
  });

  it('status.value Started: ignored', () => {
    const doc = withSet(rest(), {
      'status.value': 'Started',
      httpRequest: { clientIpAddress: '192.168.35.115' },
    });
    expect(failure(parseDetection(doc), 'ignored')).toContain('"Started"');
  });
});

describe('Azure Monitor common alert schema (format E §5.1), real docs samples op→Arc', () => {
  const testActionGroup = () =>
    withSet(
      loadFixture(
        'azure-monitor-alert/common-schema-activitylog-administrative.test-action-group.docs-sample.json',
      ),
      { 'data.alertContext.operationName': LIST_CLUSTER_USER_CREDENTIAL },
    );
  const alertContext = () => ({
    schemaId: 'azureMonitorCommonAlertSchema',
    data: withSet(
      loadFixture(
        'azure-monitor-alert/alertContext-activitylog-administrative.alerts-common-schema.docs-sample.json',
      ),
      { 'alertContext.operationName': LIST_CLUSTER_USER_CREDENTIAL },
    ),
  });

  it('claims "{}" (what Test action group sends): invalid, no identity', () => {
    expect(failure(parseDetection(testActionGroup()), 'invalid')).toMatch(/no caller identity/);
  });

  it.each([
    ['absent', undefined],
    ['null', null],
    ['"{}"', '{}'],
  ])(
    'claims as a JSON string, httpRequest %s: invalid, the payload carries no caller IP, forward the records',
    (_, httpRequest) => {
      const payload = alertContext();
      if (httpRequest !== undefined) setPath(payload, 'data.alertContext.httpRequest', httpRequest);
      const reason = failure(parseDetection(payload), 'invalid');
      expect(reason).toMatch(/carry no caller IP/);
      expect(reason).toMatch(/diagnostic setting/);
      expect(reason).toContain('{"records": [...]}');
    },
  );

  it('claims as a JSON string with httpRequest: every field', () => {
    const payload = withSet(alertContext(), {
      'data.alertContext.httpRequest': '{"clientIpAddress":"203.0.113.9","method":"POST"}',
    });
    const d = detection(parseDetection(payload));
    expect(d).toMatchObject({
      sourceFormat: 'azure-monitor-common',
      eventTime: '2019-03-22T13:56:31.291Z',
      operation: LIST_CLUSTER_USER_CREDENTIAL,
      outcome: 'succeeded',
      appId: '11112222-bbbb-3333-cccc-4444dddd5555',
      sourceIp: '203.0.113.9',
      principalId: '22223333-cccc-4444-dddd-5555eeee6666',
      tenantId: '12345a-1234b-123c-123d-12345678e',
      correlationId: 'aaaa0000-bb11-2222-33cc-444444dddddd',
      cluster: { resourceGroup: 'PipeLineAlertRG', name: 'WCUS-R2-ActLog' },
    });
    expect(d.user).toBeUndefined();
  });

  it('the test-action-group payload with claims and httpRequest as objects and numeric enums', () => {
    const payload = withSet(testActionGroup(), {
      'data.alertContext.claims': { appid: '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20' },
      'data.alertContext.httpRequest': { clientIpAddress: '203.0.113.9' },
      'data.alertContext.channels': 1,
      'data.alertContext.eventSource': 2,
      'data.alertContext.level': 3,
      'data.alertContext.subStatus': null,
    });
    const d = detection(parseDetection(payload));
    expect(d.cluster?.id).toBe(
      '/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/test-RG/providers/Microsoft.Compute/virtualMachines/test-VM',
    );
    expect(d.eventTime).toBe('2021-11-16T08:27:36.183Z');
    expect(d.azureAlert).toEqual({
      alertId:
        '/subscriptions/11111111-1111-1111-1111-111111111111/providers/Microsoft.AlertsManagement/alerts/12345678-1234-1234-1234-1234567890ab',
      alertRule: 'test-activityLogAlertRule',
      severity: 'Sev4',
      firedAt: '2021-11-16T08:29:01.293Z',
    });
  });

  it('resource id falls back to authorization.scope, then alertTargetIDs[0]', () => {
    const payload = withSet(testActionGroup(), {
      'data.alertContext.claims': '{"appid":"a"}',
      'data.alertContext.httpRequest': '{"clientIpAddress":"203.0.113.9"}',
      'data.alertContext.properties.entity': undefined,
    });
    expect(detection(parseDetection(payload)).cluster?.resourceGroup).toBe('test-RG');
    setPath(payload, 'data.alertContext.authorization.scope', undefined);
    expect(detection(parseDetection(payload)).cluster?.id).toBe(
      '/subscriptions/11111111-1111-1111-1111-111111111111/resourcegroups/test-RG/providers/microsoft.compute/virtualmachines/test-VM',
    );
  });

  it('a service-health alert (signalType Activity Log): ignored', () => {
    const payload = withSet(testActionGroup(), { 'data.essentials.monitoringService': 'ServiceHealth' });
    expect(failure(parseDetection(payload), 'ignored')).toMatch(/ServiceHealth/);
  });
});

describe('Azure Monitor legacy activity-log webhook (format E §5.2), real docs sample op→Arc', () => {
  const legacy = () =>
    withSet(loadFixture('azure-monitor-alert/legacy-activityLogs-webhook-administrative.docs-sample.json'), {
      'data.context.activityLog.operationName': LIST_CLUSTER_USER_CREDENTIAL,
      'data.context.activityLog.status': 'Succeeded',
      'data.context.activityLog.eventTimestamp': '2017-03-03T21:13:32.3910155Z',
    });

  it('claims "{...}" (the docs placeholder, not JSON): invalid, no identity', () => {
    expect(failure(parseDetection(legacy()), 'invalid')).toMatch(/no caller identity/);
  });

  it('claims and httpRequest as JSON strings: parsed', () => {
    const d = detection(
      parseDetection(
        withSet(legacy(), {
          'data.context.activityLog.claims': '{"appid":"0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20"}',
          'data.context.activityLog.httpRequest': '{"clientIpAddress":"198.51.100.4"}',
        }),
      ),
    );
    expect(d).toMatchObject({
      sourceFormat: 'azure-monitor-legacy',
      eventTime: '2017-03-03T21:13:32.391Z',
      sourceIp: '198.51.100.4',
      cluster: { resourceGroup: 'CONTOSO-TEST', name: 'IncidentActions' },
    });
  });

  it('httpRequest {"clientIpAddress":"0.0.0.0"} (the Recommendation sample): invalid, no caller IP', () => {
    const payload = withSet(legacy(), {
      'data.context.activityLog.claims': '{"appid":"a"}',
      'data.context.activityLog.httpRequest': '{"clientIpAddress":"0.0.0.0"}',
    });
    expect(failure(parseDetection(payload), 'invalid')).toMatch(/unspecified address 0\.0\.0\.0/);
  });
});

describe('Elastic alert (format B), the real new_terms alert _source op→Arc', () => {
  const alertSource = () =>
    withSet(loadFixture('elastic-alert/kibana-new_terms-alert-source.DERIVED.json'), {
      'azure.activitylogs.operation_name': ARC_UPPER,
    });

  it('an alert of another rule without the event fields: the operation and outcome of kibana.alert.original_event', () => {
    const doc = withSet(loadFixture('elastic-alert/kibana-new_terms-alert-source.DERIVED.json'), {
      'kibana.alert.original_event.action': ARC_UPPER,
      'azure.activitylogs.identity.claims.appid': '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20',
      'source.ip': '8.42.77.171',
    });
    delete doc.event;
    const d = detection(parseDetection(doc));
    expect(d).toMatchObject({
      sourceFormat: 'elastic-alert',
      operation: ARC_UPPER,
      outcome: 'success',
      appId: '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20',
    });
    // Another operation there is still another operation.
    doc['kibana.alert.original_event.action'] = 'user_login';
    expect(failure(parseDetection(doc), 'ignored')).toMatch(/user_login/);
  });

  it('another rule`s new_terms (host.name) are not taken for appid: invalid', () => {
    expect(failure(parseDetection(alertSource()), 'invalid')).toMatch(/no caller identity/);
  });

  it('flat kibana.alert.* keys, new_terms [appid, ip] of the Arc fields, original_time as event time', () => {
    const doc = withSet(alertSource(), {
      'kibana.alert.rule.parameters.new_terms_fields': [
        'azure.activitylogs.identity.claims.appid',
        'source.ip',
      ],
      'kibana.alert.new_terms': ['0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20', '8.42.77.171'],
      'kibana.alert.uuid': 'e3b0c442-98fc-41c4-9afb-f4c8996fb924',
      '@timestamp': '2019-02-19T20:50:00.000Z',
    });
    const d = detection(parseDetection(doc));
    expect(d.eventId).toMatch(/^[0-9a-f]{32}$/);
    expect(d).toMatchObject({
      sourceFormat: 'elastic-alert',
      eventTime: '2019-02-19T20:42:08.230Z',
      appId: '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20',
      sourceIp: '8.42.77.171',
      outcome: 'success',
      elasticAlert: {
        alertUuid: 'e3b0c442-98fc-41c4-9afb-f4c8996fb924',
        ruleId: 'rule-1',
        ruleName: 'Query with a rule id',
        severity: 'high',
        riskScore: 55,
      },
    });
  });
});

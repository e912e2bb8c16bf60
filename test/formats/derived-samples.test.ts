/** The parsers on DERIVED Arc-shaped inputs (test/support/samples.ts), in every format. */
import { describe, expect, it } from 'vitest';
import type { Detection, ParseResult, SourceFormat } from '../../src/core/detection.ts';
import { detectFormat, extractEvents, parseDetection } from '../../src/core/formats/index.ts';
import { LIST_CLUSTER_USER_CREDENTIALS_PREVIEW } from '../../src/core/rule.ts';
import {
  ALL_FORMATS,
  ARC,
  arcEvent,
  getPath,
  kibanaWebhookBody,
  recordsEnvelope,
  setPath,
} from '../support/samples.ts';

type Json = Record<string, unknown>;

function detection(result: ParseResult): Detection {
  if (!result.ok) throw new Error(`expected a detection, got ${result.kind}: ${result.reason}`);
  return result.detection;
}

const ELASTIC_OR_RECORD: readonly SourceFormat[] = [
  'elastic-ecs',
  'elastic-alert',
  'azure-activity-log-record',
];

/** Where each format carries the token's claims (Azure Monitor payloads as a JSON string). */
const CLAIMS_AT: Record<SourceFormat, string> = {
  'elastic-ecs': 'azure.activitylogs.identity.claims',
  'elastic-alert': 'azure.activitylogs.identity.claims',
  'azure-activity-log-record': 'identity.claims',
  'azure-activity-log-rest': 'claims',
  'azure-monitor-common': 'data.alertContext.claims',
  'azure-monitor-legacy': 'data.context.activityLog.claims',
};

/** `event` with its claims changed by `edit`, in the form the format carries them. */
function editClaims(event: Json, format: SourceFormat, edit: (claims: Json) => void): Json {
  const held = getPath(event, CLAIMS_AT[format]);
  const claims = (typeof held === 'string' ? JSON.parse(held) : held) as Json;
  edit(claims);
  setPath(event, CLAIMS_AT[format], typeof held === 'string' ? JSON.stringify(claims) : claims);
  return event;
}

/** Removes the caller's object id from claims, under both its key and Elastic's `_` form. */
const dropObjectId = (claims: Json) => {
  delete claims['http://schemas.microsoft.com/identity/claims/objectidentifier'];
  delete claims['http://schemas_microsoft_com/identity/claims/objectidentifier'];
};

describe.each(ALL_FORMATS)('DERIVED Arc %s event', (format) => {
  it('is detected as its format and parsed with the common fields', () => {
    const event = arcEvent(format);
    expect(detectFormat(event)).toBe(format);
    const d = detection(parseDetection(event));
    expect(d).toMatchObject({
      sourceFormat: format,
      eventTime: ARC.timeIso,
      appId: ARC.appId,
      sourceIp: ARC.ip,
      principalId: ARC.principalId,
      principalType: 'ServicePrincipal',
      tenantId: ARC.tenantId,
      correlationId: ARC.correlationId,
      cluster: {
        key: ARC.clusterKey,
        subscriptionId: ARC.subscriptionId,
        resourceType: expect.stringMatching(/^microsoft\.kubernetes\/connectedclusters$/i),
        name: expect.stringMatching(/^arc-prod-01$/i),
      },
    });
    expect(d.operation.toLowerCase()).toBe(ARC.operation.toLowerCase());
    expect(['success', 'succeeded']).toContain(d.outcome);
    expect(d.user).toBeUndefined();
  });

  it('a user caller: principal type User and the upn', () => {
    const d = detection(parseDetection(arcEvent(format, { principalType: 'User' })));
    expect(d.principalType).toBe('User');
    expect(d.user?.upn).toBe(ARC.upn);
    expect(d.user?.name).toBe(ARC.userName);
  });

  it('a token with only the short oid claim: the principal id from it', () => {
    const oid = '7d3e5f1a-2b4c-4d6e-8f0a-1b2c3d4e5f6a';
    const event = editClaims(arcEvent(format), format, (claims) => {
      dropObjectId(claims);
      claims.oid = oid;
    });
    expect(detection(parseDetection(event)).principalId).toBe(oid);
  });

  it('the operation in any letter case, and the preview plural', () => {
    for (const operation of [
      ARC.operation.toLowerCase(),
      ARC.operationUpper,
      LIST_CLUSTER_USER_CREDENTIALS_PREVIEW,
      LIST_CLUSTER_USER_CREDENTIALS_PREVIEW.toUpperCase(),
    ]) {
      expect(detection(parseDetection(arcEvent(format, { operation }))).operation).toBe(operation);
    }
  });

  it('another operation: ignored, named; checked before identity and IP are required', () => {
    const result = parseDetection(
      arcEvent(format, {
        operation: 'Microsoft.Kubernetes/connectedClusters/write',
        appId: null,
        ip: null,
        set: format === 'elastic-alert' ? { 'kibana.alert.rule.rule_id': 'another-rule' } : {},
      }),
    );
    expect(result).toMatchObject({ ok: false, kind: 'ignored' });
    if (!result.ok) expect(result.reason).toContain('Microsoft.Kubernetes/connectedClusters/write');
  });

  it.each(['Failure', 'Failed', 'Start'])('outcome %s: ignored, named', (outcome) => {
    const result = parseDetection(
      arcEvent(format, {
        outcome,
        set: format === 'elastic-alert' ? { 'kibana.alert.rule.rule_id': 'another-rule' } : {},
      }),
    );
    expect(result).toMatchObject({ ok: false, kind: 'ignored' });
    // Elastic lower-cases event.outcome
    if (!result.ok) expect(result.reason.toLowerCase()).toContain(`"${outcome.toLowerCase()}"`);
  });

  it('no identity: invalid', () => {
    const result = parseDetection(arcEvent(format, { appId: null, set: newTermsOff(format) }));
    expect(result).toMatchObject({ ok: false, kind: 'invalid' });
    if (!result.ok) expect(result.reason).toMatch(/no caller identity/);
  });

  it('an identity holding ":" (not an application id): invalid, quoted', () => {
    const result = parseDetection(arcEvent(format, { appId: 'abc:2001:db8', set: newTermsOff(format) }));
    expect(result).toMatchObject({ ok: false, kind: 'invalid' });
    if (!result.ok) expect(result.reason).toMatch(/"abc:2001:db8".*not an application id/);
  });

  it.each(['not-an-ip', '999.1.1.1', '1.2.3'])('caller IP %j: invalid, quoted', (ip) => {
    const result = parseDetection(arcEvent(format, { ip }));
    expect(result).toMatchObject({ ok: false, kind: 'invalid' });
    if (!result.ok) expect(result.reason).toContain(JSON.stringify(ip));
  });

  it('no caller IP: invalid', () => {
    const result = parseDetection(arcEvent(format, { ip: null, set: newTermsOff(format) }));
    expect(result).toMatchObject({ ok: false, kind: 'invalid' });
    if (!result.ok) expect(result.reason).toMatch(/no caller IP/);
  });

  it.each(['yesterday', '2026-02-30T10:00:00Z', '2026-03-12T25:00:00Z', ''])(
    'event time %j: invalid',
    (time) => {
      const result = parseDetection(arcEvent(format, { time }));
      expect(result).toMatchObject({ ok: false, kind: 'invalid' });
      if (!result.ok) expect(result.reason).toMatch(/no valid event time/);
    },
  );

  it('canonicalises the IP (IPv4-mapped → IPv4, IPv6 → RFC 5952)', () => {
    expect(detection(parseDetection(arcEvent(format, { ip: '::ffff:203.0.113.7' }))).sourceIp).toBe(
      '203.0.113.7',
    );
    expect(detection(parseDetection(arcEvent(format, { ip: '2001:0DB8:0:0::0:1' }))).sourceIp).toBe(
      '2001:db8::1',
    );
  });

  it('a Date time is written the way the channel writes it and read back to the millisecond', () => {
    const time = new Date('2026-05-01T10:20:30.456Z');
    expect(detection(parseDetection(arcEvent(format, { time }))).eventTime).toBe('2026-05-01T10:20:30.456Z');
  });
});

/** An alert from the Arc rule also carries appid and IP in kibana.alert.new_terms: remove them too. */
function newTermsOff(format: SourceFormat): Record<string, unknown> {
  return format === 'elastic-alert' ? { 'kibana.alert.new_terms': undefined } : {};
}

describe('DERIVED format specifics', () => {
  it('records, ECS and alerts carry the undashed evidence ids and the Arc role; they come out dashed', () => {
    for (const format of ELASTIC_OR_RECORD) {
      const d = detection(parseDetection(arcEvent(format)));
      expect(d.evidence).toEqual({
        role: 'Azure Arc Enabled Kubernetes Cluster User Role',
        roleDefinitionId: ARC.roleDefinitionId,
        roleAssignmentId: ARC.roleAssignmentId,
        roleAssignmentScope: ARC.roleAssignmentScope,
        principalId: ARC.principalId,
        principalType: 'ServicePrincipal',
      });
    }
    const ecs = arcEvent('elastic-ecs') as { azure: { activitylogs: { identity: { authorization: Json } } } };
    expect(ecs.azure.activitylogs.identity.authorization.evidence).toMatchObject({
      principal_id: ARC.principalId.replaceAll('-', ''),
    });
  });

  it('ECS: an over-long role, place or AS name is cut short with an ellipsis, not dropped', () => {
    const d = detection(
      parseDetection(
        arcEvent('elastic-ecs', {
          set: {
            'azure.activitylogs.identity.authorization.evidence.role': `Role ${'r'.repeat(5000)}`,
            'source.geo.city_name': `City ${'c'.repeat(3000)}`,
            'source.as.organization.name': `Org ${'o'.repeat(3000)}`,
          },
        }),
      ),
    );
    expect(d.evidence.role).toHaveLength(512);
    expect(d.evidence.role).toMatch(/^Role r+…$/);
    expect(d.geo?.cityName).toHaveLength(256);
    expect(d.geo?.cityName).toMatch(/^City c+…$/);
    expect(d.as?.organizationName).toHaveLength(512);
    expect(d.as?.organizationName).toMatch(/^Org o+…$/);
  });

  it("a user's token without a upn claim: the upn is Azure's caller when that holds an @, else none", () => {
    const callerAt = {
      'azure-activity-log-rest': 'caller',
      'azure-monitor-common': 'data.alertContext.caller',
      'azure-monitor-legacy': 'data.context.activityLog.caller',
    } as const;
    for (const [format, at] of Object.entries(callerAt) as Array<[SourceFormat, string]>) {
      const user = (caller: string) => {
        const event = arcEvent(format, { principalType: 'User', set: { [at]: caller } });
        editClaims(event, format, (claims) => {
          delete claims['http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn'];
        });
        return detection(parseDetection(event)).user;
      };
      expect(user(ARC.upn), format).toEqual({ upn: ARC.upn, name: ARC.userName });
      expect(user(ARC.principalId), format).toEqual({ name: ARC.userName });
    }
  });

  it('ECS: principalType fallback when a document has camelCase evidence', () => {
    const d = detection(
      parseDetection(
        arcEvent('elastic-ecs', {
          set: {
            'azure.activitylogs.identity.authorization.evidence.principal_type': undefined,
            'azure.activitylogs.identity.authorization.evidence.principalType': 'User',
          },
        }),
      ),
    );
    expect(d.evidence.principalType).toBe('User');
    expect(d.principalType).toBe('User');
  });

  it('evidence of a group assignment names the group: the caller comes from the token, the group kept apart', () => {
    const group = '99999999aaaa4bbbbccccddddeeeefff';
    // The sample's token says idtyp app and carries the caller's object id.
    const viaGroup = (format: 'elastic-ecs' | 'azure-activity-log-record', edit = (_: Json) => {}) =>
      detection(
        parseDetection(
          editClaims(
            arcEvent(format, {
              set:
                format === 'elastic-ecs'
                  ? {
                      'azure.activitylogs.identity.authorization.evidence.principal_type': 'Group',
                      'azure.activitylogs.identity.authorization.evidence.principal_id': group,
                    }
                  : {
                      'identity.authorization.evidence.principalType': 'Group',
                      'identity.authorization.evidence.principalId': group,
                    },
            }),
            format,
            edit,
          ),
        ),
      );
    for (const format of ['elastic-ecs', 'azure-activity-log-record'] as const) {
      const d = viaGroup(format);
      expect(d.evidence.principalType).toBe('Group');
      expect(d.evidence.principalId).toBe('99999999-aaaa-4bbb-bccc-cddddeeeefff');
      // The caller's type comes from its token, and its id is never the group's.
      expect(d.principalType).toBe('ServicePrincipal');
      expect(d.principalId).toBe(ARC.principalId);
      // A token without the caller's object id leaves the caller without one.
      const noId = viaGroup(format, dropObjectId);
      expect(noId.evidence.principalId).toBe('99999999-aaaa-4bbb-bccc-cddddeeeefff');
      expect(noId.principalType).toBe('ServicePrincipal');
      expect(noId).not.toHaveProperty('principalId');
    }
  });

  it("the token's idtyp in any letter case gives the caller's type when no evidence names it", () => {
    for (const [idtyp, principalType] of [
      ['App', 'ServicePrincipal'],
      ['USER', 'User'],
    ]) {
      const rest = arcEvent('azure-activity-log-rest', { set: { 'claims.idtyp': idtyp } });
      expect(detection(parseDetection(rest)).principalType, idtyp).toBe(principalType);
    }
  });

  it('ECS: geo and AS from source.geo / source.as', () => {
    const d = detection(
      parseDetection(arcEvent('elastic-ecs', { as: { number: 64500, organizationName: 'Transit' } })),
    );
    expect(d.geo).toEqual(ARC.geo);
    expect(d.as).toEqual({ number: 64500, organizationName: 'Transit' });
    expect(detection(parseDetection(arcEvent('elastic-ecs', { geo: null }))).geo).toBeUndefined();
  });

  it('ECS: a flat dotted-key document reads like the nested one', () => {
    const nested = arcEvent('elastic-ecs', { as: { number: 64500, organizationName: 'Transit' } });
    const flat: Json = {};
    const walk = (obj: Json, prefix: string) => {
      for (const [key, value] of Object.entries(obj)) {
        // claims keep their own (URI) keys: flatten only down to the claims object
        if (value && typeof value === 'object' && !Array.isArray(value) && !prefix.endsWith('identity.')) {
          walk(value as Json, `${prefix}${key}.`);
        } else flat[`${prefix}${key}`] = value;
      }
    };
    walk(nested, '');
    expect(flat['azure.activitylogs.operation_name']).toBe(ARC.operationUpper);
    expect(parseDetection(flat)).toEqual(parseDetection(nested));

    // Fully flattened (Elasticsearch `fields`): claims and evidence are dotted keys too.
    const fully: Json = {};
    const all = (obj: Json, prefix: string) => {
      for (const [key, value] of Object.entries(obj)) {
        if (value && typeof value === 'object' && !Array.isArray(value))
          all(value as Json, `${prefix}${key}.`);
        else fully[`${prefix}${key}`] = value;
      }
    };
    all(nested, '');
    expect(fully['azure.activitylogs.identity.authorization.evidence.role']).toBe(ARC.role);
    expect(parseDetection(fully)).toEqual(parseDetection(nested));
    const polluted = {
      ...fully,
      'azure.activitylogs.identity.authorization.evidence.__proto__': { role: 'x' },
    };
    expect(detection(parseDetection(polluted)).evidence.role).toBe(ARC.role);
    expect(({} as { role?: unknown }).role).toBeUndefined();
  });

  it('Elastic alert: the event id of its event, kibana.alert.uuid (or _id) kept with elasticAlert info and url', () => {
    const d = detection(parseDetection(arcEvent('elastic-alert')));
    expect(d.eventId).toBe(detection(parseDetection(arcEvent('azure-activity-log-record'))).eventId);
    expect(d.elasticAlert).toMatchObject({
      alertUuid: ARC.alertUuid,
      ruleId: '022c37cd-5a4f-422b-8227-b136b7a23180',
      ruleUuid: ARC.ruleUuid,
      ruleName: 'Azure Arc Cluster Credential Access by Identity from Unusual Source',
      severity: 'medium',
      riskScore: 47,
      url: expect.stringMatching(/^https:\/\/kibana\.example\.com\/app\/security\/alerts\/redirect\//),
    });
    // When Elastic raised it: kibana.alert.start, else the alert's own @timestamp.
    const raised = new Date(Date.parse(ARC.timeIso) + 4 * 60_000).toISOString();
    expect(d.elasticAlert?.raisedAt).toBe(raised);
    const noStart = arcEvent('elastic-alert', {
      set: { 'kibana.alert.start': undefined, '@timestamp': '2026-03-12T09:00:00Z' },
    });
    expect(detection(parseDetection(noStart)).elasticAlert?.raisedAt).toBe('2026-03-12T09:00:00.000Z');
    const noUuid = arcEvent('elastic-alert', { set: { 'kibana.alert.uuid': undefined } });
    expect(detection(parseDetection(noUuid)).elasticAlert?.alertUuid).toBe(ARC.alertUuid); // the `_id`
    expect(
      detection(parseDetection(arcEvent('elastic-alert', { alertUrl: null }))).elasticAlert?.url,
    ).toBeUndefined();
    expect(
      detection(parseDetection(arcEvent('elastic-alert', { alertUrl: 'javascript:alert(1)' }))).elasticAlert
        ?.url,
    ).toBeUndefined();
  });

  it("Elastic alert: a webhook body's results_link stands in for an alert without a link of its own", () => {
    const body = kibanaWebhookBody([
      arcEvent('elastic-alert', { alertUrl: null }),
      arcEvent('elastic-alert', { ip: '198.51.100.9' }),
    ]);
    const [bare, linked] = extractEvents(body).map((e) => detection(parseDetection(e)).elasticAlert);
    expect(bare?.url).toBeUndefined();
    expect(bare?.resultsUrl).toBe(body.results_link);
    expect(linked?.url).toMatch(/^https:\/\/kibana\.example\.com\//);
    expect(linked?.resultsUrl).toBeUndefined();
    // Without the envelope (an alert posted on its own), there is none.
    expect(
      detection(parseDetection(arcEvent('elastic-alert', { alertUrl: null }))).elasticAlert?.resultsUrl,
    ).toBeUndefined();
  });

  it('Elastic alert: a webhook body whose `alerts` is one alert object, not an array, is that alert', () => {
    const body = kibanaWebhookBody([]) as Record<string, unknown>;
    body.alerts = arcEvent('elastic-alert', { alertUrl: null });
    const events = extractEvents(body);
    expect(events).toHaveLength(1);
    const d = detection(parseDetection(events[0]));
    expect(d.sourceFormat).toBe('elastic-alert');
    expect(d.sourceIp).toBe(ARC.ip);
    expect(d.elasticAlert?.resultsUrl).toBe(body.results_link);
  });

  it('Elastic alert: event time is original_time, not the alert @timestamp; legacy signal.original_time', () => {
    const alert = arcEvent('elastic-alert');
    expect(alert['@timestamp']).not.toBe(ARC.timeIso);
    expect(detection(parseDetection(alert)).eventTime).toBe(ARC.timeIso);
    const legacyOnly = arcEvent('elastic-alert', { set: { 'kibana.alert.original_time': undefined } });
    expect(detection(parseDetection(legacyOnly)).eventTime).toBe(ARC.timeIso);
    const neither = arcEvent('elastic-alert', {
      set: { 'kibana.alert.original_time': undefined, 'signal.original_time': undefined },
    });
    expect(parseDetection(neither)).toMatchObject({ ok: false, kind: 'invalid' });
  });

  it('Elastic alert: appid and IP from kibana.alert.new_terms when the source fields are missing', () => {
    const alert = arcEvent('elastic-alert', {
      set: { 'azure.activitylogs.identity.claims.appid': undefined, source: undefined },
    });
    const d = detection(parseDetection(alert));
    expect(d.appId).toBe(ARC.appId);
    expect(d.sourceIp).toBe(ARC.ip);
    expect(d.geo).toBeUndefined();
  });

  it('Elastic alert of the Arc rule whose webhook template left out azure.* and event.*: still a detection', () => {
    const alert = arcEvent('elastic-alert');
    delete alert.azure;
    delete alert.event;
    delete alert.signal;
    setPath(alert, 'kibana.alert.original_event', undefined);
    const d = detection(parseDetection(alert));
    expect(d.operation).toBe(ARC.operationUpper);
    expect(d.appId).toBe(ARC.appId);
  });

  it('Elastic alert: flat _source shape and an Elasticsearch hit {_id, _source} read the same', () => {
    const source = arcEvent('elastic-alert', { alertShape: 'source' });
    expect(source['kibana.alert.uuid']).toBe(ARC.alertUuid);
    const d = detection(parseDetection(source));
    expect(d).toMatchObject({
      eventId: detection(parseDetection(arcEvent('elastic-alert'))).eventId,
      eventTime: ARC.timeIso,
      appId: ARC.appId,
      sourceIp: ARC.ip,
      elasticAlert: { alertUuid: ARC.alertUuid },
    });
    const { 'kibana.alert.uuid': _, ...withoutUuid } = source;
    const hit = {
      _id: 'hit-id-1',
      _index: '.internal.alerts-security.alerts-default-000001',
      _source: withoutUuid,
    };
    const fromHit = detection(parseDetection(hit));
    expect(fromHit.eventId).toBe(d.eventId);
    expect(fromHit.elasticAlert?.alertUuid).toBe('hit-id-1');
  });

  it('an Elasticsearch hit {_id, _source} of an ECS document reads like the document', () => {
    const doc = arcEvent('elastic-ecs');
    expect(parseDetection({ _id: 'x', _index: '.ds-logs-azure.activitylogs-default', _source: doc })).toEqual(
      parseDetection(doc),
    );
  });

  it('Azure Monitor common schema: claims as an object, httpRequest as an object or JSON string', () => {
    const payload = arcEvent('azure-monitor-common') as { data: { alertContext: Json } };
    payload.data.alertContext.claims = JSON.parse(payload.data.alertContext.claims as string);
    payload.data.alertContext.httpRequest = { clientIpAddress: '198.51.100.7' };
    expect(detection(parseDetection(payload)).sourceIp).toBe('198.51.100.7');
  });

  it('Azure Monitor common schema without httpRequest: invalid, says the payload has no caller IP and what to send', () => {
    const result = parseDetection(arcEvent('azure-monitor-common', { ip: null }));
    expect(result).toMatchObject({ ok: false, kind: 'invalid' });
    if (!result.ok) {
      expect(result.reason).toMatch(/payloads carry no caller IP/);
      expect(result.reason).toMatch(/diagnostic setting/);
    }
  });

  it('record without resultType: the outcome is properties.result, as Elastic reads it', () => {
    const withResult = (result: string) => {
      const rec = arcEvent('azure-activity-log-record', { outcome: null });
      setPath(rec, 'properties', { ...(rec.properties as object), result });
      return rec;
    };
    expect(detection(parseDetection(withResult('Success'))).outcome).toBe('success');
    expect(parseDetection(withResult('Start'))).toMatchObject({ ok: false, kind: 'ignored' });
    expect(parseDetection(arcEvent('azure-activity-log-record', { outcome: null }))).toMatchObject({
      ok: false,
      kind: 'ignored',
      reason: expect.stringMatching(/no outcome/),
    });
  });

  it('a record whose operationName is an object is read as a REST event: no status names status.value', () => {
    // resultType is a record's field; an operationName object makes the event a REST one.
    const rec = arcEvent('azure-activity-log-record');
    rec.operationName = { value: rec.operationName };
    expect(parseDetection(rec)).toMatchObject({
      ok: false,
      kind: 'ignored',
      reason: expect.stringContaining('has no outcome (no status.value, as in an activity-log REST event)'),
    });
  });

  it('ECS without source.ip: a source.address that is no IP is named in the reason', () => {
    const doc = arcEvent('elastic-ecs', { ip: null });
    setPath(doc, 'source', { address: 'internal-gateway' });
    const result = parseDetection(doc);
    expect(result).toMatchObject({ ok: false, kind: 'invalid' });
    if (!result.ok)
      expect(result.reason).toMatch(
        /caller IP "internal-gateway" in source\.address, which is not an IP address/,
      );
  });

  it('an appid far too long to be one is named as such, not as missing', () => {
    const result = parseDetection(arcEvent('azure-activity-log-record', { appId: 'a'.repeat(3000) }));
    expect(result).toMatchObject({ ok: false, kind: 'invalid' });
    if (!result.ok)
      expect(result.reason).toMatch(/caller identity of 3000 characters .* not an application id/);
  });

  it('REST: outcome Succeeded is kept lower-cased as received', () => {
    expect(detection(parseDetection(arcEvent('azure-activity-log-rest'))).outcome).toBe('succeeded');
  });

  it('whole bodies: records envelope and Kibana webhook body expand into their events', () => {
    const records = extractEvents(
      recordsEnvelope([
        arcEvent('azure-activity-log-record', { outcome: 'Start' }),
        arcEvent('azure-activity-log-record'),
      ]),
    ).map(parseDetection);
    expect(records.map((r) => (r.ok ? 'ok' : r.kind))).toEqual(['ignored', 'ok']);
    const alerts = extractEvents(
      kibanaWebhookBody([
        arcEvent('elastic-alert'),
        arcEvent('elastic-alert', { alertUuid: 'second', ip: '203.0.113.99' }),
      ]),
    ).map(parseDetection);
    expect(alerts.map((r) => r.ok && r.detection.elasticAlert?.alertUuid)).toEqual([ARC.alertUuid, 'second']);
    expect(alerts.map((r) => r.ok && r.detection.sourceIp)).toEqual([ARC.ip, '203.0.113.99']);
  });
});

/**
 * The event id: one id per activity-log event, whatever channel delivered it, so the engine can
 * drop the second delivery as a duplicate.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ParseResult, SourceFormat } from '../../src/core/detection.ts';
import { hashEventId, parseDetection } from '../../src/core/formats/index.ts';
import { LIST_CLUSTER_USER_CREDENTIAL } from '../../src/core/rule.ts';
import {
  ALL_FORMATS,
  ARC,
  type ArcEventOptions,
  arcEvent,
  loadFixture,
  loadNdjsonFixture,
  seededRandom,
  setPath,
} from '../support/samples.ts';

type Json = Record<string, unknown>;

function idOf(result: ParseResult): string {
  if (!result.ok) throw new Error(`expected a detection, got ${result.kind}: ${result.reason}`);
  return result.detection.eventId;
}

/** The identifying fields of one event, as `hashEventId` takes them. */
const SAMPLE_KEY = {
  eventTime: '2026-03-12T09:15:27.355Z',
  operation: LIST_CLUSTER_USER_CREDENTIAL,
  appId: 'A',
  sourceIp: '203.0.113.7',
  correlationId: 'C',
  resourceId: '/R',
  outcome: 'Success',
};

describe('event id', () => {
  it('the REAL Event Hub record and the ECS document Elastic made of it get the same id (op→Arc, Success)', () => {
    const record = loadNdjsonFixture('elastic-activitylogs/test-activitylogs-raw.25043e5f.log')[0]!;
    const doc = loadFixture<{ expected: Json[] }>(
      'elastic-activitylogs/test-activitylogs-raw.log-expected.37c97e14.json',
    ).expected[0]!;
    const op = LIST_CLUSTER_USER_CREDENTIAL.toUpperCase();
    setPath(record, 'operationName', op);
    setPath(record, 'resultType', 'Success');
    setPath(doc, 'azure.activitylogs.operation_name', op);
    setPath(doc, 'azure.activitylogs.result_type', 'Success');
    setPath(doc, 'event.outcome', 'success'); // what the pipeline sets for resultType Success
    // The record's time has 7 fractional digits, the document's @timestamp 3.
    expect(record.time).toBe('2019-10-24T00:13:46.3554259Z');
    expect(doc['@timestamp']).toBe('2019-10-24T00:13:46.355Z');
    const id = idOf(parseDetection(record));
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(idOf(parseDetection(doc))).toBe(id);
  });

  it('the REAL mixed-case pair (record from event.original, document with only cloud.resource_id) too', () => {
    const record = loadNdjsonFixture(
      'elastic-activitylogs/test-activitylogs-mixedcase-resourceid.DERIVED-from-expected-55c9a0a3.event_original.ndjson',
    )[0]!;
    const doc = loadFixture<{ expected: Json[] }>(
      'elastic-activitylogs/test-activitylogs-mixedcase-resourceid.log-expected.55c9a0a3.json',
    ).expected[0]!;
    const appId = '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20';
    setPath(record, 'operationName', LIST_CLUSTER_USER_CREDENTIAL);
    setPath(record, 'identity', { claims: { appid: appId } });
    setPath(record, 'callerIpAddress', '81.2.69.144');
    setPath(doc, 'azure.activitylogs.operation_name', LIST_CLUSTER_USER_CREDENTIAL);
    setPath(doc, 'azure.activitylogs.identity.claims.appid', appId);
    setPath(doc, 'source.ip', '81.2.69.144');
    expect(idOf(parseDetection(doc))).toBe(idOf(parseDetection(record)));
  });

  it('DERIVED: record, ECS, REST, Azure Monitor and Elastic alert deliveries of one event share the id (property, 200 random events)', () => {
    const next = seededRandom(42);
    const hex = (n: number) => Array.from({ length: n }, () => Math.floor(next() * 16).toString(16)).join('');
    const guid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`;
    const formats: SourceFormat[] = [
      'azure-activity-log-record',
      'elastic-ecs',
      'azure-activity-log-rest',
      'azure-monitor-common',
      'azure-monitor-legacy',
      'elastic-alert',
    ];
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const v6 = next() < 0.3;
      const opts: ArcEventOptions = {
        appId: next() < 0.5 ? guid() : guid().toUpperCase(),
        ip: v6
          ? `2001:db8:${hex(4)}::${hex(2)}`
          : `198.51.${Math.floor(next() * 256)}.${Math.floor(next() * 256)}`,
        time: new Date(Date.UTC(2026, 0, 1) + Math.floor(next() * 1e10)),
        correlationId: guid(),
        principalType: next() < 0.5 ? 'User' : 'ServicePrincipal',
      };
      const ids = formats.map((f) => idOf(parseDetection(arcEvent(f, opts))));
      expect(new Set(ids).size, JSON.stringify({ opts, ids })).toBe(1);
      seen.add(ids[0]!);
    }
    expect(seen.size).toBe(200);
  });

  it('DERIVED: an Elastic alert is identified by its event, not by the alert uuid', () => {
    const record = idOf(parseDetection(arcEvent('azure-activity-log-record')));
    expect(idOf(parseDetection(arcEvent('elastic-alert', { alertUuid: 'abc' })))).toBe(record);
    expect(idOf(parseDetection(arcEvent('elastic-alert', { alertUuid: 'def' })))).toBe(record);
    const later = arcEvent('elastic-alert', {
      alertUuid: 'abc',
      time: new Date(Date.parse(ARC.timeIso) + 1),
    });
    expect(idOf(parseDetection(later))).not.toBe(record);
  });

  it('changes with any identifying field; ignores case and sub-millisecond digits', () => {
    const base = SAMPLE_KEY;
    const id = hashEventId(base);
    expect(
      hashEventId({
        ...base,
        operation: base.operation.toUpperCase(),
        appId: 'a',
        correlationId: 'c',
        resourceId: '/r',
      }),
    ).toBe(id);
    expect(hashEventId({ ...base, outcome: 'Succeeded' })).toBe(id);
    for (const change of [
      { eventTime: '2026-03-12T09:15:27.356Z' },
      { appId: 'B' },
      { sourceIp: '203.0.113.8' },
      { correlationId: 'D' },
      { resourceId: '/S' },
      { operation: 'x' },
    ]) {
      expect(hashEventId({ ...base, ...change })).not.toBe(id);
    }
    expect(idOf(parseDetection(arcEvent('azure-activity-log-record')))).toBe(
      idOf(parseDetection(arcEvent('azure-activity-log-record', { outcome: 'success' }))),
    );
    // The Start and the Success record of one operation are different events.
    expect(hashEventId({ ...base, outcome: 'Start' })).not.toBe(id);
  });

  it('never changes: ids stored before keep deduplicating redeliveries after an upgrade', () => {
    // Values computed by the first release (createHash over the fields joined by \n).
    const key = SAMPLE_KEY;
    expect(hashEventId(key)).toBe('568a4509a5b2258d6287e2d89697f4e1');
    const text = [key.eventTime, key.operation.toLowerCase(), 'a', key.sourceIp, 'c', '/r', 'success'].join(
      '\n',
    );
    expect(hashEventId(key)).toBe(createHash('sha256').update(text).digest('hex').slice(0, 32));
    // Non-ASCII text is hashed as UTF-8; absent fields as empty lines.
    expect(hashEventId({ eventTime: key.eventTime, operation: 'É', appId: 'ü', sourceIp: '::1' })).toBe(
      'e9cfa22195ead738feae1d07ae887609',
    );
    for (const format of ALL_FORMATS.filter((f) => f !== 'elastic-alert')) {
      expect(idOf(parseDetection(arcEvent(format))), format).toBe('dd463e3b1a6a0e0c1755135eaf001b39');
      expect(
        idOf(parseDetection(arcEvent(format, { principalType: 'User', ip: '2001:DB8:0::7' }))),
        format,
      ).toBe('d2e1ed644add5a72389c96b5107e6246');
    }
  });
});

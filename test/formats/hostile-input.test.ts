/**
 * parseDetection and extractEvents never throw, whatever they are given: random JSON, mutations of
 * the DERIVED Arc samples, prototype-pollution keys, huge strings, deep nesting.
 */
import { describe, expect, it } from 'vitest';
import type { ParseResult } from '../../src/core/detection.ts';
import { extractEvents, parseDetection } from '../../src/core/formats/index.ts';
import { ALL_FORMATS, arcEvent, seededRandom } from '../support/samples.ts';

type Json = Record<string, unknown>;

const HUGE = 'A'.repeat(2_000_000);
/** Long enough to exceed every field cap, short enough to round-trip through JSON 3000 times. */
const LONG = 'B'.repeat(20_000);
const KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'azure',
  'activitylogs',
  'operation_name',
  'kibana',
  'alert',
  'kibana.alert.uuid',
  'data',
  'alertContext',
  'essentials',
  'schemaId',
  'records',
  'alerts',
  'claims',
  'appid',
  'source',
  'ip',
  'callerIpAddress',
  'time',
  'operationName',
  'resultType',
  'identity',
  'evidence',
  '_source',
  '',
];

function randomValue(next: () => number, depth: number, huge = HUGE): unknown {
  const r = next();
  if (depth <= 0 || r < 0.35) {
    const leaves: unknown[] = [
      null,
      true,
      0,
      -1,
      1e308,
      Number.NaN,
      '',
      ' ',
      'Success',
      'Succeeded',
      'MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/LISTCLUSTERUSERCREDENTIAL/ACTION',
      '203.0.113.7',
      '::ffff:1.2.3.4',
      '[::1]:80',
      '2026-03-12T09:15:27.3554259Z',
      '{"appid":"x","clientIpAddress":"1.2.3.4"}',
      '{',
      '{...}',
      '\u0000\uffff\ud800',
      huge,
      `{"a":"${huge}"}`,
      'azureMonitorCommonAlertSchema',
      'Microsoft.Insights/activityLogs',
      'Activity Log',
    ];
    return leaves[Math.floor(next() * leaves.length)];
  }
  if (r < 0.5) {
    return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth - 1, huge));
  }
  const obj: Json = {};
  const n = Math.floor(next() * 6);
  for (let i = 0; i < n; i++) {
    // defineProperty so that a `__proto__` key is an own property, as JSON.parse makes it
    Object.defineProperty(obj, KEYS[Math.floor(next() * KEYS.length)]!, {
      value: randomValue(next, depth - 1, huge),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return obj;
}

/** Replaces, deletes or adds values at random places of a sample. */
function mutate(value: unknown, next: () => number, rate: number): unknown {
  if (next() < rate) return randomValue(next, 3, LONG);
  if (Array.isArray(value)) return value.map((v) => mutate(v, next, rate));
  if (value && typeof value === 'object') {
    const out: Json = {};
    for (const [k, v] of Object.entries(value)) {
      if (next() < rate / 2) continue;
      out[k] = mutate(v, next, rate);
    }
    return out;
  }
  return value;
}

function assertWellFormed(result: ParseResult) {
  expect(typeof result.ok).toBe('boolean');
  if (result.ok) {
    expect(typeof result.detection.eventId).toBe('string');
    expect(typeof result.detection.appId).toBe('string');
    expect(typeof result.detection.sourceIp).toBe('string');
    expect(Number.isNaN(Date.parse(result.detection.eventTime))).toBe(false);
  } else {
    expect(['ignored', 'invalid']).toContain(result.kind);
    expect(typeof result.reason).toBe('string');
    expect(result.reason.length).toBeLessThan(2000);
  }
}

function parseAll(body: unknown) {
  for (const event of extractEvents(body)) assertWellFormed(parseDetection(event));
}

describe('hostile input', () => {
  it('scalars, empty and odd containers', () => {
    for (const v of [
      undefined,
      null,
      0,
      1,
      -0,
      Number.NaN,
      '',
      'x',
      HUGE,
      true,
      [],
      {},
      [[]],
      [null],
      { records: [null, 1] },
    ]) {
      parseAll(v);
    }
  });

  it('fuzz: 3000 random JSON values', () => {
    const next = seededRandom(1);
    for (let i = 0; i < 3000; i++) parseAll(randomValue(next, 6));
  });

  it('fuzz: 3000 mutations of the DERIVED Arc samples, every format', () => {
    const next = seededRandom(2);
    const samples = ALL_FORMATS.flatMap((f) => [arcEvent(f), arcEvent(f, { principalType: 'User' })]);
    samples.push(arcEvent('elastic-alert', { alertShape: 'source' }));
    for (let i = 0; i < 3000; i++) {
      const sample = samples[i % samples.length]!;
      // round-trip through JSON so `__proto__` keys behave as they do in a parsed body
      parseAll(JSON.parse(JSON.stringify(mutate(sample, next, 0.05 + next() * 0.3))));
    }
  });

  it('prototype-pollution keys are data, and pollute nothing', () => {
    const body = JSON.parse(
      '{"__proto__":{"operationName":"MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/LISTCLUSTERUSERCREDENTIAL/ACTION","resultType":"Success","time":"2026-01-01T00:00:00Z","callerIpAddress":"1.2.3.4","identity":{"claims":{"appid":"x"}},"polluted":1},"constructor":{"prototype":{"polluted":1}}}',
    );
    const result = parseDetection(body);
    expect(result).toMatchObject({ ok: false, kind: 'invalid' });
    const record = arcEvent('azure-activity-log-record') as Json;
    const withProtoClaims = JSON.parse(
      JSON.stringify(record).replace('"claims":{', '"claims":{"__proto__":{"appid":"evil"},'),
    );
    const d = parseDetection(withProtoClaims);
    expect(d.ok && d.detection.appId).not.toBe('evil');
    expect(({} as Json).polluted).toBeUndefined();
    expect(({} as Json).appid).toBeUndefined();
  });

  it('inherited names are never read as fields', () => {
    // `constructor`, `toString` … exist on every object's prototype; a parser that read
    // inherited properties would see functions here.
    const result = parseDetection({ operationName: 'toString', time: 'constructor', resultType: 'valueOf' });
    expect(result).toMatchObject({ ok: false, kind: 'ignored' });
  });

  it('deep nesting (100 000 levels) in every position', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 100_000; i++) deep = i % 2 ? { a: deep } : [deep];
    for (const format of ALL_FORMATS) {
      for (const key of [
        'claims',
        'httpRequest',
        'callerIpAddress',
        'time',
        'resourceId',
        'azure',
        'source',
      ]) {
        const event = arcEvent(format);
        event[key] = deep;
        assertWellFormed(parseDetection(event));
      }
    }
    parseAll(deep);
    parseAll({ records: [deep] });
  });

  it('huge strings in the identifying fields keep reasons short', () => {
    for (const format of ALL_FORMATS) {
      for (const opts of [
        { operation: HUGE },
        { ip: HUGE },
        { appId: HUGE },
        { time: HUGE },
        { clusterId: HUGE },
        { outcome: HUGE },
      ]) {
        assertWellFormed(parseDetection(arcEvent(format, opts)));
      }
    }
  });

  it('cyclic objects (never from JSON, but from a caller) do not hang or throw', () => {
    const event = arcEvent('elastic-ecs');
    (event.azure as Json).self = event;
    (event.source as Json).ip = event;
    assertWellFormed(parseDetection(event));
    const cyclic: Json = {};
    cyclic.records = [cyclic];
    parseAll(cyclic);
  });
});

/**
 * What counts as a caller identity and an event time in every format: an application id is text
 * of printable ASCII (a GUID in some form); numbers, booleans, control and invisible characters are
 * refused with a reason that says why. A number as the time is epoch milliseconds, never seconds.
 */
import { describe, expect, it } from 'vitest';
import { parseDetection } from '../../src/core/formats/index.ts';
import { ALL_FORMATS, ARC, arcEvent } from '../support/samples.ts';

const invalidReason = (event: unknown): string => {
  const r = parseDetection(event);
  if (r.ok) throw new Error(`accepted: ${JSON.stringify(r.detection.appId)}`);
  expect(r.kind).toBe('invalid');
  return r.reason;
};

describe.each(ALL_FORMATS)('%s', (format) => {
  it.each([
    [123, 'a number'],
    [0, 'a number'],
    [true, 'a boolean'],
    [{ id: ARC.appId }, 'a object'],
  ])('a caller identity of %j is refused (%s, not text)', (appId, kind) => {
    const reason = invalidReason(arcEvent(format, { appId: appId as unknown as string }));
    expect(reason).toContain(`which is not an application id (${kind}, not text)`);
  });

  it.each([
    [
      'a NUL',
      `${ARC.appId.slice(0, 8)}\u0000${ARC.appId.slice(8)}`,
      'control or white-space character U+0000',
    ],
    ['a right-to-left override', `\u202e${ARC.appId}`, 'non-ASCII character U+202E'],
    ['a lone surrogate', `${ARC.appId}\ud800`, 'non-ASCII character U+D800'],
    [
      'a zero-width space',
      `${ARC.appId.slice(0, 8)}\u200b${ARC.appId.slice(8)}`,
      'non-ASCII character U+200B',
    ],
    ['full-width dashes', ARC.appId.replaceAll('-', '\uff0d'), 'non-ASCII character U+FF0D'],
    [
      'a space inside',
      `${ARC.appId.slice(0, 8)} ${ARC.appId.slice(8)}`,
      'control or white-space character U+0020',
    ],
    ['a colon', `urn:uuid:${ARC.appId}`, "it holds ':'"],
  ])('a caller identity with %s is refused', (_what, appId, problem) => {
    const reason = invalidReason(arcEvent(format, { appId }));
    expect(reason).toContain(
      `which is not an application id (${problem.startsWith('it') ? '' : 'it holds the '}${problem})`,
    );
    // The reason shows the value escaped: nothing invisible or reordering reaches a reader.
    expect(reason).toMatch(/^[\x20-\x7e]*$/);
  });

  it('an identity of up to 128 characters is accepted, a longer one refused (every store key must fit)', () => {
    const longest = `svc@${'x'.repeat(124)}`;
    const r = parseDetection(arcEvent(format, { appId: longest }));
    expect(r.ok && r.detection.appId).toBe(longest);
    expect(invalidReason(arcEvent(format, { appId: `${longest}x` }))).toContain(
      'caller identity of 129 characters',
    );
  });

  it('the forms of one GUID stay one identity', () => {
    for (const appId of [
      ARC.appId.toUpperCase(),
      ARC.appId.replaceAll('-', ''),
      `{${ARC.appId}}`,
      ` ${ARC.appId} `,
    ]) {
      const r = parseDetection(arcEvent(format, { appId }));
      expect(r.ok && r.detection.appId).toBe(ARC.appId);
    }
  });
});

describe('claims serialised as text', () => {
  it('an Event Hub record whose identity.claims is a JSON string (white space around it or not) is read as its object', () => {
    for (const pad of ['', ' \n\t']) {
      const record = arcEvent('azure-activity-log-record');
      const identity = record.identity as Record<string, unknown>;
      identity.claims = `${pad}${JSON.stringify(identity.claims)}${pad}`;
      const r = parseDetection(record);
      expect(r.ok && r.detection.appId, JSON.stringify(pad)).toBe(ARC.appId);
    }
  });
});

describe('a number as the event time', () => {
  it.each([
    ['azure-activity-log-record', 'time'],
    ['elastic-ecs', '@timestamp'],
  ] as const)('%s: epoch seconds are refused, with why', (format, field) => {
    for (const seconds of [1_795_796_543, 0, 123]) {
      const reason = invalidReason(arcEvent(format, { set: { [field]: seconds } }));
      expect(reason).toContain('no valid event time');
      expect(reason).toContain('epoch seconds are not accepted');
    }
  });

  it('epoch milliseconds are read', () => {
    const r = parseDetection(arcEvent('elastic-ecs', { set: { '@timestamp': 1_795_796_543_875 } }));
    expect(r.ok && r.detection.eventTime).toBe('2026-11-27T16:22:23.875Z');
  });
});

import { describe, expect, it } from 'vitest';
import { parseEventTime } from '../../src/core/formats/index.ts';

describe('parseEventTime', () => {
  it.each([
    ['2019-10-24T00:13:46.3554259Z', '2019-10-24T00:13:46.355Z'], // Azure: 7 digits, cut not rounded
    ['2019-01-21T22:14:26.9792776Z', '2019-01-21T22:14:26.979Z'],
    ['2021-11-16T08:27:36.1836909+00:00', '2021-11-16T08:27:36.183Z'], // common alert schema
    ['2021-11-16T10:27:36.1836909+02:00', '2021-11-16T08:27:36.183Z'],
    ['2021-11-16T08:27:36.1836909-0130', '2021-11-16T09:57:36.183Z'],
    ['2020-10-30T20:47:48.123859400Z', '2020-10-30T20:47:48.123Z'], // event.ingested, 9 digits
    ['2025-10-17T11:50:07.22Z', '2025-10-17T11:50:07.220Z'],
    ['2024-01-01T12:00:00Z', '2024-01-01T12:00:00.000Z'],
    ['2024-01-01T12:00', '2024-01-01T12:00:00.000Z'],
    ['2024-01-01 12:00:00.5', '2024-01-01T12:00:00.500Z'], // no zone: UTC
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z'],
  ])('%j → %j', (raw, want) => expect(parseEventTime(raw)).toBe(want));

  it('epoch milliseconds', () => {
    expect(parseEventTime(1604306119000)).toBe('2020-11-02T08:35:19.000Z');
  });

  it.each([
    '',
    'now',
    '2023-02-29T00:00:00Z',
    '2024-13-01T00:00:00Z',
    '2024-01-01T24:00:00Z',
    '2024-01-01T12:60:00Z',
    '2024-01-01T12:00:61Z',
    '2024-01-01T12:00:00.1234567890Z',
    '2024-01-01T12:00:00+25:00',
    '1969-12-31T23:59:59Z',
    `2024-01-01T12:00:00Z${' '.repeat(100)}x`,
  ])('rejects %j', (raw) => expect(parseEventTime(raw)).toBeUndefined());

  it('rejects non-times', () => {
    for (const v of [undefined, null, {}, [], true, Number.NaN, Number.POSITIVE_INFINITY, 1.5, -1]) {
      expect(parseEventTime(v)).toBeUndefined();
    }
  });
});

import { Buffer } from 'node:buffer';
import { Keyv } from 'keyv';
import { describe, expect, it } from 'vitest';
import { deserializeKeyvData, serializeKeyvData } from '../../src/store/keyv-json.ts';

// Keyv's own default serialiser and deserialiser, as a plain `new Keyv()` uses them.
const reference = new Keyv();
const keyvSerialize = reference.serialize!;
const keyvDeserialize = reference.deserialize!;

const samples: unknown[] = [
  { value: { appId: 'a', ip: '10.0.0.1', spans: [[1, 2]] }, expires: 1_764_000_000_000 },
  { value: { ip: '2001:db8::1' } },
  { value: '::1' },
  { value: ':' },
  { value: [':a', 'b:', '::c', ['::d', { e: ':f' }]] },
  { value: { ':key': ':value', 'a:': 'x' } },
  { value: 'has "quotes" and \\ and ":" inside' },
  { value: { nested: { deeper: [null, true, 0, -1.5, 'x'] } }, expires: 5 },
  { value: null },
  { value: new Date(0) },
  { value: { at: new Date(86_400_000) } },
  { value: Buffer.from('bytes') },
  { value: undefined, expires: 3 },
  { value: { skipped: undefined, kept: 1 } },
  { value: 'ünïcødé ✓ 🚀' },
  { value: [1, 2, 3], expires: undefined },
];

describe('Keyv-compatible JSON', () => {
  it.each(samples.map((sample, i) => [i, sample]))(
    'serialises sample %i exactly as Keyv does',
    (_i, sample) => {
      expect(serializeKeyvData(sample)).toBe(keyvSerialize(sample as { value: unknown }));
    },
  );

  it.each(samples.map((sample, i) => [i, sample]))('reads what Keyv wrote for sample %i', (_i, sample) => {
    const text = keyvSerialize(sample as { value: unknown }) as string;
    expect(deserializeKeyvData(text)).toEqual(keyvDeserialize(text));
  });

  it('round-trips strings that start with a colon and Buffers', () => {
    const data = { value: { ip: '::1', list: ['::', ':x'], raw: Buffer.from([1, 2, 3]) }, expires: 9 };
    expect(deserializeKeyvData(serializeKeyvData(data))).toEqual(data);
  });

  it('serialises a missing envelope as null like Keyv', () => {
    expect(serializeKeyvData(undefined)).toBe('null');
    expect(serializeKeyvData(null)).toBe('null');
  });
});

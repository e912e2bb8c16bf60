/**
 * Once told to list keys, FieldReader skips the flat-key lookups in objects without dotted keys: it
 * must read exactly what trying every key at every level reads (the reference below), whatever the
 * mix of nested and flat keys, and however many paths one reader has walked before or since.
 */
import { describe, expect, it } from 'vitest';
import { type FieldPath, FieldReader, field } from '../../src/core/formats/fields.ts';
import { seededRandom } from '../support/samples.ts';

type Json = Record<string, unknown>;

/** The rule, spelled out: at every level the longest own key that spells the next parts wins. */
function reference(obj: unknown, path: FieldPath): unknown {
  let cur = obj;
  let i = 0;
  next: while (i < path.segs.length) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    for (let j = path.segs.length; j > i; j--) {
      const key = path.segs.slice(i, j).join('.');
      if (Object.hasOwn(cur, key)) {
        cur = (cur as Json)[key];
        i = j;
        continue next;
      }
    }
    return undefined;
  }
  return cur;
}

const PATHS = [
  'a',
  'a.b',
  'a.b.c',
  'a.b.c.d',
  'a.bc',
  'a.b.d',
  'b.c',
  'kibana.alert.rule.rule_id',
  'kibana.alert.uuid',
  'kibana.alert',
].map(field);

/** Nests, flattens or mixes the parts of random paths, with leaves that are sometimes objects. */
function randomDoc(next: () => number): Json {
  const doc: Json = {};
  for (let n = Math.floor(next() * 8); n > 0; n--) {
    const segs = PATHS[Math.floor(next() * PATHS.length)]!.segs;
    let cur = doc;
    let i = 0;
    while (i < segs.length) {
      // Store the next 1..rest parts under one key, flat or not.
      const j = i + 1 + Math.floor(next() * (segs.length - i));
      const key = segs.slice(i, j).join('.');
      if (j === segs.length) {
        const leaf = next() < 0.2 ? {} : next() < 0.2 ? undefined : `${key}@${n}`;
        if (next() < 0.1)
          Object.defineProperty(cur, key, {
            value: leaf,
            enumerable: false,
            writable: true,
            configurable: true,
          });
        else cur[key] = leaf;
        break;
      }
      const child = cur[key];
      if (child === null || typeof child !== 'object') cur[key] = next() < 0.1 ? [] : {};
      cur = cur[key] as Json;
      i = j;
    }
  }
  return doc;
}

/** A reader that lists keys from the start. */
function listingReader(): FieldReader {
  const r = new FieldReader();
  r.listKeys();
  return r;
}

describe('FieldReader', () => {
  it('reads what the longest-key rule reads (property, 5000 random nested/flat/mixed documents)', () => {
    const next = seededRandom(7);
    for (let n = 0; n < 5000; n++) {
      const doc = randomDoc(next);
      const r = new FieldReader();
      const listFrom = Math.floor(next() * 10);
      // Random order and repeats: what the reader remembers of one path must not mislead another.
      for (let k = 0; k < 20; k++) {
        if (k === listFrom) r.listKeys();
        const path = PATHS[Math.floor(next() * PATHS.length)]!;
        expect(r.get(doc, path), `${path.dotted} in ${JSON.stringify(doc)}`).toBe(reference(doc, path));
      }
    }
  });

  it('prefers the flat key, also when it is non-enumerable or holds undefined', () => {
    const doc: Json = { kibana: { alert: { uuid: 'nested' } } };
    const r = listingReader();
    const uuid = field('kibana.alert.uuid');
    expect(r.get(doc, uuid)).toBe('nested');
    const hidden: Json = { kibana: { alert: { uuid: 'nested' } } };
    Object.defineProperty(hidden, 'kibana.alert', { value: { uuid: 'hidden' }, enumerable: false });
    expect(listingReader().get(hidden, uuid)).toBe('hidden');
    expect(listingReader().get({ ...doc, 'kibana.alert.uuid': undefined }, uuid)).toBeUndefined();
  });

  it('never reads inherited properties', () => {
    const doc = Object.create({ kibana: { alert: { uuid: 'inherited' } } }) as Json;
    expect(listingReader().get(doc, field('kibana.alert.uuid'))).toBeUndefined();
    const polluted = JSON.parse('{"__proto__": {"a": {"b": 1}}}');
    expect(listingReader().get(polluted, field('a.b'))).toBeUndefined();
    expect(listingReader().get(polluted, field('__proto__.a.b'))).toBe(1);
  });

  it('first: the first path holding something other than undefined, null or empty text', () => {
    const r = listingReader();
    const paths = [field('a.x'), field('a.y'), field('a.z')];
    expect(r.first({ a: { x: '', y: null, z: 0 } }, paths)).toBe(0);
    expect(r.first({ a: { x: '', 'y.q': 1 } }, paths)).toBeUndefined();
  });
});

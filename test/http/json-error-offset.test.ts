import { describe, expect, it } from 'vitest';
import { jsonErrorOffset, lineColumn } from '../../src/http/json-error-offset.ts';
import { seededRandom } from '../support/samples.ts';

describe('jsonErrorOffset', () => {
  it('finds the error where V8 gives no position: an unexpected token, an early end', () => {
    expect(jsonErrorOffset('{"a":tru}')).toBe(8);
    expect(jsonErrorOffset('{"b":[1,2,}')).toBe(10);
    expect(jsonErrorOffset('[1,]')).toBe(3);
    expect(jsonErrorOffset('{"a":1')).toBe(6);
    expect(jsonErrorOffset('')).toBe(0);
    expect(jsonErrorOffset('<alert>')).toBe(0);
    expect(jsonErrorOffset('[{"k":"v"}, {"a":\n tru}]')).toBe(22);
    expect(lineColumn('[{"k":"v"}, {"a":\n tru}]', 22)).toEqual({ line: 2, column: 5 });
    expect(jsonErrorOffset('{"a":{"b":[true,false,null,-1.5e3,"x\\u00e9"]}}')).toBe(-1);
  });

  it('agrees with JSON.parse on 100,000 corrupted documents: valid or not, and the position, line and column where V8 names them', () => {
    const next = seededRandom(7);
    const docs = [
      JSON.stringify({ a: [1, 2.5, -3e2, true, null, 'x"y\\z\u00e9'], b: { c: {}, d: [] } }),
      '[{"k":"v"},[[]],"\\u0041"]',
      ' {"n": 0.5E-3 } ',
      '[-0, 0.0, 1e+5, 10, "\\n\\t"]',
    ];
    const chars = '{}[]:,"\\ 0123456789.eE+-tfnrux\n\r';
    let positioned = 0;
    for (let k = 0; k < 100_000; k++) {
      let text = docs[k % docs.length]!;
      for (let edits = 1 + Math.floor(next() * 2); edits > 0; edits--) {
        const at = Math.floor(next() * (text.length + 1));
        const op = Math.floor(next() * 3);
        const ch = chars[Math.floor(next() * chars.length)]!;
        text =
          op === 0
            ? text.slice(0, at) + ch + text.slice(at)
            : op === 1
              ? text.slice(0, at) + text.slice(at + 1)
              : text.slice(0, at);
      }
      let v8: number | 'valid' | undefined;
      let v8LineColumn: { line: number; column: number } | undefined;
      try {
        JSON.parse(text);
        v8 = 'valid';
      } catch (err) {
        const m = /at position (\d+) \(line (\d+) column (\d+)\)/.exec((err as Error).message);
        v8 = m ? Number(m[1]) : undefined;
        if (m) v8LineColumn = { line: Number(m[2]), column: Number(m[3]) };
      }
      const ours = jsonErrorOffset(text);
      if (v8 === 'valid') expect(ours, text).toBe(-1);
      else expect(ours, text).toBeGreaterThanOrEqual(0);
      if (typeof v8 === 'number') {
        positioned++;
        expect(ours, text).toBe(v8);
        expect(lineColumn(text, ours), text).toEqual(v8LineColumn);
      }
    }
    expect(positioned).toBeGreaterThan(10_000);
  });
});

/**
 * Where a text stops being JSON: the offset of the first character that cannot continue a JSON
 * document (the text's length when it ends too early), or -1 when it is one valid document. Used
 * only after `JSON.parse` failed with a message that gives no position (V8 says "Unexpected token
 * …" and "Unexpected end of JSON input" without one), so that every 400 can say where.
 */
export function jsonErrorOffset(text: string): number {
  const n = text.length;
  let i = 0;
  /** Open containers: true for an object, false for an array. */
  const open: boolean[] = [];
  const skipSpace = () => {
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
    }
  };
  const string = (): boolean => {
    for (i++; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          // The first character that is no hex digit is the error.
          for (let k = i + 2; k < i + 6; k++) {
            if (k >= n || !/[0-9A-Fa-f]/.test(text[k]!)) {
              i = k;
              return false;
            }
          }
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else {
          i++;
          return false;
        }
      }
    }
    return false;
  };
  const isDigit = (k: number) => {
    const c = text.charCodeAt(k);
    return c >= 0x30 && c <= 0x39;
  };
  /** A number; on failure `i` is at the first character that cannot continue it. */
  const number = (): boolean => {
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else if (isDigit(i)) while (isDigit(i)) i++;
    else return false;
    if (text[i] === '.') {
      i++;
      if (!isDigit(i)) return false;
      while (isDigit(i)) i++;
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      if (!isDigit(i)) return false;
      while (isDigit(i)) i++;
    }
    return true;
  };
  /** `true`, `false` or `null`; on failure `i` is at the first character that differs. */
  const word = (w: string): boolean => {
    for (let k = 0; k < w.length; k++, i++) if (text[i] !== w[k]) return false;
    return true;
  };
  const literal = (): boolean => {
    const c = text[i];
    if (c === 't') return word('true');
    if (c === 'f') return word('false');
    if (c === 'n') return word('null');
    return c === '-' || isDigit(i) ? number() : false;
  };

  type State = 'value' | 'valueOrEnd' | 'key' | 'keyOrEnd' | 'colon' | 'after';
  let state: State = 'value';
  for (;;) {
    skipSpace();
    if (state === 'after' && open.length === 0) return i < n ? i : -1;
    if (i >= n) return n;
    const c = text[i];
    switch (state) {
      case 'after': {
        const inObject = open[open.length - 1];
        if (c === ',') {
          i++;
          state = inObject ? 'key' : 'value';
        } else if (c === (inObject ? '}' : ']')) {
          i++;
          open.pop();
        } else return i;
        break;
      }
      case 'colon':
        if (c !== ':') return i;
        i++;
        state = 'value';
        break;
      case 'keyOrEnd':
      case 'key':
        if (state === 'keyOrEnd' && c === '}') {
          i++;
          open.pop();
          state = 'after';
        } else if (c !== '"' || !string()) return i;
        else state = 'colon';
        break;
      default:
        if (state === 'valueOrEnd' && c === ']') {
          i++;
          open.pop();
          state = 'after';
        } else if (c === '{' || c === '[') {
          i++;
          open.push(c === '{');
          state = c === '{' ? 'keyOrEnd' : 'valueOrEnd';
        } else if (c === '"' ? string() : literal()) state = 'after';
        else return i;
    }
  }
}

/** 1-based line and column of `offset` in `text`; lines end at `\n`, `\r\n` or `\r`, as V8 counts them. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let k = 0; k < offset && k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c === 0x0a || (c === 0x0d && text.charCodeAt(k + 1) !== 0x0a)) {
      line++;
      start = k + 1;
    }
  }
  return { line, column: offset - start + 1 };
}

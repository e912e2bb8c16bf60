import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import { HttpError } from './http-error.ts';
import { jsonErrorOffset, lineColumn } from './json-error-offset.ts';

/** How the body is framed: one JSON document, or one JSON document per line. */
export type BodyKind = 'json' | 'ndjson';

const JSON_TYPES = new Set(['application/json']);
const NDJSON_TYPES = new Set([
  'application/x-ndjson',
  'application/ndjson',
  'application/jsonl',
  'application/x-jsonlines',
  'application/jsonlines',
]);

/** Deepest nesting accepted in one document; the detection formats need about a dozen levels. */
const MAX_DEPTH = 64;
/** Keys removed from every received object: they only matter to code that merges into prototypes. */
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Reads `Content-Type`. JSON: `application/json`; NDJSON: `application/x-ndjson` (also
 * `application/ndjson`, `application/jsonl`, `application/x-jsonlines`). A missing header means
 * JSON (and a "JSON" body of several documents, one per line or one after another, as those
 * documents). Any other type, `text/plain` included, or a charset other than UTF-8 is a 415: the
 * service does not guess how a body is framed.
 */
export function bodyKind(req: IncomingMessage): BodyKind {
  const header = req.headers['content-type'];
  if (header === undefined || header.trim() === '') return 'json';
  const [type = '', ...params] = header.split(';').map((p) => p.trim().toLowerCase());
  for (const param of params) {
    const [name, raw = ''] = param.split('=').map((p) => p.trim());
    // A parameter value may be a quoted string (RFC 9110): `charset="utf-8"` is `charset=utf-8`.
    const value = raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1).trim() : raw;
    if (name === 'charset' && !['utf-8', 'utf8'].includes(value)) {
      throw new HttpError(
        415,
        'unsupported_media_type',
        `charset ${JSON.stringify(value.slice(0, 40))} is not supported: send the body as UTF-8`,
      );
    }
  }
  if (JSON_TYPES.has(type)) return 'json';
  if (NDJSON_TYPES.has(type)) return 'ndjson';
  throw new HttpError(
    415,
    'unsupported_media_type',
    `Content-Type ${JSON.stringify(type.slice(0, 80))} is not accepted: send application/json (one JSON object or array) or application/x-ndjson (one JSON document per line)`,
    { details: { accepted: ['application/json', 'application/x-ndjson'] } },
  );
}

/** One JSON document of the body: an NDJSON line, an element of a top-level array, or the body. */
export interface IngestDocument {
  value?: unknown;
  /** 1-based line of an NDJSON body. */
  line?: number;
  /** Why this document cannot be evaluated (it becomes an `invalid` event). */
  error?: string;
}

/**
 * Walks a parsed document without recursion: removes `__proto__`, `constructor` and `prototype`
 * keys everywhere, and refuses nesting deeper than `MAX_DEPTH` (which would overflow the stack of
 * any recursive code downstream, `JSON.stringify` included). Returns the reason, or undefined.
 */
function guardDocument(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  // Two parallel stacks rather than one of [node, depth] pairs: no allocation per node.
  const nodes: object[] = [value];
  const depths: number[] = [1];
  while (nodes.length > 0) {
    const node = nodes.pop()!;
    const depth = depths.pop()!;
    if (depth > MAX_DEPTH) return `nested deeper than ${MAX_DEPTH} levels`;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const v: unknown = node[i];
        if (v !== null && typeof v === 'object') {
          nodes.push(v);
          depths.push(depth + 1);
        }
      }
      continue;
    }
    const record = node as Record<string, unknown>;
    // JSON.parse makes plain objects with own properties only (`__proto__` included, as data).
    for (const key in record) {
      if (PROTOTYPE_KEYS.has(key)) {
        delete record[key];
        continue;
      }
      const v = record[key];
      if (v !== null && typeof v === 'object') {
        nodes.push(v);
        depths.push(depth + 1);
      }
    }
  }
  return undefined;
}

const stripBom = (text: string) => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

/** Position details from V8's JSON.parse message ("… at position 12 (line 1 column 13)"). */
function positionOf(message: string): Record<string, number> {
  const out: Record<string, number> = {};
  const pos = /at position (\d+)/.exec(message);
  if (pos) out.position = Number(pos[1]);
  const lc = /\(line (\d+) column (\d+)\)/.exec(message);
  if (lc) {
    out.line = Number(lc[1]);
    out.column = Number(lc[2]);
  }
  return out;
}

const errorMessage = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * V8's message for one NDJSON line counts lines and columns within that line's text ("… at
 * position 1 (line 1 column 2)"), which reads wrong beside the body's line number: the column
 * is taken out and the rest kept.
 */
function lineJsonError(message: string, line: string): { message: string; column?: number } {
  const lc = /\s*\(line \d+ column (\d+)\)/.exec(message);
  if (!lc) {
    // V8 gives no position for an unexpected token or an early end: find it.
    const offset = jsonErrorOffset(line);
    return offset >= 0 ? { message, column: offset + 1 } : { message };
  }
  return {
    message: (message.slice(0, lc.index) + message.slice(lc.index + lc[0].length)).replace(
      / at position \d+$/,
      '',
    ),
    column: Number(lc[1]),
  };
}

/**
 * Whether a body that failed to parse as one document at `position` (the first character after a
 * complete one) is documents one per line: the first ends on the first line, and the next starts
 * on a line of its own.
 */
function isOneDocumentPerLine(text: string, position: number): boolean {
  let i = position - 1;
  while (i >= 0 && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r')) i--;
  return text[i] === '\n' && !text.slice(0, i).trim().includes('\n');
}

const isJsonSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Where a body of documents one after another stops being JSON, and why. */
interface SplitError {
  message: string;
  position: number;
}

/**
 * The documents of a body of JSON objects or arrays one after another, with nothing or white
 * space between them (`{…}{…}`, Fluent Bit's json_stream), found by their brackets outside
 * strings in one pass. Called once the first document parsed and more follows it: a body that is
 * not that (a value at the top that is no object or array, a document that does not parse, an
 * end too early) gives where it stops being JSON, as `JSON.parse` would say it of a single one.
 */
function splitConcatenated(text: string): unknown[] | SplitError {
  const docs: unknown[] = [];
  let depth = 0;
  let start = 0;
  let inString = false;
  const unexpected = (position: number): SplitError => ({
    message: 'Unexpected non-whitespace character after JSON',
    position,
  });
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash: the character it escapes is no quote
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      if (depth === 0) return unexpected(i);
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (depth++ === 0) start = i;
    } else if (c === 0x7d || c === 0x5d) {
      if (--depth < 0) return unexpected(i);
      if (depth > 0) continue;
      if (docs.length === MAX_EVENTS_PER_REQUEST) throw tooManyEvents();
      const doc = text.slice(start, i + 1);
      try {
        docs.push(JSON.parse(doc));
      } catch (err) {
        // The document's own error, placed in the body.
        const message = errorMessage(err);
        const at = /at position (\d+)/.exec(message);
        const offset = at ? Number(at[1]) : jsonErrorOffset(doc);
        return {
          message: message.replace(/ at position \d+(?: \(line \d+ column \d+\))?$/, ''),
          position: start + Math.max(0, offset),
        };
      }
    } else if (depth === 0 && !isJsonSpace(c)) {
      return unexpected(i);
    }
  }
  return depth === 0 ? docs : { message: 'Unexpected end of JSON input', position: text.length };
}

/** Whether the body's first document is an object or an array (what `splitConcatenated` reads). */
const startsWithBracket = (text: string): boolean => {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!isJsonSpace(c)) return c === 0x7b || c === 0x5b;
  }
  return false;
};

/** A top-level array's elements are the body's documents, as in a body of one array. */
const flattened = (docs: unknown[]): unknown[] => {
  if (!docs.some(Array.isArray)) return docs;
  const out: unknown[] = [];
  for (const doc of docs) {
    if (!Array.isArray(doc)) out.push(doc);
    else for (const element of doc) out.push(element);
    if (out.length > MAX_EVENTS_PER_REQUEST) throw tooManyEvents();
  }
  return out;
};

const guarded = (docs: unknown[]): IngestDocument[] =>
  docs.map((doc) => {
    const error = guardDocument(doc);
    return error ? { error } : { value: doc };
  });

function parseJsonBody(buf: Buffer): IngestDocument[] | Promise<IngestDocument[]> {
  if (!isUtf8(buf)) {
    throw new HttpError(400, 'invalid_utf8', 'the body is not valid UTF-8');
  }
  const text = stripBom(buf.toString('utf8'));
  if (text.trim() === '') {
    throw new HttpError(400, 'invalid_json', 'the body is empty: expected a JSON object or array');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    let message = errorMessage(err);
    let details = positionOf(message);
    const afterFirst = /after JSON/.test(message) && details.position !== undefined;
    // NDJSON labelled as JSON (or sent without a type), as Fluent Bit's json_lines before 3.0.3:
    // read as what it is.
    if (afterFirst && isOneDocumentPerLine(text, details.position!)) {
      return parseNdjsonLines(buf).then(({ docs, bad }) => {
        if (bad === 0) return docs;
        // Lines that are no JSON may be documents written over several lines, one after another
        // (the text is made again: not held while the lines are parsed).
        const again = stripBom(buf.toString('utf8'));
        const split = startsWithBracket(again) ? splitConcatenated(again) : undefined;
        return Array.isArray(split) ? guarded(flattened(split)) : docs;
      });
    }
    // Documents with nothing between them, as Fluent Bit's json_stream sends them.
    let laterDocument = false;
    if (afterFirst && startsWithBracket(text)) {
      const split = splitConcatenated(text);
      if (Array.isArray(split)) return guarded(flattened(split));
      // Where the documents after the first stop being JSON, rather than where the first ends.
      laterDocument = split.position > details.position!;
      details = { position: split.position, ...lineColumn(text, split.position) };
      message = `${split.message} at position ${split.position} (line ${details.line} column ${details.column})`;
    }
    if (details.position === undefined) {
      // V8 gives no position for an unexpected token or an early end: find it.
      const offset = jsonErrorOffset(text);
      if (offset >= 0) {
        details = { position: offset, ...lineColumn(text, offset) };
        message += ` at position ${offset} (line ${details.line} column ${details.column})`;
      }
    }
    const ndjsonHint =
      (laterDocument || /after JSON/.test(message)) && (details.line ?? 1) > 1
        ? '; it looks like one JSON document per line: send Content-Type: application/x-ndjson'
        : '';
    throw new HttpError(400, 'invalid_json', `the body is not valid JSON: ${message}${ndjsonHint}`, {
      details,
    });
  }
  return guarded(Array.isArray(value) ? value : [value]);
}

/** Most events evaluated from one request; more is a degenerate body (e.g. `[0,0,0,…]`). */
export const MAX_EVENTS_PER_REQUEST = 100_000;

export const tooManyEvents = (): HttpError =>
  new HttpError(
    413,
    'payload_too_large',
    `the body holds more than ${MAX_EVENTS_PER_REQUEST} events: split it into smaller requests`,
  );

/** Bad lines whose column is looked for; later ones are reported by line only. */
const LOCATED_ERRORS = 100;

/** Lines parsed between two turns of the event loop given to other work. */
export const LINES_PER_TURN = 2000;

/**
 * Runs `slice(from, to)` over `0..count`, `perTurn` at a time with a turn of the event loop
 * between two slices, so that other work runs meanwhile. When one slice covers it all, it runs at
 * once and returns nothing: the caller has no promise to wait for.
 */
export function inTurns(
  count: number,
  perTurn: number,
  slice: (from: number, to: number) => void,
): Promise<void> | undefined {
  if (count <= perTurn) {
    slice(0, count);
    return undefined;
  }
  return (async () => {
    for (let from = 0; from < count; from += perTurn) {
      if (from > 0) await setImmediatePromise();
      slice(from, Math.min(count, from + perTurn));
    }
  })();
}

/**
 * One document per line. Each line is decoded on its own from the bytes (`\n` never occurs
 * inside a multi-byte UTF-8 sequence, so splitting the bytes is safe): a string per line parses
 * faster than slices of one big string, and the body is never held twice. When the body as a
 * whole is valid UTF-8 (the usual case, checked once) no line is checked again; otherwise each
 * is, so one bad line does not spoil the others. `LINES_PER_TURN` lines at a time, so that a
 * body of many lines does not hold the event loop while it is parsed.
 */
async function parseNdjsonBody(buf: Buffer): Promise<IngestDocument[]> {
  let lines: { docs: IngestDocument[]; bad: number };
  try {
    lines = await parseNdjsonLines(buf);
  } catch (err) {
    // Not one line is JSON: JSON written over several lines (pretty-printed), labelled NDJSON.
    if (!(err instanceof HttpError) || err.code !== 'invalid_json') throw err;
    const whole = await wholeJson(buf);
    if (whole) return whole;
    throw err;
  }
  // A first line (not blank) that is no JSON may open a document written over several lines (a
  // bracket alone): read as JSON, the body may be that document, or several one after another.
  if (lines.bad > 0 && 'error' in lines.docs[0]!) {
    return (await wholeJson(buf)) ?? lines.docs;
  }
  return lines.docs;
}

/** The body's documents read as JSON (`parseJsonBody`), or undefined when it is not. */
async function wholeJson(buf: Buffer): Promise<IngestDocument[] | undefined> {
  try {
    return await parseJsonBody(buf);
  } catch {
    return undefined;
  }
}

/** `parseNdjsonBody`'s documents, and how many lines were not JSON. */
async function parseNdjsonLines(buf: Buffer): Promise<{ docs: IngestDocument[]; bad: number }> {
  const docs: IngestDocument[] = [];
  let bad = 0;
  let parsedAny = false;
  let firstError: string | undefined;
  let firstPosition: { line: number; column?: number } | undefined;
  const valid = isUtf8(buf);
  // A byte order mark before the first line.
  let start = buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
  let line = 1;

  /** Parses up to `LINES_PER_TURN` lines; true once the body is read. */
  const parseLines = (): boolean => {
    for (const last = line + LINES_PER_TURN; line < last; line++) {
      if (start > buf.length) return true;
      // Each line is at least one event or one error: past the limit, the rest is not read.
      if (docs.length > MAX_EVENTS_PER_REQUEST) throw tooManyEvents();
      let end = buf.indexOf(0x0a, start);
      if (end === -1) end = buf.length;
      const from = start;
      start = end + 1;
      if (!valid && !isUtf8(buf.subarray(from, end))) {
        const error = `line ${line} is not valid UTF-8`;
        firstError ??= error;
        firstPosition ??= { line };
        docs.push({ line, error });
        continue;
      }
      if (end === from) continue;
      const text = buf.toString('utf8', from, end);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        // Blank lines are skipped; checked only here, off the common path.
        if (text.trim() === '') continue;
        const { message, column } =
          ++bad <= LOCATED_ERRORS ? lineJsonError(errorMessage(err), text) : { message: errorMessage(err) };
        const error = `line ${line}${column === undefined ? '' : ` column ${column}`} is not valid JSON: ${message}`;
        firstError ??= error;
        firstPosition ??= column === undefined ? { line } : { line, column };
        docs.push({ line, error });
        continue;
      }
      parsedAny = true;
      const error = guardDocument(value);
      docs.push(error ? { line, error: `line ${line}: ${error}` } : { line, value });
    }
    return start > buf.length;
  };

  for (;;) {
    // A bad line's error is cheap: no stack trace, and its column is looked for only in the first
    // few (a body of a million bad lines must not hold the event loop for seconds). Set only while
    // this code runs: other work between two turns keeps its stack traces.
    const stackLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    let done: boolean;
    try {
      done = parseLines();
    } finally {
      Error.stackTraceLimit = stackLimit;
    }
    if (done) break;
    await setImmediatePromise();
  }
  if (docs.length === 0) {
    throw new HttpError(400, 'invalid_json', 'the body is empty: expected one JSON document per line');
  }
  if (!parsedAny) {
    // Not one line is JSON: this is not NDJSON at all, not a batch with some bad events.
    throw new HttpError(
      400,
      'invalid_json',
      `the body is not NDJSON: no line holds a JSON document (${firstError}); each line must be one complete JSON document`,
      { details: firstPosition ?? {} },
    );
  }
  return { docs, bad };
}

/**
 * Splits a body into its JSON documents. Throws a 400 `HttpError` (with the position) when the
 * body as a whole is not JSON/NDJSON; a bad NDJSON line or an over-deep document is returned as a
 * document with an `error` instead, so the rest of the batch is still evaluated.
 */
export function parseIngestBody(buf: Buffer, kind: BodyKind): IngestDocument[] | Promise<IngestDocument[]> {
  // A JSON body is parsed at once, no promise (unless it is documents one per line).
  return kind === 'json' ? parseJsonBody(buf) : parseNdjsonBody(buf);
}

import { Buffer } from 'node:buffer';
import { StoreError } from './store-error.ts';

/**
 * Keyv's default serialisation (`@keyv/serialize`) writes `{"value":…,"expires":…}` as JSON but
 * escapes every string that starts with `:` by doubling that colon, and writes Buffers as
 * `":base64:…"`. It does so with a hand-written recursive serialiser and a `JSON.parse` reviver,
 * which together cost about seven times plain `JSON.stringify`/`JSON.parse` on a pair record and
 * would cap the engine well below its target. These two functions write and read exactly the
 * same text, taking the native JSON path whenever no string starts with `:` (nearly always: an
 * IPv6 address such as `::1` is the common exception) and an escaping path otherwise, so a plain
 * `new Keyv(adapter)` still reads every value this project writes and the other way round.
 */

const COLON = 58;
/** Deeper than any record of ours; beyond it (or in a cycle) let JSON.stringify decide. */
const MAX_DEPTH = 64;

/** True when `value` holds a string starting with `:`, a Buffer or a `toJSON` object. */
function needsSlowPath(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.charCodeAt(0) === COLON;
  if (typeof value !== 'object' || value === null) return false;
  if (depth > MAX_DEPTH) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (needsSlowPath(value[i], depth + 1)) return true;
    return false;
  }
  // A toJSON result (Date, Buffer, custom classes) may itself start with ':'; let the slow path
  // see it after JSON.stringify has called toJSON.
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return true;
  for (const key in value) {
    if (Object.hasOwn(value, key) && needsSlowPath((value as Record<string, unknown>)[key], depth + 1))
      return true;
  }
  return false;
}

function escapeReplacer(this: unknown, key: string, value: unknown): unknown {
  const original = (this as Record<string, unknown>)[key];
  if (Buffer.isBuffer(original)) return `:base64:${original.toString('base64')}`;
  if (typeof value === 'string' && value.charCodeAt(0) === COLON) return `:${value}`;
  return value;
}

function unescapeReviver(_key: string, value: unknown): unknown {
  if (typeof value !== 'string' || value.charCodeAt(0) !== COLON) return value;
  if (value.startsWith(':base64:')) return Buffer.from(value.slice(8), 'base64');
  return value.slice(1);
}

/**
 * Serialises Keyv's `{ value, expires }` envelope exactly as Keyv 5's default serialiser does.
 * A value JSON cannot hold (a cycle, a BigInt) is refused with a `StoreError` saying so.
 */
export function serializeKeyvData(data: unknown): string {
  if (data === undefined || data === null) return 'null';
  try {
    return needsSlowPath(data) ? JSON.stringify(data, escapeReplacer) : JSON.stringify(data);
  } catch (error) {
    throw new StoreError(
      'STORE_BAD_INPUT',
      `The value is not JSON-serialisable: ${(error as Error).message}`,
    );
  }
}

/**
 * Reads text written by `serializeKeyvData` or by Keyv 5's default serialiser.
 * An escaped string always shows up as a quote that opens a value (after `:`, `[` or `,`)
 * directly followed by `:`; without one of those three patterns the reviver is not needed.
 */
export function deserializeKeyvData<T>(text: string): T {
  if (text.includes(':":') || text.includes('[":') || text.includes(',":')) {
    return JSON.parse(text, unescapeReviver) as T;
  }
  return JSON.parse(text) as T;
}

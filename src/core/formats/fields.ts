/**
 * Reading fields out of untrusted JSON. Only own properties are read (a `__proto__` or
 * `constructor` key is just data), nothing recurses, and string lengths are capped, so a parser
 * built on these stays linear in the fields it names (and in the keys of the objects on their
 * paths, listed once per event) whatever the input holds.
 */

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Longest string value accepted by `str` (claims, ids, names are far shorter). */
export const MAX_FIELD = 4096;

/** A dotted field path compiled once at module load. */
export interface FieldPath {
  readonly dotted: string;
  readonly segs: readonly string[];
  /** `joins[i][k]` = `segs.slice(i, i + k + 1).join('.')`: every key a level may store the path under. */
  readonly joins: readonly (readonly string[])[];
}

export function field(dotted: string): FieldPath {
  const segs = dotted.split('.');
  const joins = segs.map((_, i) => segs.slice(i).map((__, k) => segs.slice(i, i + k + 1).join('.')));
  return { dotted, segs, joins };
}

/** An own property, or undefined. */
export function own(obj: unknown, key: string): unknown {
  return isObject(obj) && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/**
 * Reads fields of one event by path, whether the document nests them (`{kibana: {alert: {uuid}}}`),
 * stores them flat (`{"kibana.alert.uuid": …}`, as the alerts index does) or mixes both
 * (`{"azure.activitylogs": {…}}`): at every level the longest own key that spells the next part of
 * the path wins, with no backtracking.
 *
 * Trying every key a level could hold costs n(n+1)/2 lookups for n parts, most of them misses. A
 * parser that goes on to read the 25 or so fields of a detection from a nested document calls
 * `listKeys` first: the reader (one per event: it remembers the objects) then lists the own keys
 * of each object a path crosses once, and where none of them holds a dot (every level of a nested
 * document) looks up the next part only. Before that (format detection, the rule's two fields,
 * which is all most events need) listing would cost more than it saves.
 */
export class FieldReader {
  #listing = false;
  /** Objects whose keys were listed, and whether none of those keys holds a dot. */
  readonly #listed: object[] = [];
  readonly #undotted: boolean[] = [];

  /** From now on, list the keys of the objects that paths cross (see the class comment). */
  listKeys(): void {
    this.#listing = true;
  }

  /** The value at `path` in `obj`, or undefined. */
  get(obj: unknown, path: FieldPath): unknown {
    let cur = obj;
    const n = path.segs.length;
    let i = 0;
    while (i < n) {
      if (!isObject(cur)) return undefined;
      const keys = path.joins[i]!;
      // keys[k] joins k + 1 parts, so only an object with a dotted key can hold one with k > 0.
      let k = keys.length > 1 && this.#listing && this.#undottedKeys(cur) ? 0 : keys.length - 1;
      while (k >= 0 && !Object.hasOwn(cur, keys[k]!)) k--;
      if (k < 0) return undefined;
      cur = cur[keys[k]!];
      i += k + 1;
    }
    return cur;
  }

  /** The first of `paths` that holds something other than undefined/null/''. */
  first(obj: unknown, paths: readonly FieldPath[]): unknown {
    for (const p of paths) {
      const v = this.get(obj, p);
      if (v !== undefined && v !== null && v !== '') return v;
    }
    return undefined;
  }

  #undottedKeys(obj: Json): boolean {
    const listed = this.#listed;
    for (let i = listed.length - 1; i >= 0; i--) if (listed[i] === obj) return this.#undotted[i]!;
    const undotted = !hasDottedKey(obj);
    listed.push(obj);
    this.#undotted.push(undotted);
    return undotted;
  }
}

function hasDottedKey(obj: Json): boolean {
  // Every own key, enumerable or not, as `Object.hasOwn` finds them.
  for (const key of Object.getOwnPropertyNames(obj)) if (key.includes('.')) return true;
  return false;
}

/** A trimmed non-empty string (numbers and booleans as text), or undefined. Over-long strings are dropped. */
export function str(v: unknown, max = MAX_FIELD): string | undefined {
  if (typeof v === 'string') {
    if (v.length > max) return undefined;
    const t = v.trim();
    return t === '' ? undefined : t;
  }
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return String(v);
  return undefined;
}

/** A finite number, or a string holding one. */
export function num(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v.length <= 32 && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** Azure's `{value, localizedValue}` wrappers (REST schema) or the plain value. */
export function unwrapValue(v: unknown): unknown {
  return isObject(v) && Object.hasOwn(v, 'value') ? v.value : v;
}

/** Largest JSON string that `jsonObject` parses (claims are a few KB). */
const MAX_JSON_STRING = 256 * 1024;

/**
 * An object given as an object or as a JSON string (Azure Monitor sends `claims` and
 * `httpRequest` as JSON strings, sometimes `"{}"`, `null` or a placeholder like `"{...}"`).
 */
export function jsonObject(v: unknown): Json | undefined {
  if (isObject(v)) return v;
  if (typeof v !== 'string' || v.length > MAX_JSON_STRING) return undefined;
  const t = v.trim();
  if (!t.startsWith('{')) return undefined;
  try {
    const parsed: unknown = JSON.parse(t);
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** First element of an array, or the value itself. */
export const single = (v: unknown): unknown => (Array.isArray(v) ? v[0] : v);

/**
 * Reading fields out of untrusted JSON. Only own properties are read (a `__proto__` or
 * `constructor` key is just data), nothing recurses, and string lengths are capped, so a parser
 * built on these stays linear in the fields it names (and in the keys of the objects on their
 * paths, listed once per event) whatever the input holds.
 */

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Longest string value accepted by `str` (claims, ids, names are far shorter). */
const MAX_FIELD = 4096;

/** A dotted field path compiled once at module load. */
export interface FieldPath {
  readonly dotted: string;
  readonly segs: readonly string[];
  /** `joins[i][k]` = `segs.slice(i, i + k + 1).join('.')`: every key a level may store the path under. */
  readonly joins: readonly (readonly string[])[];
  /** `prefixes[i]`: the id of `segs.slice(0, i + 1)`, for every level but the last (see `FieldReader`). */
  readonly prefixes: readonly number[];
}

/** Ids of the path prefixes (`a`, `a.b` of `a.b.c`) of all compiled paths: as many as the code names. */
const prefixIds = new Map<string, number>();

export function field(dotted: string): FieldPath {
  const segs = dotted.split('.').map(propertyKey);
  const joins = segs.map((_, i) =>
    segs.slice(i).map((__, k) => propertyKey(segs.slice(i, i + k + 1).join('.'))),
  );
  const prefixes = segs.slice(0, -1).map((_, i) => prefixId(segs.slice(0, i + 1).join('.')));
  return { dotted, segs, joins, prefixes };
}

function prefixId(prefix: string): number {
  let id = prefixIds.get(prefix);
  if (id === undefined) {
    id = prefixIds.size;
    prefixIds.set(prefix, id);
  }
  return id;
}

/**
 * `key` as the engine keeps property names. A string built at run time (`split`, `join`) is a
 * plain string, and every lookup with it first has to find its property-name twin (V8 probes its
 * string table each time, which cost more than the lookup itself); a key read back from an object
 * is that twin.
 */
function propertyKey(key: string): string {
  return Object.keys({ [key]: 0 })[0] ?? key;
}

/*
 * Marker reads. Format detection asks some 30 times per event whether a top-level key is there,
 * and for most events (Event Hub records) the answer is always no. The format detectors therefore
 * first read their marker keys as plain properties at fixed names (`doc.kibana`,
 * `doc['kibana.alert']`): each such read has an inline cache of its own and costs a fraction of an
 * `Object.hasOwn` with a variable key. When every marker reads undefined, the key is absent or
 * holds undefined (own or inherited), and either way every path that starts at it reads undefined
 * too: the detector can answer without its full checks. Any other value (including an inherited
 * one) falls through to the full, own-property checks, so the answer is the same. Keys whose mere
 * presence counts (`Object.hasOwn`) are still checked with `Object.hasOwn`.
 */

/** An own property, or undefined. */
export function own(obj: unknown, key: string): unknown {
  return isObject(obj) && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/**
 * What `own(obj, key)` returns, for a caller that has read `value = obj.key` itself. A read at a
 * fixed key has an inline cache of its own, while the one inside `own` serves every key of every
 * object: over a stream of events whose objects are out of the CPU cache, that shared read costs
 * several times as much. The fields every detection needs are read this way; only a value that is
 * there is then checked to be an own one.
 */
export function ownValue(obj: Json, key: string, value: unknown): unknown {
  return value !== undefined && Object.hasOwn(obj, key) ? value : undefined;
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
  // The arrays below are only written while listing: until then, all readers share empty ones
  // (most events are never listed, and one reader is made per event).
  /** Objects whose keys were listed, and whether none of those keys holds a dot. */
  #listed: object[] = UNUSED;
  #undotted: boolean[] = UNUSED;
  /**
   * The object the last walk started from, and by prefix id the object that walks from it
   * reached after the prefix's parts, where they crossed undotted objects only.
   */
  #root: unknown;
  #reached: (Json | undefined)[] = UNUSED;

  /** From now on, list the keys of the objects that paths cross (see the class comment). */
  listKeys(): void {
    if (this.#listing) return;
    this.#listing = true;
    this.#listed = [];
    this.#undotted = [];
    this.#reached = [];
  }

  /** The value at `path` in `obj`, or undefined. */
  get(obj: unknown, path: FieldPath): unknown {
    let cur = obj;
    const n = path.segs.length;
    let i = 0;
    // Through undotted objects a walk takes one part per level, whatever the parts after it, so
    // every path with the same first parts reaches the same object: a walk resumes after the
    // longest prefix that an earlier one took that way (the fields of a detection share a few).
    let resumable = this.#listing;
    if (resumable) {
      if (obj !== this.#root) {
        this.#root = obj;
        this.#reached = [];
      } else {
        for (let j = n - 2; j >= 0; j--) {
          const reached = this.#reached[path.prefixes[j]!];
          if (reached !== undefined) {
            cur = reached;
            i = j + 1;
            break;
          }
        }
      }
    }
    while (i < n) {
      if (!isObject(cur)) return undefined;
      const keys = path.joins[i]!;
      // keys[k] joins k + 1 parts, so only an object with a dotted key can hold one with k > 0.
      const undotted = keys.length > 1 && this.#listing && this.#undottedKeys(cur);
      let k = undotted ? 0 : keys.length - 1;
      while (k >= 0 && !Object.hasOwn(cur, keys[k]!)) k--;
      if (k < 0) return undefined;
      cur = cur[keys[k]!];
      if (resumable && undotted && isObject(cur)) this.#reached[path.prefixes[i]!] = cur;
      else resumable = false;
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

/** The arrays of a reader that does not list: never written to. */
const UNUSED: never[] = [];

function hasDottedKey(obj: Json): boolean {
  // Every own key, enumerable or not, as `Object.hasOwn` finds them.
  for (const key of Object.getOwnPropertyNames(obj)) if (key.includes('.')) return true;
  return false;
}

/**
 * A trimmed non-empty string (numbers and booleans as text), or undefined. Over-long strings are
 * dropped. A list gives its first element, as Elasticsearch's `fields` give every value (the
 * caller identity, IP and time are read the same way).
 */
export function str(v: unknown, max = MAX_FIELD): string | undefined {
  if (typeof v === 'string') {
    if (v.length > max) return undefined;
    return trimmed(v);
  }
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v) && v.length > 0 && !Array.isArray(v[0])) return str(v[0], max);
  return undefined;
}

/**
 * Like `str`, for a value only shown to people (a role name, a place, a reason): an over-long
 * string is cut to `max` characters, ending in `…`, instead of dropped, so the alert still says
 * something. The cut never splits a surrogate pair.
 */
export function clipped(v: unknown, max: number): string | undefined {
  if (Array.isArray(v)) return v.length > 0 && !Array.isArray(v[0]) ? clipped(v[0], max) : undefined;
  if (typeof v !== 'string' || v.length <= max) return str(v, max);
  const t = trimmed(cutBefore(v, max - 1));
  return t === undefined ? undefined : `${t}…`;
}

/** The first `n` UTF-16 units of `text`, one fewer where the last would split a surrogate pair. */
export function cutBefore(text: string, n: number): string {
  const last = text.charCodeAt(n - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? n - 1 : n);
}

/**
 * `s` trimmed, or undefined when that leaves nothing. Nearly every value arrives without surrounding
 * white space: two character checks spare the `trim` call. Every character that `trim` removes
 * (white space and line terminators) is at most U+0020 or at least U+00A0.
 */
export function trimmed(s: string): string | undefined {
  const n = s.length;
  if (n === 0) return undefined;
  const first = s.charCodeAt(0);
  const last = s.charCodeAt(n - 1);
  if (first > 0x20 && first < 0xa0 && last > 0x20 && last < 0xa0) return s;
  const t = s.trim();
  return t === '' ? undefined : t;
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

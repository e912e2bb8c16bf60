import type { Keyv } from 'keyv';
import type {
  ClaimGroup,
  ConditionalEntry,
  Expected,
  Found,
  LiveCount,
  LiveMembersQuery,
  StateEntry,
  StateStore,
} from '../core/ports.ts';
import { REV } from '../core/ports.ts';
import type { HeldWrite, RawConditionalEntry, RawConditionalResult } from './conditional-write.ts';
import { deserializeKeyvData, serializeKeyvData } from './keyv-json.ts';
import { describeError, StoreError } from './store-error.ts';

/**
 * The claim and member-set half of a `StateStore`, written against one backend's own atomic
 * primitive. Keys and set names arrive unprefixed and already validated; each implementation
 * puts them in its namespace. `ttlMs` is a positive integer or undefined (never expires).
 */
export interface ClaimsAndSets {
  claim(key: string, ttlMs: number | undefined): Promise<boolean>;
  claimMany(keys: readonly string[], ttlMs: number | undefined): Promise<boolean[]>;
  releaseClaim(key: string): Promise<void>;
  /**
   * Grouped claims kept in one structure per group; without them, `<group>:<key>` claims. Should
   * the call fail, it gives back what it took.
   */
  claimInGroups?(groups: ReadonlyArray<ClaimGroup>, ttlMs: number): Promise<boolean[][]>;
  releaseInGroup?(group: string, key: string): Promise<void>;
  addMembers(set: string, members: readonly string[]): Promise<void>;
  addToSets(entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void>;
  removeMembers(set: string, members: readonly string[]): Promise<void>;
  /**
   * `StateStore.removeGoneMembers` in one step, where the backend can check the values as it
   * removes (`valuePrefix` as the caller gave it); without it, the values are read first.
   */
  removeGoneMembers?(set: string, valuePrefix: string, members: readonly string[]): Promise<void>;
  /** Members of one set in any order. */
  members(set: string): Promise<string[]>;
  /**
   * `StateStore.countLiveMembers` done by the backend itself, where it can do it in one step.
   * `valuePrefix` arrives as the caller gave it; the backend places it among its value keys.
   */
  countLiveMembers?(queries: ReadonlyArray<LiveMembersQuery>, limit: number): Promise<LiveCount[]>;
  /**
   * Members of each set, in any order within a set; same order as `sets`: what the generic
   * `countLiveMembers` reads. Required when the backend does not count by itself.
   */
  membersOfMany?(sets: readonly string[]): Promise<string[][]>;
  ping(): Promise<void>;
  /** Releases this half's resources; the Keyv half is closed separately, after it. */
  close(): Promise<void>;
}

/** Checks a relative TTL and rounds it up to whole milliseconds (Redis PX and SQL want integers). */
function normaliseTtl(ttlMs: number | undefined): number | undefined {
  if (ttlMs === undefined) return undefined;
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new StoreError(
      'STORE_BAD_INPUT',
      `ttlMs must be a positive number of milliseconds or absent (no expiry), got ${String(ttlMs)}`,
    );
  }
  return Math.ceil(ttlMs);
}

function checkKey(key: unknown, what = 'key'): asserts key is string {
  if (typeof key !== 'string' || key === '') {
    throw new StoreError('STORE_BAD_INPUT', `${what} must be a non-empty string, got ${describe(key)}`);
  }
}

const GROUP = /^[A-Za-z0-9_.-]{1,128}$/;

/** A claim group's name: no `:`, so that `<group>:<key>` is never another group's claim. */
function checkGroup(group: unknown, what: string): asserts group is string {
  if (typeof group !== 'string' || !GROUP.test(group)) {
    throw new StoreError(
      'STORE_BAD_INPUT',
      `${what} must be 1-128 letters, digits, "_", "." or "-", got ${typeof group === 'string' ? JSON.stringify(group.slice(0, 40)) : describe(group)}`,
    );
  }
}

function checkExpected(expect: unknown, what: string): asserts expect is Expected | undefined {
  if (expect === undefined || expect === 'absent') return;
  const rev = (expect as { rev?: unknown } | null)?.rev;
  if (
    typeof expect === 'object' &&
    expect !== null &&
    (rev === null || (typeof rev === 'string' && REV.test(rev)))
  ) {
    return;
  }
  throw new StoreError(
    'STORE_BAD_INPUT',
    `${what} must be 'absent' or { rev } with rev null or 1-64 letters, digits, "_", "." or "-", got ${describe(expect)}`,
  );
}

/** Keyv's serialised envelope of an entry's value written at `now`, with its TTL and expiry. */
function envelope(
  entry: Omit<StateEntry, 'key'>,
  now: number,
): { text: string; ttl: number | undefined; expires: number | undefined } {
  const ttl = normaliseTtl(entry.ttlMs);
  const expires = ttl === undefined ? undefined : now + ttl;
  const text = serializeKeyvData(
    expires === undefined ? { value: entry.value } : { value: entry.value, expires },
  );
  return { text, ttl, expires };
}

/** The value of a live serialised envelope, as Keyv reads it (undefined once its own expiry passed). */
function liveValue(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  const data = deserializeKeyvData<{ value?: unknown; expires?: number | null } | null>(text);
  if (data === null || (typeof data.expires === 'number' && data.expires < Date.now())) return undefined;
  return data.value;
}

function checkArray(value: unknown, what: string): void {
  if (!Array.isArray(value)) {
    throw new StoreError('STORE_BAD_INPUT', `${what} must be an array, got ${describe(value)}`);
  }
}

function checkKeys(keys: readonly unknown[], what: string): void {
  checkArray(keys, what);
  for (let i = 0; i < keys.length; i++) checkKey(keys[i], `${what}[${i}]`);
}

/**
 * `target` (an object's methods, or a function) with every failure, thrown or rejected, passed
 * to `fail`.
 */
function guarded<T extends object>(target: T, fail: (error: unknown) => never, retry?: BusyRetry): T {
  const call = (fn: (...args: unknown[]) => unknown, self: unknown, args: unknown[]) => {
    try {
      const out = fn.apply(self, args);
      return out instanceof Promise ? out.catch((error: unknown) => retried(error, fn, self, args)) : out;
    } catch (error) {
      return fail(error);
    }
  };
  /**
   * A call refused because another process holds the lock it needs is made again after a pause,
   * until `retry.forMs` has passed: the backend's own wait blocks the event loop, this one does not.
   */
  const retried = async (
    error: unknown,
    fn: (...args: unknown[]) => unknown,
    self: unknown,
    args: unknown[],
  ) => {
    if (!retry?.when(error)) return fail(error);
    const deadline = performance.now() + retry.forMs;
    let pause = 10;
    let last = error;
    while (performance.now() + pause < deadline) {
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 250);
      try {
        return await fn.apply(self, args);
      } catch (again) {
        if (!retry.when(again)) return fail(again);
        last = again;
      }
    }
    return fail(last);
  };
  return new Proxy(target, {
    apply: (fn, self, args) => call(fn as (...a: unknown[]) => unknown, self, args),
    get(obj, name) {
      const value = Reflect.get(obj, name, obj);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => call(value as (...a: unknown[]) => unknown, obj, args);
    },
  });
}

/** Which failures `guarded` makes again, and for how long. */
interface BusyRetry {
  when: (error: unknown) => boolean;
  forMs: number;
}

function describe(value: unknown): string {
  if (value === '') return 'an empty string';
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : typeof value;
}

/** How a backend fits `KeyvStateStore`. */
export interface KeyvStateStoreOptions {
  /** `StateStore.sharedAcrossProcesses`; default false. */
  sharedAcrossProcesses?: boolean;
  /** `StateStore.acrossNetwork`; default false. */
  acrossNetwork?: boolean;
  /** Closes the Keyv side after the claims and sets; defaults to `keyv.disconnect()`. */
  closeKeyv?: () => Promise<void>;
  /**
   * Whether the backend's `hasMany` honours expiry (SQLite's expiry column, Redis's own TTLs,
   * Keyv's check on a Map); default true. Otherwise `hasMany` reads the values, through which Keyv
   * checks the expiry (@keyv/postgres keeps it inside the value).
   */
  exactHas?: boolean;
  /**
   * Whether a single read goes through the backend's `getMany`, whose delete of a value found
   * expired is the backend's `deleteMany` (PostgreSQL's deletes only a value still expired), never
   * its plain `delete`. Default false: SQLite hands Keyv an expired row only in the millisecond
   * between its own clock reading and Keyv's, and Redis expires its keys itself.
   */
  readOneThroughMany?: boolean;
  /**
   * The backend's range read of serialised rows by full key prefix, when it has one (SQLite);
   * without it `valuesByPrefix` answers undefined.
   */
  rowsByPrefix?: (prefix: string) => Array<[string, string]>;
  /** `StateStore.setManyIfUnchanged` in one atomic step of the backend, on its own keys and values. */
  writeIfUnchanged: (entries: RawConditionalEntry[]) => Promise<RawConditionalResult[]>;
  /**
   * `StateStore.updateManyHeld`, where the backend can hold rows (PostgreSQL, SQLite), on its own keys:
   * `make` gets a key's serialised envelope (undefined: no row) and answers the one to write,
   * with its expiry (as in `RawConditionalEntry`).
   */
  writeHeld?: (keys: string[], make: HeldWrite) => Promise<void>;
  /** Why the backend can no longer be used, when it knows (a SQLite file deleted while open): every call then fails with it. */
  lost?: () => string | undefined;
  /**
   * The last connection error the driver reported, secrets removed (Redis's `WRONGPASS`, say):
   * added to a failure's message, whose own text ("The client is offline") does not say why.
   */
  lastConnectionError?: () => string | undefined;
  /** What an operator should change in the backend's settings (read when `/readyz` asks). */
  warnings?: () => string[];
  /**
   * A failure that says another process holds a lock (SQLite's `SQLITE_BUSY`): such a call is made
   * again, with pauses, for `forMs` before it fails.
   */
  busyRetry?: BusyRetry;
}

/**
 * A `StateStore` whose values go through Keyv (so any Keyv 5 client on the same backend and
 * namespace reads them) and whose claims and sets go through `ClaimsAndSets`. It validates
 * input once here so the backends can stay lean, and refuses calls after `close()`.
 */
export class KeyvStateStore implements StateStore {
  readonly kind: StateStore['kind'];
  readonly sharedAcrossProcesses: boolean;
  readonly acrossNetwork: boolean;
  #keyv: Keyv;
  /** See `KeyvStateStoreOptions.readOneThroughMany`. */
  #readOneThroughMany: boolean;
  #rest: ClaimsAndSets;
  #prefix: string;
  #closeKeyv: () => Promise<void>;
  #closing: Promise<void> | undefined;
  #exactHas: boolean;
  #rows: ((prefix: string) => Array<[string, string]>) | undefined;
  #lost: (() => string | undefined) | undefined;
  #warnings: (() => string[]) | undefined;
  #writeIfUnchanged: (entries: RawConditionalEntry[]) => Promise<RawConditionalResult[]>;
  declare readonly updateManyHeld?: NonNullable<StateStore['updateManyHeld']>;

  /**
   * @param valuePrefix put before every value key (`<namespace>:`), or `''` when the adapter
   *   prefixes keys itself.
   */
  constructor(
    kind: StateStore['kind'],
    keyv: Keyv,
    rest: ClaimsAndSets,
    valuePrefix: string,
    options: KeyvStateStoreOptions,
  ) {
    this.kind = kind;
    this.sharedAcrossProcesses = options.sharedAcrossProcesses ?? false;
    this.acrossNetwork = options.acrossNetwork ?? false;
    const { lastConnectionError } = options;
    // Whatever a driver throws once the store is open (a dropped connection, a locked or full
    // database) reaches the callers as STORE_UNREACHABLE, so that ingest answers 503 and the
    // sender retries, rather than taking the events for bad input.
    const fail = (error: unknown): never => {
      if (error instanceof StoreError) throw error;
      const cause = lastConnectionError?.();
      throw new StoreError(
        'STORE_UNREACHABLE',
        `The ${kind} store failed: ${describeError(error)}${cause ? ` (last connection error: ${cause})` : ''}`,
      );
    };
    this.#keyv = guarded(keyv, fail, options.busyRetry);
    this.#readOneThroughMany =
      options.readOneThroughMany === true &&
      typeof (keyv.store as { getMany?: unknown }).getMany === 'function';
    if (!rest.countLiveMembers && !rest.membersOfMany) {
      throw new TypeError('a ClaimsAndSets needs countLiveMembers or membersOfMany');
    }
    this.#rest = guarded(rest, fail, options.busyRetry);
    this.#prefix = valuePrefix;
    this.#closeKeyv = options.closeKeyv ?? (() => keyv.disconnect());
    this.#exactHas = options.exactHas ?? true;
    this.#rows = options.rowsByPrefix && guarded(options.rowsByPrefix, fail, options.busyRetry);
    this.#lost = options.lost;
    this.#warnings = options.warnings;
    this.#writeIfUnchanged = guarded(options.writeIfUnchanged, fail, options.busyRetry);
    const { writeHeld } = options;
    if (writeHeld) {
      const write = guarded(writeHeld, fail, options.busyRetry);
      this.updateManyHeld = (keys, update) => this.#updateManyHeld(write, keys, update);
    }
  }

  async #updateManyHeld(
    writeHeld: NonNullable<KeyvStateStoreOptions['writeHeld']>,
    keys: readonly string[],
    update: Parameters<NonNullable<StateStore['updateManyHeld']>>[1],
  ): Promise<void> {
    this.#open();
    checkArray(keys, 'keys');
    const seen = new Set<string>();
    keys.forEach((key, i) => {
      checkKey(key, `keys[${i}]`);
      if (seen.has(key)) throw new StoreError('STORE_BAD_INPUT', `keys[${i}] repeats an earlier key`);
      seen.add(key);
    });
    if (keys.length === 0) return;
    const prefix = this.#prefix;
    await writeHeld(
      keys.map((key) => prefix + key),
      (rawKey, text) => {
        const entry = update(rawKey.slice(prefix.length), liveValue(text));
        return entry === undefined ? undefined : envelope(entry, Date.now());
      },
    );
  }

  warnings(): string[] {
    return this.#warnings?.() ?? [];
  }

  #open(): void {
    if (this.#closing) throw new StoreError('STORE_CLOSED', `The ${this.kind} state store is closed`);
    const lost = this.#lost?.();
    if (lost !== undefined) throw new StoreError('STORE_UNREACHABLE', lost);
  }

  async get<T>(key: string): Promise<T | undefined> {
    this.#open();
    checkKey(key);
    if (!this.#readOneThroughMany) return this.#keyv.get<T>(this.#prefix + key);
    const [value] = await this.#keyv.getMany<T>([this.#prefix + key]);
    return value;
  }

  async getMany<T>(keys: readonly string[]): Promise<Array<T | undefined>> {
    this.#open();
    checkKeys(keys, 'keys');
    if (keys.length === 0) return [];
    const prefix = this.#prefix;
    return this.#keyv.getMany<T>(keys.map((key) => prefix + key));
  }

  async valuesByPrefix<T>(prefix: string): Promise<Array<[string, T]> | undefined> {
    this.#open();
    checkKey(prefix, 'prefix');
    if (this.#rows === undefined) return undefined;
    const cut = this.#prefix.length;
    const now = Date.now();
    // The rows become the answer in place: no second array per row.
    const rows = this.#rows(this.#prefix + prefix) as unknown as Array<[string, unknown]>;
    let kept = 0;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      // The same checks Keyv makes on a read: its envelope may carry an expiry of its own.
      const data = deserializeKeyvData<{ value?: T; expires?: number | null } | null>(row[1] as string);
      if (data === null || data.value === undefined) continue;
      if (typeof data.expires === 'number' && data.expires < now) continue;
      row[0] = row[0].slice(cut);
      row[1] = data.value;
      rows[kept++] = row;
    }
    rows.length = kept;
    return rows as Array<[string, T]>;
  }

  async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
    this.#open();
    checkKey(key);
    await this.#keyv.set(this.#prefix + key, value, normaliseTtl(ttlMs));
  }

  async setMany(entries: readonly StateEntry[]): Promise<void> {
    this.#open();
    checkArray(entries, 'entries');
    if (entries.length === 0) return;
    const batch = new Array<{ key: string; value: unknown; ttl?: number }>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      checkKey(entry?.key, `entries[${i}].key`);
      const ttl = normaliseTtl(entry.ttlMs);
      const key = this.#prefix + entry.key;
      batch[i] = ttl === undefined ? { key, value: entry.value } : { key, value: entry.value, ttl };
    }
    await this.#keyv.setMany(batch);
  }

  async setManyIfUnchanged(entries: readonly ConditionalEntry[]): Promise<Array<true | Found>> {
    this.#open();
    checkArray(entries, 'entries');
    if (entries.length === 0) return [];
    const keys = new Set<string>();
    const now = Date.now();
    const raw = entries.map((entry, i): RawConditionalEntry => {
      checkKey(entry?.key, `entries[${i}].key`);
      if (keys.has(entry.key)) {
        throw new StoreError('STORE_BAD_INPUT', `entries[${i}].key repeats an earlier entry's key`);
      }
      keys.add(entry.key);
      checkExpected(entry.expect, `entries[${i}].expect`);
      return { key: this.#prefix + entry.key, ...envelope(entry, now), expect: entry.expect };
    });
    const results = await this.#writeIfUnchanged(raw);
    const out = results.map((r): true | Found =>
      r === true ? true : { value: r ? liveValue(r.text) : undefined },
    );
    // What the backend could not read in the same step, read just after.
    const unread = results.flatMap((r, i) => (r === false ? [i] : []));
    if (unread.length > 0) {
      const values = await this.#keyv.getMany<unknown>(unread.map((i) => raw[i]!.key));
      unread.forEach((i, k) => {
        out[i] = { value: values[k] };
      });
    }
    return out;
  }

  async delete(key: string): Promise<boolean> {
    this.#open();
    checkKey(key);
    return this.#keyv.delete(this.#prefix + key);
  }

  async claim(key: string, ttlMs?: number): Promise<boolean> {
    this.#open();
    checkKey(key);
    return this.#rest.claim(key, normaliseTtl(ttlMs));
  }

  async claimMany(keys: readonly string[], ttlMs?: number): Promise<boolean[]> {
    this.#open();
    checkKeys(keys, 'keys');
    const ttl = normaliseTtl(ttlMs);
    if (keys.length === 0) return [];
    return this.#rest.claimMany(keys, ttl);
  }

  async releaseClaim(key: string): Promise<void> {
    this.#open();
    checkKey(key);
    await this.#rest.releaseClaim(key);
  }

  async claimInGroups(groups: ReadonlyArray<ClaimGroup>, ttlMs: number): Promise<boolean[][]> {
    this.#open();
    checkArray(groups, 'groups');
    groups.forEach((g, i) => {
      checkGroup(g?.group, `groups[${i}].group`);
      checkKeys(g.keys, `groups[${i}].keys`);
    });
    const ttl = normaliseTtl(ttlMs);
    if (ttl === undefined) throw new StoreError('STORE_BAD_INPUT', 'a grouped claim needs a TTL');
    if (groups.every((g) => g.keys.length === 0)) return groups.map(() => []);
    if (this.#rest.claimInGroups) return this.#rest.claimInGroups(groups, ttl);
    // One claimMany: one transaction (SQLite) or statement (PostgreSQL), so all or nothing.
    const won = await this.#rest.claimMany(
      groups.flatMap((g: ClaimGroup) => g.keys.map((key: string) => `${g.group}:${key}`)),
      ttl,
    );
    let k = 0;
    return groups.map((g: ClaimGroup) => g.keys.map(() => won[k++]!));
  }

  async releaseInGroup(group: string, key: string): Promise<void> {
    this.#open();
    checkGroup(group, 'group');
    checkKey(key);
    if (this.#rest.releaseInGroup) await this.#rest.releaseInGroup(group, key);
    else await this.#rest.releaseClaim(`${group}:${key}`);
  }

  async addMembers(set: string, members: readonly string[]): Promise<void> {
    this.#open();
    checkKey(set, 'set');
    checkKeys(members, 'members');
    if (members.length > 0) await this.#rest.addMembers(set, members);
  }

  async addToSets(entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void> {
    this.#open();
    checkArray(entries, 'entries');
    entries.forEach((entry, i) => {
      if (!Array.isArray(entry) || entry.length !== 2) {
        throw new StoreError('STORE_BAD_INPUT', `entries[${i}] must be a [set, member] pair`);
      }
      checkKey(entry[0], `entries[${i}] set`);
      checkKey(entry[1], `entries[${i}] member`);
    });
    const ttl = normaliseTtl(ttlMs);
    if (entries.length > 0) await this.#rest.addToSets(entries, ttl);
  }

  async removeMembers(set: string, members: readonly string[]): Promise<void> {
    this.#open();
    checkKey(set, 'set');
    checkKeys(members, 'members');
    if (members.length > 0) await this.#rest.removeMembers(set, members);
  }

  async removeGoneMembers(set: string, valuePrefix: string, members: readonly string[]): Promise<void> {
    this.#open();
    checkKey(set, 'set');
    checkKey(valuePrefix, 'valuePrefix');
    checkKeys(members, 'members');
    await this.#removeGone(set, valuePrefix, members);
  }

  /** `removeGoneMembers` on checked input. */
  async #removeGone(set: string, valuePrefix: string, members: readonly string[]): Promise<void> {
    if (members.length === 0) return;
    if (this.#rest.removeGoneMembers) return this.#rest.removeGoneMembers(set, valuePrefix, members);
    const found = await this.#hasMany(members.map((m) => valuePrefix + m));
    const gone = members.filter((_, i) => !found[i]);
    if (gone.length > 0) await this.#rest.removeMembers(set, gone);
  }

  /** Members of `set`, sorted, so every backend answers alike. */
  async members(set: string): Promise<string[]> {
    this.#open();
    checkKey(set, 'set');
    const list = await this.#rest.members(set);
    return list.sort();
  }

  async countLiveMembers(queries: ReadonlyArray<LiveMembersQuery>, limit: number): Promise<LiveCount[]> {
    this.#open();
    checkArray(queries, 'queries');
    queries.forEach((q, i) => {
      checkKey(q?.set, `queries[${i}].set`);
      checkKey(q.valuePrefix, `queries[${i}].valuePrefix`);
    });
    if (!Number.isInteger(limit) || limit < 0) {
      throw new StoreError('STORE_BAD_INPUT', `limit must be a whole number, got ${String(limit)}`);
    }
    if (queries.length === 0) return [];
    if (this.#rest.countLiveMembers) return this.#rest.countLiveMembers(queries, limit);
    // Generic: the members in one call, their values' presence in another, the gone ones removed.
    // The constructor made sure that a backend without its own count has this.
    const lists = await this.#rest.membersOfMany!(queries.map((q) => q.set));
    // A large set is checked on a random sample of `limit` members.
    const checked = lists.map((list) => randomSample(list, limit));
    const keys: string[] = [];
    queries.forEach((q, i) => {
      for (const m of checked[i]!) keys.push(q.valuePrefix + m);
    });
    const found = keys.length > 0 ? await this.#hasMany(keys) : [];
    let k = 0;
    const removals: Array<Promise<void>> = [];
    const counts = queries.map((q, i) => {
      const gone: string[] = [];
      let live = 0;
      for (const m of checked[i]!) {
        if (found[k++]) live++;
        else gone.push(m);
      }
      if (gone.length > 0) removals.push(this.#removeGone(q.set, q.valuePrefix, gone));
      const size = lists[i]!.length;
      return { count: estimateLive(size, checked[i]!.length, live), sampled: size > limit };
    });
    await Promise.all(removals);
    return counts;
  }

  /** Whether each key (already checked) holds a live value, without reading the values where it can. */
  async #hasMany(keys: readonly string[]): Promise<boolean[]> {
    const prefix = this.#prefix;
    const prefixed = keys.map((key) => prefix + key);
    if (this.#exactHas) return this.#keyv.hasMany(prefixed);
    return (await this.#keyv.getMany(prefixed)).map((value) => value !== undefined);
  }

  async ping(): Promise<void> {
    this.#open();
    await this.#rest.ping();
  }

  /** Closes the backend connections. Safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#rest.close();
      } finally {
        await this.#closeKeyv();
      }
    })();
    return this.#closing;
  }
}

/**
 * The live members of a set of `size`, of which `checked` were checked and `live` found live: exact
 * when every member was checked, else the sample's share of live members applied to the rest.
 */
function estimateLive(size: number, checked: number, live: number): number {
  if (checked >= size || checked === 0) return live;
  return live + Math.round(((size - checked) * live) / checked);
}

/** `n` members of `list` drawn at random without repeats, or all of them when it has no more. */
function randomSample<T>(list: readonly T[], n: number): readonly T[] {
  if (list.length <= n) return list;
  const copy = list.slice();
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(Math.random() * (copy.length - i));
    const t = copy[i]!;
    copy[i] = copy[j]!;
    copy[j] = t;
  }
  return copy.slice(0, n);
}

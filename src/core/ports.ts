import type { AlertRecord, AlertRepeat } from './alert.ts';
import type { AutonomousSystem, Geo } from './detection.ts';

/**
 * The few interfaces the platform-free core talks to. Their implementations live in the adapter
 * folders (`src/store`, `src/slack`, `src/azure`, `src/http`).
 */

/** One entry for `StateStore.setMany`. `ttlMs` is relative; absent means no expiry. */
export interface StateEntry {
  key: string;
  value: unknown;
  ttlMs?: number;
}

/** Keys to claim in one group (`StateStore.claimInGroups`). */
export interface ClaimGroup {
  group: string;
  keys: readonly string[];
}

/** What `StateStore.countLiveMembers` answers for one set. */
export interface LiveCount {
  count: number;
  /** The set was larger than the limit: `count` is estimated from a random sample. */
  sampled: boolean;
}

/** One set for `StateStore.countLiveMembers`. */
export interface LiveMembersQuery {
  set: string;
  /** The value of member `m` lives at key `valuePrefix + m`. */
  valuePrefix: string;
}

/** Reading values by key (Keyv's part of the store). */
export interface ValueReads {
  get<T>(key: string): Promise<T | undefined>;
  /** Same order as `keys`; missing or expired entries are `undefined`. */
  getMany<T>(keys: readonly string[]): Promise<Array<T | undefined>>;
  /**
   * Every live value whose key starts with `prefix`, as `[key, value]` in key order, read as one
   * range of the backend's key index (never a scan of the store). `undefined` when the backend
   * has no ordered key index (Redis) or none this store can range over reliably: the caller then
   * goes through a member set.
   */
  valuesByPrefix<T>(prefix: string): Promise<Array<[key: string, value: T]> | undefined>;
}

/** Writing values by key. */
export interface ValueWrites {
  set(key: string, value: unknown, ttlMs?: number): Promise<void>;
  setMany(entries: readonly StateEntry[]): Promise<void>;
  delete(key: string): Promise<boolean>;
}

/** Values by key, read and written. */
export type Values = ValueReads & ValueWrites;

/**
 * What a conditional write finds at its key before it writes: no live value (`'absent'`), or a
 * live value whose `rev` field is `rev` (`null`: a value without one). A `rev` is 1-64 letters,
 * digits, `_`, `.` or `-`, and a value holds it as its own top-level string field.
 */
export type Expected = 'absent' | { rev: string | null };

/** What a `rev` is: nothing JSON escapes, so it reads the same in a value's serialised text. */
export const REV = /^[A-Za-z0-9._-]{1,64}$/;

/** One entry for `ConditionalWrites.setManyIfUnchanged`: written only if its key holds `expect`. */
export interface ConditionalEntry extends StateEntry {
  /** Without it (or undefined), the entry is written whatever the key holds. */
  expect?: Expected | undefined;
}

/** What a conditional write found at a key it did not write (`value` undefined: no live value). */
export interface Found {
  value: unknown;
}

/**
 * Conditional rounds lost in a row after which a writer on a store that can hold its keys
 * (`updateManyHeld`: PostgreSQL, SQLite) writes the rest with them held. On PostgreSQL, whose
 * writers wait for each other's row locks, the loser of one round is then behind by one
 * statement, and two processes writing one pair back to back kept one of them losing for 15 to
 * 20 rounds now and then.
 */
export const HOLD_AFTER = 3;

/** Writing values only over what the writer read: how processes sharing a store merge rather than overwrite. */
export interface ConditionalWrites {
  /**
   * Writes every entry whose key holds what it expects, all in one atomic step (one script in
   * Redis, one statement or transaction in SQL): a value another process wrote since it was read
   * is never overwritten. Answers per entry `true` when it was written, or what the key held
   * instead: read in the same step where the backend can (Redis, SQLite; PostgreSQL for a row that
   * existed as the statement began), just after otherwise.
   * Keys must differ.
   */
  setManyIfUnchanged(entries: readonly ConditionalEntry[]): Promise<Array<true | Found>>;
  /**
   * Where the backend can hold keys while the caller works out what to write (PostgreSQL: one
   * transaction that locks their rows; SQLite: one write transaction): reads each key's live
   * value (undefined: none), writes what `update` makes of it (undefined: nothing), and lets go,
   * with no other write in between. For a writer that lost several conditional rounds in a row to
   * one that writes the same keys without pause. Keys must differ. `update` may be asked more
   * than once for a key (the backend tries again after a deadlock, a busy database, or a row made
   * meanwhile): its last answer is written.
   */
  updateManyHeld?(
    keys: readonly string[],
    update: (key: string, current: unknown) => Omit<StateEntry, 'key'> | undefined,
  ): Promise<void>;
}

/** Atomic claims (set-if-absent), the first primitive Keyv lacks. */
export interface Claims {
  /**
   * Atomically takes `key` if it is absent or expired: true for exactly one caller, across
   * processes sharing the backend (SET NX in Redis, INSERT ... ON CONFLICT in SQL).
   */
  claim(key: string, ttlMs?: number): Promise<boolean>;
  /** `claim` for many keys at once; a key repeated in `keys` is won at most once. */
  claimMany(keys: readonly string[], ttlMs?: number): Promise<boolean[]>;
  /** Gives a claim back so that it can be taken again. */
  releaseClaim(key: string): Promise<void>;
}

/** Claims kept in groups, as the backend stores many short-lived claims best. */
export interface GroupedClaims {
  /**
   * `claimMany` for keys in groups, stored as the backend stores a group best (Redis: one hash
   * per group rather than one key per claim, in less than half the time). A grouped claim is held at
   * least `ttlMs` and lives as long as its group: a group expires `ttlMs` after the last call that
   * claimed in it. Elsewhere it is the claim of `<group>:<key>`, in the key space of `claim`.
   * Group names are letters, digits, `_`, `.` and `-`. Should the call fail, none of the claims it
   * took stays held. Answers per group, in order, one boolean per key.
   */
  claimInGroups(groups: ReadonlyArray<ClaimGroup>, ttlMs: number): Promise<boolean[][]>;
  /** Gives a grouped claim back. */
  releaseInGroup(group: string, key: string): Promise<void>;
}

/** Member sets, the second primitive Keyv lacks: what lets one identity's pairs be listed. */
export interface MemberSets {
  addMembers(set: string, members: readonly string[]): Promise<void>;
  /**
   * Adds `[set, member]` pairs to many sets in one round trip (one transaction in SQL). With
   * `ttlMs`, each set lasts at least that long from now, then goes whole where the backend
   * expires keys (Redis); elsewhere its dead members are pruned as they are found.
   */
  addToSets(entries: ReadonlyArray<readonly [set: string, member: string]>, ttlMs?: number): Promise<void>;
  removeMembers(set: string, members: readonly string[]): Promise<void>;
  /**
   * Removes those of `members` whose value at `valuePrefix + member` is gone, checked as they are
   * removed (in one step where the backend allows it): what a reader that found them without a
   * value calls. A member is added before its value is written and added again after it, so a
   * member whose value was written meanwhile stays, or comes back at once.
   */
  removeGoneMembers(set: string, valuePrefix: string, members: readonly string[]): Promise<void>;
  /** Members of one set, read through an index: never a scan of the whole store. */
  members(set: string): Promise<string[]>;
}

/** Counting the members of sets that still have a value. */
export interface LiveMembers {
  /**
   * For each query, how many members of `set` have a live value at `valuePrefix + member`; members
   * whose value is gone (expired) are removed from the set on the way. Of a set of more than
   * `limit` members, a random sample of `limit` is checked (and its gone members removed), and the
   * count of the rest is estimated from it: each call bounds its work, and the set shrinks to its
   * live members over calls.
   */
  countLiveMembers(queries: ReadonlyArray<LiveMembersQuery>, limit: number): Promise<LiveCount[]>;
}

/** What the backend is, whether it answers, and its end. */
export interface StoreLifecycle {
  /** The backend, for messages and `/readyz`: the core decides nothing by it. */
  readonly kind: 'sqlite' | 'memory' | 'redis' | 'postgres';
  /**
   * Other processes may read and write the same data (a SQLite file, Redis, PostgreSQL): another
   * delivery of an event may be at work elsewhere at the same moment.
   */
  readonly sharedAcrossProcesses: boolean;
  /**
   * Calls cross a network (Redis, PostgreSQL): each costs a round trip, and the answers of calls in
   * flight together may come back in any order (a connection pool).
   */
  readonly acrossNetwork: boolean;
  /** Resolves when the backend answers; rejects with the reason otherwise. */
  ping(): Promise<void>;
  /** What an operator should change in the backend's settings (a Redis that evicts keys, say). */
  warnings?(): string[];
  close(): Promise<void>;
}

/**
 * Key-value state with the two primitives Keyv lacks: an atomic claim (set-if-absent) and
 * member sets (so one identity's pairs can be listed without scanning the store).
 * Keys are plain strings; each backend namespaces them. Values are JSON-serialisable.
 * Three key spaces are separate: values (`get`/`set`), claims and sets. Every store implements
 * every role; each part of the code asks only for the roles it uses.
 */
export interface StateStore
  extends ValueReads,
    ValueWrites,
    ConditionalWrites,
    Claims,
    GroupedClaims,
    MemberSets,
    LiveMembers,
    StoreLifecycle {}

/**
 * Where an IP address is, from local GeoIP databases (never a remote service: the addresses are
 * evidence). Lookups are synchronous and cheap; parts it does not know are left out.
 */
export interface GeoLocator {
  locate(ip: string): { geo?: Geo; as?: AutonomousSystem };
  /** Stops watching the database files. */
  close?(): void;
}

/**
 * The `code` of an error an `AlertSink` throws when the same alert is being delivered elsewhere
 * (another replica, or an attempt cut short that has not lapsed yet): no failure, just not now.
 */
export const DELIVERY_IN_PROGRESS = 'post_in_progress';

/** What Slack (or another chat) is asked to do with an alert. */
export interface AlertSink {
  /**
   * Posts a new alert; returns a reference (e.g. channel and message ts) for later updates.
   * Rejects with an error whose `code` is `DELIVERY_IN_PROGRESS` while another attempt holds it.
   */
  post(alert: AlertRecord): Promise<{ ref: string }>;
  /** Updates a posted alert in place (repeat counts, last seen, allowlist state). */
  repeat(ref: string, alert: AlertRecord, repeat: AlertRepeat): Promise<void>;
}

/** Durable hand-off from the engine to the chat side. */
export interface Outbox {
  /** Stores pending alerts and repeats durably; resolves only once they are stored. */
  add(alerts: readonly AlertRecord[], repeats: readonly AlertRepeat[]): Promise<void>;
  /**
   * Whether each alert (by id, in order) was handed over already: pending, or delivered within the
   * chat reference's life. An outbox that cannot tell leaves it out.
   */
  holds?(alertIds: readonly string[]): Promise<boolean[]>;
}

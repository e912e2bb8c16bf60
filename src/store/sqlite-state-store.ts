import { realpathSync, statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { StatementSync } from 'node:sqlite';
import type { StateStore } from '../core/ports.ts';
import { createKeyv } from './create-keyv.ts';
import { type ClaimsAndSets, KeyvStateStore } from './keyv-state-store.ts';
import {
  expiredRowsStep,
  immediateTransaction,
  readTransaction,
  type SqliteCheckpointMode,
  SqliteKeyvStore,
  SWEEP_CATCH_UP_MS,
  SWEEP_STEP_ROWS,
  startTableSweep,
} from './sqlite-keyv-store.ts';
import { StoreError } from './store-error.ts';
import type { Sweeper, SweepResult } from './sweeper.ts';

/** Options of `openSqliteStateStore`. */
export interface SqliteStateStoreOptions {
  /** Database file (its directory is created) or `:memory:`. */
  path: string;
  /** Prefix of every key, claim and set name in this store. */
  namespace: string;
  /** How often expired values and claims are swept, in ms; 0 turns it off. Default 60000. */
  sweepIntervalMs?: number;
  /** How soon a sweep follows one that found many expired rows, in ms. Default 5000. */
  sweepCatchUpMs?: number;
  /** WAL checkpoints on a worker thread (`background`, the default) or inside commits (`inline`). */
  checkpoint?: SqliteCheckpointMode;
  /** How often the file is checked to be the one opened, in ms. Default 2000. */
  fileCheckMs?: number;
  /** How long a call goes on trying while another process holds the write lock, in ms. Default 5000. */
  busyWaitMs?: number;
  /** Free space on the file's disk under which `/readyz` warns, in bytes. Default 64 MiB. */
  lowDiskBytes?: number;
}

const LOW_DISK_BYTES = 64 * 1024 * 1024;

/** `path` with its symbolic links resolved, or as it is when it does not exist (yet). */
function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * A warning when the disk that holds `path` has less than `below` bytes free: a full disk refuses
 * every ingest write, while the store may still pass a small write into space it holds already.
 */
function diskWarnings(path: string, below: number): string[] {
  if (path === ':memory:') return [];
  let free: number;
  try {
    // The disk of the file itself, also when `path` is a symbolic link to another disk.
    const fs = statfsSync(dirname(realpathOr(path)));
    free = fs.bavail * fs.bsize;
  } catch {
    return []; // the store's own checks say what is wrong with the directory
  }
  if (free >= below) return [];
  const mb = (free / 1024 / 1024).toFixed(1);
  return [
    `the disk that holds the SQLite store has ${mb} MB free: once it is full, ingest answers 503 (free space, or move STORE_URL to a larger disk)`,
  ];
}

/** How long one try waits in SQLite for another process's write lock (blocking the event loop). */
const BUSY_TIMEOUT_MS = 50;
/** How long a call goes on trying while another process holds the write lock. */
const BUSY_WAIT_MS = 5000;

/** `SQLITE_BUSY` (or one of its extended codes): another connection holds the lock. */
function isSqliteBusy(error: unknown): boolean {
  const code = (error as { errcode?: unknown } | undefined)?.errcode;
  return typeof code === 'number' ? (code & 0xff) === 5 : /database is locked/i.test(String(error));
}

/** Claims: one row per taken key; `expires` NULL means held until released. */
const CLAIMS_TABLE = 'arc_claims';
/** Member sets: the primary key doubles as the index that `members(set)` reads. */
const MEMBERS_TABLE = 'arc_members';

class SqliteClaimsAndSets implements ClaimsAndSets {
  #adapter: SqliteKeyvStore;
  #prefix: string;
  #claim: StatementSync;
  #release: StatementSync;
  #add: StatementSync;
  #remove: StatementSync;
  #removeGone: StatementSync;
  #list: StatementSync;
  #ping: StatementSync;
  #sweepers: Sweeper[] = [];

  constructor(adapter: SqliteKeyvStore, namespace: string, sweepIntervalMs: number, sweepCatchUpMs: number) {
    const { db } = adapter;
    this.#adapter = adapter;
    this.#prefix = `${namespace}:`;
    // WITHOUT ROWID: small rows looked up by key only, so one B-tree instead of table + index.
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${CLAIMS_TABLE} (key TEXT PRIMARY KEY, expires INTEGER) WITHOUT ROWID`,
    );
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${MEMBERS_TABLE} (set_key TEXT NOT NULL, member TEXT NOT NULL,
       PRIMARY KEY (set_key, member)) WITHOUT ROWID`,
    );
    // The conflict branch only fires for an expired claim, so `changes` is 1 exactly when this
    // caller took the key; SQLite's single writer makes that atomic across processes too.
    this.#claim = db.prepare(
      `INSERT INTO ${CLAIMS_TABLE} (key, expires) VALUES (?, ?)
       ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE ${CLAIMS_TABLE}.expires <= ?`,
    );
    this.#release = db.prepare(`DELETE FROM ${CLAIMS_TABLE} WHERE key = ?`);
    this.#add = db.prepare(
      `INSERT INTO ${MEMBERS_TABLE} (set_key, member) VALUES (?, ?) ON CONFLICT DO NOTHING`,
    );
    this.#remove = db.prepare(`DELETE FROM ${MEMBERS_TABLE} WHERE set_key = ? AND member = ?`);
    this.#removeGone = db.prepare(
      `DELETE FROM ${MEMBERS_TABLE} WHERE set_key = ? AND member = ? AND NOT EXISTS (
         SELECT 1 FROM ${adapter.table} WHERE key = ? AND (expires IS NULL OR expires > ?))`,
    );
    this.#list = db.prepare(`SELECT member FROM ${MEMBERS_TABLE} WHERE set_key = ?`);
    this.#list.setReturnArrays(true);
    this.#ping = db.prepare('SELECT 1');
    if (sweepIntervalMs > 0) {
      const claims = expiredRowsStep(db, CLAIMS_TABLE);
      // Another process holding the write lock past the busy timeout only delays the sweep; the
      // next tick carries on from the same place.
      this.#sweepers = [() => claims(), identityIndexStep(adapter, this.#prefix)].map((step) =>
        startTableSweep(step, sweepIntervalMs, sweepCatchUpMs, () => {}),
      );
    }
  }

  async claim(key: string, ttlMs: number | undefined): Promise<boolean> {
    const now = Date.now();
    const expires = ttlMs === undefined ? null : now + ttlMs;
    return Number(this.#claim.run(this.#prefix + key, expires, now).changes) === 1;
  }

  /** All keys in one write transaction; a repeated key finds its own fresh row and loses. */
  async claimMany(keys: readonly string[], ttlMs: number | undefined): Promise<boolean[]> {
    const now = Date.now();
    const expires = ttlMs === undefined ? null : now + ttlMs;
    const stmt = this.#claim;
    const prefix = this.#prefix;
    const won = new Array<boolean>(keys.length);
    immediateTransaction(this.#adapter.db, () => {
      for (let i = 0; i < keys.length; i++) {
        won[i] = Number(stmt.run(prefix + keys[i], expires, now).changes) === 1;
      }
    });
    return won;
  }

  async releaseClaim(key: string): Promise<void> {
    this.#release.run(this.#prefix + key);
  }

  async addMembers(set: string, members: readonly string[]): Promise<void> {
    const setKey = this.#prefix + set;
    const stmt = this.#add;
    immediateTransaction(this.#adapter.db, () => {
      for (const member of members) stmt.run(setKey, member);
    });
  }

  async addToSets(entries: ReadonlyArray<readonly [string, string]>): Promise<void> {
    const prefix = this.#prefix;
    const stmt = this.#add;
    immediateTransaction(this.#adapter.db, () => {
      for (const [set, member] of entries) stmt.run(prefix + set, member);
    });
  }

  async removeMembers(set: string, members: readonly string[]): Promise<void> {
    const setKey = this.#prefix + set;
    const stmt = this.#remove;
    immediateTransaction(this.#adapter.db, () => {
      for (const member of members) stmt.run(setKey, member);
    });
  }

  /** One write transaction, so no value can be written between its check and its removal. */
  async removeGoneMembers(set: string, valuePrefix: string, members: readonly string[]): Promise<void> {
    const setKey = this.#prefix + set;
    const values = this.#prefix + valuePrefix;
    const stmt = this.#removeGone;
    const now = Date.now();
    immediateTransaction(this.#adapter.db, () => {
      for (const member of members) stmt.run(setKey, member, values + member, now);
    });
  }

  async members(set: string): Promise<string[]> {
    const rows = this.#list.all(this.#prefix + set) as unknown as Array<[string]>;
    return rows.map((row) => row[0]);
  }

  /** One read transaction: one consistent snapshot for every set. */
  async membersOfMany(sets: readonly string[]): Promise<string[][]> {
    const stmt = this.#list;
    const prefix = this.#prefix;
    const out = new Array<string[]>(sets.length);
    const { db } = this.#adapter;
    readTransaction(db, () => {
      for (let i = 0; i < sets.length; i++) {
        const rows = stmt.all(prefix + sets[i]) as unknown as Array<[string]>;
        out[i] = rows.map((row) => row[0]);
      }
    });
    return out;
  }

  async ping(): Promise<void> {
    this.#ping.get();
  }

  async close(): Promise<void> {
    for (const sweeper of this.#sweepers.splice(0)) sweeper.stop();
  }
}

/**
 * The sweep of the identity index's rows (`ident:<appid>` → IP) whose pair (`pair:<appid>:<ip>`)
 * no longer lives, so that the index of identities never listed again does not outlive their
 * pairs (reads find an identity's pairs by key range here, so nothing else prunes it). Each call
 * walks the next `SWEEP_STEP_ROWS` rows in key order (its own short write); `done` once a step
 * passed the index's end, and the next call starts over. Its statements are prepared once.
 */
export function identityIndexStep(adapter: SqliteKeyvStore, prefix: string): (now?: number) => SweepResult {
  const { db } = adapter;
  const first = `${prefix}ident:`;
  // ';' sorts right after ':': every set key of this namespace's identities lies before it.
  const end = `${prefix}ident;`;
  const boundary = db.prepare(
    `SELECT set_key, member FROM ${MEMBERS_TABLE} WHERE (set_key, member) > (?, ?) AND set_key < ?
     ORDER BY set_key, member LIMIT 1 OFFSET ?`,
  );
  boundary.setReturnArrays(true);
  const gone = `NOT EXISTS (SELECT 1 FROM ${adapter.table} v
     WHERE v.key = ? || substr(${MEMBERS_TABLE}.set_key, ?) || ':' || ${MEMBERS_TABLE}.member
       AND (v.expires IS NULL OR v.expires > ?))`;
  const removeRange = db.prepare(
    `DELETE FROM ${MEMBERS_TABLE} WHERE (set_key, member) > (?, ?) AND (set_key, member) <= (?, ?) AND ${gone}`,
  );
  const removeTail = db.prepare(
    `DELETE FROM ${MEMBERS_TABLE} WHERE (set_key, member) > (?, ?) AND set_key < ? AND ${gone}`,
  );
  const pairPrefix = `${prefix}pair:`;
  const appIdAt = first.length + 1;
  let cursor: readonly [setKey: string, member: string] = [first, ''];
  return (now = Date.now()) => {
    const last = boundary.get(cursor[0], cursor[1], end, SWEEP_STEP_ROWS - 1) as unknown as
      | [string, string]
      | undefined;
    if (last === undefined) {
      const deleted = Number(removeTail.run(cursor[0], cursor[1], end, pairPrefix, appIdAt, now).changes);
      cursor = [first, ''];
      return { done: true, deleted };
    }
    const deleted = Number(
      removeRange.run(cursor[0], cursor[1], last[0], last[1], pairPrefix, appIdAt, now).changes,
    );
    cursor = last;
    return { done: false, deleted };
  };
}

/**
 * Opens the embedded SQLite state store: values through Keyv over `SqliteKeyvStore`, claims and
 * member sets in their own tables of the same file. Several processes may share the file.
 */
export function openSqliteStateStore(options: SqliteStateStoreOptions): StateStore {
  const sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
  let adapter: SqliteKeyvStore;
  try {
    adapter = new SqliteKeyvStore({
      path: options.path,
      // SQLite's own wait for another process's write lock blocks the event loop: it is kept
      // short, and the wait goes on between tries (`busyRetry` below), with the loop free.
      busyTimeoutMs: BUSY_TIMEOUT_MS,
      sweepIntervalMs,
      ...(options.sweepCatchUpMs !== undefined ? { sweepCatchUpMs: options.sweepCatchUpMs } : {}),
      ...(options.checkpoint ? { checkpoint: options.checkpoint } : {}),
      ...(options.fileCheckMs !== undefined ? { fileCheckMs: options.fileCheckMs } : {}),
    });
  } catch (error) {
    const reason = (error as Error).message;
    // SQLite's own wording does not say where to look.
    const hint = /unable to open database file/i.test(reason)
      ? isDirectory(options.path)
        ? ' (it is a directory: give the path of a file in it, such as sqlite://./data/arc-responder.db)'
        : ' (is its directory writable?)'
      : '';
    throw new StoreError(
      'STORE_UNREACHABLE',
      `Cannot open the SQLite database "${options.path}": ${reason}${hint}`,
    );
  }
  let rest: SqliteClaimsAndSets;
  try {
    rest = new SqliteClaimsAndSets(
      adapter,
      options.namespace,
      sweepIntervalMs,
      options.sweepCatchUpMs ?? SWEEP_CATCH_UP_MS,
    );
  } catch (error) {
    void adapter.disconnect();
    throw new StoreError(
      'STORE_UNREACHABLE',
      `Cannot prepare the SQLite database "${options.path}": ${(error as Error).message}`,
    );
  }
  const keyv = createKeyv(adapter, options.namespace);
  return new KeyvStateStore('sqlite', keyv, rest, `${options.namespace}:`, {
    // Replicas on one host may open the same file; their calls stay in this process.
    sharedAcrossProcesses: true,
    acrossNetwork: false,
    rowsByPrefix: (prefix) => adapter.rowsByPrefix(prefix),
    writeIfUnchanged: async (entries) => adapter.writeIfUnchanged(entries),
    writeHeld: async (keys, make) => adapter.writeHeld(keys, make),
    lost: () => adapter.lost(),
    busyRetry: { when: isSqliteBusy, forMs: options.busyWaitMs ?? BUSY_WAIT_MS },
    warnings: () => diskWarnings(options.path, options.lowDiskBytes ?? LOW_DISK_BYTES),
  });
}

/** Whether `path` names an existing directory. */
function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

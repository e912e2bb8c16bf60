import { EventEmitter } from 'node:events';
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import type { KeyvStoreAdapter, StoredData } from 'keyv';
import {
  type HeldWrite,
  type RawConditionalEntry,
  type RawConditionalResult,
  REV_FIELD,
  revNeedle,
} from './conditional-write.ts';
import { escapeLike } from './escape-like.ts';
import { type Sweeper, type SweepResult, type SweepStep, startSweeper } from './sweeper.ts';

/** Where the embedded history lives when nothing else is configured. */
const DEFAULT_SQLITE_PATH = './data/arc-responder.db';

/** Options of `SqliteKeyvStore`. */
export interface SqliteKeyvStoreOptions {
  /** Database file; its parent directory is created. `:memory:` for a private in-memory database. */
  path?: string;
  /** Table of the values (`key TEXT PRIMARY KEY, value TEXT, expires INTEGER`). Default `keyv`. */
  table?: string;
  /** How long a write waits for another process's write lock, in ms. Default 5000. */
  busyTimeoutMs?: number;
  /** How often expired rows are swept, in ms; 0 turns the timer off. Default 60000. */
  sweepIntervalMs?: number;
  /** How soon a sweep follows one that found many expired rows, in ms. Default 5000. */
  sweepCatchUpMs?: number;
  /**
   * Who copies the write-ahead log back into the database file. `background` (the default for a
   * file): a worker thread with its own connection, so that no write on the event loop ever waits
   * for a checkpoint (copying pages and two fsyncs). `inline`: SQLite's automatic checkpoint,
   * inside whichever commit passes 1000 pages of log. `:memory:` is always `inline`.
   */
  checkpoint?: SqliteCheckpointMode;
  /** How often the background checkpointer runs, in ms. Default 50. */
  checkpointIntervalMs?: number;
  /** Size the -wal file is cut back to once a burst of writes is checkpointed. Default 64 MiB. */
  walSizeLimitBytes?: number;
  /** How often the file is checked to be the one opened (not deleted or replaced), in ms. Default 2000. */
  fileCheckMs?: number;
}

export type SqliteCheckpointMode = 'background' | 'inline';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Rows examined per sweep step: small enough that a step holds the event loop for tens of
 * milliseconds at most (deleting is the costly part).
 */
export const SWEEP_STEP_ROWS = 2_000;
/** Sweep steps per timer tick, each in its own turn of the event loop. */
const SWEEP_STEPS_PER_TICK = 25;
/** How soon a sweep tick follows one that found many expired rows. */
export const SWEEP_CATCH_UP_MS = 5000;

/** SQLite's own default of `wal_autocheckpoint`, restored when the background checkpointer fails. */
const INLINE_CHECKPOINT_PAGES = 1000;
/** A log this long (pages) that never got reset is forced back to its start (see the worker). */
const RESTART_LOG_PAGES = 16_384;
/** Size the -wal file is cut back to after a burst of writes (by the writer, or by the checkpointer). */
const WAL_LIMIT_BYTES = 64 * 1024 * 1024;
/** Longest the checkpointer's RESTART or TRUNCATE waits for a lock (writers may wait as long). */
const CHECKPOINTER_BUSY_TIMEOUT_MS = 50;
/** How often the database file is checked to be the one opened. */
const FILE_CHECK_MS = 2000;

/** Checks that `name` can be pasted into SQL as a table name. */
function assertSqlIdentifier(name: string, what: string): void {
  if (!IDENTIFIER.test(name)) {
    throw new Error(`${what} "${name}" is not a valid SQL identifier (letters, digits and _ only)`);
  }
}

/**
 * Opens (creating its directory) a SQLite database tuned for many small writes from one process
 * and occasional concurrent writers from others: WAL, `synchronous=NORMAL` (durable across a
 * process crash, may lose the last commits on power loss) and a busy timeout so that a second
 * process waits for the write lock instead of failing.
 */
function openSqliteDatabase(
  path: string,
  busyTimeoutMs = 5000,
  walSizeLimitBytes = WAL_LIMIT_BYTES,
): DatabaseSync {
  if (path !== ':memory:') ensureDirectory(dirname(resolve(path)));
  const db = new DatabaseSync(path);
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(busyTimeoutMs))}`);
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = NORMAL');
    // A 16 MiB page cache (allocated as used) keeps the hot part of the history in memory; no
    // memory-mapped I/O, whose mapped pages would count against the process's memory as the
    // history grows (a million pairs must stay well under 200 MB of RSS).
    db.exec('PRAGMA cache_size = -16384');
    // After a checkpoint, cut the WAL back to 64 MiB so a burst of writes does not leave a
    // large -wal file behind for good. (The background checkpointer lifts this, and trims
    // the file itself.)
    db.exec(`PRAGMA journal_size_limit = ${Math.max(0, Math.trunc(walSizeLimitBytes))}`);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

/**
 * Creates `dir` and its missing parents. Not `mkdirSync(dir, { recursive: true })`: on a
 * directory that refuses new entries with ENOENT (procfs, for one) Node's recursive mkdir retries
 * forever instead of failing.
 */
function ensureDirectory(dir: string): void {
  try {
    mkdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw error;
    ensureDirectory(parent);
    try {
      mkdirSync(dir);
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST') throw again;
    }
  }
}

/** The transaction statements of one connection, prepared once: `exec` compiles its SQL each call. */
interface TransactionStatements {
  begin: StatementSync;
  beginImmediate: StatementSync;
  commit: StatementSync;
  rollback: StatementSync;
}

const transactionStatements = new WeakMap<DatabaseSync, TransactionStatements>();

function statementsOf(db: DatabaseSync): TransactionStatements {
  let statements = transactionStatements.get(db);
  if (statements === undefined) {
    statements = {
      begin: db.prepare('BEGIN'),
      beginImmediate: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
    };
    transactionStatements.set(db, statements);
  }
  return statements;
}

/**
 * Runs `fn` inside `BEGIN IMMEDIATE … COMMIT`. IMMEDIATE takes the write lock up front, so a
 * transaction never has to upgrade a read lock (the case where SQLite gives up with SQLITE_BUSY
 * instead of waiting for the busy timeout).
 */
export function immediateTransaction<T>(db: DatabaseSync, fn: () => T): T {
  const { beginImmediate, commit, rollback } = statementsOf(db);
  beginImmediate.run();
  try {
    const result = fn();
    commit.run();
    return result;
  } catch (error) {
    if (db.isTransaction) rollback.run();
    throw error;
  }
}

/** Runs `fn` inside one read transaction (`BEGIN … COMMIT`): one consistent snapshot, one WAL lock. */
export function readTransaction<T>(db: DatabaseSync, fn: () => T): T {
  const { begin, commit } = statementsOf(db);
  begin.run();
  try {
    return fn();
  } finally {
    commit.run();
  }
}

/**
 * The checkpointer thread (CommonJS, run with `eval`, so it needs no file of its own and no
 * TypeScript loader). Every `intervalMs` it runs a PASSIVE checkpoint on its own connection: it
 * copies what the log holds into the database file and syncs both, without taking the write lock,
 * so the event loop's writers and readers never wait for it.
 * - Frames written during that checkpoint are copied at once, a few rounds at most: a checkpoint
 *   that leaves nothing behind lets the next write start the log over from its beginning, which
 *   keeps the log short (under steady writes it otherwise only grows).
 * - When a reader of another connection still needs part of the log, it comes back after 5 ms.
 * - When the log reached `restartPages` anyway (writers never paused, so no write ever found it
 *   fully copied), it asks the owner (`'restart'`) to copy the last frames itself, between two
 *   of its writes: its next write then starts the log over. That costs the owner two syncs of
 *   little data, at most ten times a second; taking the write lock here instead would not do, as a
 *   busy writer never lets go of it long enough.
 * - When nothing was written for a round and the -wal file is larger than `walLimitBytes`, a
 *   TRUNCATE checkpoint cuts it to nothing: the owner's connection has no size limit of its own,
 *   so that its commits never truncate a file. That takes the write lock, so only with a short
 *   busy timeout, and not again for a second when a reader of another connection kept it from
 *   finishing: a long reader elsewhere cannot make the event loop's writers wait for long.
 * On `stop` it runs a last checkpoint and closes its connection, so the owner's close is the last.
 */
const CHECKPOINT_WORKER = `'use strict';
const { statSync } = require('node:fs');
const { DatabaseSync } = require('node:sqlite');
const { parentPort, workerData } = require('node:worker_threads');
const { path, busyTimeoutMs, intervalMs, restartPages, walLimitBytes } = workerData;
const db = new DatabaseSync(path);
db.exec('PRAGMA busy_timeout = ' + busyTimeoutMs);
const passive = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const truncate = db.prepare('PRAGMA wal_checkpoint(TRUNCATE)');
const run = (stmt) => {
  try {
    return stmt.get();
  } catch {
    return undefined; // busy or locked past the timeout: the next round retries
  }
};
const walBytes = () => {
  try {
    return statSync(path + '-wal').size;
  } catch {
    return 0;
  }
};
let timer;
let retries = 0;
let previousLog = -1;
let holdOffUntil = 0;
let restartAskedAt = 0;
const round = () => {
  let result = run(passive);
  for (let i = 0; i < 4 && result && result.log > 0 && result.log === result.checkpointed; i++) {
    const next = run(passive);
    if (!next) break;
    const grew = next.log > result.log;
    result = next;
    if (!grew) break;
  }
  let delay = intervalMs;
  if (result && result.log > result.checkpointed) {
    if (retries++ < 20) delay = 5;
  } else {
    retries = 0;
  }
  const copied = result !== undefined && result.log === result.checkpointed;
  if (copied && result.log >= restartPages && Date.now() >= restartAskedAt + 100) {
    restartAskedAt = Date.now();
    parentPort.postMessage('restart');
  } else if (copied && result.log === previousLog && Date.now() >= holdOffUntil && walBytes() > walLimitBytes) {
    const done = run(truncate);
    // A reader elsewhere kept the log: leave the writers alone for a while.
    if (done === undefined || done.busy !== 0) holdOffUntil = Date.now() + 1000;
  }
  previousLog = result ? result.log : -1;
  timer = setTimeout(round, delay);
};
timer = setTimeout(round, intervalMs);
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  clearTimeout(timer);
  run(passive);
  db.close();
  parentPort.close();
});
`;

/**
 * Runs WAL checkpoints of one database file on a worker thread (see `CHECKPOINT_WORKER`). The
 * owner turns its own automatic checkpoints off; should the worker fail (it cannot open the file,
 * say), `onFailure` turns them back on so the log never grows without bound.
 */
class BackgroundCheckpointer {
  #worker: Worker;
  #exited: Promise<void>;
  #stopping: Promise<void> | undefined;

  constructor(
    path: string,
    settings: { busyTimeoutMs: number; intervalMs: number; walLimitBytes: number },
    onFailure: (error: Error) => void,
    onRestartWanted: () => void,
  ) {
    this.#worker = new Worker(CHECKPOINT_WORKER, {
      eval: true,
      workerData: { path, ...settings, restartPages: RESTART_LOG_PAGES },
      // A checkpointer needs little: keep its heap small.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
      stdout: false,
      stderr: false,
    });
    this.#worker.on('message', (message) => {
      if (message === 'restart' && this.#stopping === undefined) onRestartWanted();
    });
    let failed = false;
    this.#worker.on('error', (error) => {
      failed = true;
      onFailure(error);
    });
    this.#exited = new Promise((resolve) => {
      this.#worker.once('exit', (code) => {
        if (code !== 0 && !failed && this.#stopping === undefined) {
          onFailure(new Error(`the SQLite checkpointer thread stopped (exit code ${code})`));
        }
        resolve();
      });
    });
    // Housekeeping must never keep the process alive on its own. After the listeners: adding a
    // 'message' listener refs the worker's port again.
    this.#worker.unref();
  }

  /** Asks for a last checkpoint and waits until the thread closed its connection and ended. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#worker.postMessage('stop');
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(resolve, 10_000, 'late');
      });
      if ((await Promise.race([this.#exited, late])) === 'late') await this.#worker.terminate();
      clearTimeout(timer);
    })();
    return this.#stopping;
  }
}

/**
 * The sweep of `table`'s expired rows (`expires`, epoch ms), a bounded step at a time: each call
 * walks the next `SWEEP_STEP_ROWS` rows in key order (its own short write transaction) and deletes
 * those that have expired, so a large table is never locked or scanned in one go. `done` once a
 * step passed the table's end; the next call starts over. Its statements are prepared once.
 */
export function expiredRowsStep(db: DatabaseSync, table: string): (now?: number) => SweepResult {
  const boundary = db.prepare(`SELECT key FROM ${table} WHERE key > ? ORDER BY key LIMIT 1 OFFSET ?`);
  const removeRange = db.prepare(`DELETE FROM ${table} WHERE key > ? AND key <= ? AND expires <= ?`);
  const removeTail = db.prepare(`DELETE FROM ${table} WHERE key > ? AND expires <= ?`);
  let cursor = '';
  return (now = Date.now()) => {
    const end = boundary.get(cursor, SWEEP_STEP_ROWS - 1) as { key: string } | undefined;
    if (end === undefined) {
      const deleted = Number(removeTail.run(cursor, now).changes);
      cursor = '';
      return { done: true, deleted };
    }
    const deleted = Number(removeRange.run(cursor, end.key, now).changes);
    cursor = end.key;
    return { done: false, deleted };
  };
}

/** Starts the paced sweep (`startSweeper`) of one table's `step`, at this store's step size. */
export function startTableSweep(
  step: SweepStep,
  intervalMs: number,
  catchUpMs: number,
  onError: (error: unknown) => void,
): Sweeper {
  return startSweeper(step, {
    intervalMs,
    stepsPerTick: SWEEP_STEPS_PER_TICK,
    stepRows: SWEEP_STEP_ROWS,
    catchUpMs,
    onError,
  });
}

/**
 * A Keyv 5 storage adapter over Node's built-in `node:sqlite`: no native module to compile.
 * Rows are `(key, value, expires)`; `value` is the text Keyv serialised and `expires` the
 * absolute expiry in epoch ms (NULL: never), checked on every read and swept periodically.
 * `clear()` only touches the Keyv namespace it belongs to.
 */
export class SqliteKeyvStore extends EventEmitter implements KeyvStoreAdapter {
  /** Read by Keyv: `dialect: 'sqlite'` enables `keyv.iterator()`. */
  readonly opts: { dialect: 'sqlite'; url: string; path: string; table: string };
  /** Set by Keyv to its namespace; `clear()` and `iterator()` stay inside it. */
  namespace?: string | undefined;
  /** The open database, shared with the claim and member tables of the same file. */
  readonly db: DatabaseSync;

  #table: string;
  /** The table of the values. */
  get table(): string {
    return this.#table;
  }
  #getStmt: StatementSync;
  #hasStmt: StatementSync;
  #setStmt: StatementSync;
  #deleteStmt: StatementSync;
  /** The statements of `writeIfUnchanged`, one per kind of expectation. */
  #conditional: { replaceRev: StatementSync; replaceNoRev: StatementSync; insertAbsent: StatementSync };
  #rangeStmt: StatementSync;
  #sweeper: Sweeper | undefined;
  #checkpointer: BackgroundCheckpointer | undefined;
  #closing: Promise<void> | undefined;
  /** The database file as opened (device and inode), watched for deletion or replacement. */
  #file: { dev: number; ino: number } | undefined;
  #fileTimer: NodeJS.Timeout | undefined;
  #lost: string | undefined;

  constructor(options: SqliteKeyvStoreOptions = {}) {
    super();
    const path = options.path ?? DEFAULT_SQLITE_PATH;
    const table = options.table ?? 'keyv';
    assertSqlIdentifier(table, 'SQLite table name');
    this.opts = { dialect: 'sqlite', url: `sqlite://${path}`, path, table };
    this.#table = table;
    this.db = openSqliteDatabase(path, options.busyTimeoutMs, options.walSizeLimitBytes);
    try {
      this.db.exec(`CREATE TABLE IF NOT EXISTS ${table} (key TEXT PRIMARY KEY, value TEXT, expires INTEGER)`);
      this.#getStmt = this.db.prepare(
        `SELECT value FROM ${table} WHERE key = ? AND (expires IS NULL OR expires > ?)`,
      );
      // Rows as `[value]` arrays: no per-row object, a third faster on large batches.
      this.#getStmt.setReturnArrays(true);
      this.#hasStmt = this.db.prepare(
        `SELECT 1 AS found FROM ${table} WHERE key = ? AND (expires IS NULL OR expires > ?)`,
      );
      this.#hasStmt.setReturnArrays(true);
      this.#setStmt = this.db.prepare(
        `INSERT INTO ${table} (key, value, expires) VALUES (?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires`,
      );
      this.#deleteStmt = this.db.prepare(`DELETE FROM ${table} WHERE key = ?`);
      // A live row is one without an expiry or with one still ahead (as `#getStmt` reads).
      const live = '(expires IS NULL OR expires > ?)';
      this.#conditional = {
        replaceRev: this.db.prepare(
          `UPDATE ${table} SET value = ?, expires = ? WHERE key = ? AND ${live} AND instr(value, ?) > 0`,
        ),
        replaceNoRev: this.db.prepare(
          `UPDATE ${table} SET value = ?, expires = ? WHERE key = ? AND ${live} AND instr(value, '${REV_FIELD}') = 0`,
        ),
        insertAbsent: this.db.prepare(
          `INSERT INTO ${table} AS t (key, value, expires) VALUES (?, ?, ?)
           ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires
           WHERE t.expires IS NOT NULL AND t.expires <= ?`,
        ),
      };
      this.#rangeStmt = this.db.prepare(
        `SELECT key, value FROM ${table} WHERE key >= ? AND key < ? AND (expires IS NULL OR expires > ?)
         ORDER BY key`,
      );
      this.#rangeStmt.setReturnArrays(true);
    } catch (error) {
      this.db.close();
      throw error;
    }
    if (path !== ':memory:' && (options.checkpoint ?? 'background') === 'background') {
      this.#startCheckpointer(path, options);
    }
    const interval = options.sweepIntervalMs ?? 60_000;
    if (interval > 0) {
      const step = expiredRowsStep(this.db, table);
      // A busy database only delays the sweep to the next tick. Reported through Keyv's error
      // event, never by throwing from a timer (an 'error' event without listener would throw).
      this.#sweeper = startTableSweep(
        () => step(),
        interval,
        options.sweepCatchUpMs ?? SWEEP_CATCH_UP_MS,
        (error) => {
          if (this.listenerCount('error') > 0) this.emit('error', error);
        },
      );
    }
    if (path !== ':memory:') this.#watchFile(path, options.fileCheckMs ?? FILE_CHECK_MS);
  }

  /**
   * Why this database can no longer be used, once its file was deleted or replaced (by a person
   * or a cleanup job) while open: what it would write then goes to a file that no one can open
   * again, lost at the next start. Undefined while the file is the one opened.
   */
  lost(): string | undefined {
    return this.#lost;
  }

  #watchFile(path: string, everyMs: number): void {
    try {
      const { dev, ino } = statSync(path);
      this.#file = { dev, ino };
    } catch {
      return;
    }
    this.#fileTimer = setInterval(() => {
      let now: { dev: number; ino: number } | undefined;
      try {
        now = statSync(path);
      } catch {
        now = undefined;
      }
      if (now?.dev === this.#file?.dev && now?.ino === this.#file?.ino) return;
      // (Deleted or replaced alike: a file deleted can be made again at once, empty, by this
      // process's own checkpointer thread.)
      this.#lost = `the SQLite database file "${path}" was deleted or replaced while in use: nothing more is written, since it would be lost; restart the service (a new, empty database is made where there is none)`;
      clearInterval(this.#fileTimer);
      this.#fileTimer = undefined;
    }, everyMs);
    this.#fileTimer.unref();
  }

  async get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    const row = this.#getStmt.get(key, Date.now()) as unknown as [string] | undefined;
    return row?.[0] as StoredData<Value> | undefined;
  }

  /** Reads every key in one read transaction: one consistent snapshot, one WAL lock. */
  async getMany<Value>(keys: string[]): Promise<Array<StoredData<Value | undefined>>> {
    const now = Date.now();
    const out = new Array<StoredData<Value | undefined>>(keys.length);
    const stmt = this.#getStmt;
    readTransaction(this.db, () => {
      for (let i = 0; i < keys.length; i++) {
        const row = stmt.get(keys[i]!, now) as unknown as [string] | undefined;
        out[i] = row?.[0] as StoredData<Value | undefined>;
      }
    });
    return out;
  }

  /**
   * The live `[key, serialised value]` rows whose key starts with `prefix`, in key order: one walk
   * along the primary key's index, about twice as fast as looking up the same keys one by one.
   */
  rowsByPrefix(prefix: string): Array<[string, string]> {
    return this.#rangeStmt.all(prefix, prefixEnd(prefix), Date.now()) as unknown as Array<[string, string]>;
  }

  async has(key: string): Promise<boolean> {
    return this.#hasStmt.get(key, Date.now()) !== undefined;
  }

  /** One read transaction, like `getMany`, without reading the values. */
  async hasMany(keys: string[]): Promise<boolean[]> {
    const now = Date.now();
    const out = new Array<boolean>(keys.length);
    const stmt = this.#hasStmt;
    readTransaction(this.db, () => {
      for (let i = 0; i < keys.length; i++) out[i] = stmt.get(keys[i]!, now) !== undefined;
    });
    return out;
  }

  /** `ttl` is relative ms as Keyv 5 passes it; absent or 0 means no expiry. */
  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    this.#setStmt.run(key, value as string, ttl ? Date.now() + ttl : null);
    return true;
  }

  /** Writes every entry in one transaction. */
  async setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<void> {
    const now = Date.now();
    const stmt = this.#setStmt;
    immediateTransaction(this.db, () => {
      for (const { key, value, ttl } of entries) stmt.run(key, value as string, ttl ? now + ttl : null);
    });
  }

  /**
   * `StateStore.setManyIfUnchanged`: in one write transaction, each conditional entry is one
   * statement that writes only over what it expects; the row is read only where it did not.
   * Rows are Keyv's (`RawConditionalEntry`).
   */
  writeIfUnchanged(entries: readonly RawConditionalEntry[]): RawConditionalResult[] {
    const now = Date.now();
    const { replaceRev, replaceNoRev, insertAbsent } = this.#conditional;
    return immediateTransaction(this.db, () =>
      entries.map(({ key, text, expires, expect }): RawConditionalResult => {
        const until = expires ?? null;
        let changes: number | bigint;
        if (expect === undefined) changes = this.#setStmt.run(key, text, until).changes;
        else if (expect === 'absent') changes = insertAbsent.run(key, text, until, now).changes;
        else if (expect.rev === null) changes = replaceNoRev.run(text, until, key, now).changes;
        else changes = replaceRev.run(text, until, key, now, revNeedle(expect.rev)).changes;
        if (Number(changes) > 0) return true;
        return { text: (this.#getStmt.get(key, now) as unknown as [string] | undefined)?.[0] };
      }),
    );
  }

  /**
   * `StateStore.updateManyHeld`: one write transaction reads each key's live row and writes what
   * `make` answers; no other process writes the database until it ends.
   */
  writeHeld(keys: readonly string[], make: HeldWrite): void {
    const now = Date.now();
    immediateTransaction(this.db, () => {
      for (const key of keys) {
        const held = (this.#getStmt.get(key, now) as unknown as [string] | undefined)?.[0];
        const row = make(key, held);
        if (row !== undefined) this.#setStmt.run(key, row.text, row.expires ?? null);
      }
    });
  }

  async delete(key: string): Promise<boolean> {
    return Number(this.#deleteStmt.run(key).changes) > 0;
  }

  /** Deletes every key in one transaction; true when at least one existed. */
  async deleteMany(keys: string[]): Promise<boolean> {
    const stmt = this.#deleteStmt;
    let deleted = 0;
    immediateTransaction(this.db, () => {
      for (const key of keys) deleted += Number(stmt.run(key).changes);
    });
    return deleted > 0;
  }

  /** Deletes the rows of this adapter's namespace only (all rows when it has none). */
  async clear(): Promise<void> {
    if (this.namespace) {
      this.db
        .prepare(`DELETE FROM ${this.#table} WHERE key LIKE ? ESCAPE '\\'`)
        .run(`${escapeLike(this.namespace)}:%`);
    } else {
      this.db.exec(`DELETE FROM ${this.#table}`);
    }
  }

  /** Live `[key, serialised value]` rows of `namespace`, paged by key so writes in between are safe. */
  async *iterator(namespace?: string): AsyncGenerator<[string, string], void> {
    const pattern = namespace ? `${escapeLike(namespace)}:%` : '%';
    const page = this.db.prepare(
      `SELECT key, value FROM ${this.#table}
       WHERE key LIKE ? ESCAPE '\\' AND key > ? AND (expires IS NULL OR expires > ?)
       ORDER BY key LIMIT 100`,
    );
    let after = '';
    for (;;) {
      const rows = page.all(pattern, after, Date.now()) as Array<{ key: string; value: string }>;
      for (const row of rows) yield [row.key, row.value];
      if (rows.length < 100) return;
      after = rows[rows.length - 1]!.key;
    }
  }

  /**
   * Deletes every expired row now (the timer does the same a bounded step at a time).
   * Returns how many rows went.
   */
  sweepExpired(now = Date.now()): number {
    const step = expiredRowsStep(this.db, this.#table);
    let total = 0;
    for (let done = false; !done; ) {
      const result = step(now);
      total += result.deleted;
      done = result.done;
    }
    return total;
  }

  /**
   * Stops the sweep timer and the checkpointer (after its last checkpoint) and closes the
   * database; when no other connection has the file open, SQLite's close copies what is left of
   * the log and removes it. Safe to call twice.
   */
  disconnect(): Promise<void> {
    this.#closing ??= (async () => {
      this.#sweeper?.stop();
      this.#sweeper = undefined;
      clearInterval(this.#fileTimer);
      this.#fileTimer = undefined;
      await this.#checkpointer?.stop();
      if (this.db.isOpen) this.db.close();
    })();
    return this.#closing;
  }

  #startCheckpointer(path: string, options: SqliteKeyvStoreOptions): void {
    const settings = {
      busyTimeoutMs: Math.min(
        CHECKPOINTER_BUSY_TIMEOUT_MS,
        Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000)),
      ),
      intervalMs: Math.max(1, Math.trunc(options.checkpointIntervalMs ?? 50)),
      walLimitBytes: Math.max(0, Math.trunc(options.walSizeLimitBytes ?? WAL_LIMIT_BYTES)),
    };
    // Back to SQLite's own checkpoints when the thread is gone, so the log stays bounded.
    const fallBack = (error: unknown) => {
      if (this.db.isOpen) {
        this.db.exec(`PRAGMA wal_autocheckpoint = ${INLINE_CHECKPOINT_PAGES}`);
        this.db.exec(`PRAGMA journal_size_limit = ${settings.walLimitBytes}`);
      }
      if (this.listenerCount('error') > 0) this.emit('error', error);
    };
    // Commits on this connection neither checkpoint nor truncate the log: the thread does both.
    this.db.exec('PRAGMA wal_autocheckpoint = 0');
    this.db.exec('PRAGMA journal_size_limit = -1');
    try {
      this.#checkpointer = new BackgroundCheckpointer(resolve(path), settings, fallBack, () => {
        // Copies what the thread has not copied yet (little), so that the next write restarts
        // the log. PASSIVE never waits for a lock.
        try {
          if (this.db.isOpen && !this.db.isTransaction) this.db.exec('PRAGMA wal_checkpoint(PASSIVE)');
        } catch (error) {
          if (this.listenerCount('error') > 0) this.emit('error', error);
        }
      });
    } catch (error) {
      fallBack(error);
    }
  }
}

/**
 * The smallest text above every text that starts with `prefix`, in SQLite's BINARY order (UTF-8
 * bytes): `prefix` with its last character replaced by the next one. A prefix must end in a
 * character below U+D7FF (ours end in `:`), so that the next one is a single UTF-16 unit too.
 */
function prefixEnd(prefix: string): string {
  const last = prefix.charCodeAt(prefix.length - 1);
  if (prefix === '' || last >= 0xd7ff) {
    throw new Error(`a key prefix must end in a character below U+D7FF, got ${JSON.stringify(prefix)}`);
  }
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}

import KeyvPostgres, { type KeyvPostgresOptions } from '@keyv/postgres';
import pg from 'pg';
import type { StateStore } from '../core/ports.ts';
import {
  expectCode,
  type HeldWrite,
  type RawConditionalEntry,
  type RawConditionalResult,
  REV_FIELD,
} from './conditional-write.ts';
import { createKeyv } from './create-keyv.ts';
import { escapeLike } from './escape-like.ts';
import { type ClaimsAndSets, KeyvStateStore } from './keyv-state-store.ts';
import { scrubSecret } from './parse-store-url.ts';
import { describeError, StoreError } from './store-error.ts';

/** Options of `openPostgresStateStore`. */
export interface PostgresStateStoreOptions {
  /** `postgres://` or `postgresql://` URL (libpq-style parameters such as `sslmode` included). */
  url: string;
  /** The URL with its password masked, for messages. */
  display: string;
  /** The URL's password, kept out of every message. */
  password: string;
  namespace: string;
  /** The schema of the tables (it must exist unless it is `public`). Default `public`. */
  schema?: string;
  /** Connections in the pool. Default 10. */
  poolSize?: number;
  /** How often expired values and claims are deleted, in ms; 0 turns it off. Default 600000. */
  sweepIntervalMs?: number;
  /** How long a query may go without an answer before its connection is given up, in ms. Default 30000. */
  queryTimeoutMs?: number;
  /** How long a statement may wait for a lock another session holds, in ms. Default 20000. */
  lockTimeoutMs?: number;
  /** Builds, in the background, the index that the sweep of expired claims reads (the service's store). */
  maintain?: boolean;
  /** Told what upkeep could not be done (the index not built), password masked. */
  warn?: (message: string) => void;
  /** Opens only tables that exist, creating none (a command that reads the service's store). */
  existing?: boolean;
}

/**
 * The expiry (epoch ms) of a value as @keyv/postgres keeps it, inside the value: the serialised
 * envelope ends with `"expires":<ms>}`. NULL for a value without one.
 */
const expiryOf = (value: string) => `substring(${value} from '"expires":([0-9]{1,15})}$')::bigint`;

/**
 * The statements over the tables of one schema (a name that needs no quoting, see
 * `parseStoreUrl`): the @keyv/postgres table (its default name and layout) and this project's two.
 */
function statementsIn(schema: string) {
  return {
    createTables: `
  BEGIN;
  -- Replicas starting together would otherwise race on CREATE TABLE IF NOT EXISTS, which can
  -- fail with a unique violation in the catalog.
  SELECT pg_advisory_xact_lock(hashtext('arc-responder:state-store-schema'));
  CREATE TABLE IF NOT EXISTS ${schema}.keyv (key VARCHAR(255) PRIMARY KEY, value TEXT);
  CREATE TABLE IF NOT EXISTS ${schema}.arc_claims (key TEXT PRIMARY KEY, expires BIGINT);
  CREATE TABLE IF NOT EXISTS ${schema}.arc_members (
    set_key TEXT NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (set_key, member)
  );
  COMMIT;`,
    // The conflict branch only updates an expired claim, so a returned row means this caller won.
    // Concurrent inserts of one key serialise on its index entry; the loser re-checks the WHERE
    // against the winner's committed row and returns nothing.
    claim: `
  INSERT INTO ${schema}.arc_claims AS c (key, expires) VALUES ($1, $2)
  ON CONFLICT (key) DO UPDATE SET expires = EXCLUDED.expires WHERE c.expires <= $3
  RETURNING key`,
    // DISTINCT because one INSERT cannot touch a row twice; ORDER BY so that concurrent batches
    // lock keys in the same order and cannot deadlock each other.
    claimMany: `
  INSERT INTO ${schema}.arc_claims AS c (key, expires)
  SELECT DISTINCT k, $2::bigint FROM unnest($1::text[]) AS t(k) ORDER BY k
  ON CONFLICT (key) DO UPDATE SET expires = EXCLUDED.expires WHERE c.expires <= $3
  RETURNING key`,
    releaseClaim: `DELETE FROM ${schema}.arc_claims WHERE key = $1`,
    // The first of the state tables that does not exist, or NULL.
    missingTable: `SELECT t AS missing FROM unnest(ARRAY['keyv', 'arc_claims', 'arc_members']) AS t
       WHERE to_regclass('${schema}.' || t) IS NULL LIMIT 1`,
    addMembers: `INSERT INTO ${schema}.arc_members (set_key, member) SELECT $1, unnest($2::text[])
       ON CONFLICT DO NOTHING`,
    addToSets: `INSERT INTO ${schema}.arc_members (set_key, member)
       SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`,
    removeMembers: `DELETE FROM ${schema}.arc_members WHERE set_key = $1 AND member = ANY($2::text[])`,
    // A value that has expired but not been swept yet still counts as there: the member stays
    // until the sweep has taken it.
    removeGoneMembers: `DELETE FROM ${schema}.arc_members m WHERE m.set_key = $1 AND m.member = ANY($2::text[])
       AND NOT EXISTS (SELECT 1 FROM ${schema}.keyv v WHERE v.key = $3 || m.member)`,
    members: `SELECT member FROM ${schema}.arc_members WHERE set_key = $1`,
    membersOfMany: `SELECT set_key, member FROM ${schema}.arc_members WHERE set_key = ANY($1::text[])`,
    // A batch at a time: found through `arc_claims_expires` (see `ensureExpiryIndex`), so that a
    // table of hundreds of millions of claims is swept without reading it whole.
    sweepClaims: `DELETE FROM ${schema}.arc_claims WHERE key IN (
       SELECT key FROM ${schema}.arc_claims WHERE expires <= $2 AND key LIKE $1 LIMIT $3)`,
    // One build at a time across replicas (a session lock, given back when its connection ends).
    expiryIndexLock: `SELECT pg_try_advisory_lock(hashtext('arc-responder:arc_claims_expires:${schema}')) AS held`,
    expiryIndexValid: `SELECT i.indisvalid AS valid FROM pg_index i
       WHERE i.indexrelid = to_regclass('${schema}.arc_claims_expires')`,
    dropExpiryIndex: `DROP INDEX CONCURRENTLY IF EXISTS ${schema}.arc_claims_expires`,
    createExpiryIndex: `CREATE INDEX CONCURRENTLY IF NOT EXISTS arc_claims_expires ON ${schema}.arc_claims (expires)`,
    sweepValues: `DELETE FROM ${schema}.keyv WHERE key LIKE $1
       AND ${expiryOf('value')} <= $2`,
    // The identity index, walked in its key order a batch at a time (see `pruneIdentityIndex`):
    // the last entry of the next batch, then the batch's entries whose pair is gone. $5 and $6:
    // the pairs' key prefix and where the appid starts in a set key.
    identityBatchEnd: `SELECT set_key, member FROM ${schema}.arc_members
       WHERE (set_key, member) > ($1, $2) AND set_key LIKE $3
       ORDER BY set_key, member OFFSET $4 LIMIT 1`,
    pruneIdentityBatch: `DELETE FROM ${schema}.arc_members m
       WHERE (m.set_key, m.member) > ($1, $2) AND (m.set_key, m.member) <= ($3, $4) AND m.set_key LIKE $7
         AND NOT EXISTS (SELECT 1 FROM ${schema}.keyv v WHERE v.key = $5 || substr(m.set_key, $6) || ':' || m.member)`,
    pruneIdentityTail: `DELETE FROM ${schema}.arc_members m
       WHERE (m.set_key, m.member) > ($1, $2) AND m.set_key LIKE $3
         AND NOT EXISTS (SELECT 1 FROM ${schema}.keyv v WHERE v.key = $4 || substr(m.set_key, $5) || ':' || m.member)`,
  };
}
type Statements = ReturnType<typeof statementsIn>;

/** Expired claims deleted per statement, and statements per sweep (the next sweep goes on). */
const SWEEP_BATCH = 10_000;
const SWEEP_MAX_BATCHES = 100;

/**
 * Makes sure `arc_claims` has its index on `expires`, which the sweep finds expired claims by.
 * Built CONCURRENTLY, on a connection of its own without the pool's query timeout, after the
 * start and without holding it up: on a table that an earlier release filled, the build may take
 * minutes, and it blocks no write meanwhile. A build cut short (`stop`, at the store's close,
 * cancels it on the server) leaves an invalid index, which a later start drops and builds again. `done` resolves either
 * way (a role that may not create indexes leaves the sweep reading the table, as before), and
 * `onError` is told why it did not build.
 */
function ensureExpiryIndex(
  connectionString: string,
  sql: Pick<Statements, 'expiryIndexLock' | 'expiryIndexValid' | 'dropExpiryIndex' | 'createExpiryIndex'>,
  onError: (error: unknown) => void = () => {},
): { done: Promise<void>; stop(cancelWith: Pick<pg.Pool, 'query'>): Promise<void> } {
  const client = new pg.Client({ connectionString });
  client.on('error', () => {});
  let stopped = false;
  /** The server process of the build's session, once connected. */
  let backend: number | undefined;
  /** A statement of the build is running (its session's process is not another's yet). */
  let building = false;
  const done = (async () => {
    try {
      await client.connect();
      backend = (client as unknown as { processID?: number }).processID;
      const lock = await client.query<{ held: boolean }>(sql.expiryIndexLock);
      if (lock.rows[0]?.held !== true) return; // another process is building it
      const { rows } = await client.query<{ valid: boolean }>(sql.expiryIndexValid);
      if (rows[0]?.valid === true) return;
      building = true;
      if (rows[0]?.valid === false) await client.query(sql.dropExpiryIndex);
      await client.query(sql.createExpiryIndex);
    } catch (error) {
      if (!stopped) onError(error);
    } finally {
      building = false;
      await client.end().catch(() => {});
    }
  })();
  return {
    done,
    async stop(cancelWith) {
      stopped = true;
      // A build waiting for other transactions notices no dropped client: it is cancelled on the
      // server (over another connection), and the connection is cut at once, whatever it does.
      if (building && backend !== undefined) {
        await cancelWith.query('SELECT pg_cancel_backend($1)', [backend]).catch(() => {});
      }
      client.connection.stream.destroy();
      await done;
    },
  };
}

const POOL = Symbol('arc-responder pg pool');
const DEADLOCK = '40P01';

/**
 * @keyv/postgres with four changes: it runs on the state store's own pool (the stock adapter
 * keeps one module-wide pool per URL that `disconnect()` ends for every instance sharing it), it
 * creates nothing (the store does),
 * `delete` is one statement instead of a SELECT followed by a DELETE, and `setMany` writes its rows
 * in key order (and runs again after a deadlock), as claims do.
 */
class PooledKeyvPostgres extends KeyvPostgres {
  async connect(): Promise<(sql: string, values?: unknown) => Promise<unknown[]>> {
    // Called from the base constructor, before any field of this class exists: the pool
    // therefore travels in the options object.
    const pool = (this.opts as unknown as Record<symbol, pg.Pool>)[POOL]!;
    // The adapter's own DDL (its constructor's CREATE SCHEMA and CREATE TABLE) is not run: the
    // tables exist by then (`createTables`), and CREATE SCHEMA IF NOT EXISTS needs a right on the
    // database that a role with a schema of its own lacks, even when the schema exists.
    return async (sql, values) =>
      /^\s*CREATE\s/i.test(sql) ? [] : (await pool.query(sql, values as unknown[])).rows;
  }

  async disconnect(): Promise<void> {
    // The pool belongs to the state store, which ends it on close.
  }

  /**
   * Two replicas (or a replica and an import) upserting overlapping keys in different orders lock
   * the rows in different orders and can deadlock: one statement is then rolled back (40P01). In
   * key order they cannot; should one still happen, the statement is rolled back as a whole and
   * runs again.
   */
  async setMany(entries: Array<{ key: string; value: unknown }>): Promise<void> {
    const keys = new Array<string>(entries.length);
    const values = new Array<unknown>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      keys[i] = entries[i]!.key;
      values[i] = entries[i]!.value;
    }
    const upsert = `INSERT INTO ${this.opts.schema}.${this.opts.table} (key, value)
      SELECT k, v FROM unnest($1::text[], $2::text[]) AS t(k, v) ORDER BY k
      ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.query(upsert, [keys, values]);
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== DEADLOCK || attempt >= 3) throw error;
      }
    }
  }

  /**
   * `StateStore.setManyIfUnchanged` in one statement: a row is replaced only while it holds the
   * `rev` expected (checked again on the row a concurrent writer left), inserted only where none
   * is live. Every row of the batch that exists is locked first, in key order, also those it
   * expects absent or writes over unchecked: each writing step waits for `held`, which counts them
   * all (a CTE is otherwise read only as far as its reader needs, so a step could lock rows of its
   * own first, in its own order). Two replicas' overlapping batches then wait for each other rather
   * than deadlock, also when each read at another moment (one expects absent a record that the
   * other replaces, and the other way round for a second record). Should one happen all the same
   * (rows made after the statement began, which its locking cannot see), the statement is rolled
   * back whole and runs again, as in `setMany`.
   * A row not written answers what it holds as locked: a locking read waits for a concurrent
   * writer and answers the row it left, which nobody changes until the statement commits. So the
   * writer that lost learns the record it has to merge with in the same round trip (a second read
   * made it one round trip slower than the winner's next batch: two replicas writing one pair
   * back to back then lost 20 rounds in a row now and then). A row made after the statement began
   * is not among the locked ones: its key answers `false`, and it is read just after.
   */
  async writeIfUnchanged(entries: readonly RawConditionalEntry[]): Promise<RawConditionalResult[]> {
    const keys = new Array<string>(entries.length);
    const texts = new Array<string>(entries.length);
    const expects = new Array<string>(entries.length);
    entries.forEach(({ key, text, expect }, i) => {
      keys[i] = key;
      texts[i] = text;
      expects[i] = expectCode(expect);
    });
    const table = `${this.opts.schema}.${this.opts.table}`;
    const expiry = expiryOf('t.value');
    const statement = `WITH input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS i(k, v, expect)),
      locked AS (
        SELECT t.key, t.value FROM ${table} AS t JOIN input AS i ON t.key = i.k ORDER BY t.key FOR UPDATE OF t),
      held AS (SELECT count(*) AS n FROM locked),
      replaced AS (
        UPDATE ${table} AS t SET value = i.v FROM input AS i, locked AS l
        WHERE (SELECT n FROM held) >= 0
          AND t.key = i.k AND l.key = t.key AND i.expect NOT IN ('', 'A') AND coalesce(${expiry} > $4, true)
          AND CASE WHEN i.expect = 'N' THEN strpos(t.value, '${REV_FIELD}') = 0
                   ELSE strpos(t.value, i.expect) > 0 END
        RETURNING t.key),
      inserted AS (
        INSERT INTO ${table} AS t (key, value)
        SELECT k, v FROM input WHERE (SELECT n FROM held) >= 0 AND expect = 'A' ORDER BY k
        ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE ${expiry} <= $4
        RETURNING t.key),
      upserted AS (
        INSERT INTO ${table} AS t (key, value)
        SELECT k, v FROM input WHERE (SELECT n FROM held) >= 0 AND expect = '' ORDER BY k
        ON CONFLICT (key) DO UPDATE SET value = excluded.value
        RETURNING t.key),
      written AS (
        SELECT key FROM replaced UNION ALL SELECT key FROM inserted UNION ALL SELECT key FROM upserted)
      SELECT key, true AS written, NULL AS held FROM written
      UNION ALL SELECT l.key, false, l.value FROM locked AS l WHERE l.key NOT IN (SELECT key FROM written)`;
    for (let attempt = 1; ; attempt++) {
      try {
        const rows = (await this.query(statement, [keys, texts, expects, Date.now()])) as Array<{
          key: string;
          written: boolean;
          held: string | null;
        }>;
        const answers = new Map(rows.map((row) => [row.key, row]));
        return keys.map((key): RawConditionalResult => {
          const row = answers.get(key);
          if (row === undefined) return false;
          return row.written ? true : { text: row.held ?? undefined };
        });
      } catch (error) {
        if ((error as { code?: string }).code !== DEADLOCK || attempt >= 3) throw error;
      }
    }
  }

  /**
   * `StateStore.updateManyHeld` in one transaction on one connection: locks the keys' rows (in key
   * order, as every other write here), writes what `make` answers for each, and commits. A key
   * with no row cannot be locked: it is inserted only while still absent, and should another
   * writer have inserted it meanwhile, its row is locked and `make` asked again. The transaction
   * runs again after a deadlock, as `setMany` does.
   */
  async writeHeld(keys: string[], make: HeldWrite): Promise<void> {
    const pool = (this.opts as unknown as Record<symbol, pg.Pool>)[POOL]!;
    const table = `${this.opts.schema}.${this.opts.table}`;
    const lock = `SELECT key, value FROM ${table} WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE`;
    const write = `WITH input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[]) AS i(k, v, present)),
      replaced AS (
        UPDATE ${table} AS t SET value = i.v FROM input AS i WHERE t.key = i.k AND i.present
        RETURNING t.key),
      inserted AS (
        INSERT INTO ${table} (key, value) SELECT k, v FROM input WHERE NOT present ORDER BY k
        ON CONFLICT (key) DO NOTHING
        RETURNING key)
      SELECT key FROM replaced UNION ALL SELECT key FROM inserted`;
    for (let attempt = 1; ; attempt++) {
      const client = await pool.connect();
      // A connection whose transaction could not be rolled back is not given back to the pool.
      let broken = false;
      // A connection the server ends while the transaction waits between two statements (a
      // failover, a terminated session) says so on the client, which the pool listens to only
      // while it is idle: unheard, that error would end the process. The next statement fails
      // instead, and so does this call.
      const dropped = () => {
        broken = true;
      };
      client.on('error', dropped);
      try {
        await client.query('BEGIN');
        let left = [...keys].sort();
        // Each pass locks what exists of `left`; a key another writer inserts meanwhile fails its
        // insert and is locked in the next pass. A key can be inserted and deleted again by
        // others only so often: the passes are bounded all the same.
        for (let pass = 1; left.length > 0; pass++) {
          if (pass > 5) throw new Error('the rows kept changing between their locking and their writing');
          const held = (await client.query<{ key: string; value: string }>(lock, [left])).rows;
          const texts = new Map(held.map((row) => [row.key, row.value]));
          const rows: { keys: string[]; texts: string[]; present: boolean[] } = {
            keys: [],
            texts: [],
            present: [],
          };
          for (const key of left) {
            const row = make(key, texts.get(key));
            if (row === undefined) continue;
            rows.keys.push(key);
            rows.texts.push(row.text);
            rows.present.push(texts.has(key));
          }
          if (rows.keys.length === 0) break;
          const answer = await client.query<{ key: string }>(write, [rows.keys, rows.texts, rows.present]);
          const written = new Set(answer.rows.map((row) => row.key));
          left = rows.keys.filter((key) => !written.has(key));
        }
        await client.query('COMMIT');
        return;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        if ((error as { code?: string }).code !== DEADLOCK || attempt >= 3) throw error;
      } finally {
        client.off('error', dropped);
        client.release(broken);
      }
    }
  }

  async delete(key: string): Promise<boolean> {
    const rows = await this.query(
      `DELETE FROM ${this.opts.schema}.${this.opts.table} WHERE key = $1 RETURNING key`,
      [key],
    );
    return rows.length > 0;
  }

  /**
   * Only Keyv calls it, on the values a read found expired (`KeyvStateStore` reads through
   * `getMany`): it deletes those still expired. Another replica may have written the key again
   * since the read (a pair seen again as its record ends), and that value stays.
   */
  async deleteMany(keys: string[]): Promise<boolean> {
    const table = `${this.opts.schema}.${this.opts.table}`;
    const rows = await this.query(
      `DELETE FROM ${table} AS t WHERE t.key = ANY($1::text[])
        AND ${expiryOf('t.value')} <= $2 RETURNING t.key`,
      [keys, Date.now()],
    );
    return rows.length > 0;
  }
}

class PostgresClaimsAndSets implements ClaimsAndSets {
  #pool: pg.Pool;
  #prefix: string;
  #timer: NodeJS.Timeout | undefined;
  #sql: Statements;

  constructor(pool: pg.Pool, namespace: string, sweepIntervalMs: number, sql: Statements) {
    this.#pool = pool;
    this.#sql = sql;
    this.#prefix = `${namespace}:`;
    if (sweepIntervalMs > 0) {
      this.#timer = setInterval(() => {
        // A failed sweep (database restarting, say) is retried at the next tick.
        this.sweepExpired().catch(() => {});
      }, sweepIntervalMs);
      this.#timer.unref();
    }
  }

  async claim(key: string, ttlMs: number | undefined): Promise<boolean> {
    const now = Date.now();
    const result = await this.#pool.query(this.#sql.claim, [
      this.#prefix + key,
      ttlMs === undefined ? null : now + ttlMs,
      now,
    ]);
    return result.rowCount === 1;
  }

  async claimMany(keys: readonly string[], ttlMs: number | undefined): Promise<boolean[]> {
    const prefixed = keys.map((key) => this.#prefix + key);
    const won = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      const now = Date.now();
      try {
        const result = await this.#pool.query<{ key: string }>(this.#sql.claimMany, [
          prefixed,
          ttlMs === undefined ? null : now + ttlMs,
          now,
        ]);
        for (const row of result.rows) won.add(row.key);
        break;
      } catch (error) {
        // Ordered keys make a deadlock unlikely; should one still happen, the statement was rolled
        // back as a whole and can simply run again.
        if ((error as { code?: string }).code !== DEADLOCK || attempt >= 3) throw error;
      }
    }
    // A key repeated in `keys` is won at most once: by its first occurrence.
    return prefixed.map((key) => won.delete(key));
  }

  async releaseClaim(key: string): Promise<void> {
    await this.#pool.query(this.#sql.releaseClaim, [this.#prefix + key]);
  }

  async addMembers(set: string, members: readonly string[]): Promise<void> {
    await this.#pool.query(this.#sql.addMembers, [this.#prefix + set, members]);
  }

  async addToSets(entries: ReadonlyArray<readonly [string, string]>): Promise<void> {
    await this.#pool.query(this.#sql.addToSets, [
      entries.map(([set]) => this.#prefix + set),
      entries.map(([, member]) => member),
    ]);
  }

  async removeMembers(set: string, members: readonly string[]): Promise<void> {
    await this.#pool.query(this.#sql.removeMembers, [this.#prefix + set, members]);
  }

  /** One statement: a value committed before it runs keeps its member. */
  async removeGoneMembers(set: string, valuePrefix: string, members: readonly string[]): Promise<void> {
    await this.#pool.query(this.#sql.removeGoneMembers, [
      this.#prefix + set,
      members,
      this.#prefix + valuePrefix,
    ]);
  }

  async members(set: string): Promise<string[]> {
    const result = await this.#pool.query<{ member: string }>(this.#sql.members, [this.#prefix + set]);
    return result.rows.map((row) => row.member);
  }

  /** One query over the sets' index range. */
  async membersOfMany(sets: readonly string[]): Promise<string[][]> {
    const keys = sets.map((set) => this.#prefix + set);
    const result = await this.#pool.query<{ set_key: string; member: string }>(this.#sql.membersOfMany, [
      keys,
    ]);
    const bySet = new Map<string, string[]>(keys.map((key) => [key, []]));
    for (const row of result.rows) bySet.get(row.set_key)?.push(row.member);
    // A set named twice gets its own copy of the list each time.
    return keys.map((key) => [...bySet.get(key)!]);
  }

  async ping(): Promise<void> {
    await this.#pool.query('SELECT 1');
  }

  /**
   * Deletes this namespace's expired claims and values, then the identity index entries of the
   * pairs gone. @keyv/postgres only drops an expired value when it is read, so without this a pair
   * never seen again would stay forever. The expiry sits at the end of Keyv's serialised text:
   * `…,"expires":1764000000000}`.
   */
  async sweepExpired(now = Date.now()): Promise<number> {
    const pattern = `${escapeLike(this.#prefix)}%`;
    let deleted = 0;
    for (let batch = 0; batch < SWEEP_MAX_BATCHES; batch++) {
      const claims = await this.#pool.query(this.#sql.sweepClaims, [pattern, now, SWEEP_BATCH]);
      deleted += claims.rowCount ?? 0;
      if ((claims.rowCount ?? 0) < SWEEP_BATCH) break;
    }
    const values = await this.#pool.query(this.#sql.sweepValues, [pattern, now]);
    deleted += values.rowCount ?? 0;
    return deleted + (await this.pruneIdentityIndex());
  }

  /** Where the walk of the identity index goes on: the last entry it passed. */
  #identityCursor: readonly [setKey: string, member: string] = ['', ''];

  /**
   * Deletes the identity index entries whose pair is gone (run after the expired values are), so
   * that the index of an identity never listed or alerted again does not outlive its pairs: a
   * listing and an alert's count prune only the identity they read. `SWEEP_BATCH` entries at a
   * time in key order, at most `SWEEP_MAX_BATCHES` per sweep; the next sweep goes on from there,
   * and after the end starts over.
   */
  async pruneIdentityIndex(): Promise<number> {
    const sets = `${escapeLike(`${this.#prefix}ident:`)}%`;
    const pairs = `${this.#prefix}pair:`;
    const appIdAt = `${this.#prefix}ident:`.length + 1;
    let deleted = 0;
    for (let batch = 0; batch < SWEEP_MAX_BATCHES; batch++) {
      const [setKey, member] = this.#identityCursor;
      const end = await this.#pool.query<{ set_key: string; member: string }>(this.#sql.identityBatchEnd, [
        setKey,
        member,
        sets,
        SWEEP_BATCH - 1,
      ]);
      const last = end.rows[0];
      if (last === undefined) {
        const tail = await this.#pool.query(this.#sql.pruneIdentityTail, [
          setKey,
          member,
          sets,
          pairs,
          appIdAt,
        ]);
        this.#identityCursor = ['', ''];
        return deleted + (tail.rowCount ?? 0);
      }
      const pruned = await this.#pool.query(this.#sql.pruneIdentityBatch, [
        setKey,
        member,
        last.set_key,
        last.member,
        pairs,
        appIdAt,
        sets,
      ]);
      deleted += pruned.rowCount ?? 0;
      this.#identityCursor = [last.set_key, last.member];
    }
    return deleted;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Opens a PostgreSQL-backed state store: one `pg` pool for values (through @keyv/postgres, table
 * `keyv`), claims (`arc_claims`) and member sets (`arc_members`), all in the schema `public` (or
 * `options.schema`, which must exist) and created if missing. Rejects with a `StoreError`
 * (password masked) when the database cannot be used.
 */
export async function openPostgresStateStore(options: PostgresStateStoreOptions): Promise<StateStore> {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    // A connection that stops answering (the network lost it, a server gone without closing it)
    // would hold its query, and the ingest waiting on it, until TCP gives up (about 15 minutes):
    // past query_timeout the query fails and the pool drops that connection for a new one. The
    // server ends a wait for a lock earlier (lock_timeout), so that a query given up on never waits
    // on there, holding a connection, for as long as another session holds a table.
    query_timeout: options.queryTimeoutMs ?? 30_000,
    lock_timeout: options.lockTimeoutMs ?? 20_000,
  });
  // An idle connection dropped by the server is reported here; without a listener it would
  // crash the process. The next query simply opens a new connection.
  pool.on('error', () => {});
  const fail = async (what: string, error: unknown): Promise<never> => {
    await pool.end().catch(() => {});
    throw new StoreError(
      'STORE_UNREACHABLE',
      scrubSecret(`${what} PostgreSQL at ${options.display}: ${describeError(error)}`, options.password),
    );
  };
  const schema = options.schema ?? 'public';
  const sql = statementsIn(schema);
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    return fail('Cannot connect to', error);
  }
  if (options.existing) {
    const found = await pool
      .query<{ missing: string | null }>(sql.missingTable)
      .catch((error: unknown) => fail('Cannot read the state tables in', error));
    const missing = found.rows[0]?.missing;
    if (missing) {
      await pool.end().catch(() => {});
      throw new StoreError(
        'STORE_NOT_FOUND',
        scrubSecret(
          `no arc-responder tables in the schema ${schema} of PostgreSQL at ${options.display} (${missing} is missing; nothing was created): check the database and ?schema= of STORE_URL`,
          options.password,
        ),
      );
    }
  } else {
    try {
      await pool.query(sql.createTables);
    } catch (error) {
      // PostgreSQL 15 gives no role but the database owner CREATE on `public`.
      const hint =
        (error as { code?: string }).code === '42501'
          ? ` (the role may not create tables in the schema ${schema}: give it a schema of its own, CREATE SCHEMA arc_responder AUTHORIZATION <role>, and add ?schema=arc_responder to STORE_URL; or create the tables as an owner first)`
          : '';
      return fail(`Cannot create the state tables${hint} in`, error);
    }
  }

  const adapter = new PooledKeyvPostgres({
    uri: options.display,
    schema,
    [POOL]: pool,
  } as unknown as KeyvPostgresOptions);
  const rest = new PostgresClaimsAndSets(pool, options.namespace, options.sweepIntervalMs ?? 600_000, sql);
  const expiryIndex = options.maintain
    ? ensureExpiryIndex(options.url, sql, (error) =>
        options.warn?.(
          scrubSecret(
            `the index arc_claims_expires on ${schema}.arc_claims could not be built (${describeError(error)}): the sweep of expired claims reads the whole table instead. Build it as the table's owner: CREATE INDEX CONCURRENTLY arc_claims_expires ON ${schema}.arc_claims (expires)`,
            options.password,
          ),
        ),
      )
    : undefined;
  return new KeyvStateStore(
    'postgres',
    createKeyv(adapter, options.namespace),
    rest,
    `${options.namespace}:`,
    {
      sharedAcrossProcesses: true,
      acrossNetwork: true,
      closeKeyv: async () => {
        await expiryIndex?.stop(pool);
        await pool.end();
      },
      exactHas: false,
      readOneThroughMany: true,
      writeIfUnchanged: (entries) => adapter.writeIfUnchanged(entries),
      writeHeld: (keys, make) => adapter.writeHeld(keys, make),
    },
  );
}

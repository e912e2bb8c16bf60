/**
 * A store that answers but refuses every write (here a PostgreSQL database made read-only, as a
 * failover to a standby or an operator's `default_transaction_read_only` does): the start stops
 * with the reason, and a running service answers `/readyz` 503 with it, until writes work again.
 * Also when the store still takes the one write the check used to make, a claim it holds already,
 * which changes no row: a full disk fails every write that changes one (SQLite's no-op upsert
 * passes), as ingest's do.
 */
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { describeWithService, ownPostgresDatabase } from '../store/helpers.ts';
import { answer, arcRecord, freshAppId, postIngest, startTestApp } from '../support/http-app.ts';

describeWithService('a PostgreSQL store that refuses writes', 'TEST_POSTGRES_URL', (url) => {
  const own = ownPostgresDatabase(url, 'ro');
  /**
   * Sets the database read-only or not, for the connections opened from then on. `endOpen`: the
   * running service's open connections are ended too, so that its next ones follow (only while a
   * service runs: ending a connection whose pool is closing would be an error of the test's own).
   */
  const readOnly = async (on: boolean, endOpen = false) => {
    await own.admin.query(
      `ALTER DATABASE ${own.name} SET default_transaction_read_only = ${on ? 'on' : 'off'}`,
    );
    if (endOpen) {
      await own.admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [
        own.name,
      ]);
    }
  };

  it('readyz answers 503 naming the refused write while the database is read-only, and 200 once it is not', async () => {
    const t = await startTestApp({ env: { STORE_URL: own.url } });
    try {
      expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
      await readOnly(true, true);
      await vi.waitFor(
        async () => {
          const res = await answer<{ problems: string[] }>(await fetch(`${t.url}/readyz`));
          expect(res.status).toBe(503);
          expect(res.body.problems.join()).toMatch(
            /the postgres store refuses writes: .*read-only transaction/,
          );
        },
        { timeout: 10_000, interval: 200 },
      );
      const refused = await postIngest<{ code: string }>(t.url, arcRecord({ appId: freshAppId() }));
      expect(refused.status).toBe(503);
      expect(refused.body.code).toBe('store_unavailable');

      await readOnly(false, true);
      await vi.waitFor(async () => expect((await fetch(`${t.url}/readyz`)).status).toBe(200), {
        timeout: 10_000,
        interval: 200,
      });
      // Ingest takes detections again. A pooled connection the switch ended may still fail the
      // first request on it (503, as any dropped connection): the sender's retry is taken.
      await vi.waitFor(
        async () => {
          const taken = await postIngest<{ counts: { alerted: number } }>(
            t.url,
            arcRecord({ appId: freshAppId() }),
          );
          expect(taken.status).toBe(200);
          expect(taken.body.counts.alerted).toBe(1);
        },
        { timeout: 10_000, interval: 200 },
      );
    } finally {
      await readOnly(false, true);
      await t.close();
    }
  });

  it('the start stops with the reason when the store opens but takes no write (a role that may only read)', async () => {
    const role = `arc_reader_${process.pid}`;
    // The tables exist (an earlier start made them); the role may create in the schema and read them.
    const first = await startTestApp({ env: { STORE_URL: own.url } });
    await first.close();
    const owner = new pg.Pool({ connectionString: own.url, max: 1 });
    await own.admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'reader-secret'`);
    try {
      await owner.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${role}`);
      await owner.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
      const asReader = new URL(own.url);
      asReader.username = role;
      asReader.password = 'reader-secret';
      const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', STORE_URL: asReader.toString() });
      await expect(createApp({ config, logger: createLogger({ level: 'silent' }) })).rejects.toThrow(
        /the postgres store refuses writes: .*permission denied/,
      );
    } finally {
      await owner.query(`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${role}`);
      await owner.query(`REVOKE ALL ON SCHEMA public FROM ${role}`);
      await owner.end();
      await own.admin.query(`DROP ROLE IF EXISTS ${role}`);
    }
  });

  it('the start stops with the reason when a lock held by another session keeps the store from answering', async () => {
    // The tables exist (an earlier start made them); another session (a migration, a VACUUM FULL,
    // a transaction left open) holds a lock on the values table.
    const first = await startTestApp({ env: { STORE_URL: own.url } });
    await first.close();
    const locker = new pg.Client({ connectionString: own.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE public.keyv IN ACCESS EXCLUSIVE MODE');
      const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', STORE_URL: own.url });
      const started = Date.now();
      await expect(
        createApp({ config, logger: createLogger({ level: 'silent' }), storeDeadlineMs: 1500 }),
      ).rejects.toThrow(/the postgres store did not answer within 1500 ms at start \(a lock held/);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    }
  });

  it('the start stops with the reason when the store takes no write', async () => {
    // (PostgreSQL refuses already when the tables are made; a SQLite file that is read-only is
    // stopped by the write probe after opening.)
    await readOnly(true);
    try {
      const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', STORE_URL: own.url });
      await expect(createApp({ config, logger: createLogger({ level: 'silent' }) })).rejects.toThrow(
        /read-only transaction/,
      );
    } finally {
      await readOnly(false);
    }
  });
});

describe('a SQLite store that takes no write that changes a row (a full disk)', () => {
  it('readyz answers 503 naming the refused write while ingest is refused, and 200 once writes work again', async () => {
    const t = await startTestApp();
    const db = new DatabaseSync(path.join(t.dir, 'arc.db'));
    try {
      expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(200);
      expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
      // Every write that changes a value fails as a full disk fails it; a claim held already,
      // which changes nothing, still passes (as it does on a full disk).
      db.exec(`CREATE TRIGGER full_insert BEFORE INSERT ON keyv BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;
        CREATE TRIGGER full_update BEFORE UPDATE ON keyv BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;`);
      const refused = await postIngest<{ code: string }>(t.url, arcRecord({ appId: freshAppId() }));
      expect(refused.status).toBe(503);
      expect(refused.body.code).toBe('store_unavailable');
      const ready = await answer<{ problems: string[] }>(await fetch(`${t.url}/readyz`));
      expect(ready.status).toBe(503);
      expect(ready.body.problems.join()).toMatch(
        /the sqlite store refuses writes: .*database or disk is full/,
      );

      db.exec('DROP TRIGGER full_insert; DROP TRIGGER full_update;');
      expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
      expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(200);
    } finally {
      db.close();
      await t.close();
    }
  });
});

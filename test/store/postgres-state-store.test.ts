import KeyvPostgres from '@keyv/postgres';
import { Keyv } from 'keyv';
import pg from 'pg';
import { afterAll, expect, it, vi } from 'vitest';
import { createEngine } from '../../src/core/engine.ts';
import type { StateStore } from '../../src/core/ports.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { openPostgresStateStore } from '../../src/store/postgres-state-store.ts';
import { arcRecord, freshAppId } from '../support/http-app.ts';
import { tcpProxy } from '../support/tcp-proxy.ts';
import {
  describeWithService,
  expectKeyvCompatible,
  expectRecoversFromFrozenConnection,
  ownPostgresDatabase,
  raceClaimsAcrossProcesses,
  sleep,
  sorted,
  uniqueNamespace,
} from './helpers.ts';
import { describeStateStoreContract } from './state-store-contract.ts';

describeWithService('postgres:// state store', 'TEST_POSTGRES_URL', (url) => {
  const namespaces: string[] = [];
  const ns = (tag: string): string => {
    const namespace = uniqueNamespace(tag);
    namespaces.push(namespace);
    return namespace;
  };

  afterAll(async () => {
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      for (const namespace of namespaces) {
        const pattern = `${namespace}:%`;
        await pool.query('DELETE FROM public.keyv WHERE key LIKE $1', [pattern]);
        await pool.query('DELETE FROM public.arc_claims WHERE key LIKE $1', [pattern]);
        await pool.query('DELETE FROM public.arc_members WHERE set_key LIKE $1', [pattern]);
      }
    } finally {
      await pool.end();
    }
  });

  describeStateStoreContract('pg', (namespace) => {
    namespaces.push(namespace);
    return openStateStore(url, { namespace });
  });

  it('upserts overlapping batches from two stores in opposite orders without a deadlock', async () => {
    const namespace = ns('deadlock');
    const [a, b] = [await openStateStore(url, { namespace }), await openStateStore(url, { namespace })];
    try {
      const entries = Array.from({ length: 2000 }, (_, i) => ({
        key: `pair:app:10.0.${i >> 8}.${i & 255}`,
        value: { count: i },
        ttlMs: 60_000,
      }));
      const reversed = [...entries].reverse();
      for (let round = 0; round < 8; round++) {
        await Promise.all([a.setMany(entries), b.setMany(reversed)]);
      }
      expect(await a.get('pair:app:10.0.7.207')).toEqual({ count: 2000 - 1 });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps its tables in the schema that ?schema= names, which the operator created', async () => {
    const schema = `arc_${ns('schema')
      .replace(/[^a-z0-9]/g, '_')
      .slice(-40)}`;
    const admin = new pg.Pool({ connectionString: url, max: 1 });
    const withSchema = `${url}${url.includes('?') ? '&' : '?'}schema=${schema}`;
    try {
      // A schema that does not exist is named, not created.
      await expect(openStateStore(withSchema, { namespace: ns('schema') })).rejects.toThrow(
        new RegExp(`Cannot create the state tables in PostgreSQL .*schema "${schema}" does not exist`),
      );
      await admin.query(`CREATE SCHEMA ${schema}`);
      const store = await openStateStore(withSchema, { namespace: ns('schema') });
      try {
        await store.set('pair:x', { count: 3 });
        expect(await store.claim('claim:x', 60_000)).toBe(true);
        await store.addMembers('set:x', ['a', 'b']);
        expect(await store.get('pair:x')).toEqual({ count: 3 });
        expect(await store.claim('claim:x', 60_000)).toBe(false);
        expect(sorted(await store.members('set:x'))).toEqual(['a', 'b']);
      } finally {
        await store.close();
      }
      const tables = await admin.query<{ table_name: string }>(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
        [schema],
      );
      expect(tables.rows.map((r) => r.table_name)).toEqual(['arc_claims', 'arc_members', 'keyv']);
      const rows = await admin.query(`SELECT key FROM ${schema}.keyv`);
      expect(rows.rowCount).toBe(1);
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await admin.end();
    }
  });

  it('runs as a role that owns its schema and may create nothing else in the database', async () => {
    const suffix = ns('role')
      .replace(/[^a-z0-9]/g, '_')
      .slice(-30);
    const [role, schema] = [`arc_role_${suffix}`, `arc_own_${suffix}`];
    const admin = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'arc-test-pw'`);
      await admin.query(`CREATE SCHEMA ${schema} AUTHORIZATION ${role}`);
      const target = new URL(url);
      target.username = role;
      target.password = 'arc-test-pw';
      target.searchParams.set('schema', schema);
      const store = await openStateStore(target.toString(), { namespace: ns('role') });
      try {
        await store.setMany([{ key: 'pair:y', value: { count: 1 } }]);
        expect(await store.get('pair:y')).toEqual({ count: 1 });
        expect(await store.claimMany(['c:1', 'c:1'], 60_000)).toEqual([true, false]);
      } finally {
        await store.close();
      }
      // The role could not have made the tables anywhere else.
      const { rows } = await admin.query<{ ok: boolean }>(
        "SELECT has_database_privilege($1, current_database(), 'CREATE') AS ok",
        [role],
      );
      expect(rows[0]!.ok).toBe(false);
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      await admin.end();
    }
  });

  it('names the way out when the role may not create tables in its schema (public, from PostgreSQL 15 on)', async () => {
    const [role, schema] = [`arc_nocreate_${process.pid}`, `arc_notmine_${process.pid}`];
    const admin = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'arc-nocreate-pw'`);
      // A schema the role may use but not create in, as public is for a role that does not own the database.
      await admin.query(`CREATE SCHEMA ${schema}`);
      await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
      const target = new URL(url);
      target.username = role;
      target.password = 'arc-nocreate-pw';
      target.searchParams.set('schema', schema);
      const opening = openStateStore(target.toString(), { namespace: ns('nocreate') });
      await expect(opening).rejects.toThrow(
        new RegExp(
          `^Cannot create the state tables \\(the role may not create tables in the schema ${schema}: give it a schema of its own, CREATE SCHEMA arc_responder AUTHORIZATION <role>, and add \\?schema=arc_responder to STORE_URL; or create the tables as an owner first\\) in PostgreSQL .*permission denied for schema ${schema}`,
        ),
      );
      await expect(opening).rejects.not.toThrow(/arc-nocreate-pw/);
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      await admin.end();
    }
  });

  it('accepts the postgresql:// spelling too', async () => {
    const store = await openStateStore(url.replace(/^postgres:/, 'postgresql:'), { namespace: ns('scheme') });
    try {
      expect(store.kind).toBe('postgres');
      await store.ping();
    } finally {
      await store.close();
    }
  });

  it('writes values that @keyv/postgres on its own reads', async () => {
    const namespace = ns('compat');
    const store = await openStateStore(url, { namespace });
    const keyv = new Keyv({ store: new KeyvPostgres({ uri: url }), namespace });
    try {
      await expectKeyvCompatible(store, keyv);
    } finally {
      await keyv.disconnect();
      await store.close();
    }
  });

  it('sweeps expired values and claims of its namespace out of the tables', async () => {
    const namespace = ns('sweep');
    const other = ns('sweep-other');
    const store = await openPostgresStateStore({
      url,
      display: url,
      password: '',
      namespace,
      sweepIntervalMs: 50,
    });
    const bystander = await openStateStore(url, { namespace: other });
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    const count = async (table: string, ns: string): Promise<number> => {
      const { rows } = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM public.${table} WHERE key LIKE $1`,
        [`${ns}:%`],
      );
      return Number(rows[0]!.n);
    };
    try {
      await store.setMany([
        { key: 'short', value: 1, ttlMs: 1 },
        { key: 'long', value: 2, ttlMs: 60_000 },
        { key: 'forever', value: 3 },
      ]);
      await store.claimMany(['c-short'], 1);
      await store.claimMany(['c-long'], 60_000);
      await bystander.set('short', 'not mine', 1);
      // Wait (bounded) for the sweep timer; assert on what it removed, not on how fast.
      for (
        let i = 0;
        i < 100 && ((await count('keyv', namespace)) > 2 || (await count('arc_claims', namespace)) > 1);
        i++
      ) {
        await sleep(50);
      }
      expect(await count('keyv', namespace)).toBe(2);
      expect(await count('arc_claims', namespace)).toBe(1);
      expect(await store.getMany(['long', 'forever'])).toEqual([2, 3]);
      expect(await count('keyv', other)).toBe(1);
    } finally {
      await pool.end();
      await bystander.close();
      await store.close();
    }
  });

  it('claims a large batch in chunks and still counts an event repeated in it once, at its first occurrence', async () => {
    const store = await openStateStore(url, { namespace: ns('chunks') });
    try {
      const engine = await createEngine({ store, windowMs: 7 * 86_400_000, outbox: { add: async () => {} } });
      // Three rounds, each a new pair: the chunks' claims race anew each time.
      for (let round = 0; round < 3; round++) {
        const appId = freshAppId();
        const events = Array.from({ length: 2500 }, () => arcRecord({ appId }));
        // The first event again, at the end: in the third chunk, claimed on another connection.
        events.push(structuredClone(events[0]!));
        const outcomes = (await engine.evaluate(events)).map((r) => r.outcome);
        expect(outcomes[0]).toBe('alerted');
        expect(outcomes.slice(1, -1).every((o) => o === 'known')).toBe(true);
        expect(outcomes.at(-1)).toBe('duplicate');
      }
    } finally {
      await store.close();
    }
  });

  it('answers one of two racing deliveries of an event as duplicate, whichever pool connection claims first', async () => {
    const store = await openStateStore(url, { namespace: ns('race') });
    try {
      const engine = await createEngine({ store, windowMs: 7 * 86_400_000, outbox: { add: async () => {} } });
      for (let round = 0; round < 20; round++) {
        const event = arcRecord({ appId: freshAppId() });
        const [a, b] = await Promise.all([
          engine.evaluate([event]),
          engine.evaluate([structuredClone(event)]),
        ]);
        expect([a[0]?.outcome, b[0]?.outcome].sort()).toEqual(['alerted', 'duplicate']);
      }
    } finally {
      await store.close();
    }
  });

  it('lets two processes racing on one database win each of 200 keys exactly once', async () => {
    const [a, b] = await raceClaimsAcrossProcesses(url, ns('race'), 200);
    const all = [...a!, ...b!];
    expect(new Set(all).size).toBe(all.length);
    expect(sorted(all)).toEqual(sorted(Array.from({ length: 200 }, (_, i) => `race-${i}`)));
  });
});

describeWithService(
  'postgres:// state store over a connection that stops answering',
  'TEST_POSTGRES_URL',
  (url) => {
    // A connection the network lost (a server gone without closing it, a failover, a firewall that
    // drops a flow) answers nothing, and TCP gives up on it only after about 15 minutes. The store
    // gives up on a query after its query timeout, drops that connection and goes on over new ones,
    // rather than holding the caller (and every ingest behind it) until then.
    it('fails a query that gets no answer within the query timeout, as unreachable, and answers the next one over a new connection', async () => {
      const proxy = await tcpProxy(new URL(url));
      const namespace = uniqueNamespace('frozen');
      const store = await openPostgresStateStore({
        url: proxy.url,
        display: proxy.url,
        password: '',
        namespace,
        queryTimeoutMs: 800,
        lockTimeoutMs: 500,
      });
      try {
        await expectRecoversFromFrozenConnection(store, proxy, {
          message: expect.stringMatching(/^The postgres store failed: Query read timeout/),
        });
      } finally {
        await store.close();
        proxy.close();
        const pool = new pg.Pool({ connectionString: url, max: 1 });
        await pool.query('DELETE FROM public.keyv WHERE key LIKE $1', [`${namespace}:%`]);
        await pool.end();
      }
    });
  },
);

describeWithService('postgres:// a read that finds a value expired', 'TEST_POSTGRES_URL', (url) => {
  // The expiry of a value is inside it: a read that finds it expired deletes it. Another replica
  // may make that key again in between (a pair seen again as its record ends, on two replicas):
  // the delete takes only a value still expired by then.
  it.each(['getMany', 'get'] as const)(
    'deletes it through %s only while it is expired: not the value another replica wrote in its place meanwhile',
    async (read) => {
      const proxy = await tcpProxy(new URL(url));
      const namespace = uniqueNamespace('expired-read');
      const open = (through: string) =>
        openPostgresStateStore({
          url: through,
          display: through,
          password: '',
          namespace,
          sweepIntervalMs: 0,
        });
      const [a, b] = [await open(proxy.url), await open(url)];
      const key = 'pair:app:10.0.0.1';
      try {
        await b.set(key, { n: 1 }, 1);
        await new Promise((resolve) => setTimeout(resolve, 20));
        // A reads the value once it has expired; its delete is held while B writes the key again.
        const held = proxy.holdNext('DELETE FROM');
        const found = read === 'get' ? a.get(key) : a.getMany([key]).then(([value]) => value);
        const release = await held;
        await b.set(key, { n: 2 }, 60_000);
        release();
        expect(await found).toBeUndefined();
        expect(await b.get(key)).toEqual({ n: 2 });
        expect(await a.get(key)).toEqual({ n: 2 });
      } finally {
        await Promise.all([a.close(), b.close()]);
        await proxy.close();
        const pool = new pg.Pool({ connectionString: url, max: 1 });
        await pool.query('DELETE FROM public.keyv WHERE key LIKE $1', [`${namespace}:%`]);
        await pool.end();
      }
    },
  );
});

describeWithService('postgres:// conditional writes of two replicas', 'TEST_POSTGRES_URL', (url) => {
  const db = ownPostgresDatabase(url, 'deadlock');

  it('writes overlapping batches of two connections in any order without a deadlock', async () => {
    const [a, b] = await twoReplicasOn(db.url);
    const keys = await storedPairKeys(a, '10.0');
    for (let round = 1; round <= 20; round++) {
      const batch = keys.map((key) => ({ key, value: { n: round }, expect: { rev: null } }));
      // The same rows, one connection in key order and the other in reverse.
      const answers = await Promise.all([
        a.setManyIfUnchanged(batch),
        b.setManyIfUnchanged(batch.toReversed()),
      ]);
      expect(answers.flat().every((answer) => answer === true)).toBe(true);
    }
    expect(await a.getMany(keys.slice(0, 2))).toEqual([{ n: 20 }, { n: 20 }]);
    // A session's statistics reach pg_stat_database by the time it has ended.
    await Promise.all([a.close(), b.close()]);
    expect(await deadlocksIn(db.url)).toBe(0);
  });
});

describeWithService(
  'postgres:// conditional writes of two replicas that read at different moments',
  'TEST_POSTGRES_URL',
  (url) => {
    // Deadlocks are counted per database: this test has one of its own.
    const db = ownPostgresDatabase(url, 'crossing');

    it('writes crossing batches, each creating the records the other replaces, without a deadlock', async () => {
      const [a, b] = await twoReplicasOn(db.url);
      try {
        const keys = await storedPairKeys(a, '10.1');
        // Each read half of the records at a moment they were not there yet (expects them absent)
        // and the other half as they are: A the even ones absent, B the odd ones.
        const batchOf = (absent: 0 | 1, round: number) =>
          keys.map((key, i) => ({
            key,
            value: { n: round },
            expect: i % 2 === absent ? ('absent' as const) : { rev: null },
          }));
        for (let round = 1; round <= 10; round++) {
          const [ofA, ofB] = await Promise.all([
            a.setManyIfUnchanged(batchOf(0, round)),
            b.setManyIfUnchanged(batchOf(1, round)),
          ]);
          // Each replaces what it read as it is, and is told that what it took for absent is there.
          expect(ofA.map((answer) => answer === true)).toEqual(keys.map((_, i) => i % 2 === 1));
          expect(ofB.map((answer) => answer === true)).toEqual(keys.map((_, i) => i % 2 === 0));
        }
        expect(await a.getMany(keys.slice(0, 2))).toEqual([{ n: 10 }, { n: 10 }]);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
      expect(await deadlocksIn(db.url)).toBe(0);
    });
  },
);

describeWithService('postgres:// the locks of a conditional batch', 'TEST_POSTGRES_URL', (url) => {
  // A batch takes its records' locks in key order before it writes any of them, whatever it
  // expects of each: one that expects a record absent, and one it writes over whatever is there,
  // are locked in one pass, not by the two steps that write them (each in its own key order).
  it.each([
    ['overwritten', 'expected absent'],
    ['expected absent', 'overwritten'],
  ] as const)(
    'waiting for the lock of its first record (%s), it holds none of the next (%s)',
    async (first, second) => {
      const namespace = uniqueNamespace('lock-order');
      const store = await openPostgresStateStore({
        url,
        display: url,
        password: '',
        namespace,
        sweepIntervalMs: 0,
      });
      const other = new pg.Pool({ connectionString: url, max: 2 });
      const keys = ['pair:app:10.3.0.1', 'pair:app:10.3.0.2', 'pair:app:10.3.0.3', 'pair:app:10.3.0.4'];
      const holder = await other.connect();
      let writing: Promise<unknown> = Promise.resolve();
      try {
        await store.setMany(keys.map((key) => ({ key, value: { n: 0 } })));
        await holder.query('BEGIN');
        await holder.query('SELECT key FROM public.keyv WHERE key = $1 FOR UPDATE', [
          `${namespace}:${keys[0]}`,
        ]);
        const kinds = [first, second, first, second];
        writing = store.setManyIfUnchanged(
          keys.map((key, i) => ({
            key,
            value: { n: 1 },
            ...(kinds[i] === 'expected absent' ? { expect: 'absent' as const } : {}),
          })),
        );
        // Blocked on the first record; the second is free for anyone else.
        await new Promise((resolve) => setTimeout(resolve, 300));
        const probe = await other.connect();
        try {
          await probe.query('BEGIN');
          await expect(
            probe.query('SELECT key FROM public.keyv WHERE key = $1 FOR UPDATE NOWAIT', [
              `${namespace}:${keys[1]}`,
            ]),
          ).resolves.toMatchObject({ rowCount: 1 });
          await probe.query('ROLLBACK');
        } finally {
          probe.release();
        }
        await holder.query('COMMIT');
        const answers = (await writing) as Array<true | object>;
        expect(answers.map((answer) => answer === true)).toEqual(kinds.map((kind) => kind === 'overwritten'));
      } finally {
        await holder.query('ROLLBACK').catch(() => undefined);
        await writing.catch(() => undefined);
        holder.release();
        await store.close();
        await other.query('DELETE FROM public.keyv WHERE key LIKE $1', [`${namespace}:%`]);
        await other.end();
      }
    },
  );
});

describeWithService('postgres:// updates with the keys held', 'TEST_POSTGRES_URL', (url) => {
  const db = ownPostgresDatabase(url, 'held');

  it('lets no other write in between: two replicas adding to the same counters 40 times each reach 80, also where none existed', async () => {
    const [a, b] = await twoReplicasOn(db.url);
    try {
      // `c1` exists; `c2` does not, so both replicas' first updates insert it and one of them
      // finds it made meanwhile.
      await a.set('c1', { n: 0 });
      let revs = 0;
      const add = (store: StateStore) => async () => {
        for (let i = 0; i < 40; i++) {
          await store.updateManyHeld!(['c2', 'c1'], (_, current) => ({
            value: { n: ((current as { n: number } | undefined)?.n ?? 0) + 1, rev: `h${revs++}` },
            ttlMs: 60_000,
          }));
        }
      };
      // A third writer, conditional, races them without pause: it loses rounds, never a count.
      const conditional = async () => {
        let landed = 0;
        while (landed < 20) {
          const [current] = await b.getMany<{ n: number; rev?: string }>(['c1']);
          const [answer] = await b.setManyIfUnchanged([
            {
              key: 'c1',
              value: { n: (current?.n ?? 0) + 1, rev: `w${revs++}` },
              expect: { rev: current?.rev ?? null },
            },
          ]);
          if (answer === true) landed++;
        }
      };
      await Promise.all([add(a)(), add(b)(), conditional()]);
      const [c1, c2] = await a.getMany<{ n: number }>(['c1', 'c2']);
      expect([c1?.n, c2?.n]).toEqual([100, 80]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describeWithService(
  'postgres:// a held update whose connection the server ends',
  'TEST_POSTGRES_URL',
  (url) => {
    const db = ownPostgresDatabase(url, 'heldend');

    it('fails the call as unreachable, the process carries on, and a later call is answered', async () => {
      // Every session of this database is ended when it waits idle in a transaction for 1 ms: the
      // server ends the held update's while it works out what to write (20 ms here).
      await db.admin.query(`ALTER DATABASE ${db.name} SET idle_in_transaction_session_timeout = '1ms'`);
      const [a, b] = await twoReplicasOn(db.url);
      try {
        await expect(
          a.updateManyHeld!(['k'], () => {
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
            return { value: { n: 1 } };
          }),
        ).rejects.toMatchObject({ code: 'STORE_UNREACHABLE' });
        // The client's error after the session ended is heard: nothing is thrown as uncaught.
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(await b.get('k')).toBeUndefined();
        await db.admin.query(`ALTER DATABASE ${db.name} RESET idle_in_transaction_session_timeout`);
        // A store opened now has sessions without the timeout.
        const c = await replicaOn(db.url);
        await c.updateManyHeld!(['k'], () => ({ value: { n: 2 } }));
        await c.close();
        expect(await b.get('k')).toEqual({ n: 2 });
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  },
);

/** A store on `url`, as a replica has (in the namespace of `twoReplicasOn`). */
const replicaOn = (url: string) =>
  openPostgresStateStore({ url, display: url, password: '', namespace: 'dl', sweepIntervalMs: 0 });

/** Two stores on one database, as two replicas have. */
async function twoReplicasOn(url: string) {
  return [await replicaOn(url), await replicaOn(url)] as const;
}

/** The keys of 300 pair records stored without a `rev`, their IPs under `net` (`10.0`, say). */
async function storedPairKeys(store: StateStore, net: string): Promise<string[]> {
  const keys = Array.from({ length: 300 }, (_, i) => `pair:app:${net}.${Math.floor(i / 256)}.${i % 256}`);
  await store.setMany(keys.map((key) => ({ key, value: { n: 0 } })));
  return keys;
}

/** Deadlocks PostgreSQL has counted in a database (a session's count is in once it has ended). */
async function deadlocksIn(url: string): Promise<number> {
  const admin = new pg.Pool({ connectionString: url, max: 1 });
  try {
    const { rows } = await admin.query<{ deadlocks: string }>(
      'SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()',
    );
    return Number(rows[0]!.deadlocks);
  } finally {
    await admin.end();
  }
}

describeWithService('postgres:// expired claims at scale', 'TEST_POSTGRES_URL', (url) => {
  const db = ownPostgresDatabase(url, 'expiry');
  /** The rows of a table of `public` whose `column` is LIKE `pattern`. */
  const rowsLike = async (pool: pg.Pool, table: string, column: string, pattern: string) => {
    const { rows } = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM public.${table} WHERE ${column} LIKE $1`,
      [pattern],
    );
    return Number(rows[0]!.n);
  };
  const indexState = async (pool: pg.Pool) => {
    const { rows } = await pool.query<{ valid: boolean }>(
      "SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass('public.arc_claims_expires')",
    );
    return rows[0] === undefined ? 'missing' : rows[0].valid ? 'valid' : 'invalid';
  };
  const open = (maintain: boolean, sweepIntervalMs = 0) =>
    openPostgresStateStore({
      url: db.url,
      display: db.url,
      password: '',
      namespace: 'scale',
      sweepIntervalMs,
      maintain,
    });

  it("the service's store builds the index its sweep reads in the background, and builds again one left invalid", async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      // A one-off command's store leaves the tables as they are.
      await (await open(false)).close();
      expect(await indexState(pool)).toBe('missing');
      const store = await open(true);
      await vi.waitFor(async () => expect(await indexState(pool)).toBe('valid'), {
        timeout: 10_000,
        interval: 50,
      });
      await store.close();
      // A build cut short leaves an invalid index, which the planner never reads.
      await pool.query(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'public.arc_claims_expires'::regclass",
      );
      const again = await open(true);
      await vi.waitFor(async () => expect(await indexState(pool)).toBe('valid'), {
        timeout: 10_000,
        interval: 50,
      });
      await again.close();
    } finally {
      await pool.end();
    }
  });

  it('says why when its role may not build the index (tables made by another role)', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    const role = `arc_noidx_${process.pid}`;
    try {
      await pool.query('DROP INDEX IF EXISTS public.arc_claims_expires');
      // The tables exist, made by their owner; the service's role may use them and create in the
      // schema, but only a table's owner may index it.
      await (await open(false)).close();
      await pool.query(`CREATE ROLE ${role} LOGIN PASSWORD 'arc-noidx-pw'`);
      await pool.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${role}`);
      await pool.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}`);
      const target = new URL(db.url);
      target.username = role;
      target.password = 'arc-noidx-pw';
      const warnings: string[] = [];
      const store = await openPostgresStateStore({
        url: target.toString(),
        display: target.toString(),
        password: 'arc-noidx-pw',
        namespace: 'scale',
        sweepIntervalMs: 0,
        maintain: true,
        warn: (message) => warnings.push(message),
      });
      try {
        await vi.waitFor(() => expect(warnings).toHaveLength(1), { timeout: 10_000, interval: 50 });
        expect(warnings[0]).toMatch(
          /^the index arc_claims_expires on public\.arc_claims could not be built \(.*must be owner of table arc_claims.*\): the sweep of expired claims reads the whole table instead\. Build it as the table's owner: CREATE INDEX CONCURRENTLY arc_claims_expires ON public\.arc_claims \(expires\)$/,
        );
        expect(warnings[0]).not.toContain('arc-noidx-pw');
        // The store works all the same.
        expect(await store.claimMany(['noidx:1'], 60_000)).toEqual([true]);
        expect(await indexState(pool)).toBe('missing');
      } finally {
        await store.close();
      }
    } finally {
      await pool.query(`DROP OWNED BY ${role}`).catch(() => undefined);
      await pool.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      await pool.end();
    }
  });

  it('closes at once while its index build waits for a transaction another session keeps open', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    const holder = await pool.connect();
    try {
      await pool.query('DROP INDEX IF EXISTS public.arc_claims_expires');
      await holder.query('BEGIN');
      // A write in progress on the table: a concurrent build waits for it to end.
      await holder.query("INSERT INTO public.arc_claims (key, expires) VALUES ('scale:held', NULL)");
      const store = await open(true);
      await vi.waitFor(
        async () => {
          const { rows } = await pool.query<{ n: string }>(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'",
          );
          expect(Number(rows[0]!.n)).toBe(1);
        },
        { timeout: 10_000, interval: 50 },
      );
      const started = performance.now();
      await store.close();
      expect(performance.now() - started).toBeLessThan(2000);
      // Cancelled on the server too, not left waiting there with its lock.
      await vi.waitFor(
        async () => {
          const { rows } = await pool.query<{ n: string }>(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%' AND state = 'active'",
          );
          expect(Number(rows[0]!.n)).toBe(0);
        },
        { timeout: 2000, interval: 50 },
      );
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
      await pool.end();
    }
  });

  it('prunes the identity index of pairs gone, a batch at a time, and keeps the live ones', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    const store = await open(false);
    try {
      // 30 identities of 1,000 IPs each; the pairs of the first 500 IPs of the first identity
      // and of one IP of the last live on, the rest expired (their values already swept).
      await pool.query(
        `INSERT INTO public.arc_members (set_key, member)
         SELECT 'scale:ident:app-' || i, '10.0.' || (n / 256) || '.' || (n % 256)
         FROM generate_series(1, 30) AS i, generate_series(0, 999) AS n
         UNION ALL SELECT 'elsewhere:ident:app-1', '10.9.9.9'`,
      );
      const live = [
        ...Array.from({ length: 500 }, (_, n) => ['app-1', `10.0.${Math.floor(n / 256)}.${n % 256}`]),
        ['app-30', '10.0.3.231'],
      ];
      await store.setMany(
        live.map(([app, ip]) => ({ key: `pair:${app}:${ip}`, value: { n: 1 }, ttlMs: 3_600_000 })),
      );
      const swept = await open(false, 50);
      const count = (pattern: string) => rowsLike(pool, 'arc_members', 'set_key', pattern);
      await vi.waitFor(async () => expect(await count('scale:ident:%')).toBe(501), {
        timeout: 20_000,
        interval: 100,
      });
      expect((await store.members('ident:app-1')).length).toBe(500);
      expect(await store.members('ident:app-30')).toEqual(['10.0.3.231']);
      expect(await store.members('ident:app-2')).toEqual([]);
      // Another namespace's index is its own.
      expect(await count('elsewhere:%')).toBe(1);
      await swept.close();
    } finally {
      await store.close();
      await pool.end();
    }
  });

  it('sweeps expired claims a batch at a time and keeps the live ones', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    const store = await open(true);
    try {
      await vi.waitFor(async () => expect(await indexState(pool)).toBe('valid'), {
        timeout: 10_000,
        interval: 50,
      });
      const past = Date.now() - 1000;
      const future = Date.now() + 3_600_000;
      await pool.query(
        `INSERT INTO public.arc_claims (key, expires)
         SELECT 'scale:old-' || n, $1::bigint FROM generate_series(1, 25000) AS n
         UNION ALL SELECT 'scale:live-' || n, $2::bigint FROM generate_series(1, 500) AS n
         UNION ALL SELECT 'elsewhere:old-' || n, $1::bigint FROM generate_series(1, 10) AS n`,
        [past, future],
      );
      const swept = await open(false, 50);
      const count = (pattern: string) => rowsLike(pool, 'arc_claims', 'key', pattern);
      await vi.waitFor(async () => expect(await count('scale:old-%')).toBe(0), {
        timeout: 10_000,
        interval: 100,
      });
      expect(await count('scale:live-%')).toBe(500);
      expect(await count('elsewhere:%')).toBe(10);
      await swept.close();
    } finally {
      await store.close();
      await pool.end();
    }
  });
});

import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Keyv } from 'keyv';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SqliteKeyvStore } from '../../src/store/sqlite-keyv-store.ts';
import { sleep } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'arc-sqlite-keyv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Plain Keyv (its default serialiser) over the adapter: the adapter must honour Keyv's contract. */
describe('SqliteKeyvStore under a plain Keyv', () => {
  const opened: Array<{ disconnect(): Promise<void> }> = [];
  const open = (file: string, namespace: string, options: { sweepIntervalMs?: number } = {}) => {
    const adapter = new SqliteKeyvStore({ path: join(dir, file), sweepIntervalMs: 0, ...options });
    const keyv = new Keyv({ store: adapter, namespace, throwOnErrors: true });
    opened.push(keyv);
    return { adapter, keyv };
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((k) => k.disconnect()));
  });

  it('creates the parent directory and the table, with WAL and synchronous=NORMAL', () => {
    const { adapter } = open('deep/er/store.db', 'ns');
    expect(existsSync(join(dir, 'deep/er/store.db'))).toBe(true);
    expect(adapter.db.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
    // 1 = NORMAL
    expect(adapter.db.prepare('PRAGMA synchronous').get()).toEqual({ synchronous: 1 });
    expect(adapter.opts).toMatchObject({ dialect: 'sqlite', table: 'keyv' });
  });

  it('sets, gets, overwrites and deletes, one and many', async () => {
    const { keyv } = open('basic.db', 'ns');
    expect(await keyv.set('a', { n: 1 })).toBe(true);
    await keyv.set('a', { n: 2 });
    await keyv.setMany([
      { key: 'b', value: 'B' },
      { key: 'c', value: [':c'] },
    ]);
    expect(await keyv.get('a')).toEqual({ n: 2 });
    expect(await keyv.getMany(['c', 'x', 'b'])).toEqual([[':c'], undefined, 'B']);
    expect(await keyv.has('b')).toBe(true);
    expect(await keyv.hasMany(['b', 'x'])).toEqual([true, false]);
    expect(await keyv.delete('a')).toBe(true);
    expect(await keyv.delete('a')).toBe(false);
    expect(await keyv.deleteMany(['b', 'c', 'x'])).toBe(true);
    expect(await keyv.getMany(['b', 'c'])).toEqual([undefined, undefined]);
  });

  it('treats expired rows as absent in get, getMany and has', async () => {
    const { keyv, adapter } = open('ttl.db', 'ns');
    await keyv.set('short', 1, 100);
    await keyv.set('long', 2, 60_000);
    expect(await keyv.has('short')).toBe(true);
    await sleep(250);
    // has() goes straight to the adapter, without Keyv's own expiry check.
    expect(await keyv.has('short')).toBe(false);
    expect(await adapter.has('ns:short')).toBe(false);
    expect(await adapter.get('ns:short')).toBeUndefined();
    expect(await keyv.getMany(['short', 'long'])).toEqual([undefined, 2]);
  });

  it('clears its own namespace only, including namespaces with LIKE wildcards', async () => {
    const one = open('clear.db', 'one_');
    const oneX = open('clear.db', 'oneX');
    const two = open('clear.db', 'two');
    await one.keyv.set('k', 1);
    await oneX.keyv.set('k', 2);
    await two.keyv.set('k', 3);
    await one.keyv.clear();
    expect(await one.keyv.get('k')).toBeUndefined();
    expect(await oneX.keyv.get('k')).toBe(2);
    expect(await two.keyv.get('k')).toBe(3);
  });

  it('iterates over the live entries of its namespace, across pages', async () => {
    const { keyv } = open('iter.db', 'it');
    const other = open('iter.db', 'other');
    await keyv.setMany(Array.from({ length: 230 }, (_, i) => ({ key: `k${i}`, value: i })));
    await keyv.set('expiring', 'x', 50);
    await other.keyv.set('k0', 'not mine');
    await sleep(150);
    const seen = new Map<string, unknown>();
    for await (const [key, value] of keyv.iterator!(undefined)) seen.set(key as string, value);
    expect(seen.size).toBe(230);
    expect(seen.get('k0')).toBe(0);
    expect(seen.get('k229')).toBe(229);
    expect(seen.has('expiring')).toBe(false);
  });

  it('sweeps expired rows out of the file, on demand and from its timer', async () => {
    const { keyv, adapter } = open('sweep.db', 'sw');
    const rows = () => (adapter.db.prepare('SELECT count(*) AS n FROM keyv').get() as { n: number }).n;
    await keyv.setMany(
      Array.from({ length: 12_000 }, (_, i) => ({ key: `k${i}`, value: i, ttl: i % 3 === 0 ? 1 : 60_000 })),
    );
    await keyv.set('forever', 'stays');
    await sleep(20);
    expect(adapter.sweepExpired()).toBe(4000);
    expect(rows()).toBe(8001);

    const timed = open('sweep-timer.db', 'sw', { sweepIntervalMs: 20 });
    const timedRows = () =>
      (timed.adapter.db.prepare('SELECT count(*) AS n FROM keyv').get() as { n: number }).n;
    await timed.keyv.set('gone', 1, 1);
    await timed.keyv.set('kept', 2);
    for (let i = 0; i < 100 && timedRows() > 1; i++) await sleep(20);
    expect(timedRows()).toBe(1);
    expect(await timed.keyv.get('kept')).toBe(2);
  });

  it('shares the file with other connections (another process sees committed writes)', async () => {
    const { keyv } = open('shared.db', 'sh');
    await keyv.set('k', 'v');
    const reader = new DatabaseSync(join(dir, 'shared.db'), { readOnly: true });
    try {
      const row = reader.prepare('SELECT value, expires FROM keyv WHERE key = ?').get('sh:k');
      expect(row).toEqual({ value: '{"value":"v"}', expires: null });
    } finally {
      reader.close();
    }
  });

  it('refuses a table name that is not a plain SQL identifier', () => {
    expect(() => new SqliteKeyvStore({ path: ':memory:', table: 'keyv; DROP TABLE x' })).toThrow(
      /SQLite table name "keyv; DROP TABLE x" is not a valid SQL identifier/,
    );
  });
});

describe('SqliteKeyvStore WAL checkpoints', () => {
  const bigValue = 'x'.repeat(2000);
  const fill = (adapter: SqliteKeyvStore, from: number, n: number) =>
    adapter.setMany(
      Array.from({ length: n }, (_, i) => ({ key: `k${from + i}`, value: `${bigValue}${from + i}` })),
    );
  const autocheckpoint = (adapter: SqliteKeyvStore) =>
    (adapter.db.prepare('PRAGMA wal_autocheckpoint').get() as { wal_autocheckpoint: number })
      .wal_autocheckpoint;
  const sizeLimit = (adapter: SqliteKeyvStore) =>
    (adapter.db.prepare('PRAGMA journal_size_limit').get() as { journal_size_limit: number })
      .journal_size_limit;

  it('copies the log into the database file from a worker thread, not from the committing call', async () => {
    const path = join(dir, 'ckpt-background.db');
    const adapter = new SqliteKeyvStore({ path, sweepIntervalMs: 0, checkpointIntervalMs: 10 });
    try {
      // The committing connection never checkpoints, nor truncates the log, by itself.
      expect(autocheckpoint(adapter)).toBe(0);
      expect(sizeLimit(adapter)).toBe(-1);
      const before = statSync(path).size;
      // About 1,000 pages of log: with SQLite's own checkpoints these commits would copy them.
      for (let i = 0; i < 20; i++) await fill(adapter, i * 100, 100);
      // The pages reach the database file without any further call on this connection.
      for (let i = 0; i < 200 && statSync(path).size < before + 2_000_000; i++) await sleep(20);
      expect(statSync(path).size).toBeGreaterThan(before + 2_000_000);
      expect(await adapter.get('k1999')).toBe(`${bigValue}1999`);
    } finally {
      await adapter.disconnect();
    }
  });

  it('keeps every write across the checkpoints and leaves no log behind once closed', async () => {
    const path = join(dir, 'ckpt-close.db');
    const adapter = new SqliteKeyvStore({ path, sweepIntervalMs: 0, checkpointIntervalMs: 1 });
    for (let i = 0; i < 30; i++) {
      await fill(adapter, i * 50, 50);
      await sleep(1);
    }
    await Promise.all([adapter.disconnect(), adapter.disconnect()]);
    expect(adapter.db.isOpen).toBe(false);
    // The checkpointer closed its connection first, so this close was the last: log copied, removed.
    expect(existsSync(`${path}-wal`)).toBe(false);
    const reader = new DatabaseSync(path, { readOnly: true });
    try {
      expect(reader.prepare('SELECT count(*) AS n FROM keyv').get()).toEqual({ n: 1500 });
      expect(reader.prepare('SELECT value FROM keyv WHERE key = ?').get('k1499')).toEqual({
        value: `${bigValue}1499`,
      });
    } finally {
      reader.close();
    }
  });

  it('cuts a -wal file grown past its limit back once writes pause', async () => {
    const path = join(dir, 'ckpt-trim.db');
    const wal = () => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);
    const adapter = new SqliteKeyvStore({
      path,
      sweepIntervalMs: 0,
      checkpointIntervalMs: 5,
      walSizeLimitBytes: 1_000_000,
    });
    try {
      // One transaction of about 4 MB: the log must hold all of it until it commits.
      await fill(adapter, 0, 2000);
      for (let i = 0; i < 300 && wal() > 1_000_000; i++) await sleep(10);
      expect(wal()).toBeLessThanOrEqual(1_000_000);
      expect(await adapter.get('k1999')).toBe(`${bigValue}1999`);
    } finally {
      await adapter.disconnect();
    }
  });

  it('lets two stores on one file write and read while both checkpoint', async () => {
    const path = join(dir, 'ckpt-shared.db');
    const a = new SqliteKeyvStore({ path, sweepIntervalMs: 0, checkpointIntervalMs: 1 });
    const b = new SqliteKeyvStore({ path, sweepIntervalMs: 0, checkpointIntervalMs: 1 });
    try {
      for (let i = 0; i < 20; i++) {
        await fill(a, i * 20, 20);
        await fill(b, 10_000 + i * 20, 20);
        expect(await b.get(`k${i * 20 + 19}`)).toBe(`${bigValue}${i * 20 + 19}`);
        expect(await a.get(`k${10_000 + i * 20}`)).toBe(`${bigValue}${10_000 + i * 20}`);
      }
    } finally {
      await a.disconnect();
      await b.disconnect();
    }
    const reader = new DatabaseSync(path, { readOnly: true });
    try {
      expect(reader.prepare('SELECT count(*) AS n FROM keyv').get()).toEqual({ n: 800 });
    } finally {
      reader.close();
    }
  });

  it("keeps SQLite's own checkpoints when asked to, and for :memory:", async () => {
    const inline = new SqliteKeyvStore({
      path: join(dir, 'ckpt-inline.db'),
      sweepIntervalMs: 0,
      checkpoint: 'inline',
    });
    const memory = new SqliteKeyvStore({ path: ':memory:', sweepIntervalMs: 0 });
    try {
      expect(autocheckpoint(inline)).toBe(1000);
      expect(sizeLimit(inline)).toBe(64 * 1024 * 1024);
      expect(autocheckpoint(memory)).toBe(1000);
    } finally {
      await inline.disconnect();
      await memory.disconnect();
    }
  });
});

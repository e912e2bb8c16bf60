import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Keyv } from 'keyv';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { SqliteKeyvStore, SWEEP_STEP_ROWS } from '../../src/store/sqlite-keyv-store.ts';
import { identityIndexStep, openSqliteStateStore } from '../../src/store/sqlite-state-store.ts';
import {
  expectKeyvCompatible,
  raceClaimsAcrossProcesses,
  sleep,
  sorted,
  uniqueNamespace,
} from './helpers.ts';
import { describeStateStoreContract } from './state-store-contract.ts';

const dir = mkdtempSync(join(tmpdir(), 'arc-sqlite-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sqlite:// state store', () => {
  // One file for the whole contract, as in production: namespaces keep the tests apart.
  const shared = `sqlite://${join(dir, 'contract.db')}`;
  describeStateStoreContract('sqlite', (namespace) => openStateStore(shared, { namespace }));

  it('keeps values, claims and sets when the file is reopened', async () => {
    const url = `sqlite://${join(dir, 'reopen.db')}`;
    const first = await openStateStore(url, { namespace: 'prod' });
    expect(first.kind).toBe('sqlite');
    await first.set('pair:a:10.0.0.1', { count: 3 });
    await first.setMany([{ key: 'pair:a:10.0.0.2', value: { count: 1 }, ttlMs: 60_000 }]);
    expect(await first.claim('alert:a:10.0.0.1', 60_000)).toBe(true);
    await first.addMembers('ident:a', ['10.0.0.1', '10.0.0.2']);
    await first.close();

    const second = await openStateStore(url, { namespace: 'prod' });
    try {
      expect(await second.getMany(['pair:a:10.0.0.1', 'pair:a:10.0.0.2'])).toEqual([
        { count: 3 },
        { count: 1 },
      ]);
      expect(await second.claim('alert:a:10.0.0.1', 60_000)).toBe(false);
      expect(await second.members('ident:a')).toEqual(['10.0.0.1', '10.0.0.2']);
    } finally {
      await second.close();
    }
  });

  it('accepts relative (sqlite://./…, sqlite://dir/…) and absolute (sqlite:///…) paths and creates the directory', async () => {
    const absolute = join(dir, 'abs', 'nested', 'x.db');
    const relativeDotted = `./${relative(process.cwd(), join(dir, 'rel-dot', 'y.db'))}`;
    const relativePlain = relative(process.cwd(), join(dir, 'rel-plain', 'z.db'));
    for (const [url, file] of [
      [`sqlite://${absolute}`, absolute],
      [`sqlite://${relativeDotted}`, join(dir, 'rel-dot', 'y.db')],
      [`sqlite://${relativePlain}`, join(dir, 'rel-plain', 'z.db')],
    ] as const) {
      const store = await openStateStore(url);
      await store.set('k', url);
      await store.close();
      expect(existsSync(file)).toBe(true);
    }
    expect(absolute.startsWith('/')).toBe(true);
  });

  it('writes values that a plain Keyv over the same file reads (Keyv serialisation kept)', async () => {
    const path = join(dir, 'keyv-compat.db');
    const namespace = uniqueNamespace('compat');
    const store = await openStateStore(`sqlite://${path}`, { namespace });
    const keyv = new Keyv({ store: new SqliteKeyvStore({ path, sweepIntervalMs: 0 }), namespace });
    try {
      await expectKeyvCompatible(store, keyv);
    } finally {
      await keyv.disconnect();
      await store.close();
    }
  });

  it('sweeps expired claims and values out of the file, keeping the rest', async () => {
    const path = join(dir, 'sweep.db');
    const store = openSqliteStateStore({ path, namespace: 'sw', sweepIntervalMs: 20 });
    const reader = new DatabaseSync(path, { readOnly: true });
    const count = (table: string) =>
      (reader.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    try {
      await store.claimMany(['c-gone-1', 'c-gone-2'], 1);
      await store.claim('c-kept', 60_000);
      await store.claim('c-held');
      await store.setMany([
        { key: 'v-gone', value: 1, ttlMs: 1 },
        { key: 'v-kept', value: 2 },
      ]);
      // Wait (bounded) for the sweep timer; the assertions are about what it removed.
      for (let i = 0; i < 100 && (count('arc_claims') > 2 || count('keyv') > 1); i++) await sleep(20);
      expect(count('arc_claims')).toBe(2);
      expect(count('keyv')).toBe(1);
      expect(await store.claimMany(['c-kept', 'c-held', 'c-gone-1'], 60_000)).toEqual([false, false, true]);
    } finally {
      reader.close();
      await store.close();
    }
  });

  it('lists a set through the primary-key index, never a scan of the table', async () => {
    const path = join(dir, 'plan.db');
    await (await openStateStore(`sqlite://${path}`)).close();
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      const plan = db
        .prepare('EXPLAIN QUERY PLAN SELECT member FROM arc_members WHERE set_key = ?')
        .all('x') as Array<{ detail: string }>;
      expect(plan.map((step) => step.detail).join(' ')).toMatch(
        /SEARCH arc_members USING PRIMARY KEY \(set_key=\?\)/,
      );
    } finally {
      db.close();
    }
  });

  it('stops writing, and says why, once its file is deleted or replaced while open', async () => {
    for (const how of ['deleted', 'replaced'] as const) {
      const path = join(dir, `${how}.db`);
      const store = openSqliteStateStore({ path, namespace: 'prod', fileCheckMs: 20 });
      try {
        await store.set('pair:a:10.0.0.1', { count: 1 });
        await store.ping();
        if (how === 'deleted') rmSync(path);
        else {
          // Another database moved into its place at once (a restore from a backup, say).
          const other = join(dir, 'replacement.db');
          await (await openStateStore(`sqlite://${other}`)).close();
          renameSync(other, path);
        }
        await vi.waitFor(
          async () => {
            await expect(store.ping()).rejects.toMatchObject({
              code: 'STORE_UNREACHABLE',
              message: expect.stringContaining(
                `the SQLite database file "${path}" was deleted or replaced while in use`,
              ),
            });
          },
          { timeout: 2000, interval: 20 },
        );
        await expect(store.set('pair:a:10.0.0.2', { count: 1 })).rejects.toMatchObject({
          code: 'STORE_UNREACHABLE',
        });
        await expect(store.claim('alert:a:10.0.0.2', 1000)).rejects.toMatchObject({
          code: 'STORE_UNREACHABLE',
        });
      } finally {
        await store.close();
      }
    }
  });

  it("waits for another process's write lock with the event loop free, and fails once the wait is over", async () => {
    const path = join(dir, 'locked.db');
    const store = openSqliteStateStore({ path, namespace: 'prod', busyWaitMs: 600 });
    const other = new DatabaseSync(path);
    try {
      await store.set('pair:a:10.0.0.1', { count: 1 });
      other.exec('BEGIN IMMEDIATE');
      const write = store.set('pair:a:10.0.0.2', { count: 2 });
      // Awaited below; handled now so that a failure while the loop runs is not reported as unhandled.
      write.catch(() => {});
      // While the write waits for the lock, timers still run: the loop is never held for long.
      const lags: number[] = [];
      for (let i = 0; i < 5; i++) {
        const asked = performance.now();
        await new Promise((resolve) => setTimeout(resolve, 10));
        lags.push(performance.now() - asked - 10);
      }
      expect(Math.max(...lags)).toBeLessThan(1000);
      other.exec('COMMIT');
      await write;
      expect(await store.get('pair:a:10.0.0.2')).toEqual({ count: 2 });

      other.exec('BEGIN IMMEDIATE');
      await expect(store.claim('alert:a:10.0.0.3', 1000)).rejects.toMatchObject({
        code: 'STORE_UNREACHABLE',
        message: expect.stringContaining('database is locked'),
      });
      other.exec('ROLLBACK');
      expect(await store.claim('alert:a:10.0.0.3', 1000)).toBe(true);
    } finally {
      if (other.isTransaction) other.exec('ROLLBACK');
      other.close();
      await store.close();
    }
  });

  it('reports a database it cannot open by its path', async () => {
    const blocker = join(dir, 'not-a-dir');
    await (await openStateStore(`sqlite://${blocker}`)).close();
    await expect(openStateStore(`sqlite://${blocker}/inside.db`)).rejects.toMatchObject({
      code: 'STORE_UNREACHABLE',
      message: expect.stringContaining(`Cannot open the SQLite database "${blocker}/inside.db"`),
    });
    // A path that is a directory is named as one.
    await expect(openStateStore(`sqlite://${dir}`)).rejects.toMatchObject({
      code: 'STORE_UNREACHABLE',
      message: expect.stringMatching(
        /: unable to open database file \(it is a directory: give the path of a file in it/,
      ),
    });
  });

  it('lets two processes racing on one file win each of 200 keys exactly once', async () => {
    const url = `sqlite://${join(dir, 'race.db')}`;
    // Create the file and its tables first so the children only race on claims.
    await (await openStateStore(url)).close();
    const [a, b] = await raceClaimsAcrossProcesses(url, uniqueNamespace('race'), 200);
    const all = [...a!, ...b!];
    expect(new Set(all).size).toBe(all.length);
    expect(sorted(all)).toEqual(sorted(Array.from({ length: 200 }, (_, i) => `race-${i}`)));
  });
});

describe('SQLite store housekeeping', () => {
  it('warns when the disk that holds the file runs low, and not before', async () => {
    const path = join(dir, 'disk.db');
    const { bavail, bsize } = statfsSync(dir);
    const free = bavail * bsize;
    // Thresholds either side of what this disk has free.
    const low = openSqliteStateStore({ path, namespace: 'low', lowDiskBytes: free * 2 });
    const roomy = openSqliteStateStore({ path, namespace: 'roomy', lowDiskBytes: 1024 });
    try {
      expect(low.warnings?.()).toEqual([
        expect.stringMatching(
          /^the disk that holds the SQLite store has [\d.]+ MB free: once it is full, ingest answers 503/,
        ),
      ]);
      expect(roomy.warnings?.()).toEqual([]);
    } finally {
      await low.close();
      await roomy.close();
    }
  });

  it('reads the free space of the disk that holds the file itself when its path is a symbolic link to another disk', async () => {
    // A directory on another disk than the temporary directory's, with a different amount free:
    // /dev/shm (a memory disk) where the temporary directory is on a real one, else the working
    // directory's disk.
    const free = (d: string) => {
      const { bavail, bsize } = statfsSync(d);
      return bavail * bsize;
    };
    const other = ['/dev/shm', process.cwd()].find(
      (d) =>
        existsSync(d) && statSync(d).dev !== statSync(dir).dev && Math.abs(free(d) - free(dir)) > 1024 * 1024,
    );
    expect(other, 'a disk other than the temporary directory’s').toBeDefined();
    const target = mkdtempSync(join(other!, 'arc-disk-'));
    const link = join(dir, 'linked.db');
    try {
      symlinkSync(join(target, 'store.db'), link);
      writeFileSync(join(target, 'store.db'), '');
      const [linkDisk, fileDisk] = [dir, target].map(free);
      // Between the two: only the file's own disk says whether to warn.
      const store = openSqliteStateStore({
        path: link,
        namespace: 'linked',
        lowDiskBytes: (linkDisk! + fileDisk!) / 2,
      });
      try {
        expect(store.warnings?.()).toHaveLength(fileDisk! < linkDisk! ? 1 : 0);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });

  it("drops an identity's index entries once their pairs are gone, and leaves the others and other sets alone", async () => {
    const path = join(dir, 'index.db');
    const store = openSqliteStateStore({ path, namespace: 'index', sweepIntervalMs: 50 });
    const other = openSqliteStateStore({ path, namespace: 'other', sweepIntervalMs: 0 });
    try {
      await store.setMany([
        { key: 'pair:a:192.0.2.1', value: { n: 1 }, ttlMs: 30 },
        { key: 'pair:a:192.0.2.2', value: { n: 2 }, ttlMs: 60_000 },
        { key: 'pair:b:2001:db8::1', value: { n: 3 }, ttlMs: 60_000 },
      ]);
      await store.addToSets([
        ['ident:a', '192.0.2.1'],
        ['ident:a', '192.0.2.2'],
        ['ident:a', '192.0.2.9'], // never stored
        ['ident:b', '2001:db8::1'],
        ['allow:a', '192.0.2.9'],
      ]);
      // Another namespace's index in the same file is its own store's to prune.
      await other.addToSets([['ident:a', '192.0.2.9']]);
      await vi.waitFor(async () => expect(await store.members('ident:a')).toEqual(['192.0.2.2']), {
        timeout: 5000,
        interval: 50,
      });
      expect(await store.members('ident:b')).toEqual(['2001:db8::1']);
      expect(await store.members('allow:a')).toEqual(['192.0.2.9']);
      expect(await other.members('ident:a')).toEqual(['192.0.2.9']);
    } finally {
      await store.close();
      await other.close();
    }
  });

  it('prunes a large identity index a bounded step at a time, going on from where the last step ended', async () => {
    const path = join(dir, 'steps.db');
    // The tables, made by the store; the sweep is driven by hand here.
    const store = openSqliteStateStore({ path, namespace: 'steps', sweepIntervalMs: 0 });
    const adapter = new SqliteKeyvStore({ path, sweepIntervalMs: 0 });
    try {
      const ips = Array.from({ length: 2 * SWEEP_STEP_ROWS + 10 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
      const kept = ips.filter((_, i) => i % 1000 === 0);
      await store.setMany(kept.map((ip) => ({ key: `pair:c:${ip}`, value: 1, ttlMs: 60_000 })));
      await store.addToSets(ips.map((ip) => ['ident:c', ip] as const));
      const step = identityIndexStep(adapter, 'steps:');
      const one = step();
      expect(one.done).toBe(false);
      expect(one.deleted).toBeGreaterThan(SWEEP_STEP_ROWS - 10);
      let done = one.done;
      let deleted = one.deleted;
      for (let i = 0; !done && i < 5; i++) {
        const next = step();
        done = next.done;
        deleted += next.deleted;
      }
      expect(done).toBe(true);
      expect(deleted).toBe(ips.length - kept.length);
      expect((await store.members('ident:c')).sort()).toEqual([...kept].sort());
    } finally {
      await adapter.disconnect();
      await store.close();
    }
  });

  it('never keeps the process alive on its own (a script that forgets to close still exits)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'arc-alive-'));
    const module = join(import.meta.dirname, '../../src/store/open-state-store.ts');
    const script = `const { openStateStore } = await import(${JSON.stringify(module)});
const s = await openStateStore('sqlite://${join(dir, 'a.db')}');
await s.set('k', 1);
console.log('wrote');`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    rmSync(dir, { recursive: true, force: true });
    expect(run.stdout).toContain('wrote');
    expect(run.signal).toBeNull();
    expect(run.status).toBe(0);
  });
});

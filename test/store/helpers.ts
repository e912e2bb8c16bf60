import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { StateStore } from '../../src/core/ports.ts';

/**
 * Runs `body` against a dev service named by `envVar` (TEST_REDIS_URL, TEST_POSTGRES_URL).
 * Unset: the suite is skipped with the reason in its name and on the console, unless
 * REQUIRE_TEST_SERVICES=1 (CI), where the missing service fails the run instead.
 */
export function describeWithService(label: string, envVar: string, body: (url: string) => void): void {
  const url = process.env[envVar];
  if (url) {
    describe(label, () => body(url));
    return;
  }
  if (process.env.REQUIRE_TEST_SERVICES === '1') {
    describe(label, () => {
      it(`needs ${envVar}`, () => {
        throw new Error(`${envVar} is not set but REQUIRE_TEST_SERVICES=1: start the service (.ci/run does)`);
      });
    });
    return;
  }
  console.warn(`[test/store] ${label}: skipped because ${envVar} is not set`);
  describe.skipIf(true)(`${label} (skipped: ${envVar} is not set)`, () => body(''));
}

let counter = 0;

/** A namespace no other test, test file or earlier run uses. */
export function uniqueNamespace(tag: string): string {
  counter += 1;
  return `t-${tag}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A copy of `list` in random order (Fisher-Yates). */
export function shuffled<T>(list: readonly T[]): T[] {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Sorted copy, for comparing lists whose order does not matter. */
export const sorted = <T>(list: readonly T[]): T[] => [...list].sort();

const CHILD = fileURLToPath(new URL('./claim-race-child.ts', import.meta.url));

/**
 * Starts `processes` separate Node processes that each open `url` in `namespace` and, released
 * at one moment once all have connected, claim the same `keys` keys (by turns one with claim
 * and a few with claimMany, each in its own random order). Resolves with the keys each won.
 */
export async function raceClaimsAcrossProcesses(
  url: string,
  namespace: string,
  keys: number,
  processes = 2,
): Promise<string[][]> {
  const children = Array.from({ length: processes }, () =>
    spawn(process.execPath, [CHILD, url, namespace, String(keys)], { stdio: ['pipe', 'pipe', 'pipe'] }),
  );
  const runs = children.map(
    (child) =>
      new Promise<{ ready: Promise<void>; result: Promise<string[]> }>((resolveStarted) => {
        let stderr = '';
        // A child that died early has a closed stdin; writing 'go' to it must not crash the run.
        child.stdin.on('error', () => {});
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
        });
        const lines = createInterface({ input: child.stdout });
        let markReady: () => void = () => {};
        let finish: (won: string[]) => void = () => {};
        let fail: (error: Error) => void = () => {};
        const ready = new Promise<void>((resolve) => {
          markReady = resolve;
        });
        const result = new Promise<string[]>((resolve, reject) => {
          finish = resolve;
          fail = reject;
        });
        lines.on('line', (line) => {
          if (line === 'ready') markReady();
          else if (line.startsWith('{')) finish((JSON.parse(line) as { won: string[] }).won);
        });
        child.on('error', (error) => fail(error));
        child.on('exit', (code) => {
          // If the child died before reporting, say why: its stderr carries the reason.
          fail(new Error(`claim race child exited with ${code}: ${stderr.trim()}`));
          markReady();
        });
        resolveStarted({ ready, result });
      }),
  );
  const started = await Promise.all(runs);
  await Promise.all(started.map((run) => run.ready));
  // One start time for all, a little ahead so each child has read it before it comes.
  const startAt = Date.now() + 150;
  for (const child of children) child.stdin.write(`go ${startAt}\n`);
  return Promise.all(started.map((run) => run.result));
}

/**
 * Values written by the store read back through a plain Keyv client of the same backend and
 * namespace, and the other way round; strings that start with ':' exercise Keyv's escaping.
 */
export async function expectKeyvCompatible(
  store: StateStore,
  keyv: { get(key: string): Promise<unknown>; set(key: string, value: unknown): Promise<unknown> },
): Promise<void> {
  await store.set('ip', '::1');
  await store.setMany([{ key: 'rec', value: { ip: '::ffff:10.0.0.1', n: [1, ':x'] }, ttlMs: 60_000 }]);
  expect(await keyv.get('ip')).toBe('::1');
  expect(await keyv.get('rec')).toEqual({ ip: '::ffff:10.0.0.1', n: [1, ':x'] });
  await keyv.set('from-keyv', { ip: ':::weird' });
  expect(await store.get('from-keyv')).toEqual({ ip: ':::weird' });
}

/**
 * A Redis user of the test's own (ACL), whose rights the test narrows to make Redis itself refuse
 * writes, and an admin connection to do it with. `url` logs in as that user; `dispose` deletes the
 * user and every key of `namespace`.
 */
export async function redisTestUser(url: string, tag: string, namespace: string) {
  const { createClient } = await import('@keyv/redis');
  const admin = createClient({ url });
  await admin.connect();
  const user = `arc-${tag}-${process.pid}`;
  const password = `${tag}-secret`;
  const asUser = new URL(url);
  asUser.username = user;
  asUser.password = password;
  await admin.sendCommand(['ACL', 'SETUSER', user, 'on', `>${password}`, '~*', '+@all']);
  return {
    url: asUser.toString(),
    user,
    /** Runs `ACL SETUSER <user> ...rules`. */
    setRules: (...rules: string[]) => admin.sendCommand(['ACL', 'SETUSER', user, ...rules]),
    /** Every key readable and writable again. */
    allowAll: () => admin.sendCommand(['ACL', 'SETUSER', user, 'resetkeys', '~*']),
    admin,
    async dispose() {
      await admin.sendCommand(['ACL', 'DELUSER', user]);
      for await (const keys of admin.scanIterator({ MATCH: `${namespace}:*`, COUNT: 1000 })) {
        if (keys.length > 0) await admin.unlink(keys);
      }
      await admin.close();
    },
  };
}

/**
 * A database of the suite's own on the PostgreSQL server of `url` (a lock or a read-only setting
 * there holds no other suite), created before its tests and dropped after them. `url`: the
 * database's; `admin`: a pool on the server's own database. Both are set once the suite runs.
 */
export function ownPostgresDatabase(url: string, tag: string) {
  const own = {
    name: `arc_${tag}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`,
    url: '',
    admin: undefined as unknown as pg.Pool,
  };
  beforeAll(async () => {
    const u = new URL(url);
    u.pathname = `/${own.name}`;
    own.url = u.toString();
    own.admin = new pg.Pool({ connectionString: url, max: 1 });
    await own.admin.query(`CREATE DATABASE ${own.name}`);
  });
  afterAll(async () => {
    // A pool's `end()` resolves before its connections have closed: dropping the database with
    // FORCE at once could end one of them mid-close, which its pool, without an error listener,
    // throws as an uncaught error. Wait for them to go first, and force only those left after 5 s.
    for (let tries = 0; tries < 50; tries++) {
      try {
        await own.admin.query(`DROP DATABASE IF EXISTS ${own.name}`);
        break;
      } catch (error) {
        // 55006: the database is being accessed by other users.
        if ((error as { code?: string }).code !== '55006') throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    await own.admin.query(`DROP DATABASE IF EXISTS ${own.name} WITH (FORCE)`);
    await own.admin.end();
  });
  return own;
}

/**
 * Freezes the connections `store` has open (through `proxy`), then expects its next call to fail
 * as unreachable (`failure` says more of it) within 5 s rather than hang, and a later call to be
 * answered over a new connection.
 */
export async function expectRecoversFromFrozenConnection(
  store: StateStore,
  proxy: { freeze(): void },
  failure: Record<string, unknown> = {},
): Promise<void> {
  await store.set('before', 1);
  proxy.freeze();
  const started = performance.now();
  await expect(store.get('before')).rejects.toMatchObject({ code: 'STORE_UNREACHABLE', ...failure });
  expect(performance.now() - started).toBeLessThan(5000);
  await vi.waitFor(async () => expect(await store.get('before')).toBe(1), { timeout: 5000, interval: 100 });
}

/**
 * The history commands that only read (`list`, `allowlist`, `audit`) on Redis and PostgreSQL: a
 * database or schema that no service used (a mistyped number or name) is an error that says so,
 * never an empty history with a success, and nothing is created there.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createClient } from '@keyv/redis';
import pg from 'pg';
import { afterAll, expect, it } from 'vitest';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { describeWithService, ownPostgresDatabase } from '../store/helpers.ts';
import { ARC, arcEvent } from '../support/samples.ts';

const run = promisify(execFile);
const CLI = path.resolve(import.meta.dirname, '../../src/cli.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'arc-cli-shared-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Each test starts the CLI five times or more, a second or more each on a busy machine. */
const CLI_TEST_TIMEOUT_MS = 60_000;

/** Runs `npm run history -- <args>` on `storeUrl`: its exit code and output. */
async function history(storeUrl: string, ...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'history', ...args], {
      env: { ...process.env, STORE_URL: storeUrl },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** An export of one sighting of the sample pair, a day ago. */
function exportFile(): string {
  const file = path.join(dir, `export-${Math.random().toString(36).slice(2)}.ndjson`);
  writeFileSync(
    file,
    `${JSON.stringify(arcEvent('elastic-ecs', { time: new Date(Date.now() - 86_400_000) }))}\n`,
  );
  return file;
}

describeWithService('history commands on a PostgreSQL schema no service used', 'TEST_POSTGRES_URL', (url) => {
  const own = ownPostgresDatabase(url, 'cli');

  it(
    'refuse it and create no table; once a service stored a sighting there, they read it',
    async () => {
      for (const args of [['audit'], ['allowlist'], ['list', ARC.appId]]) {
        const read = await history(own.url, ...args);
        expect(read.code, args.join(' ')).toBe(1);
        expect(read.stderr).toMatch(/no arc-responder tables in the schema public .*nothing was created/);
      }
      const db = new pg.Pool({ connectionString: own.url, max: 1 });
      try {
        const tables = await db.query("SELECT to_regclass('public.keyv') AS t");
        expect(tables.rows[0].t).toBeNull();
        // Tables without history (a service that never stored a sighting) read as no history either.
        await (await openStateStore(own.url)).close();
        const empty = await history(own.url, 'list', ARC.appId);
        expect(empty.code).toBe(1);
        expect(empty.stderr).toMatch(
          /no arc-responder history at postgres:.*no service has stored a sighting there/,
        );
      } finally {
        await db.end();
      }
      expect((await history(own.url, 'import', exportFile())).code).toBe(0);
      const listed = await history(own.url, 'list', ARC.appId);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(/^1 source IP of /);
    },
    CLI_TEST_TIMEOUT_MS,
  );
});

describeWithService('history commands on a Redis database no service used', 'TEST_REDIS_URL', (url) => {
  /** A database of this suite's own (its namespace is the CLI's default, which STORE_URL cannot change). */
  const database8 = () => {
    const target = new URL(url);
    target.pathname = '/8';
    return target.toString();
  };

  async function clearDefaultNamespace() {
    const admin = createClient({ url: database8() });
    await admin.connect();
    try {
      for await (const keys of admin.scanIterator({ MATCH: 'arc-responder:*', COUNT: 500 })) {
        if (keys.length > 0) await admin.unlink(keys);
      }
    } finally {
      await admin.close();
    }
  }

  it(
    'refuse it; once a service stored a sighting there, they read it',
    async () => {
      const storeUrl = database8();
      await clearDefaultNamespace();
      try {
        for (const args of [['audit'], ['allowlist'], ['list', ARC.appId]]) {
          const read = await history(storeUrl, ...args);
          expect(read.code, args.join(' ')).toBe(1);
          expect(read.stderr).toMatch(
            /no arc-responder history at redis:.*no service has stored a sighting there/,
          );
        }
        expect((await history(storeUrl, 'import', exportFile())).code).toBe(0);
        const listed = await history(storeUrl, 'list', ARC.appId);
        expect(listed.code).toBe(0);
        expect(listed.stdout).toMatch(/^1 source IP of /);
      } finally {
        await clearDefaultNamespace();
      }
    },
    CLI_TEST_TIMEOUT_MS,
  );
});

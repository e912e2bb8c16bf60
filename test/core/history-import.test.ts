import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { recordAudit } from '../../src/core/audit.ts';
import { createEngine } from '../../src/core/engine.ts';
import { createHistory } from '../../src/core/history.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { ARC, arcEvent } from '../support/samples.ts';

const run = promisify(execFile);
const CLI = path.resolve(import.meta.dirname, '../../src/cli.ts');
const DAY = 86_400_000;
const dir = mkdtempSync(path.join(tmpdir(), 'arc-import-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ecs = (ip: string, daysAgo: number, n: number) =>
  arcEvent('elastic-ecs', {
    ip,
    time: new Date(Date.now() - daysAgo * DAY),
    correlationId: `bbbbbbbb-0000-4000-8000-${String(n).padStart(12, '0')}`,
  });

describe('history import [derived Arc events]', () => {
  it('loads an Elasticsearch export without alerting, so later sightings of those pairs are known', async () => {
    const db = path.join(dir, 'import.db');
    const file = path.join(dir, 'export.ndjson');
    const lines = [
      JSON.stringify({
        _index: 'logs-azure.activitylogs-default',
        _id: 'a1',
        _source: ecs('198.51.100.1', 2, 1),
      }),
      JSON.stringify(ecs('198.51.100.2', 3, 2)),
      '',
      '{ not json',
      JSON.stringify(arcEvent('elastic-ecs', { operation: 'MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE' })),
    ];
    writeFileSync(file, `${lines.join('\n')}\n`);
    const { stdout } = await run(process.execPath, [CLI, 'history', 'import', file], {
      env: { ...process.env, STORE_URL: `sqlite://${db}` },
    });
    expect(stdout).toMatch(/imported 2 sightings/);
    expect(stdout).toMatch(/invalid 1/);
    expect(stdout).toMatch(/line 4: not valid JSON/);
    expect(stdout).toMatch(/ignored 1/);

    const store = await openStateStore(`sqlite://${db}`);
    const alerts: unknown[] = [];
    const engine = await createEngine({
      store,
      windowMs: 7 * DAY,
      outbox: {
        add: async (a) => {
          alerts.push(...a);
        },
      },
    });
    const [r] = await engine.evaluate([ecs('198.51.100.1', 0, 99)]);
    expect(r?.outcome).toBe('known');
    const ips = (await createHistory({ store, windowMs: 7 * DAY }).listIdentity(ARC.appId)).map(
      (e) => e.pair.ip,
    );
    expect(ips.sort()).toEqual(['198.51.100.1', '198.51.100.2']);
    expect(alerts).toHaveLength(0);
    await store.close();
  });

  it('reads a _search response saved as one JSON document', async () => {
    const db = path.join(dir, 'search.db');
    const file = path.join(dir, 'search.json');
    const hits = [1, 2, 3].map((n) => ({ _id: `h${n}`, _source: ecs(`192.0.2.${n}`, 1, 10 + n) }));
    writeFileSync(file, JSON.stringify({ took: 3, hits: { total: { value: 3 }, hits } }, null, 2));
    const { stdout } = await run(process.execPath, [CLI, 'history', 'import', file], {
      env: { ...process.env, STORE_URL: `sqlite://${db}` },
    });
    expect(stdout).toMatch(/imported 3 sightings/);
  });

  it('reads NDJSON whose first line is broken: that line is reported, the others imported', async () => {
    const db = path.join(dir, 'broken-first.db');
    const file = path.join(dir, 'broken-first.ndjson');
    const lines = [
      '{"broken": ',
      ...[1, 2, 3].map((n) => JSON.stringify(ecs(`192.0.2.${20 + n}`, 1, 20 + n))),
    ];
    writeFileSync(file, `${lines.join('\n')}\n`);
    const { stdout } = await run(process.execPath, [CLI, 'history', 'import', file], {
      env: { ...process.env, STORE_URL: `sqlite://${db}` },
    });
    expect(stdout).toMatch(/imported 3 sightings/);
    expect(stdout).toMatch(/line 1: not valid JSON/);
  });

  it('reports a broken pretty-printed document by its parse error, even when a line of it is JSON alone', async () => {
    const file = path.join(dir, 'broken-pretty.json');
    writeFileSync(file, '{\n  "records": [\n    "x"\n  ,\n}\n');
    await expect(
      run(process.execPath, [CLI, 'history', 'import', file], {
        env: { ...process.env, STORE_URL: `sqlite://${path.join(dir, 'broken-pretty.db')}` },
      }),
    ).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        /^history import failed: the input is neither NDJSON \(no line holds a JSON object or array\) nor one JSON document: Unexpected token/,
      ),
    });
    // The store is opened with the first batch: a file that turns out unreadable leaves none.
    expect(existsSync(path.join(dir, 'broken-pretty.db'))).toBe(false);
  });

  it('reads a gzip-compressed export as it is, from a file or from standard input', async () => {
    const file = path.join(dir, 'export.ndjson.gz');
    const lines = [ecs('192.0.2.41', 1, 41), ecs('192.0.2.42', 2, 42)].map((e) => JSON.stringify(e));
    writeFileSync(file, gzipSync(`${lines.join('\n')}\n`));
    const { stdout } = await run(process.execPath, [CLI, 'history', 'import', file], {
      env: { ...process.env, STORE_URL: `sqlite://${path.join(dir, 'gzip.db')}` },
    });
    expect(stdout).toMatch(/^imported 2 sightings/);
    const child = spawn(process.execPath, [CLI, 'history', 'import', '-'], {
      env: { ...process.env, STORE_URL: `sqlite://${path.join(dir, 'gzip-stdin.db')}` },
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stdin.end(gzipSync(`${lines.join('\n')}\n`));
    expect(await new Promise((resolve) => child.on('close', resolve))).toBe(0);
    expect(out).toMatch(/^imported 2 sightings/);
  });

  it('counts events older than the window as ignored, not as imported', async () => {
    const db = path.join(dir, 'old.db');
    const file = path.join(dir, 'old.ndjson');
    writeFileSync(
      file,
      `${[ecs('192.0.2.31', 2, 31), ecs('192.0.2.32', 8, 32)].map((e) => JSON.stringify(e)).join('\n')}\n`,
    );
    const { stdout } = await run(process.execPath, [CLI, 'history', 'import', file], {
      env: { ...process.env, STORE_URL: `sqlite://${db}` },
    });
    expect(stdout).toMatch(/imported 1 sightings/);
    expect(stdout).toMatch(/1 × ignored: older than the history window of now: not stored/);
    // Nothing of the old event was kept, not even its claim: run again, it is ignored again.
    const again = await run(process.execPath, [CLI, 'history', 'import', file], {
      env: { ...process.env, STORE_URL: `sqlite://${db}` },
    });
    expect(again.stdout).toMatch(/1 × ignored: older than the history window of now: not stored/);
    expect(again.stdout).toMatch(/imported 0 sightings/);
  });

  it('says a file it cannot read is missing, without a stack trace and without touching the store', async () => {
    const db = path.join(dir, 'never.db');
    const missing = path.join(dir, 'no-such-export.ndjson');
    await expect(
      run(process.execPath, [CLI, 'history', 'import', missing], {
        env: { ...process.env, STORE_URL: `sqlite://${db}` },
      }),
    ).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        /^history import failed: ENOENT: no such file or directory.*no-such-export\.ndjson'\n$/,
      ),
    });
    expect(existsSync(db)).toBe(false);
  });

  it('explains its usage and fails on a bad configuration without a stack trace', async () => {
    await expect(run(process.execPath, [CLI, 'history'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/usage:/),
    });
    await expect(
      run(process.execPath, [CLI, 'history', 'import', 'x.ndjson'], {
        env: { ...process.env, STORE_URL: 'mysql://x' },
      }),
    ).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/STORE_URL: Store URL scheme "mysql:" is not supported/),
    });
    const help = await run(process.execPath, [CLI, 'history', '--help']);
    expect(help.stdout).toMatch(/usage: npm run history -- import/);
    expect(help.stdout).toMatch(/npm run history -- list <appid>/);
  });

  it('refuses a second file or appid rather than leaving it out unsaid, and touches no store', async () => {
    const db = path.join(dir, 'two-files.db');
    const [first, second] = ['first.ndjson', 'second.ndjson'].map((name, n) => {
      const file = path.join(dir, name);
      writeFileSync(file, `${JSON.stringify(ecs(`198.51.100.${30 + n}`, 1, 30 + n))}\n`);
      return file;
    });
    const env = { ...process.env, STORE_URL: `sqlite://${db}` };
    await expect(
      run(process.execPath, [CLI, 'history', 'import', first!, second!], { env }),
    ).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^import takes one file, not 2: run it once per file\n\nusage:/),
    });
    await expect(
      run(process.execPath, [CLI, 'history', 'list', ARC.appId, '198.51.100.30'], { env }),
    ).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^list takes one appid, not 2: run it once per identity\n\nusage:/),
    });
    expect(existsSync(db)).toBe(false);
  });

  it('reads only STORE_URL and HISTORY_WINDOW: a Slack setting the service would refuse does not stop it', async () => {
    const db = path.join(dir, 'only-history.db');
    const file = path.join(dir, 'one.ndjson');
    writeFileSync(file, `${JSON.stringify(ecs('198.51.100.7', 1, 7))}\n`);
    const { stdout } = await run(process.execPath, [CLI, 'history', 'import', file], {
      env: {
        ...process.env,
        STORE_URL: `sqlite://${db}`,
        SLACK_BOT_TOKEN: 'xoxb-1',
        AZURE_REMEDIATION: 'maybe',
      },
    });
    expect(stdout).toMatch(/imported 1 sightings/);
  });
});

describe('history list', () => {
  it("prints an identity's IPs in the window with first seen, last seen, count and allowlist entry", async () => {
    const db = path.join(dir, 'list.db');
    const store = await openStateStore(`sqlite://${db}`);
    const engine = await createEngine({ store, windowMs: 7 * DAY, outbox: { add: async () => {} } });
    await engine.evaluate([ecs('198.51.100.1', 2, 1), ecs('198.51.100.1', 1, 2), ecs('198.51.100.2', 1, 3)], {
      silent: true,
    });
    const history = createHistory({ store, windowMs: 7 * DAY });
    await history.allow({
      appId: ARC.appId,
      ip: '198.51.100.2',
      by: 'U0RESP',
      reason: 'VPN\u001b[31m egress',
    });
    await history.allow({ appId: ARC.appId, ip: '203.0.113.9', by: 'U0RESP', reason: 'office' });
    await store.close();

    const env = { ...process.env, STORE_URL: `sqlite://${db}` };
    // Any GUID form names the identity.
    const { stdout } = await run(
      process.execPath,
      [CLI, 'history', 'list', ARC.appId.replaceAll('-', '').toUpperCase()],
      {
        env,
      },
    );
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe(`2 source IPs of ${ARC.appId} in the last 7d (sqlite://${db})`);
    expect(lines[1]).toBe('ip\tfirst seen\tlast seen\tcount\tallowlist');
    const rows = lines.slice(2).map((l) => l.split('\t'));
    const one = rows.find((r) => r[0] === '198.51.100.1')!;
    expect(one[3]).toBe('2');
    expect(Date.parse(one[2]!) - Date.parse(one[1]!)).toBeGreaterThan(DAY - 60_000);
    expect(rows.find((r) => r[0] === '198.51.100.2')).toEqual([
      '198.51.100.2',
      expect.any(String),
      expect.any(String),
      '1',
      'allowlisted by U0RESP: VPN [31m egress',
    ]);
    expect(rows.find((r) => r[0] === '203.0.113.9')).toEqual([
      '203.0.113.9',
      '-',
      '-',
      '0',
      'allowlisted by U0RESP: office (not seen in the last 7d)',
    ]);
    expect(stdout).not.toContain('\u001b');

    const none = await run(
      process.execPath,
      [CLI, 'history', 'list', '11111111-2222-3333-4444-555555555555'],
      { env },
    );
    expect(none.stdout.trim()).toBe(
      `0 source IPs of 11111111-2222-3333-4444-555555555555 in the last 7d (sqlite://${db})`,
    );
    await expect(run(process.execPath, [CLI, 'history', 'list', 'a b;c'], { env })).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/is not an application id/),
    });
  });
});

describe('history allowlist', () => {
  it('prints every lasting allowlist entry of every identity, also one made before the identities were indexed', async () => {
    const db = path.join(dir, 'allowlist.db');
    const store = await openStateStore(`sqlite://${db}`);
    const history = createHistory({ store, windowMs: 7 * DAY });
    const other = '11111111-2222-3333-4444-555555555555';
    await history.allow({
      appId: ARC.appId,
      ip: '203.0.113.9',
      by: 'U0RESP',
      reason: 'office\u001b[31m egress',
      until: Date.now() + DAY,
      alertId: 'a1',
    });
    await history.allow({ appId: ARC.appId, ip: '198.51.100.2', by: 'U0RESP', reason: 'VPN' });
    await history.allow({ appId: other, ip: '192.0.2.7', by: 'U0TWO', reason: 'removed later' });
    await history.unallow(other, '192.0.2.7');
    await history.allow({
      appId: other,
      ip: '192.0.2.8',
      by: 'U0TWO',
      reason: 'lapsed',
      until: Date.now() + 50,
    });
    // An entry stored as it was before identities were indexed: only the audit names its identity.
    const legacy = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
    await store.addMembers(`allowed:${legacy}`, ['2001:db8::1']);
    await store.set(`allow:${legacy}:2001:db8::1`, {
      appId: legacy,
      ip: '2001:db8::1',
      by: 'U0OLD',
      reason: 'build agents',
      at: Date.now() - DAY,
    });
    await recordAudit(store, {
      actor: 'U0OLD',
      action: 'mark-benign',
      appId: legacy,
      ip: '2001:db8::1',
      result: 'ok',
    });
    await store.close();
    await new Promise((resolve) => setTimeout(resolve, 100));

    const env = { ...process.env, STORE_URL: `sqlite://${db}` };
    const { stdout } = await run(process.execPath, [CLI, 'history', 'allowlist'], { env });
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe(`3 allowlist entries (sqlite://${db})`);
    expect(lines[1]).toBe('appid\tip\tby\tmade\tuntil\talert\treason');
    const rows = lines.slice(2).map((l) => l.split('\t'));
    expect(rows.map((r) => [r[0], r[1]])).toEqual([
      [ARC.appId, '198.51.100.2'],
      [ARC.appId, '203.0.113.9'],
      [legacy, '2001:db8::1'],
    ]);
    expect(rows[0]).toEqual([
      ARC.appId,
      '198.51.100.2',
      'U0RESP',
      expect.stringMatching(/Z$/),
      'never',
      '-',
      'VPN',
    ]);
    expect(rows[1]).toEqual([
      ARC.appId,
      '203.0.113.9',
      'U0RESP',
      expect.stringMatching(/Z$/),
      expect.stringMatching(/Z$/),
      'a1',
      'office [31m egress',
    ]);
    expect(rows[2]!.slice(2, 3)).toEqual(['U0OLD']);
    expect(stdout).not.toContain('\u001b');

    await expect(
      run(process.execPath, [CLI, 'history', 'allowlist', ARC.appId], { env }),
    ).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/allowlist takes no argument/),
    });
    const empty = path.join(dir, 'allowlist-empty.db');
    await (await openStateStore(`sqlite://${empty}`)).close();
    const none = await run(process.execPath, [CLI, 'history', 'allowlist'], {
      env: { ...process.env, STORE_URL: `sqlite://${empty}` },
    });
    expect(none.stdout.trim()).toBe(`0 allowlist entries (sqlite://${empty})`);
  });
});

describe('history list of allowlist entries alone', () => {
  it('prints the header before them too, so that the rows start on the third line', async () => {
    const db = path.join(dir, 'list-dormant.db');
    const store = await openStateStore(`sqlite://${db}`);
    const history = createHistory({ store, windowMs: 7 * DAY });
    await history.allow({ appId: ARC.appId, ip: '203.0.113.9', by: 'U0RESP', reason: 'office' });
    await store.close();
    const { stdout } = await run(process.execPath, [CLI, 'history', 'list', ARC.appId], {
      env: { ...process.env, STORE_URL: `sqlite://${db}` },
    });
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe(`0 source IPs of ${ARC.appId} in the last 7d (sqlite://${db})`);
    expect(lines[1]).toBe('ip\tfirst seen\tlast seen\tcount\tallowlist');
    // What `tail -n +3` reads.
    expect(lines.slice(2)).toEqual([
      '203.0.113.9\t-\t-\t0\tallowlisted by U0RESP: office (not seen in the last 7d)',
    ]);
  });
});

describe('history list into a reader that stops early', () => {
  it('ends quietly when the pipe closes (`| head -1`), without a stack trace', async () => {
    const db = path.join(dir, 'epipe.db');
    const store = await openStateStore(`sqlite://${db}`);
    const engine = await createEngine({ store, windowMs: 7 * DAY, outbox: { add: async () => {} } });
    const events = [...Array(3000)].map((_, i) =>
      arcEvent('elastic-ecs', {
        ip: `198.18.${i >> 8}.${i & 255}`,
        time: new Date(Date.now() - 3600_000),
        correlationId: `cccccccc-0000-4000-8000-${String(i).padStart(12, '0')}`,
      }),
    );
    await engine.evaluate(events, { silent: true });
    await store.close();
    const child = spawn(process.execPath, [CLI, 'history', 'list', ARC.appId], {
      env: { ...process.env, STORE_URL: `sqlite://${db}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    // The reader takes the first chunk, then goes away.
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});

describe('history audit', () => {
  it('prints the audit records oldest first as NDJSON, all of them or one alert`s', async () => {
    const db = path.join(dir, 'audit.db');
    const store = await openStateStore(`sqlite://${db}`);
    await recordAudit(store, {
      actor: 'U0RESP',
      action: 'mark-benign',
      alertId: 'a1',
      result: 'ok',
      at: 2000,
    });
    await recordAudit(store, {
      actor: 'U0OUT',
      action: 'revoke',
      alertId: 'a2',
      result: 'refused',
      at: 1000,
    });
    await store.close();
    const env = { ...process.env, STORE_URL: `sqlite://${db}` };
    const all = await run(process.execPath, [CLI, 'history', 'audit'], { env });
    const lines = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.actor, l.action, l.result, l.time])).toEqual([
      ['U0OUT', 'revoke', 'refused', '1970-01-01T00:00:01.000Z'],
      ['U0RESP', 'mark-benign', 'ok', '1970-01-01T00:00:02.000Z'],
    ]);
    const one = await run(process.execPath, [CLI, 'history', 'audit', 'a1'], { env });
    expect(
      one.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { alertId: string }).alertId),
    ).toEqual(['a1']);
    await expect(run(process.execPath, [CLI, 'history', 'audit', 'a b'], { env })).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/is not an alert id/),
    });
  });

  it('refuses an option it does not know and a day the calendar does not have; --help prints the usage', async () => {
    const db = path.join(dir, 'audit-options.db');
    await (await openStateStore(`sqlite://${db}`)).close();
    const env = { ...process.env, STORE_URL: `sqlite://${db}` };
    const audit = (...args: string[]) => run(process.execPath, [CLI, 'history', 'audit', ...args], { env });
    // A typo is an error, not an alert id that finds nothing (alert ids are hex).
    await expect(audit('--snice', '24h')).rejects.toMatchObject({
      code: 2,
      stdout: '',
      stderr: expect.stringContaining('unknown option "--snice"'),
    });
    // Date.parse would roll it over to 2 March and export from there.
    await expect(audit('--since', '2026-02-30T00:00:00Z')).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--since needs an ISO 8601 time'),
    });
    expect((await audit('--help')).stdout).toContain('--since <time or duration>');
  }, 30_000);

  it('--since keeps the records from a time or a duration ago on; `detail` is always an object; the export drops only dead index entries', async () => {
    const db = path.join(dir, 'audit-since.db');
    const store = await openStateStore(`sqlite://${db}`);
    const now = Date.now();
    const old = await recordAudit(store, {
      actor: 'U0OLD',
      action: 'revoke',
      alertId: 'b1',
      result: 'refused',
      detail: 'not in SLACK_RESPONDERS',
      at: now - 3 * 86_400_000,
    });
    await recordAudit(store, {
      actor: 'U0NEW',
      action: 'revoke',
      alertId: 'b1',
      result: 'refused',
      detail: 'not in SLACK_RESPONDERS',
      at: now - 3_600_000,
    });
    await recordAudit(store, {
      actor: 'U0NEW',
      action: 'mark-benign',
      alertId: 'b2',
      result: 'ok',
      detail: { reason: 'office VPN', until: null },
      at: now - 60_000,
    });
    // A record whose value went (expired) while its index entry stays: left out, and left alone.
    const gone = await recordAudit(store, { actor: 'U0GONE', action: 'revoke', result: 'ok', at: now });
    await store.delete(`audit:${gone.id}`);
    await store.close();
    const env = { ...process.env, STORE_URL: `sqlite://${db}` };
    const lines = async (...args: string[]) =>
      (await run(process.execPath, [CLI, 'history', 'audit', ...args], { env })).stdout
        .trim()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { actor: string; action: string; alertId?: string; detail?: unknown });

    const all = await lines();
    expect(all.map((l) => l.actor)).toEqual(['U0OLD', 'U0NEW', 'U0NEW']);
    // A refusal's text is shaped as an object, as every other detail is.
    expect(all[0]!.detail).toEqual({ reason: 'not in SLACK_RESPONDERS' });
    expect(all[2]!.detail).toEqual({ reason: 'office VPN', until: null });

    expect((await lines('--since', '1d')).map((l) => l.action)).toEqual(['revoke', 'mark-benign']);
    const day = new Date(now - 86_400_000).toISOString();
    expect((await lines('--since', day)).map((l) => l.action)).toEqual(['revoke', 'mark-benign']);
    expect((await lines('b1', '--since', '1d')).map((l) => l.alertId)).toEqual(['b1']);
    expect((await lines('--since', '2h', 'b2')).map((l) => l.alertId)).toEqual(['b2']);
    expect((await lines('--since', new Date(now + 60_000).toISOString())).length).toBe(0);
    for (const bad of [
      ['--since'],
      ['--since', 'yesterday'],
      ['--since', '2026-11-01 10:00'],
      ['--since', '1M'],
    ]) {
      await expect(run(process.execPath, [CLI, 'history', 'audit', ...bad], { env })).rejects.toMatchObject({
        code: 2,
        stderr: expect.stringContaining('--since needs an ISO 8601 time with its zone'),
      });
    }

    // The export only dropped the index entry of the record that went; the records are all there.
    const after = await openStateStore(`sqlite://${db}`);
    try {
      const index = await after.members('audit:all');
      expect(index).toContain(old.id);
      expect(index).not.toContain(gone.id);
      expect(index).toHaveLength(3);
    } finally {
      await after.close();
    }
    // Eleven runs of the CLI: 12 to 20 s on a loaded machine, over the 20 s default.
  }, 60_000);
});

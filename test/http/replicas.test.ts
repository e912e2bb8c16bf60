/**
 * Replicas sharing one store compare the settings that decide what happens to a detection or a
 * click: two real services on one SQLite file, each renewing its record every 250 ms (a record
 * lasts three renewals, longer than the event loop stalls of a busy test machine).
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { watchReplicas } from '../../src/replicas.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { answer, startTestApp, type TestApp } from '../support/http-app.ts';

const RENEW_MS = 250;

const dir = mkdtempSync(path.join(tmpdir(), 'arc-replicas-'));
let apps: TestApp[] = [];
afterEach(async () => {
  for (const app of apps) await app.close();
  apps = [];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const start = async (env: Record<string, string>, name: string) => {
  const app = await startTestApp({ dir: path.join(dir, name), env, replicaCheckMs: RENEW_MS });
  apps.push(app);
  return app;
};
const warningsOf = async (app: TestApp) =>
  (await answer<{ warnings?: string[] }>(await fetch(`${app.url}/readyz`))).body.warnings ?? [];

it('names the settings another running replica differs in, in /readyz and once in the log, until it stops', async () => {
  const a = await start({ HISTORY_WINDOW: '7d' }, 'differ');
  const b = await startTestApp({
    dir: path.join(dir, 'differ'),
    env: { HISTORY_WINDOW: '36h', AZURE_REMEDIATION: 'live' },
    replicaCheckMs: RENEW_MS,
  });
  try {
    await vi.waitFor(async () => {
      const [warning] = await warningsOf(a);
      expect(warning).toMatch(/^replicas sharing this store run with other settings/);
      expect(warning).toContain('HISTORY_WINDOW 7d here, 36h there');
      expect(warning).toContain('AZURE_REMEDIATION dry-run here, live there');
      expect(warning).not.toContain('SLACK_ALERT_CHANNEL');
    });
    await vi.waitFor(async () =>
      expect((await warningsOf(b))[0]).toContain('HISTORY_WINDOW 36h here, 7d there'),
    );
    // Logged once while the difference lasts, not at every renewal.
    await new Promise((resolve) => setTimeout(resolve, 3 * RENEW_MS));
    expect(a.logs.filter((l) => /^replicas sharing this store/.test(String(l.msg)))).toHaveLength(1);
  } finally {
    await b.close();
  }
  // The other replica stopped: its record is gone at the next renewal.
  await vi.waitFor(async () => expect(await warningsOf(a)).toEqual([]), { timeout: 10 * RENEW_MS });
});

it('says nothing when the replicas agree', async () => {
  const a = await start({ HISTORY_WINDOW: '36h' }, 'agree');
  await start({ HISTORY_WINDOW: '36h' }, 'agree');
  await new Promise((resolve) => setTimeout(resolve, 3 * RENEW_MS));
  expect(await warningsOf(a)).toEqual([]);
});

it('takes a replica that records no SLACK_HISTORY (an older release, during a rolling upgrade) for one that lets anyone', async () => {
  const store = await openStateStore('memory://');
  const logger = createLogger({ level: 'silent' });
  const settings = { HISTORY_WINDOW: '7d', SLACK_HISTORY: 'anyone' };
  // An older replica's record: the same settings, without the variable it does not know.
  await store.set('meta:replica:older', { host: 'old', pid: 1, settings: { HISTORY_WINDOW: '7d' } }, 60_000);
  await store.addMembers('meta:replicas', ['older']);
  const agreeing = await watchReplicas(store, settings, logger, { everyMs: RENEW_MS });
  expect(agreeing.warnings()).toEqual([]);
  await agreeing.stop();
  const keeping = await watchReplicas(store, { ...settings, SLACK_HISTORY: 'responders' }, logger, {
    everyMs: RENEW_MS,
  });
  expect(keeping.warnings()[0]).toContain('SLACK_HISTORY responders here, anyone there');
  await keeping.stop();
  await store.close();
});

it('names the replicas of an older release that keep learning after LEARNING_PERIOD=0 ended the period, until they stop', async () => {
  const a = await start({ LEARNING_PERIOD: '24h' }, 'learning');
  const until = a.app.engine.learningUntil!;
  // An older replica's record: the same settings, without what it reads while it runs.
  const older = {
    host: 'old-host',
    pid: 41,
    settings: { HISTORY_WINDOW: '7d', AZURE_REMEDIATION: 'dry-run', SLACK_ALERT_CHANNEL: '(no Slack)' },
  };
  await a.app.store.set('meta:replica:older', older, 60_000);
  // One of the release that added LEARNING_PERIOD=0, which reads the end as it runs: it records
  // SLACK_HISTORY, not what it reads.
  const previous = {
    host: 'previous-host',
    pid: 42,
    settings: { ...older.settings, SLACK_HISTORY: 'anyone' },
  };
  await a.app.store.set('meta:replica:previous', previous, 60_000);
  await a.app.store.addMembers('meta:replicas', ['older', 'previous']);

  const b = await start({ LEARNING_PERIOD: '0' }, 'learning');
  expect(b.app.engine.learningEndedHere).toBe(true);
  const [warning, ...rest] = await warningsOf(b);
  expect(warning).toMatch(/^replicas of an earlier release share this store/);
  expect(warning).toContain(`until ${new Date(until).toISOString()}`);
  expect(warning).toContain('old-host (pid 41)');
  expect(warning).not.toContain('previous-host');
  // A replica of this release reads the new end: not named.
  expect(warning).not.toContain(`pid ${process.pid}`);
  expect(rest).toEqual([]);
  expect(
    b.logs.filter((l) => l.level === 'error' && /^replicas of an earlier release/.test(String(l.msg))),
  ).toHaveLength(1);
  // The replica that ended it keeps the end it replaced, should the store lose it.
  await b.app.store.delete('meta:learning-replaced-end');
  await new Promise((resolve) => setTimeout(resolve, 3 * RENEW_MS));
  expect((await warningsOf(b))[0]).toContain('old-host (pid 41)');
  await b.app.store.set('meta:learning-replaced-end', until, until - Date.now());

  // The other replicas of this release name it too, from the end kept in the store.
  await vi.waitFor(async () => expect((await warningsOf(a))[0]).toContain('old-host (pid 41)'), {
    timeout: 10 * RENEW_MS,
  });
  // So does the replica that ended it once restarted without the variable, as its line asks.
  await b.close();
  apps = apps.filter((app) => app !== b);
  const restarted = await start({}, 'learning');
  expect((await warningsOf(restarted))[0]).toContain('old-host (pid 41)');

  // The older replica stopped: its record is gone, and so is the warning.
  await a.app.store.delete('meta:replica:older');
  await vi.waitFor(async () => expect(await warningsOf(restarted)).toEqual([]), { timeout: 10 * RENEW_MS });
  await vi.waitFor(async () => expect(await warningsOf(a)).toEqual([]), { timeout: 10 * RENEW_MS });
});

it("compares Slack's settings only between replicas that both run Slack: one without Slack is named by its channel alone, from either side", async () => {
  const store = await openStateStore('memory://');
  const logger = createLogger({ level: 'silent' });
  const withSlack = {
    HISTORY_WINDOW: '7d',
    AZURE_REMEDIATION: 'dry-run',
    SLACK_ALERT_CHANNEL: 'C0ALERTS',
    SLACK_RESPONDERS: '(nobody)',
    SLACK_ALLOWLIST: 'channel',
    SLACK_HISTORY: 'anyone',
  };
  const withoutSlack = {
    HISTORY_WINDOW: '7d',
    AZURE_REMEDIATION: 'dry-run',
    SLACK_ALERT_CHANNEL: '(no Slack)',
  };
  const first = await watchReplicas(store, withoutSlack, logger, { everyMs: 60_000 });
  const second = await watchReplicas(store, withSlack, logger, { everyMs: 60_000 });
  const differences = (w: typeof first) =>
    w
      .warnings()[0]
      ?.replace(/^.*?: /, '')
      .split(': ')
      .slice(1)
      .join(': ');
  expect(differences(second)).toBe('SLACK_ALERT_CHANNEL C0ALERTS here, (no Slack) there');
  await first.stop();
  const third = await watchReplicas(store, withoutSlack, logger, { everyMs: 60_000 });
  expect(differences(third)).toBe('SLACK_ALERT_CHANNEL (no Slack) here, C0ALERTS there');
  // Between two replicas with Slack, its settings are compared.
  const fourth = await watchReplicas(store, { ...withSlack, SLACK_RESPONDERS: 'U1' }, logger, {
    everyMs: 60_000,
  });
  expect(fourth.warnings()[0]).toContain('SLACK_RESPONDERS U1 here, (nobody) there');
  for (const w of [second, third, fourth]) await w.stop();
  await store.close();
});

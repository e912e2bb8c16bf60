import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ChatAdapter } from '../../src/chat-adapter.ts';
import { createLogger } from '../../src/log.ts';
import { createLogChat } from '../../src/outbox/log-chat.ts';
import { startFakeSlack } from '../support/fake-slack.ts';
import {
  answer,
  arcRecord,
  freshAppId,
  postIngest,
  startTestApp,
  type TestApp,
} from '../support/http-app.ts';

describe('GET /healthz, /readyz, /metrics', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('healthz answers while the process runs', async () => {
    const res = await answer<{ status: string }>(await fetch(`${t.url}/healthz`));
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ok');
  });

  it('readyz answers ready with the store kind and the chat', async () => {
    const res = await answer(await fetch(`${t.url}/readyz`));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: 'ready',
      store: 'sqlite',
      chat: 'log-only',
      outbox: { pending: 0, alerts: 0 },
    });
  });

  it('metrics counts events per format and outcome, times ingest, and shows outbox and chat failures', async () => {
    const record = arcRecord({ appId: freshAppId() });
    await postIngest(t.url, [record, { nope: 1 }, { ...record, resultType: 'Start' }, record]);
    const res = await fetch(`${t.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('arc_ingest_events_total{format="azure-activity-log-record",outcome="alerted"} 1');
    expect(text).toContain('arc_ingest_events_total{format="unknown",outcome="invalid"} 1');
    // Recognised events that are not accepted count under their format, not as unknown.
    expect(text).toContain('arc_ingest_events_total{format="azure-activity-log-record",outcome="ignored"} 1');
    expect(text).toContain(
      'arc_ingest_events_total{format="azure-activity-log-record",outcome="duplicate"} 1',
    );
    expect(text).toMatch(/arc_ingest_duration_seconds_count\{status="200"\} 1/);
    // Buckets reach past the service's own deadlines (15 s for a body, 20 s for the store).
    for (const le of ['10', '15', '20', '30']) {
      expect(text).toContain(`arc_ingest_duration_seconds_bucket{le="${le}",status="200"} 1`);
    }
    expect(text).toMatch(/arc_ingest_requests_total\{status="200"\} 1/);
    expect(text).toMatch(/^arc_outbox_depth \d+$/m);
    expect(text).toMatch(/^arc_chat_problems 0$/m);
    expect(text).toContain('# TYPE arc_chat_delivery_failures_total counter');
    expect(text).toContain('arc_process_cpu_user_seconds_total');
  });

  it('shows the series of known labels at 0 before anything happened, so that increase() sees the first', async () => {
    const fresh = await startTestApp();
    try {
      const text = await (await fetch(`${fresh.url}/metrics`)).text();
      for (const series of [
        'arc_ingest_events_total{format="azure-activity-log-record",outcome="alerted"} 0',
        'arc_ingest_events_total{format="elastic-alert",outcome="invalid"} 0',
        'arc_ingest_events_total{format="unknown",outcome="invalid"} 0',
        'arc_ingest_requests_total{status="200"} 0',
        'arc_ingest_requests_total{status="401"} 0',
        'arc_ingest_requests_total{status="503"} 0',
        'arc_chat_delivery_failures_total{kind="post"} 0',
        'arc_chat_delivery_failures_total{kind="repeat"} 0',
        'arc_chat_deliveries_total{kind="post"} 0',
      ]) {
        expect(text).toContain(series);
      }
      expect(text.match(/^arc_ingest_events_total\{/gm)).toHaveLength(6 * 6 + 2);
    } finally {
      await fresh.close();
    }
  });

  it('keeps metrics per app instance, not in a global registry', async () => {
    const other = await startTestApp();
    try {
      await postIngest(other.url, arcRecord({ appId: freshAppId() }));
      await postIngest(other.url, arcRecord({ appId: freshAppId() }));
      const mine = await (await fetch(`${t.url}/metrics`)).text();
      const theirs = await (await fetch(`${other.url}/metrics`)).text();
      expect(mine).toContain(
        'arc_ingest_events_total{format="azure-activity-log-record",outcome="alerted"} 1',
      );
      expect(theirs).toContain(
        'arc_ingest_events_total{format="azure-activity-log-record",outcome="alerted"} 2',
      );
    } finally {
      await other.close();
    }
  });
});

describe('GET /readyz with chat warnings', () => {
  it('stays ready (200) and lists what the chat warns of, such as an alert it refuses', async () => {
    const logChat = createLogChat(createLogger({ level: 'silent' }));
    const warning = 'Slack refuses 1 alert message in every form, text alone too (invalid_blocks): …';
    const chat: ChatAdapter = { ...logChat, name: 'test-chat', warnings: () => [warning] };
    const t = await startTestApp({ chat });
    try {
      const res = await answer<{ status: string; warnings: string[] }>(await fetch(`${t.url}/readyz`));
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: 'ready', warnings: [warning] });
    } finally {
      await t.close();
    }
  });
});

describe('GET /readyz when not ready', () => {
  it('stays ready (200) while the chat has a problem, lists it and counts it; 503 once the store is gone', async () => {
    const logChat = createLogChat(createLogger({ level: 'silent' }));
    const problem = 'channel_not_found: invite the bot to C0TEST (/invite @arc-responder)';
    const chat: ChatAdapter = { ...logChat, name: 'test-chat', problems: () => [problem] };
    const t = await startTestApp({ chat });
    try {
      // Ingest still works and the outbox keeps the alerts: a Slack problem never takes it out of rotation.
      const res = await answer<{ status: string; warnings: string[] }>(await fetch(`${t.url}/readyz`));
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: 'ready', warnings: [problem] });
      expect(await (await fetch(`${t.url}/metrics`)).text()).toMatch(/^arc_chat_problems 1$/m);

      await t.app.store.close();
      const down = await answer<{ error: string; problems: string[]; warnings: string[] }>(
        await fetch(`${t.url}/readyz`),
      );
      expect(down.status).toBe(503);
      expect(down.body.problems).toHaveLength(1);
      expect(down.body.problems[0]).toMatch(/^the sqlite store is not reachable/);
      expect(down.body.error).toMatch(/^not ready: the sqlite store is not reachable/);
      expect(down.body.warnings).toEqual([problem]);
      // Its log line says what is wrong, as the answer does.
      const notReady = t.logs.find((l) => l.msg === 'request failed' && l.path === '/readyz');
      expect(notReady).toMatchObject({ status: 503, code: 'not_ready', error: down.body.error });

      // Ingest with the store gone is a 503 with Retry-After, not a crash.
      const ingest = await postIngest<{ code: string }>(t.url, arcRecord({ appId: freshAppId() }));
      expect(ingest.status).toBe(503);
      expect(ingest.body.code).toBe('store_unavailable');
      expect(ingest.headers.get('retry-after')).toBe('5');
      // The log line of the refused request says why, not only its code.
      const failed = t.logs.find((l) => l.msg === 'request failed' && l.code === 'store_unavailable');
      expect(String(failed?.error)).toMatch(/the history store failed \(The sqlite state store is closed\)/);
    } finally {
      await t.close();
    }
  });
});

describe('GET /readyz while another process holds the SQLite write lock', () => {
  it('answers 503 within its one budget of 2 s for the store checks, naming the write', async () => {
    const t = await startTestApp();
    const other = new DatabaseSync(path.join(t.dir, 'arc.db'));
    try {
      other.exec('BEGIN IMMEDIATE');
      const asked = performance.now();
      const res = await answer<{ problems: string[] }>(await fetch(`${t.url}/readyz`));
      const took = performance.now() - asked;
      expect(res.status).toBe(503);
      // The budget left for the write, said in whole milliseconds (not "1947.4755379999988 ms").
      expect(res.body.problems.join()).toMatch(/^a write to the sqlite store did not answer within \d+ ms$/);
      expect(took).toBeLessThan(3500);
    } finally {
      if (other.isTransaction) other.exec('ROLLBACK');
      other.close();
      await t.close();
    }
  });
});

describe('GET /readyz after the store lost its data', () => {
  it('stays ready, and warns (and logs once) that the history from before is gone', async () => {
    const t = await startTestApp();
    try {
      expect(
        (await answer<{ warnings?: string[] }>(await fetch(`${t.url}/readyz`))).body.warnings,
      ).toBeUndefined();
      // What a Redis restarted without persistence, or an emptied database, leaves: nothing.
      const db = new DatabaseSync(path.join(t.dir, 'arc.db'));
      db.exec('DELETE FROM arc_claims; DELETE FROM keyv; DELETE FROM arc_members');
      db.close();
      for (let i = 0; i < 2; i++) {
        const res = await answer<{ status: string; warnings: string[] }>(await fetch(`${t.url}/readyz`));
        expect(res.status).toBe(200);
        expect(res.body.warnings).toEqual([
          expect.stringMatching(/^the sqlite store lost its data while the service ran \(noticed \d{4}-/),
        ]);
      }
      expect(t.logs.filter((l) => /lost its data/.test(String(l.msg)) && l.level === 'error')).toHaveLength(
        1,
      );
    } finally {
      await t.close();
    }
  });
});

describe('GET /readyz on replicas after the store lost its data', () => {
  it('warns on every replica, not only on the one that found the loss, each logging it once', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'arc-lost-replicas-'));
    let ahead = 0;
    const first = await startTestApp({ dir });
    const second = await startTestApp({ dir, now: () => Date.now() + ahead });
    try {
      const db = new DatabaseSync(path.join(dir, 'arc.db'));
      db.exec('DELETE FROM arc_claims; DELETE FROM keyv; DELETE FROM arc_members');
      db.close();
      const warnings = async (url: string) =>
        (await answer<{ warnings?: string[] }>(await fetch(`${url}/readyz`))).body.warnings;
      const lost = [expect.stringMatching(/^the sqlite store lost its data while the service ran/)];
      expect(await warnings(first.url)).toEqual(lost);
      // The other replica finds the store in use again (the first took its marks back): it reads
      // when the loss was seen at its next read of it.
      ahead = 31_000;
      expect(await warnings(second.url)).toEqual(lost);
      expect(await warnings(second.url)).toEqual(lost);
      // Its later reads find the same loss: no news, nothing logged again.
      ahead = 62_000;
      expect(await warnings(second.url)).toEqual(lost);
      // A day after the loss was seen, the warning is gone.
      ahead = 24 * 3_600_000 + 62_000;
      expect((await warnings(second.url)) ?? []).toEqual([]);
      for (const t of [first, second]) {
        expect(t.logs.filter((l) => /lost its data/.test(String(l.msg)) && l.level === 'error')).toHaveLength(
          1,
        );
      }
    } finally {
      await second.close();
      await first.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a restart after the store lost its data', () => {
  it('warns on, and takes the emptied store for one in use: LEARNING_PERIOD opens no learning period', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'arc-lost-'));
    try {
      const first = await startTestApp({ dir });
      try {
        await postIngest(first.url, arcRecord({ appId: freshAppId() }));
        const db = new DatabaseSync(path.join(dir, 'arc.db'));
        db.exec('DELETE FROM arc_claims; DELETE FROM keyv; DELETE FROM arc_members');
        db.close();
        expect(
          (await answer<{ warnings: string[] }>(await fetch(`${first.url}/readyz`))).body.warnings,
        ).toHaveLength(1);
        // The marks of a store in use are written again in the background.
        await vi.waitFor(async () => {
          expect(await first.app.store.get('meta:learning-until')).toBe(0);
        });
      } finally {
        await first.close();
      }
      const second = await startTestApp({ dir, env: { LEARNING_PERIOD: '24h' } });
      try {
        expect(second.app.engine.learningUntil).toBeUndefined();
        expect(
          (await answer<{ warnings: string[] }>(await fetch(`${second.url}/readyz`))).body.warnings,
        ).toEqual([expect.stringMatching(/^the sqlite store lost its data while the service ran/)]);
        const fresh = await postIngest(second.url, arcRecord({ appId: freshAppId() }));
        expect(fresh.body).toMatchObject({ counts: { alerted: 1 } });
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('GET /metrics with Slack failing', () => {
  it("counts failed Slack calls by Slack's error code, and a code it does not know as other", async () => {
    const fake = await startFakeSlack();
    fake.script('chat.postMessage', { error: 'ratelimited' }, { error: 'made_up_by_a_proxy_4711' });
    const t = await startTestApp({
      env: {
        SLACK_BOT_TOKEN: 'xoxb-metrics-test',
        SLACK_SIGNING_SECRET: 'metrics-test-secret',
        SLACK_ALERT_CHANNEL: 'C0ALERTS',
        SLACK_API_URL: fake.apiUrl,
      },
      outbox: { pollMs: 20, baseBackoffMs: 20, maxBackoffMs: 50 },
    });
    try {
      expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(200);
      const metrics = async () => (await fetch(`${t.url}/metrics`)).text();
      await vi.waitFor(async () =>
        expect(await metrics()).toContain('arc_chat_api_failures_total{reason="other"} 1'),
      );
      const text = await metrics();
      expect(text).toContain('arc_chat_api_failures_total{reason="ratelimited"} 1');
      expect(text).not.toContain('made_up_by_a_proxy_4711');
      // The log still names the code that came back.
      expect(t.logs.some((l) => l.code === 'made_up_by_a_proxy_4711')).toBe(true);
    } finally {
      await t.close();
      await fake.stop();
    }
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { IngestSummary } from '../../src/http/ingest-handler.ts';
import { arcRecord, freshAppId, postIngest } from '../support/http-app.ts';
import {
  type ServiceProcess,
  slackServiceEnv,
  startService,
  waitForEmptyOutbox,
} from '../support/http-child.ts';
import { type FakeSlack, startFakeSlack } from '../support/http-fake-slack.ts';

describe('crash between the 200 and the chat delivery (kill -9, restart) [derived Arc events]', () => {
  let dir: string;
  let slack: FakeSlack | undefined;
  const children: ServiceProcess[] = [];

  afterEach(async () => {
    for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    await slack?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the restarted service posts each pending alert to Slack exactly once', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-crash-'));
    slack = await startFakeSlack({ down: true });
    const env = slackServiceEnv(dir, slack.apiUrl);

    // First run: Slack is down, so the alerts stay in the outbox.
    const first = startService(env, dir);
    children.push(first);
    const url = await first.url();
    const appIds = [freshAppId(), freshAppId(), freshAppId()];
    const res = await postIngest<IngestSummary>(
      url,
      appIds.map((appId) => arcRecord({ appId })),
    );
    expect(res.status).toBe(200);
    expect(res.body.counts.alerted).toBe(3);
    // Kill right after a failed attempt: the worker then waits out its backoff, holding no lease.
    await first.waitForLine((l) => typeof l.msg === 'string' && l.msg.startsWith('chat delivery failed'));
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    expect(slack.ok('chat.postMessage')).toHaveLength(0);

    // Second run: Slack answers; every pending alert is posted once.
    slack.down = false;
    const second = startService(env, dir);
    children.push(second);
    const url2 = await second.url();
    await second.waitForLine((l) => l.msg === 'outbox holds undelivered items; delivering');
    await vi.waitFor(() => expect(slack!.ok('chat.postMessage')).toHaveLength(3), {
      timeout: 20_000,
      interval: 100,
    });
    await waitForEmptyOutbox(url2, 10_000);

    const posts = slack.ok('chat.postMessage');
    expect(posts).toHaveLength(3);
    for (const appId of appIds) {
      expect(
        posts.filter((p) => p.raw.includes(appId)),
        appId,
      ).toHaveLength(1);
    }
    for (const p of posts) expect(p.params.channel).toBe('C0TEST');

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(second.lines.some((l) => l.msg === 'stopped')).toBe(true);
  }, 60_000);
});

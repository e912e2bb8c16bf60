import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { IngestSummary } from '../../src/http/ingest-handler.ts';
import { FakeSlack } from '../support/fake-slack.ts';
import { arcRecord, freshAppId, postIngest } from '../support/http-app.ts';
import {
  type ServiceProcess,
  slackServiceEnv,
  startService,
  waitForEmptyOutbox,
} from '../support/http-child.ts';

/**
 * The most delicate moment of the outbox: Slack has taken the alert's message, and the process
 * dies before it hears so. Apart from the other crash tests because it waits out the dead
 * attempt's two minutes.
 */
describe('crash during the Slack post (kill -9, restart) [derived Arc events]', () => {
  let dir: string;
  let slack: FakeSlack | undefined;
  const children: ServiceProcess[] = [];

  afterEach(async () => {
    for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    await slack?.stop();
    slack = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('killed while Slack holds the answer to a post it made, the restarted service finds that message and posts none again', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-crash-'));
    // Slack takes the first post (the message is in the channel) and never answers it.
    slack = await new FakeSlack().start();
    slack.script('chat.postMessage', { delayMs: 120_000, createdFirst: true });
    const env = slackServiceEnv(dir, slack.apiUrl);
    const first = startService(env, dir);
    children.push(first);
    const appId = freshAppId();
    const res = await postIngest<IngestSummary>(await first.url(), [arcRecord({ appId })]);
    expect(res.body.counts.alerted).toBe(1);
    await slack.waitFor('the post', () => slack!.messages('C0TEST').length === 1, 20_000);
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    // The restarted service takes the alert once the dead attempt's hold on it lapses (2 minutes),
    // so that Slack has surely finished with it; then it searches the channel before posting.
    const second = startService(env, dir);
    children.push(second);
    const url2 = await second.url();
    await waitForEmptyOutbox(url2, 170_000, 500);
    const messages = slack.messages('C0TEST');
    expect(messages).toHaveLength(1);
    expect(JSON.stringify(messages[0])).toContain(appId);
    // Asked once, by the killed process: the restarted one found the message instead.
    expect(slack.callsOf('chat.postMessage').filter((c) => c.args.thread_ts === undefined)).toHaveLength(1);
    expect(slack.callsOf('conversations.history').length).toBeGreaterThan(0);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 200_000);
});

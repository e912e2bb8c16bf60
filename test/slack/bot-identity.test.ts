/**
 * `auth.test` runs once at start, never per request: Bolt gets an `authorize` that answers from
 * memory, so a rate-limited or unreachable `auth.test` cannot swallow a click or a command. Also:
 * one `component` key per log line, Bolt's own lines included.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { boltLogger } from '../../src/slack/bolt-logger.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import { type Harness, OUTSIDER, RESPONDER, startHarness } from './harness.ts';
import { sampleAlert } from './sample-alert.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const alert = sampleAlert();
const authTests = () => h!.fake.callsOf('auth.test');

async function started(fakeFirst?: (h: Harness) => void) {
  h = await startHarness({ tuning: { authRetryBaseMs: 20, authRetryMaxMs: 200 } });
  await h.chat.sink.post(alert);
  fakeFirst?.(h);
  await h.chat.start?.();
  return h;
}

/** Clicks Mark benign and Revoke, a refused click and two commands; checks that each acted. */
async function useTheApp(h: Harness) {
  const opened = h.fake.callsOf('views.open').length;
  await h.click(ACTION_IDS.markBenign, alert.id, RESPONDER);
  await h.fake.waitFor('the modal', () => h.fake.callsOf('views.open').length === opened + 1);
  const refused = await h.click(ACTION_IDS.revoke, alert.id, OUTSIDER);
  await h.fake.waitFor('the refusal', () => h.fake.responsesTo(refused.responseId).length === 1);
  // Revoke (dry-run): runs the first time; later, within its lock, a private note says it just ran.
  const threads = () => h.fake.callsOf('chat.postMessage').filter((c) => c.args.thread_ts).length;
  const before = threads();
  const revoke = await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
  await h.fake.waitFor(
    'the revoke audit or the note',
    () => threads() === before + 1 || h.fake.responsesTo(revoke.responseId).length === 1,
  );
  for (const text of ['', alert.detection.appId]) {
    const res = await h.command(text, RESPONDER);
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ response_type: 'ephemeral' });
  }
}

/** Lines (JSON objects) with more than one `component` key. */
const duplicateKeys = (lines: string[]) => lines.filter((l) => (l.match(/"component":/g) ?? []).length > 1);

describe('auth.test', () => {
  it('is called once at start, and not again for any click or command', async () => {
    h = await started();
    expect(authTests()).toHaveLength(1);
    expect(authTests()[0]!.token).toBe('xoxb-test-bot-token');
    await useTheApp(h);
    await useTheApp(h);
    expect(authTests()).toHaveLength(1);
    expect(h.chat.problems()).toEqual([]);
    expect(h.logs.join('')).toContain('"botUserId":"UBOT"');
  });

  it('is never called by requests when start() has not run', async () => {
    h = await startHarness();
    await h.chat.sink.post(alert);
    await useTheApp(h);
    expect(authTests()).toEqual([]);
  });

  it('answered 429: clicks and commands still act, and it is retried in the background once', async () => {
    h = await started((h) => h.fake.script('auth.test', { status: 429, retryAfter: 1 }));
    expect(authTests()).toHaveLength(1);
    // While auth.test is rate limited (Retry-After: 1 s), everything works.
    await useTheApp(h);
    expect(h.chat.problems()).toEqual([]);
    await h.fake.waitFor('the retry', () => authTests().length === 2);
    await useTheApp(h);
    expect(authTests()).toHaveLength(2);
    expect(h.logs.join('')).toContain('trying again in the background');
  });

  it('with Slack unreachable: start does not throw, retries with backoff until Slack answers', async () => {
    h = await started((h) => h.fake.script('auth.test', { status: 503 }, { status: 503 }, { status: 500 }));
    await h.fake.waitFor('three retries', () => authTests().length === 4);
    await useTheApp(h);
    expect(authTests()).toHaveLength(4);
    expect(h.chat.problems()).toEqual([]);
  });

  it('answering slowly does not hold up the start; the answer is used when it comes', async () => {
    h = await startHarness({ tuning: { startWaitMs: 100 } });
    await h.chat.sink.post(alert);
    h.fake.script('auth.test', { delayMs: 1500 });
    const t0 = Date.now();
    await h.chat.start?.();
    expect(Date.now() - t0).toBeLessThan(1000);
    await useTheApp(h);
    await vi.waitFor(() => expect(h!.logs.join('')).toContain('"botUserId":"UBOT"'), { timeout: 5000 });
    await useTheApp(h);
    expect(authTests()).toHaveLength(1);
  });

  it('answered invalid_auth: shows the fix through problems() and does not retry', async () => {
    h = await started((h) => h.fake.script('auth.test', { error: 'invalid_auth' }));
    expect(h.chat.problems()).toHaveLength(1);
    expect(h.chat.problems()[0]).toContain('SLACK_BOT_TOKEN');
    // Ten times the first backoff: a retry would have happened by now.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(authTests()).toHaveLength(1);
  });

  it('stops retrying when the adapter stops', async () => {
    h = await started((h) => h.fake.script('auth.test', { status: 503 }, { status: 503 }, { status: 503 }));
    await h.chat.stop?.();
    const calls = authTests().length;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(authTests()).toHaveLength(calls);
  });
});

describe('log lines', () => {
  it('carry one component key each, Bolt lines included', async () => {
    h = await started((h) => h.fake.script('auth.test', { status: 429, retryAfter: 1 }));
    await useTheApp(h);
    // A signed request the guard refuses, and one that Bolt itself logs about: an Events API body
    // of a type it does not know (which it leaves unanswered for 3 s, then answers 404).
    expect((await h.send('payload=%7Bnot-json')).status).toBe(400);
    expect(
      (await h.send('{"type":"no_such_type"}', { headers: { 'content-type': 'application/json' } })).status,
    ).toBe(404);
    const lines = h.logs.join('').split('\n').filter(Boolean);
    expect(duplicateKeys(lines)).toEqual([]);
    expect(lines.some((l) => l.includes('"component":"slack"'))).toBe(true);
    const bolt = lines.filter((l) => l.includes('"component":"slack-bolt"'));
    expect(bolt.map((l) => JSON.parse(l).msg)).toContainEqual(
      expect.stringContaining('Could not determine the type of an incoming event'),
    );
  });

  it('boltLogger adds `bolt` only to a logger without a component', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const root = pino(sink);
    boltLogger(root.child({ component: 'slack-bolt' })).warn('one');
    boltLogger(root).error('two', new Error('three'), { four: 4 });
    expect(duplicateKeys(lines)).toEqual([]);
    expect(JSON.parse(lines[0]!)).toMatchObject({ component: 'slack-bolt', msg: 'one' });
    expect(JSON.parse(lines[1]!)).toMatchObject({ component: 'bolt', msg: 'two three {"four":4}' });
  });
});

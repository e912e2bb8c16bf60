import { afterEach, describe, expect, it, vi } from 'vitest';
import { DELIVERY_IN_PROGRESS } from '../../src/core/ports.ts';
import type { Enricher, Enrichment } from '../../src/core/remediation.ts';
import { alertStateKey, loadAlertState } from '../../src/slack/alert-state.ts';
import { DeliveryQueue } from '../../src/slack/delivery-queue.ts';
import { SlackDeliveryError } from '../../src/slack/index.ts';
import { postMarkKey } from '../../src/slack/sink.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { describeWithService, redisTestUser, uniqueNamespace } from '../store/helpers.ts';
import { startFakeSlack } from '../support/fake-slack.ts';
import {
  BOT_TOKEN,
  CHANNEL,
  type Harness,
  postWithRefusedUpdate,
  SECRET,
  startHarness,
  warningsAbout,
} from './harness.ts';
import { sampleAlert } from './sample-alert.ts';

let h: Harness;
afterEach(async () => h?.close());

const blocksText = (args: Record<string, unknown>) => JSON.stringify(args.blocks);

describe('posting alerts', () => {
  it('posts a new alert exactly once to SLACK_ALERT_CHANNEL and returns channel:ts', async () => {
    h = await startHarness();
    const alert = sampleAlert();
    const { ref } = await h.chat.sink.post(alert);
    expect(ref).toBe(`${CHANNEL}:1700000000.000001`);
    const posts = h.fake.callsOf('chat.postMessage');
    expect(posts).toHaveLength(1);
    expect(posts[0]!.token).toBe(BOT_TOKEN);
    expect(posts[0]!.args.channel).toBe(CHANNEL);
    expect(blocksText(posts[0]!.args)).toContain(alert.detection.appId);
    expect(blocksText(posts[0]!.args)).toContain('Mark benign');
    expect(blocksText(posts[0]!.args)).toContain('Revoke');
    expect(String(posts[0]!.args.text)).toContain(alert.detection.sourceIp);

    // The outbox may hand the same alert over again (a retry after a crash): no second post.
    expect(await h.chat.sink.post(alert)).toEqual({ ref });
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
  });

  it.each(['invalid_blocks', 'msg_too_long', 'msg_blocks_too_long'])(
    'an alert Slack refuses as it is (%s) is posted once in plain form: every field, links as their labels, both buttons',
    async (error) => {
      h = await startHarness();
      const alert = sampleAlert();
      h.fake.script('chat.postMessage', { error });
      const { ref } = await h.chat.sink.post(alert);
      const posts = h.fake.callsOf('chat.postMessage');
      expect(posts).toHaveLength(2);
      expect(ref).toBe(`${CHANNEL}:1700000000.000001`);
      const [full, plain] = [blocksText(posts[0]!.args), blocksText(posts[1]!.args)];
      for (const text of [alert.detection.appId, alert.detection.sourceIp, 'Mark benign', 'Revoke']) {
        expect(plain).toContain(text);
      }
      expect(full).toContain('<https://');
      expect(plain).not.toContain('<https://');
      const types = (posts[1]!.args.blocks as Array<{ type: string }>).map((b) => b.type);
      expect(new Set(types)).toEqual(new Set(['section', 'actions']));
      expect(h.logs.join('')).toContain(
        `Slack refused the alert's message (${error}); sending it in plain form`,
      );
      expect(h.chat.problems()).toEqual([]);
    },
  );

  it('an alert whose metadata Slack refuses is posted as it is, without the metadata', async () => {
    h = await startHarness();
    h.fake.script('chat.postMessage', { error: 'invalid_metadata_format' });
    const { ref } = await h.chat.sink.post(sampleAlert());
    expect(ref).toBe(`${CHANNEL}:1700000000.000001`);
    const posts = h.fake.callsOf('chat.postMessage');
    expect(posts).toHaveLength(2);
    expect(posts[0]!.args.metadata).toBeDefined();
    expect(posts[1]!.args.metadata).toBeUndefined();
    // The full message, not the plain form.
    expect(blocksText(posts[1]!.args)).toBe(blocksText(posts[0]!.args));
    expect(h.logs.join('')).toContain("Slack refused the alert's message metadata (invalid_metadata_format)");
    expect(h.chat.problems()).toEqual([]);
  });

  it('an alert Slack refuses in plain form too is posted as text alone, saying why it has no buttons', async () => {
    h = await startHarness();
    const alert = sampleAlert();
    h.fake.script('chat.postMessage', { error: 'invalid_blocks' }, { error: 'invalid_blocks' });
    const { ref } = await h.chat.sink.post(alert);
    const posts = h.fake.callsOf('chat.postMessage');
    expect(posts).toHaveLength(3);
    expect(ref).toBe(`${CHANNEL}:1700000000.000001`);
    expect(posts[2]!.args.blocks).toBeUndefined();
    const text = String(posts[2]!.args.text);
    for (const fact of [alert.detection.appId, alert.detection.sourceIp]) expect(text).toContain(fact);
    expect(text).toContain(
      `Slack refused this alert's layout, so it shows no buttons: the service log names alert ${alert.id}`,
    );
    expect(text.length).toBeLessThanOrEqual(4000);
    expect(h.chat.problems()).toEqual([]);
    expect(h.chat.warnings?.()).toEqual([]);
  });

  it('an alert posted as text alone, whose post got a 500 after Slack took it, is found by its metadata and not posted again', async () => {
    h = await startHarness();
    const alert = sampleAlert();
    h.fake.script(
      'chat.postMessage',
      { error: 'invalid_blocks' },
      { error: 'invalid_blocks' },
      { status: 500, created: true },
    );
    await expect(h.chat.sink.post(alert)).rejects.toBeInstanceOf(SlackDeliveryError);
    expect(h.fake.callsOf('chat.postMessage')[2]!.args.metadata).toEqual({
      event_type: 'arc_responder_alert',
      event_payload: { alert_id: alert.id },
    });
    await h.store.releaseClaim(`slack-post:${alert.id}`);
    const { ref } = await h.chat.sink.post(alert);
    expect(ref).toBe(`${CHANNEL}:1700000000.000001`);
    expect(String(h.fake.callsOf('conversations.history')[0]!.args.include_all_metadata)).toBe('true');
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(3);
  });

  it('an alert Slack refuses in every form fails as its own (itemOnly), is a /readyz warning (not a failure), and clears once posted', async () => {
    h = await startHarness();
    const alert = sampleAlert();
    h.fake.script('chat.postMessage', ...Array.from({ length: 3 }, () => ({ error: 'msg_too_long' })));
    const err = await h.chat.sink.post(alert).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlackDeliveryError);
    expect(err).toMatchObject({ code: 'msg_too_long', itemOnly: true });
    // Nothing was posted: no mark, so the retry posts without a search.
    expect(await h.store.get(postMarkKey(alert.id))).toBeUndefined();
    expect(h.chat.problems()).toEqual([]);
    expect(h.chat.warnings?.()).toEqual([
      expect.stringMatching(/^Slack refuses 1 alert message in every form, text alone too \(msg_too_long\)/),
    ]);
    expect(h.chat.warnings?.()[0]).toContain(alert.id);
    await h.chat.sink.post(alert);
    expect(h.chat.warnings?.()).toEqual([]);
    expect(h.fake.callsOf('conversations.history')).toHaveLength(0);
  });

  describe('a post cut short (Slack took it, its answer was never stored)', () => {
    /** What an attempt that stopped during chat.postMessage leaves behind: the mark, no state. */
    async function interruptedPost(h: Harness, alert = sampleAlert()) {
      await h.chat.sink.post(alert);
      await h.store.delete(alertStateKey(alert.id));
      await h.store.set(postMarkKey(alert.id), Date.now() - 1000);
      // The stopped attempt's claim on the post has lapsed by the time the outbox retries.
      await h.store.releaseClaim(`slack-post:${alert.id}`);
      return alert;
    }

    it('finds the message in the channel history and does not post it again', async () => {
      h = await startHarness();
      const alert = await interruptedPost(h);
      const { ref } = await h.chat.sink.post(alert);
      expect(ref).toBe(`${CHANNEL}:1700000000.000001`);
      expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
      expect(h.fake.callsOf('conversations.history')[0]?.args).toMatchObject({ channel: CHANNEL });
      expect(await loadAlertState(h.store, alert.id)).toMatchObject({ ts: '1700000000.000001' });
      expect(await h.store.get(postMarkKey(alert.id))).toBeUndefined();
      // Recorded now: the next retry neither reads the history nor posts.
      await h.chat.sink.post(alert);
      expect(h.fake.callsOf('conversations.history')).toHaveLength(1);
    });

    it('searches the channel the cut-short attempt posted to, when SLACK_ALERT_CHANNEL has moved since', async () => {
      const alert = sampleAlert();
      const fake = await startFakeSlack();
      try {
        h = await startHarness({ channel: 'C0OLD', fake });
        await h.chat.sink.post(alert);
        await h.store.set(postMarkKey(alert.id), { at: Date.now() - 1000, channel: 'C0OLD' });
        // Restarted on the new channel, with what the stopped attempt left in the store: its mark.
        const mark = await h.store.get(postMarkKey(alert.id));
        await h.close();
        h = await startHarness({ channel: 'C0NEW', fake });
        await h.store.set(postMarkKey(alert.id), mark);
        const { ref } = await h.chat.sink.post(alert);
        expect(ref).toBe('C0OLD:1700000000.000001');
        expect(fake.callsOf('conversations.history').map((c) => c.args.channel)).toEqual(['C0OLD']);
        expect(fake.callsOf('chat.postMessage')).toHaveLength(1);
        expect(await loadAlertState(h.store, alert.id)).toMatchObject({ channel: 'C0OLD' });
      } finally {
        await fake.stop();
      }
    });

    it('posts when the history does not have it (the attempt never reached Slack)', async () => {
      h = await startHarness();
      await interruptedPost(h, sampleAlert({ id: 'other-alert' }));
      const alert = sampleAlert();
      await h.store.set(postMarkKey(alert.id), Date.now() - 1000);
      await h.chat.sink.post(alert);
      expect(h.fake.callsOf('conversations.history')).toHaveLength(1);
      expect(h.fake.callsOf('chat.postMessage')).toHaveLength(2);
    });

    it('posts again when the history can never be read (scope missing), and says why', async () => {
      h = await startHarness();
      const alert = await interruptedPost(h);
      h.fake.script('conversations.history', { error: 'missing_scope', needed: 'channels:history' });
      const { ref } = await h.chat.sink.post(alert);
      expect(ref).toBe(`${CHANNEL}:1700000000.000002`);
      expect(h.fake.callsOf('chat.postMessage')).toHaveLength(2);
      expect(h.logs.join('')).toContain('add the channels:history and groups:history scopes');
      expect(h.failures).toContainEqual({ reason: 'missing_scope' });
    });

    it('names the cause when the history cannot be read for another reason, without scope advice', async () => {
      h = await startHarness();
      const alert = await interruptedPost(h);
      h.fake.script('conversations.history', { error: 'not_in_channel' });
      await h.chat.sink.post(alert);
      expect(h.fake.callsOf('chat.postMessage')).toHaveLength(2);
      const logs = h.logs.join('');
      expect(logs).toContain('went out (not_in_channel); posting the alert again');
      expect(logs).not.toContain('add the channels:history');
    });

    it('posts again when the search can never work: an unknown method, a 404', async () => {
      for (const answer of [{ error: 'unknown_method' }, { status: 404 }] as const) {
        h = await startHarness();
        const alert = await interruptedPost(h);
        h.fake.script('conversations.history', answer);
        await h.chat.sink.post(alert);
        expect(h.fake.callsOf('chat.postMessage'), JSON.stringify(answer)).toHaveLength(2);
        await h.close();
      }
    });

    it('posts anyway when the search has failed for now for 15 minutes since the attempt (once beats never)', async () => {
      h = await startHarness();
      const alert = await interruptedPost(h);
      await h.store.set(postMarkKey(alert.id), Date.now() - 16 * 60_000);
      h.fake.script('conversations.history', { status: 503 });
      await h.chat.sink.post(alert);
      expect(h.fake.callsOf('chat.postMessage')).toHaveLength(2);
    });

    it('does not post blind when the history cannot be read for now: it fails, to be retried', async () => {
      h = await startHarness();
      const alert = await interruptedPost(h);
      h.fake.script('conversations.history', { status: 503 });
      await expect(h.chat.sink.post(alert)).rejects.toMatchObject({ retryable: true });
      expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
      expect(await h.store.get(postMarkKey(alert.id))).toBeDefined();
      await h.store.releaseClaim(`slack-post:${alert.id}`);
      expect((await h.chat.sink.post(alert)).ref).toBe(`${CHANNEL}:1700000000.000001`);
      expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
    });

    it.each([
      ['a 500', { status: 500 }],
      ["a gateway's 502", { status: 502 }],
      [
        "a gateway's 504 (it gave up waiting for Slack)",
        { status: 504, body: '<html>Gateway Timeout</html>' },
      ],
      [
        "a proxy's HTML page answered 200",
        { status: 200, body: '<html><body>Bad gateway from proxy</body></html>' },
      ],
    ])(
      'after a post that may have gone out (%s): keeps the mark and the claim, then finds it once the claim lapses',
      async (_what, answer) => {
        h = await startHarness();
        const alert = sampleAlert();
        h.fake.script('chat.postMessage', answer);
        await expect(h.chat.sink.post(alert)).rejects.toBeInstanceOf(SlackDeliveryError);
        expect(await h.store.get(postMarkKey(alert.id))).toBeDefined();
        // A page that is not Slack's answer stays out of the log and of the metric's labels.
        expect(h.logs.join('')).not.toContain('<html>');
        for (const f of h.failures) expect(String(f?.reason)).toMatch(/^[a-z0-9_.]+$/);
        // Nothing of the attempt is kept but the mark: the retry prepares the alert afresh.
        expect(await loadAlertState(h.store, alert.id)).toBeUndefined();
        // Until the claim lapses, a retry is told the alert is in progress: no search, no post.
        await expect(h.chat.sink.post(alert)).rejects.toMatchObject({ code: DELIVERY_IN_PROGRESS });
        expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
        await h.store.releaseClaim(`slack-post:${alert.id}`);
        await h.chat.sink.post(alert);
        expect(h.fake.callsOf('conversations.history')).toHaveLength(1);
      },
    );

    it('when Slack cannot be reached at all (connection refused), nothing was posted: no mark, no claim', async () => {
      h = await startHarness();
      const alert = sampleAlert({ id: 'unreachable-alert' });
      await h.fake.stop();
      await expect(h.chat.sink.post(alert)).rejects.toBeInstanceOf(SlackDeliveryError);
      expect(await h.store.get(postMarkKey(alert.id))).toBeUndefined();
      // The claim was given back: the next attempt may post at once.
      expect(await h.store.claim(`slack-post:${alert.id}`, 1000)).toBe(true);
    });

    it('after a 503 from the gateway or a refusal, nothing was posted: no mark, no claim, no search', async () => {
      h = await startHarness();
      const unavailable = sampleAlert({ id: 'unavailable-alert' });
      h.fake.script('chat.postMessage', { status: 503 });
      await expect(h.chat.sink.post(unavailable)).rejects.toBeInstanceOf(SlackDeliveryError);
      expect(await h.store.get(postMarkKey(unavailable.id))).toBeUndefined();
      await h.chat.sink.post(unavailable);

      const refused = sampleAlert({ id: 'refused-alert' });
      h.fake.script('chat.postMessage', { error: 'channel_not_found' });
      await expect(h.chat.sink.post(refused)).rejects.toBeInstanceOf(SlackDeliveryError);
      expect(await h.store.get(postMarkKey(refused.id))).toBeUndefined();
      await h.chat.sink.post(refused);

      // Slack's own rate-limit refusal in an ok:false answer: nothing was posted either.
      const ratelimited = sampleAlert({ id: 'ratelimited-alert' });
      h.fake.script('chat.postMessage', { error: 'ratelimited' });
      const err = await h.chat.sink.post(ratelimited).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SlackDeliveryError);
      expect((err as SlackDeliveryError).retryable).toBe(true);
      expect(await h.store.get(postMarkKey(ratelimited.id))).toBeUndefined();
      await h.chat.sink.post(ratelimited);
      expect(h.fake.callsOf('conversations.history')).toHaveLength(0);
    });
  });

  it('updates the original message for repeats instead of posting', async () => {
    h = await startHarness();
    const alert = sampleAlert();
    const { ref } = await h.chat.sink.post(alert);
    await h.chat.sink.repeat(ref, alert, {
      alertId: alert.id,
      count: 3,
      lastSeen: alert.detectedAt + 60_000,
    });
    await h.chat.sink.repeat(ref, alert, {
      alertId: alert.id,
      count: 2,
      lastSeen: alert.detectedAt + 30_000,
    });
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
    const updates = h.fake.callsOf('chat.update');
    expect(updates).toHaveLength(2);
    expect(updates[0]!.args).toMatchObject({ channel: CHANNEL, ts: '1700000000.000001' });
    // A late, smaller repeat never lowers the count.
    expect(blocksText(updates[1]!.args)).toContain('Seen 3 times');
  });

  it.each(['message_not_found', 'cant_update_message'])(
    'a count for an alert whose message is gone from Slack (%s) is dropped, and the log says so, not that it will be retried',
    async (error) => {
      h = await startHarness();
      const alert = sampleAlert();
      const ref = await postWithRefusedUpdate(h, alert, error);
      expect(h.fake.callsOf('chat.update')).toHaveLength(1);
      expect(h.logs.join('')).not.toMatch(/will be retried/);
      expect(warningsAbout(h, alert.id)).toEqual([
        error === 'message_not_found'
          ? "the alert's Slack message is gone (deleted): it is no longer updated, and its thread lines are dropped; its audit records are kept"
          : "the alert's Slack message can no longer be edited (too old): its counts and states are no longer shown there; its thread still gets audit lines",
      ]);
      // Said once: the next count sends nothing, and says nothing more.
      const logged = h.logs.length;
      await h.chat.sink.repeat(ref, alert, {
        alertId: alert.id,
        count: 3,
        lastSeen: alert.detectedAt + 120_000,
      });
      expect(h.fake.callsOf('chat.update')).toHaveLength(1);
      expect(h.logs.slice(logged).join('')).not.toContain('"level":40');
    },
  );

  it("Slack slowing down the channel's updates (429) holds back no post: the count's update fails at once as its own, and waits its turn", async () => {
    h = await startHarness();
    const alert = sampleAlert();
    const { ref } = await h.chat.sink.post(alert);
    h.fake.script('chat.update', { status: 429, retryAfter: 10 });
    const repeat = { alertId: alert.id, count: 2, lastSeen: alert.detectedAt + 60_000 };
    const err = await h.chat.sink.repeat(ref, alert, repeat).catch((e) => e);
    // Retried by the outbox later, alone: the other deliveries go on (itemOnly).
    expect(err).toMatchObject({ code: 'rate_limited', retryable: true, itemOnly: true });
    expect(h.fake.callsOf('chat.update')).toHaveLength(1);
    // While the back-off lasts, a count's update is not even sent.
    const again = await h.chat.sink.repeat(ref, alert, { ...repeat, count: 3 }).catch((e) => e);
    expect(again).toMatchObject({ code: 'rate_limited', itemOnly: true, unsent: true });
    expect(h.fake.callsOf('chat.update')).toHaveLength(1);
    // A new alert goes out after the one-second pace of posts, not after the updates' 10 s.
    await h.chat.sink.post(sampleAlert({ id: 'alert2' }));
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(2);
    expect(h.sleeps).toEqual([1000]);
  });

  it('keeps posts and updates in separate lines: a 429 on one holds back the other in no way, and a call that may wait waits it out', async () => {
    let clock = 0;
    const sleeps: Array<{ ms: number; end: () => void }> = [];
    const queue = new DeliveryQueue({
      now: () => clock,
      // Waits until the test ends them: what is behind a wait stays behind it.
      sleep: (ms) =>
        new Promise<void>((resolve) =>
          sleeps.push({
            ms,
            end: () => {
              clock += ms;
              resolve();
            },
          }),
        ),
    });
    const limited = () =>
      Object.assign(new Error('429'), { code: 'slack_webapi_rate_limited_error', retryAfter: 5 });
    let limitNext = true;
    const call = (answer: string) => () => {
      if (!limitNext) return Promise.resolve(answer);
      limitNext = false;
      return Promise.reject(limited());
    };
    // A click's update meets a 429 and waits its 5 s ...
    const click = queue.run(CHANNEL, false, call('updated'));
    await vi.waitFor(() => expect(sleeps.map((s) => s.ms)).toEqual([5000]));
    // ... while a post goes at once, and a count's update fails at once, unsent.
    await expect(queue.run(CHANNEL, true, call('posted'))).resolves.toBe('posted');
    await expect(queue.run(CHANNEL, false, call('count'), { failWhenLimited: true })).rejects.toMatchObject({
      code: 'rate_limited',
      unsent: true,
    });
    sleeps[0]!.end();
    await expect(click).resolves.toBe('updated');
    // A 429 on the posts' line holds back no update either.
    limitNext = true;
    const post = queue.run(CHANNEL, true, call('posted'));
    await vi.waitFor(() => expect(sleeps).toHaveLength(2));
    await expect(queue.run(CHANNEL, false, call('now'), { failWhenLimited: true })).resolves.toBe('now');
    sleeps[1]!.end();
    await expect(post).resolves.toBe('posted');
  });

  it("posts a new alert before the channel's waiting thread lines, unless they have waited 15 s", async () => {
    // The queue's clock of a service that has run for an hour.
    let clock = 3_600_000;
    const sleeps: Array<() => void> = [];
    // Each wait lasts until the test ends it, and moves the clock by its length.
    const queue = new DeliveryQueue({
      now: () => clock,
      sleep: (ms) =>
        new Promise<void>((resolve) =>
          sleeps.push(() => {
            clock += ms;
            resolve();
          }),
        ),
    });
    const sent: string[] = [];
    const post = (what: string, first = false) =>
      queue.run(CHANNEL, true, async () => void sent.push(what), { first });
    const endWaits = async (n: number) => {
      for (let i = 0; i < n; i++) {
        await vi.waitFor(() => expect(sleeps.length).toBeGreaterThan(0));
        sleeps.shift()!();
      }
    };
    await post('alert1', true);
    // A burst of clicks: their audit lines wait their turn, one a second.
    const lines = [1, 2, 3, 4, 5].map((i) => post(`line${i}`));
    await vi.waitFor(() => expect(sleeps).toHaveLength(1));
    const alert2 = post('alert2', true);
    const alert3 = post('alert3', true);
    await endWaits(3);
    await Promise.all([alert2, alert3]);
    // The line under way when the alerts came goes first; the alerts then pass the other lines.
    expect(sent).toEqual(['alert1', 'line1', 'alert2', 'alert3']);
    await endWaits(4);
    await Promise.all(lines);
    expect(sent.slice(4)).toEqual(['line2', 'line3', 'line4', 'line5']);

    // Lines that have waited 15 s take their turn before a newer alert.
    sent.length = 0;
    const late = [6, 7].map((i) => post(`line${i}`));
    await vi.waitFor(() => expect(sleeps).toHaveLength(1));
    clock += 15_000;
    const alert4 = post('alert4', true);
    await endWaits(3);
    await Promise.all([...late, alert4]);
    expect(sent).toEqual(['line6', 'line7', 'alert4']);
  });

  it('posts a new alert before a thread line queued in the same turn on an idle channel', async () => {
    const queue = new DeliveryQueue({ sleep: async () => undefined });
    const sent: string[] = [];
    const line = queue.run(CHANNEL, true, async () => void sent.push('line'));
    const alert = queue.run(CHANNEL, true, async () => void sent.push('alert'), { first: true });
    await Promise.all([line, alert]);
    expect(sent).toEqual(['alert', 'line']);
  });

  it('waits at least a second between posts to one channel', async () => {
    h = await startHarness();
    await Promise.all([0, 1, 2].map((i) => h.chat.sink.post(sampleAlert({ id: `alert${i}` }))));
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(3);
    // The fake clock moves only when the queue sleeps: each wait is the full interval.
    expect(h.sleeps).toEqual([1000, 1000]);
  });

  it('honours 429 Retry-After on chat.postMessage and then posts once', async () => {
    h = await startHarness();
    h.fake.script('chat.postMessage', { status: 429, retryAfter: 3 });
    const { ref } = await h.chat.sink.post(sampleAlert());
    expect(ref).toBe(`${CHANNEL}:1700000000.000001`);
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(2);
    expect(h.sleeps).toEqual([3000]);
    expect(h.chat.problems()).toEqual([]);
  });

  it("counts every 429 Slack answers as Slack's ratelimited: one waited out on a post, one on a count's update", async () => {
    h = await startHarness();
    const alert = sampleAlert();
    h.fake.script('chat.postMessage', { status: 429, retryAfter: 1 });
    const { ref } = await h.chat.sink.post(alert);
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(2);
    h.fake.script('chat.update', { status: 429, retryAfter: 1 });
    const repeat = { alertId: alert.id, count: 2, lastSeen: alert.detectedAt + 60_000 };
    await expect(h.chat.sink.repeat(ref, alert, repeat)).rejects.toMatchObject({ retryable: true });
    expect(h.failures).toEqual([{ reason: 'ratelimited' }, { reason: 'ratelimited' }]);
    // A call the queue does not send while the back-off lasts is no failed call to Slack.
    await h.chat.sink.repeat(ref, alert, { ...repeat, count: 3 }).catch(() => undefined);
    expect(h.failures).toHaveLength(2);
  });

  it('gives up after repeated 429s with a retryable error', async () => {
    h = await startHarness({ tuning: { maxRateLimitRetries: 2 } });
    h.fake.script('chat.postMessage', ...[1, 2, 3].map(() => ({ status: 429 as const, retryAfter: 1 })));
    const err = await h.chat.sink.post(sampleAlert()).catch((e) => e);
    expect(err).toBeInstanceOf(SlackDeliveryError);
    expect(err).toMatchObject({ code: 'rate_limited', retryable: true });
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(3);
    // The outbox may try again later: the claim is given back.
    await h.chat.sink.post(sampleAlert());
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(4);
  });

  it('fails fast (retryable) when Retry-After is longer than a caller can wait', async () => {
    h = await startHarness();
    h.fake.script('chat.postMessage', { status: 429, retryAfter: 120 });
    const err = await h.chat.sink.post(sampleAlert()).catch((e) => e);
    expect(err).toMatchObject({ code: 'rate_limited', retryable: true });
    // The 429 counts once; the wait the queue then refuses is no second call.
    expect(h.failures).toEqual([{ reason: 'ratelimited' }]);
    expect(h.sleeps).toEqual([]);
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
  });

  it('paces posts on a monotonic clock: a wall clock set back an hour does not hold the next post back as rate limited', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      // As the service builds it (no clock injected), with real waits.
      const queue = new DeliveryQueue({ intervalMs: 20 });
      await queue.run(CHANNEL, true, async () => 'first');
      vi.setSystemTime(Date.now() - 3_600_000);
      await expect(queue.run(CHANNEL, true, async () => 'second')).resolves.toBe('second');
    } finally {
      vi.useRealTimers();
    }
  });

  it.each([
    ['channel_not_found', 'SLACK_ALERT_CHANNEL'],
    ['not_in_channel', '/invite @arc-responder'],
    ['invalid_auth', 'SLACK_BOT_TOKEN'],
    ['account_inactive', 'reinstall'],
    ['token_revoked', 'reinstall'],
  ])('reports %s with its fix, counts it and does not retry it', async (code, fix) => {
    h = await startHarness();
    h.fake.script('chat.postMessage', { error: code });
    const err = await h.chat.sink.post(sampleAlert()).catch((e) => e);
    expect(err).toMatchObject({ code, retryable: false });
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
    expect(h.chat.problems()).toHaveLength(1);
    expect(h.chat.problems()[0]).toContain(fix);
    expect(h.failures).toEqual([{ reason: code }]);
    expect(h.logs.join('')).toContain(fix);
    // Once fixed, the next post clears the problem.
    await h.chat.sink.post(sampleAlert());
    expect(h.chat.problems()).toEqual([]);
  });

  it('names the scope a missing_scope answer says is needed, in /readyz and the log, and nothing that is no scope name', async () => {
    h = await startHarness();
    h.fake.script(
      'chat.postMessage',
      { error: 'missing_scope', needed: 'chat:write', provided: 'channels:history,users:read' },
      { error: 'missing_scope', needed: '<html>proxy page</html>' },
    );
    const err = await h.chat.sink.post(sampleAlert({ id: 'scope-1' })).catch((e) => e);
    expect(err).toMatchObject({ code: 'missing_scope', retryable: false });
    const fix = 'lacks the chat:write scope Slack says is needed (missing_scope)';
    expect(h.chat.problems()).toEqual([expect.stringContaining(fix)]);
    expect(h.logs.join('')).toContain(fix);
    await h.chat.sink.post(sampleAlert({ id: 'scope-2' })).catch(() => undefined);
    expect(h.chat.problems()).toEqual([
      expect.stringContaining('lacks a scope the app needs (missing_scope)'),
    ]);
    expect(h.logs.join('')).not.toContain('proxy page');
  });

  it('logs a refusal that retrying cannot fix at error once per cause, its repeats at debug, and again after a success', async () => {
    h = await startHarness();
    const errorLines = () =>
      h.logs
        .map((l) => JSON.parse(l) as { level: number; msg: string })
        .filter((l) => l.level === 50 && l.msg.includes('retrying cannot fix it'));
    h.fake.script(
      'chat.postMessage',
      { error: 'invalid_auth' },
      { error: 'invalid_auth' },
      { error: 'invalid_auth' },
    );
    for (let i = 0; i < 3; i++)
      await h.chat.sink.post(sampleAlert({ id: `auth-${i}` })).catch(() => undefined);
    expect(errorLines()).toHaveLength(1);
    expect(h.failures).toHaveLength(3);
    await h.chat.sink.post(sampleAlert({ id: 'auth-ok' }));
    h.fake.script('chat.postMessage', { error: 'invalid_auth' });
    await h.chat.sink.post(sampleAlert({ id: 'auth-again' })).catch(() => undefined);
    expect(errorLines()).toHaveLength(2);
  });

  it("a channel's refusal shows that Slack took the token: the token problem recorded before is gone", async () => {
    h = await startHarness();
    h.fake.script('chat.postMessage', { error: 'invalid_auth' }, { error: 'channel_not_found' });
    await h.chat.sink.post(sampleAlert({ id: 'first' })).catch(() => undefined);
    expect(h.chat.problems()).toEqual([expect.stringContaining('SLACK_BOT_TOKEN')]);
    await h.chat.sink.post(sampleAlert({ id: 'second' })).catch(() => undefined);
    expect(h.chat.problems()).toEqual([expect.stringContaining('SLACK_ALERT_CHANNEL')]);
  });

  it('never re-sends a new alert itself (a re-sent post could double it): one call, then the outbox retries', async () => {
    // Web API retries on, as in production: they apply to every call but the alert's post.
    h = await startHarness({ tuning: { webApiRetries: 2 } });
    h.fake.script('chat.postMessage', { status: 500 });
    await expect(h.chat.sink.post(sampleAlert())).rejects.toMatchObject({ retryable: true });
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
  });

  it("an update the client re-sends after Slack's 500 still lands before a newer one of the same message", async () => {
    // Web API retries on, as in production: the first update's retry comes 0.5-1 s later.
    h = await startHarness({ tuning: { webApiRetries: 2 } });
    const alert = sampleAlert();
    const { ref } = await h.chat.sink.post(alert);
    h.fake.script('chat.update', { status: 500 });
    const older = h.chat.sink.repeat(ref, alert, {
      alertId: alert.id,
      count: 2,
      lastSeen: alert.detectedAt + 60_000,
    });
    await h.fake.waitFor('the first update', () => h!.fake.callsOf('chat.update').length === 1);
    const newer = h.chat.sink.repeat(ref, alert, {
      alertId: alert.id,
      count: 3,
      lastSeen: alert.detectedAt + 120_000,
    });
    await Promise.all([older, newer]);
    const updates = h.fake
      .callsOf('chat.update')
      .map((c) => /Seen (\d+) times/.exec(blocksText(c.args))?.[1]);
    expect(updates).toEqual(['2', '2', '3']);
  });

  it('sends only the newest of the updates that waited for one under way, and tells each caller', async () => {
    h = await startHarness();
    const alert = sampleAlert();
    const { ref } = await h.chat.sink.post(alert);
    h.fake.script('chat.update', { delayMs: 300 });
    const calls = [2, 3, 4].map((count) =>
      h!.chat.sink.repeat(ref, alert, {
        alertId: alert.id,
        count,
        lastSeen: alert.detectedAt + count * 60_000,
      }),
    );
    await Promise.all(calls);
    const updates = h.fake
      .callsOf('chat.update')
      .map((c) => /Seen (\d+) times/.exec(blocksText(c.args))?.[1]);
    expect(updates).toEqual(['2', '4']);
  });

  it('treats server errors as retryable and not as a problem to fix', async () => {
    h = await startHarness();
    h.fake.script('chat.postMessage', { status: 500 });
    const err = await h.chat.sink.post(sampleAlert()).catch((e) => e);
    expect(err).toMatchObject({ retryable: true });
    expect(h.chat.problems()).toEqual([]);
  });

  it('reports a bad token at start through problems()', async () => {
    h = await startHarness();
    h.fake.script('auth.test', { error: 'invalid_auth' });
    await h.chat.start?.();
    expect(h.chat.problems()[0]).toContain('SLACK_BOT_TOKEN');
  });

  it('never logs the bot token or the signing secret', async () => {
    h = await startHarness();
    h.fake.script('chat.postMessage', { error: 'invalid_auth' });
    await h.chat.sink.post(sampleAlert()).catch(() => undefined);
    await h.send('x=1', { secret: 'wrong' });
    const logs = h.logs.join('');
    expect(logs).not.toContain(BOT_TOKEN);
    expect(logs).not.toContain(SECRET);
  });
});

/** An enricher whose answer comes when the test calls `arrive`. */
function heldEnricher(): { enricher: Enricher; arrive: (e: Enrichment) => void } {
  const held = { enricher: {} as Enricher, arrive: (_e: Enrichment) => {} };
  held.enricher = {
    enrich: () =>
      new Promise<Enrichment>((resolve) => {
        held.arrive = resolve;
      }),
  };
  return held;
}

/** Waits until the late enrichment is in the alert's state, and the state no longer waits for it. */
async function expectLateEnrichment(alertId: string): Promise<void> {
  await vi.waitFor(
    async () =>
      expect(await loadAlertState(h.store, alertId)).toMatchObject({
        enrichment: { principalDisplayName: 'late-principal-name' },
      }),
    { timeout: 5000, interval: 20 },
  );
  expect((await loadAlertState(h.store, alertId))?.enrichmentPending).toBeUndefined();
}

describeWithService(
  'a post Slack answered whose state the store refused (Redis)',
  'TEST_REDIS_URL',
  (url) => {
    /**
     * Posts `alert` while the store stops taking writes: Slack's answer comes a moment late, and the
     * store refuses from then on (the post fails as unreachable); then the store takes writes again.
     */
    const postWhileStoreRefuses = async (
      redis: Awaited<ReturnType<typeof redisTestUser>>,
      alert: ReturnType<typeof sampleAlert>,
    ) => {
      h.fake.script('chat.postMessage', { delayMs: 300 });
      const first = h.chat.sink.post(alert).catch((e: unknown) => e);
      await vi.waitFor(() => expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1), {
        timeout: 5000,
        interval: 10,
      });
      await redis.setRules('resetkeys', '%R~*');
      expect(await first).toMatchObject({ code: 'STORE_UNREACHABLE' });
      await redis.allowAll();
    };

    // Slack took the alert and answered, and the store then refused to record it (a Redis that went
    // read-only, out of memory or away for a moment): the outbox's retry records that message. It
    // neither posts it again nor waits for its hold to lapse to search the channel for it.
    it('records the answered message on the retry, without a second post or a search of the channel', async () => {
      const namespace = uniqueNamespace('sink-unsaved');
      const redis = await redisTestUser(url, 'sink', namespace);
      h = await startHarness({ store: await openStateStore(redis.url, { namespace }) });
      try {
        const alert = sampleAlert();
        await postWhileStoreRefuses(redis, alert);

        const { ref } = await h.chat.sink.post(alert);
        expect(ref).toBe(`${CHANNEL}:1700000000.000001`);
        expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
        expect(h.fake.callsOf('conversations.history')).toHaveLength(0);
        expect(await loadAlertState(h.store, alert.id)).toMatchObject({ ts: '1700000000.000001' });
        expect(await h.store.get(postMarkKey(alert.id))).toBeUndefined();
      } finally {
        await h.close();
        await redis.dispose();
      }
    });

    // The lookups still running when the message went out (here the enrichment) update it once
    // they arrive, also when its state was recorded only on the retry.
    it('updates the message with a lookup that arrives after the retry recorded it', async () => {
      const namespace = uniqueNamespace('sink-unsaved-late');
      const redis = await redisTestUser(url, 'sink', namespace);
      const held = heldEnricher();
      h = await startHarness({
        store: await openStateStore(redis.url, { namespace }),
        enricher: held.enricher,
        tuning: { lookupBudgetMs: 50 },
      });
      try {
        const alert = sampleAlert();
        await postWhileStoreRefuses(redis, alert);
        await h.chat.sink.post(alert);
        expect((await loadAlertState(h.store, alert.id))?.enrichmentPending).toBe(true);

        held.arrive({ principalDisplayName: 'late-principal-name' });
        await expectLateEnrichment(alert.id);
        expect(
          h.fake
            .callsOf('chat.update')
            .map((c) => blocksText(c.args))
            .join(),
        ).toContain('late-principal-name');
      } finally {
        await h.close();
        await redis.dispose();
      }
    });
  },
);

describe('a post whose state the store took while reporting a failure', () => {
  // The store wrote the alert's state but answered with an error (a reply lost after the write):
  // the retry finds the message recorded, and the lookups still running then update it all the same.
  it('updates the message with a lookup that arrives after the retry found the state recorded', async () => {
    const store = await openStateStore('memory://');
    let failOnce = true;
    const flaky = new Proxy(store, {
      get(target, key) {
        const value = Reflect.get(target, key) as unknown;
        if (typeof value !== 'function') return value;
        if (key !== 'set') return value.bind(target);
        return async (k: string, v: unknown, ttl?: number) => {
          await target.set(k, v, ttl);
          if (failOnce && k === alertStateKey(alert.id) && (v as { ts?: string }).ts) {
            failOnce = false;
            throw new Error('the store did not answer');
          }
        };
      },
    });
    const held = heldEnricher();
    const alert = sampleAlert();
    h = await startHarness({ store: flaky, enricher: held.enricher, tuning: { lookupBudgetMs: 50 } });
    await expect(h.chat.sink.post(alert)).rejects.toThrow('the store did not answer');
    await h.chat.sink.post(alert);
    expect(h.fake.callsOf('chat.postMessage')).toHaveLength(1);
    expect((await loadAlertState(h.store, alert.id))?.enrichmentPending).toBe(true);

    held.arrive({ principalDisplayName: 'late-principal-name' });
    await expectLateEnrichment(alert.id);
  });
});

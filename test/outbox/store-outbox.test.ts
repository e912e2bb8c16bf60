import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AlertRecord, AlertRepeat } from '../../src/core/alert.ts';
import { type AlertSink, DELIVERY_IN_PROGRESS, HOLD_AFTER, type StateStore } from '../../src/core/ports.ts';
import { createLogger } from '../../src/log.ts';
import { createMetrics } from '../../src/metrics.ts';
import {
  alertRefKey,
  createStoreOutbox,
  type DurableOutbox,
  OUTBOX_PENDING_SET,
  type OutboxOptions,
} from '../../src/outbox/store-outbox.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { describeWithService, redisTestUser, uniqueNamespace } from '../store/helpers.ts';

let serial = 0;
function alert(id = `alert-${++serial}`): AlertRecord {
  return {
    id,
    detectedAt: Date.now(),
    reason: 'new-pair',
    otherIps: 0,
    windowMs: 7 * 86_400_000,
    detection: {
      eventId: `event-${id}`,
      sourceFormat: 'azure-activity-log-record',
      eventTime: new Date().toISOString(),
      operation: 'MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/LISTCLUSTERUSERCREDENTIAL/ACTION',
      outcome: 'success',
      appId: '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20',
      evidence: {},
      sourceIp: '203.0.113.7',
    },
  };
}
const repeat = (alertId: string, count: number): AlertRepeat => ({ alertId, count, lastSeen: Date.now() });

/** An AlertSink that records calls; `failing` makes calls throw, as a chat outage would. */
function recordingSink() {
  const posts: AlertRecord[] = [];
  const repeats: Array<{ ref: string; alertId: string; count: number }> = [];
  const state = { failing: false, delayMs: 0 };
  const sink: AlertSink = {
    async post(a) {
      if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
      if (state.failing) throw new Error('chat is down (HTTP 503)');
      posts.push(a);
      return { ref: `C0TEST:${posts.length}.000` };
    },
    async repeat(ref, a, r) {
      if (state.failing) throw new Error('chat is down (HTTP 503)');
      repeats.push({ ref, alertId: a.id, count: r.count });
    },
  };
  return { sink, posts, repeats, state };
}

describe('durable outbox over the store (SQLite)', () => {
  let dir: string;
  let store: StateStore;
  const outboxes: DurableOutbox[] = [];
  const silent = createLogger({ level: 'silent' });
  const fast: OutboxOptions = { pollMs: 20, baseBackoffMs: 20, maxBackoffMs: 100, inProgressRetryMs: 50 };

  function outbox(
    sink: AlertSink,
    opts: OutboxOptions = {},
    s: StateStore = store,
    metrics = createMetrics(),
  ) {
    const o = createStoreOutbox({ store: s, sink, logger: silent, metrics }, { ...fast, ...opts });
    outboxes.push(o);
    return o;
  }

  /**
   * An outbox whose failures pause it for a minute or more, so that only its probe (every 100 ms)
   * can end a pause sooner; `lines` is its log.
   */
  function probingOutbox(sink: AlertSink) {
    const lines: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: { write: (line: string) => void lines.push(line) },
    });
    const o = createStoreOutbox(
      { store, sink, logger, metrics: createMetrics() },
      { ...fast, baseBackoffMs: 60_000, maxBackoffMs: 120_000, probeMs: 100 },
    );
    outboxes.push(o);
    return { o, lines };
  }

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-outbox-'));
    store = await openStateStore(`sqlite://${path.join(dir, 'arc.db')}`);
  });
  afterEach(async () => {
    await Promise.all(outboxes.splice(0).map((o) => o.stop()));
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps an alert's reference as long again from each update: a pair in use past the first period still updates its message", async () => {
    const rec = recordingSink();
    const o = outbox(rec.sink, { refTtlMs: 2000 });
    const a = alert();
    await o.add([a], []);
    await o.drain();
    for (let count = 2; count <= 4; count++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await o.add([], [repeat(a.id, count)]);
      await o.drain();
    }
    // 3 s after the post, well past its first 2 s: every repeat reached the message.
    expect(rec.repeats.map((r) => r.count)).toEqual([2, 3, 4]);
    expect(await store.get(alertRefKey(a.id))).toBe('C0TEST:1.000');
  });

  it('stores items before add resolves, delivers each once, keeps the reference and empties itself', async () => {
    const rec = recordingSink();
    const o = outbox(rec.sink);
    const a = alert();
    await o.add([a], []);
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([`post:${a.id}`]);
    expect(o.depth()).toBe(1);
    await o.drain();
    expect(rec.posts.map((p) => p.id)).toEqual([a.id]);
    expect(await store.get(alertRefKey(a.id))).toBe('C0TEST:1.000');
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([]);
    expect(o.depth()).toBe(0);
    await o.drain();
    expect(rec.posts).toHaveLength(1);
  });

  it('delivers in the background once started', async () => {
    const rec = recordingSink();
    const o = outbox(rec.sink);
    await o.start();
    const a = alert();
    await o.add([a], []);
    await vi.waitFor(() => expect(rec.posts.map((p) => p.id)).toEqual([a.id]));
  });

  /** `store` with `before(name, args)` awaited before each call of the methods named. */
  const hooked = (names: string[], before: (name: string, args: unknown[]) => Promise<void>) =>
    new Proxy(store, {
      get: (target, name) => {
        const value = Reflect.get(target, name, target);
        if (typeof value !== 'function') return value;
        if (typeof name !== 'string' || !names.includes(name)) return value.bind(target);
        return async (...args: unknown[]) => {
          await before(name, args);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });

  /**
   * Posts `a`, then delivers its update of count 2 while the outbox's store (see `hooked`) has
   * another batch write one of count 3 (`injected` says it did): both must reach the message.
   */
  async function bothUpdatesReach(
    o: DurableOutbox,
    a: AlertRecord,
    rec: ReturnType<typeof recordingSink>,
    injected: () => boolean,
  ) {
    await o.add([a], []);
    await o.drain();
    await o.add([], [repeat(a.id, 2)]);
    await o.drain();
    expect(injected()).toBe(true);
    await o.drain();
    expect(rec.repeats.map((r) => r.count)).toEqual([2, 3]);
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([]);
  }

  it('keeps a repeat written just as the one before it is taken off the outbox, and delivers it next', async () => {
    const rec = recordingSink();
    let injected = false;
    const a = alert();
    const o: DurableOutbox = outbox(
      rec.sink,
      {},
      // Another batch's repeat of the alert, written at the moment the delivered one is taken off.
      hooked(['setManyIfUnchanged', 'delete'], async (name, [arg]) => {
        // The take-off's write (a marker), not an update's own.
        const entry =
          name === 'delete' ? undefined : (arg as Array<{ key: string; value: { kind?: string } }>)[0];
        if (entry && entry.value?.kind !== 'delivered') return;
        const key = name === 'delete' ? (arg as string) : entry?.key;
        if (injected || !key?.startsWith('outbox:item:repeat:')) return;
        injected = true;
        await o.add([], [repeat(a.id, 3)]);
      }),
    );
    await bothUpdatesReach(o, a, rec, () => injected);
    // What is left is a marker that lives on: a value that had expired would be deleted by the
    // next read (Keyv does so), and with it a repeat written at that moment.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await store.get(`outbox:item:repeat:${a.id}`)).toEqual({ kind: 'delivered', count: 3 });
  });

  it('keeps a repeat written just after another replica took the one before it off, which this one still listed', async () => {
    const rec = recordingSink();
    let o!: DurableOutbox;
    let injected = false;
    const racing = new Proxy(store, {
      get: (target, name) => {
        if (name === 'get') {
          return async (key: string) => {
            const value = await target.get(key);
            // This replica reads the item as gone, and another batch's repeat is written just then.
            if (value === undefined && !injected && key.startsWith('outbox:item:repeat:')) {
              injected = true;
              await o.add([], [repeat(a.id, 3)]);
            }
            return value;
          };
        }
        const value = Reflect.get(target, name, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    o = outbox(rec.sink, {}, racing);
    const a = alert();
    await o.add([a], []);
    await o.drain();
    // Listed still, its value taken off by the other replica's delivery of it.
    await store.addMembers(OUTBOX_PENDING_SET, [`repeat:${a.id}`]);
    await o.drain();
    expect(injected).toBe(true);
    await o.drain();
    expect(rec.repeats.map((r) => r.count)).toEqual([3]);
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([]);
  });

  it('indexes again a repeat written between an update taken off and its index entry removed', async () => {
    const rec = recordingSink();
    let injected = false;
    const a = alert();
    const o: DurableOutbox = outbox(
      rec.sink,
      {},
      hooked(['removeMembers'], async (_, [set, ids]) => {
        if (injected || set !== OUTBOX_PENDING_SET || !(ids as string[])[0]?.startsWith('repeat:')) return;
        injected = true;
        await o.add([], [repeat(a.id, 3)]);
      }),
    );
    await bothUpdatesReach(o, a, rec, () => injected);
  });

  it("takes an earlier release's update (no rev) off only while it is unchanged, and one with a rev it cannot check after a check", async () => {
    const rec = recordingSink();
    let injected = false;
    const o: DurableOutbox = outbox(
      rec.sink,
      {},
      hooked(['setManyIfUnchanged'], async (_, [entries]) => {
        const entry = (entries as Array<{ key: string; value: { kind?: string } }>)[0];
        if (injected || entry?.key !== `outbox:item:repeat:${a.id}` || entry.value?.kind !== 'delivered')
          return;
        injected = true;
        await o.add([], [repeat(a.id, 3)]);
      }),
    );
    const a = alert();
    const b = alert();
    await o.add([a, b], []);
    await o.drain();
    // As an earlier release wrote them: no rev; and one with a rev of another form.
    await store.setMany([
      { key: `outbox:item:repeat:${a.id}`, value: { kind: 'repeat', repeat: repeat(a.id, 2), queuedAt: 1 } },
      {
        key: `outbox:item:repeat:${b.id}`,
        value: { kind: 'repeat', repeat: repeat(b.id, 2), queuedAt: 1, rev: 'a later "form"' },
      },
    ]);
    await store.addMembers(OUTBOX_PENDING_SET, [`repeat:${a.id}`, `repeat:${b.id}`]);
    await o.drain();
    expect(injected).toBe(true);
    await o.drain();
    expect(rec.repeats.map((r) => [r.alertId, r.count])).toEqual(
      expect.arrayContaining([
        [a.id, 2],
        [a.id, 3],
        [b.id, 2],
      ]),
    );
    expect(rec.repeats).toHaveLength(3);
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([]);
  });

  it('coalesces repeats of one alert to the latest count and updates the posted message', async () => {
    const rec = recordingSink();
    const o = outbox(rec.sink);
    const a = alert();
    await o.add([a], []);
    await o.drain();
    await o.add([], [repeat(a.id, 2)]);
    await o.add([], [repeat(a.id, 3), repeat(a.id, 5), repeat(a.id, 4)]);
    expect(o.depth()).toBe(1);
    await o.drain();
    expect(rec.repeats).toEqual([{ ref: 'C0TEST:1.000', alertId: a.id, count: 5 }]);
  });

  it('updates an already posted alert before posting a backlog of new ones', async () => {
    const order: string[] = [];
    const rec = recordingSink();
    const sink: AlertSink = {
      post: async (a) => {
        order.push(`post ${a.id}`);
        return rec.sink.post(a);
      },
      repeat: async (ref, a, r) => {
        order.push(`repeat ${a.id}`);
        return rec.sink.repeat(ref, a, r);
      },
    };
    const o = outbox(sink);
    const posted = alert();
    await o.add([posted], []);
    await o.drain();
    const backlog = [alert(), alert(), alert()];
    const fresh = alert();
    await o.add(backlog, [repeat(posted.id, 2)]);
    await o.add([fresh], [repeat(fresh.id, 2)]);
    await o.drain();
    // The posted alert's update comes before every new post.
    expect(order.slice(0, 2)).toEqual([`post ${posted.id}`, `repeat ${posted.id}`]);
    expect(order.slice(2, 6).sort()).toEqual([...backlog, fresh].map((a) => `post ${a.id}`).sort());
    // A repeat of an alert posted in the same pass still finds its message, in that pass.
    expect(order.slice(6)).toEqual([`repeat ${fresh.id}`]);
    expect(rec.repeats.map((r) => r.alertId)).toEqual([posted.id, fresh.id]);
  });

  it('posts the alerts of a pass in the order their events happened, also those left by an earlier run', async () => {
    const at = (minute: number) => new Date(Date.UTC(2026, 10, 27, 9, minute)).toISOString();
    const timed = (id: string, minute: number) => {
      const a = alert(id);
      a.detection.eventTime = at(minute);
      return a;
    };
    // Ids that sort against their event times, as alert ids (hashes) do at random.
    const earlierRun = [timed('e-zz', 1), timed('e-yy', 3), timed('e-xx', 5)];
    await outbox(recordingSink().sink).add(earlierRun, []);
    // A restarted process knows nothing of those; it adds alerts of its own, one without a usable time.
    const rec = recordingSink();
    const o = outbox(rec.sink);
    const untimed = alert('e-aa');
    untimed.detection.eventTime = 'not a time';
    // An event time ahead of its detection counts as the detection's, as the engine judged it.
    const ahead = timed('e-tt', 90);
    ahead.detectedAt = Date.parse(at(3)) + 30_000;
    await o.add([timed('e-ww', 4), untimed, timed('e-vv', 2), ahead, timed('e-uu', 0)], []);
    await o.drain();
    expect(rec.posts.map((p) => p.id)).toEqual([
      'e-uu',
      'e-zz',
      'e-vv',
      'e-yy',
      'e-tt',
      'e-ww',
      'e-xx',
      'e-aa',
    ]);
  });

  it('an alert another attempt is delivering is no failure: no metric, no pause, delivered later', async () => {
    const rec = recordingSink();
    let busy = true;
    const [held, other] = [alert(), alert()];
    const sink: AlertSink = {
      post: async (a) => {
        if (busy && a.id === held.id)
          throw Object.assign(new Error(`alert ${a.id} is being posted by another worker`), {
            code: DELIVERY_IN_PROGRESS,
          });
        return rec.sink.post(a);
      },
      repeat: rec.sink.repeat,
    };
    const metrics = createMetrics();
    const o = outbox(sink, {}, store, metrics);
    await o.add([held, other], []);
    await o.drain();
    // The other alert went out in the same pass: the worker did not pause for the held one.
    expect(rec.posts.map((a) => a.id)).toEqual([other.id]);
    expect(await metrics.registry.metrics()).not.toMatch(
      /arc_chat_delivery_failures_total\{kind="post"\} [1-9]/,
    );
    busy = false;
    await vi.waitFor(
      async () => {
        await o.drain();
        expect(rec.posts.map((a) => a.id).sort()).toEqual([held.id, other.id].sort());
      },
      { timeout: 5000, interval: 50 },
    );
  });

  it('logs each retry of a refusal that retrying cannot fix at debug (the chat side logs it at error), of any other failure at warn', async () => {
    const lines: Array<{ level: string; msg?: string; err?: string }> = [];
    const logger = createLogger({
      level: 'debug',
      destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
    });
    let failure: Error = Object.assign(new Error('Slack refused the call: not_in_channel'), {
      retryable: false,
    });
    const sink: AlertSink = {
      post: async () => {
        throw failure;
      },
      repeat: async () => {},
    };
    const o = createStoreOutbox({ store, sink, logger, metrics: createMetrics() }, fast);
    outboxes.push(o);
    await o.add([alert()], []);
    await o.drain();
    const retryLines = () => lines.filter((l) => l.msg === 'chat delivery failed (post); will retry');
    expect(retryLines().map((l) => [l.level, l.err])).toEqual([
      ['debug', 'Slack refused the call: not_in_channel'],
    ]);
    failure = new Error('chat is down (HTTP 503)');
    await new Promise((resolve) => setTimeout(resolve, 150));
    await o.drain();
    expect(retryLines().at(-1)).toMatchObject({ level: 'warn', err: 'chat is down (HTTP 503)' });
  });

  it('an item whose content the chat refuses (itemOnly) is retried alone: the other alerts go out in the same pass', async () => {
    const rec = recordingSink();
    const refused = alert();
    refused.detection.eventTime = new Date(Date.now() - 60_000).toISOString(); // sorts first
    const others = [alert(), alert(), alert()];
    let refusals = 0;
    const sink: AlertSink = {
      post: async (a) => {
        if (a.id === refused.id) {
          refusals++;
          throw Object.assign(new Error('Slack refused the call: invalid_blocks'), { itemOnly: true });
        }
        return rec.sink.post(a);
      },
      repeat: rec.sink.repeat,
    };
    const metrics = createMetrics();
    const o = outbox(sink, {}, store, metrics);
    await o.add([refused, ...others], []);
    await o.drain();
    expect(refusals).toBe(1);
    expect(rec.posts.map((a) => a.id).sort()).toEqual(others.map((a) => a.id).sort());
    // Counted as a failure, and kept for a later attempt.
    expect(await metrics.registry.metrics()).toMatch(/arc_chat_delivery_failures_total\{kind="post"\} 1/);
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([`post:${refused.id}`]);
  });

  it("a posted alert's update that the chat slows down (itemOnly) holds back no new alert: they go out in the same pass, the update later", async () => {
    const rec = recordingSink();
    const posted = alert();
    let limited = 0;
    const sink: AlertSink = {
      post: rec.sink.post,
      repeat: async (ref, a, r) => {
        if (limited++ === 0) {
          throw Object.assign(new Error('Slack asked to wait 30s (rate limited)'), { itemOnly: true });
        }
        return rec.sink.repeat(ref, a, r);
      },
    };
    const metrics = createMetrics();
    const o = outbox(sink, {}, store, metrics);
    await o.add([posted], []);
    await o.drain();
    const others = [alert(), alert()];
    // The update goes first in a pass (see the outbox's order): its failure must not end the pass.
    await o.add(others, [repeat(posted.id, 2)]);
    await o.drain();
    expect(rec.posts.map((a) => a.id).sort()).toEqual([posted, ...others].map((a) => a.id).sort());
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([`repeat:${posted.id}`]);
    expect(rec.repeats).toEqual([]);
    // Sent and refused (the 429 itself): a chat delivery failure.
    expect(await metrics.registry.metrics()).toMatch(/arc_chat_delivery_failures_total\{kind="repeat"\} 1/);
    // Held back unsent while the back-off lasts: none.
    let heldBack = 0;
    sink.repeat = async () => {
      heldBack++;
      throw Object.assign(new Error('held back'), { itemOnly: true, unsent: true });
    };
    await o.add([], [repeat(posted.id, 3)]);
    await vi.waitFor(
      async () => {
        await o.drain();
        expect(heldBack).toBeGreaterThan(0);
      },
      { timeout: 10_000 },
    );
    expect(await metrics.registry.metrics()).toMatch(/arc_chat_delivery_failures_total\{kind="repeat"\} 1/);
  });

  it('retries an update held back unsent at its first back-off: each hold is no further failed try (the back-off does not grow)', async () => {
    const rec = recordingSink();
    const lines: string[] = [];
    const logger = createLogger({
      level: 'debug',
      destination: { write: (line: string) => void lines.push(line) },
    });
    let held = 0;
    const sink: AlertSink = {
      post: rec.sink.post,
      repeat: async () => {
        held++;
        throw Object.assign(new Error('held back'), { itemOnly: true, unsent: true });
      },
    };
    const o = createStoreOutbox({ store, sink, logger, metrics: createMetrics() }, fast);
    outboxes.push(o);
    const a = alert();
    await o.add([a], []);
    await o.drain();
    await o.add([], [repeat(a.id, 2)]);
    await vi.waitFor(
      async () => {
        await o.drain();
        expect(held).toBeGreaterThanOrEqual(4);
      },
      { timeout: 5000, interval: 30 },
    );
    const attempts = lines
      .filter((l) => l.includes('held back (rate limited)'))
      .map((l) => (JSON.parse(l) as { attempts: number }).attempts);
    expect(attempts.length).toBeGreaterThanOrEqual(4);
    expect(new Set(attempts)).toEqual(new Set([1]));
  });

  it('says which alerts it was handed already: pending, then delivered', async () => {
    const rec = recordingSink();
    const o = outbox(rec.sink);
    const a = alert();
    const other = alert();
    rec.state.failing = true;
    await o.add([a], []);
    expect(await o.holds([a.id, other.id])).toEqual([true, false]);
    rec.state.failing = false;
    await o.drain();
    expect(rec.posts).toHaveLength(1);
    expect(await o.holds([a.id, other.id])).toEqual([true, false]);
  });

  it('indexes again, when asked whether it holds it, an alert whose adding stopped between its value and its index entry', async () => {
    // The first replica stops (a crash) once the alert's value is written, before its index entry.
    const crashing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'addMembers') return async () => Promise.reject(new Error('the process stopped here'));
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const first = outbox(recordingSink().sink, {}, crashing);
    const a = alert();
    await expect(first.add([a], [])).rejects.toThrow('the process stopped here');
    await first.stop();
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([]);
    // Another replica, asked by the sender's retry whether the alert was handed over: it was, and
    // it is delivered.
    const rec = recordingSink();
    const other = outbox(rec.sink);
    expect(await other.holds([a.id])).toEqual([true]);
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([`post:${a.id}`]);
    await other.drain();
    expect(rec.posts.map((p) => p.id)).toEqual([a.id]);
  });

  it("never lowers an alert's count: a lower update written after a higher one, pending or delivered, is dropped", async () => {
    const rec = recordingSink();
    const o = outbox(rec.sink);
    const a = alert();
    await o.add([a], []);
    await o.drain();
    // Two replicas' updates, the higher one written first (the lower counted before a merge).
    await o.add([], [repeat(a.id, 3)]);
    await o.add([], [repeat(a.id, 2)]);
    await o.drain();
    expect(rec.repeats.map((r) => r.count)).toEqual([3]);
    // And after it was delivered: the marker keeps its count, and the lower one is not pending.
    await o.add([], [repeat(a.id, 2)]);
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([]);
    expect(o.depth()).toBe(0);
    await o.drain();
    expect(rec.repeats.map((r) => r.count)).toEqual([3]);
    await o.add([], [repeat(a.id, 4)]);
    await o.drain();
    expect(rec.repeats.map((r) => r.count)).toEqual([3, 4]);
  });

  it('holds a repeat until its alert has been posted, then updates that message', async () => {
    const rec = recordingSink();
    const o = outbox(rec.sink);
    const a = alert();
    rec.state.failing = true;
    await o.add([a], [repeat(a.id, 2)]);
    await o.drain();
    expect(rec.repeats).toEqual([]);
    expect((await store.members(OUTBOX_PENDING_SET)).sort()).toEqual([`post:${a.id}`, `repeat:${a.id}`]);
    rec.state.failing = false;
    await o.start();
    await vi.waitFor(() => expect(rec.repeats).toEqual([{ ref: 'C0TEST:1.000', alertId: a.id, count: 2 }]));
    expect(rec.posts).toHaveLength(1);
  });

  it('keeps a repeat whose alert another attempt is still posting, and updates that message once it is posted', async () => {
    const rec = recordingSink();
    let busy = true;
    const a = alert();
    const sink: AlertSink = {
      post: async (posted) => {
        if (busy)
          throw Object.assign(new Error(`alert ${posted.id} is being posted by another worker`), {
            code: DELIVERY_IN_PROGRESS,
          });
        return rec.sink.post(posted);
      },
      repeat: rec.sink.repeat,
    };
    const o = outbox(sink);
    await o.add([a], [repeat(a.id, 2)]);
    await o.drain();
    // The post was skipped in the pass that then came to the repeat: it waits, it is not dropped.
    expect(rec.posts).toEqual([]);
    expect((await store.members(OUTBOX_PENDING_SET)).sort()).toEqual([`post:${a.id}`, `repeat:${a.id}`]);
    busy = false;
    await vi.waitFor(
      async () => {
        await o.drain();
        expect(rec.repeats).toEqual([{ ref: 'C0TEST:1.000', alertId: a.id, count: 2 }]);
      },
      { timeout: 5000, interval: 50 },
    );
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([]);
  });

  it('delivers a higher count added while the chat was updating the message, after that update', async () => {
    const rec = recordingSink();
    const a = alert();
    // Another replica that stores a sighting while this one's update is under way.
    const replica = outbox(rec.sink);
    const sink: AlertSink = {
      post: rec.sink.post,
      async repeat(ref, posted, r) {
        if (r.count === 2) await replica.add([], [repeat(posted.id, 5)]);
        await rec.sink.repeat(ref, posted, r);
      },
    };
    const o = outbox(sink);
    await o.add([a], []);
    await o.drain();
    await o.add([], [repeat(a.id, 2)]);
    await o.drain();
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([`repeat:${a.id}`]);
    await o.drain();
    expect(rec.repeats.map((r) => r.count)).toEqual([2, 5]);
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([]);
  });

  it('two outboxes on one store never update the same message at once', async () => {
    const rec = recordingSink();
    let updating = 0;
    let most = 0;
    const sink: AlertSink = {
      post: rec.sink.post,
      async repeat(ref, posted, r) {
        most = Math.max(most, ++updating);
        await new Promise((resolve) => setTimeout(resolve, 50));
        updating--;
        await rec.sink.repeat(ref, posted, r);
      },
    };
    const [first, second] = [outbox(sink), outbox(sink)];
    const a = alert();
    await first.add([a], []);
    await first.drain();
    await first.add([], [repeat(a.id, 2)]);
    await Promise.all([first.drain(), second.drain()]);
    expect(most).toBe(1);
    expect(rec.repeats).toEqual([{ ref: 'C0TEST:1.000', alertId: a.id, count: 2 }]);
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([]);
  });

  it('stores the reference on the retry rather than posting again when the store refused it right after the post', async () => {
    // A trigger on the store's table refuses the reference's write until it is dropped.
    const db = new DatabaseSync(path.join(dir, 'arc.db'));
    try {
      db.exec(`CREATE TRIGGER refuse_alert_ref BEFORE INSERT ON keyv WHEN NEW.key LIKE '%alert-ref:%'
        BEGIN SELECT RAISE(ABORT, 'the disk is full'); END`);
      const rec = recordingSink();
      const metrics = createMetrics();
      const o = outbox(rec.sink, {}, store, metrics);
      const a = alert();
      await o.add([a], []);
      await o.drain();
      expect(rec.posts).toHaveLength(1);
      expect(await store.get(alertRefKey(a.id))).toBeUndefined();
      expect(await store.members(OUTBOX_PENDING_SET)).toEqual([`post:${a.id}`]);

      db.exec('DROP TRIGGER refuse_alert_ref');
      await vi.waitFor(
        async () => {
          await o.drain();
          expect(await store.get(alertRefKey(a.id))).toBeDefined();
        },
        { timeout: 5000, interval: 50 },
      );
      expect(await store.get(alertRefKey(a.id))).toBe('C0TEST:1.000');
      expect(rec.posts).toHaveLength(1);
      expect(o.depth()).toBe(0);
      expect(await metrics.registry.metrics()).not.toMatch(
        /arc_chat_delivery_failures_total\{kind="post"\} [1-9]/,
      );
    } finally {
      db.close();
    }
  });

  it('drops a repeat whose alert was never posted by this outbox', async () => {
    const rec = recordingSink();
    const o = outbox(rec.sink);
    await o.add([], [repeat('unknown-alert', 7)]);
    await o.drain();
    expect(rec.repeats).toEqual([]);
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([]);
  });

  it('retries failed deliveries with backoff, counting failures, and delivers exactly once after recovery', async () => {
    const rec = recordingSink();
    const metrics = createMetrics();
    const o = outbox(rec.sink, {}, store, metrics);
    rec.state.failing = true;
    const alerts = [alert(), alert(), alert()];
    await o.add(alerts, []);
    await o.start();
    await vi.waitFor(async () => {
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/arc_chat_delivery_failures_total\{kind="post"\} [2-9]/);
    });
    expect(rec.posts).toEqual([]);
    expect(o.depth()).toBe(3);
    rec.state.failing = false;
    await vi.waitFor(() => expect(rec.posts).toHaveLength(3), { timeout: 5000 });
    expect(new Set(rec.posts.map((p) => p.id))).toEqual(new Set(alerts.map((a) => a.id)));
    await vi.waitFor(() => expect(o.depth()).toBe(0));
    expect(await metrics.registry.metrics()).toContain('arc_chat_deliveries_total{kind="post"} 3');
  });

  it('while paused after failures, tries one item every probeMs: delivery resumes soon after the chat does, said once', async () => {
    const rec = recordingSink();
    const { o, lines } = probingOutbox(rec.sink);
    rec.state.failing = true;
    const alerts = [alert(), alert(), alert()];
    await o.add(alerts, []);
    await o.start();
    await vi.waitFor(() => expect(lines.join('')).toContain('chat delivery failed (post)'));
    rec.state.failing = false;
    await vi.waitFor(() => expect(rec.posts).toHaveLength(3), { timeout: 5000 });
    expect(new Set(rec.posts.map((p) => p.id))).toEqual(new Set(alerts.map((a) => a.id)));
    expect(lines.filter((l) => l.includes('chat delivery works again'))).toHaveLength(1);
  });

  it('times its pause and probes on a monotonic clock: a wall clock set back an hour during an outage does not stop delivery', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const rec = recordingSink();
      // As the service builds it: no clock injected.
      const { o, lines } = probingOutbox(rec.sink);
      rec.state.failing = true;
      const alerts = [alert(), alert()];
      await o.add(alerts, []);
      await o.start();
      await vi.waitFor(() => expect(lines.join('')).toContain('chat delivery failed (post)'));
      vi.setSystemTime(Date.now() - 3_600_000);
      rec.state.failing = false;
      await vi.waitFor(() => expect(rec.posts).toHaveLength(2), { timeout: 5000 });
    } finally {
      vi.useRealTimers();
    }
  });

  it('gauges how long the alert waiting longest has waited since it was stored, whatever its event time', async () => {
    const rec = recordingSink();
    const metrics = createMetrics();
    let clock = Date.now();
    const o = createStoreOutbox(
      { store, sink: rec.sink, logger: silent, metrics, now: () => clock },
      { ...fast, baseBackoffMs: 60_000, maxBackoffMs: 60_000 },
    );
    outboxes.push(o);
    const gauge = async () =>
      /arc_outbox_oldest_wait_seconds (\d+)/.exec(await metrics.registry.metrics())?.[1];
    await o.start();
    expect(await gauge()).toBe('0');
    // An event that reached the service late has not waited for the chat.
    const late = alert();
    late.detection.eventTime = new Date(clock - 600_000).toISOString();
    rec.state.failing = true;
    await o.add([late], []);
    expect(await gauge()).toBe('0');
    clock += 90_000;
    await o.add([alert()], []);
    expect(await gauge()).toBe('90');
    rec.state.failing = false;
    clock += 120_000;
    o.kick();
    await vi.waitFor(async () => expect(await gauge()).toBe('0'), { timeout: 5000 });
  });

  it('a probe passes over an item that fails on its own: the others end the pause', async () => {
    const rec = recordingSink();
    const refused = alert();
    refused.detection.eventTime = new Date(Date.now() - 60_000).toISOString();
    const sink: AlertSink = {
      ...rec.sink,
      async post(a) {
        if (a.id === refused.id)
          throw Object.assign(new Error('Slack refuses this message'), { itemOnly: true });
        return rec.sink.post(a);
      },
    };
    const { o, lines } = probingOutbox(sink);
    rec.state.failing = true;
    const others = [alert(), alert()];
    await o.add([refused, ...others], []);
    await o.start();
    await vi.waitFor(() => expect(lines.join('')).toContain('chat delivery failed (post)'));
    rec.state.failing = false;
    await vi.waitFor(
      () => expect(rec.posts.map((p) => p.id).sort()).toEqual(others.map((a) => a.id).sort()),
      {
        timeout: 5000,
      },
    );
    expect(lines.filter((l) => l.includes('chat delivery works again'))).toHaveLength(1);
  });

  it('says a delivery failed only once it has given the lease back: a process stopped after the line holds nothing', async () => {
    const rec = recordingSink();
    rec.state.failing = true;
    const a = alert();
    // At the moment the failure is logged, is the item's lease free for another process?
    let leaseFree: Promise<boolean> | undefined;
    const logger = createLogger({
      level: 'warn',
      destination: {
        write(line: string) {
          if (line.includes('chat delivery failed'))
            leaseFree ??= store.claim(`outbox:lease:post:${a.id}`, 1);
        },
      },
    });
    const o = createStoreOutbox({ store, sink: rec.sink, logger, metrics: createMetrics() }, fast);
    outboxes.push(o);
    await o.add([a], []);
    await o.drain();
    expect(leaseFree).toBeDefined();
    expect(await leaseFree).toBe(true);
  });

  it('never posts an alert twice when a run stopped after posting but before removing the item', async () => {
    const rec = recordingSink();
    const o = outbox(rec.sink);
    const a = alert();
    await o.add([a], []);
    // What a crash between "posted" and "item removed" leaves behind.
    await store.set(alertRefKey(a.id), 'C0TEST:999.000');
    await o.drain();
    expect(rec.posts).toEqual([]);
    expect(await store.members(OUTBOX_PENDING_SET)).toEqual([]);
  });

  it('two replicas sharing the store deliver every alert exactly once', async () => {
    const rec = recordingSink();
    rec.state.delayMs = 5;
    const other = await openStateStore(`sqlite://${path.join(dir, 'arc.db')}`);
    try {
      const a = outbox(rec.sink, { pollMs: 5 });
      const b = outbox(rec.sink, { pollMs: 5 }, other);
      const alerts = Array.from({ length: 30 }, () => alert());
      await a.add(alerts.slice(0, 15), []);
      await b.add(alerts.slice(15), []);
      await Promise.all([a.start(), b.start()]);
      await vi.waitFor(() => expect(rec.posts.length).toBeGreaterThanOrEqual(30), { timeout: 10_000 });
      await Promise.all([a.drain(), b.drain()]);
      await a.stop();
      await b.stop();
      expect(rec.posts).toHaveLength(30);
      expect(new Set(rec.posts.map((p) => p.id)).size).toBe(30);
    } finally {
      await other.close();
    }
  });

  it("forgets what it added once another replica has delivered it: its depth follows the store's", async () => {
    const other = await openStateStore(`sqlite://${path.join(dir, 'arc.db')}`);
    try {
      const rec = recordingSink();
      const a = outbox(rec.sink);
      const b = outbox(rec.sink, {}, other);
      await a.add([alert(), alert()], []);
      expect(a.depth()).toBe(2);
      expect(a.pendingAlerts()).toBe(2);
      await b.drain();
      expect(rec.posts).toHaveLength(2);
      // A's next pass finds none of them pending any more.
      await a.drain();
      expect(a.depth()).toBe(0);
      expect(a.pendingAlerts()).toBe(0);
      expect(rec.posts).toHaveLength(2);
    } finally {
      await other.close();
    }
  });

  it('reports itself full at maxPending', async () => {
    const rec = recordingSink();
    const o = outbox(rec.sink, { maxPending: 2 });
    await o.add([alert()], []);
    expect(o.isFull()).toBe(false);
    await o.add([alert()], []);
    expect(o.isFull()).toBe(true);
    await o.drain();
    expect(o.isFull()).toBe(false);
  });

  it('counts only alerts against maxPending; repeats over their own bound of the same size wait', async () => {
    const rec = recordingSink();
    const o = outbox(rec.sink, { maxPending: 2 });
    const [a, b] = [alert(), alert()];
    await o.add(
      [],
      [
        { alertId: a.id, count: 2, lastSeen: 1 },
        { alertId: b.id, count: 2, lastSeen: 1 },
      ],
    );
    // Two pending updates do not refuse ingest.
    expect(o.isFull()).toBe(false);
    expect([o.depth(), o.pendingAlerts()]).toEqual([2, 0]);
    // A third alert's repeat waits; an update of a pending one still replaces it.
    const c = alert();
    await o.add(
      [],
      [
        { alertId: c.id, count: 2, lastSeen: 1 },
        { alertId: a.id, count: 3, lastSeen: 2 },
      ],
    );
    expect(o.depth()).toBe(2);
    await o.add([alert()], []);
    expect([o.depth(), o.pendingAlerts(), o.isFull()]).toEqual([3, 1, false]);
  });
});

describeWithService(
  'durable outbox when the store refuses a write right after the post (Redis)',
  'TEST_REDIS_URL',
  (url) => {
    it('stores the reference on the retry rather than posting again, and counts no chat failure', async () => {
      const namespace = uniqueNamespace('outbox-ref');
      const redis = await redisTestUser(url, 'outbox', namespace);
      const store = await openStateStore(redis.url, { namespace });
      const rec = recordingSink();
      const sink: AlertSink = {
        async post(a) {
          const posted = await rec.sink.post(a);
          // Values (`<ns>::…`) become read-only; claims and sets stay writable.
          await redis.setRules('resetkeys', '%R~*', `~${namespace}:claim::*`, `~${namespace}:set::*`);
          return posted;
        },
        repeat: rec.sink.repeat,
      };
      const metrics = createMetrics();
      const o = createStoreOutbox(
        { store, sink, logger: createLogger({ level: 'silent' }), metrics },
        { pollMs: 20, baseBackoffMs: 20, maxBackoffMs: 100 },
      );
      try {
        const a = alert();
        await o.add([a], []);
        await o.drain();
        expect(rec.posts).toHaveLength(1);
        expect(await store.get(alertRefKey(a.id))).toBeUndefined();
        await redis.allowAll();
        await vi.waitFor(
          async () => {
            await o.drain();
            expect(await store.get(alertRefKey(a.id))).toBe('C0TEST:1.000');
          },
          { timeout: 5000, interval: 50 },
        );
        expect(rec.posts).toHaveLength(1);
        expect(o.depth()).toBe(0);
        expect(await metrics.registry.metrics()).not.toMatch(
          /arc_chat_delivery_failures_total\{kind="post"\} [1-9]/,
        );
      } finally {
        await o.stop();
        await store.close();
        await redis.dispose();
      }
    });

    it('waits for the lease to lapse before trying again when the store refused to give it back, and says so', async () => {
      const namespace = uniqueNamespace('outbox-lease');
      const redis = await redisTestUser(url, 'lease', namespace);
      const store = await openStateStore(redis.url, { namespace });
      const lines: Array<{ msg?: string; retryInMs?: number }> = [];
      const logger = createLogger({
        level: 'debug',
        destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
      });
      const sink: AlertSink = {
        async post() {
          // The chat fails, and the store then takes no write: the lease cannot be given back.
          await redis.setRules('resetkeys', '%R~*');
          throw new Error('chat is down (HTTP 503)');
        },
        async repeat() {},
      };
      const o = createStoreOutbox(
        { store, sink, logger, metrics: createMetrics() },
        { pollMs: 20, baseBackoffMs: 20, maxBackoffMs: 100, leaseMs: 3000 },
      );
      try {
        await o.add([alert()], []);
        await o.drain();
        const failed = lines.find((l) => l.msg === 'chat delivery failed (post); will retry');
        expect(failed?.retryInMs).toBe(3000);
      } finally {
        await o.stop();
        await redis.allowAll();
        await store.close();
        await redis.dispose();
      }
    });
  },
);

describeWithService(
  "durable outbox on PostgreSQL: an update that keeps losing to another replica's",
  'TEST_POSTGRES_URL',
  (url) => {
    it.each([
      ['lower', 9, 10],
      ['higher', 50, 50],
    ])(
      `is written with its key held after ${HOLD_AFTER} rounds lost, never over a %s count the other wrote just before`,
      async (_, lastOther, stored) => {
        const namespace = uniqueNamespace('outbox-held');
        const store = await openStateStore(url, { namespace });
        const other = await openStateStore(url, { namespace });
        const a = alert();
        const key = `outbox:item:repeat:${a.id}`;
        let rounds = 0;
        const otherWrites = (count: number) =>
          other.set(key, { kind: 'repeat', repeat: repeat(a.id, count), queuedAt: 1, rev: `o${count}` });
        // Another replica writes the update again (a lower count, a new rev) just before each
        // conditional write, and `lastOther` just before the write with the key held.
        const busy = new Proxy(store, {
          get: (target, name) => {
            if (name === 'setManyIfUnchanged') {
              return async (entries: Parameters<StateStore['setManyIfUnchanged']>[0]) => {
                if (entries.some((e) => e.key === key)) await otherWrites(1 + ++rounds);
                return target.setManyIfUnchanged(entries);
              };
            }
            if (name === 'updateManyHeld') {
              return async (...args: Parameters<NonNullable<StateStore['updateManyHeld']>>) => {
                await otherWrites(lastOther);
                return target.updateManyHeld!(...args);
              };
            }
            const value = Reflect.get(target, name, target);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        }) as StateStore;
        const o = createStoreOutbox(
          {
            store: busy,
            sink: recordingSink().sink,
            logger: createLogger({ level: 'silent' }),
            metrics: createMetrics(),
          },
          { pollMs: 60_000 },
        );
        try {
          await o.add([], [repeat(a.id, 10)]);
          expect(rounds).toBe(HOLD_AFTER);
          expect(await store.get(key)).toMatchObject({ kind: 'repeat', repeat: { count: stored } });
        } finally {
          await o.stop();
          await Promise.all([store.close(), other.close()]);
        }
      },
    );
  },
);

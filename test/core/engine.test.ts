import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AlertRecord, AlertRepeat } from '../../src/core/alert.ts';
import { alertOwnerKey } from '../../src/core/alert-claims.ts';
import { alertIdFor, createEngine, type Engine } from '../../src/core/engine.ts';
import { eventClaim } from '../../src/core/event-claims.ts';
import { parseDetection } from '../../src/core/formats/index.ts';
import { createHistory } from '../../src/core/history.ts';
import { identitySet, pairKey, type StoredPair } from '../../src/core/pair.ts';
import type { Outbox, StateStore } from '../../src/core/ports.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { StoreError } from '../../src/store/store-error.ts';
import { ARC, arcEvent } from '../support/samples.ts';

const DAY = 86_400_000;
const WINDOW = 7 * DAY;

/** An outbox that keeps what it is given, as the durable one hands it to the chat side. */
function collectingOutbox() {
  const alerts: AlertRecord[] = [];
  const repeats: AlertRepeat[] = [];
  const outbox: Outbox = {
    async add(a, r) {
      alerts.push(...a);
      repeats.push(...r);
    },
  };
  return { outbox, alerts, repeats };
}

const at = (msAgo: number) => new Date(Date.now() - msAgo);
let seq = 0;
/** A derived Arc-shaped Event Hub record with a fresh correlation id (so a distinct event). */
const record = (opts: Parameters<typeof arcEvent>[1] = {}) =>
  arcEvent('azure-activity-log-record', {
    correlationId: `c0ffee00-0000-4000-8000-${String(++seq).padStart(12, '0')}`,
    ...opts,
  });

const dir = mkdtempSync(path.join(tmpdir(), 'arc-engine-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let dbs = 0;
const backends: Record<string, () => string> = {
  memory: () => 'memory://',
  sqlite: () => `sqlite://${path.join(dir, `engine-${++dbs}.db`)}`,
};

describe.each(Object.keys(backends))(
  'engine on %s: the new-terms rule on (appid, source IP) [derived Arc events]',
  (backend) => {
    let store: StateStore;
    let engine: Engine;
    let sink: ReturnType<typeof collectingOutbox>;

    beforeEach(async () => {
      store = await openStateStore(backends[backend]!());
      sink = collectingOutbox();
      engine = await createEngine({ store, windowMs: WINDOW, outbox: sink.outbox });
    });
    afterEach(async () => {
      await store.close();
    });

    it('alerts on the first use of an IP by an identity, then reports repeats as known', async () => {
      const [first] = await engine.evaluate([record({ time: at(3 * DAY) })]);
      expect(first?.outcome).toBe('alerted');
      expect(first?.alert?.reason).toBe('new-pair');
      expect(first?.alert?.otherIps).toBe(0);
      expect(sink.alerts).toHaveLength(1);

      const [second] = await engine.evaluate([record({ time: at(2 * DAY) })]);
      expect(second?.outcome).toBe('known');
      expect(sink.alerts).toHaveLength(1);
      expect(sink.repeats.at(-1)).toMatchObject({ alertId: first?.alert?.id, count: 2 });
    });

    it('keeps the details of the most recent event for /arc-history; a late delivery of an older one leaves them', async () => {
      const ecs = (role: string, msAgo: number, n: number) =>
        arcEvent('elastic-ecs', {
          role,
          time: at(msAgo),
          correlationId: `dddddddd-0000-4000-8000-${String(n).padStart(12, '0')}`,
        });
      await engine.evaluate([ecs('Role A', 2 * DAY, 1)]);
      await engine.evaluate([ecs('Role B', DAY, 2), ecs('Role C', 3 * DAY, 3)]);
      const history = createHistory({ store, windowMs: WINDOW });
      const [entry] = await history.listIdentity(ARC.appId);
      const last = { role: 'Role B', geo: ARC.geo, sourceFormat: 'elastic-ecs' };
      expect(entry?.pair).toMatchObject({ count: 3, last });
      expect(entry?.pair.lastSeen).toBeGreaterThan(Date.now() - DAY - 60_000);
      // An older event delivered late, on its own: counted, its details not taken.
      await engine.evaluate([record({ role: 'Role D', time: at(4 * DAY) })]);
      const [after] = await history.listIdentity(ARC.appId);
      expect(after?.pair).toMatchObject({ count: 4, last, lastSeen: entry?.pair.lastSeen });
    });

    it('re-indexes a pair under its identity every half window, so a lost index entry heals', async () => {
      let clock = Date.now();
      const timed = await createEngine({ store, windowMs: WINDOW, outbox: sink.outbox, now: () => clock });
      await timed.evaluate([record({ time: at(DAY) })]);
      // What a crash between the index and the pair writes, or a pruning reader, could leave.
      await store.removeMembers(identitySet(ARC.appId), [ARC.ip]);
      expect(await store.members(identitySet(ARC.appId))).toEqual([]);
      // SQLite lists an identity from the key range of its pairs, which needs no index; the other
      // stores list it from the index.
      const history = createHistory({ store, windowMs: WINDOW, now: () => clock });
      const listed = (await history.listIdentity(ARC.appId)).map((e) => e.pair.count);
      expect(listed).toEqual(store.kind === 'sqlite' ? [1] : []);
      // Within half a window of its last indexing, a sighting leaves the index alone; past it, it
      // indexes the pair again.
      await timed.evaluate([record({ time: at(1000) })]);
      expect(await store.members(identitySet(ARC.appId))).toEqual([]);
      clock += WINDOW / 2 + 60_000;
      await timed.evaluate([record({ time: at(500) })]);
      expect(await store.members(identitySet(ARC.appId))).toEqual([ARC.ip]);
      expect((await history.listIdentity(ARC.appId)).map((e) => e.pair.count)).toEqual([3]);
    });

    it("keeps a new pair indexed when a reader prunes its identity between the index and the pair's write", async () => {
      // A listing or another replica's count finds the new entry before its pair is written, and
      // removes it as gone: the engine indexes the pair again once it is written.
      const write = store.setManyIfUnchanged.bind(store);
      let pruned = 0;
      store.setManyIfUnchanged = async (entries) => {
        const set = identitySet(ARC.appId);
        const found = await store.members(set);
        if (found.length > 0) {
          await store.removeGoneMembers(set, pairKey(ARC.appId, ''), found);
          pruned += found.length - (await store.members(set)).length;
        }
        return write(entries);
      };
      const [first] = await engine.evaluate([record({ time: at(DAY) })]);
      expect(first?.outcome).toBe('alerted');
      expect(pruned).toBe(1);
      expect(await store.members(identitySet(ARC.appId))).toEqual([ARC.ip]);
      const history = createHistory({ store, windowMs: WINDOW });
      expect((await history.listIdentity(ARC.appId)).map((e) => e.pair.ip)).toEqual([ARC.ip]);
    });

    it('keeps a Mark benign entry listed when a listing of its identity runs between its index and its write', async () => {
      await engine.evaluate([record({ time: at(DAY) })]);
      const history = createHistory({ store, windowMs: WINDOW });
      const write = store.set.bind(store);
      let listings = 0;
      store.set = async (key, value, ttlMs) => {
        // `/arc-history` of the identity, answered while the entry is being made.
        if (key.startsWith('allow:')) {
          listings++;
          await history.readIdentity(ARC.appId);
        }
        return write(key, value, ttlMs);
      };
      await history.allow({ appId: ARC.appId, ip: ARC.ip, by: 'U0RESP', reason: 'office egress' });
      expect(listings).toBe(1);
      const [entry] = (await history.readIdentity(ARC.appId)).entries;
      expect(entry?.allow).toMatchObject({ by: 'U0RESP', reason: 'office egress' });
      expect((await history.listAllowlist()).map((a) => a.ip)).toEqual([ARC.ip]);
    });

    /** Stores a pair seen once a day ago, written raw with `fields` (shapes the engine no longer writes). */
    async function storeRawPair(ip: string, fields: Record<string, unknown>) {
      const now = Date.now();
      await store.addMembers(identitySet(ARC.appId), [ip]);
      await store.set(
        `pair:${ARC.appId}:${ip}`,
        {
          appId: ARC.appId,
          ip,
          firstSeen: now - DAY,
          lastSeen: now - DAY,
          count: 1,
          spans: [[now - DAY, now - DAY]],
          ...fields,
        },
        6 * DAY,
      );
    }

    it('reads a pair stored with its details apart (no `last`) and moves its details into the pair', async () => {
      const ip = '198.51.100.77';
      // The counters, and the details beside them.
      await storeRawPair(ip, { detailsFp: 'x1', detailsUntil: Date.now() + 6 * DAY });
      await store.set(
        `pairinfo:${ARC.appId}:${ip}`,
        { role: 'Old role', sourceFormat: 'elastic-ecs' },
        6 * DAY,
      );
      const history = createHistory({ store, windowMs: WINDOW });
      const [before] = await history.listIdentity(ARC.appId);
      expect(before?.pair).toMatchObject({ ip, count: 1, last: { role: 'Old role' } });

      const [r] = await engine.evaluate([record({ ip, time: at(1000), role: 'New role' })]);
      expect(r?.outcome).toBe('known');
      const [after] = await history.listIdentity(ARC.appId);
      expect(after?.pair).toMatchObject({ ip, count: 2, last: { role: 'New role' } });
      const stored = await store.get<Record<string, unknown>>(`pair:${ARC.appId}:${ip}`);
      expect(stored).toMatchObject({ last: { role: 'New role' } });
      expect(stored).not.toHaveProperty('detailsFp');
    });

    it('posts no second alert for an Elastic alert of a pair stored with an alert but no alertedAt, seen within the window', async () => {
      const ip = '198.51.100.78';
      // Its alert's claim is under a per-window key, which the engine does not read.
      await storeRawPair(ip, { alertId: 'a1b2c3d4e5f6a7b8c9d0e1f2' });
      const [live, late] = await engine.evaluate([
        arcEvent('elastic-alert', {
          time: at(1000),
          ip,
          correlationId: 'eeeeeeee-0000-4000-8000-000000000401',
        }),
        arcEvent('elastic-alert', {
          time: at(8 * DAY),
          ip,
          correlationId: 'eeeeeeee-0000-4000-8000-000000000402',
        }),
      ]);
      expect(live?.outcome).toBe('known');
      expect(live?.reason).toMatch(/alerted already within the window/);
      expect(late?.outcome).toBe('known');
      expect(sink.alerts).toHaveLength(0);
      expect(sink.repeats.at(-1)?.alertId).toBe('a1b2c3d4e5f6a7b8c9d0e1f2');
    });

    it('counts the identity’s other IPs in the window', async () => {
      await engine.evaluate([
        record({ ip: '198.51.100.1', time: at(DAY) }),
        record({ ip: '198.51.100.2', time: at(DAY) }),
      ]);
      const [third] = await engine.evaluate([record({ ip: '2001:DB8::0:1', time: at(1000) })]);
      expect(third?.outcome).toBe('alerted');
      expect(third?.alert?.otherIps).toBe(2);
      expect(third?.detection?.sourceIp).toBe('2001:db8::1');
    });

    it('counts an IP of the history once among the other IPs, also when the batch of a new IP sees it again', async () => {
      await engine.evaluate([record({ ip: '198.51.100.1', time: at(DAY) })]);
      const [known, fresh] = await engine.evaluate([
        record({ ip: '198.51.100.1', time: at(2000) }),
        record({ ip: '198.51.100.2', time: at(1000) }),
      ]);
      expect(known?.outcome).toBe('known');
      expect(fresh?.outcome).toBe('alerted');
      expect(fresh?.alert?.otherIps).toBe(1);
    });

    it('counts other IPs of an identity with more than 500 of them from a sample, and forgets expired ones', async () => {
      const short = await createEngine({ store, windowMs: 1500, outbox: sink.outbox });
      const ips = (from: number, n: number) =>
        [...Array(n)].map((_, i) =>
          record({ ip: `198.18.${(from + i) >> 8}.${(from + i) & 255}`, time: at(0) }),
        );
      await short.evaluate(ips(0, 600), { silent: true });
      const [live] = await short.evaluate(ips(600, 1));
      expect(live?.alert).toMatchObject({ otherIps: 600, otherIpsEstimated: true });
      // Every one of them expires; the index no longer counts them.
      await new Promise((resolve) => setTimeout(resolve, 1700));
      const [after] = await short.evaluate(ips(700, 1));
      expect(after?.outcome).toBe('alerted');
      expect(after?.alert?.otherIps).toBe(0);
      expect(after?.alert?.otherIpsEstimated).toBe(true);
    });

    it('looks up the AS of an event that carries its geo but no AS, and keeps the geo it carried', async () => {
      const located = await createEngine({
        store,
        windowMs: WINDOW,
        outbox: sink.outbox,
        geo: {
          locate: () => ({
            geo: { countryName: 'Elsewhere', countryIsoCode: 'XX' },
            as: { number: 64511, organizationName: 'Looked up' },
          }),
        },
      });
      const [r] = await located.evaluate([arcEvent('elastic-ecs', { time: at(1000) })]);
      expect(r?.detection).toMatchObject({
        geo: ARC.geo,
        as: { number: 64511, organizationName: 'Looked up' },
        located: { as: true },
      });
      expect(r?.detection?.located).toEqual({ as: true });
    });

    it('compares the identity case-insensitively', async () => {
      await engine.evaluate([record({ appId: ARC.appId.toUpperCase(), time: at(DAY) })]);
      const [r] = await engine.evaluate([record({ appId: ARC.appId, time: at(1000) })]);
      expect(r?.outcome).toBe('known');
    });

    it('judges an event from more than a window ago by a live event of its pair in the same batch', async () => {
      const ip = '198.51.100.64';
      const results = await engine.evaluate([
        record({ time: at(WINDOW / 2), ip }),
        record({ time: at(WINDOW * 1.2), ip }),
      ]);
      expect(results.map((r) => r.outcome)).toEqual(['alerted', 'known']);
      expect(sink.alerts).toHaveLength(1);
    });

    it("alerts on the sender's retry of an event whose first delivery took the pair's claim and stopped", async () => {
      const ip = '198.51.100.61';
      const event = record({ time: at(60_000), ip });
      const parsed = parseDetection(structuredClone(event));
      if (!parsed.ok) throw new Error(parsed.reason);
      const d = parsed.detection;
      // What a delivery killed between its claims and its writes leaves: the event's claim and
      // the pair's alert claim with its owner claim (one store call), and nothing else.
      const { group, key } = eventClaim({ detection: d });
      expect(await store.claimInGroups([{ group, keys: [key] }], 2 * WINDOW)).toEqual([[true]]);
      expect(
        await store.claimMany([`alerted:${d.appId}:${d.sourceIp}`, alertOwnerKey({ detection: d })], WINDOW),
      ).toEqual([true, true]);

      const [retry] = await engine.evaluate([event]);
      expect(retry?.outcome).toBe('alerted');
      // The id the stopped delivery would have used: had it stored the alert, it is posted once.
      expect(retry?.alert?.id).toBe(alertIdFor(d.eventId));
      expect(sink.alerts.map((a) => a.id)).toEqual([alertIdFor(d.eventId)]);
      const [again] = await engine.evaluate([event]);
      expect(again?.outcome).toBe('duplicate');
      const [other] = await engine.evaluate([record({ time: at(30_000), ip })]);
      expect(other?.outcome).toBe('known');
      expect(sink.alerts).toHaveLength(1);
    });

    it('answers a resent event dated in the future duplicate, not counted again (its time counts as now)', async () => {
      const ip = '198.51.100.65';
      await engine.evaluate([record({ time: at(60_000), ip })]);
      const ahead = record({ time: new Date(Date.now() + 3_600_000), ip });
      expect((await engine.evaluate([ahead]))[0]?.outcome).toBe('known');
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect((await engine.evaluate([ahead]))[0]?.outcome).toBe('duplicate');
      const entries = await createHistory({ store, windowMs: WINDOW }).listIdentity(ARC.appId);
      expect(entries.find((e) => e.pair.ip === ip)?.pair.count).toBe(2);
    });

    it('counts the events of a delivery that claimed them and stopped before storing them, when they come again', async () => {
      const ip = '198.51.100.64';
      await engine.evaluate([record({ time: at(3 * 3_600_000), ip })], { silent: true });
      const last = at(3_600_000);
      const later = [record({ time: at(2 * 3_600_000), ip }), record({ time: last, ip })];
      // An import killed between its claims and its writes: the events are claimed, not stored.
      for (const event of later) {
        const parsed = parseDetection(structuredClone(event));
        if (!parsed.ok) throw new Error(parsed.reason);
        const { group, key } = eventClaim({ detection: parsed.detection });
        await store.claimInGroups([{ group, keys: [key] }], 2 * WINDOW);
      }
      const rerun = await engine.evaluate(later, { silent: true });
      expect(rerun.map((r) => r.outcome)).toEqual(['known', 'known']);
      const entries = await createHistory({ store, windowMs: WINDOW }).listIdentity(ARC.appId);
      const entry = entries.find((e) => e.pair.ip === ip);
      expect(entry?.pair.count).toBe(3);
      expect(entry?.pair.lastSeen).toBe(last.getTime());
      // Once stored, they are duplicates.
      expect((await engine.evaluate(later, { silent: true })).map((r) => r.outcome)).toEqual([
        'duplicate',
        'duplicate',
      ]);
    });

    it("does not take over a pair's claim that another event's stopped delivery holds: one alert, never two", async () => {
      const ip = '198.51.100.62';
      const [b, a] = [record({ time: at(90_000), ip }), record({ time: at(60_000), ip })];
      const parse = (event: unknown) => {
        const r = parseDetection(structuredClone(event));
        if (!r.ok) throw new Error(r.reason);
        return r.detection;
      };
      const [db, da] = [parse(b), parse(a)];
      // A delivery of [b, a] stopped after its claims: b (the earlier) claimed the pair for its
      // alert, and stored its alert in the outbox; then the sender resends a alone.
      for (const d of [db, da]) {
        const { group, key } = eventClaim({ detection: d });
        await store.claimInGroups([{ group, keys: [key] }], 2 * WINDOW);
      }
      await store.claimMany([`alerted:${db.appId}:${ip}`, alertOwnerKey({ detection: db })], WINDOW);
      const [retry] = await engine.evaluate([a]);
      expect(retry?.outcome).toBe('known');
      expect(sink.alerts).toHaveLength(0);
      // The owner claim it tried is given back: a later retry of a is judged the same way.
      const [again] = await engine.evaluate([a]);
      expect(again?.outcome).toBe('duplicate');
      // The resent b alerts under its own id.
      const [rb] = await engine.evaluate([b]);
      expect(rb?.alert?.id).toBe(alertIdFor(db.eventId));
    });

    it('alerts once when a batch of two Elastic alerts of one new pair is resent after a stop', async () => {
      const ip = '198.51.100.63';
      const alerts = [
        arcEvent('elastic-alert', {
          time: at(90_000),
          ip,
          correlationId: 'eeeeeeee-0000-4000-8000-0000000000a1',
        }),
        arcEvent('elastic-alert', {
          time: at(60_000),
          ip,
          correlationId: 'eeeeeeee-0000-4000-8000-0000000000a2',
        }),
      ];
      const first = await engine.evaluate(alerts);
      expect(first.map((r) => r.outcome).sort()).toEqual(['alerted', 'known']);
      // As if that delivery had stopped before storing: the pair and the outbox are gone, the
      // claims stay.
      await store.delete(pairKey(ARC.appId, ip));
      const resent = await engine.evaluate(alerts);
      expect(resent.filter((r) => r.outcome === 'alerted').map((r) => r.alert?.id)).toEqual(
        first.filter((r) => r.outcome === 'alerted').map((r) => r.alert?.id),
      );
    });

    it('takes an appid without dashes or in braces for the same identity, and names it dashed', async () => {
      const undashed = ARC.appId.replaceAll('-', '');
      const [first] = await engine.evaluate([record({ appId: undashed.toUpperCase(), time: at(DAY) })]);
      expect(first?.outcome).toBe('alerted');
      expect(first?.detection?.appId).toBe(ARC.appId);
      // The form the event wrote is kept beside it, for searches in Elastic.
      expect(first?.detection?.appIdAsSent).toBe(undashed.toUpperCase());
      const [braces] = await engine.evaluate([record({ appId: `{${ARC.appId}}`, time: at(2000) })]);
      expect(braces?.outcome).toBe('known');
      const [dashed] = await engine.evaluate([record({ appId: ARC.appId, time: at(1000) })]);
      expect(dashed?.outcome).toBe('known');
      expect(dashed?.detection).not.toHaveProperty('appIdAsSent');
      expect(sink.alerts).toHaveLength(1);
      const entries = await createHistory({ store, windowMs: WINDOW }).listIdentity(undashed);
      expect(entries.map((e) => [e.pair.appId, e.pair.count])).toEqual([[ARC.appId, 3]]);
    });

    it('judges by event time: a sighting 8 days before the event does not make it known', async () => {
      await engine.evaluate([record({ time: at(8 * DAY + 5 * 60_000) })], { silent: true });
      // The old sighting is outside the window relative to now: it was never kept.
      const [r] = await engine.evaluate([record({ time: at(1000) })]);
      expect(r?.outcome).toBe('alerted');
    });

    it('judges by event time: a late delivery older than a known sighting within the window is known', async () => {
      await engine.evaluate([record({ time: at(DAY) })]);
      const [late] = await engine.evaluate([record({ time: at(5 * DAY) })]);
      expect(late?.outcome).toBe('known');
      expect(sink.alerts).toHaveLength(1);
    });

    it('gives one alert for out-of-order deliveries of a pair within the window', async () => {
      const times = [at(1 * DAY), at(6 * DAY), at(3 * DAY)];
      const results = await engine.evaluate(times.map((time) => record({ time })));
      // The first sighting is the one alerted; the batch's other two are its repeats at once.
      expect(results.map((r) => r.outcome)).toEqual(['known', 'alerted', 'known']);
      const alert = results[1]!.alert!;
      expect(Date.parse(alert.detection.eventTime)).toBe(times[1]!.getTime());
      expect(sink.repeats).toEqual([{ alertId: alert.id, count: 3, lastSeen: times[0]!.getTime() }]);
      const later = await engine.evaluate([record({ time: at(4 * DAY) }), record({ time: at(2 * DAY) })]);
      expect(later.map((r) => r.outcome)).toEqual(['known', 'known']);
      expect(sink.alerts).toHaveLength(1);
    });

    it('treats event times more than 5 minutes ahead as now; up to 5 minutes ahead, they keep their time', async () => {
      const clock = Date.now();
      const timed = await createEngine({ store, windowMs: WINDOW, outbox: sink.outbox, now: () => clock });
      const ahead = { '198.51.100.1': 30 * DAY, '198.51.100.2': 6 * 60_000, '198.51.100.3': 5 * 60_000 };
      const results = await timed.evaluate(
        Object.entries(ahead).map(([ip, ms]) => record({ ip, time: new Date(clock + ms) })),
      );
      expect(results.map((r) => r.outcome)).toEqual(['alerted', 'alerted', 'alerted']);
      const pairs = await createHistory({ store, windowMs: WINDOW, now: () => clock }).listIdentity(
        ARC.appId,
      );
      expect(Object.fromEntries(pairs.map((e) => [e.pair.ip, e.pair.lastSeen - clock]))).toEqual({
        '198.51.100.1': 0,
        '198.51.100.2': 0,
        '198.51.100.3': 5 * 60_000,
      });
    });

    it('reports a redelivered event as duplicate and alerts once, also when deliveries race', async () => {
      const event = record({ time: at(1000) });
      const [a, b] = await Promise.all([engine.evaluate([event]), engine.evaluate([structuredClone(event)])]);
      expect([a[0]?.outcome, b[0]?.outcome].sort()).toEqual(['alerted', 'duplicate']);
      const [again] = await engine.evaluate([event]);
      expect(again?.outcome).toBe('duplicate');
      expect(sink.alerts).toHaveLength(1);
    });

    it('reports a redelivered event older than the window as duplicate (nothing of it is stored)', async () => {
      const event = record({ time: at(240 * DAY) });
      const [first] = await engine.evaluate([event]);
      expect(first?.outcome).toBe('alerted');
      const [again] = await engine.evaluate([structuredClone(event)]);
      expect(again?.outcome).toBe('duplicate');
      expect(sink.alerts).toHaveLength(1);
    });

    it('alerts once for replayed events of a pair from months ago, and again when the pair comes back now', async () => {
      const replay = await engine.evaluate([record({ time: at(240 * DAY) })]);
      const [sameEpisode] = await engine.evaluate([record({ time: at(240 * DAY - 3600_000) })]);
      expect(replay[0]?.outcome).toBe('alerted');
      expect(sameEpisode?.outcome).toBe('known');
      const [now] = await engine.evaluate([record({ time: at(1000) })]);
      expect(now?.outcome).toBe('alerted');
      expect(sink.alerts).toHaveLength(2);
    });

    it('neither stores nor alerts an event from longer ago than the window of a pair in the history', async () => {
      const [live] = await engine.evaluate([record({ time: at(60_000) })]);
      expect(live?.outcome).toBe('alerted');
      // 6.9 days ago is within the window: stored. The others are older than the window; the first
      // two lie within a window of a stored sighting, the last does not.
      const within = await engine.evaluate([record({ time: at(6.9 * DAY) })]);
      const older = await engine.evaluate([
        record({ time: at(7.5 * DAY) }),
        record({ time: at(9 * DAY) }),
        record({ time: at(30 * DAY) }),
      ]);
      expect(within[0]?.outcome).toBe('known');
      expect(older.map((r) => r.outcome)).toEqual(['known', 'known', 'known']);
      expect(older[2]?.reason).toContain('older than the history window');
      expect(sink.alerts).toHaveLength(1);
      const [entry] = await createHistory({ store, windowMs: WINDOW }).listIdentity(ARC.appId);
      expect(entry?.pair.count).toBe(2);
      expect(Date.now() - entry!.pair.firstSeen).toBeLessThan(7 * DAY);
    });

    it('answers an old event of an allowlisted pair in the history allowlisted, without storing it', async () => {
      await engine.evaluate([record({ time: at(60_000) })]);
      await createHistory({ store, windowMs: WINDOW }).allow({
        appId: ARC.appId,
        ip: ARC.ip,
        by: 'U1',
        reason: 'build agent',
      });
      const [old] = await engine.evaluate([record({ time: at(20 * DAY) })]);
      expect(old?.outcome).toBe('allowlisted');
      const [entry] = await createHistory({ store, windowMs: WINDOW }).listIdentity(ARC.appId);
      expect(entry?.pair.count).toBe(1);
    });

    it('does not write back a pair that only duplicates and old events read', async () => {
      const event = record({ time: at(60_000) });
      await engine.evaluate([event]);
      const setMany = vi.spyOn(store, 'setMany');
      const setIfUnchanged = vi.spyOn(store, 'setManyIfUnchanged');
      await engine.evaluate([structuredClone(event), record({ time: at(30 * DAY) })]);
      const written = [...setMany.mock.calls, ...setIfUnchanged.mock.calls].flatMap(([entries]) =>
        entries.map((e) => e.key),
      );
      expect(written).not.toContain(pairKey(ARC.appId, ARC.ip));
      // The same spies do see a pair written.
      await engine.evaluate([record({ time: at(50_000) })]);
      expect(setIfUnchanged.mock.calls.flatMap(([entries]) => entries.map((e) => e.key))).toContain(
        pairKey(ARC.appId, ARC.ip),
      );
      setMany.mockRestore();
      setIfUnchanged.mockRestore();
    });

    it('does not alert a pair again within a window of its alert: a sighting a window after the alerted one updates it', async () => {
      // Two sightings 7 days and 2 minutes apart (the later 4 minutes ahead, within the clock
      // tolerance): the later is new by its own time, but the pair was alerted just now.
      const [first] = await engine.evaluate([record({ time: at(WINDOW - 2 * 60_000) })]);
      const [again] = await engine.evaluate([record({ time: at(-4 * 60_000) })]);
      expect(first?.outcome).toBe('alerted');
      expect(again).toMatchObject({
        outcome: 'known',
        reason: 'this pair was alerted already within the window',
      });
      expect(sink.alerts).toHaveLength(1);
      expect(sink.repeats.at(-1)).toMatchObject({ alertId: first?.alert?.id, count: 2 });
    });

    it('after the window shrank, an alert still holds its pair back for the window it was raised under', async () => {
      const [old] = await engine.evaluate([record({ time: at(3 * DAY) })]);
      expect(old?.outcome).toBe('alerted');
      const shrunk = await createEngine({ store, windowMs: 36 * 3600_000, outbox: sink.outbox });
      const [now] = await shrunk.evaluate([record({ time: at(1000) })]);
      expect(now?.outcome).toBe('known');
      expect(sink.alerts).toHaveLength(1);
      expect(sink.repeats.at(-1)).toMatchObject({ alertId: old?.alert?.id, count: 2 });
    });

    it('counts no replayed event: several of an unseen pair in one request give one alert and no repeats', async () => {
      const results = await engine.evaluate([
        record({ time: at(8 * DAY) }),
        record({ time: at(10 * DAY) }),
        record({ time: at(9 * DAY) }),
      ]);
      expect(results.map((r) => r.outcome)).toEqual(['known', 'alerted', 'known']);
      expect(sink.alerts).toHaveLength(1);
      expect(sink.repeats).toEqual([]);
      expect(await createHistory({ store, windowMs: WINDOW }).listIdentity(ARC.appId)).toEqual([]);
    });

    it('takes an event exactly a window old for one older than the window (its sighting would expire at once): not imported', async () => {
      const clock = Date.now();
      const timed = await createEngine({ store, windowMs: WINDOW, outbox: sink.outbox, now: () => clock });
      const [edge, inside] = await timed.evaluate(
        [
          record({ ip: '198.51.100.1', time: new Date(clock - WINDOW) }),
          record({ ip: '198.51.100.2', time: new Date(clock - WINDOW + 1) }),
        ],
        { silent: true },
      );
      expect(edge).toMatchObject({
        outcome: 'ignored',
        reason: expect.stringContaining('older than the history window'),
      });
      expect(inside?.outcome).toBe('known');
    });

    it('imports no event from longer ago than the window, and says why', async () => {
      const [old, recent] = await engine.evaluate(
        [record({ time: at(8 * DAY) }), record({ time: at(DAY) })],
        {
          silent: true,
        },
      );
      expect(old).toMatchObject({
        outcome: 'ignored',
        reason: expect.stringContaining('older than the history window'),
      });
      expect(recent?.outcome).toBe('known');
    });

    it('updates the alert of a pair marked benign with its later sightings', async () => {
      const [first] = await engine.evaluate([record({ time: at(DAY) })]);
      await createHistory({ store, windowMs: WINDOW }).allow({
        appId: ARC.appId,
        ip: ARC.ip,
        by: 'U1',
        reason: 'build agent',
        alertId: first!.alert!.id,
      });
      const [later] = await engine.evaluate([record({ time: at(1000) })]);
      expect(later?.outcome).toBe('allowlisted');
      expect(sink.repeats.at(-1)).toMatchObject({ alertId: first?.alert?.id, count: 2 });
    });

    it('recognises the same event as an Event Hub record and as the ECS document Elastic made of it', async () => {
      const opts = {
        time: new Date(Date.now() - 60_000),
        correlationId: 'aaaaaaaa-0000-4000-8000-000000000001',
      };
      const [rec] = await engine.evaluate([arcEvent('azure-activity-log-record', opts)]);
      const [ecs] = await engine.evaluate([arcEvent('elastic-ecs', opts)]);
      expect(rec?.outcome).toBe('alerted');
      expect(ecs?.outcome).toBe('duplicate');
    });

    it('alerts exactly once for concurrent detections of the same new pair', async () => {
      const events = Array.from({ length: 40 }, (_, i) => record({ time: at(1000 + i) }));
      const results = await Promise.all(events.map((e) => engine.evaluate([e])));
      const outcomes = results.map((r) => r[0]?.outcome);
      expect(outcomes.filter((o) => o === 'alerted')).toHaveLength(1);
      expect(outcomes.filter((o) => o === 'known')).toHaveLength(39);
      const [entry] = await createHistory({ store, windowMs: WINDOW }).listIdentity(ARC.appId);
      expect(entry?.pair.count).toBe(40);
    });

    it('suppresses an allowlisted pair while the entry lasts, and still records the sighting', async () => {
      const history = createHistory({ store, windowMs: WINDOW });
      await history.allow({
        appId: ARC.appId,
        ip: ARC.ip,
        by: 'U1',
        reason: 'CI runner',
        until: Date.now() + DAY,
      });
      const [r] = await engine.evaluate([record({ time: at(1000) })]);
      expect(r?.outcome).toBe('allowlisted');
      expect(r?.reason).toContain('CI runner');
      const [entry] = await history.listIdentity(ARC.appId);
      expect(entry?.pair.count).toBe(1);
      expect(entry?.allow?.by).toBe('U1');
    });

    it('alerts again once an expired allowlist entry has run out', async () => {
      const history = createHistory({ store, windowMs: WINDOW });
      await history.allow({ appId: ARC.appId, ip: ARC.ip, by: 'U1', reason: 'short', until: Date.now() - 1 });
      const [r] = await engine.evaluate([record({ time: at(1000) })]);
      expect(r?.outcome).toBe('alerted');
    });

    it('alerts on an Elastic alert for a pair seen but never alerted (Elastic judged it new), once per alert', async () => {
      const seen = at(DAY);
      await engine.evaluate([record({ time: seen })], { silent: true });
      const alert = arcEvent('elastic-alert', {
        time: at(1000),
        alertUuid: '11111111-2222-4333-8444-555555555555',
      });
      const [first] = await engine.evaluate([alert]);
      expect(first?.outcome).toBe('alerted');
      expect(first?.alert?.reason).toBe('elastic-alert');
      // The alert says that this history saw the pair, and when last.
      expect(first?.alert?.seenHereAt).toBe(seen.getTime());
      const [again] = await engine.evaluate([alert]);
      expect(again?.outcome).toBe('duplicate');
    });

    it('alerts on an Elastic alert of an event older than the window for a pair seen here but never alerted (Elastic judges by arrival)', async () => {
      const seen = at(2 * DAY);
      await engine.evaluate([record({ time: seen })], { silent: true });
      const late = (n: number) =>
        arcEvent('elastic-alert', {
          time: at(8 * DAY + n * 1000),
          correlationId: `eeeeeeee-0000-4000-8000-00000000010${n}`,
        });
      const [first] = await engine.evaluate([late(1)]);
      expect(first?.outcome).toBe('alerted');
      expect(first?.alert?.reason).toBe('elastic-alert');
      expect(first?.alert?.seenHereAt).toBe(seen.getTime());
      // Another late alert of the pair updates nothing and posts nothing.
      const [second] = await engine.evaluate([late(2)]);
      expect(second?.outcome).toBe('known');
      expect(second?.reason).toMatch(/alerted already within the window/);
      // A plain old event of the pair is known, as before.
      const [plain] = await engine.evaluate([record({ time: at(9 * DAY) })]);
      expect(plain?.outcome).toBe('known');
      expect(plain?.reason).toMatch(/older than the history window/);
      expect(sink.alerts).toHaveLength(1);
    });

    it('posts one alert for a live event of a new pair and a late Elastic alert of it in one batch', async () => {
      const ip = '198.51.100.66';
      const results = await engine.evaluate([
        record({ time: at(1000), ip }),
        arcEvent('elastic-alert', {
          time: at(8 * DAY),
          ip,
          correlationId: 'eeeeeeee-0000-4000-8000-000000000301',
        }),
      ]);
      expect(results.map((r) => r.outcome)).toEqual(['alerted', 'known']);
      expect(results[1]?.reason).toMatch(/alerted already within the window/);
      expect(sink.alerts).toHaveLength(1);
    });

    it("stores a late Elastic alert with its pair: the pair's next sightings update that alert", async () => {
      const ip = '198.51.100.67';
      await engine.evaluate([record({ time: at(2 * DAY), ip })], { silent: true });
      const [late] = await engine.evaluate([
        arcEvent('elastic-alert', {
          time: at(8 * DAY),
          ip,
          correlationId: 'eeeeeeee-0000-4000-8000-000000000302',
        }),
      ]);
      expect(late?.outcome).toBe('alerted');
      const [next] = await engine.evaluate([record({ time: at(1000), ip })]);
      expect(next?.outcome).toBe('known');
      expect(sink.repeats.at(-1)?.alertId).toBe(late?.alert?.id);
      // A live Elastic alert of the pair now finds it alerted within the window.
      const [live] = await engine.evaluate([
        arcEvent('elastic-alert', {
          time: at(500),
          ip,
          correlationId: 'eeeeeeee-0000-4000-8000-000000000303',
        }),
      ]);
      expect(live?.outcome).toBe('known');
      expect(sink.alerts).toHaveLength(1);
    });

    it('posts no alert for a late Elastic alert of a pair alerted within the window', async () => {
      const [live] = await engine.evaluate([record({ time: at(1000) })]);
      expect(live?.outcome).toBe('alerted');
      const [late] = await engine.evaluate([
        arcEvent('elastic-alert', {
          time: at(8 * DAY),
          correlationId: 'eeeeeeee-0000-4000-8000-000000000201',
        }),
      ]);
      expect(late?.outcome).toBe('known');
      expect(late?.reason).toMatch(/alerted already within the window/);
      expect(sink.alerts).toHaveLength(1);
    });

    it('says nothing of a sighting here on an Elastic alert for a pair new here too', async () => {
      const [r] = await engine.evaluate([arcEvent('elastic-alert', { time: at(1000) })]);
      expect(r?.alert?.reason).toBe('elastic-alert');
      expect(r?.alert).not.toHaveProperty('seenHereAt');
    });

    it('judges an Elastic alert of another rule on the operation by the history, like any event', async () => {
      /** The alert as another rule (an EQL sequence, no new terms) would raise it. */
      const otherRule = (opts: Parameters<typeof arcEvent>[1]) => {
        type Rule = {
          rule_id?: string;
          name?: string;
          type?: string;
          parameters?: { new_terms_fields?: unknown };
        };
        const alert = arcEvent('elastic-alert', opts) as {
          kibana: { alert: { new_terms?: unknown; rule: Rule } };
          signal: { rule: Rule };
        };
        for (const rule of [alert.kibana.alert.rule, alert.signal.rule]) {
          rule.rule_id = '5e0b0a4c-9e2b-4b61-8d2a-000000000001';
          rule.name = 'Azure Service Principal Sign-In Followed by Arc Cluster Credential Access';
          rule.type = 'eql';
          delete rule.parameters?.new_terms_fields;
        }
        delete alert.kibana.alert.new_terms;
        return alert;
      };
      await engine.evaluate([record({ time: at(DAY) })], { silent: true });
      const [known] = await engine.evaluate([otherRule({ time: at(1000) })]);
      expect(known?.outcome).toBe('known');
      const [fresh] = await engine.evaluate([otherRule({ time: at(2000), ip: '198.51.100.9' })]);
      expect(fresh?.outcome).toBe('alerted');
      expect(fresh?.alert?.reason).toBe('new-pair');
      expect(sink.alerts.map((a) => a.detection.sourceIp)).toEqual(['198.51.100.9']);
    });

    it("counts an event once when Elastic's alert of it follows its record, in either order", async () => {
      const opts = { time: at(60_000), correlationId: 'eeeeeeee-0000-4000-8000-000000000001' };
      const [rec] = await engine.evaluate([arcEvent('azure-activity-log-record', opts)]);
      expect(rec?.outcome).toBe('alerted');
      const [elastic] = await engine.evaluate([arcEvent('elastic-alert', opts)]);
      expect(elastic?.outcome).toBe('duplicate');
      expect(sink.alerts).toHaveLength(1);
      expect(sink.repeats).toHaveLength(0);
      const other = {
        time: at(120_000),
        correlationId: 'eeeeeeee-0000-4000-8000-000000000002',
        ip: '198.51.100.77',
      };
      const [first] = await engine.evaluate([arcEvent('elastic-alert', other)]);
      expect(first?.outcome).toBe('alerted');
      const [second] = await engine.evaluate([arcEvent('azure-activity-log-record', other)]);
      expect(second?.outcome).toBe('duplicate');
      expect(sink.alerts).toHaveLength(2);
      const entries = await createHistory({ store, windowMs: WINDOW }).listIdentity(ARC.appId);
      expect(entries.map((e) => [e.pair.ip, e.pair.count]).sort()).toEqual([
        ['198.51.100.77', 1],
        [ARC.ip, 1],
      ]);
    });

    it('posts no second alert when Elastic alerts on another event of a pair alerted from its record', async () => {
      const [rec] = await engine.evaluate([
        arcEvent('azure-activity-log-record', {
          time: at(60_000),
          correlationId: 'eeeeeeee-0000-4000-8000-000000000003',
        }),
      ]);
      expect(rec?.outcome).toBe('alerted');
      const [elastic] = await engine.evaluate([
        arcEvent('elastic-alert', {
          time: at(90_000),
          correlationId: 'eeeeeeee-0000-4000-8000-000000000004',
        }),
      ]);
      expect(elastic?.outcome).toBe('known');
      expect(elastic?.reason).toMatch(/alerted already/);
      expect(sink.alerts).toHaveLength(1);
      expect(sink.repeats.at(-1)?.alertId).toBe(rec?.alert?.id);
    });

    it('does not alert on an allowlisted Elastic alert', async () => {
      await createHistory({ store, windowMs: WINDOW }).allow({
        appId: ARC.appId,
        ip: ARC.ip,
        by: 'U1',
        reason: 'ok',
      });
      const [r] = await engine.evaluate([arcEvent('elastic-alert', { time: at(1000) })]);
      expect(r?.outcome).toBe('allowlisted');
    });

    it('passes ignored and invalid inputs through with their reasons', async () => {
      const results = await engine.evaluate([
        record({ operation: 'Microsoft.Compute/virtualMachines/write' }),
        record({ ip: null }),
        42,
      ]);
      expect(results.map((r) => r.outcome)).toEqual(['ignored', 'invalid', 'invalid']);
      for (const r of results) expect(r.reason).toBeTruthy();
      expect(sink.alerts).toHaveLength(0);
    });

    it('records without alerting in silent mode (history import)', async () => {
      const [r] = await engine.evaluate([record({ time: at(DAY) })], { silent: true });
      expect(r?.outcome).toBe('known');
      const [next] = await engine.evaluate([record({ time: at(1000) })]);
      expect(next?.outcome).toBe('known');
      expect(sink.alerts).toHaveLength(0);
    });
  },
);

describe('engine: an alert holds its pair back for a window', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** An engine on `backend` whose clock (Date, the store's too) stands still until set. */
  async function frozenEngine(backend: string) {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.now();
    const store = await openStateStore(backends[backend]!());
    const sink = collectingOutbox();
    const engine = await createEngine({ store, windowMs: WINDOW, outbox: sink.outbox });
    return { start, store, sink, engine };
  }

  it.each(['memory', 'sqlite'])(
    'on %s, a pair alerted from a late event keeps its record while the alert holds it back: a sighting then updates the alert',
    async (backend) => {
      const { start, store, sink, engine } = await frozenEngine(backend);
      // Delivered 6 days 23 hours late: within the window for one more hour.
      const [late] = await engine.evaluate([record({ time: new Date(start - WINDOW + 3600_000) })]);
      expect(late?.outcome).toBe('alerted');
      // Two hours on, the event is out of the window, but the alert holds the pair back for a
      // window: the sighting updates it, and /arc-history lists it.
      vi.setSystemTime(start + 2 * 3600_000);
      const [back] = await engine.evaluate([record({ time: new Date(Date.now() - 1000) })]);
      expect(back?.outcome).toBe('known');
      expect(sink.repeats.at(-1)).toMatchObject({ alertId: late?.alert?.id, count: 2 });
      const [entry] = await createHistory({ store, windowMs: WINDOW }).listIdentity(ARC.appId);
      expect(entry?.pair.count).toBe(2);
      // A window after both, the pair is new again.
      vi.setSystemTime(start + 2 * 3600_000 + WINDOW + 60_000);
      const [later] = await engine.evaluate([record({ time: new Date(Date.now() - 1000) })]);
      expect(later?.outcome).toBe('alerted');
      expect(sink.alerts).toHaveLength(2);
      await store.close();
    },
  );

  it.each(['memory', 'sqlite'])(
    'on %s, a late Elastic alert of the pair is held back to the millisecond before a window from the alert, and alerted from then',
    async (backend) => {
      const { start, store, sink, engine } = await frozenEngine(backend);
      const [live] = await engine.evaluate([record({ time: new Date(start - 1000) })]);
      expect(live?.outcome).toBe('alerted');
      // A sighting an hour on keeps the pair in the history past a window from the alert.
      vi.setSystemTime(start + 3600_000);
      const [later] = await engine.evaluate([record({ time: new Date(start + 3600_000 - 1000) })]);
      expect(later?.outcome).toBe('known');
      const late = (n: number) =>
        arcEvent('elastic-alert', {
          time: new Date(start - 2 * 3600_000),
          correlationId: `eeeeeeee-0000-4000-8000-00000000050${n}`,
        });
      vi.setSystemTime(start + WINDOW - 1);
      const [held] = await engine.evaluate([late(1)]);
      expect(held).toMatchObject({
        outcome: 'known',
        reason: 'this pair was alerted already within the window',
      });
      vi.setSystemTime(start + WINDOW);
      const [again] = await engine.evaluate([late(2)]);
      expect(again?.outcome).toBe('alerted');
      expect(sink.alerts).toHaveLength(2);
      await store.close();
    },
  );
});

describe('engine: how long a delivered event is remembered', () => {
  it('keeps its claim for a window and a day (a redelivery later than that is a duplicate by its time alone)', async () => {
    const file = path.join(dir, 'dedup-ttl.db');
    const store = await openStateStore(`sqlite://${file}`);
    try {
      const engine = await createEngine({ store, windowMs: WINDOW, outbox: collectingOutbox().outbox });
      const before = Date.now();
      await engine.evaluate([record({ time: at(60_000) })]);
      const db = new DatabaseSync(file);
      const rows = db.prepare("SELECT expires FROM arc_claims WHERE key LIKE '%:event-%'").all() as Array<{
        expires: number;
      }>;
      db.close();
      expect(rows).toHaveLength(1);
      expect(rows[0]!.expires - before).toBeGreaterThanOrEqual(WINDOW + DAY);
      expect(rows[0]!.expires - before).toBeLessThan(WINDOW + DAY + 60_000);
    } finally {
      await store.close();
    }
  });
});

describe('engine: learning period', () => {
  it('records without alerting during the learning period after a first start on an empty history, up to the millisecond before its end', async () => {
    const store = await openStateStore('memory://');
    const sink = collectingOutbox();
    let clock = Date.now();
    const engine = await createEngine({
      store,
      windowMs: WINDOW,
      outbox: sink.outbox,
      learningPeriodMs: DAY,
      now: () => clock,
    });
    expect(engine.learningUntil).toBe(clock + DAY);
    const [r] = await engine.evaluate([record({ ip: '198.51.100.9', time: new Date(clock - 1000) })]);
    expect(r?.outcome).toBe('known');
    expect(r?.reason).toMatch(/learning period/);

    // A restart keeps the period's end instead of opening a new one.
    const restarted = await createEngine({
      store,
      windowMs: WINDOW,
      outbox: sink.outbox,
      learningPeriodMs: DAY,
      now: () => clock,
    });
    expect(restarted.learningUntil).toBe(engine.learningUntil);

    clock = engine.learningUntil! - 1;
    const [last] = await restarted.evaluate([record({ ip: '198.51.100.11', time: new Date(clock - 1000) })]);
    expect(last?.reason).toMatch(/learning period/);
    // At its end, the period is over.
    clock = engine.learningUntil!;
    const [after] = await restarted.evaluate([record({ ip: '198.51.100.10', time: new Date(clock - 1000) })]);
    expect(after?.outcome).toBe('alerted');
    await store.close();
  });

  it('ends a running learning period at a start with learningPeriodMs 0, for the engines that read its end again', async () => {
    const store = await openStateStore('memory://');
    const sink = collectingOutbox();
    let clock = Date.now();
    const start = (learningPeriodMs: number | undefined) =>
      createEngine({
        store,
        windowMs: WINDOW,
        outbox: sink.outbox,
        now: () => clock,
        ...(learningPeriodMs === undefined ? {} : { learningPeriodMs }),
      });
    const running = await start(DAY);
    expect(await running.refreshLearning()).toBe(false);
    clock += 60_000;
    const ending = await start(0);
    expect(ending.learningEndedHere).toBe(true);
    expect(ending.learningUntil).toBe(clock);
    const [fresh] = await ending.evaluate([record({ ip: '198.51.100.20', time: new Date(clock - 1000) })]);
    expect(fresh?.outcome).toBe('alerted');
    // The running engine learns until it reads the end again.
    const [before] = await running.evaluate([record({ ip: '198.51.100.21', time: new Date(clock - 1000) })]);
    expect(before?.reason).toMatch(/learning period/);
    expect(await running.refreshLearning()).toBe(true);
    expect(running.learningUntil).toBe(clock);
    const [after] = await running.evaluate([record({ ip: '198.51.100.22', time: new Date(clock - 1000) })]);
    expect(after?.outcome).toBe('alerted');
    // Later starts, with or without a period, find it ended; 0 again ends nothing.
    for (const period of [DAY, undefined, 0]) {
      const later = await start(period);
      expect(later.learningEndedHere).toBe(false);
      expect(later.learningUntil ?? clock).toBeLessThanOrEqual(clock);
    }
    await store.close();
  });

  it('keeps learning when the store lost its data (no end stored is no news), and its marks written again keep an early end', async () => {
    const store = await openStateStore('memory://');
    const sink = collectingOutbox();
    let clock = Date.now();
    const start = (learningPeriodMs: number) =>
      createEngine({ store, windowMs: WINDOW, outbox: sink.outbox, now: () => clock, learningPeriodMs });
    const running = await start(DAY);
    const until = running.learningUntil!;
    // The store loses its data (a Redis restarted without persistence).
    await store.delete('meta:learning-until');
    expect(await running.refreshLearning()).toBe(false);
    expect(running.learningUntil).toBe(until);
    // Its marks are written again: the period runs on for every replica.
    await running.markInUse();
    expect(await store.get('meta:learning-until')).toBe(until);
    // Another start ends it; marks written again by a replica that has not read the end since keep it ended.
    clock += 60_000;
    await start(0);
    await running.markInUse();
    expect(await store.get('meta:learning-until')).toBe(clock);
    expect(await running.refreshLearning()).toBe(true);
    await store.close();
  });

  it('never lengthens a running learning period: a later end stored meanwhile (a store emptied and opened again) is no news', async () => {
    const store = await openStateStore('memory://');
    const sink = collectingOutbox();
    let clock = Date.now();
    const running = await createEngine({
      store,
      windowMs: WINDOW,
      outbox: sink.outbox,
      now: () => clock,
      learningPeriodMs: DAY,
    });
    const until = running.learningUntil!;
    await store.set('meta:learning-until', until + DAY);
    expect(await running.refreshLearning()).toBe(false);
    expect(running.learningUntil).toBe(until);
    clock = until;
    const [after] = await running.evaluate([record({ ip: '198.51.100.30', time: new Date(clock - 1000) })]);
    expect(after?.outcome).toBe('alerted');
    await store.close();
  });

  it('gives two replicas starting at once on an empty history the same learning period', async () => {
    const store = await openStateStore('memory://');
    const sink = collectingOutbox();
    const start = () => createEngine({ store, windowMs: WINDOW, outbox: sink.outbox, learningPeriodMs: DAY });
    const [a, b] = await Promise.all([start(), start()]);
    expect(a.learningUntil).toBeGreaterThan(Date.now());
    expect(b.learningUntil).toBe(a.learningUntil);
    await store.close();
  });

  it('opens the learning period on a history that only ever saw events older than the window', async () => {
    const store = await openStateStore('memory://');
    const sink = collectingOutbox();
    const plain = await createEngine({ store, windowMs: WINDOW, outbox: sink.outbox });
    const [old] = await plain.evaluate([record({ time: at(30 * DAY) })]);
    expect(old?.outcome).toBe('alerted');
    const engine = await createEngine({
      store,
      windowMs: WINDOW,
      outbox: sink.outbox,
      learningPeriodMs: DAY,
    });
    expect(engine.learningUntil).toBeGreaterThan(Date.now());
    await store.close();
  });

  it('ends learning when the stored end is no finite time (as a huge period once gave)', async () => {
    for (const stored of [8.64e15 + 1, Number.MAX_VALUE, 'soon']) {
      const store = await openStateStore('memory://');
      const sink = collectingOutbox();
      await createEngine({ store, windowMs: WINDOW, outbox: sink.outbox, learningPeriodMs: DAY });
      await store.set('meta:learning-until', stored);
      const engine = await createEngine({
        store,
        windowMs: WINDOW,
        outbox: sink.outbox,
        learningPeriodMs: DAY,
      });
      expect(engine.learningUntil, String(stored)).toBeUndefined();
      const [r] = await engine.evaluate([record({ time: at(60_000) })]);
      expect(r?.outcome).toBe('alerted');
      await store.close();
    }
  });

  it('does not open a learning period when the history already holds sightings', async () => {
    const store = await openStateStore('memory://');
    const sink = collectingOutbox();
    const plain = await createEngine({ store, windowMs: WINDOW, outbox: sink.outbox });
    await plain.evaluate([record({ time: at(DAY) })], { silent: true });
    const engine = await createEngine({
      store,
      windowMs: WINDOW,
      outbox: sink.outbox,
      learningPeriodMs: DAY,
    });
    expect(engine.learningUntil).toBeUndefined();
    await store.close();
  });
});

describe('engine: failures before the alert is stored', () => {
  it('gives the event and the pair back when the outbox cannot store the alert, so the retry alerts', async () => {
    const store = await openStateStore('memory://');
    let failures = 1;
    const stored: AlertRecord[] = [];
    const engine = await createEngine({
      store,
      windowMs: WINDOW,
      outbox: {
        async add(alerts) {
          if (failures-- > 0) throw new Error('outbox unavailable');
          stored.push(...alerts);
        },
      },
    });
    const event = record({ time: at(1000) });
    await expect(engine.evaluate([event])).rejects.toThrow(/outbox unavailable/);
    const [retry] = await engine.evaluate([event]);
    expect(retry?.outcome).toBe('alerted');
    expect(stored).toHaveLength(1);
    await store.close();
  });
});

describe('engine: a delivery that stopped after claiming the event', () => {
  /** A store holding only the claim of `event`, as a process that claimed it and stopped leaves it. */
  async function claimedElsewhere(event: Record<string, unknown>) {
    const store = await openStateStore('memory://');
    const sink = collectingOutbox();
    const engine = await createEngine({ store, windowMs: WINDOW, outbox: sink.outbox });
    const [probe] = await (
      await createEngine({ store: await openStateStore('memory://'), windowMs: WINDOW, outbox: sink.outbox })
    ).evaluate([structuredClone(event)]);
    const { group, key } = eventClaim({ detection: probe!.detection! });
    expect(await store.claimInGroups([{ group, keys: [key] }], DAY)).toEqual([[true]]);
    sink.alerts.length = 0;
    return { store, sink, engine };
  }

  it('evaluates the retry instead of calling it a duplicate when nothing of the first delivery was stored', async () => {
    const event = record({ time: at(1000) });
    const { store, sink, engine } = await claimedElsewhere(event);
    const [retry] = await engine.evaluate([event]);
    expect(retry?.outcome).toBe('alerted');
    const [again] = await engine.evaluate([event]);
    expect(again?.outcome).toBe('duplicate');
    expect(sink.alerts).toHaveLength(1);
    await store.close();
  });

  /**
   * Two processes on one SQLite file (two connections): `a`'s writes of pairs wait for `release`,
   * as a first delivery that took its claims and takes a while to write.
   */
  async function replicasWithSlowWriter() {
    const file = `sqlite://${path.join(dir, `replicas-${++dbs}.db`)}`;
    const store = await openStateStore(file);
    const other = await openStateStore(file);
    let release!: () => void;
    const writing = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reached!: () => void;
    const writeReached = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const slow = new Proxy(store, {
      get: (target, name) => {
        if (name === 'setManyIfUnchanged') {
          return async (entries: Parameters<StateStore['setManyIfUnchanged']>[0]) => {
            reached();
            await writing;
            return store.setManyIfUnchanged(entries);
          };
        }
        const value = Reflect.get(target, name, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const sinkA = collectingOutbox();
    const sinkB = collectingOutbox();
    return {
      a: await createEngine({ store: slow, windowMs: WINDOW, outbox: sinkA.outbox }),
      b: await createEngine({ store: other, windowMs: WINDOW, outbox: sinkB.outbox }),
      sinkA,
      sinkB,
      release,
      /** Resolves once `a` has come to write its pairs. */
      writeReached,
      file,
      close: async () => {
        await other.close();
        await store.close();
      },
    };
  }

  it.each([
    ['', false],
    [', also when an older event of the pair was stored meanwhile', true],
  ])(
    'calls an event a duplicate while another process is still storing its first delivery%s',
    async (_, olderStored) => {
      const { a, b, sinkA, sinkB, release, close } = await replicasWithSlowWriter();
      const event = record({ time: at(1000) });
      const first = a.evaluate([structuredClone(event)]);
      await vi.waitFor(() => expect(sinkA.alerts).toHaveLength(1));
      if (olderStored) {
        // Another event of the pair, a minute older, stored by the second process: the pair is
        // stored, last seen before the event whose first delivery is still being written.
        expect((await b.evaluate([record({ time: at(60_000) })]))[0]?.outcome).toBe('known');
      }
      const second = b.evaluate([structuredClone(event)]);
      setTimeout(release, 100);
      expect((await first)[0]?.outcome).toBe('alerted');
      expect((await second)[0]?.outcome).toBe('duplicate');
      expect(sinkB.alerts).toEqual([]);
      await close();
    },
  );

  /**
   * An engine over the memory store, taken for one across the network, whose `hooks` wrap calls
   * (by name) to the store.
   */
  async function engineOverFlakyStore(
    hooks: Record<string, (call: () => Promise<unknown>) => Promise<unknown>>,
  ) {
    const store = await openStateStore('memory://');
    const flaky = new Proxy(store, {
      get: (target, name) => {
        if (name === 'acrossNetwork') return true;
        const value = Reflect.get(target, name, target);
        const hook = typeof name === 'string' ? hooks[name] : undefined;
        if (typeof value !== 'function') return value;
        if (!hook) return value.bind(target);
        return (...args: unknown[]) => hook(() => value.apply(target, args));
      },
    });
    const sink = collectingOutbox();
    return {
      store,
      sink,
      engine: await createEngine({ store: flaky, windowMs: WINDOW, outbox: sink.outbox }),
    };
  }

  it("gives the events' claims back once the store answers again when the first tries fail (a dropped connection): the retry is counted, not a duplicate", async () => {
    let armed = false;
    let writes = 0;
    let releases = 0;
    const { store, sink, engine } = await engineOverFlakyStore({
      // The pairs' write fails once; so do the first two tries to give each claim back.
      setManyIfUnchanged: (call) =>
        armed && ++writes === 1 ? Promise.reject(new Error('connection dropped')) : call(),
      releaseInGroup: (call) => (++releases <= 2 ? Promise.reject(new Error('client is offline')) : call()),
    });
    expect((await engine.evaluate([record({ time: at(60_000) })]))[0]?.outcome).toBe('alerted');
    armed = true;
    const event = record({ time: at(1000) });
    await expect(engine.evaluate([structuredClone(event)])).rejects.toThrow(/connection dropped/);
    expect(releases).toBe(3);
    expect((await engine.evaluate([structuredClone(event)]))[0]?.outcome).toBe('known');
    expect(sink.alerts).toHaveLength(1);
    expect(await store.get<StoredPair>(pairKey(ARC.appId, ARC.ip))).toMatchObject({ count: 2 });
    await store.close();
  });

  it("keeps the claim of an event whose alert the outbox holds when the batch fails after: the retry is that alert's, and its pair is tied to it", async () => {
    let armed = true;
    const { store, sink, engine } = await engineOverFlakyStore({
      setManyIfUnchanged: (call) => {
        if (!armed) return call();
        armed = false;
        return Promise.reject(new Error('connection dropped'));
      },
    });
    const event = record({ time: at(1000) });
    await expect(engine.evaluate([structuredClone(event)])).rejects.toThrow(/connection dropped/);
    expect(sink.alerts).toHaveLength(1);
    // The owner's retry: the same alert again (an outbox that holds it already posts it once).
    expect((await engine.evaluate([structuredClone(event)]))[0]?.outcome).toBe('alerted');
    expect(sink.alerts.map((a) => a.id)).toEqual([sink.alerts[0]!.id, sink.alerts[0]!.id]);
    expect(await store.get<StoredPair>(pairKey(ARC.appId, ARC.ip))).toMatchObject({
      count: 1,
      alertId: sink.alerts[0]!.id,
    });
    await store.close();
  });

  it("leaves the claims of a failed claim call as they are: a redelivery's failure never frees the claim of the delivery that counted the event", async () => {
    let armed = false;
    const { store, sink, engine } = await engineOverFlakyStore({
      // The store runs the claim call (it finds the claim held), and the connection drops before its answer.
      claimInGroups: async (call) => {
        if (!armed) return call();
        armed = false;
        await call();
        throw new Error('connection dropped');
      },
    });
    const event = record({ time: at(60_000) });
    expect((await engine.evaluate([structuredClone(event)]))[0]?.outcome).toBe('alerted');
    expect((await engine.evaluate([record({ time: at(1000) })]))[0]?.outcome).toBe('known');
    armed = true;
    await expect(engine.evaluate([structuredClone(event)])).rejects.toThrow(/connection dropped/);
    expect((await engine.evaluate([structuredClone(event)]))[0]?.outcome).toBe('duplicate');
    expect(sink.alerts).toHaveLength(1);
    expect(await store.get<StoredPair>(pairKey(ARC.appId, ARC.ip))).toMatchObject({ count: 2 });
    await store.close();
  });

  it("keeps the claims of the events whose pairs were stored when the batch fails after them: the sender's retry counts only the others", async () => {
    const file = `sqlite://${path.join(dir, `partial-${++dbs}.db`)}`;
    const store = await openStateStore(file);
    const other = await openStateStore(file);
    const [ipA, ipB] = ['198.51.100.1', '198.51.100.2'];
    let rounds = 0;
    let armed = false;
    // The batch's first write lands for pair A and loses B to another process, which writes B
    // just before; its second round fails (the store went away).
    const failing = new Proxy(store, {
      get: (target, name) => {
        if (name === 'setManyIfUnchanged') {
          return async (entries: Parameters<StateStore['setManyIfUnchanged']>[0]) => {
            if (!armed || !entries.some((e) => e.key === pairKey(ARC.appId, ipB))) {
              return store.setManyIfUnchanged(entries);
            }
            if (++rounds === 2) throw new StoreError('STORE_UNREACHABLE', 'The sqlite store failed: gone');
            if (rounds === 1) {
              const b = await other.get<StoredPair>(pairKey(ARC.appId, ipB));
              await other.set(pairKey(ARC.appId, ipB), { ...b!, count: b!.count + 1, rev: 'other-1' });
            }
            return store.setManyIfUnchanged(entries);
          };
        }
        const value = Reflect.get(target, name, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const sink = collectingOutbox();
    const engine = await createEngine({ store: failing, windowMs: WINDOW, outbox: sink.outbox });
    try {
      // Both pairs known (one sighting each), then a batch with one more sighting of each.
      await engine.evaluate([record({ ip: ipA, time: at(DAY) }), record({ ip: ipB, time: at(DAY) })]);
      const batch = [record({ ip: ipA, time: at(1000) }), record({ ip: ipB, time: at(1000) })];
      armed = true;
      await expect(engine.evaluate(structuredClone(batch))).rejects.toThrow(/gone/);
      const retry = await engine.evaluate(structuredClone(batch));
      expect(retry.map((r) => r.outcome)).toEqual(['duplicate', 'known']);
      const [a, b] = await other.getMany<StoredPair>([pairKey(ARC.appId, ipA), pairKey(ARC.appId, ipB)]);
      // A: its first sighting and the batch's, once; B: its first, the other process's and the batch's.
      expect([a?.count, b?.count]).toEqual([2, 3]);
    } finally {
      await other.close();
      await store.close();
    }
  });

  it("merges a pair another process wrote while this one was writing it: every sighting counted, the later last seen kept, the alert's message told", async () => {
    const { a, b, sinkA, sinkB, release, writeReached, file, close } = await replicasWithSlowWriter();
    const [first, middle, last] = [at(3 * DAY), at(2 * DAY), at(1000)];
    expect((await b.evaluate([record({ time: first })]))[0]?.outcome).toBe('alerted');
    // `a` reads the pair (one sighting) and comes to write its own of two days ago...
    const slow = a.evaluate([record({ time: middle })]);
    await writeReached;
    // ...while `b` stores one of a second ago over the same record.
    expect((await b.evaluate([record({ time: last })]))[0]?.outcome).toBe('known');
    release();
    expect((await slow)[0]?.outcome).toBe('known');
    const reader = await openStateStore(file);
    const pair = await reader.get<StoredPair>(pairKey(ARC.appId, ARC.ip));
    expect(pair).toMatchObject({
      count: 3,
      firstSeen: first.getTime(),
      lastSeen: last.getTime(),
      alertId: sinkB.alerts[0]?.id,
    });
    expect(pair?.spans.flat()).toEqual(
      expect.arrayContaining([first.getTime(), middle.getTime(), last.getTime()]),
    );
    // The alert's message is told the three sightings, not the two `a` saw.
    expect(sinkA.repeats.at(-1)).toEqual({
      alertId: sinkB.alerts[0]?.id,
      count: 3,
      lastSeen: last.getTime(),
    });
    await reader.close();
    await close();
  });

  it("calls an event a duplicate when its alert is in the outbox, although another replica's write of its pair overtook the alert's", async () => {
    const store = await openStateStore('memory://');
    const sink = collectingOutbox();
    const outbox: Outbox = {
      add: sink.outbox.add,
      holds: async (ids) => ids.map((id) => sink.alerts.some((a) => a.id === id)),
    };
    const engine = await createEngine({ store, windowMs: WINDOW, outbox });
    const event = record({ time: at(1000) });
    const [first] = await engine.evaluate([structuredClone(event)]);
    expect(first?.outcome).toBe('alerted');
    // Another replica read the pair before that alert and wrote it back after: without it.
    const key = pairKey(ARC.appId, ARC.ip);
    const { alertId: _, alertedAt: __, ...overtaken } = (await store.get<Record<string, unknown>>(key))!;
    await store.set(key, overtaken);
    const [again] = await engine.evaluate([structuredClone(event)]);
    expect(again?.outcome).toBe('duplicate');
    expect(sink.alerts).toHaveLength(1);
    // The pair is tied to its alert again: a later sighting updates the alert's message.
    expect((await store.get<StoredPair>(key))?.alertId).toBe(first?.alert?.id);
    const [later] = await engine.evaluate([record({ time: at(500) })]);
    expect(later?.outcome).toBe('known');
    expect(sink.repeats.at(-1)).toMatchObject({ alertId: first?.alert?.id });
    await store.close();
  });

  it('calls an event claimed elsewhere a duplicate once it is within minutes of the window’s end (replicas’ clocks differ)', async () => {
    // Another replica claimed it and, by its clock, judged it a replay: it stores no sighting.
    const event = record({ time: at(WINDOW - 60_000) });
    const { store, sink, engine } = await claimedElsewhere(event);
    const [r] = await engine.evaluate([event]);
    expect(r?.outcome).toBe('duplicate');
    expect(sink.alerts).toEqual([]);
    await store.close();
  });
});

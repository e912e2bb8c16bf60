import { createClient, createKeyv } from '@keyv/redis';
import { afterAll, expect, it, vi } from 'vitest';
import type { Detection } from '../../src/core/detection.ts';
import { createEngine } from '../../src/core/engine.ts';
import { eventClaim } from '../../src/core/event-claims.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { parseStoreUrl } from '../../src/store/parse-store-url.ts';
import { openRedisStateStore } from '../../src/store/redis-state-store.ts';
import { arcRecord, freshAppId, postIngest, startTestApp } from '../support/http-app.ts';
import { tcpProxy } from '../support/tcp-proxy.ts';
import {
  describeWithService,
  expectKeyvCompatible,
  expectRecoversFromFrozenConnection,
  raceClaimsAcrossProcesses,
  redisTestUser,
  sleep,
  sorted,
  uniqueNamespace,
} from './helpers.ts';
import { describeStateStoreContract } from './state-store-contract.ts';

describeWithService('redis:// state store', 'TEST_REDIS_URL', (url) => {
  const namespaces: string[] = [];
  const ns = (tag: string): string => {
    const namespace = uniqueNamespace(tag);
    namespaces.push(namespace);
    return namespace;
  };

  afterAll(async () => {
    // Remove every key this file wrote: values `<ns>::…`, claims `<ns>:claim::…`, sets `<ns>:set::…`.
    const client = createClient({ url });
    await client.connect();
    try {
      for (const namespace of namespaces) {
        for await (const keys of client.scanIterator({ MATCH: `${namespace}:*`, COUNT: 1000 })) {
          if (keys.length > 0) await client.unlink(keys);
        }
      }
    } finally {
      await client.close();
    }
  });

  describeStateStoreContract('redis', (namespace) => {
    namespaces.push(namespace);
    return openStateStore(url, { namespace });
  });

  it('warns when Redis evicts keys under memory pressure (any maxmemory-policy but noeviction)', async () => {
    const admin = createClient({ url });
    await admin.connect();
    const before = (await admin.configGet('maxmemory-policy'))['maxmemory-policy'] ?? 'noeviction';
    try {
      await admin.configSet('maxmemory-policy', 'volatile-lru');
      const evicting = await openStateStore(url, { namespace: ns('evict') });
      await admin.configSet('maxmemory-policy', 'noeviction');
      const keeping = await openStateStore(url, { namespace: ns('keep') });
      try {
        expect(evicting.warnings?.()).toEqual([
          expect.stringMatching(
            /^Redis evicts keys when its memory is full \(maxmemory-policy volatile-lru\).*set maxmemory-policy to noeviction/,
          ),
        ]);
        expect(keeping.warnings?.()).toEqual([]);
      } finally {
        await evicting.close();
        await keeping.close();
      }
    } finally {
      await admin.configSet('maxmemory-policy', before);
      await admin.close();
    }
  });

  it('notices an eviction policy switched on or off while it runs, when asked for its warnings again', async () => {
    const admin = createClient({ url });
    await admin.connect();
    const before = (await admin.configGet('maxmemory-policy'))['maxmemory-policy'] ?? 'noeviction';
    const location = parseStoreUrl(url);
    if (location.kind !== 'redis') throw new Error('TEST_REDIS_URL is no redis:// URL');
    try {
      await admin.configSet('maxmemory-policy', 'noeviction');
      const store = await openRedisStateStore({
        ...location,
        namespace: ns('recheck'),
        evictionRecheckMs: 50,
      });
      try {
        expect(store.warnings?.()).toEqual([]);
        await admin.configSet('maxmemory-policy', 'allkeys-lru');
        // Each call after the interval starts one background read; a later call shows its answer.
        await vi.waitFor(
          () => {
            expect(store.warnings?.()).toEqual([expect.stringContaining('(maxmemory-policy allkeys-lru)')]);
          },
          { timeout: 3000, interval: 60 },
        );
        await admin.configSet('maxmemory-policy', 'noeviction');
        await vi.waitFor(
          () => {
            expect(store.warnings?.()).toEqual([]);
          },
          { timeout: 3000, interval: 60 },
        );
      } finally {
        await store.close();
      }
    } finally {
      await admin.configSet('maxmemory-policy', before);
      await admin.close();
    }
  });

  it("names Redis's refusal of the password when a reconnection fails, not only that the client is offline", async () => {
    const namespace = ns('wrongpass');
    const redis = await redisTestUser(url, 'wrongpass', namespace);
    const store = await openStateStore(redis.url, { namespace });
    try {
      await store.ping();
      // The password is rotated and the connection dropped: the client's reconnections are refused.
      await redis.setRules('resetpass', '>second-secret');
      await redis.admin.sendCommand(['CLIENT', 'KILL', 'USER', redis.user]);
      await vi.waitFor(
        async () => {
          const error = await store.claim('k', 1000).catch((e: unknown) => e as Error);
          expect(String((error as Error)?.message)).toMatch(/last connection error: .*WRONGPASS/);
        },
        { timeout: 5000, interval: 100 },
      );
    } finally {
      await store.close();
      await redis.dispose();
    }
  });

  it('writes values that @keyv/redis on its own reads, under <namespace>::<key>', async () => {
    const namespace = ns('compat');
    const store = await openStateStore(url, { namespace });
    const keyv = createKeyv(url, { namespace });
    try {
      expect(store.kind).toBe('redis');
      await expectKeyvCompatible(store, keyv);
    } finally {
      await keyv.disconnect();
      await store.close();
    }
  });

  it('sets a Redis expiry on values and claims with a TTL, none on those without', async () => {
    const namespace = ns('ttl');
    const store = await openStateStore(url, { namespace });
    const client = createClient({ url });
    await client.connect();
    try {
      await store.set('v-ttl', 1, 60_000);
      await store.set('v-none', 1);
      await store.claim('c-ttl', 60_000);
      await store.claim('c-none');
      expect(await client.pTTL(`${namespace}::v-ttl`)).toBeGreaterThan(0);
      expect(await client.pTTL(`${namespace}::v-none`)).toBe(-1);
      expect(await client.pTTL(`${namespace}:claim::c-ttl`)).toBeGreaterThan(0);
      expect(await client.pTTL(`${namespace}:claim::c-none`)).toBe(-1);
    } finally {
      await client.close();
      await store.close();
    }
  });

  it('counts live members again after Redis forgot its scripts (restart, SCRIPT FLUSH)', async () => {
    const namespace = ns('script');
    const store = await openStateStore(url, { namespace });
    const client = createClient({ url });
    await client.connect();
    try {
      await store.set('pair:a:1', 1);
      await store.addMembers('ident:a', ['1', '2']);
      const query = [{ set: 'ident:a', valuePrefix: 'pair:a:' }];
      expect(await store.countLiveMembers(query, 10)).toEqual([{ count: 1, sampled: false }]);
      await client.scriptFlush();
      await store.addMembers('ident:a', ['2']);
      expect(await store.countLiveMembers(query, 10)).toEqual([{ count: 1, sampled: false }]);
      expect(await store.members('ident:a')).toEqual(['1']);
    } finally {
      await client.close();
      await store.close();
    }
  });

  it('gives back the grouped claims a call took when another part of it fails', async () => {
    const namespace = ns('groups');
    const store = await openStateStore(url, { namespace });
    const client = createClient({ url });
    await client.connect();
    try {
      // A key of the wrong type where a group's hash should be: HSETNX fails for that group only.
      await client.set(`${namespace}:claims::broken`, 'not a hash');
      await expect(
        store.claimInGroups(
          [
            { group: 'fine', keys: ['a', 'b'] },
            { group: 'broken', keys: ['c'] },
          ],
          60_000,
        ),
      ).rejects.toThrow(/WRONGTYPE/);
      expect(await client.hLen(`${namespace}:claims::fine`)).toBe(0);
      expect(await store.claimInGroups([{ group: 'fine', keys: ['a', 'b'] }], 60_000)).toEqual([
        [true, true],
      ]);
      expect(await client.pTTL(`${namespace}:claims::fine`)).toBeGreaterThan(50_000);
    } finally {
      await client.close();
      await store.close();
    }
  });

  it('claims a large batch in chunks, all or nothing: when one chunk fails, the others give theirs back', async () => {
    const namespace = ns('chunks');
    const store = await openStateStore(url, { namespace });
    const client = createClient({ url });
    await client.connect();
    try {
      const engine = await createEngine({ store, windowMs: 7 * 86_400_000, outbox: { add: async () => {} } });
      const hourAgo = Date.now() - 3_600_000;
      const appId = freshAppId();
      // 1,200 events in the past hour, then 300 now: the last ones land in a chunk of their own.
      const events = [
        ...Array.from({ length: 1200 }, () => arcRecord({ appId, time: new Date(hourAgo) })),
        ...Array.from({ length: 300 }, () => arcRecord({ appId, time: new Date() })),
      ];
      // The pair is stored already, so a claim left behind would turn its event into a duplicate.
      expect((await engine.evaluate([arcRecord({ appId })]))[0]?.outcome).toBe('alerted');
      const { group } = eventClaim({ detection: {} as Detection, eventMs: Date.now() });
      await client.set(`${namespace}:claims::${group}`, 'not a hash');
      await expect(engine.evaluate(events)).rejects.toThrow(/WRONGTYPE/);
      await client.del(`${namespace}:claims::${group}`);
      // Nothing stayed claimed: the retry is evaluated, not called a duplicate.
      const outcomes = (await engine.evaluate(events)).map((r) => r.outcome);
      expect(outcomes.every((o) => o === 'known')).toBe(true);
      expect((await engine.evaluate(events)).every((r) => r.outcome === 'duplicate')).toBe(true);
    } finally {
      await client.close();
      await store.close();
    }
  });

  it("gives an identity's index an expiry two windows long, renewed as its pairs are written, and leaves sets added without one as they are", async () => {
    const namespace = ns('index-ttl');
    const store = await openStateStore(url, { namespace });
    const client = createClient({ url });
    await client.connect();
    const day = 86_400_000;
    try {
      const engine = await createEngine({ store, windowMs: day, outbox: { add: async () => {} } });
      const appId = freshAppId();
      expect((await engine.evaluate([arcRecord({ appId, ip: '192.0.2.10' })]))[0]?.outcome).toBe('alerted');
      const key = `${namespace}:set::ident:${appId.toLowerCase()}`;
      expect(await client.sMembers(key)).toEqual(['192.0.2.10']);
      const ttl = await client.pTTL(key);
      expect(ttl).toBeGreaterThan(2 * day - 60_000);
      expect(ttl).toBeLessThanOrEqual(2 * day);
      // A set from before (no expiry) gets one; a shorter one never cuts a longer one.
      await client.sAdd(`${namespace}:set::old`, 'x');
      await store.addToSets([['old', 'y']], 60_000);
      expect(await client.pTTL(`${namespace}:set::old`)).toBeGreaterThan(50_000);
      await store.addToSets([['old', 'z']], 1_000);
      expect(await client.pTTL(`${namespace}:set::old`)).toBeGreaterThan(50_000);
      expect(await store.members('old')).toEqual(expect.arrayContaining(['x', 'y', 'z']));
      // Without a TTL (the allowlist's index): no expiry.
      await store.addToSets([['allow:a', '192.0.2.1']]);
      expect(await client.pTTL(`${namespace}:set::allow:a`)).toBe(-1);
    } finally {
      await client.close();
      await store.close();
    }
  });

  it("indexes a batch of more than 8,000 new IPs of one identity with a TTL (Lua's unpack takes at most 7,999)", async () => {
    const namespace = ns('index-many');
    const store = await openStateStore(url, { namespace });
    const client = createClient({ url });
    await client.connect();
    try {
      const ips = Array.from({ length: 12_000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
      await store.addToSets(
        ips.map((ip) => ['ident:many', ip] as const),
        60_000,
      );
      expect(await client.sCard(`${namespace}:set::ident:many`)).toBe(12_000);
      expect(await client.pTTL(`${namespace}:set::ident:many`)).toBeGreaterThan(50_000);
    } finally {
      await client.close();
      await store.close();
    }
  });

  it('answers a delivery racing a large batch that holds the same event as duplicate (the batch alerts)', async () => {
    const store = await openStateStore(url, { namespace: ns('race') });
    try {
      const engine = await createEngine({ store, windowMs: 7 * 86_400_000, outbox: { add: async () => {} } });
      const appId = freshAppId();
      const event = arcRecord({ appId });
      // The event leads a batch of 1,001: its claim goes out with the first chunk, and the single
      // delivery starts while the batch waits for the rest.
      const batch = [event, ...Array.from({ length: 1000 }, () => arcRecord({ appId: freshAppId() }))];
      const [big, single] = await Promise.all([
        engine.evaluate(batch),
        engine.evaluate([structuredClone(event)]),
      ]);
      expect(big[0]?.outcome).toBe('alerted');
      expect(single[0]?.outcome).toBe('duplicate');
    } finally {
      await store.close();
    }
  });

  it('answers ingest with 503 (retry), not with every event invalid, when Redis goes away mid-run', async () => {
    const proxy = await tcpProxy(new URL(url));
    const t = await startTestApp({
      env: { STORE_URL: proxy.url },
      storeNamespace: ns('outage'),
    });
    try {
      expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(200);
      proxy.cut();
      const down = await postIngest<{ code: string }>(t.url, [
        arcRecord({ appId: freshAppId() }),
        arcRecord({ appId: freshAppId() }),
      ]);
      expect(down.status).toBe(503);
      expect(down.body.code).toBe('store_unavailable');
      await expect(t.app.store.get('any')).rejects.toMatchObject({ code: 'STORE_UNREACHABLE' });
    } finally {
      await t.close();
    }
  });

  it('drops a connection that stopped answering (the network lost it) for a new one, rather than waiting for TCP to give up', async () => {
    const proxy = await tcpProxy(new URL(url));
    const store = await openRedisStateStore({
      ...(parseStoreUrl(proxy.url) as Extract<ReturnType<typeof parseStoreUrl>, { kind: 'redis' }>),
      namespace: ns('frozen'),
      stallMs: 600,
    });
    try {
      // Sent on the lost connection: it fails once that is dropped, as unreachable, instead of hanging.
      await expectRecoversFromFrozenConnection(store, proxy);
    } finally {
      await store.close();
      proxy.close();
    }
  });

  it('recovers by itself when the new connections made meanwhile were lost too (a path that accepts connections and drops their bytes)', async () => {
    const proxy = await tcpProxy(new URL(url));
    const store = await openRedisStateStore({
      ...(parseStoreUrl(proxy.url) as Extract<ReturnType<typeof parseStoreUrl>, { kind: 'redis' }>),
      namespace: ns('lost-path'),
      stallMs: 600,
    });
    try {
      await store.set('before', 1);
      proxy.freezeAll();
      await expect(store.get('before')).rejects.toMatchObject({ code: 'STORE_UNREACHABLE' });
      // The dropped connection's replacement is made while the path still loses every byte.
      await sleep(1500);
      proxy.thaw();
      await vi.waitFor(async () => expect(await store.get('before')).toBe(1), {
        timeout: 5000,
        interval: 100,
      });
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  it('lets two processes racing on one Redis win each of 200 keys exactly once', async () => {
    const [a, b] = await raceClaimsAcrossProcesses(url, ns('race'), 200);
    const all = [...a!, ...b!];
    expect(new Set(all).size).toBe(all.length);
    expect(sorted(all)).toEqual(sorted(Array.from({ length: 200 }, (_, i) => `race-${i}`)));
  });

  it('says that the server may not take TLS when a rediss:// URL names a Redis without it', async () => {
    const location = parseStoreUrl(url.replace(/^redis:/i, 'rediss:'));
    if (location.kind !== 'redis') throw new Error('not a Redis URL');
    const error = await openRedisStateStore({
      ...location,
      namespace: ns('tls'),
      connectTimeoutMs: 500,
    }).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/did not answer within 500 ms \(with rediss:\/\/ .*without TLS/);
  });

  it('keeps a password that Redis rejects out of the error', async () => {
    const withPassword = new URL(url);
    withPassword.username = '';
    withPassword.password = 'Sup3r-Secret-Pw';
    const error = await openStateStore(withPassword.toString()).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/^Cannot connect to Redis at redis:\/\/:\*\*\*@/);
    expect((error as Error).message).not.toContain('Sup3r-Secret-Pw');
    expect(JSON.stringify(error)).not.toContain('Sup3r-Secret-Pw');
  });
});

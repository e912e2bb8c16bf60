import KeyvRedis, { createClient } from '@keyv/redis';
import type { ClaimGroup, LiveCount, LiveMembersQuery, StateStore } from '../core/ports.ts';
import { waitAtMost, withTimeout } from '../timeout.ts';
import {
  expectCode,
  type RawConditionalEntry,
  type RawConditionalResult,
  REV_FIELD,
} from './conditional-write.ts';
import { createKeyv } from './create-keyv.ts';
import { type ClaimsAndSets, KeyvStateStore } from './keyv-state-store.ts';
import { scrubSecret } from './parse-store-url.ts';
import { describeError, StoreError } from './store-error.ts';

/** Options of `openRedisStateStore`. */
export interface RedisStateStoreOptions {
  /** `redis://` or `rediss://` URL, credentials and database number included. */
  url: string;
  /** The URL with its password masked, for messages. */
  display: string;
  /** The URL's password, kept out of every message. */
  password: string;
  namespace: string;
  /** How long the first connection may take, in ms. Default 5000. */
  connectTimeoutMs?: number;
  /** How often `warnings()` reads the eviction policy again, in ms. Default 60000. */
  evictionRecheckMs?: number;
  /**
   * How long Redis may leave a PING unanswered before the connection is dropped for a new one, in
   * ms. Default 15000.
   */
  stallMs?: number;
}

type RedisClient = ReturnType<typeof createClient>;

const CLAIMED = '1';

/**
 * One group's part of `claimInGroups` in one round trip. KEYS[1]: the group's hash. ARGV[1]: the TTL in ms, then the
 * keys. HSETNX takes each field that is not there yet (a key repeated meets its own field and
 * loses); the hash then expires a TTL from now unless it already lives longer.
 */
const CLAIM_IN_GROUP_SCRIPT = `local ttl = tonumber(ARGV[1])
local won = {}
for i = 2, #ARGV do won[i - 1] = redis.call('HSETNX', KEYS[1], ARGV[i], '1') end
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return won`;

/**
 * `addToSets` with a TTL, for one set. KEYS[1]: the set. ARGV[1]: the TTL in ms, then the members.
 * The set then expires a TTL from now unless it already lives longer (a set without expiry, from
 * an earlier release, gets one).
 */
const ADD_WITH_TTL_SCRIPT = `local ttl = tonumber(ARGV[1])
redis.call('SADD', KEYS[1], unpack(ARGV, 2))
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1`;

/**
 * `removeGoneMembers` for one set, in one step. KEYS[1]: the set. ARGV[1]: the prefix of its
 * members' value keys (in the @keyv/redis layout), then the members: each is removed unless its
 * value exists.
 */
const REMOVE_GONE_SCRIPT = `local prefix = ARGV[1]
for i = 2, #ARGV do
  if redis.call('EXISTS', prefix .. ARGV[i]) == 0 then redis.call('SREM', KEYS[1], ARGV[i]) end
end
return 1`;

const GROUP_CHUNK = 5_000;
/** Members per `ADD_WITH_TTL_SCRIPT` call (its `unpack` gives at most 7,999 values). */
const ADD_CHUNK = 5_000;
/** Sets per `COUNT_LIVE_SCRIPT` call. */
const COUNT_CHUNK = 200;

/**
 * `countLiveMembers` in one round trip. KEYS: the sets. ARGV: the limit, then per set the prefix
 * of its members' value keys (already in the @keyv/redis layout). Per set: the members whose value
 * exists, the others removed from the set; above the limit, a random sample of `limit` members is
 * checked and the rest estimated from it (as `estimateLive` does).
 */
const COUNT_LIVE_SCRIPT = `local limit = tonumber(ARGV[1])
local counts = {}
for i, set in ipairs(KEYS) do
  local size = redis.call('SCARD', set)
  local members
  if size > limit then members = redis.call('SRANDMEMBER', set, limit) else members = redis.call('SMEMBERS', set) end
  local prefix = ARGV[i + 1]
  local live = 0
  for _, member in ipairs(members) do
    if redis.call('EXISTS', prefix .. member) == 1 then live = live + 1 else redis.call('SREM', set, member) end
  end
  local checked = #members
  if checked >= size or checked == 0 then
    counts[2 * i - 1] = live
    counts[2 * i] = 0
  else
    counts[2 * i - 1] = live + math.floor((size - checked) * live / checked + 0.5)
    counts[2 * i] = 1
  end
end
return counts`;

/**
 * `setManyIfUnchanged` in one step. KEYS: the value keys (in the @keyv/redis layout). ARGV: per
 * key, three: what it expects ('' nothing, `A` no value, `N` a value without a `rev`, else the
 * text a value with that `rev` contains), the serialised value, its TTL in ms ('' none). Every
 * key is checked before any is written; answers 1 or 0 per key.
 */
const WRITE_IF_UNCHANGED_SCRIPT = `local written = {}
for i, key in ipairs(KEYS) do
  local expect = ARGV[3 * i - 2]
  local pass = true
  local current = false
  if expect ~= '' then
    current = redis.call('GET', key)
    if expect == 'A' then pass = current == false
    elseif current == false then pass = false
    elseif expect == 'N' then pass = string.find(current, '${REV_FIELD}', 1, true) == nil
    else pass = string.find(current, expect, 1, true) ~= nil end
  end
  if pass then written[i] = 1 elseif current then written[i] = current else written[i] = 0 end
end
for i, key in ipairs(KEYS) do
  if written[i] == 1 then
    local ttl = ARGV[3 * i]
    if ttl == '' then redis.call('SET', key, ARGV[3 * i - 1])
    else redis.call('SET', key, ARGV[3 * i - 1], 'PX', ttl) end
  end
end
return written`;

class RedisClaimsAndSets implements ClaimsAndSets {
  #client: RedisClient;
  #claimPrefix: string;
  #setPrefix: string;
  #valuePrefix: string;
  #groupPrefix: string;
  #scripts = new Map<string, Promise<string>>();

  constructor(client: RedisClient, namespace: string) {
    this.#client = client;
    this.#valuePrefix = `${namespace}::`;
    this.#groupPrefix = `${namespace}:claims::`;
    // Values live at `<ns>::<key>` (the @keyv/redis layout); claims and sets get their own
    // prefixes, which a namespace without ':' can never produce for a value.
    this.#claimPrefix = `${namespace}:claim::`;
    this.#setPrefix = `${namespace}:set::`;
  }

  async claim(key: string, ttlMs: number | undefined): Promise<boolean> {
    const reply = await this.#client.set(
      this.#claimPrefix + key,
      CLAIMED,
      ttlMs === undefined
        ? { condition: 'NX' }
        : { condition: 'NX', expiration: { type: 'PX', value: ttlMs } },
    );
    return reply === 'OK';
  }

  /** One pipelined round trip of SET NX; a repeated key meets its own SET and loses. */
  async claimMany(keys: readonly string[], ttlMs: number | undefined): Promise<boolean[]> {
    const options =
      ttlMs === undefined
        ? ({ condition: 'NX' } as const)
        : ({ condition: 'NX', expiration: { type: 'PX', value: ttlMs } } as const);
    const pipeline = this.#client.multi();
    for (const key of keys) pipeline.set(this.#claimPrefix + key, CLAIMED, options);
    const replies = await pipeline.execAsPipeline();
    return replies.map((reply) => (reply as unknown) === 'OK');
  }

  async releaseClaim(key: string): Promise<void> {
    await this.#client.unlink(this.#claimPrefix + key);
  }

  async addMembers(set: string, members: readonly string[]): Promise<void> {
    await this.#client.sAdd(this.#setPrefix + set, members as string[]);
  }

  async addToSets(entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void> {
    const bySet = new Map<string, string[]>();
    for (const [set, member] of entries) {
      const list = bySet.get(set);
      if (list) list.push(member);
      else bySet.set(set, [member]);
    }
    // Commands issued together go out pipelined on the one connection.
    // The script takes its members in chunks: Lua's `unpack` gives at most 7,999 values, and one
    // batch may bring more new IPs of one identity than that.
    const calls: Array<Promise<unknown>> = [];
    for (const [set, members] of bySet) {
      if (ttlMs === undefined) {
        calls.push(this.#client.sAdd(this.#setPrefix + set, members));
        continue;
      }
      for (let i = 0; i < members.length; i += ADD_CHUNK) {
        calls.push(
          this.#evalScript(ADD_WITH_TTL_SCRIPT, [
            '1',
            this.#setPrefix + set,
            String(Math.ceil(ttlMs)),
            ...members.slice(i, i + ADD_CHUNK),
          ]),
        );
      }
    }
    await Promise.all(calls);
  }

  async removeMembers(set: string, members: readonly string[]): Promise<void> {
    await this.#client.sRem(this.#setPrefix + set, members as string[]);
  }

  /** One script call per `ADD_CHUNK` members; like `COUNT_LIVE_SCRIPT`, not for Redis Cluster. */
  async removeGoneMembers(set: string, valuePrefix: string, members: readonly string[]): Promise<void> {
    const calls: Array<Promise<unknown>> = [];
    for (let i = 0; i < members.length; i += ADD_CHUNK) {
      calls.push(
        this.#evalScript(REMOVE_GONE_SCRIPT, [
          '1',
          this.#setPrefix + set,
          this.#valuePrefix + valuePrefix,
          ...members.slice(i, i + ADD_CHUNK),
        ]),
      );
    }
    await Promise.all(calls);
  }

  async members(set: string): Promise<string[]> {
    return this.#client.sMembers(this.#setPrefix + set);
  }

  /**
   * One script call (`COUNT_LIVE_SCRIPT`): the members never travel to the client. The script
   * reads value keys it builds from the members, which Redis Cluster would refuse; this store
   * talks to one Redis server (or a primary with replicas), never to a cluster.
   */
  async countLiveMembers(queries: ReadonlyArray<LiveMembersQuery>, limit: number): Promise<LiveCount[]> {
    // At most COUNT_CHUNK sets per call, so that one call never holds Redis for long.
    const calls: Array<Promise<unknown>> = [];
    for (let start = 0; start < queries.length; start += COUNT_CHUNK) {
      const chunk = queries.slice(start, start + COUNT_CHUNK);
      calls.push(
        this.#evalScript(COUNT_LIVE_SCRIPT, [
          String(chunk.length),
          ...chunk.map((q) => this.#setPrefix + q.set),
          String(limit),
          ...chunk.map((q) => this.#valuePrefix + q.valuePrefix),
        ]),
      );
    }
    // Each set answers two numbers: its count, and 1 when the count is estimated from a sample.
    return (await Promise.all(calls)).flatMap((reply) => {
      const flat = reply as number[];
      const counts: LiveCount[] = [];
      for (let i = 0; i < flat.length; i += 2) counts.push({ count: flat[i]!, sampled: flat[i + 1] === 1 });
      return counts;
    });
  }

  /**
   * One script call per group and chunk of at most 5,000 keys (so that none holds Redis for long),
   * all sent at once. Should one fail, the claims the others took are given back.
   */
  async claimInGroups(groups: ReadonlyArray<ClaimGroup>, ttlMs: number): Promise<boolean[][]> {
    const calls: Array<{ hash: string; keys: readonly string[]; reply: Promise<unknown> }> = [];
    for (const g of groups) {
      const hash = this.#groupPrefix + g.group;
      for (let start = 0; start < g.keys.length; start += GROUP_CHUNK) {
        const keys = g.keys.slice(start, start + GROUP_CHUNK);
        const reply = this.#evalScript(CLAIM_IN_GROUP_SCRIPT, ['1', hash, String(ttlMs), ...keys]);
        calls.push({ hash, keys, reply });
      }
    }
    const settled = await Promise.allSettled(calls.map((c) => c.reply));
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) {
      await Promise.allSettled(
        calls.map((c, i) => {
          const r = settled[i]!;
          if (r.status !== 'fulfilled') return undefined;
          const taken = c.keys.filter((_, k) => (r.value as number[])[k] === 1);
          return taken.length > 0 ? this.#client.hDel(c.hash, taken) : undefined;
        }),
      );
      throw failed.reason;
    }
    const replies = settled.map((r) => (r as PromiseFulfilledResult<unknown>).value as number[]);
    let call = 0;
    return groups.map((g) => {
      const won: boolean[] = [];
      for (let start = 0; start < g.keys.length; start += GROUP_CHUNK) {
        for (const taken of replies[call++]!) won.push(taken === 1);
      }
      return won;
    });
  }

  async releaseInGroup(group: string, key: string): Promise<void> {
    await this.#client.hDel(this.#groupPrefix + group, key);
  }

  /** Runs a script by its SHA1, loading it first, and again when Redis forgot it (restart, flush). */
  async #evalScript(script: string, args: string[]): Promise<unknown> {
    const load = () => {
      const loading = this.#client.scriptLoad(script);
      this.#scripts.set(script, loading);
      // A failed load is not kept: the next call tries again.
      loading.catch(() => this.#scripts.delete(script));
      return loading;
    };
    const sha = await (this.#scripts.get(script) ?? load());
    try {
      return await this.#client.sendCommand(['EVALSHA', sha, ...args]);
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      return this.#client.sendCommand(['EVALSHA', await load(), ...args]);
    }
  }

  /** One script call for the whole batch, so that it lands whole or not at all. */
  async writeIfUnchanged(entries: readonly RawConditionalEntry[]): Promise<RawConditionalResult[]> {
    const keys = new Array<string>(entries.length);
    const args: string[] = [];
    entries.forEach(({ key, text, ttl, expect }, i) => {
      keys[i] = this.#valuePrefix + key;
      args.push(expectCode(expect), text, ttl === undefined ? '' : String(ttl));
    });
    const reply = (await this.#evalScript(WRITE_IF_UNCHANGED_SCRIPT, [
      String(keys.length),
      ...keys,
      ...args,
    ])) as Array<number | string>;
    return reply.map(
      (w): RawConditionalResult => (w === 1 ? true : { text: w === 0 ? undefined : String(w) }),
    );
  }

  async ping(): Promise<void> {
    await this.#client.ping();
  }

  async close(): Promise<void> {}
}

/**
 * @keyv/redis with a cheaper `setMany`: the same keys and values in one MULTI (a batch lands
 * whole or not at all, so a retry never counts part of it twice), written with node-redis's
 * current `expiration` option rather than the legacy `{ PX }` form, which costs node-redis about
 * twice as much per command.
 */
class BatchingKeyvRedis extends KeyvRedis<string> {
  async setMany(entries: Array<{ key: string; value: string; ttl?: number }>): Promise<void> {
    if (this.isCluster()) return super.setMany(entries);
    const client = (await this.getClient()) as RedisClient;
    const multi = client.multi();
    for (const { key, value, ttl } of entries) {
      const prefixed = this.createKeyPrefix(key, this.namespace);
      if (ttl) multi.set(prefixed, value, { expiration: { type: 'PX', value: ttl } });
      else multi.set(prefixed, value);
    }
    await multi.exec();
  }
}

/**
 * Opens a Redis-backed state store: values through `@keyv/redis` (`<ns>::<key>`), claims as
 * `SET NX PX` and sets as Redis sets, all on one node-redis connection. Resolves once Redis
 * answered; rejects with a `StoreError` (password masked) when it cannot connect.
 */
export async function openRedisStateStore(options: RedisStateStoreOptions): Promise<StateStore> {
  /** How long the first connection may take: the TCP connect, and then Redis's first answers. */
  const answerWithinMs = options.connectTimeoutMs ?? 5000;
  let connectedOnce = false;
  let client: RedisClient;
  try {
    client = createClient({
      url: options.url,
      // Fail fast while disconnected instead of queueing commands that may never run: the
      // caller then answers with an error rather than hanging or losing an event silently.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: answerWithinMs,
        // No retries for the first connection (report the problem now); afterwards reconnect
        // with a capped backoff.
        reconnectStrategy: (retries: number) => (connectedOnce ? Math.min(100 * 2 ** retries, 2000) : false),
      },
    });
  } catch (error) {
    throw new StoreError(
      'STORE_URL_INVALID',
      scrubSecret(
        `Store URL "${options.display}" is not usable: ${(error as Error).message}`,
        options.password,
      ),
    );
  }
  // node-redis reports connection trouble as 'error' events; a rejected call says only that the
  // client is offline, so the last reason is kept (without the password) for its message.
  let lastConnectionError: string | undefined;
  client.on('error', (error: unknown) => {
    lastConnectionError = scrubSecret(describeError(error), options.password).slice(0, 300);
  });
  client.on('ready', () => {
    lastConnectionError = undefined;
  });
  // `connectTimeout` bounds the TCP connect only: a server that accepts and never answers (a
  // paused Redis, a wrong port behind a proxy) would hold the start forever.
  const handshake = (async () => {
    await client.connect();
    await client.ping();
  })();
  handshake.catch(() => undefined);
  try {
    await withTimeout(handshake, answerWithinMs, `it accepted the connection, but Redis`);
  } catch (error) {
    // A failed first connection usually leaves the client closed already; destroy() would throw.
    try {
      if (client.isOpen) client.destroy();
    } catch {
      // already closed
    }
    const reason = describeError(error);
    throw new StoreError(
      'STORE_UNREACHABLE',
      scrubSecret(
        `Cannot connect to Redis at ${options.display}: ${reason}${tlsMismatchHint(options.url, reason)}`,
        options.password,
      ),
    );
  }
  connectedOnce = true;
  // A connection that stops answering (the network lost it, a server gone without closing it)
  // would hold every command sent on it until TCP gives up, about 15 minutes. Redis is asked a PING
  // a few times per `stallMs`: one left unanswered that long drops the connection for a new one,
  // which fails the commands waiting on it (the store is then unreachable: ingest answers 503).
  const stallMs = options.stallMs ?? 15_000;
  let closed = false;
  let probing = false;
  /** Since when the client has been reconnecting (undefined while ready). */
  let notReadySince: number | undefined;
  const watchdog = setInterval(
    () => {
      if (closed) return;
      if (!client.isReady) {
        // A new connection whose handshake gets no answer (a path that accepts connections and
        // loses their bytes) would hang for good: nothing else bounds it. It is made again.
        notReadySince ??= Date.now();
        if (!probing && client.isOpen && Date.now() - notReadySince >= stallMs) {
          notReadySince = Date.now();
          lastConnectionError = `Redis did not answer a new connection within ${stallMs} ms: connecting again`;
          client.destroy();
          client.connect().catch(() => undefined);
        }
        return;
      }
      notReadySince = undefined;
      if (probing) return;
      probing = true;
      let answered = false;
      const ping = client.ping().finally(() => {
        answered = true;
      });
      void waitAtMost(ping, stallMs).then(() => {
        probing = false;
        if (answered || closed || !client.isOpen) return;
        lastConnectionError = `Redis did not answer a PING within ${stallMs} ms: the connection was dropped for a new one`;
        client.destroy();
        client.connect().catch(() => undefined);
      });
    },
    Math.max(50, Math.round(stallMs / 3)),
  );
  watchdog.unref();
  // The policy can be changed while the service runs (`CONFIG SET`, a portal setting): it is read
  // again when `/readyz` asks for the warnings, at most once a minute, in the background.
  const recheckMs = options.evictionRecheckMs ?? 60_000;
  let warnings = (await evictionWarnings(client, answerWithinMs)) ?? [];
  let checkedAt = Date.now();
  let checking = false;
  const currentWarnings = (): string[] => {
    if (!checking && client.isReady && Date.now() - checkedAt >= recheckMs) {
      checking = true;
      checkedAt = Date.now();
      void evictionWarnings(client, answerWithinMs)
        .then((found) => {
          if (found) warnings = found;
        })
        .finally(() => {
          checking = false;
        });
    }
    return warnings;
  };

  const adapter = new BatchingKeyvRedis(client, { namespace: options.namespace, throwOnErrors: true });
  // @keyv/redis prefixes keys itself (`<ns>::`): no prefix of our own.
  const keyv = createKeyv(adapter, options.namespace);
  const rest = new RedisClaimsAndSets(client, options.namespace);
  return new KeyvStateStore('redis', keyv, rest, '', {
    writeIfUnchanged: (entries) => rest.writeIfUnchanged(entries),
    sharedAcrossProcesses: true,
    acrossNetwork: true,
    closeKeyv: async () => {
      closed = true;
      clearInterval(watchdog);
      if (client.isOpen) {
        try {
          await client.close();
        } catch {
          client.destroy();
        }
      }
    },
    lastConnectionError: () => lastConnectionError,
    warnings: currentWarnings,
  });
}

/**
 * What a failed first connection says when TLS on one side only is the likely cause: a TLS client
 * to a plain Redis waits for a handshake that never comes, and a TLS-only Redis (Azure Cache for
 * Redis on 6380) drops a plain client.
 */
function tlsMismatchHint(url: string, reason: string): string {
  const tls = /^rediss:/i.test(url);
  if (tls && /did not answer within/.test(reason)) {
    return ' (with rediss:// this may be a Redis without TLS: check that this port takes TLS, or use redis://)';
  }
  if (!tls && /ECONNRESET|Socket closed unexpectedly/i.test(reason)) {
    return ' (a Redis that takes TLS only, as Azure Cache for Redis does on port 6380, closes plain connections: use rediss://)';
  }
  return '';
}

/**
 * A Redis that evicts keys when its memory is full (any `maxmemory-policy` but `noeviction`; Azure
 * Cache for Redis ships with `volatile-lru`) drops the history and the claims that keep alerts
 * exactly-once without a word, since every one of them has a TTL. Read from `INFO memory`, which
 * works where `CONFIG` is disabled; undefined when even that is refused or does not answer.
 */
async function evictionWarnings(client: RedisClient, withinMs: number): Promise<string[] | undefined> {
  let policy: string | undefined;
  try {
    const info = await withTimeout(client.info('memory'), withinMs, 'Redis INFO');
    policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
  } catch {
    return undefined;
  }
  if (policy === undefined || policy === 'noeviction') return [];
  return [
    `Redis evicts keys when its memory is full (maxmemory-policy ${policy}): sightings, allowlist entries and the claims that keep each alert to one would then be lost without a word; set maxmemory-policy to noeviction (then a full Redis refuses writes, and ingest answers 503)`,
  ];
}

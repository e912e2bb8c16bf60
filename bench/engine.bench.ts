/**
 * Engine benchmarks: in-process evaluation throughput (known pairs, new pairs) on the embedded
 * SQLite store, Redis (when BENCH_REDIS_URL or TEST_REDIS_URL is set) and the memory store as the
 * baseline of the same run; listing one identity with 10,000 IPs; 1,000,000 pairs in SQLite (RSS
 * and file size, in a child process so that the figure is that of a process doing only this).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createClient } from '@keyv/redis';
import { createEngine } from '../src/core/engine.ts';
import { createHistory } from '../src/core/history.ts';
import type { StateStore } from '../src/core/ports.ts';
import { openStateStore } from '../src/store/open-state-store.ts';
import { appIdOf, arcRecord, ipOf } from './ingest-events.ts';
import { startFlags } from './start-flags.ts';

const DAY = 86_400_000;
const WINDOW = 7 * DAY;
const noOutbox = { add: async () => {} };

/** An Arc-shaped Event Hub record (derived shape, FORMATS.md §4.2) for one pair at `time`. */
const event = arcRecord;

/** A deterministic PRNG, so that every run draws the same events. */
function prng(seed: number) {
  let x = seed;
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 2 ** 32;
  };
}

/**
 * Evaluates `total` events in batches of `batch`, timing only `evaluate`: each batch's events are
 * built just before it (so the heap holds one batch, as a server would) and that is not counted.
 */
async function timeBatches(store: StateStore, total: number, batch: number, make: (i: number) => unknown) {
  const engine = await createEngine({ store, windowMs: WINDOW, outbox: noOutbox });
  let spent = 0;
  for (let i = 0; i < total; i += batch) {
    const events = Array.from({ length: Math.min(batch, total - i) }, (_, j) => make(i + j));
    const start = performance.now();
    await engine.evaluate(events);
    spent += performance.now() - start;
  }
  return total / (spent / 1000);
}

const rate = (n: number) => `${Math.round(n).toLocaleString('en')} events/s`;

async function throughput(label: string, open: () => Promise<StateStore>) {
  const now = Date.now();
  const random = prng(7);
  // Events come as a stream does (an Event Hub partition, a bulk export): in time order, each 1 ms
  // after the previous one, ending a second ago. Their event ids lead with that time, so the
  // store's dedup index grows at its end.
  const at = (i: number, total: number) => now - 1000 - (total - i);
  // Known pairs, as an Event Hub or bulk batch brings them: 1,000 pairs (100 identities × 10 IPs)
  // seen yesterday, then 200,000 new events of them in batches of 5,000, in random pair order.
  const pairs = 1_000;
  let store = await open();
  const warm = Array.from({ length: pairs }, (_, i) => event(appIdOf(i % 100), ipOf(i), now - DAY));
  await (await createEngine({ store, windowMs: WINDOW, outbox: noOutbox })).evaluate(warm, { silent: true });
  const knownRate = await timeBatches(store, 200_000, 5_000, (i) => {
    const p = Math.floor(random() * pairs);
    return event(appIdOf(p % 100), ipOf(p), at(i, 200_000));
  });
  await store.close();
  // The worst case for the dedup index: 100,000 events that all carry the same millisecond, so
  // their ids land at random places in it (a real stream never crowds like that).
  store = await open();
  await (await createEngine({ store, windowMs: WINDOW, outbox: noOutbox })).evaluate(warm, { silent: true });
  const crowdedRate = await timeBatches(store, 100_000, 5_000, () => {
    const p = Math.floor(random() * pairs);
    return event(appIdOf(p % 100), ipOf(p), now - 1000);
  });
  await store.close();
  // Harder: 10,000 known pairs in batches of 1,000, so that nearly every event is its pair's only
  // one in the batch (one read and one write of the pair per event).
  store = await open();
  const wide = Array.from({ length: 10_000 }, (_, i) => event(appIdOf(i % 1000), ipOf(i), now - DAY));
  await (await createEngine({ store, windowMs: WINDOW, outbox: noOutbox })).evaluate(wide, { silent: true });
  const spreadRate = await timeBatches(store, 100_000, 1_000, (i) => {
    const p = Math.floor(random() * 10_000);
    return event(appIdOf(p % 1000), ipOf(p), at(i, 100_000));
  });
  await store.close();
  // New pairs: 100,000 events, each a pair never seen (10,000 identities × 10 IPs), batches of 1,000;
  // every one is alerted (the outbox here only counts).
  store = await open();
  const newRate = await timeBatches(store, 100_000, 1_000, (i) =>
    event(appIdOf(50_000 + (i % 10_000)), ipOf(i + 1), at(i, 100_000)),
  );
  await store.close();
  console.log(
    `engine ${label.padEnd(7)} known pairs ${rate(knownRate)} (target >= 100,000) | new pairs ${rate(newRate)} (target >= 20,000) | known, one event per pair per batch ${rate(spreadRate)} | known, all in one millisecond ${rate(crowdedRate)}`,
  );
}

async function listing(dir: string) {
  const store = await openStateStore(`sqlite://${path.join(dir, 'listing.db')}`);
  const now = Date.now();
  const appId = appIdOf(7);
  const events = Array.from({ length: 10_000 }, (_, i) => event(appId, ipOf(i), now - DAY + i));
  const engine = await createEngine({ store, windowMs: WINDOW, outbox: noOutbox });
  for (let i = 0; i < events.length; i += 5000)
    await engine.evaluate(events.slice(i, i + 5000), { silent: true });
  const history = createHistory({ store, windowMs: WINDOW });
  const times: number[] = [];
  let n = 0;
  for (let i = 0; i < 21; i++) {
    const t = performance.now();
    n = (await history.listIdentity(appId)).length;
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  console.log(
    `listing one identity with ${n.toLocaleString('en')} IPs (SQLite): median ${times[10]!.toFixed(1)} ms, worst ${times.at(-1)!.toFixed(1)} ms (target < 50 ms)`,
  );
  await store.close();
}

/** Child mode: fill a SQLite store with 1,000,000 pairs at full speed; prints the peak RSS. */
async function millionPairs(file: string) {
  const store = await openStateStore(`sqlite://${file}`);
  const engine = await createEngine({ store, windowMs: WINDOW, outbox: noOutbox });
  const now = Date.now();
  let peak = 0;
  const total = MILLION;
  for (let i = 0; i < total; i += 5000) {
    const batch = Array.from({ length: 5000 }, (_, j) =>
      event(appIdOf((i + j) % 100_000), ipOf(i + j), now - DAY),
    );
    await engine.evaluate(batch, { silent: true });
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  const history = createHistory({ store, windowMs: WINDOW });
  const sample = await history.listIdentity(appIdOf(12_345));
  peak = Math.max(peak, process.memoryUsage().rss);
  await store.close();
  console.log(JSON.stringify({ peakRss: peak, sampleIps: sample.length }));
}

const MILLION = 1_000_000;

/** Peak and current resident set of a process, from /proc (Linux), in bytes. */
function residentSet(pid: number): { peak: number; now: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1]) * 1024;
    return { peak: kb('VmHWM'), now: kb('VmRSS') };
  } catch {
    return undefined;
  }
}

/**
 * The service itself (`node src/main.ts` with the options of `npm start`) on the store of a
 * million pairs, fed over HTTP: first at a steady 1,000 events/s for 20 s, then as fast as it
 * takes them for 10 s. Events are NDJSON records of random pairs among the million, 1 in 100 a new
 * pair (alerted to the log-only chat). Reports the service's peak resident set after each phase.
 */
async function serveMillion(file: string) {
  const child = spawn(
    process.execPath,
    [...startFlags(), path.join(import.meta.dirname, '..', 'src', 'main.ts')],
    {
      env: { ...process.env, STORE_URL: `sqlite://${file}`, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let text = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text);
        if (match) resolve(Number(match[1]));
      });
      child.once('exit', (code) => reject(new Error(`the service stopped (exit ${code}) before listening`)));
      setTimeout(
        () => reject(new Error('the service did not say where it listens within 30 s')),
        30_000,
      ).unref();
    });
    child.stdout!.resume();
    const now = Date.now();
    const random = prng(11);
    let serial = 0;
    const body = (n: number) => {
      const lines: string[] = [];
      for (let j = 0; j < n; j++) {
        const p = Math.floor(random() * MILLION);
        serial++;
        const ip = serial % 100 === 0 ? ipOf(MILLION + serial) : ipOf(p);
        lines.push(JSON.stringify(event(appIdOf(p % 100_000), ip, now - 60_000 + (serial % 50_000))));
      }
      return `${lines.join('\n')}\n`;
    };
    const post = async (n: number) => {
      const res = await fetch(`http://127.0.0.1:${port}/ingest`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body: body(n),
      });
      if (res.status !== 200) throw new Error(`POST /ingest answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    };
    // Steady: 100 events every 100 ms.
    const steadyStart = performance.now();
    for (let tick = 0; tick < 200; tick++) {
      await post(100);
      const wait = steadyStart + (tick + 1) * 100 - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const steady = residentSet(child.pid!);
    // Full speed: two clients posting 500 events at a time (under the 1 MiB body limit) for 10 s.
    let sent = 0;
    const fullStart = performance.now();
    await Promise.all(
      [0, 1].map(async () => {
        while (performance.now() - fullStart < 10_000) {
          await post(500);
          sent += 500;
        }
      }),
    );
    const fullRate = sent / ((performance.now() - fullStart) / 1000);
    const full = residentSet(child.pid!);
    return { steady, full, fullRate };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

/** Deletes what the Redis runs wrote (event claims would otherwise stay for two weeks). */
async function removeRedisKeys(url: string, namespaces: string[]) {
  const client = createClient({ url });
  await client.connect();
  try {
    for (const namespace of namespaces) {
      for await (const keys of client.scanIterator({ MATCH: `${namespace}:*`, COUNT: 5000 })) {
        if (keys.length > 0) await client.unlink(keys);
      }
    }
  } finally {
    await client.close();
  }
}

async function main() {
  if (process.argv[2] === '--million') return millionPairs(process.argv[3]!);
  // `--serve <file>`: only the service part, on a store filled before.
  if (process.argv[2] === '--serve') return console.log(JSON.stringify(await serveMillion(process.argv[3]!)));
  // `node bench/engine.bench.ts [memory|sqlite|redis|listing|million ...]` runs only those parts.
  const parts = process.argv.slice(2);
  const want = (part: string) => parts.length === 0 || parts.includes(part);
  const dir = mkdtempSync(path.join(tmpdir(), 'arc-bench-'));
  try {
    let k = 0;
    if (want('memory')) await throughput('memory', () => openStateStore('memory://'));
    if (want('sqlite'))
      await throughput('sqlite', () => openStateStore(`sqlite://${path.join(dir, `t${k++}.db`)}`));
    const redis = process.env.BENCH_REDIS_URL ?? process.env.TEST_REDIS_URL;
    if (!want('redis')) {
      // not asked for
    } else if (redis) {
      const namespaces: string[] = [];
      try {
        await throughput('redis', async () => {
          namespaces.push(`bench${Date.now()}${k++}`);
          return openStateStore(redis, { namespace: namespaces.at(-1)! });
        });
      } finally {
        await removeRedisKeys(redis, namespaces);
      }
    } else {
      console.log('engine redis: skipped (set BENCH_REDIS_URL or TEST_REDIS_URL to a Redis server)');
    }
    if (want('listing')) await listing(dir);
    if (!want('million')) return;
    const file = path.join(dir, 'million.db');
    const started = performance.now();
    const out = execFileSync(process.execPath, [...startFlags(), import.meta.filename, '--million', file], {
      encoding: 'utf8',
    });
    const { peakRss, sampleIps } = JSON.parse(out.trim().split('\n').at(-1)!) as {
      peakRss: number;
      sampleIps: number;
    };
    const size = ['', '-wal'].reduce((sum, ext) => {
      try {
        return sum + statSync(file + ext).size;
      } catch {
        return sum;
      }
    }, 0);
    const mb = (bytes: number | undefined) =>
      bytes === undefined ? 'n/a' : `${(bytes / 2 ** 20).toFixed(0)} MB`;
    console.log(
      `1,000,000 pairs in SQLite: file ${mb(size)}; loading them at full speed: peak RSS ${mb(peakRss)}, ${((performance.now() - started) / 1000).toFixed(0)} s (${sampleIps} IPs for a sampled identity)`,
    );
    const served = await serveMillion(file);
    console.log(
      `the service on those 1,000,000 pairs (npm start${startFlags().length > 0 ? ` with ${startFlags().join(' ')}` : ''}): peak RSS ${mb(served.steady?.peak)} at a steady 1,000 events/s for 20 s (target < 200 MB); peak RSS ${mb(served.full?.peak)} after 10 s at full speed (${rate(served.fullRate)})`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

/**
 * Engine benchmarks: in-process evaluation throughput (known pairs, new pairs) on the embedded
 * SQLite store, Redis (when BENCH_REDIS_URL or TEST_REDIS_URL is set) and the memory store as the
 * baseline of the same run; listing one identity with 10,000 IPs; 1,000,000 pairs in SQLite (RSS
 * and file size, in a child process so that the figure is that of a process doing only this).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createEngine } from '../src/core/engine.ts';
import { createHistory } from '../src/core/history.ts';
import type { StateStore } from '../src/core/ports.ts';
import { openStateStore } from '../src/store/open-state-store.ts';
import { appIdOf, arcRecord, ipOf } from './ingest-events.ts';

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

/** Child mode: fill a SQLite store with 1,000,000 pairs and print the peak RSS and file size. */
async function millionPairs(file: string) {
  const store = await openStateStore(`sqlite://${file}`);
  const engine = await createEngine({ store, windowMs: WINDOW, outbox: noOutbox });
  const now = Date.now();
  let peak = 0;
  const total = 1_000_000;
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

async function main() {
  if (process.argv[2] === '--million') return millionPairs(process.argv[3]!);
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
      await throughput('redis', async () => {
        const s = await openStateStore(redis, { namespace: `bench${Date.now()}${k++}` });
        return s;
      });
    } else {
      console.log('engine redis: skipped (set BENCH_REDIS_URL or TEST_REDIS_URL to a Redis server)');
    }
    if (want('listing')) await listing(dir);
    if (!want('million')) return;
    const file = path.join(dir, 'million.db');
    const started = performance.now();
    const out = execFileSync(process.execPath, [import.meta.filename, '--million', file], {
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
    console.log(
      `1,000,000 pairs in SQLite: peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MB (target < 200 MB), file ${(size / 2 ** 20).toFixed(0)} MB, loaded in ${((performance.now() - started) / 1000).toFixed(0)} s (${sampleIps} IPs for a sampled identity)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

/**
 * Throughput of the state store's batch operations, the ones the engine's hot path uses.
 *   node bench/store-batch.ts [STORE_URL] [seconds-per-operation]
 * Defaults to a SQLite file in a temporary directory and one second per operation. Prints
 * operations per second for setMany, getMany (all hits), claimMany (all lost) and claimMany
 * (all won). On a shared Redis or PostgreSQL everything it writes expires after a minute.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStateStore } from '../src/store/open-state-store.ts';

const BATCH = 1000;
const KEYS = 20_000;

const dir = mkdtempSync(join(tmpdir(), 'arc-store-bench-'));
const url = process.argv[2] ?? `sqlite://${join(dir, 'bench.db')}`;
const seconds = Number(process.argv[3] ?? 1);
const namespace = `bench-${process.pid}`;
const store = await openStateStore(url, { namespace }).catch((err: unknown) => {
  rmSync(dir, { recursive: true, force: true });
  console.error(`store-batch: ${(err as Error).message}`);
  process.exit(1);
});

// A pair record shaped like the engine's, so serialisation cost is realistic.
const record = (i: number) => ({
  appId: '3f1c2a4b-1111-2222-3333-444455556666',
  ip: `10.0.${(i >> 8) & 255}.${i & 255}`,
  firstSeen: 1_764_000_000_000,
  lastSeen: 1_764_000_500_000 + i,
  count: i,
  spans: [
    [1_764_000_000_000, 1_764_000_100_000],
    [1_764_000_200_000, 1_764_000_500_000],
  ],
  last: {
    eventId: `evt-${i}`,
    sourceFormat: 'elastic',
    clusterId: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/c',
    clusterName: 'c',
  },
});

const keys = Array.from({ length: KEYS }, (_, i) => `pair:3f1c2a4b-1111-2222-3333-444455556666:10.0.0.${i}`);
const batches: string[][] = [];
for (let i = 0; i < KEYS; i += BATCH) batches.push(keys.slice(i, i + BATCH));
const entryBatches = batches.map((batch, b) =>
  batch.map((key, i) => ({ key, value: record(b * BATCH + i), ttlMs: 60_000 })),
);

async function measure(name: string, run: (batch: number) => Promise<unknown>): Promise<void> {
  let ops = 0;
  let b = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    await run(b % batches.length);
    ops += BATCH;
    b++;
  }
  const rate = Math.round(ops / ((performance.now() - start) / 1000));
  console.log(`${name.padEnd(22)} ${rate.toLocaleString('en-US').padStart(12)} ops/s`);
}

try {
  console.log(`${store.kind} (${url.replace(/:[^:@/]*@/, ':***@')}), batches of ${BATCH}`);
  await measure('setMany', (b) => store.setMany(entryBatches[b]!));
  await measure('getMany (hits)', (b) => store.getMany(batches[b]!));
  await store.claimMany(keys, 60_000);
  await measure('claimMany (taken)', (b) => store.claimMany(batches[b]!, 60_000));
  let round = 0;
  await measure('claimMany (fresh)', (b) => {
    if (b === 0) round++;
    return store.claimMany(
      batches[b]!.map((key) => `${key}:${round}`),
      60_000,
    );
  });
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

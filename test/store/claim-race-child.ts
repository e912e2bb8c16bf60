/**
 * One side of the cross-process claim race (see `raceClaimsAcrossProcesses` in helpers.ts).
 *   node test/store/claim-race-child.ts <STORE_URL> <namespace> <key count>
 * Opens the store, prints `ready`, reads `go <epoch ms>` on stdin and, from that moment, claims
 * keys `race-0` … in its own random order, one step at a time (alternately one key with `claim`
 * and a few with `claimMany`, pausing between steps) so that its claims interleave with the
 * other process's instead of finishing before that one has started. Prints `{"won":[…]}`.
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { openStateStore } from '../../src/store/open-state-store.ts';

const [url, namespace, countText] = process.argv.slice(2);
if (!url || !namespace || !countText) {
  console.error('usage: claim-race-child.ts <STORE_URL> <namespace> <key count>');
  process.exit(2);
}
const count = Number(countText);
const store = await openStateStore(url, { namespace });
process.stdout.write('ready\n');
const [go] = (await once(process.stdin, 'data')) as [Buffer];
const startAt = Number(/^go (\d+)/.exec(go.toString())?.[1] ?? 0);
await sleep(Math.max(0, startAt - Date.now()));

const keys = Array.from({ length: count }, (_, i) => `race-${i}`);
for (let i = keys.length - 1; i > 0; i--) {
  const j = Math.floor(Math.random() * (i + 1));
  [keys[i], keys[j]] = [keys[j]!, keys[i]!];
}
const won: string[] = [];
for (let i = 0, step = 0; i < keys.length; step++) {
  if (step % 2 === 0) {
    const key = keys[i++]!;
    if (await store.claim(key, 60_000)) won.push(key);
  } else {
    const batch = keys.slice(i, i + 5);
    i += batch.length;
    const results = await store.claimMany(batch, 60_000);
    batch.forEach((key, j) => {
      if (results[j]) won.push(key);
    });
  }
  // A millisecond between steps spreads each side's claims over the other's.
  await sleep(1);
}
process.stdout.write(`${JSON.stringify({ won })}\n`);
await store.close();
process.stdin.destroy();

/**
 * One replica in the cross-process alert race (see engine-shared-store.test.ts).
 *   node test/core/engine-race-child.ts <STORE_URL> <namespace> <tag>
 * Opens the shared store, prints `ready`, waits for a line on stdin, then evaluates 25 distinct
 * detections of the same new (identity, IP) pair concurrently and prints
 * `{"alerted":n,"known":m,"outboxAlerts":k,"pair":"<its pair key>"}`.
 */
import { once } from 'node:events';
import { createEngine } from '../../src/core/engine.ts';
import { pairKey } from '../../src/core/pair.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { arcEvent } from '../support/samples.ts';

const [url, namespace, tag] = process.argv.slice(2);
if (!url || !namespace || !tag) {
  console.error('usage: engine-race-child.ts <STORE_URL> <namespace> <tag>');
  process.exit(2);
}
const store = await openStateStore(url, { namespace });
let alerts = 0;
const engine = await createEngine({
  store,
  windowMs: 7 * 86_400_000,
  outbox: {
    add: async (a) => {
      alerts += a.length;
    },
  },
});
const events = Array.from({ length: 25 }, (_, i) =>
  arcEvent('azure-activity-log-record', {
    time: new Date(Date.now() - 1000 - i),
    correlationId: `${tag.padStart(8, '0').slice(-8)}-0000-4000-8000-${String(i).padStart(12, '0')}`,
  }),
);
process.stdout.write('ready\n');
await once(process.stdin, 'data');
const results = await Promise.all(events.map((e) => engine.evaluate([e])));
const outcomes = results.map((r) => r[0]?.outcome);
const first = results[0]?.[0];
const d = first && 'detection' in first ? first.detection : undefined;
process.stdout.write(
  `${JSON.stringify({
    alerted: outcomes.filter((o) => o === 'alerted').length,
    known: outcomes.filter((o) => o === 'known').length,
    outboxAlerts: alerts,
    pair: d && pairKey(d.appId, d.sourceIp),
  })}\n`,
);
await store.close();
process.stdin.destroy();

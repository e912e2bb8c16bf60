import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { AlertRecord } from '../../src/core/alert.ts';
import { createEngine } from '../../src/core/engine.ts';
import type { StoredPair } from '../../src/core/pair.ts';
import type { Outbox } from '../../src/core/ports.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { describeWithService, redisTestUser, uniqueNamespace } from '../store/helpers.ts';
import { arcEvent } from '../support/samples.ts';

const CHILD = fileURLToPath(new URL('./engine-race-child.ts', import.meta.url));

interface ChildResult {
  alerted: number;
  known: number;
  outboxAlerts: number;
  pair: string;
}

/** Two replicas sharing one store race 25 detections each of the same new pair. */
async function race(url: string, namespace: string): Promise<ChildResult[]> {
  const children = ['1', '2'].map((tag) =>
    spawn(process.execPath, [CHILD, url, namespace, `${tag}${Date.now() % 1e6}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
  const runs = children.map((child) => {
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.stdin.on('error', () => {});
    const lines = createInterface({ input: child.stdout });
    let ready!: () => void;
    const isReady = new Promise<void>((r) => {
      ready = r;
    });
    const result = new Promise<ChildResult>((resolve, reject) => {
      lines.on('line', (line) => {
        if (line === 'ready') ready();
        else if (line.startsWith('{')) resolve(JSON.parse(line) as ChildResult);
      });
      child.on('exit', (code) => {
        ready();
        reject(new Error(`replica exited with ${code}: ${stderr.trim()}`));
      });
    });
    return { isReady, result };
  });
  await Promise.all(runs.map((r) => r.isReady));
  for (const child of children) child.stdin.write('go\n');
  return Promise.all(runs.map((r) => r.result));
}

/**
 * One alert in all, and a pair record that holds every sighting of both replicas (each merges
 * what the other wrote since it read the pair, rather than writing over it) with that alert.
 */
async function expectExactlyOneAlert(url: string, namespace: string, results: ChildResult[]) {
  expect(results.reduce((n, r) => n + r.alerted, 0)).toBe(1);
  expect(results.reduce((n, r) => n + r.outboxAlerts, 0)).toBe(1);
  expect(results.reduce((n, r) => n + r.known, 0)).toBe(49);
  const store = await openStateStore(url, { namespace });
  try {
    const pair = await store.get<StoredPair>(results[0]!.pair);
    expect(pair?.count).toBe(50);
    expect(pair?.alertId).toMatch(/^[0-9a-f]{24}$/);
    expect(pair?.lastSeen).toBeGreaterThan(pair!.firstSeen);
  } finally {
    await store.close();
  }
}

/** `race`, then its checks. */
async function raceAndCheck(url: string): Promise<void> {
  const namespace = uniqueNamespace('engine');
  await expectExactlyOneAlert(url, namespace, await race(url, namespace));
}

describe('engine: exactly one alert per new pair across two processes sharing SQLite', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'arc-engine-race-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it('one alert in total', async () => {
    await raceAndCheck(`sqlite://${path.join(dir, 'shared.db')}`);
  });
});

describeWithService(
  'engine: exactly one alert per new pair across two processes sharing Redis',
  'TEST_REDIS_URL',
  (url) => {
    it('one alert in total', async () => {
      await raceAndCheck(url);
    });
  },
);

describeWithService(
  'engine: exactly one alert per new pair across two processes sharing PostgreSQL',
  'TEST_POSTGRES_URL',
  (url) => {
    it('one alert in total', async () => {
      await raceAndCheck(url);
    });
  },
);

describeWithService(
  'engine: a delivery that fails while Redis refuses some writes',
  'TEST_REDIS_URL',
  (url) => {
    /**
     * One new pair's event evaluated on a store whose Redis user gets `rules` (`ACL SETUSER`) from
     * the start (`rulesAt: 'start'`) or when the outbox is called, which then fails; the first
     * delivery must fail with `failure`. Then every right is given back and the sender's retry
     * must alert, once.
     */
    async function retryAlertsAfter(
      tag: string,
      rulesAt: 'start' | 'outbox',
      failure: RegExp,
      rules: (ns: string) => string[],
    ) {
      const namespace = uniqueNamespace(`engine-${tag}`);
      const redis = await redisTestUser(url, tag, namespace);
      if (rulesAt === 'start') await redis.setRules(...rules(namespace));
      const store = await openStateStore(redis.url, { namespace });
      const posted: AlertRecord[] = [];
      let outboxDown = rulesAt === 'outbox';
      const outbox: Outbox = {
        async add(alerts) {
          if (outboxDown) {
            await redis.setRules(...rules(namespace));
            throw new Error('outbox write failed');
          }
          posted.push(...alerts);
        },
      };
      try {
        const engine = await createEngine({ store, windowMs: 7 * 86_400_000, outbox });
        const event = arcEvent('azure-activity-log-record', {
          time: new Date(Date.now() - 60_000),
          ip: `198.51.100.${tag.length + 60}`,
        });
        await expect(engine.evaluate([event])).rejects.toThrow(failure);
        outboxDown = false;
        await redis.allowAll();
        const [retry] = await engine.evaluate([event]);
        expect(retry?.outcome).toBe('alerted');
        expect(posted).toHaveLength(1);
      } finally {
        await store.close();
        await redis.dispose();
      }
    }

    it('gives the alert claims back when the store fails after taking them, before the outbox, so that the retry alerts', async () => {
      // The identity index (`<ns>:set::…`), which counts the other IPs of an alert, is refused.
      await retryAlertsAfter('giveback', 'start', /NOPERM|permission/i, (ns) => [
        'resetkeys',
        `~${ns}::*`,
        `~${ns}:claims::*`,
        `~${ns}:claim::*`,
      ]);
    });

    it("keeps the event's claim when the alert's cannot be given back either, so that the sender's retry alerts", async () => {
      // The outbox fails, and so does giving the alert's claims back (`<ns>:claim::…`); the events'
      // claims (`<ns>:claims::…`) can still go back.
      await retryAlertsAfter('keep', 'outbox', /outbox write failed/, (ns) => [
        'resetkeys',
        '%R~*',
        `%W~${ns}:claims::*`,
      ]);
    });
  },
);

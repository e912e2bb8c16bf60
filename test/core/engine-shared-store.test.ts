import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { AlertRecord } from '../../src/core/alert.ts';
import { createEngine } from '../../src/core/engine.ts';
import type { Outbox } from '../../src/core/ports.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { describeWithService, redisTestUser, uniqueNamespace } from '../store/helpers.ts';
import { arcEvent } from '../support/samples.ts';

const CHILD = fileURLToPath(new URL('./engine-race-child.ts', import.meta.url));

interface ChildResult {
  alerted: number;
  known: number;
  outboxAlerts: number;
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

function expectExactlyOneAlert(results: ChildResult[]) {
  expect(results.reduce((n, r) => n + r.alerted, 0)).toBe(1);
  expect(results.reduce((n, r) => n + r.outboxAlerts, 0)).toBe(1);
  expect(results.reduce((n, r) => n + r.known, 0)).toBe(49);
}

describe('engine: exactly one alert per new pair across two processes sharing SQLite', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'arc-engine-race-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it('one alert in total', async () => {
    expectExactlyOneAlert(await race(`sqlite://${path.join(dir, 'shared.db')}`, uniqueNamespace('engine')));
  });
});

describeWithService(
  'engine: exactly one alert per new pair across two processes sharing Redis',
  'TEST_REDIS_URL',
  (url) => {
    it('one alert in total', async () => {
      expectExactlyOneAlert(await race(url, uniqueNamespace('engine')));
    });
  },
);

describeWithService(
  'engine: exactly one alert per new pair across two processes sharing PostgreSQL',
  'TEST_POSTGRES_URL',
  (url) => {
    it('one alert in total', async () => {
      expectExactlyOneAlert(await race(url, uniqueNamespace('engine')));
    });
  },
);

describeWithService(
  'engine: a failed delivery whose alert claim cannot be given back (Redis refusing the write)',
  'TEST_REDIS_URL',
  (url) => {
    it('gives the alert claims back when the store fails after taking them, before the outbox, so that the retry alerts', async () => {
      const namespace = uniqueNamespace('engine-giveback');
      const redis = await redisTestUser(url, 'giveback', namespace);
      // The identity index (`<ns>:set::…`), which counts the other IPs of an alert, is refused.
      await redis.setRules(
        'resetkeys',
        `~${namespace}::*`,
        `~${namespace}:claims::*`,
        `~${namespace}:claim::*`,
      );
      const store = await openStateStore(redis.url, { namespace });
      const posted: AlertRecord[] = [];
      const outbox: Outbox = {
        async add(alerts) {
          posted.push(...alerts);
        },
      };
      try {
        const engine = await createEngine({ store, windowMs: 7 * 86_400_000, outbox });
        const event = arcEvent('azure-activity-log-record', {
          time: new Date(Date.now() - 60_000),
          ip: '198.51.100.69',
        });
        await expect(engine.evaluate([event])).rejects.toThrow(/NOPERM|permission/i);
        await redis.allowAll();
        const [retry] = await engine.evaluate([event]);
        expect(retry?.outcome).toBe('alerted');
        expect(posted).toHaveLength(1);
      } finally {
        await store.close();
        await redis.dispose();
      }
    });

    it("keeps the event's claim too, so that the sender's retry alerts", async () => {
      const namespace = uniqueNamespace('engine-keep');
      const redis = await redisTestUser(url, 'engine', namespace);
      const store = await openStateStore(redis.url, { namespace });
      const posted: AlertRecord[] = [];
      let outboxDown = true;
      const outbox: Outbox = {
        async add(alerts) {
          if (outboxDown) {
            // The outbox fails, and so does giving the alert's claims back (`<ns>:claim::…`);
            // the events' claims (`<ns>:claims::…`) can still go back.
            await redis.setRules('resetkeys', '%R~*', `%W~${namespace}:claims::*`);
            throw new Error('outbox write failed');
          }
          posted.push(...alerts);
        },
      };
      try {
        const engine = await createEngine({ store, windowMs: 7 * 86_400_000, outbox });
        const event = arcEvent('azure-activity-log-record', {
          time: new Date(Date.now() - 60_000),
          ip: '198.51.100.68',
        });
        await expect(engine.evaluate([event])).rejects.toThrow(/outbox write failed/);
        outboxDown = false;
        await redis.allowAll();
        const [retry] = await engine.evaluate([event]);
        expect(retry?.outcome).toBe('alerted');
        expect(posted).toHaveLength(1);
      } finally {
        await store.close();
        await redis.dispose();
      }
    });
  },
);

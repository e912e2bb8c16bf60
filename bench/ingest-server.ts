/**
 * The server side of the ingest benchmarks, run in its own process so that the load generator does
 * not share its event loop:
 *   node bench/ingest-server.ts bare          a node:http server that reads the body and answers 200
 *   node bench/ingest-server.ts app [WARM] [memory]
 *                                             the real app on embedded SQLite (log-only chat, logs
 *                                             to /dev/null); WARM pairs are first imported silently;
 *                                             `memory`: on the in-memory store instead (a reference
 *                                             that leaves out what storing costs)
 *   node bench/ingest-server.ts floor [WARM]  the least work a server must do that stores each
 *                                             event's claim and pair before its 200 (`startFloor`)
 * Prints `PORT <n>` once listening; stops on SIGTERM. On SIGUSR2 it prints one line
 * `STATS {"cpuUserUs":…,"cpuSystemUs":…,"mainThreadUs":…,"loopDelayMs":{"p50":…,"p99":…,"max":…}}`:
 * the process's CPU time so far (all threads), the main thread's alone (the event loop), and the
 * event-loop delay since the previous SIGUSR2, which the benchmark reads around each measured run. BENCH_DIR: where the SQLite file goes (default the
 * system temporary directory).
 */

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { pino } from 'pino';
import { createApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { appIdOf, arcRecord, ipOf } from './ingest-events.ts';

const mode = process.argv[2];

/** Answers the benchmark's SIGUSR2 with the CPU time and the event-loop delay since the last one. */
function reportStatsOnSignal() {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  process.on('SIGUSR2', () => {
    const cpu = process.cpuUsage();
    const main = process.threadCpuUsage();
    const ms = (ns: number) => Math.round(ns / 10_000) / 100;
    const stats = {
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      mainThreadUs: main.user + main.system,
      loopDelayMs: { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max) },
    };
    delay.reset();
    process.stdout.write(`STATS ${JSON.stringify(stats)}\n`);
  });
}

if (mode === 'bare') {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  server.listen(0, '127.0.0.1', () => {
    reportStatsOnSignal();
    process.stdout.write(`PORT ${(server.address() as AddressInfo).port}\n`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
} else if (mode === 'floor') {
  startFloor(Number(process.argv[3] ?? 0));
} else if (mode === 'app') {
  const warm = Number(process.argv[3] ?? 0);
  const inMemory = process.argv[4] === 'memory';
  const dir = mkdtempSync(path.join(process.env.BENCH_DIR ?? tmpdir(), 'arc-ingest-bench-'));
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    STORE_URL: inMemory ? 'memory://' : `sqlite://${path.join(dir, 'arc.db')}`,
    LOG_LEVEL: 'info',
  });
  // Real log lines, written where they cost what a file or pipe costs.
  const logger = createLogger({
    level: 'info',
    destination: pino.destination({ dest: '/dev/null', sync: true }),
  });
  const app = await createApp({ config, logger });
  if (warm > 0) {
    // A history as after a silent import: these pairs are known and were never alerted.
    const time = Date.now() - 3_600_000;
    for (let i = 0; i < warm; i += 1000) {
      const batch = [];
      for (let j = i; j < Math.min(warm, i + 1000); j++) batch.push(arcRecord(appIdOf(j), ipOf(j), time));
      await app.engine.evaluate(batch, { silent: true });
    }
  }
  const { port } = await app.start();
  reportStatsOnSignal();
  process.stdout.write(`PORT ${port}\n`);
  process.on('SIGTERM', () => {
    void app.stop().then(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    });
  });
} else {
  console.error('usage: node bench/ingest-server.ts bare | app [WARM_PAIRS] [memory] | floor [WARM_PAIRS]');
  process.exit(2);
}

/**
 * The floor of the app's design: what a server must do that stores each event's claim and its
 * pair's record before the 200, on embedded SQLite as the app configures it (WAL,
 * `synchronous=NORMAL`). It reads the body, parses it, and per turn of the
 * event loop runs one write transaction: for each event, a claim of its id (a key led by its time,
 * as the app's) and a read and a rewrite of its pair's record. Then it answers a JSON count. No
 * format parsing, validation, metrics, logs, allowlist, alert or outbox: the app does all of those
 * on top, so its throughput can only be lower.
 */
function startFloor(warm: number) {
  const dir = mkdtempSync(path.join(process.env.BENCH_DIR ?? tmpdir(), 'arc-ingest-floor-'));
  const db = new DatabaseSync(path.join(dir, 'floor.db'));
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('CREATE TABLE claims (key TEXT PRIMARY KEY, expires INTEGER) WITHOUT ROWID');
  db.exec('CREATE TABLE pairs (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID');
  const claim = db.prepare('INSERT INTO claims VALUES (?, ?) ON CONFLICT DO NOTHING');
  const read = db.prepare('SELECT value FROM pairs WHERE key = ?');
  const write = db.prepare(
    'INSERT INTO pairs VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
  );
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  interface Sighting {
    count: number;
    firstSeen: number;
    lastSeen: number;
  }
  const pairKey = (record: ReturnType<typeof arcRecord>) =>
    `${(record.identity as { claims: { appid: string } }).claims.appid}|${record.callerIpAddress as string}`;
  const time = Date.now() - 3_600_000;
  begin.run();
  for (let i = 0; i < warm; i++) {
    const key = pairKey(arcRecord(appIdOf(i), ipOf(i), time));
    write.run(key, JSON.stringify({ count: 1, firstSeen: time, lastSeen: time } satisfies Sighting));
  }
  commit.run();
  let pending: Array<{ body: string; res: ServerResponse }> = [];
  const flush = () => {
    const batch = pending;
    pending = [];
    const now = Date.now();
    const answers = new Array<string>(batch.length);
    begin.run();
    batch.forEach(({ body }, n) => {
      let record: ReturnType<typeof arcRecord>;
      try {
        record = JSON.parse(body) as ReturnType<typeof arcRecord>;
      } catch {
        answers[n] = '';
        return;
      }
      const at = Date.parse(record.time as string);
      const id = createHash('sha256')
        .update(`${record.correlationId as string}|${record.time as string}`)
        .digest('base64url');
      const fresh = claim.run(`${at.toString(36)}:${id}`, now + 14 * 86_400_000).changes === 1;
      const key = pairKey(record);
      const row = read.get(key) as { value: string } | undefined;
      const pair: Sighting = row
        ? (JSON.parse(row.value) as Sighting)
        : { count: 0, firstSeen: at, lastSeen: at };
      if (fresh) {
        pair.count++;
        pair.lastSeen = Math.max(pair.lastSeen, at);
        write.run(key, JSON.stringify(pair));
      }
      const outcome = !fresh ? 'duplicate' : row ? 'known' : 'alerted';
      answers[n] = `{"events":1,"accepted":1,"${outcome}":1}`;
    });
    commit.run();
    batch.forEach(({ res }, n) => {
      res.writeHead(answers[n] ? 200 : 400, { 'content-type': 'application/json' });
      res.end(answers[n] || '{"error":"not JSON"}');
    });
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (pending.length === 0) setImmediate(flush);
      pending.push({ body: Buffer.concat(chunks).toString(), res });
    });
  });
  server.listen(0, '127.0.0.1', () => {
    reportStatsOnSignal();
    process.stdout.write(`PORT ${(server.address() as AddressInfo).port}\n`);
  });
  process.on('SIGTERM', () =>
    server.close(() => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    }),
  );
}

/**
 * The server side of the ingest benchmarks, run in its own process so that the load generator does
 * not share its event loop:
 *   node bench/ingest-server.ts bare          a node:http server that reads the body and answers 200
 *   node bench/ingest-server.ts app [WARM]    the real app on embedded SQLite (log-only chat, logs
 *                                             to /dev/null); WARM pairs are first imported silently
 * Prints `PORT <n>` once listening; stops on SIGTERM. On SIGUSR2 it prints one line
 * `STATS {"cpuUserUs":…,"cpuSystemUs":…,"mainThreadUs":…,"loopDelayMs":{"p50":…,"p99":…,"max":…}}`:
 * the process's CPU time so far (all threads), the main thread's alone (the event loop), and the
 * event-loop delay since the previous SIGUSR2, which the benchmark reads around each measured run. BENCH_DIR: where the SQLite file goes (default the
 * system temporary directory).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
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
} else if (mode === 'app') {
  const warm = Number(process.argv[3] ?? 0);
  const dir = mkdtempSync(path.join(process.env.BENCH_DIR ?? tmpdir(), 'arc-ingest-bench-'));
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    STORE_URL: `sqlite://${path.join(dir, 'arc.db')}`,
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
  console.error('usage: node bench/ingest-server.ts bare | app [WARM_PAIRS]');
  process.exit(2);
}

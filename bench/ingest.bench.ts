/**
 * Ingest benchmarks (the server runs in a child process, the load is generated here):
 * 1. single-event POST /ingest throughput against a bare node:http server that only answers 200,
 *    same autocannon settings, same run: the ratio (target >= 0.5);
 * 2. bulk NDJSON over HTTP on embedded SQLite: events evaluated and stored per second
 *    (target >= 50,000/s);
 * 3. ingest-to-outbox latency (every event a new pair, so an alert stored in the outbox before
 *    the 200) at a steady 1,000 events/s: p99 (target < 20 ms).
 * Environment: BENCH_SECONDS (default 5) for runs 1 and 3, BENCH_BULK_EVENTS (default 300000).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import path from 'node:path';
import autocannon from 'autocannon';
import { appIdOf, arcRecord, ipOf } from './ingest-events.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const BULK_EVENTS = Number(process.env.BENCH_BULK_EVENTS ?? 300_000);
const CONNECTIONS = 10;
const SERVER = path.join(import.meta.dirname, 'ingest-server.ts');

interface Server {
  url: string;
  stop(): Promise<void>;
}

async function startServer(args: string[]): Promise<Server> {
  const child: ChildProcess = spawn(process.execPath, [SERVER, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`bench server exited (${code}) before listening`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits });
const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');

/**
 * Bodies for run 1, made before the run so that the load generator only sends them. Each is a
 * distinct event (a resent one would be a cheap `duplicate`); they cycle over `pairs` known pairs.
 */
function singleEventBodies(count: number, pairs: number): string[] {
  const bodies: string[] = new Array(count);
  for (let n = 0; n < count; n++) bodies[n] = JSON.stringify(arcRecord(appIdOf(n % pairs), ipOf(n % pairs)));
  return bodies;
}

/** Run 1: autocannon against one server, each request the next body of the pool. */
async function cannon(url: string, seconds: number, bodies: string[], cursor: { n: number }) {
  return autocannon({
    url: `${url}/ingest`,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => ({ ...req, body: bodies[cursor.n++ % bodies.length] }),
      },
    ],
  });
}

async function singleEventThroughput() {
  const pairs = 1000;
  const bodies = singleEventBodies(25_000 * (SECONDS + 1), pairs);
  const bare = await startServer(['bare']);
  await cannon(bare.url, 1, bodies, { n: 0 });
  const bareRun = await cannon(bare.url, SECONDS, bodies, { n: 0 });
  await bare.stop();

  // Known pairs: the history holds them, as in steady state.
  const app = await startServer(['app', String(pairs)]);
  const cursor = { n: 0 };
  await cannon(app.url, 1, bodies, cursor);
  const appRun = await cannon(app.url, SECONDS, bodies, cursor);
  await app.stop();

  const ratio = appRun.requests.average / bareRun.requests.average;
  console.log(
    `1. single-event POST /ingest: ${fmt(appRun.requests.average)} req/s (p99 ${appRun.latency.p99} ms, non-2xx ${appRun.non2xx}) vs bare node:http ${fmt(bareRun.requests.average)} req/s (p99 ${bareRun.latency.p99} ms); autocannon ${CONNECTIONS} connections, ${SECONDS} s each`,
  );
  console.log(
    `   ratio ${ratio.toFixed(2)} (target >= 0.5): ${verdict(ratio >= 0.5 && appRun.non2xx === 0)}`,
  );
}

function post(
  agent: Agent,
  url: string,
  path: string,
  body: Buffer,
  contentType: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${path}`,
      { method: 'POST', agent, headers: { 'content-type': contentType, 'content-length': body.length } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function bulkNdjson() {
  const warm = 10_000;
  const app = await startServer(['app', String(warm)]);
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  let made = 0;
  let fresh = warm;
  // ~1 MB bodies; 99% of events are known pairs, 1% new pairs that alert.
  const nextBody = (): Buffer | undefined => {
    if (made >= BULK_EVENTS) return undefined;
    const lines: string[] = [];
    let size = 0;
    while (made < BULK_EVENTS && size < 1_000_000 - 2000) {
      const i = made % 100 === 99 ? fresh++ : Math.floor(Math.random() * warm);
      const line = JSON.stringify(arcRecord(appIdOf(i), ipOf(i)));
      lines.push(line);
      size += line.length + 1;
      made++;
    }
    return Buffer.from(lines.join('\n'));
  };
  let events = 0;
  let accepted = 0;
  let failures = 0;
  const started = performance.now();
  const worker = async () => {
    for (let body = nextBody(); body; body = nextBody()) {
      const res = await post(agent, app.url, '/ingest', body, 'application/x-ndjson');
      if (res.status !== 200) {
        failures++;
        continue;
      }
      const summary = JSON.parse(res.text) as { events: number; accepted: number };
      events += summary.events;
      accepted += summary.accepted;
    }
  };
  await Promise.all([worker(), worker()]);
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  await app.stop();
  const rate = events / seconds;
  console.log(
    `2. bulk NDJSON over HTTP, embedded SQLite: ${fmt(events)} events (${fmt(accepted)} accepted, ${failures} failed requests) in ${seconds.toFixed(2)} s = ${fmt(rate)} events/s; ~1 MB bodies, 2 in flight, 99% known pairs of a ${fmt(warm)}-pair history, 1% new pairs`,
  );
  console.log(
    `   target >= 50,000 events/s: ${verdict(rate >= 50_000 && failures === 0 && accepted === events)}`,
  );
}

/** p99 bucket and share within 20 ms from the app's own latency histogram (status 200). */
function serverSideP99(metrics: string) {
  const buckets: Array<[number, number]> = [];
  for (const m of metrics.matchAll(
    /^arc_ingest_duration_seconds_bucket\{le="([^"]+)",status="200"\} (\d+)$/gm,
  )) {
    buckets.push([m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2])]);
  }
  const total = buckets.at(-1)?.[1] ?? 0;
  const within = buckets.find(([le]) => le === 0.02)?.[1] ?? 0;
  const p99 = buckets.find(([, n]) => n >= 0.99 * total)?.[0] ?? Number.NaN;
  return {
    within20ms: total ? `${((100 * within) / total).toFixed(2)}%` : 'n/a',
    p99Bucket: Number.isFinite(p99) ? `${p99 * 1000} ms` : 'above 5 s',
  };
}

async function steadyLatency() {
  const rate = 1000;
  const app = await startServer(['app']);
  const agent = new Agent({ keepAlive: true, maxSockets: 200 });
  const latencies: number[] = [];
  let non200 = 0;
  let sent = 0;
  let next = 1_000_000;
  const total = rate * SECONDS;
  const inflight: Promise<void>[] = [];
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000));
      for (; sent < due; sent++) {
        const i = next++;
        const body = Buffer.from(JSON.stringify(arcRecord(appIdOf(i), ipOf(i))));
        const t0 = performance.now();
        inflight.push(
          post(agent, app.url, '/ingest', body, 'application/json').then((res) => {
            latencies.push(performance.now() - t0);
            if (res.status !== 200 || !res.text.includes('"alerted":1')) non200++;
          }),
        );
      }
      if (sent >= total) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });
  await Promise.all(inflight);
  const elapsed = (performance.now() - started) / 1000;
  const server = serverSideP99(await (await fetch(`${app.url}/metrics`)).text());
  agent.destroy();
  await app.stop();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!;
  console.log(
    `3. ingest-to-outbox latency at ${fmt(sent / elapsed)} events/s for ${SECONDS} s (each a new pair: alert stored in the outbox before the 200): p50 ${pct(50).toFixed(2)} ms, p99 ${pct(99).toFixed(2)} ms, p99.9 ${pct(99.9).toFixed(2)} ms, max ${pct(100).toFixed(2)} ms; ${non200} not alerted/200`,
  );
  console.log(
    `   server side (arc_ingest_duration_seconds, from request to answer): ${server.within20ms} of requests answered within 20 ms, p99 in the bucket <= ${server.p99Bucket}`,
  );
  console.log(
    `   target p99 < 20 ms: ${verdict(pct(99) < 20 && non200 === 0)} (client side, load generator on the same machine)`,
  );
}

const only = process.env.BENCH_ONLY;
if (!only || only.includes('1')) await singleEventThroughput();
if (!only || only.includes('2')) await bulkNdjson();
if (!only || only.includes('3')) await steadyLatency();

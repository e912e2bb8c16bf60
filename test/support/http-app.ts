/**
 * Starts the real service in-process for HTTP tests: real config parsing, a real SQLite store in a
 * temporary directory, the real HTTP server on an ephemeral port, and a logger whose JSON lines
 * the test can read back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { type App, type AppOptions, createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { arcEvent } from './samples.ts';

/** A parsed log line. */
export type LogLine = Record<string, unknown> & { level: string; msg?: string };

export interface TestApp {
  app: App;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Every log line written so far, parsed. */
  logs: LogLine[];
  /** The raw log text, to check that nothing secret was written. */
  rawLogs(): string;
  dir: string;
  close(): Promise<void>;
}

export interface TestAppOptions extends Omit<AppOptions, 'config' | 'logger'> {
  /** Environment variables on top of the test defaults (port 0, loopback, SQLite in a temp dir). */
  env?: Record<string, string>;
  /** Keep the data directory (for a restart test); the caller removes it. */
  dir?: string;
}

/** Starts an app on an ephemeral port. Close it in `afterEach`/`afterAll`. */
export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const { env = {}, dir: givenDir, ...appOptions } = options;
  const dir = givenDir ?? mkdtempSync(path.join(tmpdir(), 'arc-http-'));
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    STORE_URL: `sqlite://${path.join(dir, 'arc.db')}`,
    LOG_LEVEL: 'debug',
    ...env,
  });
  const raw: string[] = [];
  const logs: LogLine[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: {
      write(line: string) {
        raw.push(line);
        for (const l of line.split('\n')) if (l.trim()) logs.push(JSON.parse(l) as LogLine);
      },
    },
  });
  // No drain on stop (its own test sets one): test clients keep connections alive, and each stop
  // would wait for it.
  const app = await createApp({ config, logger, stopDrainMs: 0, ...appOptions });
  const { port } = await app.start();
  return {
    app,
    url: `http://127.0.0.1:${port}`,
    logs,
    rawLogs: () => raw.join(''),
    dir,
    async close() {
      await app.stop();
      if (!givenDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PostOptions {
  contentType?: string | null;
  headers?: Record<string, string>;
  gzip?: boolean;
}

/** The answer of a request: status, headers and the JSON body (or text when not JSON). */
export interface Answer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** Posts to `/ingest`; an object body is sent as JSON, a string or buffer as is. */
export async function postIngest<T = Record<string, unknown>>(
  url: string,
  body: unknown,
  opts: PostOptions = {},
): Promise<Answer<T>> {
  // A Buffer, because fetch labels a string body text/plain on its own.
  let payload: Buffer = Buffer.isBuffer(body)
    ? body
    : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.contentType !== null) headers['content-type'] = opts.contentType ?? 'application/json';
  if (opts.gzip) {
    payload = gzipSync(payload);
    headers['content-encoding'] = 'gzip';
  }
  const res = await fetch(`${url}/ingest`, { method: 'POST', headers, body: payload });
  return answer<T>(res);
}

export async function answer<T>(res: Response): Promise<Answer<T>> {
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed as T, text };
}

let serial = 0;
const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

/** A fresh GUID-shaped identity, so tests sharing a store do not see each other's pairs. */
export function freshAppId(): string {
  serial++;
  return `${hex(process.pid & 0xffff, 8)}-${hex(serial, 4)}-4000-8000-${hex(Date.now() % 2 ** 40, 12)}`;
}

/**
 * A DERIVED Arc `listClusterUserCredential` Event Hub record (see samples.ts) with a fresh
 * correlation id, timed now unless told otherwise.
 */
export function arcRecord(opts: Parameters<typeof arcEvent>[1] = {}): Record<string, unknown> {
  serial++;
  return arcEvent('azure-activity-log-record', {
    time: new Date(),
    correlationId: `c0ffee00-0000-4000-8000-${hex(serial, 12)}`,
    ...opts,
  });
}

import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { ConfigError, loadConfig } from './config.ts';
import { OUTCOMES, type Outcome } from './core/alert.ts';
import { createEngine } from './core/engine.ts';
import { extractEvents } from './core/formats/index.ts';
import { openStateStore } from './store/open-state-store.ts';
import { redactUrl } from './store/parse-store-url.ts';

const USAGE = `usage: npm run history -- import <file|->

Loads sightings from an export into the history without alerting, so that a new install does not
flood the channel on its first day. The file is NDJSON (one event per line) or one JSON document,
in any detection format arc-responder accepts; Elasticsearch exports are unwrapped: a _search
response ({"hits":{"hits":[...]}}) or one {"_source": {...}} document per line.
Uses STORE_URL and HISTORY_WINDOW like the service.`;

const BATCH = 5000;

/** Unwraps Elasticsearch hits and `_source` documents; leaves other inputs as they are. */
export function unwrapExport(doc: unknown): unknown[] {
  if (doc !== null && typeof doc === 'object' && !Array.isArray(doc)) {
    const hits = (doc as { hits?: { hits?: unknown } }).hits?.hits;
    if (Array.isArray(hits)) return hits.flatMap(unwrapExport);
    const source = (doc as { _source?: unknown })._source;
    if (source !== null && typeof source === 'object') return [source];
  }
  return extractEvents(doc).flatMap((e: unknown) =>
    e !== null && typeof e === 'object' && '_source' in e ? unwrapExport(e) : [e],
  );
}

/** The first non-blank character of a file, read without loading the file. */
async function firstChar(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(256), 0, 256, 0);
    return buffer.subarray(0, bytesRead).toString('utf8').trimStart().slice(0, 1);
  } finally {
    await handle.close();
  }
}

type ReadItem = { event: unknown } | { error: string };

/**
 * Lines that did not parse as NDJSON from their first line on: one pretty-printed JSON document,
 * or NDJSON whose first line is broken (then that line is reported, the others read). When no
 * line reads as a JSON object or array either, the document's own parse error stands.
 */
function* documentOrLines(lines: string[]): Generator<ReadItem> {
  let doc: unknown;
  try {
    doc = JSON.parse(lines.join('\n'));
  } catch (error) {
    const items: ReadItem[] = [];
    let read = 0;
    lines.forEach((line, i) => {
      const trimmed = line.trim();
      if (trimmed === '') return;
      try {
        const value: unknown = JSON.parse(trimmed);
        for (const event of unwrapExport(value)) items.push({ event });
        // A line of a broken pretty-printed document can be valid JSON alone (`"x"`, `1`): only an
        // object or array makes it NDJSON.
        if (value !== null && typeof value === 'object') read++;
      } catch {
        items.push({ error: `line ${i + 1}: not valid JSON` });
      }
    });
    if (read === 0) throw error;
    yield* items;
    return;
  }
  for (const event of unwrapExport(doc)) yield { event };
}

/** The events of `path` (`-`: standard input), whose first non-blank character is `first`. */
async function* readEvents(path: string, first: string | undefined): AsyncGenerator<ReadItem> {
  if (path !== '-') {
    // A single JSON document (array, envelope, search response) is read whole.
    if (first === '[') {
      const text = await readFile(path, 'utf8');
      for (const event of unwrapExport(JSON.parse(text))) yield { event };
      return;
    }
  }
  const input = path === '-' ? process.stdin : createReadStream(path, { encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  let buffered: string[] | undefined;
  for await (const line of lines) {
    n++;
    if (buffered) {
      buffered.push(line);
      continue;
    }
    const trimmed = line.trim();
    if (trimmed === '') continue;
    try {
      for (const event of unwrapExport(JSON.parse(trimmed))) yield { event };
    } catch {
      if (n === 1) {
        // Not NDJSON: a pretty-printed JSON document. Read the rest and parse it whole.
        buffered = [line];
        continue;
      }
      yield { error: `line ${n}: not valid JSON` };
    }
  }
  if (buffered) yield* documentOrLines(buffered);
}

async function importHistory(path: string): Promise<number> {
  const config = loadConfig(process.env);
  // The input is read first, before the store is opened: a wrong path changes nothing.
  const first = path === '-' ? undefined : await firstChar(path);
  const store = await openStateStore(config.storeUrl);
  const engine = await createEngine({
    store,
    windowMs: config.historyWindowMs,
    outbox: { add: async () => {} },
  });
  const counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
  const problems = new Map<string, number>();
  let batch: unknown[] = [];
  const flush = async () => {
    for (const r of await engine.evaluate(batch, { silent: true })) {
      counts[r.outcome]++;
      if (r.outcome === 'invalid' || r.outcome === 'ignored') {
        const key = `${r.outcome}: ${r.reason}`;
        problems.set(key, (problems.get(key) ?? 0) + 1);
      }
    }
    batch = [];
  };
  try {
    for await (const item of readEvents(path, first)) {
      if ('error' in item) {
        counts.invalid++;
        problems.set(`invalid: ${item.error}`, 1);
        continue;
      }
      batch.push(item.event);
      if (batch.length >= BATCH) await flush();
    }
    if (batch.length > 0) await flush();
  } finally {
    await store.close();
  }
  const recorded = counts.known + counts.allowlisted;
  console.log(
    `imported ${recorded} sightings (${OUTCOMES.map((o) => `${o} ${counts[o]}`).join(', ')}) into ${redactUrl(config.storeUrl)}`,
  );
  const top = [...problems.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10);
  for (const [reason, n] of top) console.log(`  ${n} × ${reason}`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [group, command, file] = argv;
  if (group !== 'history' || command !== 'import' || !file) {
    console.error(USAGE);
    return 2;
  }
  try {
    return await importHistory(file);
  } catch (err) {
    if (err instanceof ConfigError) console.error(err.message);
    else console.error(`history import failed: ${(err as Error).message}`);
    return 1;
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));

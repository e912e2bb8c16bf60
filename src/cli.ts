import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { ConfigError, loadConfig } from './config.ts';
import { OUTCOMES, type Outcome } from './core/alert.ts';
import { isAppIdText } from './core/app-id.ts';
import { listAudit } from './core/audit.ts';
import { dashGuid } from './core/azure-ids.ts';
import { formatDuration } from './core/duration.ts';
import { createEngine } from './core/engine.ts';
import { extractEvents } from './core/formats/index.ts';
import { createHistory, isAllowActive } from './core/history.ts';
import type { AllowlistEntry } from './core/pair.ts';
import { openStateStore } from './store/open-state-store.ts';
import { redactUrl } from './store/parse-store-url.ts';

const USAGE = `usage: npm run history -- import <file|->
       npm run history -- list <appid>
       npm run history -- audit [<alert id>]

import: loads sightings from an export into the history without alerting, so that a new install does not
flood the channel on its first day. The file is NDJSON (one event per line) or one JSON document,
in any detection format arc-responder accepts; Elasticsearch exports are unwrapped: a _search
response ({"hits":{"hits":[...]}}) or one {"_source": {...}} document per line.

list: prints every source IP of the identity in the history window (first seen, last seen, count,
allowlist entry), as /arc-history does in Slack, and its allowlist entries for IPs not seen lately.

audit: prints the audit records (every Mark benign, allowlist removal, Revoke, Undo and refused
click, with who, when, the plan and each Azure call), oldest first, one JSON object per line, for
a SIEM or a review: all of them, or those of one alert. Records are kept for 400 days.

They use STORE_URL and HISTORY_WINDOW like the service (no other variable is read).`;

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

/** The service's configuration of the history alone: a Slack or Azure setting cannot stop the CLI. */
const historyConfig = () =>
  loadConfig({
    ...(process.env.STORE_URL === undefined ? {} : { STORE_URL: process.env.STORE_URL }),
    ...(process.env.HISTORY_WINDOW === undefined ? {} : { HISTORY_WINDOW: process.env.HISTORY_WINDOW }),
  });

async function importHistory(path: string): Promise<number> {
  const config = historyConfig();
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

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** `history list <appid>`: the identity's IPs in the window, as `/arc-history` lists them. */
async function listIdentity(arg: string): Promise<number> {
  const appId = dashGuid(arg) ?? arg;
  if (!isAppIdText(appId)) {
    console.error(`${JSON.stringify(arg.slice(0, 80))} is not an application id\n\n${USAGE}`);
    return 2;
  }
  const config = historyConfig();
  const store = await openStateStore(config.storeUrl);
  try {
    const history = createHistory({ store, windowMs: config.historyWindowMs });
    const { entries, dormant } = await history.readIdentity(appId);
    const window = formatDuration(config.historyWindowMs);
    const now = Date.now();
    // A reason is typed in Slack: no control character of it reaches the terminal.
    const printable = (text: string) =>
      Array.from(text, (c) => {
        const code = c.charCodeAt(0);
        return code < 0x20 || (code >= 0x7f && code < 0xa0) ? ' ' : c;
      }).join('');
    const allowText = (a: AllowlistEntry) =>
      printable(
        `allowlisted by ${a.by}${a.until === undefined ? '' : ` until ${iso(a.until)}`}${a.reason ? `: ${a.reason}` : ''}`,
      );
    console.log(
      `${entries.length} source IP${entries.length === 1 ? '' : 's'} of ${appId} in the last ${window} (${redactUrl(config.storeUrl)})`,
    );
    if (entries.length > 0) console.log(['ip', 'first seen', 'last seen', 'count', 'allowlist'].join('\t'));
    for (const { pair, allow } of entries) {
      const active = isAllowActive(allow, now) ? allowText(allow) : '-';
      console.log([pair.ip, iso(pair.firstSeen), iso(pair.lastSeen), pair.count, active].join('\t'));
    }
    for (const a of dormant) console.log(`${a.ip}\tnot seen in the last ${window}\t${allowText(a)}`);
    return 0;
  } finally {
    await store.close();
  }
}

/** `history audit [<alert id>]`: the audit records as NDJSON, oldest first. */
async function printAudit(alertId: string | undefined): Promise<number> {
  if (alertId !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(alertId)) {
    console.error(`${JSON.stringify(alertId.slice(0, 80))} is not an alert id\n\n${USAGE}`);
    return 2;
  }
  const config = historyConfig();
  const store = await openStateStore(config.storeUrl);
  try {
    for (const entry of await listAudit(store, alertId)) {
      console.log(JSON.stringify({ ...entry, time: new Date(entry.at).toISOString() }));
    }
    return 0;
  } finally {
    await store.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [group, command, arg] = argv;
  if (group === 'history' && (command === '--help' || command === '-h' || command === 'help')) {
    console.log(USAGE);
    return 0;
  }
  if (group === 'history' && command === 'audit') {
    return await guarded(command, () => printAudit(arg));
  }
  const run = command === 'import' ? importHistory : command === 'list' ? listIdentity : undefined;
  if (group !== 'history' || run === undefined || !arg) {
    console.error(USAGE);
    return 2;
  }
  return await guarded(command, () => run(arg));
}

/** Runs a command, turning a failure into its message on stderr and exit code 1. */
async function guarded(command: string | undefined, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof ConfigError) console.error(err.message);
    else console.error(`history ${command} failed: ${(err as Error).message}`);
    return 1;
  }
}

if (import.meta.main) {
  // A reader that stops early (`| head -1`) ends the output, not with a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  process.exitCode = await main(process.argv.slice(2));
}

import { createReadStream, existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline, Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import { ConfigError, loadHistoryConfig } from './config.ts';
import { OUTCOMES, type Outcome } from './core/alert.ts';
import { appIdFromTyped, isAppIdText } from './core/app-id.ts';
import { type AuditEntry, exportAudit, scanAudit } from './core/audit.ts';
import { formatDuration, parseDuration } from './core/duration.ts';
import { createEngine, type Engine } from './core/engine.ts';
import { extractEvents } from './core/formats/index.ts';
import { createHistory, isAllowActive } from './core/history.ts';
import { holdsHistory } from './core/learning-period.ts';
import type { AllowlistEntry } from './core/pair.ts';
import { openStateStore } from './store/open-state-store.ts';
import { parseStoreUrl, redactUrl } from './store/parse-store-url.ts';

const USAGE = `usage: npm run history -- import <file|->
       npm run history -- list <appid>
       npm run history -- allowlist
       npm run history -- audit [<alert id>] [--since <time or duration>]

import: loads sightings from an export into the history without alerting, so that a new install does not
flood the channel on its first day. The file is NDJSON (one event per line) or one JSON document,
in any detection format arc-responder accepts; Elasticsearch exports are unwrapped: a _search
response ({"hits":{"hits":[...]}}) or one {"_source": {...}} document per line.

list: prints every source IP of the identity in the history window (first seen, last seen, count,
allowlist entry), as /arc-history does in Slack, and its allowlist entries for IPs not seen lately.

allowlist: prints every allowlist entry that lasts, of every identity (appid, IP, who made it and
when, until when, from which alert, and why), for a periodic review of the exceptions.

audit: prints the audit records (every Mark benign, allowlist removal, Revoke, Undo and refused
click, with who, when, the plan and each Azure call), oldest first, one JSON object per line, for
a SIEM or a review: all of them, or those of one alert; --since keeps those from a time on (ISO
8601, such as 2026-11-01T00:00:00Z) or from a duration ago (24h, 7d). For a scheduled export,
start 15 minutes before the last exported time and drop the records whose id was exported
already: a record stored late can be older than one exported before it. Records are kept for 400
days. Use npm run -s (or npm's --silent) so that npm's own header lines stay out of the output.

They use STORE_URL and HISTORY_WINDOW like the service (no other variable is read).`;

const BATCH = 5000;

/** Unwraps Elasticsearch hits and `_source` documents; leaves other inputs as they are. */
function unwrapExport(doc: unknown): unknown[] {
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

/**
 * The largest JSON document (or line) read whole, in characters: V8's strings end a little past
 * 512 Mi characters (parsing one this large takes about 2 GB of memory).
 */
const MAX_DOCUMENT_CHARS = 500 * 1024 * 1024;

const TOO_LARGE = `is larger than ${MAX_DOCUMENT_CHARS / 1024 / 1024} MiB: a document this large cannot be read whole; export NDJSON (one event per line) instead, or split the file`;

/** Fails, with the system's reason, when `path` cannot be read (missing, a directory, no right). */
async function checkReadable(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.read(Buffer.alloc(1), 0, 1, 0);
  } finally {
    await handle.close();
  }
}

/** `input` unpacked when it starts with gzip's magic bytes (a file or standard input alike). */
async function unpacked(input: Readable): Promise<Readable> {
  const chunks: AsyncIterator<Buffer> = input[Symbol.asyncIterator]();
  const first = await chunks.next();
  if (first.done) return Readable.from([]);
  const head = first.value;
  const whole = Readable.from(
    (async function* () {
      yield head;
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
    })(),
    { objectMode: false },
  );
  // pipeline() ends both streams when either fails.
  return head[0] === 0x1f && head[1] === 0x8b ? pipeline(whole, createGunzip(), () => {}) : whole;
}

/** The lines of `input` as text, numbered from 1; a line past `MAX_DOCUMENT_CHARS` is an error. */
async function* textLines(input: Readable): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let n = 0;
  for await (const chunk of input) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer);
    let nl = pending.indexOf('\n');
    while (nl !== -1) {
      n++;
      yield pending.slice(0, nl).replace(/\r$/, '');
      pending = pending.slice(nl + 1);
      nl = pending.indexOf('\n');
    }
    if (pending.length > MAX_DOCUMENT_CHARS) throw new Error(`line ${n + 1} ${TOO_LARGE}`);
  }
  pending += decoder.end();
  if (pending !== '') yield pending.replace(/\r$/, '');
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
    if (read === 0) {
      throw new Error(
        `the input is neither NDJSON (no line holds a JSON object or array) nor one JSON document: ${(error as Error).message}`,
      );
    }
    yield* items;
    return;
  }
  for (const event of unwrapExport(doc)) yield { event };
}

/** The events of `input`: NDJSON, or one JSON document (pretty-printed or not), gzip unpacked. */
async function* readEvents(input: Readable): AsyncGenerator<ReadItem> {
  let n = 0;
  let buffered: string[] | undefined;
  let bufferedChars = 0;
  for await (const line of textLines(input)) {
    n++;
    if (buffered) {
      buffered.push(line);
      bufferedChars += line.length + 1;
      if (bufferedChars > MAX_DOCUMENT_CHARS) {
        throw new Error(
          `the file did not read as NDJSON from its first line on, so it is read as one JSON document, and it ${TOO_LARGE} (an NDJSON file whose first line is broken: mend or remove that line)`,
        );
      }
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
        bufferedChars = line.length;
        continue;
      }
      yield { error: `line ${n}: not valid JSON` };
    }
  }
  if (buffered) yield* documentOrLines(buffered);
}

const historyConfig = () => loadHistoryConfig(process.env);

/**
 * Opens the store for a command that only reads it (`list`, `audit`): a SQLite file that is not
 * there is an error, not a new empty store, so that a mistyped STORE_URL never answers "nothing"
 * (an audit export that finds no records, say) and leaves no file behind.
 */
async function openExistingStore(storeUrl: string) {
  const location = parseStoreUrl(storeUrl);
  if (location.kind === 'memory' || (location.kind === 'sqlite' && location.path === ':memory:')) {
    // A store in memory is the service process's own: this process would only see an empty one.
    throw new Error(
      `${location.display} is private to the process that opens it: this command cannot read the service's; set STORE_URL to the service's SQLite file, Redis or PostgreSQL`,
    );
  }
  if (location.kind === 'sqlite' && !existsSync(location.path)) {
    throw new Error(
      `no store at ${location.path}: STORE_URL names a SQLite file that does not exist (nothing was created; check STORE_URL and the working directory)`,
    );
  }
  // Nothing is created: on PostgreSQL, tables that are missing are an error.
  const store = await openStateStore(storeUrl, { existing: true });
  // A Redis database or PostgreSQL schema that a service never used (a mistyped number or name)
  // would read as empty: a service marks its store once it stores a sighting.
  if (location.kind !== 'sqlite' && !(await holdsHistory(store))) {
    await store.close();
    throw new Error(
      `no arc-responder history at ${location.display}: no service has stored a sighting there (nothing was changed; check STORE_URL: the database number or ?schema=)`,
    );
  }
  return store;
}

async function importHistory(path: string): Promise<number> {
  const config = historyConfig();
  // A path that cannot be read changes nothing: it is checked before the store is opened, and the
  // store is opened with the first batch, so a file that turns out unreadable (not JSON, too
  // large) stops the import before that too.
  if (path !== '-') await checkReadable(path);
  const file = path === '-' ? process.stdin : createReadStream(path);
  let opened: { store: Awaited<ReturnType<typeof openStateStore>>; engine: Engine } | undefined;
  const openStore = async () => {
    if (opened) return opened;
    const store = await openStateStore(config.storeUrl);
    const engine = await createEngine({
      store,
      windowMs: config.historyWindowMs,
      outbox: { add: async () => {} },
    });
    opened = { store, engine };
    return opened;
  };
  const counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
  const problems = new Map<string, number>();
  let batch: unknown[] = [];
  const flush = async () => {
    const { engine } = await openStore();
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
    for await (const item of readEvents(await unpacked(file))) {
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
    file.destroy();
    await opened?.store.close();
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

/** A reason is typed in Slack: no control character of it reaches the terminal. */
const printable = (text: string) =>
  Array.from(text, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x20 || (code >= 0x7f && code < 0xa0) ? ' ' : c;
  }).join('');

/** `history list <appid>`: the identity's IPs in the window, as `/arc-history` lists them. */
async function listIdentity(arg: string): Promise<number> {
  const appId = appIdFromTyped(arg);
  if (!isAppIdText(appId)) {
    console.error(`${JSON.stringify(arg.slice(0, 80))} is not an application id\n\n${USAGE}`);
    return 2;
  }
  const config = historyConfig();
  const store = await openExistingStore(config.storeUrl);
  try {
    const history = createHistory({ store, windowMs: config.historyWindowMs });
    const { entries, dormant } = await history.readIdentity(appId);
    const window = formatDuration(config.historyWindowMs);
    const now = Date.now();
    const allowText = (a: AllowlistEntry) =>
      printable(
        `allowlisted by ${a.by}${a.until === undefined ? '' : ` until ${iso(a.until)}`}${a.reason ? `: ${a.reason}` : ''}`,
      );
    console.log(
      `${entries.length} source IP${entries.length === 1 ? '' : 's'} of ${appId} in the last ${window} (${redactUrl(config.storeUrl)})`,
    );
    // The header comes before any row, also before allowlist entries alone: rows start on line 3.
    if (entries.length > 0 || dormant.length > 0) {
      console.log(['ip', 'first seen', 'last seen', 'count', 'allowlist'].join('\t'));
    }
    for (const { pair, allow } of entries) {
      const active = isAllowActive(allow, now) ? allowText(allow) : '-';
      console.log([pair.ip, iso(pair.firstSeen), iso(pair.lastSeen), pair.count, active].join('\t'));
    }
    // Five columns too, so that a script splits every row alike: no sighting, so no times.
    for (const a of dormant) {
      console.log([a.ip, '-', '-', 0, `${allowText(a)} (not seen in the last ${window})`].join('\t'));
    }
    return 0;
  } finally {
    await store.close();
  }
}

/**
 * `history allowlist`: every allowlist entry that lasts, one row each. Identities are found through
 * the index the entries are made with, and through the audit records of Mark benign, which also
 * name those marked before that index existed.
 */
async function printAllowlist(): Promise<number> {
  const config = historyConfig();
  const store = await openExistingStore(config.storeUrl);
  try {
    const marked = new Set<string>();
    await scanAudit(store, (e) => {
      if (e.action === 'mark-benign' && e.appId !== undefined) marked.add(e.appId);
    });
    const history = createHistory({ store, windowMs: config.historyWindowMs });
    const entries = await history.listAllowlist(marked);
    console.log(
      `${entries.length} allowlist entr${entries.length === 1 ? 'y' : 'ies'} (${redactUrl(config.storeUrl)})`,
    );
    if (entries.length > 0) {
      console.log(['appid', 'ip', 'by', 'made', 'until', 'alert', 'reason'].join('\t'));
    }
    for (const a of entries) {
      const until = a.until === undefined ? 'never' : iso(a.until);
      console.log(
        [a.appId, a.ip, printable(a.by), iso(a.at), until, a.alertId ?? '-', printable(a.reason || '-')].join(
          '\t',
        ),
      );
    }
    return 0;
  } finally {
    await store.close();
  }
}

/** `--since`'s value: an ISO 8601 time with its zone, or a duration before now; undefined when neither. */
function parseSince(text: string, now: number): number | undefined {
  const ago = parseDuration(text);
  if (ago !== undefined) return now - ago;
  if (!/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2}))?$/i.test(text)) return undefined;
  // Date.parse rolls a day the month does not have over (2026-02-30 is 2 March): refused instead.
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

/**
 * One audit record as the export writes it: its time in ISO 8601 too, and `detail` always an
 * object (a refusal's text is `{"reason": …}`), so that a SIEM maps the field one way.
 */
function exported(entry: AuditEntry): string {
  const { detail, ...rest } = entry;
  const shaped = typeof detail === 'string' ? { reason: detail } : detail;
  return JSON.stringify({
    ...rest,
    time: new Date(entry.at).toISOString(),
    ...(shaped === undefined ? {} : { detail: shaped }),
  });
}

/** Writes a line to stdout, waiting while the reader is behind (a pipe to a slow SIEM shipper). */
function writeLine(line: string): Promise<void> | undefined {
  if (process.stdout.write(`${line}\n`)) return undefined;
  return new Promise((resolve) => process.stdout.once('drain', () => resolve()));
}

/** `history audit [<alert id>] [--since …]`: the audit records as NDJSON, oldest first. */
async function printAudit(args: readonly string[]): Promise<number> {
  let alertId: string | undefined;
  let since: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--since') {
      const value = args[++i];
      since = value === undefined ? undefined : parseSince(value, Date.now());
      if (since === undefined) {
        console.error(
          `--since needs an ISO 8601 time with its zone (2026-11-01T00:00:00Z) or a duration (24h, 7d), got ${JSON.stringify((value ?? '').slice(0, 80))}\n\n${USAGE}`,
        );
        return 2;
      }
    } else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      return 0;
    } else if (arg.startsWith('-')) {
      // Alert ids are hex: an option mistyped must not read as an alert with no records.
      console.error(`unknown option ${JSON.stringify(arg.slice(0, 80))}\n\n${USAGE}`);
      return 2;
    } else if (alertId === undefined && /^[A-Za-z0-9_-]{1,64}$/.test(arg)) {
      alertId = arg;
    } else {
      console.error(`${JSON.stringify(arg.slice(0, 80))} is not an alert id\n\n${USAGE}`);
      return 2;
    }
  }
  const config = historyConfig();
  const store = await openExistingStore(config.storeUrl);
  try {
    await exportAudit(
      store,
      { ...(alertId ? { alertId } : {}), ...(since !== undefined ? { since } : {}) },
      (e) => writeLine(exported(e)),
    );
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
    return await guarded(command, () => printAudit(argv.slice(2)));
  }
  if (group === 'history' && command === 'allowlist') {
    if (argv.length > 2) {
      console.error(`allowlist takes no argument, got ${JSON.stringify(argv[2]!.slice(0, 80))}\n\n${USAGE}`);
      return 2;
    }
    return await guarded(command, printAllowlist);
  }
  const run = command === 'import' ? importHistory : command === 'list' ? listIdentity : undefined;
  if (group !== 'history' || run === undefined || !arg) {
    console.error(USAGE);
    return 2;
  }
  // A second file (a shell glob, say) would otherwise be left out without a word.
  const given = argv.length - 2;
  if (given > 1) {
    const [what, each] = command === 'import' ? ['one file', 'file'] : ['one appid', 'identity'];
    console.error(`${command} takes ${what}, not ${given}: run it once per ${each}\n\n${USAGE}`);
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

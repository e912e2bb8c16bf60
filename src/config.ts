import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { type Metadata, parseMetadata } from 'mmdb-lib/lib/metadata.js';
import { z } from 'zod';
import { dashGuid } from './core/azure-ids.ts';
import { MONTH_UNIT, parseDuration } from './core/duration.ts';
import { parseStoreUrl } from './store/parse-store-url.ts';

/** The service's configuration, parsed once from the environment. */
export interface Config {
  port: number;
  host: string;
  storeUrl: string;
  historyWindowMs: number;
  ingestTokens: string[];
  ingestMaxBytes: number;
  learningPeriodMs?: number;
  /** GeoIP database files (MaxMind DB format) for events that carry no geo or AS. */
  geoip?: { cityDb?: string; asnDb?: string };
  slack?: {
    botToken: string;
    signingSecret: string;
    appToken?: string;
    alertChannel: string;
    apiUrl: string;
    responders: string[];
    /**
     * Who may use Mark benign and Remove allowlist: `channel` (the default), anyone in the alert
     * channel and responders anywhere; `responders`, responders only.
     */
    allowlistBy: 'channel' | 'responders';
    /**
     * Who may use `/arc-history <appid>`: `anyone` (the default), any member of the workspace;
     * `channel`, members of the alert channel from there and responders anywhere; `responders`,
     * responders only.
     */
    historyBy: 'anyone' | 'channel' | 'responders';
  };
  azure: {
    /**
     * Whether to call Azure at all (planning, enrichment, remediation): true when live remediation
     * or any Azure identity or endpoint is configured. Off, dry-run plans from the evidence alone
     * and nothing probes the managed-identity endpoint of a machine that is not in Azure.
     */
    enabled: boolean;
    remediation: 'dry-run' | 'live';
    armEndpoint: string;
    graphEndpoint: string;
    authorityHost?: string;
    /** `AZURE_TENANT_ID` when it is a GUID (dashed, lower case): the tenant the service acts in. */
    tenantId?: string;
    /**
     * `AZURE_CLIENT_ID` when it is a GUID (dashed, lower case): the application the service runs as
     * (an app registration's, or a user-assigned managed identity's), which no Revoke acts on.
     */
    clientId?: string;
  };
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /**
   * The secret values the environment holds (ingest tokens, Slack's tokens and signing secret, the
   * store's password, Azure's client secret and passwords), which no log line or message may carry.
   */
  secrets: string[];
}

/** The Azure credential variables that hold a secret (read by `DefaultAzureCredential`). */
const AZURE_SECRET_VARIABLES = ['AZURE_CLIENT_SECRET', 'AZURE_CLIENT_CERTIFICATE_PASSWORD', 'AZURE_PASSWORD'];

/** The password a valid `STORE_URL` carries, as written and percent-decoded (as a driver reads it). */
function storePasswords(url: string | undefined): string[] {
  const location = url === undefined ? undefined : parseStoreUrl(url);
  if (!location || !('password' in location) || !location.password) return [];
  try {
    return [location.password, decodeURIComponent(location.password)];
  } catch {
    // A stray % is no escape: the password is only ever read as written.
    return [location.password];
  }
}

/** Raised when the environment is invalid; `problems` names every bad variable. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

/** Largest INGEST_MAX_BYTES: 256 MiB. */
const MAX_INGEST_BYTES = 268_435_456;

/** The entries of a comma-separated list, trimmed, empty ones left out. */
const commaList = (v: string | undefined): string[] =>
  (v ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);

const optional = z
  .string()
  .transform((v) => v.trim())
  .optional()
  .transform((v) => (v === '' ? undefined : v));

/**
 * A comma-separated list variable: once set, it holds at least one entry (commas alone would pass
 * for a list and leave it empty without a word), and each entry is `valid`.
 */
const commaListOf = (none: string, valid: (entry: string) => boolean, invalid: string) =>
  optional.superRefine((v, ctx) => {
    if (v === undefined) return;
    const entries = commaList(v);
    const message = entries.length === 0 ? none : entries.every(valid) ? undefined : invalid;
    if (message !== undefined) ctx.addIssue({ code: 'custom', message });
  });

/** The longest history window or learning period: a year, which any real use stays under. */
const MAX_DURATION_MS = 366 * 86_400_000;

/** A duration variable; with `zero`, also zero (`0`, with a unit or without), which means something of its own. */
const duration = (name: string, zero = false) =>
  optional.transform((v, ctx) => {
    if (v === undefined) return undefined;
    const ms = zero && v.trim() === '0' ? 0 : parseDuration(v);
    if (ms === undefined) {
      const month = MONTH_UNIT.test(v)
        ? ': M is a month in Elastic date math but no unit here; write minutes as m, a month as 30d'
        : '';
      ctx.addIssue({
        code: 'custom',
        message: `${name} must be a duration like 7d, 36h, 90m (got "${v}")${month}`,
      });
      return z.NEVER;
    }
    if (ms <= 0 && !(zero && ms === 0)) {
      ctx.addIssue({ code: 'custom', message: `${name} must be longer than zero (got "${v}")` });
      return z.NEVER;
    }
    if (ms > MAX_DURATION_MS) {
      ctx.addIssue({ code: 'custom', message: `${name} must be at most 366d (got "${v}")` });
      return z.NEVER;
    }
    return ms;
  });

/**
 * Whether a URL's authority carries user info (`user:password@`). fetch refuses such a URL on every
 * call, with an error that repeats it (password included) into the log; the Azure call log would
 * keep it too. Checked on the text, so that the value is never echoed back.
 */
const hasUserInfo = (v: string): boolean => /^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]*@/i.test(v);

const userInfoMessage = (name: string) =>
  `${name} must not carry a user name or password (user:password@host): Slack and Azure are called with their own tokens, and a proxy's credentials cannot be given in this URL`;

/** A web address that `shape` accepts (its scheme and a host), without user info. */
const webUrl = (name: string, shape: RegExp, what: string) =>
  optional
    .refine((v) => v === undefined || shape.test(v), { message: `${name} must be an ${what} URL` })
    .refine((v) => v === undefined || !hasUserInfo(v), { message: userInfoMessage(name) });

const httpUrl = (name: string) => webUrl(name, /^https?:\/\/[^/\s]+/i, 'http(s)');
// The Azure SDK sends bearer tokens only over TLS, so these must be https.
const httpsUrl = (name: string) => webUrl(name, /^https:\/\/[^/\s]+/i, 'https');

/** A kind of GeoIP database: the variable that names it and the database types it takes. */
export interface GeoIpKind {
  variable: 'GEOIP_CITY_DB' | 'GEOIP_ASN_DB';
  type: RegExp;
  expected: string;
}

export const GEOIP_CITY: GeoIpKind = {
  variable: 'GEOIP_CITY_DB',
  type: /city|country/i,
  expected: 'a City or Country database (GeoLite2-City, GeoIP2-City, DB-IP City Lite, ...)',
};
export const GEOIP_ASN: GeoIpKind = {
  variable: 'GEOIP_ASN_DB',
  type: /asn/i,
  expected: 'an ASN database (GeoLite2-ASN, DB-IP ASN Lite, ...)',
};

/**
 * A GeoIP database path must name a readable MaxMind DB file of its kind (the database is
 * checked again when it opens).
 */
const databaseFile = (kind: GeoIpKind) => (v: string | undefined, ctx: z.RefinementCtx) => {
  const path = v?.trim();
  if (!path) return;
  const found = readDatabaseFile(path);
  if (typeof found === 'string') {
    ctx.addIssue({
      code: 'custom',
      message: `${kind.variable} must be the path of a GeoIP database file (MaxMind DB format: an .mmdb file); ${JSON.stringify(path.slice(0, 200))} ${found}`,
    });
  } else if (found.type !== undefined && !kind.type.test(found.type)) {
    ctx.addIssue({
      code: 'custom',
      message: `${kind.variable}: ${JSON.stringify(path.slice(0, 200))} is a ${found.type.slice(0, 80)} database; expected ${kind.expected}`,
    });
  }
};

/** The marker before a MaxMind DB file's metadata, which lies within its last 128 KiB. */
const MAXMIND_MARKER = Buffer.from('\xab\xcd\xefMaxMind.com', 'latin1');
/** What keeps `path` from being read as a MaxMind DB file, or its database type: its metadata is there. */
function readDatabaseFile(path: string): string | { type: string | undefined } {
  let fd: number | undefined;
  try {
    const stat = statSync(path);
    if (stat.isDirectory()) return 'is a directory';
    if (!stat.isFile()) return 'is not a regular file';
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const length = Math.min(size, 128 * 1024);
    const tail = Buffer.alloc(length);
    readSync(fd, tail, 0, length, size - length);
    const marker = tail.lastIndexOf(MAXMIND_MARKER);
    if (marker === -1) return 'is another kind of file';
    // Read as the reader reads it (which the service opens with later).
    let metadata: Metadata;
    try {
      metadata = parseMetadata(tail);
    } catch (err) {
      return `is no usable MaxMind DB file (${String((err as Error).message).slice(0, 100)})`;
    }
    // The search tree and the 16 bytes after it come before the data and the metadata.
    if (metadata.searchTreeSize + 16 > size - length + marker) {
      return 'is cut short (its search tree runs into its metadata): a copy caught half-written?';
    }
    return { type: typeof metadata.databaseType === 'string' ? metadata.databaseType : undefined };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'does not exist';
    if (code === 'EACCES' || code === 'EPERM') {
      return "cannot be read by the service's user (permission denied): give it read access";
    }
    return `cannot be read (${code ?? (err as Error).message})`;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const schema = z.object({
  PORT: optional.refine((v) => v === undefined || (/^\d+$/.test(v) && Number(v) <= 65535), {
    message: 'PORT must be a port number from 0 to 65535',
  }),
  HOST: optional.superRefine((v, ctx) => {
    if (v !== undefined && !isBindableHost(v)) {
      ctx.addIssue({
        code: 'custom',
        message: `HOST must be an IP address (127.0.0.1, 0.0.0.0, ::) or a host name to listen on (got ${JSON.stringify(v.slice(0, 80))})`,
      });
    }
  }),
  STORE_URL: optional.superRefine((v, ctx) => {
    if (v === undefined) return;
    try {
      parseStoreUrl(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `STORE_URL: ${(err as Error).message}` });
    }
  }),
  HISTORY_WINDOW: duration('HISTORY_WINDOW'),
  INGEST_TOKEN: commaListOf(
    'INGEST_TOKEN is set but holds no token: unset it (loopback clients only) or give one or more comma-separated tokens',
    (token) => !/\s/.test(token),
    'INGEST_TOKEN tokens must not contain spaces (a bearer token is one word); separate tokens with commas',
  ),
  // At most 256 MiB: a body is held in memory and parsed as one string, whose length V8 caps at
  // about 512 Mi characters.
  INGEST_MAX_BYTES: optional.refine(
    (v) => v === undefined || (/^\d+$/.test(v) && Number(v) >= 1024 && Number(v) <= MAX_INGEST_BYTES),
    {
      message: `INGEST_MAX_BYTES must be a whole number of bytes, from 1024 to ${MAX_INGEST_BYTES} (256 MiB)`,
    },
  ),
  // 0 ends a learning period still running.
  LEARNING_PERIOD: duration('LEARNING_PERIOD', true),
  SLACK_BOT_TOKEN: optional,
  SLACK_SIGNING_SECRET: optional,
  SLACK_APP_TOKEN: optional.refine((v) => v === undefined || v.startsWith('xapp-'), {
    message: 'SLACK_APP_TOKEN must be an app-level token starting with xapp-',
  }),
  SLACK_ALERT_CHANNEL: optional.refine((v) => v === undefined || /^[CGD][A-Z0-9]{2,}$/.test(v), {
    message: 'SLACK_ALERT_CHANNEL must be a channel id such as C0123456789 (not a #name)',
  }),
  SLACK_API_URL: httpUrl('SLACK_API_URL'),
  SLACK_RESPONDERS: commaListOf(
    'SLACK_RESPONDERS is set but holds no id: unset it (nobody may revoke) or give comma-separated Slack user ids (U..., or W... on Enterprise Grid) or user-group ids (S...)',
    (id) => /^[UWS][A-Z0-9]{2,}$/.test(id),
    'SLACK_RESPONDERS must be comma-separated Slack user ids (U..., or W... on Enterprise Grid) or user-group ids (S...)',
  ),
  SLACK_ALLOWLIST: optional.refine((v) => v === undefined || v === 'channel' || v === 'responders', {
    message:
      'SLACK_ALLOWLIST must be channel (anyone in the alert channel may mark benign) or responders (SLACK_RESPONDERS only)',
  }),
  SLACK_HISTORY: optional.refine(
    (v) => v === undefined || v === 'anyone' || v === 'channel' || v === 'responders',
    {
      message:
        'SLACK_HISTORY must be anyone (anyone in the workspace may use /arc-history), channel (anyone in the alert channel, from there, and responders anywhere) or responders (SLACK_RESPONDERS only)',
    },
  ),
  AZURE_REMEDIATION: optional.refine((v) => v === undefined || v === 'dry-run' || v === 'live', {
    message: 'AZURE_REMEDIATION must be dry-run or live',
  }),
  // DefaultAzureCredential reads AZURE_TENANT_ID itself, as it is (untrimmed), and takes a value
  // of other characters for no tenant: it falls through to managed identity, whose failure never
  // names the tenant. Checked here as the credential checks it, so that the start says so.
  AZURE_TENANT_ID: z
    .string()
    .optional()
    .refine((v) => v === undefined || v === '' || /^[0-9A-Za-z.-]+$/.test(v), {
      message:
        "AZURE_TENANT_ID must be a tenant id (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47) or the tenant's domain (contoso.onmicrosoft.com): letters, digits, - and . only, with no spaces",
    }),
  AZURE_ARM_ENDPOINT: httpsUrl('AZURE_ARM_ENDPOINT'),
  // Each call names its version (`/v1.0/servicePrincipals/…`): a base that names one too would
  // send every call to `/v1.0/v1.0/…`.
  GRAPH_ENDPOINT: httpsUrl('GRAPH_ENDPOINT').refine(
    (v) => v === undefined || !/\/(?:v1\.0|beta)\/*$/i.test(v),
    {
      message:
        'GRAPH_ENDPOINT must be the Microsoft Graph base without a version (https://graph.microsoft.com, not https://graph.microsoft.com/v1.0): each call adds its own',
    },
  ),
  AZURE_AUTHORITY_HOST: httpsUrl('AZURE_AUTHORITY_HOST'),
  GEOIP_CITY_DB: optional.superRefine(databaseFile(GEOIP_CITY)),
  GEOIP_ASN_DB: optional.superRefine(databaseFile(GEOIP_ASN)),
  LOG_LEVEL: optional.refine((v) => v === undefined || ['debug', 'info', 'warn', 'error'].includes(v), {
    message: 'LOG_LEVEL must be one of debug, info, warn, error',
  }),
});

const DEFAULT_WINDOW_MS = 7 * 24 * 3600 * 1000;

/** A name of at most 253 characters in labels of letters, digits and `-`; not all digits at the end. */
const HOST_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** An IP literal, or a host name that could resolve (`10.999.0.1` is neither). */
function isBindableHost(v: string): boolean {
  if (isIP(v) !== 0) return true;
  if (!HOST_NAME.test(v)) return false;
  const last = v.replace(/\.$/, '').split('.').at(-1) ?? '';
  return !/^\d+$/.test(last);
}

/**
 * Any of these tells that an Azure identity or Azure endpoint is meant to be used: the variables
 * `DefaultAzureCredential` reads for a service principal, workload identity or managed identity
 * (App Service, Functions, Arc), and the endpoint overrides.
 */
const AZURE_IDENTITY_VARIABLES = [
  'AZURE_TENANT_ID',
  'AZURE_CLIENT_ID',
  'AZURE_FEDERATED_TOKEN_FILE',
  'IDENTITY_ENDPOINT',
  'MSI_ENDPOINT',
  'AZURE_ARM_ENDPOINT',
  'GRAPH_ENDPOINT',
  'AZURE_AUTHORITY_HOST',
] as const;

/** The base URL of a listening address: an IPv6 address is bracketed. */
export const listenUrl = (host: string, port: number): string =>
  `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

/**
 * Parses the environment once. Throws a `ConfigError` listing every problem at once.
 * The entry points pass `process.env` here; nothing else in the code base reads it, except
 * `DefaultAzureCredential`, which reads the `AZURE_*` credential variables itself.
 */
export function loadConfig(env: Record<string, string | undefined>): Readonly<Config> {
  const parsed = schema.safeParse(env);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(issue.message);
  }
  const e = parsed.success ? parsed.data : undefined;

  const slackVars = [env.SLACK_BOT_TOKEN, env.SLACK_SIGNING_SECRET].map((v) => v?.trim() || undefined);
  const wantsSlack = slackVars.some(Boolean) || Boolean(env.SLACK_APP_TOKEN?.trim());
  if (wantsSlack) {
    if (!env.SLACK_BOT_TOKEN?.trim()) problems.push('SLACK_BOT_TOKEN is required with Slack (xoxb-...)');
    if (!env.SLACK_SIGNING_SECRET?.trim() && !env.SLACK_APP_TOKEN?.trim())
      problems.push(
        'SLACK_SIGNING_SECRET is required with Slack in HTTP mode (Basic Information > Signing Secret)',
      );
    if (!env.SLACK_ALERT_CHANNEL?.trim())
      problems.push('SLACK_ALERT_CHANNEL is required with Slack: the id of the channel alerts go to (C...)');
    for (const [name, what] of [
      ['SLACK_ALLOWLIST', 'mark benign'],
      ['SLACK_HISTORY', 'use /arc-history'],
    ] as const) {
      if (env[name]?.trim() === 'responders' && !env.SLACK_RESPONDERS?.trim())
        problems.push(`${name}=responders needs SLACK_RESPONDERS: otherwise nobody could ${what}`);
    }
  }
  if (problems.length > 0 || !e) throw new ConfigError(problems);

  const ingestTokens = commaList(e.INGEST_TOKEN);

  const config: Config = {
    port: e.PORT === undefined ? 3000 : Number(e.PORT),
    host: e.HOST ?? (ingestTokens.length > 0 ? '0.0.0.0' : '127.0.0.1'),
    storeUrl: e.STORE_URL ?? 'sqlite://./data/arc-responder.db',
    historyWindowMs: e.HISTORY_WINDOW ?? DEFAULT_WINDOW_MS,
    ingestTokens,
    ingestMaxBytes: e.INGEST_MAX_BYTES === undefined ? 1_048_576 : Number(e.INGEST_MAX_BYTES),
    azure: {
      enabled:
        e.AZURE_REMEDIATION === 'live' ||
        AZURE_IDENTITY_VARIABLES.some((name) => (env[name] ?? '').trim() !== ''),
      remediation: (e.AZURE_REMEDIATION as 'dry-run' | 'live' | undefined) ?? 'dry-run',
      armEndpoint: (e.AZURE_ARM_ENDPOINT ?? 'https://management.azure.com').replace(/\/+$/, ''),
      graphEndpoint: (e.GRAPH_ENDPOINT ?? 'https://graph.microsoft.com').replace(/\/+$/, ''),
    },
    logLevel: (e.LOG_LEVEL as Config['logLevel'] | undefined) ?? 'info',
    secrets: [
      ...ingestTokens,
      ...[env.SLACK_BOT_TOKEN, env.SLACK_SIGNING_SECRET, env.SLACK_APP_TOKEN].map((v) => v?.trim() ?? ''),
      ...storePasswords(e.STORE_URL),
      ...AZURE_SECRET_VARIABLES.map((name) => env[name]?.trim() ?? ''),
    ].filter((v) => v !== ''),
  };
  if (e.LEARNING_PERIOD !== undefined) config.learningPeriodMs = e.LEARNING_PERIOD;
  const cityDb = e.GEOIP_CITY_DB?.trim();
  const asnDb = e.GEOIP_ASN_DB?.trim();
  if (cityDb || asnDb) config.geoip = { ...(cityDb ? { cityDb } : {}), ...(asnDb ? { asnDb } : {}) };
  if (e.AZURE_AUTHORITY_HOST) config.azure.authorityHost = e.AZURE_AUTHORITY_HOST.replace(/\/+$/, '');
  const tenantId = dashGuid(e.AZURE_TENANT_ID ?? '');
  if (tenantId) config.azure.tenantId = tenantId;
  const clientId = dashGuid(env.AZURE_CLIENT_ID ?? '');
  if (clientId) config.azure.clientId = clientId;
  if (wantsSlack && e.SLACK_BOT_TOKEN && e.SLACK_ALERT_CHANNEL) {
    config.slack = {
      botToken: e.SLACK_BOT_TOKEN,
      signingSecret: e.SLACK_SIGNING_SECRET ?? '',
      alertChannel: e.SLACK_ALERT_CHANNEL,
      apiUrl: e.SLACK_API_URL ?? 'https://slack.com/api/',
      responders: commaList(e.SLACK_RESPONDERS),
      allowlistBy: e.SLACK_ALLOWLIST === 'responders' ? 'responders' : 'channel',
      historyBy: (e.SLACK_HISTORY as 'anyone' | 'channel' | 'responders' | undefined) ?? 'anyone',
    };
    if (e.SLACK_APP_TOKEN) config.slack.appToken = e.SLACK_APP_TOKEN;
  }
  return Object.freeze(config);
}

/**
 * The configuration of the history alone (`STORE_URL`, `HISTORY_WINDOW`), for the history CLI: a
 * Slack or Azure setting in the same environment cannot stop it.
 */
export function loadHistoryConfig(env: Record<string, string | undefined>): Readonly<Config> {
  const { STORE_URL, HISTORY_WINDOW } = env;
  return loadConfig({
    ...(STORE_URL === undefined ? {} : { STORE_URL }),
    ...(HISTORY_WINDOW === undefined ? {} : { HISTORY_WINDOW }),
  });
}

/**
 * A local fake of the Slack Web API and of response_url endpoints, plus helpers that send
 * requests to a Bolt endpoint signed exactly as Slack signs them.
 *
 * The fake records every call (method, arguments with JSON fields parsed, bearer token) and
 * answers from per-method scripts (ok bodies, `ok:false` errors, 429 with Retry-After, HTTP
 * errors), falling back to plausible defaults.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One recorded Web API call. */
export interface FakeCall {
  method: string;
  args: Record<string, unknown>;
  token: string | undefined;
}

/** One recorded POST to a response_url. */
export interface FakeResponse {
  id: string;
  body: Record<string, unknown>;
}

/**
 * A scripted answer: a body (`ok` defaults to true), an error, a 429, an HTTP status, or the
 * default answer after `delayMs` (a slow Slack; with `createdFirst`, the message is posted at once
 * and only the answer waits). An HTTP status with `created: true` does what the call asks first
 * (a message is posted), then answers the status: a Slack that took the call and failed to say so.
 */
export type FakeAnswer =
  | { delayMs: number; createdFirst?: boolean }
  | { error: string; [key: string]: unknown }
  | { status: 429; retryAfter: number }
  | { status: number; body?: string; created?: boolean }
  | { ok?: boolean; [key: string]: unknown };

const JSON_FIELDS = new Set(['blocks', 'attachments', 'view', 'metadata']);

async function readAll(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseArgs(raw: string, contentType: string | undefined): Record<string, unknown> {
  if (contentType?.startsWith('application/json'))
    return raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(raw)) {
    if (JSON_FIELDS.has(k)) {
      try {
        out[k] = JSON.parse(v);
        continue;
      } catch {
        // keep the string
      }
    }
    out[k] = v;
  }
  return out;
}

export class FakeSlack {
  readonly calls: FakeCall[] = [];
  readonly responses: FakeResponse[] = [];
  /** User-group id → members, answered by `usergroups.users.list`. */
  readonly usergroups = new Map<string, string[]>();
  readonly #scripts = new Map<string, FakeAnswer[]>();
  readonly #waiters = new Set<() => void>();
  #server: Server | undefined;
  #tsCounter = 0;
  /** Messages the default `chat.postMessage` answer created, oldest first (for `conversations.history`). */
  readonly #posted: Array<{
    channel: unknown;
    ts: string;
    at: number;
    text: unknown;
    blocks: unknown;
    metadata: unknown;
  }> = [];
  /** Replies posted in threads (for `conversations.replies`), oldest first. */
  readonly #replies: Array<{
    channel: unknown;
    threadTs: unknown;
    ts: string;
    at: number;
    text: unknown;
    metadata: unknown;
  }> = [];
  url = '';

  /** Starts listening on a free loopback port. */
  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      void this.#handle(req).then(
        ({ status, headers, body }) => {
          res.writeHead(status, headers);
          res.end(body);
          for (const w of this.#waiters) w();
        },
        (err) => {
          res.writeHead(500);
          res.end(String(err));
        },
      );
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  /** The base URL for `SLACK_API_URL` / `clientOptions.slackApiUrl`. */
  get apiUrl(): string {
    return `${this.url}/api/`;
  }

  /** A response_url that records what is posted to it under `id`. */
  responseUrl(id = 'r1'): string {
    return `${this.url}/response/${id}`;
  }

  /** The WebSocket URL `apps.connections.open` hands out (a `FakeSocketMode`'s). */
  socketUrl: string | undefined;

  /** Queues answers for `method`, used in order before the defaults. */
  script(method: string, ...answers: FakeAnswer[]): this {
    this.#scripts.set(method, [...(this.#scripts.get(method) ?? []), ...answers]);
    return this;
  }

  /** Drops the scripted answers not used yet: every method answers as Slack does again. */
  clearScripts(): void {
    this.#scripts.clear();
  }

  /** The recorded calls of one method. */
  callsOf(method: string): FakeCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** What was posted to one response_url. */
  responsesTo(id: string): Record<string, unknown>[] {
    return this.responses.filter((r) => r.id === id).map((r) => r.body);
  }

  /** The messages of one channel (not thread replies) as Slack holds them, oldest first. */
  messages(channel: string): Array<{ ts: string; text: unknown; metadata: unknown }> {
    return this.#posted
      .filter((m) => m.channel === channel)
      .map((m) => ({ ts: m.ts, text: m.text, metadata: m.metadata }));
  }

  /** The texts of the replies in one thread, as Slack holds them (not as they were asked for). */
  threadTexts(threadTs: string): unknown[] {
    return this.#replies.filter((r) => r.threadTs === threadTs).map((r) => r.text);
  }

  /** Forgets recorded calls and responses (scripts stay). */
  clear(): void {
    this.calls.length = 0;
    this.responses.length = 0;
  }

  /**
   * Resolves once `check` holds, re-checked after every request the fake answers. Rejects after
   * `timeoutMs` with `what` (a deadline for asynchronous effects, not a timing assertion).
   */
  async waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
    if (check()) return;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(done);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.add(done);
    });
  }

  async #handle(
    req: IncomingMessage,
  ): Promise<{ status: number; headers: Record<string, string>; body: string }> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const raw = await readAll(req);
    const json = { 'content-type': 'application/json' };
    if (url.pathname.startsWith('/response/')) {
      this.responses.push({ id: url.pathname.slice('/response/'.length), body: raw ? JSON.parse(raw) : {} });
      return { status: 200, headers: json, body: '{"ok":true}' };
    }
    if (!url.pathname.startsWith('/api/')) return { status: 404, headers: {}, body: '' };
    const method = url.pathname.slice('/api/'.length);
    const args = parseArgs(raw, req.headers['content-type']);
    const auth = req.headers.authorization;
    this.calls.push({ method, args, token: auth?.startsWith('Bearer ') ? auth.slice(7) : undefined });

    const scripted = this.#scripts.get(method)?.shift();
    if (scripted && 'delayMs' in scripted && typeof scripted.delayMs === 'number') {
      const made = scripted.createdFirst === true ? this.#default(method, args) : undefined;
      if (made) for (const w of this.#waiters) w();
      await new Promise((resolve) => setTimeout(resolve, scripted.delayMs as number));
      return {
        status: 200,
        headers: json,
        body: JSON.stringify({ ok: true, ...(made ?? this.#default(method, args)) }),
      };
    }
    if (scripted) {
      if ('status' in scripted && typeof scripted.status === 'number') {
        if (scripted.status === 429) {
          const retry = (scripted as { retryAfter: number }).retryAfter;
          return {
            status: 429,
            headers: { ...json, 'retry-after': String(retry) },
            body: '{"ok":false,"error":"ratelimited"}',
          };
        }
        if ((scripted as { created?: boolean }).created) this.#default(method, args);
        return { status: scripted.status, headers: {}, body: (scripted as { body?: string }).body ?? '' };
      }
      if ('error' in scripted)
        return { status: 200, headers: json, body: JSON.stringify({ ok: false, ...scripted }) };
      return {
        status: 200,
        headers: json,
        body: JSON.stringify({ ok: true, ...this.#default(method, args), ...scripted }),
      };
    }
    return { status: 200, headers: json, body: JSON.stringify({ ok: true, ...this.#default(method, args) }) };
  }

  #default(method: string, args: Record<string, unknown>): Record<string, unknown> {
    switch (method) {
      case 'auth.test':
        return { user_id: 'UBOT', bot_id: 'BBOT', team_id: 'T1', user: 'arc-responder' };
      case 'apps.connections.open':
        return this.socketUrl === undefined ? {} : { url: this.socketUrl };
      case 'chat.postMessage': {
        this.#tsCounter += 1;
        const ts = `1700000000.${String(this.#tsCounter).padStart(6, '0')}`;
        if (args.thread_ts === undefined) {
          // `at`: when it was posted, in Slack's seconds (the fake's ts are not wall-clock times).
          const at = Date.now() / 1000;
          this.#posted.push({
            channel: args.channel,
            ts,
            at,
            text: args.text,
            blocks: args.blocks,
            metadata: args.metadata,
          });
        } else {
          this.#replies.push({
            channel: args.channel,
            threadTs: args.thread_ts,
            ts,
            at: Date.now() / 1000,
            text: args.text,
            metadata: args.metadata,
          });
        }
        return { channel: args.channel, ts, message: { ts, text: args.text } };
      }
      case 'conversations.history': {
        // Newest first, as Slack answers; one page.
        const oldest = Number(args.oldest ?? 0);
        const withMetadata = args.include_all_metadata === true || args.include_all_metadata === 'true';
        const messages = this.#posted
          .filter((m) => m.channel === args.channel && m.at >= oldest)
          .reverse()
          .map((m) => ({
            type: 'message',
            ts: m.ts,
            text: m.text,
            // Slack answers a text-only message with a rich_text block of its own, never buttons.
            blocks: m.blocks ?? [{ type: 'rich_text', elements: [] }],
            bot_id: 'BBOT',
            ...(withMetadata && m.metadata !== undefined ? { metadata: m.metadata } : {}),
          }));
        return { messages, has_more: false };
      }
      case 'conversations.replies': {
        // The parent first, then its replies, oldest first; metadata only when asked for.
        const withMetadata = args.include_all_metadata === true || args.include_all_metadata === 'true';
        const parent = this.#posted.find((m) => m.channel === args.channel && m.ts === args.ts);
        const oldest = Number(args.oldest ?? 0);
        const replies = this.#replies
          .filter((r) => r.channel === args.channel && r.threadTs === args.ts && r.at >= oldest)
          .map((r) => ({
            type: 'message',
            ts: r.ts,
            thread_ts: r.threadTs,
            text: r.text,
            bot_id: 'BBOT',
            ...(withMetadata && r.metadata !== undefined ? { metadata: r.metadata } : {}),
          }));
        const messages = parent
          ? [
              { type: 'message', ts: parent.ts, thread_ts: parent.ts, text: parent.text, bot_id: 'BBOT' },
              ...replies,
            ]
          : replies;
        if (!parent && replies.length === 0) return { ok: false, error: 'thread_not_found' };
        return { messages, has_more: false };
      }
      case 'chat.update':
        return { channel: args.channel, ts: args.ts, text: args.text };
      case 'chat.postEphemeral':
        return { message_ts: '1700000001.000001' };
      case 'views.open':
        return { view: { id: 'V1' } };
      case 'usergroups.users.list':
        return { users: this.usergroups.get(String(args.usergroup)) ?? [] };
      default:
        return {};
    }
  }
}

/** Starts a fake Slack. */
export const startFakeSlack = (): Promise<FakeSlack> => new FakeSlack().start();

/** The Slack signature headers for `raw` at `timestamp` (seconds). */
export function signSlack(secret: string, raw: string, timestamp = Math.floor(Date.now() / 1000)) {
  return {
    'x-slack-request-timestamp': String(timestamp),
    'x-slack-signature': `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${raw}`).digest('hex')}`,
  };
}

export interface SendOptions {
  timestamp?: number;
  /** Overrides the signing secret (to send a bad signature). */
  secret?: string;
  headers?: Record<string, string>;
}

/** POSTs a form body to `url` signed like Slack (content type exactly as Slack sends it). */
export async function sendSigned(
  url: string,
  secret: string,
  raw: string,
  opts: SendOptions = {},
): Promise<{ status: number; text: string; json: () => unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...signSlack(opts.secret ?? secret, raw, opts.timestamp),
      ...opts.headers,
    },
    body: raw,
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) };
}

/** The form body of an interactive payload: `payload=<json>`. */
export const payloadBody = (payload: unknown): string =>
  new URLSearchParams({ payload: JSON.stringify(payload) }).toString();

/** The form body of a slash command. */
export const commandBody = (fields: Record<string, string>): string => new URLSearchParams(fields).toString();

let triggerCounter = 0;
const nextTrigger = () => {
  triggerCounter += 1;
  return `${1000 + triggerCounter}.${2000 + triggerCounter}.trigger${triggerCounter}`;
};

/** A block_actions payload for a button click, shaped like Slack's. */
export function buttonClick(opts: {
  actionId: string;
  value: string;
  user: string;
  channel?: string;
  messageTs?: string;
  responseUrl: string;
  triggerId?: string;
  ephemeral?: boolean;
  /** The pressed button's text, as Slack sends it back. */
  text?: string;
}): Record<string, unknown> {
  const actionTs = `${1700000100 + triggerCounter}.${String(triggerCounter).padStart(6, '0')}`;
  return {
    type: 'block_actions',
    user: { id: opts.user, username: opts.user.toLowerCase(), name: opts.user.toLowerCase(), team_id: 'T1' },
    api_app_id: 'A1',
    token: 'legacy-verification-token',
    container: opts.ephemeral
      ? { type: 'message', message_ts: opts.messageTs ?? '1700000000.000001', is_ephemeral: true }
      : {
          type: 'message',
          message_ts: opts.messageTs ?? '1700000000.000001',
          channel_id: opts.channel ?? 'C123',
          is_ephemeral: false,
        },
    trigger_id: opts.triggerId ?? nextTrigger(),
    team: { id: 'T1', domain: 'example' },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: opts.channel ?? 'C123', name: 'arc-alerts' },
    ...(opts.ephemeral
      ? {}
      : { message: { type: 'message', ts: opts.messageTs ?? '1700000000.000001', text: 'alert' } }),
    state: { values: {} },
    response_url: opts.responseUrl,
    actions: [
      {
        type: 'button',
        action_id: opts.actionId,
        block_id: 'arc_alert_actions',
        text: { type: 'plain_text', text: opts.text ?? 'button', emoji: true },
        value: opts.value,
        action_ts: actionTs,
      },
    ],
  };
}

/** A view_submission payload for a modal, shaped like Slack's. */
export function viewSubmission(opts: {
  callbackId: string;
  user: string;
  privateMetadata: string;
  values: Record<string, Record<string, unknown>>;
  triggerId?: string;
}): Record<string, unknown> {
  return {
    type: 'view_submission',
    team: { id: 'T1', domain: 'example' },
    user: { id: opts.user, username: opts.user.toLowerCase(), name: opts.user.toLowerCase(), team_id: 'T1' },
    api_app_id: 'A1',
    token: 'legacy-verification-token',
    trigger_id: opts.triggerId ?? nextTrigger(),
    view: {
      id: 'V1',
      team_id: 'T1',
      type: 'modal',
      callback_id: opts.callbackId,
      private_metadata: opts.privateMetadata,
      blocks: [],
      state: { values: opts.values },
      hash: '1700000000.abcdef',
      title: { type: 'plain_text', text: 'Mark benign' },
      root_view_id: 'V1',
      app_id: 'A1',
      bot_id: 'BBOT',
    },
    response_urls: [],
    is_enterprise_install: false,
    enterprise: null,
  };
}

/** Slash command fields, as Slack posts them. */
export function slashCommand(opts: {
  command: string;
  text: string;
  user: string;
  responseUrl: string;
  channel?: string;
  triggerId?: string;
}): Record<string, string> {
  return {
    token: 'legacy-verification-token',
    team_id: 'T1',
    team_domain: 'example',
    channel_id: opts.channel ?? 'C123',
    channel_name: 'arc-alerts',
    user_id: opts.user,
    user_name: opts.user.toLowerCase(),
    command: opts.command,
    text: opts.text,
    api_app_id: 'A1',
    is_enterprise_install: 'false',
    response_url: opts.responseUrl,
    trigger_id: opts.triggerId ?? nextTrigger(),
  };
}

import { randomUUID } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import type { TokenCredential } from '@azure/identity';
import { callIds, recordCall } from './call-log.ts';
import { httpsBase, scopeForEndpoint } from './endpoints.ts';
import { GraphRequestError } from './errors.ts';

/** Retry settings shared by the ARM clients (SDK retry policy) and the Graph client. */
export interface RetrySettings {
  /** Retries after the first attempt. Default 3. */
  maxRetries?: number;
  /** First backoff delay for 5xx and network errors. Default 800 ms. */
  retryDelayMs?: number;
  /** Largest backoff delay. Default 30 s. */
  maxRetryDelayMs?: number;
  /** Largest Retry-After honoured; longer waits give up. Default `MAX_RETRY_AFTER_MS`. */
  maxRetryAfterMs?: number;
}

/** The longest wait an ARM or Graph `Retry-After` may ask for before the call gives up: 60 s. */
export const MAX_RETRY_AFTER_MS = 60_000;

/** A Graph answer: status and parsed JSON body (undefined for an empty body). */
export interface GraphResponse {
  status: number;
  body: unknown;
}

/** Options of one Graph call. */
export interface GraphCallOptions {
  body?: unknown;
  signal?: AbortSignal;
}

/** Microsoft Graph over plain HTTPS with a token from the shared credential. */
export interface GraphClient {
  readonly base: string;
  /**
   * Sends one call (path starting with `/v1.0/`), retrying 429 and 503 after their Retry-After
   * and other 5xx and network errors with exponential backoff. Returns 2xx and 404 answers;
   * throws `GraphRequestError` for any other status.
   */
  call(method: string, path: string, options?: GraphCallOptions): Promise<GraphResponse>;
}

/** What the Graph client is built from. */
export interface GraphClientOptions {
  endpoint: string;
  credential: TokenCredential;
  /** Extra CA certificate (PEM) to trust, e.g. a private endpoint's or a test fake's. */
  tlsCa?: string;
  retry?: RetrySettings;
  /** Per-attempt timeout. Default 30 s. */
  requestTimeoutMs?: number;
}

const TRANSIENT_NETWORK = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EPIPE',
  'ESOCKETTIMEDOUT',
]);

interface RawResponse {
  status: number;
  retryAfter: string | undefined;
  /** Graph's `request-id` header. */
  requestId: string | undefined;
  text: string;
}

function send(
  url: URL,
  method: string,
  headers: Record<string, string>,
  payload: string | undefined,
  ca: string | undefined,
  signal: AbortSignal | undefined,
  timeoutMs: number,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { method, headers, ...(ca ? { ca } : {}), ...(signal ? { signal } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > 4 * 1024 * 1024) {
            req.destroy(new Error('Graph answer larger than 4 MiB'));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          const retryAfter = res.headers['retry-after'];
          const requestId = res.headers['request-id'];
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
            requestId: Array.isArray(requestId) ? requestId[0] : requestId,
            text: Buffer.concat(chunks).toString('utf8'),
          });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => {
      // Sent or not: the timer runs from the connection, so a TLS handshake that stalls ends here
      // too, with nothing sent (a write that never went out can have changed nothing).
      const err = new Error(
        req.writableFinished
          ? `no answer from Graph within ${timeoutMs} ms`
          : `could not send the request to Graph within ${timeoutMs} ms (no connection or TLS handshake)`,
      ) as Error & { code: string };
      err.code = 'ETIMEDOUT';
      req.destroy(err);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Retry-After in ms: whole seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function parseBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function graphError(body: unknown): { code: string | undefined; message: string } {
  const err = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  return {
    code: typeof err?.code === 'string' ? err.code : undefined,
    message:
      typeof err?.message === 'string' ? err.message : typeof body === 'string' ? body.slice(0, 300) : '',
  };
}

/** Creates the Graph client; its base must be https. */
export function createGraphClient(options: GraphClientOptions): GraphClient {
  const base = httpsBase(options.endpoint, 'GRAPH_ENDPOINT');
  const scope = scopeForEndpoint(base);
  const maxRetries = options.retry?.maxRetries ?? 3;
  const retryDelayMs = options.retry?.retryDelayMs ?? 800;
  const maxRetryDelayMs = options.retry?.maxRetryDelayMs ?? 30_000;
  const maxRetryAfterMs = options.retry?.maxRetryAfterMs ?? MAX_RETRY_AFTER_MS;
  const timeoutMs = options.requestTimeoutMs ?? 30_000;

  const backoff = (attempt: number) => {
    const exp = Math.min(maxRetryDelayMs, retryDelayMs * 2 ** attempt);
    return Math.round(exp / 2 + Math.random() * (exp / 2));
  };

  async function call(
    method: string,
    path: string,
    callOptions: GraphCallOptions = {},
  ): Promise<GraphResponse> {
    const url = new URL(`${base}${path}`);
    const payload = callOptions.body === undefined ? undefined : JSON.stringify(callOptions.body);
    const signal = callOptions.signal;
    for (let attempt = 0; ; attempt++) {
      const token = await options.credential.getToken(scope, signal ? { abortSignal: signal } : {});
      if (!token)
        throw new GraphRequestError(method, path, 401, 'NoToken', 'the credential returned no token');
      // A new id for each attempt, as Graph asks: the audit keeps it with the call.
      const clientRequestId = randomUUID();
      const headers: Record<string, string> = {
        authorization: `Bearer ${token.token}`,
        accept: 'application/json',
        'client-request-id': clientRequestId,
      };
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(Buffer.byteLength(payload));
      } else if (method !== 'GET') {
        headers['content-length'] = '0';
      }
      let res: RawResponse;
      try {
        res = await send(url, method, headers, payload, options.tlsCa, signal, timeoutMs);
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        const text = String((error as Error).message ?? error);
        recordCall({
          method,
          url: url.href,
          error: `${typeof code === 'string' ? `${code}: ` : ''}${text}`.slice(0, 300),
          ...callIds({ sent: clientRequestId }),
        });
        if (
          !signal?.aborted &&
          typeof code === 'string' &&
          TRANSIENT_NETWORK.has(code) &&
          attempt < maxRetries
        ) {
          await sleep(backoff(attempt), signal);
          continue;
        }
        throw error;
      }
      recordCall({
        method,
        url: url.href,
        status: res.status,
        ...callIds({ sent: clientRequestId, requestId: res.requestId }),
      });
      const body = parseBody(res.text);
      const throttled = res.status === 429 || res.status === 503;
      const serverError = res.status >= 500 && res.status !== 501 && res.status !== 505;
      const retryAfter = throttled ? parseRetryAfter(res.retryAfter) : undefined;
      if ((throttled || serverError) && attempt < maxRetries) {
        if (retryAfter === undefined || retryAfter <= maxRetryAfterMs) {
          await sleep(retryAfter ?? backoff(attempt), signal);
          continue;
        }
      }
      if ((res.status >= 200 && res.status < 300) || res.status === 404) return { status: res.status, body };
      const { code, message } = graphError(body);
      const unhonoured = retryAfter !== undefined && retryAfter > maxRetryAfterMs ? retryAfter : undefined;
      throw new GraphRequestError(method, path, res.status, code, message, unhonoured);
    }
  }

  return { base, call };
}

import { AsyncLocalStorage } from 'node:async_hooks';
import { scrubSecrets } from '../secrets.ts';

/** One HTTP call made to ARM or Graph, as recorded for the audit. Never holds headers or tokens. */
export interface CallRecord {
  method: string;
  url: string;
  /** HTTP status, absent when no response arrived. */
  status?: number;
  /** Transport error, when no response arrived. */
  error?: string;
  /**
   * The id this service sent with the call: ARM's `x-ms-client-request-id`, which the activity
   * log keeps as `httpRequest.clientRequestId`; Graph's `client-request-id`, `ClientRequestId` in
   * the Microsoft Graph activity logs.
   */
  clientRequestId?: string;
  /** Azure's own id of the call (ARM's `x-ms-request-id`, Graph's `request-id`), for a support case. */
  requestId?: string;
  /** ARM's `x-ms-correlation-request-id`: the activity log entry's `correlationId`. */
  correlationId?: string;
  /** ISO 8601 time the response (or error) arrived. */
  at: string;
}

/** The ids of one call, as `CallRecord` keeps them. */
export type CallIds = Pick<CallRecord, 'clientRequestId' | 'requestId' | 'correlationId'>;

/**
 * An id header's value as the audit keeps it: Azure's ids are GUIDs, and anything else short and
 * plain is kept too; a value that is neither (a proxy's junk, a line break) is left out.
 */
function idValue(value: string | undefined | null): string | undefined {
  return typeof value === 'string' && /^[\w.:-]{1,128}$/.test(value) ? value : undefined;
}

/** The ids of a call as the audit keeps them, leaving out those absent or not plain. */
export function callIds(ids: {
  sent: string | undefined;
  requestId?: string | null | undefined;
  correlationId?: string | null | undefined;
}): CallIds {
  const kept: CallIds = {};
  const clientRequestId = idValue(ids.sent);
  const requestId = idValue(ids.requestId);
  const correlationId = idValue(ids.correlationId);
  if (clientRequestId) kept.clientRequestId = clientRequestId;
  if (requestId) kept.requestId = requestId;
  if (correlationId) kept.correlationId = correlationId;
  return kept;
}

const current = new AsyncLocalStorage<CallRecord[]>();

/** Runs `fn` and returns its outcome together with every call made while it ran (retries included). */
export async function withCallLog<T>(
  fn: () => Promise<T>,
): Promise<{ ok: true; value: T; calls: CallRecord[] } | { ok: false; error: unknown; calls: CallRecord[] }> {
  const calls: CallRecord[] = [];
  try {
    const value = await current.run(calls, fn);
    return { ok: true, value, calls };
  } catch (error) {
    return { ok: false, error, calls };
  }
}

/** The calls logged so far by the surrounding `withCallLog` (none outside one). */
export function loggedCalls(): readonly CallRecord[] {
  return current.getStore() ?? [];
}

/** Adds a call to the log of the surrounding `withCallLog`, if any. */
export function recordCall(call: Omit<CallRecord, 'at'>): void {
  const kept = call.error === undefined ? call : { ...call, error: scrubSecrets(call.error) };
  current.getStore()?.push({ ...kept, at: new Date().toISOString() });
}

interface Headers {
  get(name: string): string | undefined;
}
interface PolicyRequest {
  method: string;
  url: string;
  headers: Headers;
  requestId: string;
}
interface PolicyResponse {
  status: number;
  headers: Headers;
}

/** ARM's ids of a call, from the id sent and the answer's headers. */
const armIds = (sent: string, answered: Headers | undefined) =>
  callIds({
    sent,
    requestId: answered?.get('x-ms-request-id'),
    correlationId: answered?.get('x-ms-correlation-request-id'),
  });

/**
 * An Azure SDK pipeline policy (position `perRetry`) that records each attempt into the call log.
 * Typed structurally so that it fits both the core-client and the REST-level clients.
 */
export const callLogPolicy = {
  name: 'arcResponderCallLog',
  async sendRequest<Req extends PolicyRequest, Res extends PolicyResponse>(
    request: Req,
    next: (request: Req) => Promise<Res>,
  ): Promise<Res> {
    // The SDK sends its `requestId` as `x-ms-client-request-id` (set before the retries).
    const sent = request.headers.get('x-ms-client-request-id') ?? request.requestId;
    const { method, url } = request;
    try {
      const response = await next(request);
      recordCall({ method, url, status: response.status, ...armIds(sent, response.headers) });
      return response;
    } catch (error) {
      const status = (error as { statusCode?: unknown }).statusCode;
      const answered = (error as { response?: { headers?: Headers } }).response?.headers;
      const ids = armIds(sent, answered);
      if (typeof status === 'number') {
        recordCall({ method, url, status, ...ids });
      } else {
        recordCall({ method, url, error: errorText(error), ...ids });
      }
      throw error;
    }
  },
};

function errorText(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? `${e.code}: ` : '';
  const message = typeof e.message === 'string' ? e.message : String(error);
  return `${code}${message}`.slice(0, 300);
}

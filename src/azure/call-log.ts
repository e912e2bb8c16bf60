import { AsyncLocalStorage } from 'node:async_hooks';

/** One HTTP call made to ARM or Graph, as recorded for the audit. Never holds headers or tokens. */
export interface CallRecord {
  method: string;
  url: string;
  /** HTTP status, absent when no response arrived. */
  status?: number;
  /** Transport error, when no response arrived. */
  error?: string;
  /** ISO 8601 time the response (or error) arrived. */
  at: string;
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
  current.getStore()?.push({ ...call, at: new Date().toISOString() });
}

interface PolicyRequest {
  method: string;
  url: string;
}
interface PolicyResponse {
  status: number;
}

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
    try {
      const response = await next(request);
      recordCall({ method: request.method, url: request.url, status: response.status });
      return response;
    } catch (error) {
      const status = (error as { statusCode?: unknown }).statusCode;
      if (typeof status === 'number') {
        recordCall({ method: request.method, url: request.url, status });
      } else {
        recordCall({ method: request.method, url: request.url, error: errorText(error) });
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

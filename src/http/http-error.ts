import type { ServerResponse } from 'node:http';

/** Machine-readable codes of the JSON errors the HTTP server answers with. */
export type HttpErrorCode =
  | 'bad_request'
  | 'invalid_json'
  | 'invalid_utf8'
  | 'unauthorized'
  | 'not_found'
  | 'method_not_allowed'
  | 'payload_too_large'
  | 'body_timeout'
  | 'unsupported_media_type'
  | 'overloaded'
  | 'outbox_full'
  | 'store_unavailable'
  | 'not_ready'
  | 'shutting_down'
  | 'internal';

/**
 * An error that becomes one JSON answer `{ "error": message, "code": code, ...details }`. Every
 * handler throws these; the server turns them into responses at one place.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly code: HttpErrorCode;
  readonly headers: Record<string, string>;
  readonly details: Record<string, unknown>;

  constructor(
    status: number,
    code: HttpErrorCode,
    message: string,
    extra: { headers?: Record<string, string>; details?: Record<string, unknown> } = {},
  ) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.headers = extra.headers ?? {};
    this.details = extra.details ?? {};
  }
}

/** Writes a JSON answer. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** Writes an `HttpError` as its JSON answer. */
export function sendError(res: ServerResponse, err: HttpError, requestId?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body: Record<string, unknown> = { error: err.message, code: err.code, ...err.details };
  if (requestId) body.requestId = requestId;
  sendJson(res, err.status, body, err.headers);
}

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
  | 'headers_too_large'
  | 'overloaded'
  | 'outbox_full'
  | 'store_unavailable'
  | 'not_ready'
  | 'shutting_down'
  | 'internal';

/** Why a handler that answers by itself (Slack's guard) refused a request, for the request log. */
const refusals = new WeakMap<ServerResponse, { code: string; reason: string }>();

/** Notes why `res` is refused, so that the request log line says it (see `refusalOf`). */
export function noteRefusal(res: ServerResponse, code: string, reason: string): void {
  refusals.set(res, { code, reason });
}

/** What `noteRefusal` noted for `res`, if anything. */
export function refusalOf(res: ServerResponse): { code: string; reason: string } | undefined {
  return refusals.get(res);
}

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

/** What the answer to a request that Node's HTTP parser refused says (see `clientErrorResponse`). */
export function clientErrorAnswer(errorCode: string | undefined): {
  status: number;
  reason: string;
  code: HttpErrorCode;
  message: string;
} {
  if (errorCode === 'HPE_HEADER_OVERFLOW') {
    return {
      status: 431,
      reason: 'Request Header Fields Too Large',
      code: 'headers_too_large',
      message: 'the request headers are larger than the service accepts (16 KiB in all)',
    };
  }
  if (errorCode === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return {
      status: 408,
      reason: 'Request Timeout',
      code: 'body_timeout',
      message:
        'the request was not received in time (a stalled upload, or one that waited while the service was busy); retry it',
    };
  }
  return {
    status: 400,
    reason: 'Bad Request',
    code: 'bad_request',
    message: `the HTTP request could not be read (${String(errorCode ?? 'malformed').slice(0, 60)})`,
  };
}

/**
 * The raw answer to a request that Node's HTTP parser refused, which never reaches a handler: the
 * status Node itself would send (431 for headers too large, 408 for a request that timed out,
 * else 400), with the JSON error body of every other answer, and the connection closed.
 */
export function clientErrorResponse(errorCode: string | undefined, requestId: string): string {
  const { status, reason, code, message } = clientErrorAnswer(errorCode);
  const body = JSON.stringify({ error: message, code, requestId });
  return (
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nx-request-id: ${requestId}\r\n` +
    `connection: close\r\n\r\n${body}`
  );
}

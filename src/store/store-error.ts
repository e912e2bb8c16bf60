/** What went wrong in the state store, for callers that branch on it (e.g. `/readyz`). */
export type StoreErrorCode =
  /** `STORE_URL` cannot be used: malformed, unknown scheme, missing path. */
  | 'STORE_URL_INVALID'
  /** The backend did not answer, refused the connection or rejected the credentials. */
  | 'STORE_UNREACHABLE'
  /** A method was called with an argument it cannot store (bad key, TTL, member). */
  | 'STORE_BAD_INPUT'
  /** The store was used after `close()`. */
  | 'STORE_CLOSED'
  /** A store that was to be read only, as it is, does not exist there (nothing was created). */
  | 'STORE_NOT_FOUND';

/** An error from `src/store`. Its message never contains a password from the store URL. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
  }
}

/** True when `error` says the store is out of reach or closed: worth a retry later, not a rejection. */
export const isStoreDown = (error: unknown): boolean =>
  error instanceof StoreError && (error.code === 'STORE_UNREACHABLE' || error.code === 'STORE_CLOSED');

/** A driver error as one line: its message, its code when the message lacks it, nested causes. */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return error.errors.map((inner: unknown) => describeError(inner)).join('; ');
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const text = error.message || error.name;
    return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text;
  }
  return String(error);
}

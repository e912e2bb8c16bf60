import type { StateStore } from '../core/ports.ts';
import { openMemoryStateStore } from './memory-state-store.ts';
import { parseStoreUrl } from './parse-store-url.ts';
import { openPostgresStateStore } from './postgres-state-store.ts';
import { openRedisStateStore } from './redis-state-store.ts';
import { openSqliteStateStore } from './sqlite-state-store.ts';
import { StoreError } from './store-error.ts';

export { StoreError, type StoreErrorCode } from './store-error.ts';

/** Options of `openStateStore`. */
export interface OpenStateStoreOptions {
  /**
   * Prefix of every key, claim and set name, so that several deployments or test runs can share
   * one backend. Letters, digits, `_`, `.` and `-` (no `:`). Default `arc-responder`.
   */
  namespace?: string;
  /**
   * The service's own store, which keeps itself in shape: on PostgreSQL, the index that the sweep
   * of expired claims reads is built in the background when missing. Off for one-off commands.
   */
  maintain?: boolean;
  /** Told what upkeep could not be done (on PostgreSQL, the index not built); no secret in it. */
  warn?: (message: string) => void;
  /**
   * Opens a PostgreSQL store only if its tables exist, creating none (`STORE_NOT_FOUND`
   * otherwise): for commands that read the service's store.
   */
  existing?: boolean;
}

/** The namespace used when none is given. */
const DEFAULT_NAMESPACE = 'arc-responder';

// No ':' so that a namespace can never reach into another key space ("ns:claim::…" in Redis).
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * Opens the `StateStore` that `url` (`STORE_URL`) names:
 * - `sqlite://<path>`: embedded SQLite file, e.g. `sqlite://./data/arc-responder.db` (relative
 *   to the working directory) or `sqlite:///var/lib/arc/x.db` (absolute); the directory is created.
 * - `memory://`: private to this call, gone on close; for tests.
 * - `redis://…`, `rediss://…`: shared by replicas; values via @keyv/redis, claims via SET NX.
 * - `postgres://…`, `postgresql://…`: shared by replicas; values via @keyv/postgres, claims via
 *   INSERT … ON CONFLICT; tables are created when missing.
 *
 * Resolves once the backend answered. Rejects with a `StoreError` whose message names the
 * problem (`code` STORE_URL_INVALID or STORE_UNREACHABLE) and never contains the URL's password.
 */
export async function openStateStore(url: string, opts: OpenStateStoreOptions = {}): Promise<StateStore> {
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  if (typeof namespace !== 'string' || !NAMESPACE.test(namespace)) {
    throw new StoreError(
      'STORE_BAD_INPUT',
      `Store namespace "${String(namespace)}" is invalid: use 1-64 letters, digits, "_", "." or "-", starting with a letter or digit`,
    );
  }
  const location = parseStoreUrl(url);
  switch (location.kind) {
    case 'sqlite':
      return openSqliteWithRetry(location.path, namespace);
    case 'memory':
      return openMemoryStateStore(namespace);
    case 'redis':
      return openRedisStateStore({ ...location, namespace });
    case 'postgres':
      return openPostgresStateStore({
        ...location,
        namespace,
        ...(opts.maintain ? { maintain: true } : {}),
        ...(opts.warn ? { warn: opts.warn } : {}),
        ...(opts.existing ? { existing: true } : {}),
      });
  }
}

/**
 * Opens the SQLite store, waiting while another process that opens the same new file at the same
 * moment holds it: switching a new file to WAL and creating the tables take locks that SQLite's
 * busy timeout does not cover.
 */
async function openSqliteWithRetry(path: string, namespace: string): Promise<StateStore> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return openSqliteStateStore({ path, namespace });
    } catch (error) {
      if (!/database is locked|SQLITE_BUSY/i.test((error as Error).message) || Date.now() > deadline)
        throw error;
      await new Promise((resolve) => setTimeout(resolve, 25 + Math.random() * 50));
    }
  }
}

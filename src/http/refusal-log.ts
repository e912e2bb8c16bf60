import type { Logger } from '../log.ts';

/** One kind of request the service refused (4xx) or could not serve (5xx). */
export interface RefusalKind {
  /** Empty for a request that Node's HTTP parser refused: its method is not known. */
  method: string;
  /** The endpoint's path; undefined for a path the service does not serve (those share one count). */
  route: string | undefined;
  status: number;
  /** The answer's error code, when it has one. */
  code: string | undefined;
}

export interface RefusalLogOptions {
  /** Lines of one kind written in one window; default 10. */
  linesPerWindow?: number;
  /** Default 60 s. */
  windowMs?: number;
}

interface Window {
  kind: RefusalKind;
  ends: number;
  logged: number;
  /** Refusals past `linesPerWindow`, not logged one by one. */
  more: number;
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * Bounds the request log under a flood of refusals (a sender with a wrong token, a retry storm
 * while the service is overloaded): of each kind (method, endpoint, status, error code), the first
 * `linesPerWindow` of a window are logged one by one, and the rest counted into one line written
 * when the window ends. Kinds are few (Node's parser knows a fixed set of methods, every unknown
 * path is one endpoint, error codes are a fixed set), so the windows kept are too.
 */
export function createRefusalLog(logger: Logger, options: RefusalLogOptions = {}) {
  const linesPerWindow = options.linesPerWindow ?? 10;
  const windowMs = options.windowMs ?? 60_000;
  const span = windowMs === 60_000 ? 'minute' : `${windowMs / 1000} s`;
  const windows = new Map<string, Window>();

  const summarise = (kind: RefusalKind, w: Window) => {
    if (w.timer) clearTimeout(w.timer);
    if (w.more === 0) return;
    const { method, route, status, code } = kind;
    const requests =
      method === ''
        ? 'requests that could not be read'
        : route === undefined
          ? `${method} requests to unknown paths`
          : `${method} ${route} requests`;
    const line = {
      ...(method === '' ? {} : { method }),
      ...(route === undefined ? {} : { path: route }),
      status,
      code,
      more: w.more,
    };
    const text = `${w.more} more ${requests} ${status >= 500 ? 'failed' : 'refused'} with ${status}${code ? ` (${code})` : ''} in the last ${span} (at most ${linesPerWindow} per ${span} are logged one by one)`;
    w.more = 0;
    if (status >= 500) logger.warn(line, text);
    else logger.info(line, text);
  };

  return {
    /**
     * Whether this refusal gets its own log line; if not, it is counted, and the count is logged
     * when its window ends.
     */
    admit(kind: RefusalKind): boolean {
      const now = Date.now();
      const key = `${kind.method} ${kind.route ?? ''} ${kind.status} ${kind.code ?? ''}`;
      let w = windows.get(key);
      if (w !== undefined && now >= w.ends) {
        summarise(kind, w);
        w = undefined;
      }
      if (w === undefined) {
        w = { kind, ends: now + windowMs, logged: 0, more: 0 };
        windows.set(key, w);
      }
      if (w.logged < linesPerWindow) {
        w.logged++;
        return true;
      }
      if (w.more++ === 0) {
        const ended = w;
        ended.timer = setTimeout(() => {
          summarise(kind, ended);
          if (windows.get(key) === ended) windows.delete(key);
        }, ended.ends - now);
        ended.timer.unref();
      }
      return false;
    },
    /** Writes the counts of the windows still open (the service is stopping: they would not end). */
    flush(): void {
      for (const w of windows.values()) summarise(w.kind, w);
      windows.clear();
    },
  };
}

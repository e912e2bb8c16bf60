/** The part of Bolt's Socket Mode client (`@slack/socket-mode`) the supervisor watches. */
export interface SocketClient {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  emit(event: string, ...args: unknown[]): unknown;
  start(): Promise<unknown>;
}

/** The client's own state the supervisor reads and writes: its socket and its reconnection delay. */
interface ClientInternals {
  websocket?: { disconnect(): void };
  delayReconnectAttempt?: (cb: () => Promise<unknown>) => Promise<unknown>;
  numOfConsecutiveReconnectionFailures?: number;
  clientPingTimeoutMS?: number;
  reconnectionTimer?: NodeJS.Timeout | undefined;
  shuttingDown?: boolean;
}

export interface SocketSupervisorOptions {
  logger: {
    info(o: object, m: string): void;
    error(o: object, m: string): void;
  };
  /** How long a dropped connection may take to come back before readiness says so (default 30 s). */
  graceMs?: number;
  /** The wait after the n-th failure in a row is n times this (default 10 s), at most a minute. */
  retryStepMs?: number;
  /** How long a socket being opened may wait for Slack's `hello` before it is closed (default 30 s). */
  helloMs?: number;
  now?: () => number;
}

export interface SocketSupervisor {
  /** The first start failed: why. Readiness says so at once, and the start is tried again. */
  startFailed(reason: string): void;
  /** Why clicks and commands cannot arrive now, for `/readyz`; undefined while connected. */
  problem(): string | undefined;
  stop(): void;
}

/** Longest wait between two of the supervisor's own attempts. */
const MAX_RETRY_MS = 60_000;

/**
 * Keeps the Socket Mode connection up. Bolt's client reconnects by itself, as one chain of
 * attempts: a socket that closes schedules a start, and a start whose socket fails closes it again.
 * The chain ends only when a start fails outright: `apps.connections.open` refused (a revoked
 * token) or unreachable past the client's retries. That failure is a rejection nobody listens to,
 * and the client never tries again: clicks and commands would stop for good.
 *
 * The client's `start` is wrapped so that such a failure is caught here. Only then, when no
 * attempt of the client's is under way, does the supervisor start it again, after a wait that
 * grows with each failure in a row (up to a minute): there is never a second chain, so never a
 * second socket. The first call (the app's own start) is left as it is: its failure is the
 * caller's to report, through `startFailed`, which starts the same retries.
 *
 * Readiness: down at once after a failed start; after a drop, once it has lasted `graceMs`.
 */
export function superviseSocket(client: SocketClient, opts: SocketSupervisorOptions): SocketSupervisor {
  const { logger } = opts;
  const internals = client as unknown as ClientInternals;
  const now = opts.now ?? Date.now;
  const graceMs = opts.graceMs ?? 30_000;
  const stepMs = opts.retryStepMs ?? 10_000;
  let connected = false;
  /** Since when the connection is down (the start counts as down until it connects). */
  let downSince: number | undefined = now();
  /** Why the last start failed, while no connection has come up since. */
  let lastError: string | undefined;
  /** Slack accepted the app token since the connection went down: the WebSocket is what fails. */
  let tokenAccepted = false;
  /** An error was logged since the connection went down: its coming back is logged too. */
  let errorLogged = false;
  let failures = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let stopped = false;
  const helloMs = opts.helloMs ?? 30_000;
  let helloTimer: NodeJS.Timeout | undefined;
  const clearHello = () => {
    clearTimeout(helloTimer);
    helloTimer = undefined;
  };
  // A socket that opens but never gets Slack's `hello` would wait for it for good: the client has
  // no limit there. It is closed, and the client's reconnection takes over.
  client.on('connecting', () => {
    clearHello();
    helloTimer = setTimeout(() => {
      helloTimer = undefined;
      if (connected || stopped) return;
      errorLogged = true;
      logger.error(
        { helloMs },
        `Slack Socket Mode: no hello within ${helloMs / 1000} s of opening the connection; reconnecting`,
      );
      internals.websocket?.disconnect();
    }, helloMs);
    helloTimer.unref();
  });

  // apps.connections.open answered with a URL: the token is good, whatever failed before.
  client.on('authenticated', () => {
    lastError = undefined;
    tokenAccepted = true;
  });

  client.on('connected', () => {
    if (errorLogged || (downSince !== undefined && now() - downSince >= graceMs)) {
      logger.info({}, 'Slack Socket Mode connected again: receiving clicks and commands');
    }
    clearHello();
    connected = true;
    downSince = undefined;
    lastError = undefined;
    tokenAccepted = false;
    errorLogged = false;
    failures = 0;
  });
  const down = () => {
    connected = false;
    downSince ??= now();
  };
  for (const event of ['reconnecting', 'disconnecting', 'disconnected', 'close']) client.on(event, down);

  /** Starts the client again after a wait, unless a retry is already waiting. */
  const schedule = () => {
    if (stopped || retryTimer !== undefined) return;
    retryTimer = setTimeout(
      () => {
        retryTimer = undefined;
        if (stopped || connected) return;
        // Through the wrapper: a failure of this start schedules the next one.
        void client.start();
      },
      Math.min(MAX_RETRY_MS, stepMs * failures),
    );
    retryTimer.unref();
  };
  const failed = (reason: string) => {
    failures++;
    lastError = reason;
    tokenAccepted = false;
    down();
    schedule();
  };

  // The client's delay before a new attempt runs the attempt, but a failure of it is lost: the
  // promise the caller awaits never settles. When the caller is the client's retry of
  // apps.connections.open (after `ratelimited`, say), the start that waits on it then hangs for
  // good, and nothing starts the client again. The same delay, capped at a minute, whose promise
  // fails with the attempt: the start fails, and the wrapper below sees it.
  if (typeof internals.delayReconnectAttempt === 'function') {
    internals.delayReconnectAttempt = (cb) => {
      const n = (internals.numOfConsecutiveReconnectionFailures ?? 0) + 1;
      internals.numOfConsecutiveReconnectionFailures = n;
      const ms = Math.min(MAX_RETRY_MS, (internals.clientPingTimeoutMS ?? 5000) * n);
      return new Promise((resolve, reject) => {
        internals.reconnectionTimer = setTimeout(() => {
          internals.reconnectionTimer = undefined;
          if (internals.shuttingDown) {
            resolve(undefined);
            return;
          }
          client.emit('reconnecting');
          cb.call(client).then(resolve, reject);
        }, ms);
      });
    };
  }

  const bolts = client.start;
  let first = true;
  client.start = () => {
    const started = bolts.call(client);
    if (first) {
      first = false;
      return started;
    }
    return started.catch((err: unknown) => {
      const reason = String((err as Error)?.message ?? err).slice(0, 300);
      if (!stopped) {
        errorLogged = true;
        logger.error(
          { err: reason, failures: failures + 1 },
          'Slack Socket Mode cannot reconnect: clicks and commands are not received; trying again (check SLACK_APP_TOKEN if Slack refuses it)',
        );
      }
      failed(reason);
      return undefined;
    });
  };

  return {
    startFailed(reason) {
      // The caller logs it at error.
      errorLogged = true;
      failed(reason);
    },
    problem() {
      if (connected || stopped) return undefined;
      if (lastError === undefined && (downSince === undefined || now() - downSince < graceMs))
        return undefined;
      const since = downSince === undefined ? '' : ` since ${new Date(downSince).toISOString()}`;
      if (lastError === undefined && tokenAccepted) {
        return `Slack Socket Mode could not connect${since} (Slack accepts the app token, but the WebSocket connection does not come up or drops): buttons and /arc-history are not received; check that the service can reach Slack's WebSocket host (wss-primary.slack.com) through proxies and firewalls; it keeps retrying`;
      }
      return `Slack Socket Mode could not connect${since} (${lastError ?? 'the connection dropped and is being re-established'}): buttons and /arc-history are not received; check SLACK_APP_TOKEN (an xapp- token with the connections:write scope); it keeps retrying`;
    },
    stop() {
      stopped = true;
      clearHello();
      clearTimeout(retryTimer);
      retryTimer = undefined;
    },
  };
}

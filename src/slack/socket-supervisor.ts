/**
 * The part of Bolt's Socket Mode client (`@slack/socket-mode`) the supervisor watches. The two
 * fields are the client's own state: a reconnection it has scheduled, and a stop it was asked for.
 */
export interface SocketClient {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  start(): Promise<unknown>;
}

interface ClientState {
  reconnectionTimer?: unknown;
  shuttingDown?: boolean;
}

export interface SocketSupervisorOptions {
  logger: {
    info(o: object, m: string): void;
    warn(o: object, m: string): void;
    error(o: object, m: string): void;
  };
  /** How often the connection is looked at (default 10 s). */
  checkMs?: number;
  /** How long Bolt's own reconnection is given before the supervisor steps in (default 30 s). */
  graceMs?: number;
  /** The wait after the n-th failure in a row is n times this (default 10 s), at most a minute. */
  retryStepMs?: number;
  now?: () => number;
}

export interface SocketSupervisor {
  /** The first start failed: why (readiness says so at once, and the supervisor retries). */
  startFailed(reason: string): void;
  /** Why clicks and commands cannot arrive now, for `/readyz`; undefined while connected. */
  problem(): string | undefined;
  stop(): void;
}

/** Longest wait between two of the supervisor's own attempts. */
const MAX_RETRY_MS = 60_000;

/**
 * Keeps the Socket Mode connection up. Bolt's client reconnects by itself, but a reconnection
 * whose `apps.connections.open` fails (Slack unreachable for a moment, a 5xx, a revoked token)
 * rejects with nobody listening, and the client never tries again: clicks and commands would stop
 * arriving for good while readiness said nothing. The supervisor notices a connection down for
 * longer than `graceMs` with no reconnection scheduled, reports it, and starts the client again,
 * waiting longer after each failure (up to a minute).
 *
 * The client's `start` is wrapped so that a reconnection Bolt starts and that fails is caught and
 * counted here instead of becoming an unhandled rejection. The first call (the app's start) is
 * left as it is: its failure is the caller's to report (`startFailed`).
 */
export function superviseSocket(client: SocketClient, opts: SocketSupervisorOptions): SocketSupervisor {
  const { logger } = opts;
  const now = opts.now ?? Date.now;
  const graceMs = opts.graceMs ?? 30_000;
  const backoff = () => Math.min(MAX_RETRY_MS, (opts.retryStepMs ?? 10_000) * failures);
  const state = client as unknown as ClientState;
  let connected = false;
  /** Since when the connection is down (the start counts as down until it connects). */
  let downSince: number | undefined = now();
  let lastError: string | undefined;
  let failedAtStart = false;
  let failures = 0;
  let nextTryAt = 0;
  let restarting = false;
  let stopped = false;

  client.on('connected', () => {
    if (failedAtStart || (downSince !== undefined && now() - downSince >= graceMs)) {
      logger.info({}, 'Slack Socket Mode connected again: receiving clicks and commands');
    }
    connected = true;
    downSince = undefined;
    lastError = undefined;
    failedAtStart = false;
    failures = 0;
  });
  const down = () => {
    connected = false;
    downSince ??= now();
  };
  for (const event of ['reconnecting', 'disconnecting', 'disconnected', 'close']) client.on(event, down);

  const failed = (err: unknown) => {
    failures++;
    lastError = String((err as Error)?.message ?? err).slice(0, 300);
    nextTryAt = now() + backoff();
    logger.error(
      { err: lastError, failures },
      'Slack Socket Mode cannot reconnect: clicks and commands are not received; retrying (check SLACK_APP_TOKEN if Slack refuses it)',
    );
  };
  const bolts = client.start;
  const start = () => bolts.call(client);
  let first = true;
  client.start = () => {
    if (first) {
      first = false;
      return start();
    }
    return start().catch((err: unknown) => {
      failed(err);
      return undefined;
    });
  };

  const retry = () => {
    restarting = true;
    start().then(
      () => {
        restarting = false;
      },
      (err: unknown) => {
        restarting = false;
        failed(err);
      },
    );
  };

  const timer = setInterval(() => {
    if (stopped || connected || restarting || state.shuttingDown) return;
    // Bolt's own reconnection gets its chance first, and is never run twice at once.
    if (!failedAtStart && downSince !== undefined && now() - downSince < graceMs) return;
    if (state.reconnectionTimer !== undefined || now() < nextTryAt) return;
    retry();
  }, opts.checkMs ?? 10_000);
  timer.unref();

  return {
    startFailed(reason) {
      failedAtStart = true;
      lastError = reason;
      failures++;
      nextTryAt = now() + backoff();
    },
    problem() {
      if (connected || stopped) return undefined;
      if (!failedAtStart && (downSince === undefined || now() - downSince < graceMs)) return undefined;
      const since = downSince === undefined ? '' : ` since ${new Date(downSince).toISOString()}`;
      return `Slack Socket Mode could not connect${since} (${lastError ?? 'the connection dropped and has not come back'}): buttons and /arc-history are not received; check SLACK_APP_TOKEN (an xapp- token with the connections:write scope); it keeps retrying`;
    },
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}

import { createHash } from 'node:crypto';
import type { AnyMiddlewareArgs, App } from '@slack/bolt';
import type { Claims } from '../core/ports.ts';
import { withTimeout } from '../timeout.ts';

/** How long a handled Slack request is remembered; Slack retries within minutes. */
const REQUEST_MEMORY_MS = 60 * 60 * 1000;

/**
 * How long a retry or an event waits to learn whether it came before; past it, it is handled
 * (every action is safe to repeat), so that a slow store never costs the 3 s acknowledgement.
 */
const RETRY_CHECK_MS = 1000;

/** The identity of one Slack request, the same across Slack's retries of it. */
function requestKey(body: unknown): string {
  const b = (body ?? {}) as Record<string, unknown>;
  for (const field of ['trigger_id', 'event_id'] as const) {
    const v = b[field];
    if (typeof v === 'string' && v !== '' && v.length <= 200) return `slack-req:${field}:${v}`;
  }
  const digest = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 32);
  return `slack-req:body:${digest}`;
}

/**
 * A global middleware: a request already handled is acknowledged and goes no further, across
 * replicas sharing the store. That is an Events API delivery whose `event_id` came before, or any
 * request that Slack marks as a retry (`X-Slack-Retry-Num`, the same payload again). A button press
 * or command that merely shares its `trigger_id` with an earlier one, without being a retry, is
 * handled: only Slack's own retries are known to repeat a request.
 */
export function registerDedupe(
  app: App,
  store: Claims,
  logger: { info(o: object, m: string): void; warn(o: object, m: string): void },
): void {
  app.use(async (args) => {
    const { body, next } = args;
    const ack = (args as AnyMiddlewareArgs & { ack?: () => Promise<void> }).ack;
    const key = requestKey(body);
    const retry = (args.context as { retryNum?: number }).retryNum;
    const claiming = store.claim(key, REQUEST_MEMORY_MS);
    const cannotRecord = (err: unknown) =>
      logger.warn({ err: (err as Error).message }, 'cannot record the Slack request id; handling it anyway');
    // A first delivery of a click or a command is handled whatever the claim answers: the claim
    // only records it for Slack's retries, and the acknowledgement (due within 3 s) waits for no
    // store.
    if (retry === undefined && !key.startsWith('slack-req:event_id:')) {
      claiming.catch(cannotRecord);
      await next();
      return;
    }
    let first = true;
    try {
      first = await withTimeout(claiming, RETRY_CHECK_MS, 'the store');
    } catch (err) {
      cannotRecord(err);
    }
    if (!first) {
      logger.info({ retry }, 'ignored a Slack request that was already handled (a retry)');
      if (ack) await ack();
      return;
    }
    await next();
  });
}

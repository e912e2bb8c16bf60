import { createHash } from 'node:crypto';
import type { AnyMiddlewareArgs, App } from '@slack/bolt';
import type { Claims } from '../core/ports.ts';

/** How long a handled Slack request is remembered; Slack retries within minutes. */
const REQUEST_MEMORY_MS = 60 * 60 * 1000;

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
    let first = true;
    try {
      first = await store.claim(key, REQUEST_MEMORY_MS);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'cannot record the Slack request id; handling it anyway');
    }
    if (!first && (retry !== undefined || key.startsWith('slack-req:event_id:'))) {
      logger.info({ retry }, 'ignored a Slack request that was already handled (a retry)');
      if (ack) await ack();
      return;
    }
    await next();
  });
}

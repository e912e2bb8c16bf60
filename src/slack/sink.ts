import type { AlertRecord, AlertRepeat } from '../core/alert.ts';
import type { AlertSink } from '../core/ports.ts';
import type { Enrichment } from '../core/remediation.ts';
import { loadAlertState, parseRef, refOf, type SlackAlertState, saveAlertState } from './alert-state.ts';
import { confirmTextFor } from './blocks/alert.ts';
import type { SlackContext } from './context.ts';
import { SlackDeliveryError } from './delivery-queue.ts';

/** Longest wait for enrichment or the remediation plan before posting without them. */
const LOOKUP_TIMEOUT_MS = 8000;

/** Resolves with `work`, or rejects after `ms` (the work itself is left to finish on its own). */
function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** While one process posts an alert, others wait this long before trying the same alert. */
const POST_CLAIM_TTL_MS = 2 * 60 * 1000;

/**
 * The alert sink: posts each new alert once to the alert channel, and updates it for repeats.
 * Enrichment and the remediation plan (for the Revoke confirm dialog) are looked up first; a
 * failed lookup never stops the alert.
 */
export function createSlackSink(ctx: SlackContext): AlertSink {
  const { store, logger } = ctx;

  async function prepare(alert: AlertRecord): Promise<SlackAlertState> {
    const d = alert.detection;
    // Both lookups run at once and are bounded: a slow Azure must not hold the alert back.
    const [enriched, planned] = await Promise.allSettled([
      ctx.enricher
        ? within(ctx.enricher.enrich(d), LOOKUP_TIMEOUT_MS, 'enrichment')
        : Promise.resolve(undefined),
      within(ctx.remediator.plan(d), LOOKUP_TIMEOUT_MS, 'remediation planning'),
    ]);
    let enrichment: Enrichment | undefined;
    if (enriched.status === 'fulfilled') enrichment = enriched.value;
    else enrichment = { errors: [`enrichment failed: ${(enriched.reason as Error).message}`] };
    let confirmText: string;
    if (planned.status === 'fulfilled') {
      const plan = planned.value;
      confirmText = confirmTextFor(ctx.remediator.mode, plan.steps, plan.stillHasAccessThrough.length);
    } else {
      logger.warn(
        { alertId: alert.id, err: (planned.reason as Error).message },
        'cannot plan the remediation for the alert; the confirm dialog says what Revoke does in general',
      );
      confirmText = confirmTextFor(ctx.remediator.mode, undefined);
    }
    const state: SlackAlertState = { alert, channel: ctx.alertChannel, confirmText };
    if (enrichment) state.enrichment = enrichment;
    return state;
  }

  return {
    async post(alert) {
      const known = await loadAlertState(store, alert.id);
      // Posted before (an outbox retry after a crash): never post twice.
      if (known?.ts) return { ref: refOf(known.channel, known.ts) };
      const claim = `slack-post:${alert.id}`;
      if (!(await store.claim(claim, POST_CLAIM_TTL_MS))) {
        throw new SlackDeliveryError(
          'post_in_progress',
          `alert ${alert.id} is being posted by another worker`,
          true,
        );
      }
      try {
        const state = known ?? (await prepare(alert));
        const { channel, ts } = await ctx.messenger.postAlert(state);
        state.channel = channel;
        state.ts = ts;
        await saveAlertState(store, state);
        logger.info({ alertId: alert.id, channel, ts }, 'alert posted to Slack');
        return { ref: refOf(channel, ts) };
      } catch (err) {
        await store.releaseClaim(claim);
        throw err;
      }
    },

    async repeat(ref, alert, repeat: AlertRepeat) {
      let state = await loadAlertState(store, alert.id);
      if (!state) {
        const where = parseRef(ref);
        if (!where) {
          logger.warn({ ref, alertId: alert.id }, 'repeat for an alert with no Slack message: skipped');
          return;
        }
        state = {
          alert,
          channel: where.channel,
          ts: where.ts,
          confirmText: confirmTextFor(ctx.remediator.mode, undefined),
        };
      }
      const prev = state.repeat;
      state.repeat = {
        count: Math.max(prev?.count ?? 0, repeat.count),
        lastSeen: Math.max(prev?.lastSeen ?? 0, repeat.lastSeen),
      };
      await saveAlertState(store, state);
      await ctx.messenger.updateAlert(state);
    },
  };
}

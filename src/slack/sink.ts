import type { AlertRecord, AlertRepeat } from '../core/alert.ts';
import { type AlertSink, DELIVERY_IN_PROGRESS, type Values } from '../core/ports.ts';
import type { Enrichment, RemediationPlan } from '../core/remediation.ts';
import { TAMPERING, timeBoundSeenIn } from '../core/remediation-plan.ts';
import { waitAtMost, withTimeout } from '../timeout.ts';
import {
  loadAlertState,
  parseRef,
  refOf,
  type SlackAlertState,
  saveAlertState,
  updateAlertState,
} from './alert-state.ts';
import { confirmTextFor } from './blocks/run-text.ts';
import type { SlackContext } from './context.ts';
import { certainlyNotDone, SlackDeliveryError } from './delivery-queue.ts';
import { showAlert } from './follow-ups.ts';

/** Longest wait for enrichment and the remediation plan before the alert goes out without them. */
const LOOKUP_BUDGET_MS = 2000;
/** Longest time a late lookup may take before it is given up (and named in the alert). */
const LATE_LOOKUP_TIMEOUT_MS = 60_000;

/**
 * While one process posts an alert, others wait this long before trying the same alert: longer
 * than a post can take (the 2 s lookup budget, waiting for the channel's turn, then at most three
 * Web API attempts of 15 s with their back-off). After a crash mid-post, the restarted service
 * posts (or finds) the alert once this has passed.
 */
const POST_CLAIM_TTL_MS = 2 * 60 * 1000;

/**
 * Set just before chat.postMessage, deleted once its answer is stored: found on a retry, it means
 * an earlier attempt may have reached Slack (the process stopped, or the call timed out), so the
 * channel is searched before posting again.
 */
export const postMarkKey = (alertId: string) => `slack-posting:${alertId}`;
/** When the attempt began (epoch ms), and the channel it posted to (SLACK_ALERT_CHANNEL may move). */
export interface PostMark {
  at: number;
  channel: string;
}
const POST_MARK_TTL_MS = 7 * 24 * 3600 * 1000;

/**
 * A stored post mark as a `PostMark`; undefined when there is none. A mark stored as a bare number
 * is the attempt's time alone: its channel is `channel`, the alert's.
 */
export function readPostMark(stored: unknown, channel: string): PostMark | undefined {
  if (stored === undefined) return undefined;
  return typeof stored === 'number' ? { at: stored, channel } : (stored as PostMark);
}

/**
 * True while an alert's post waits for a clear answer from Slack: the message may be in the channel
 * already, but its state is stored only once the answer is (or the outbox's retry finds it there).
 */
export async function postPending(store: Pick<Values, 'get'>, alertId: string): Promise<boolean> {
  return (await store.get<unknown>(postMarkKey(alertId))) !== undefined;
}

/** How long the sink waits for lookups; tests shorten both. */
export interface SinkTiming {
  lookupBudgetMs?: number;
  lateLookupTimeoutMs?: number;
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: Error };

/** A lookup that keeps running after the alert went out; `result` is set once it settles. */
class Lookup<T> {
  result: Settled<T> | undefined;
  readonly settled: Promise<Settled<T>>;

  constructor(start: () => Promise<T>) {
    let work: Promise<T>;
    try {
      work = start();
    } catch (error) {
      work = Promise.reject(error);
    }
    this.settled = work
      .then(
        (value): Settled<T> => ({ ok: true, value }),
        (error: unknown): Settled<T> => ({
          ok: false,
          error: error instanceof Error ? error : new Error(String(error)),
        }),
      )
      .then((r) => {
        this.result = r;
        return r;
      });
  }
}

const failedEnrichment = (error: Error): Enrichment => ({
  errors: [`enrichment failed: ${error.message}`],
});

/** The lookups started for one alert. */
interface Lookups {
  enrichment?: Lookup<Enrichment>;
  plan: Lookup<RemediationPlan>;
  /** The plan had not arrived when the message was built. */
  planPending?: boolean;
}

/** A posted alert's state, and its lookups still running (none for an alert prepared before). */
interface Posted {
  state: SlackAlertState;
  lookups: Lookups | undefined;
}

/**
 * The alert sink: posts each new alert once to the alert channel, and updates it for repeats.
 * Enrichment and the remediation plan (for the Revoke confirm dialog) are looked up first, but for
 * at most `lookupBudgetMs` (2 s): what has not arrived by then is left out, and the message is
 * updated when it arrives. A failed lookup never holds back or suppresses the alert.
 */
export function createSlackSink(ctx: SlackContext, timing: SinkTiming = {}): AlertSink {
  const { store, logger } = ctx;
  const budgetMs = timing.lookupBudgetMs ?? LOOKUP_BUDGET_MS;
  const lateMs = timing.lateLookupTimeoutMs ?? LATE_LOOKUP_TIMEOUT_MS;

  /** The plan's dialog text and alarms, into the alert's state (after its enrichment, when there is one). */
  const applyPlan = (s: SlackAlertState, plan: RemediationPlan) => {
    s.confirmText = confirmTextFor(ctx.remediator.mode, plan.steps, plan.stillHasAccessThrough.length, {
      principalDisabled: s.enrichment?.principalDisabled === true,
    });
    const seen = timeBoundSeenIn(plan);
    if (seen) s.timeBoundSeen = seen;
    const alarms = plan.warnings.filter((w) => w.startsWith(TAMPERING));
    if (alarms.length > 0) s.planAlarms = alarms;
    else delete s.planAlarms;
  };

  function logPlanFailure(alertId: string, error: Error): void {
    logger.warn(
      { alertId, err: error.message },
      'cannot plan the remediation for the alert; the confirm dialog says what Revoke does in general',
    );
  }

  async function prepare(alert: AlertRecord): Promise<{ state: SlackAlertState; lookups: Lookups }> {
    const d = alert.detection;
    const enricher = ctx.enricher;
    const lookups: Lookups = {
      // The enricher stops its own lookups after `lateMs` and names them in `errors`.
      plan: new Lookup(() => withTimeout(ctx.remediator.plan(d), lateMs, 'remediation planning')),
    };
    if (enricher) lookups.enrichment = new Lookup(() => enricher.enrich(d, { timeoutMs: lateMs }));
    await waitAtMost(
      Promise.allSettled([lookups.plan.settled, ...(lookups.enrichment ? [lookups.enrichment.settled] : [])]),
      budgetMs,
    );

    const state: SlackAlertState = {
      alert,
      channel: ctx.alertChannel,
      confirmText: confirmTextFor(ctx.remediator.mode, undefined),
    };
    if (lookups.enrichment) {
      const enriched = lookups.enrichment.result;
      if (!enriched) state.enrichmentPending = true;
      else state.enrichment = enriched.ok ? enriched.value : failedEnrichment(enriched.error);
    }
    const planned = lookups.plan.result;
    if (!planned) lookups.planPending = true;
    else if (planned.ok) applyPlan(state, planned.value);
    else logPlanFailure(alert.id, planned.error);
    return { state, lookups };
  }

  /** Saves what arrived late into the alert's state and shows it in the posted message. */
  async function applyLate(alertId: string, what: string, change: (s: SlackAlertState) => void) {
    try {
      const latest = await updateAlertState(store, alertId, change);
      // A refused update is caught up later (follow-ups.ts), like every other one.
      if (latest) await showAlert(ctx, latest);
      logger.info({ alertId }, `late ${what} added to the Slack alert`);
    } catch (err) {
      logger.warn({ alertId, err: (err as Error).message }, `cannot add the late ${what} to the Slack alert`);
    }
  }

  /** After the post: updates the message for each lookup that had not finished in time. */
  function followUp(alertId: string, lookups: Lookups, state: SlackAlertState): void {
    const { enrichment, plan } = lookups;
    if (enrichment && state.enrichmentPending) {
      void enrichment.settled.then((r) =>
        applyLate(alertId, 'enrichment', (s) => {
          s.enrichment = r.ok ? r.value : failedEnrichment(r.error);
          delete s.enrichmentPending;
          // The plan's dialog says what the enrichment found of the principal.
          if (plan.result?.ok) applyPlan(s, plan.result.value);
        }),
      );
    }
    if (lookups.planPending) {
      void plan.settled.then((r) => {
        if (!r.ok) {
          logPlanFailure(alertId, r.error);
          return;
        }
        return applyLate(alertId, 'remediation plan', (s) => applyPlan(s, r.value));
      });
    }
  }

  /**
   * Alerts Slack answered whose state the store then refused (it failed right after the post): the
   * retry records that message, rather than waiting for the attempt's hold to lapse and searching
   * the channel for it (or posting it again, without the history scope). Its lookups still running
   * are kept too: they update the message once the retry has recorded it.
   */
  const postedUnsaved = new Map<string, Posted>();

  /** Stores a posted alert's state, then lets go of what the post kept for it; its lookups follow. */
  const record = async ({ state, lookups }: Posted, ts: string): Promise<{ ref: string }> => {
    const alertId = state.alert.id;
    await saveAlertState(store, state);
    postedUnsaved.delete(alertId);
    await store.delete(postMarkKey(alertId));
    if (lookups) followUp(alertId, lookups, state);
    return { ref: refOf(state.channel, ts) };
  };

  return {
    async post(alert) {
      const known = await loadAlertState(store, alert.id);
      // Posted before (an outbox retry after a crash): never post twice.
      if (known?.ts) {
        // Kept from a post whose state the store took after all: its lookups still update it.
        const kept = postedUnsaved.get(alert.id);
        postedUnsaved.delete(alert.id);
        if (kept?.lookups) followUp(alert.id, kept.lookups, known);
        return { ref: refOf(known.channel, known.ts) };
      }
      // The attempt that posted it released its claim when the store failed.
      const unsaved = postedUnsaved.get(alert.id);
      if (unsaved?.state.ts) return record(unsaved, unsaved.state.ts);
      const claim = `slack-post:${alert.id}`;
      if (!(await store.claim(claim, POST_CLAIM_TTL_MS))) {
        throw new SlackDeliveryError(
          DELIVERY_IN_PROGRESS,
          `alert ${alert.id} is being posted by another worker`,
          true,
        );
      }
      const markKey = postMarkKey(alert.id);
      /** The call to chat.postMessage went out, and whether its answer came. */
      let sent = false;
      let answered = false;
      try {
        const prepared = known ? { state: known, lookups: undefined } : await prepare(alert);
        const { state } = prepared;
        const mark = readPostMark(await store.get<unknown>(markKey), state.channel);
        // Throws (retryable) when the channel cannot be searched now: posting blind could double it.
        const interrupted = mark
          ? await ctx.messenger.findAlertMessage({ ...state, channel: mark.channel }, mark.at)
          : undefined;
        let where: { channel: string; ts: string };
        if (interrupted) {
          where = interrupted;
          logger.info(
            { alertId: alert.id, ...interrupted },
            'the alert was posted by an attempt that stopped before recording it; not posting it again',
          );
        } else {
          // Marked first: should the process stop during the call, the retry looks for the message.
          await store.set(
            markKey,
            { at: Date.now(), channel: state.channel } satisfies PostMark,
            POST_MARK_TTL_MS,
          );
          sent = true;
          where = await ctx.messenger.postAlert(state);
          answered = true;
          logger.info(
            {
              alertId: alert.id,
              appId: alert.detection.appId,
              ip: alert.detection.sourceIp,
              ...where,
              sinceEventMs: Date.now() - Date.parse(alert.detection.eventTime),
            },
            'alert posted to Slack',
          );
        }
        state.channel = where.channel;
        state.ts = where.ts;
        // Kept until the store has it: should it refuse the state, the retry records this message.
        const posted = { state, lookups: prepared.lookups };
        postedUnsaved.set(alert.id, posted);
        return await record(posted, where.ts);
      } catch (err) {
        const nothingPosted = err instanceof SlackDeliveryError && certainlyNotDone(err);
        if (sent && nothingPosted) await store.delete(markKey).catch(() => {});
        if (sent && !answered && !nothingPosted) {
          // The post may still land (Slack answers late, a timeout): the claim is left to lapse, so
          // that the retry searches the channel only once Slack has surely finished.
          logger.warn(
            { alertId: alert.id, err: (err as Error).message },
            'the alert post got no clear answer; it is searched for in the channel before it is posted again',
          );
        } else {
          await store.releaseClaim(claim);
        }
        throw err;
      }
    },

    async repeat(ref, alert, repeat: AlertRepeat) {
      let created = false;
      let state = await updateAlertState(store, alert.id, (s) => {
        const prev = s.repeat;
        s.repeat = {
          count: Math.max(prev?.count ?? 0, repeat.count),
          lastSeen: Math.max(prev?.lastSeen ?? 0, repeat.lastSeen),
        };
      });
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
          repeat: { count: repeat.count, lastSeen: repeat.lastSeen },
        };
        created = true;
      }
      if (created) await saveAlertState(store, state);
      await ctx.messenger.updateAlert(state, { refresh: true });
    },
  };
}

import type { AlertRecord, AlertRepeat } from '../core/alert.ts';
import {
  type AlertSink,
  type Claims,
  type ConditionalEntry,
  type ConditionalWrites,
  DELIVERY_IN_PROGRESS,
  type Expected,
  HOLD_AFTER,
  type MemberSets,
  type Outbox,
  REV,
  type Values,
} from '../core/ports.ts';
import { newRev } from '../core/rev.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { StoreError } from '../store/store-error.ts';
import { withTimeout } from '../timeout.ts';

/** Tuning of the outbox; every field has a production default. */
export interface OutboxOptions {
  /**
   * Undelivered alerts at which `POST /ingest` answers 503. Pending updates of posted alerts
   * (repeats, one per alert) are bounded apart, by the same number: over it, new repeats wait
   * for the next sighting (each carries the full count). Default 10,000.
   */
  maxPending?: number;
  /**
   * How long one delivery attempt holds its lease. Another replica (or this one after a crash)
   * can take the item only after it lapses, so it must exceed `deliveryTimeoutMs`. Default 60 s.
   */
  leaseMs?: number;
  /** A chat call that has not settled after this long counts as failed. Default 20 s. */
  deliveryTimeoutMs?: number;
  /** How often the worker looks for work it was not told about (other replicas, restarts). Default 1 s. */
  pollMs?: number;
  /** First retry delay after a failure; doubles per failure up to `maxBackoffMs`. Default 2 s. */
  baseBackoffMs?: number;
  /** Default 5 minutes. */
  maxBackoffMs?: number;
  /** How soon an alert that another attempt is delivering is looked at again. Default 5 s. */
  inProgressRetryMs?: number;
  /** Most deliveries per worker pass before it yields. Default 100. */
  batchSize?: number;
  /** While delivery is paused after failures, how often one item is tried. Default 15 s. */
  probeMs?: number;
  /**
   * How long a posted alert's chat reference is kept after its post or its last update, for the
   * repeats to come. Default 30 days, and at least a history window and a day (`windowMs`): a
   * pair's next sighting may come up to a window after its last one.
   */
  refTtlMs?: number;
  /** The history window, epoch ms (see `refTtlMs`). */
  windowMs?: number;
}

const DAY_MS = 24 * 3600 * 1000;

/** The durable outbox: the engine's `Outbox` port plus the delivery worker and its bound. */
export interface DurableOutbox extends Outbox {
  holds(alertIds: readonly string[]): Promise<boolean[]>;
  readonly maxPending: number;
  /** Pending items (alerts and repeats): exact after each worker pass, counted up by this process's adds in between. */
  depth(): number;
  /** Pending alerts (posts), counted as `depth`. */
  pendingAlerts(): number;
  /** True when the outbox holds `maxPending` undelivered alerts or more: ingest must refuse new work. */
  isFull(): boolean;
  /** Reads the pending count and starts the worker (which first delivers what a previous run left). */
  start(): Promise<void>;
  /** Stops the worker after the delivery in progress. */
  stop(): Promise<void>;
  /** Asks the worker to run a pass now. */
  kick(): void;
  /** Runs passes until nothing deliverable is left (items in backoff stay). For tests and shutdown. */
  drain(): Promise<void>;
}

export interface OutboxDeps {
  store: Values & ConditionalWrites & Claims & MemberSets;
  sink: AlertSink;
  logger: Logger;
  metrics?: Metrics;
  now?: () => number;
}

type PostItem = { kind: 'post'; alert: AlertRecord; queuedAt: number };
/** `rev`: which write this is (see `ConditionalWrites`); absent in an item of an earlier release. */
type RepeatItem = { kind: 'repeat'; repeat: AlertRepeat; queuedAt: number; rev?: string };
type OutboxItem = PostItem | RepeatItem;

/** Rounds a repeat's write is tried over what others write before it is written over them. */
const WRITE_ROUNDS = 20;

/**
 * The count a repeat's key holds: a pending repeat's, or a delivered one's (its marker keeps it;
 * an earlier release's marker has none). 0 when none.
 */
function countHeld(value: unknown): number {
  const v = value as { kind?: unknown; count?: unknown; repeat?: { count?: unknown } } | undefined;
  const count = v?.kind === 'repeat' ? v.repeat?.count : v?.kind === 'delivered' ? v.count : undefined;
  return typeof count === 'number' ? count : 0;
}

/** Whether a repeat's key holds the marker of a delivered update. */
const isDelivered = (value: unknown): boolean =>
  (value as { kind?: unknown } | undefined)?.kind === 'delivered';

/** The `rev` a value holds, as a conditional write expects it (`null`: none). */
function revOf(value: unknown): string | null {
  const rev = (value as { rev?: unknown } | undefined)?.rev;
  return typeof rev === 'string' && REV.test(rev) ? rev : null;
}

/** Set of pending item ids: the index that lets the worker list items without scanning the store. */
export const OUTBOX_PENDING_SET = 'outbox:pending';
/** Key of a pending item's value. */
const outboxItemKey = (itemId: string) => `outbox:item:${itemId}`;
/** Chat reference (e.g. Slack channel and ts) of a delivered alert, so repeats update that message. */
export const alertRefKey = (alertId: string) => `alert-ref:${alertId}`;
/** The delivered alert itself, which `AlertSink.repeat` needs alongside the repeat. */
const deliveredAlertKey = (alertId: string) => `outbox:alert:${alertId}`;
const leaseKey = (itemId: string) => `outbox:lease:${itemId}`;
const postId = (alertId: string) => `post:${alertId}`;
/** One item per alert: a later repeat overwrites an undelivered one, so repeats coalesce. */
const repeatId = (alertId: string) => `repeat:${alertId}`;

/**
 * Lets pending I/O run between two deliveries: with a synchronous store (SQLite) a pass would
 * otherwise hold the event loop for all its deliveries and delay the ingest answers behind it.
 */
const yieldToIngest = () => new Promise<void>((resolve) => setImmediate(resolve));

/** How many items one probe tries at most while delivery is paused. */
const PROBE_TRIES = 3;

/** Pending posts whose order is read from the store per call: bounds the memory of a large backlog. */
const ORDER_READ_CHUNK = 500;

/**
 * When an alert's event happened (epoch ms), as the engine judged it: an event time ahead of the
 * detection counts as the detection's, and one that cannot be read sorts last.
 */
function eventTimeOf(alert: AlertRecord): number {
  const at = Date.parse(alert.detection?.eventTime ?? '');
  if (Number.isNaN(at)) return Number.POSITIVE_INFINITY;
  return typeof alert.detectedAt === 'number' ? Math.min(at, alert.detectedAt) : at;
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * An outbox over the store: `add` writes each alert and repeat as a value plus a member of
 * `outbox:pending`, and resolves once both are stored. A worker delivers them to the chat sink one
 * at a time under a lease (`claim`), so replicas sharing the store never deliver the same item
 * twice, records each alert's chat reference, and only then removes the item. A crash before the
 * removal is recovered on restart: an item whose alert already has a reference is not posted again.
 */
export function createStoreOutbox(deps: OutboxDeps, options: OutboxOptions = {}): DurableOutbox {
  const { store, sink, metrics } = deps;
  const log = deps.logger.child({ component: 'outbox' });
  /** Wall-clock time: when an item was queued (kept in the store, read by other processes). */
  const now = deps.now ?? Date.now;
  /**
   * The clock of the pauses, probes and back-offs, which are durations in this process: a
   * monotonic one, so that a wall clock set back (an NTP step) does not stop delivery for as long.
   * A test's clock, when it sets one, runs both.
   */
  const elapsed = deps.now ?? (() => performance.now());
  const maxPending = options.maxPending ?? 10_000;
  const leaseMs = options.leaseMs ?? 60_000;
  const deliveryTimeoutMs = Math.min(options.deliveryTimeoutMs ?? 20_000, leaseMs);
  const pollMs = options.pollMs ?? 1000;
  const baseBackoffMs = options.baseBackoffMs ?? 2000;
  const maxBackoffMs = options.maxBackoffMs ?? 300_000;
  const inProgressRetryMs = options.inProgressRetryMs ?? 5000;
  const batchSize = options.batchSize ?? 100;
  const probeMs = Math.min(options.probeMs ?? 15_000, maxBackoffMs);
  const refTtlMs = options.refTtlMs ?? Math.max(30 * DAY_MS, (options.windowMs ?? 0) + DAY_MS);

  // Depth bookkeeping: the ids seen at the last worker pass plus ids this process added since.
  let knownIds = new Set<string>();
  /**
   * The ids this process added since, each with when it was stored, by a counter that each read
   * of the pending set also moves on: an id stored before a read began and missing from it was
   * delivered (by this process or another replica), while one stored after may simply have been
   * too late for it.
   */
  const added = new Map<string, number>();
  let clock = 0;
  /** How many of the ids in `knownIds` and `added` are posts; the rest are repeats. */
  let posts = 0;
  const isPost = (id: string) => id.startsWith('post:');
  const recount = () => {
    posts = 0;
    for (const id of knownIds) if (isPost(id)) posts++;
    for (const id of added.keys()) if (isPost(id)) posts++;
  };
  /**
   * For each pending post, when its event happened (epoch ms), so that a pass posts alerts in the
   * order their events happened, whatever order the store lists them in; and when it was queued,
   * for the wait gauge. Known from `add` for this process's alerts and read once for the others;
   * pruned to the pending ids at every pass.
   */
  const postTimes = new Map<string, { event: number; queued?: number }>();
  /** Items whose last attempt failed on their own (`failed-item`): a probe says nothing by them. */
  const refusedItems = new Set<string>();
  // Per-item retry state; pruned to the pending ids at every pass so it stays bounded.
  const itemBackoff = new Map<string, { attempts: number; until: number }>();
  // Whole-worker pause after a failed pass, so a chat outage is not hammered item by item.
  let pauseUntil = 0;
  let failedPasses = 0;
  /** While paused: when one item is next tried, to see whether the chat answers again. */
  let probeAt = 0;

  let stopped = true;
  let running: Promise<void> | undefined;
  /** Outbox passes failed in a row on the store (the first one is logged as an error). */
  let storeFailedPasses = 0;
  let again = false;
  let timer: NodeJS.Timeout | undefined;

  const backoffFor = (attempts: number) => {
    const exp = Math.min(maxBackoffMs, baseBackoffMs * 2 ** Math.max(0, attempts - 1));
    // Up to +25% jitter so replicas that failed together do not retry together.
    return Math.round(exp * (1 + Math.random() * 0.25));
  };

  async function add(alerts: readonly AlertRecord[], repeats: readonly AlertRepeat[]): Promise<void> {
    if (alerts.length === 0 && repeats.length === 0) return;
    const queuedAt = now();
    const items = new Map<string, OutboxItem>();
    for (const alert of alerts) {
      items.set(postId(alert.id), { kind: 'post', alert, queuedAt });
      postTimes.set(postId(alert.id), { event: eventTimeOf(alert), queued: queuedAt });
    }
    for (const repeat of repeats) {
      const id = repeatId(repeat.alertId);
      const prev = items.get(id);
      if (prev?.kind === 'repeat' && prev.repeat.count >= repeat.count) continue;
      items.set(id, { kind: 'repeat', repeat, queuedAt, rev: newRev() });
    }
    // Repeats over their bound wait: the next sighting's repeat carries the full count.
    const repeatsPending = depth() - posts;
    let room = maxPending - repeatsPending;
    for (const id of [...items.keys()]) {
      if (isPost(id) || knownIds.has(id) || added.has(id)) continue;
      if (room > 0) room--;
      else items.delete(id);
    }
    if (items.size === 0) return;
    // Value first, index second: the worker treats an indexed id without a value as gone.
    const posted = [...items.keys()].filter(isPost);
    if (posted.length > 0) {
      await store.setMany(posted.map((id) => ({ key: outboxItemKey(id), value: items.get(id) })));
    }
    const updates = [...items.keys()].filter((id) => !isPost(id));
    // An update a higher count delivered already outdid has nothing left to deliver.
    const outdone =
      updates.length > 0
        ? await writeRepeats(updates.map((id) => [id, items.get(id) as RepeatItem]))
        : new Set<string>();
    const ids = [...items.keys()].filter((id) => !outdone.has(id));
    if (ids.length === 0) return;
    await store.addMembers(OUTBOX_PENDING_SET, ids);
    const storedAt = ++clock;
    for (const id of ids) {
      if (knownIds.has(id) || added.has(id)) continue;
      added.set(id, storedAt);
      if (isPost(id)) posts++;
    }
    // While paused after a failure the timer's passes suffice; kicking would only re-read the index.
    if (elapsed() >= pauseUntil) kick();
  }

  /**
   * Writes repeats, never over a higher count: one pending (another replica's, written after this
   * batch counted), or one delivered already (its marker keeps the count). A count another
   * process writes meanwhile is read again; after `HOLD_AFTER` lost rounds, written with the key
   * held where the store can hold it, else after `WRITE_ROUNDS`, written over.
   * Answers the ids of those a delivered higher count outdid (they need no index entry).
   */
  async function writeRepeats(entries: ReadonlyArray<readonly [string, RepeatItem]>): Promise<Set<string>> {
    const outdone = new Set<string>();
    let left = entries;
    let found = await store.getMany<unknown>(left.map(([id]) => outboxItemKey(id)));
    for (let round = 0; left.length > 0; round++) {
      const write: ConditionalEntry[] = [];
      const writing: Array<readonly [string, RepeatItem]> = [];
      left.forEach(([id, item], i) => {
        const held = found[i];
        if (countHeld(held) >= item.repeat.count) {
          if (isDelivered(held)) outdone.add(id);
          return;
        }
        writing.push([id, item]);
        write.push({
          key: outboxItemKey(id),
          value: item,
          expect: round >= WRITE_ROUNDS ? undefined : held === undefined ? 'absent' : { rev: revOf(held) },
        });
      });
      if (write.length === 0) break;
      if (round >= HOLD_AFTER && store.updateManyHeld) {
        // Where the store can hold the keys (PostgreSQL, SQLite), the rest is written with them held.
        const byKey = new Map(writing.map(([id, item]) => [outboxItemKey(id), [id, item] as const]));
        await store.updateManyHeld([...byKey.keys()], (key, held) => {
          const [id, item] = byKey.get(key)!;
          outdone.delete(id);
          if (countHeld(held) < item.repeat.count) return { value: item };
          if (isDelivered(held)) outdone.add(id);
          return undefined;
        });
        break;
      }
      const answers = await store.setManyIfUnchanged(write);
      left = writing.filter((_, i) => answers[i] !== true);
      found = answers.flatMap((a) => (a === true ? [] : [a.value]));
    }
    return outdone;
  }

  /**
   * Alerts posted whose reference the store did not take (it failed right after the post): the
   * retry stores the reference rather than posting a second message.
   */
  const postedUnrecorded = new Map<string, string>();

  function depth() {
    return knownIds.size + added.size;
  }

  /** How long the pending alert queued first has waited (s), from the queue times known. */
  function oldestWaitSeconds(): number {
    let oldest = Number.POSITIVE_INFINITY;
    for (const [id, { queued }] of postTimes) {
      if (queued !== undefined && queued < oldest && (knownIds.has(id) || added.has(id))) oldest = queued;
    }
    return Number.isFinite(oldest) ? Math.max(0, Math.round((now() - oldest) / 1000)) : 0;
  }

  /** `leaseKept`: its lease could not be given back, so no pass takes the item before it lapses. */
  function recordFailure(itemId: string, kind: 'post' | 'repeat', err: unknown, leaseKept = false) {
    // An update the chat side held back, unsent, while the chat slows updates down (a 429): no
    // further failed try, so that its back-off does not outgrow the chat's own.
    const heldBack = (err as { unsent?: unknown } | undefined)?.unsent === true;
    const previous = itemBackoff.get(itemId)?.attempts ?? 0;
    const attempts = heldBack ? Math.max(1, previous) : previous + 1;
    const wait = leaseKept ? Math.max(backoffFor(attempts), leaseMs) : backoffFor(attempts);
    itemBackoff.set(itemId, { attempts, until: elapsed() + wait });
    // A store that failed (reading the item, writing the reference) is no failure of the chat;
    // nor is a held-back update.
    const storeFailed = err instanceof StoreError;
    if (heldBack) {
      log.debug(
        { item: itemId, attempts, retryInMs: wait },
        `chat ${kind} held back (rate limited); will retry`,
      );
      return;
    }
    if (!storeFailed) metrics?.chatDeliveryFailures.inc({ kind });
    // A refusal that retrying cannot fix (a revoked token, a channel the bot is not in): the chat
    // side has logged it at error with its fix, once per cause; each retry's line is only detail.
    const needsPerson = !storeFailed && (err as { retryable?: unknown } | undefined)?.retryable === false;
    (needsPerson ? log.debug : log.warn).call(
      log,
      { item: itemId, attempts, retryInMs: wait, err: errorText(err) },
      storeFailed
        ? `the store failed during chat delivery (${kind}); will retry`
        : `chat delivery failed (${kind}); will retry`,
    );
  }

  /** Takes an item off the outbox: its value (unless `valueGone`), then its index entry. */
  async function remove(itemId: string, valueGone = false) {
    if (!valueGone) await store.delete(outboxItemKey(itemId));
    await store.removeMembers(OUTBOX_PENDING_SET, [itemId]);
    itemBackoff.delete(itemId);
    if (isPost(itemId)) postedUnrecorded.delete(itemId.slice('post:'.length));
    const was = knownIds.delete(itemId);
    if ((added.delete(itemId) || was) && isPost(itemId)) posts--;
  }

  /** `failed-item`: only this item failed (the chat refuses its content); the pass goes on. */
  type Attempt = 'delivered' | 'skipped' | 'failed' | 'failed-item' | 'waiting';

  /** The chat says the failure is this item's alone (`itemOnly` on its error): others may go on. */
  const failedAs = (err: unknown): Attempt =>
    (err as { itemOnly?: unknown } | undefined)?.itemOnly === true ? 'failed-item' : 'failed';
  /** A failed attempt's result, noting the items that fail on their own (see `refusedItems`). */
  const noted = (itemId: string, attempt: Attempt): Attempt => {
    if (attempt === 'failed-item') refusedItems.add(itemId);
    return attempt;
  };

  async function deliverPost(itemId: string): Promise<Attempt> {
    if (!(await store.claim(leaseKey(itemId), leaseMs))) return 'skipped';
    let delivered = false;
    let leaseKept = false;
    let failure: unknown;
    try {
      const alertId = itemId.slice('post:'.length);
      // A reference means an earlier run posted it and stopped before removing the item.
      const [item, existing] = await store.getMany<OutboxItem | string>([
        outboxItemKey(itemId),
        alertRefKey(alertId),
      ]);
      if (typeof item === 'object' && item.kind === 'post' && existing === undefined) {
        const alert = item.alert;
        let ref = postedUnrecorded.get(alert.id);
        if (ref === undefined) {
          ({ ref } = await withTimeout(sink.post(alert), deliveryTimeoutMs, 'chat post'));
          postedUnrecorded.set(alert.id, ref);
          metrics?.chatDeliveries.inc({ kind: 'post' });
        }
        await store.setMany([
          { key: alertRefKey(alert.id), value: ref, ttlMs: refTtlMs },
          { key: deliveredAlertKey(alert.id), value: alert, ttlMs: refTtlMs },
        ]);
        postedUnrecorded.delete(alert.id);
        log.debug({ alertId: alert.id, ref, queuedMs: now() - item.queuedAt }, 'alert delivered');
      }
      await remove(itemId);
      delivered = true;
      return 'delivered';
    } catch (err) {
      if ((err as { code?: unknown } | undefined)?.code === DELIVERY_IN_PROGRESS) {
        // Another attempt holds this alert (or one cut short by a crash, until its claim lapses):
        // no chat failure, nothing to pause for. Look again in a few seconds.
        const attempts = itemBackoff.get(itemId)?.attempts ?? 0;
        itemBackoff.set(itemId, { attempts, until: elapsed() + inProgressRetryMs });
        log.debug({ item: itemId }, 'the alert is being delivered by another attempt; will look again');
        return 'skipped';
      }
      failure = err;
    } finally {
      // A delivered post never comes back under this id, so its lease can simply lapse.
      if (!delivered) {
        await store.releaseClaim(leaseKey(itemId)).catch(() => {
          leaseKept = true;
        });
      }
    }
    // Said once the lease is given back: a process that stops after saying it holds nothing.
    recordFailure(itemId, 'post', failure, leaseKept);
    return noted(itemId, failedAs(failure));
  }

  async function deliverRepeat(itemId: string, postPending: boolean): Promise<Attempt> {
    if (!(await store.claim(leaseKey(itemId), leaseMs))) return 'skipped';
    let leaseKept = false;
    let failure: unknown;
    try {
      const item = await store.get<OutboxItem>(outboxItemKey(itemId));
      if (item?.kind === 'repeat') {
        const { alertId } = item.repeat;
        const [ref, alert] = await Promise.all([
          store.get<string>(alertRefKey(alertId)),
          store.get<AlertRecord>(deliveredAlertKey(alertId)),
        ]);
        if (ref === undefined || alert === undefined) {
          // The original message is not posted yet: update it once it is.
          if (postPending) return 'waiting';
          log.warn({ alertId }, 'repeat dropped: its alert has no chat message (never posted, or expired)');
          await removeDelivered(itemId, item);
          return 'delivered';
        } else {
          await withTimeout(sink.repeat(ref, alert, item.repeat), deliveryTimeoutMs, 'chat update');
          metrics?.chatDeliveries.inc({ kind: 'repeat' });
          // Kept as long again from this update: a pair in use for months keeps its message.
          await store.setMany([
            { key: alertRefKey(alertId), value: ref, ttlMs: refTtlMs },
            { key: deliveredAlertKey(alertId), value: alert, ttlMs: refTtlMs },
          ]);
          // A repeat that arrived during the call replaced the item: leave it for the next pass.
          if (!(await removeDelivered(itemId, item))) itemBackoff.delete(itemId);
          return 'delivered';
        }
      }
      // Taken off meanwhile (by another replica), or never stored: only its index entry goes, as
      // the value may be a repeat written since.
      await removeIndexEntry(itemId);
      return 'delivered';
    } catch (err) {
      failure = err;
    } finally {
      await store.releaseClaim(leaseKey(itemId)).catch(() => {
        leaseKept = true;
      });
    }
    recordFailure(itemId, 'repeat', failure, leaseKept);
    return noted(itemId, failedAs(failure));
  }

  /**
   * Takes a delivered repeat off the outbox unless another replaced it meanwhile (false then). A
   * check followed by a delete would lose a repeat written between the two: the item is replaced,
   * only while it is the one delivered, by a marker that lasts as long as its alert's reference.
   * (Not one that expires at once: Keyv deletes an expired value where a read finds it, which
   * would take a repeat written meanwhile with it.)
   */
  async function removeDelivered(itemId: string, item: RepeatItem): Promise<boolean> {
    const key = outboxItemKey(itemId);
    if (item.rev === undefined || !REV.test(item.rev)) {
      // An item of an earlier release (no rev), or with a rev of a form this release does not
      // write (a later release's): unchanged while it holds the same count.
      const after = await store.get<OutboxItem>(key);
      if (after?.kind === 'repeat' && after.repeat.count !== item.repeat.count) return false;
      // A rev that cannot be checked: deleted after that check alone.
      if (item.rev !== undefined) {
        await remove(itemId);
        return true;
      }
    }
    // An item without a rev is still the one delivered while the key holds none: every repeat of
    // this release carries one.
    const expect: Expected = { rev: item.rev ?? null };
    const [taken] = await store.setManyIfUnchanged([
      { key, value: { kind: 'delivered', count: item.repeat.count }, ttlMs: refTtlMs, expect },
    ]);
    if (taken !== true) return false;
    await removeIndexEntry(itemId);
    return true;
  }

  /**
   * Takes a repeat's id off the index, leaving its value: a repeat written meanwhile, whose own
   * entry this may have taken, is indexed again (and counted as pending here).
   */
  async function removeIndexEntry(itemId: string): Promise<void> {
    await remove(itemId, true);
    if ((await store.get<OutboxItem>(outboxItemKey(itemId)))?.kind === 'repeat') {
      await store.addMembers(OUTBOX_PENDING_SET, [itemId]);
      knownIds.add(itemId);
    }
  }

  /** One worker pass; returns true when it stopped early with work left. */
  async function pass(): Promise<boolean> {
    const readAt = ++clock;
    const ids = await store.members(OUTBOX_PENDING_SET);
    knownIds = new Set(ids);
    // In the read, an id counts there; added before the read and missing from it, it was
    // delivered meanwhile, here or by another replica.
    for (const [id, storedAt] of added) if (knownIds.has(id) || storedAt < readAt) added.delete(id);
    recount();
    for (const id of itemBackoff.keys()) if (!knownIds.has(id)) itemBackoff.delete(id);
    for (const id of postTimes.keys()) if (!knownIds.has(id) && !added.has(id)) postTimes.delete(id);
    for (const id of refusedItems) if (!knownIds.has(id)) refusedItems.delete(id);

    const t = elapsed();
    if (t < pauseUntil) {
      // Paused after failures: one item is tried every probeMs, so that delivery resumes within
      // about that long once the chat answers again, not after the whole (growing) pause.
      if (t < probeAt || ids.length === 0) return false;
      probeAt = t + probeMs;
      // Items that failed on their own last time (a message Slack refuses, an old channel) say
      // nothing of the chat: the first others are tried, oldest alerts first.
      const open = ids.filter((id) => !refusedItems.has(id));
      const candidates = [...(await inEventOrder(open.filter(isPost))), ...open.filter((id) => !isPost(id))];
      for (const id of candidates.slice(0, PROBE_TRIES)) {
        const result = isPost(id) ? await deliverPost(id) : await deliverRepeat(id, false);
        if (result === 'delivered') {
          recovered();
          return !stopped;
        }
        if (result === 'failed') return false;
      }
      return false;
    }
    const ready = (id: string) => (itemBackoff.get(id)?.until ?? 0) <= t;
    // Updates of alerts already posted go first, up to half a batch: they are not paced like posts
    // (about one a second per channel), so a backlog of new alerts does not keep a posted alert's
    // count stale, and a stream of updates does not hold back new alerts. Then the posts, then the
    // repeats of alerts posted in this pass (which find their reference) and the other updates.
    const postIds = await inEventOrder(ids.filter((id) => isPost(id) && ready(id)));
    const repeatIds = ids.filter((id) => id.startsWith('repeat:') && ready(id));
    const pendingPost = (id: string) => knownIds.has(postId(id.slice('repeat:'.length)));
    const ofPosted = repeatIds.filter((id) => !pendingPost(id));
    const ofPending = repeatIds.filter(pendingPost);
    let done = 0;
    const delivered = new Set<string>();
    let deliveredAny = false;
    const firstUpdates = ofPosted.slice(0, Math.ceil(batchSize / 2));
    const laterUpdates = ofPosted.slice(firstUpdates.length);
    for (const id of firstUpdates) {
      if (stopped || done >= batchSize) return !stopped;
      const result = await deliverRepeat(id, false);
      if (result === 'failed') return pauseAfterFailure();
      if (result === 'delivered') deliveredAny = true;
      done++;
      await yieldToIngest();
    }
    for (const id of postIds) {
      if (stopped || done >= batchSize) return !stopped;
      const result = await deliverPost(id);
      if (result === 'failed') return pauseAfterFailure();
      if (result === 'delivered') {
        delivered.add(id);
        deliveredAny = true;
      }
      done++;
      await yieldToIngest();
    }
    for (const id of [...ofPending, ...laterUpdates]) {
      if (stopped || done >= batchSize) return !stopped;
      const alertPost = postId(id.slice('repeat:'.length));
      const result = await deliverRepeat(id, knownIds.has(alertPost) && !delivered.has(alertPost));
      if (result === 'failed') return pauseAfterFailure();
      if (result === 'delivered') deliveredAny = true;
      done++;
      await yieldToIngest();
    }
    if (failedPasses > 0 && deliveredAny) recovered();
    return false;
  }

  /** Chat delivery works again after failed passes: the items waiting out their backoff go now. */
  function recovered() {
    log.info(
      { failedPasses, pending: depth() },
      'chat delivery works again; the alerts and updates that waited are delivered now',
    );
    failedPasses = 0;
    pauseUntil = 0;
    itemBackoff.clear();
  }

  /** Sorts post ids by their event's time (then by id), reading the items this process has not seen. */
  async function inEventOrder(postIds: string[]): Promise<string[]> {
    const unknown = postIds.filter((id) => !postTimes.has(id));
    for (let i = 0; i < unknown.length; i += ORDER_READ_CHUNK) {
      const chunk = unknown.slice(i, i + ORDER_READ_CHUNK);
      const items = await store.getMany<OutboxItem>(chunk.map(outboxItemKey));
      chunk.forEach((id, k) => {
        const item = items[k];
        // An item gone meanwhile, or unreadable, goes last: its delivery sorts it out.
        postTimes.set(
          id,
          item?.kind === 'post'
            ? { event: eventTimeOf(item.alert), queued: item.queuedAt }
            : { event: Number.POSITIVE_INFINITY },
        );
      });
    }
    const at = (id: string) => postTimes.get(id)?.event ?? Number.POSITIVE_INFINITY;
    return postIds.sort((a, b) => at(a) - at(b) || (a < b ? -1 : a > b ? 1 : 0));
  }

  function pauseAfterFailure(): false {
    // Stop at the first failure: when chat is down every item would fail, and a pause also means
    // no attempt is in flight (no lease held) for most of the outage.
    failedPasses++;
    pauseUntil = elapsed() + backoffFor(failedPasses);
    probeAt = elapsed() + probeMs;
    return false;
  }

  function schedule() {
    if (stopped) return;
    clearTimeout(timer);
    // Passes keep running while paused: they refresh the depth that ingest's bound reads.
    timer = setTimeout(kick, pollMs);
    timer.unref();
  }

  function kick() {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        try {
          if (await pass()) again = true;
        } catch (err) {
          // The store itself failed (e.g. unreachable): readiness reports it; try again later.
          // Said once per outage at error level (every pass retries it, about once a second).
          if (storeFailedPasses++ === 0)
            log.error({ err: errorText(err) }, 'outbox pass failed; check the store');
          else log.debug({ err: errorText(err), failures: storeFailedPasses }, 'outbox pass failed again');
          continue;
        }
        if (storeFailedPasses > 0) {
          log.info({ failures: storeFailedPasses }, 'outbox passes work again');
          storeFailedPasses = 0;
        }
      } while (again && !stopped);
      schedule();
    })().finally(() => {
      running = undefined;
    });
  }

  return {
    maxPending,
    add,
    async holds(alertIds) {
      const n = alertIds.length;
      if (n === 0) return [];
      const found = await store.getMany<unknown>([
        ...alertIds.map((id) => outboxItemKey(postId(id))),
        ...alertIds.map(alertRefKey),
      ]);
      // A post is stored before its index entry (see `add`): one whose adding stopped in between
      // (a crash) would be held and never delivered. Indexed again here, it goes out.
      const pending = alertIds.filter((_, i) => found[i] !== undefined).map(postId);
      if (pending.length > 0) {
        await store.addMembers(OUTBOX_PENDING_SET, pending);
        kick();
      }
      return alertIds.map((_, i) => found[i] !== undefined || found[n + i] !== undefined);
    },
    depth,
    pendingAlerts: () => posts,
    isFull: () => posts >= maxPending,
    kick,
    async start() {
      knownIds = new Set(await store.members(OUTBOX_PENDING_SET));
      recount();
      if (knownIds.size > 0)
        log.info({ pending: knownIds.size }, 'outbox holds undelivered items; delivering');
      stopped = false;
      metrics?.setOutboxDepthSource(depth);
      metrics?.setOutboxOldestSource(oldestWaitSeconds);
      kick();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
    async drain() {
      const wasStopped = stopped;
      stopped = false;
      try {
        await running;
        for (let i = 0; i < 1000; i++) {
          if (await pass()) continue;
          break;
        }
      } finally {
        stopped = wasStopped;
      }
    },
  };
}

import { hash } from 'node:crypto';
import type { AlertRecord, EventResult } from './alert.ts';
import { alertOwnerKey, type ClaimedAlerts, claimAlerts } from './alert-claims.ts';
import { type Candidate, FUTURE_TOLERANCE_MS, olderThanWindow } from './candidate.ts';
import {
  classifyRedeliveries,
  duplicateResult,
  neverRecorded,
  settleOrphanChecks,
  unsettledRedeliveries,
} from './classify-redeliveries.ts';
import {
  ALERTED_WITHIN_WINDOW,
  decideNewTerms,
  type NewTermsDecision,
  noteRepeat,
  OLDER_THAN_WINDOW,
} from './decide-new-terms.ts';
import type { Detection } from './detection.ts';
import { type ClaimOutcome, createEventClaims } from './event-claims.ts';
import { parseDetection } from './formats/index.ts';
import { KeyedLock } from './keyed-lock.ts';
import { startLearningPeriod } from './learning-period.ts';
import {
  type AllowlistEntry,
  allowKey,
  identitySet,
  normaliseAppId,
  pairKey,
  type StoredPair,
} from './pair.ts';
import { pairWrites } from './pair-writes.ts';
import type { GeoLocator, Outbox, StateStore } from './ports.ts';
import { storePairs } from './store-pairs.ts';

/**
 * Why an alert fired, as every message of it says: Elastic judged the pair new though this
 * history saw it within the window (`seen-here`), an event from longer ago than the window that
 * cannot be told new (`older-than-window`), or the first use of the IP by the identity in the window.
 */
export function alertCause(alert: AlertRecord): 'seen-here' | 'older-than-window' | 'first-use' {
  if (alert.seenHereAt !== undefined) return 'seen-here';
  const at = Date.parse(alert.detection.eventTime);
  return Number.isFinite(at) && olderThanWindow(at, alert.windowMs, alert.detectedAt)
    ? 'older-than-window'
    : 'first-use';
}
/**
 * Beyond this many IPs, "N other IPs" is estimated from a random sample of this many of the
 * identity's indexed IPs (the store removes the expired ones it finds on the way).
 */
const EXACT_OTHER_IPS_LIMIT = 500;

export interface EngineOptions {
  store: StateStore;
  windowMs: number;
  outbox: Outbox;
  /**
   * After the first start on an empty history, record without alerting for this long; 0 ends a
   * learning period still running, for every replica (see `refreshLearning`).
   */
  learningPeriodMs?: number;
  /** Fills in geo and AS that an event does not carry (records, REST, Azure Monitor). */
  geo?: GeoLocator;
  now?: () => number;
  /**
   * How long a re-delivered event whose pair is not stored waits for another delivery to store
   * it (default 1.5 s): see `pairsStored`.
   */
  settleMs?: number;
}

export interface EvaluateOptions {
  /** Record sightings without alerting (history import). */
  silent?: boolean;
}

export interface Engine {
  readonly windowMs: number;
  /** End of the learning period (epoch ms), when one applies; brought forward by `refreshLearning`. */
  readonly learningUntil: number | undefined;
  /**
   * The learning period's end was fixed by another start (an earlier one, or another replica's at
   * the same moment): this one's `learningPeriodMs` changed nothing.
   */
  readonly learningFixedEarlier: boolean;
  /** This start ended a running learning period (`learningPeriodMs` 0). */
  readonly learningEndedHere: boolean;
  /** When this start ended a running period: the end that period had. */
  readonly learningReplacedEnd: number | undefined;
  /** See `LearningPeriod.runsElsewhereUntil`. */
  readonly learningRunsElsewhereUntil: number | undefined;
  /**
   * Reads the learning period's end again (see `LearningPeriod.refresh`): true when another start
   * ended it early.
   */
  refreshLearning(): Promise<boolean>;
  /**
   * Parses and evaluates raw events, one result per input in the same order. Sightings, claims and
   * pending alerts are stored before it resolves.
   */
  evaluate(events: readonly unknown[], opts?: EvaluateOptions): Promise<EventResult[]>;
  /**
   * Writes again the marks of a store in use (its first start taken, history held, the learning
   * period's end or none), after the store lost them with its data: a later start then does not
   * take the emptied store for a new one and open a learning period on it.
   */
  markInUse(): Promise<void>;
}

/** A stable, short alert id derived from the event id. */
export const alertIdFor = (eventId: string): string => hash('sha256', eventId).slice(0, 24);

/**
 * How long a re-delivered event whose pair is not stored waits for another delivery of it (in
 * another process) to store the pair, and how often it looks.
 */
const SETTLE_MS = 1500;
const SETTLE_POLL_MS = 25;

/** The pairs of `keys` that `read` (values in the same order, others after) holds, by key. */
function storedOf(keys: readonly string[], read: readonly unknown[]): Map<string, StoredPair> {
  const stored = new Map<string, StoredPair>();
  keys.forEach((k, i) => {
    const pair = read[i] as StoredPair | undefined;
    if (pair) stored.set(k, pair);
  });
  return stored;
}

/** How far a batch's writes got: read should a later one fail. */
interface BatchProgress {
  /** The outbox holds the batch's alerts. */
  alertsHandedOver: boolean;
  /** The keys of the pairs stored. */
  landed: Set<string>;
}

/** Creates the detection engine: the new-terms rule on (appid, source IP) over the store. */
export async function createEngine(opts: EngineOptions): Promise<Engine> {
  const { store, windowMs, outbox } = opts;
  const now = opts.now ?? Date.now;
  const lock = new KeyedLock();
  const settleMs = opts.settleMs ?? SETTLE_MS;
  const learning = await startLearningPeriod(store, opts.learningPeriodMs, now);
  const eventClaims = createEventClaims(store, windowMs);

  async function evaluate(
    events: readonly unknown[],
    evalOpts: EvaluateOptions = {},
  ): Promise<EventResult[]> {
    const results: EventResult[] = new Array(events.length);
    const parsed: Candidate[] = [];
    const t0 = now();
    // The same event delivered twice (webhook and Event Hub retries) counts once, also in a race.
    const claims = eventClaims.begin(parsed);
    try {
      for (let index = 0; index < events.length; index++) {
        const r = parseDetection(events[index]);
        if (!r.ok) {
          results[index] =
            r.format === undefined
              ? { outcome: r.kind, reason: r.reason }
              : { outcome: r.kind, reason: r.reason, format: r.format };
          continue;
        }
        const d = r.detection;
        const eventMs = Date.parse(d.eventTime);
        const at = eventMs > t0 + FUTURE_TOLERANCE_MS ? t0 : eventMs;
        if (evalOpts.silent && olderThanWindow(at, windowMs, t0)) {
          // An import stores nothing of an event from longer ago than the window: it claims
          // nothing either (an export of months would fill the store with claims of them).
          results[index] = { outcome: 'ignored', reason: OLDER_THAN_WINDOW, detection: d };
          continue;
        }
        const c: Candidate = { index, detection: d, eventMs, pairKey: pairKey(d.appId, d.sourceIp), at };
        parsed.push(c);
        const sending = claims.added(index < events.length - 1);
        if (sending) await sending;
      }
      if (parsed.length === 0) return results;
      await claims.settle((outcome) => judge(parsed, results, evalOpts, outcome));
      return results;
    } finally {
      claims.end();
    }
  }

  async function judge(
    parsed: Candidate[],
    results: EventResult[],
    evalOpts: EvaluateOptions,
    outcome: ClaimOutcome<Candidate>,
  ) {
    const { keys, allowKeys } = pairsOf(parsed);
    await lock.run(keys, async () => {
      const t = now();
      const { stored, allows } = await readPairs(parsed, keys, allowKeys, outcome, t);
      const candidates = await eventsToJudge(parsed, stored, t, results);
      const decision = decideNewTerms({
        candidates,
        stored,
        allows,
        t,
        windowMs,
        silent: evalOpts.silent === true,
        learningUntil: learning.until,
      });
      for (const [index, result] of decision.results) results[index] = result;
      // Exactly one alert per new pair, also across processes sharing the store.
      const claimed = await claimAlerts(store, decision.wantsAlert, t, windowMs, outcome.kept);
      for (const c of claimed.alertedElsewhere) {
        results[c.index] = { outcome: 'known', reason: ALERTED_WITHIN_WINDOW, detection: c.detection };
        noteRepeat(decision.repeats, decision.pairs.get(c.pairKey)!);
      }
      const alerts =
        decision.wantsAlert.length > 0 ? await raiseAlerts(claimed, decision, stored, t, results) : [];
      // An alert its first delivery handed over already goes to the outbox once; its pair is
      // tied to it all the same, and, for the sender, this delivery is a duplicate.
      const handedOver = candidates.filter((c) => c.alertHandedOver);
      const held = new Set(handedOver.map((c) => alertIdFor(c.detection.eventId)));
      // Should the batch fail after its alerts were handed over or some of its pairs stored, the
      // events of those keep their claims: the sender's retry counts only the others, and an
      // alert's event is known for the owner of its pair's alert claim (see `claimAlerts`).
      const progress: BatchProgress = { alertsHandedOver: false, landed: new Set() };
      try {
        await writeBatch(
          held.size > 0 ? alerts.filter((a) => !held.has(a.id)) : alerts,
          claimed,
          decision,
          stored,
          t,
          progress,
        );
      } catch (err) {
        const { landed, alertsHandedOver } = progress;
        const alerting = new Set(alertsHandedOver ? claimed.winners.map((c) => c.detection.eventId) : []);
        if (landed.size > 0 || alerting.size > 0) {
          outcome.kept.recorded = (c) => landed.has(c.pairKey) || alerting.has(c.detection.eventId);
        }
        throw err;
      }
      for (const c of handedOver) {
        if (results[c.index]?.outcome === 'alerted') results[c.index] = duplicateResult(c);
      }
    });
  }

  /** Each pair of a batch once, in order of first appearance, with the allowlist key of that first event. */
  function pairsOf(parsed: readonly Candidate[]): { keys: string[]; allowKeys: string[] } {
    const keys: string[] = [];
    const allowKeys: string[] = [];
    const seen = new Set<string>();
    for (const c of parsed) {
      if (seen.has(c.pairKey)) continue;
      seen.add(c.pairKey);
      keys.push(c.pairKey);
      allowKeys.push(allowKey(c.detection.appId, c.detection.sourceIp));
    }
    return { keys, allowKeys };
  }

  /**
   * Reads a batch's pairs (`keys`) and their allowlist entries (`allowKeys`) as its events' claims
   * come in, and marks the events received before (`seenBefore`, `heldElsewhere`).
   */
  async function readPairs(
    parsed: Candidate[],
    keys: string[],
    allowKeys: string[],
    { won: claimed$, heldElsewhere }: ClaimOutcome<Candidate>,
    t: number,
  ): Promise<{ stored: Map<string, StoredPair>; allows: Map<string, AllowlistEntry | undefined> }> {
    // The pairs and their allowlist entries in one read (one transaction in SQL), and the claims.
    let [read, won] = await Promise.all([store.getMany<unknown>([...keys, ...allowKeys]), claimed$]);
    // Events whose claim was taken before are checked against the pair here: a delivery that
    // stopped (a crash) after claiming the event but before storing anything must not turn the
    // sender's retry into a duplicate and lose the event.
    parsed.forEach((c, i) => {
      if (won[i]) return;
      c.seenBefore = true;
      if (heldElsewhere?.(c)) c.heldElsewhere = true;
    });
    // An event received before whose pair is not stored: its first delivery either stopped (a
    // crash), or is at work right now in another process sharing the store. Give that one a
    // moment to store the pair, so that this delivery is told `duplicate` rather than judged
    // again; after a crash, nothing comes and the event is evaluated as below.
    // (Not on a store that no other process shares, such as the in-memory one.)
    // Also one whose pair another event stored meanwhile, last seen before it: its own first
    // delivery may still be writing, and would be judged twice.
    const unsettled =
      settleMs > 0 && store.sharedAcrossProcesses && parsed.some((c) => c.seenBefore)
        ? unsettledRedeliveries(parsed, won, storedOf(keys, read), t, windowMs)
        : [];
    if (unsettled.length > 0 && (await sightingsStored(unsettled))) {
      read = await store.getMany<unknown>([...keys, ...allowKeys]);
    }
    const stored = storedOf(keys, read);
    const allows = new Map(keys.map((k, i) => [k, read[keys.length + i] as AllowlistEntry | undefined]));
    return { stored, allows };
  }

  /**
   * The events of a batch to judge; the others are answered `duplicate` in `results`. Adds the
   * geo and AS that the events judged lack.
   */
  async function eventsToJudge(
    parsed: readonly Candidate[],
    stored: ReadonlyMap<string, StoredPair>,
    t: number,
    results: EventResult[],
  ): Promise<Candidate[]> {
    const { candidates, duplicates, orphanChecks } = classifyRedeliveries(parsed, stored, t, windowMs);
    if (orphanChecks.length > 0) {
      // A stored pair without an alert, and an event received before: usually a plain
      // re-delivery. But should that event's first delivery have taken the pair's alert claim
      // and stopped before storing anything (another event of the pair stored it since), its
      // owner claim is held: then it is evaluated again, and alerts under its own id.
      const keys = orphanChecks.map(alertOwnerKey);
      const free = await store.claimMany(keys, windowMs);
      const settled = settleOrphanChecks(orphanChecks, free, stored);
      // An owner whose alert the outbox holds already (see `alertHandedOver`).
      const owners = settled.candidates.filter((c) => c.ownsAlertClaim);
      const handedOver =
        owners.length > 0 && outbox.holds
          ? await outbox.holds(owners.map((c) => alertIdFor(c.detection.eventId)))
          : [];
      owners.forEach((c, i) => {
        if (handedOver[i]) c.alertHandedOver = true;
      });
      candidates.push(...settled.candidates);
      duplicates.push(...settled.duplicates);
      const release = keys.filter((_, i) => free[i]);
      if (release.length > 0) await Promise.all(release.map((key) => store.releaseClaim(key)));
    }
    for (const c of duplicates) results[c.index] = duplicateResult(c);
    // Geo and AS the events lack, looked up only for those judged (not for duplicates).
    if (opts.geo) {
      for (const { detection: d } of candidates) {
        if (d.geo === undefined || d.as === undefined) locate(opts.geo, d);
      }
    }
    return candidates;
  }

  /**
   * The alerts of the events that won their pair's alert claim, each with the identity's other
   * IPs; their pairs (in `decision`) are marked alerted and their results set.
   */
  async function raiseAlerts(
    claimed: ClaimedAlerts,
    { pairs, changed, inBatchCount, repeats }: NewTermsDecision,
    stored: ReadonlyMap<string, StoredPair>,
    t: number,
    results: EventResult[],
  ): Promise<AlertRecord[]> {
    let others: Awaited<ReturnType<typeof otherIpCounts>>;
    try {
      others = await otherIpCounts(claimed.winners, pairs, stored, t);
    } catch (err) {
      await claimed.giveBack();
      throw err;
    }
    const alerts: AlertRecord[] = [];
    for (const c of claimed.winners) {
      const d = c.detection;
      const alert: AlertRecord = {
        id: alertIdFor(d.eventId),
        detection: d,
        detectedAt: t,
        reason: d.elasticAlert?.judgedNew ? 'elastic-alert' : 'new-pair',
        otherIps: others.get(normaliseAppId(d.appId))?.count ?? 0,
        windowMs,
      };
      if (others.get(normaliseAppId(d.appId))?.sampled) alert.otherIpsEstimated = true;
      if (c.seenHereAt !== undefined) alert.seenHereAt = c.seenHereAt;
      alerts.push(alert);
      const pair = pairs.get(c.pairKey)!;
      pair.alertId = alert.id;
      pair.alertedAt = t;
      // A late alert's pair is stored with it, so that its later sightings update that alert.
      if (c.claimsLive) changed.add(c.pairKey);
      results[c.index] = { outcome: 'alerted', detection: d, alert };
      // Later sightings in this batch were counted before the alert existed: the message
      // shows them once it is posted.
      if ((inBatchCount.get(c.pairKey) ?? 0) > 1) noteRepeat(repeats, pair);
    }
    return alerts;
  }

  /** Hands a batch's alerts and repeats to the outbox, then stores its pairs, noting each step in `progress`. */
  async function writeBatch(
    alerts: AlertRecord[],
    claimed: ClaimedAlerts,
    { pairs, changed, latest, repeats }: NewTermsDecision,
    stored: ReadonlyMap<string, StoredPair>,
    t: number,
    progress: BatchProgress,
  ): Promise<void> {
    // The pending alerts are stored before the sightings: were the sightings stored first and
    // the process stopped in between, the sender's retry would find a known pair and the alert
    // would be lost. A failed hand-off gives the pair claims back so that the retry alerts.
    if (alerts.length > 0 || repeats.size > 0) {
      try {
        await outbox.add(alerts, [...repeats.values()]);
      } catch (err) {
        await claimed.giveBack();
        throw err;
      }
      progress.alertsHandedOver = true;
    }

    const { writes, index, storesNewPair } = pairWrites({ pairs, changed, stored, latest, t, windowMs });
    // The history holds a sighting once a new pair is written (not by an event never stored).
    const mark = storesNewPair ? learning.takeHistoryMark() : undefined;
    // An identity's index outlives every pair in it: a pair lasts at most a window past its last
    // write, and a pair still written is indexed again every half window. The index is written
    // before the pairs (a crash in between leaves no pair unindexed) and again after them: a
    // reader that found an entry before its pair was written may have removed it meanwhile.
    if (index.length > 0) await store.addToSets(index, 2 * windowMs);
    // Another process's sightings of a pair written since this batch read it are merged, not lost.
    const merged = await storePairs(store, writes, mark ? [mark] : [], stored, t, windowMs, progress.landed);
    // The message of an alert such a pair belongs to is told the count they make together (the
    // update handed over above counted this batch's sightings only). It shows only what the next
    // sighting would: should the hand-off fail, the request does not fail with it.
    const together = merged.flatMap((pair) =>
      pair.alertId !== undefined && pair.count > (repeats.get(pair.alertId)?.count ?? 0)
        ? [{ alertId: pair.alertId, count: pair.count, lastSeen: pair.lastSeen }]
        : [],
    );
    if (together.length > 0) await outbox.add([], together).catch(() => {});
    if (index.length > 0) await store.addToSets(index, 2 * windowMs);
  }

  /**
   * Waits up to `settleMs` for the sightings of `events` to be stored (by another delivery of
   * theirs): each one's pair stored and last seen at its time or later. True when some changed,
   * and the pairs should be read again.
   */
  async function sightingsStored(events: readonly Candidate[]): Promise<boolean> {
    const wanted = [...new Set(events.map((c) => c.pairKey))];
    // Real time, whatever clock the engine judges by.
    const until = performance.now() + settleMs;
    let seen = false;
    while (performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
      const found = storedOf(wanted, await store.getMany<unknown>(wanted));
      seen = found.size > 0;
      if (events.every((c) => found.has(c.pairKey) && !neverRecorded(c, found.get(c.pairKey)!))) return true;
    }
    return seen;
  }

  /**
   * How many other IPs each alerting identity used within the window: its stored pairs (a pair's
   * value expires a window after its last sighting, so one still stored was seen within it),
   * counted by the store from the identity's index in one call, plus this batch's new pairs.
   */
  async function otherIpCounts(
    winners: Candidate[],
    pairs: Map<string, StoredPair>,
    stored: ReadonlyMap<string, StoredPair>,
    t: number,
  ) {
    const identities = [...new Set(winners.map((c) => normaliseAppId(c.detection.appId)))];
    const indexed = await store.countLiveMembers(
      identities.map((appId) => ({ set: identitySet(appId), valuePrefix: pairKey(appId, '') })),
      EXACT_OTHER_IPS_LIMIT,
    );
    const counts = new Map(identities.map((appId, i) => [appId, { ...indexed[i]! }]));
    // The pairs this batch creates are neither stored nor indexed yet.
    for (const [key, pair] of pairs) {
      const count = counts.get(pair.appId);
      if (count !== undefined && !stored.has(key) && pair.lastSeen >= t - windowMs) count.count++;
    }
    for (const count of counts.values()) count.count = Math.max(0, count.count - 1);
    return counts;
  }

  return {
    windowMs,
    learningFixedEarlier: learning.fixedEarlier,
    learningEndedHere: learning.endedHere,
    learningReplacedEnd: learning.replacedEnd,
    learningRunsElsewhereUntil: learning.runsElsewhereUntil,
    get learningUntil() {
      return learning.until;
    },
    refreshLearning: () => learning.refresh(),
    evaluate,
    markInUse: () => learning.markInUse(),
  };
}

/** Adds the geo and AS the event did not carry, from the local databases; marks them as looked up. */
function locate(locator: GeoLocator, d: Detection): void {
  let found: ReturnType<GeoLocator['locate']>;
  try {
    found = locator.locate(d.sourceIp);
  } catch {
    return; // a database that cannot answer leaves the detection as it came
  }
  if (d.geo === undefined && found.geo) {
    d.geo = found.geo;
    d.located = { ...d.located, geo: true };
  }
  if (d.as === undefined && found.as) {
    d.as = found.as;
    d.located = { ...d.located, as: true };
  }
}

import { type Candidate, isReplay } from './candidate.ts';
import { type ClaimedEvent, eventClaim } from './event-claims.ts';
import { normaliseAppId } from './pair.ts';
import type { Claims } from './ports.ts';

/**
 * The claim that makes one alert of a new pair, also across processes, held for a window from
 * the alert. Events from a window or more before now (a replayed export) claim apart from the
 * others: their sightings are never stored, so this claim is all that keeps a replay to one
 * alert per pair, and it must not stop the pair from alerting when it comes back now.
 */
const alertClaimKey = (appId: string, ip: string, replay: boolean) =>
  `${replay ? 'alerted-replay' : 'alerted'}:${normaliseAppId(appId)}:${ip}`;

/**
 * Taken with a pair's alert claim, in the same store call, by the event that claims it: held
 * when that event's earlier delivery won the pair's claim for this alert. Keyed like the event's
 * own claim (led by its time, so that a SQL store's index takes it near its end).
 */
export const alertOwnerKey = (c: ClaimedEvent): string => `alert-owner:${eventClaim(c).key}`;

/** The outcome of `claimAlerts`. */
export interface ClaimedAlerts {
  /** The events that alert, in the order wanted. */
  winners: Candidate[];
  /** The events whose pair's alert is another event's, raised within the window. */
  alertedElsewhere: Candidate[];
  /**
   * Gives the alerts' claims back when their delivery fails before the outbox holds them, so that
   * the sender's retry alerts. The owner claim goes back only after the pair's: never the pair's
   * claim held with nothing to say whose it is. Should one not go back (the store failing), the
   * events' own claims are kept as well, so that the retry finds its owner claim (see the
   * winners in `claimAlerts`).
   */
  giveBack(): Promise<void>;
}

/**
 * Claims the alert of each event in `wantsAlert` at `t`, exactly one alert per pair, also across
 * processes sharing the store; sets `kept.eventClaims` when the events' own claims must be kept.
 */
export async function claimAlerts(
  store: Claims,
  wantsAlert: readonly Candidate[],
  t: number,
  windowMs: number,
  kept: { eventClaims: boolean },
): Promise<ClaimedAlerts> {
  /** The claims behind the winners (each pair's, and its owner claim), given back should the outbox refuse them. */
  const alertClaims: Array<{ claim: string; owner?: string }> = [];
  const giveBack = async () => {
    const given = await Promise.allSettled(
      alertClaims.map(async ({ claim, owner }) => {
        await store.releaseClaim(claim);
        if (owner) await store.releaseClaim(owner);
      }),
    );
    if (given.some((g) => g.status === 'rejected')) kept.eventClaims = true;
  };
  const winners: Candidate[] = [];
  const alertedElsewhere: Candidate[] = [];
  if (wantsAlert.length === 0) return { winners, alertedElsewhere, giveBack };

  const claimKeys = wantsAlert.map((c) =>
    alertClaimKey(c.detection.appId, c.detection.sourceIp, isReplay(c, t, windowMs) && !c.claimsLive),
  );
  // The first event of each pair here also claims its own alert id, in the same call: it
  // names whose alert the pair's claim was taken for, should that delivery stop before
  // storing anything (see below).
  const owners = new Map<number, { key: string; taken?: boolean }>();
  const firstOfPair = new Set<string>();
  claimKeys.forEach((key, i) => {
    if (firstOfPair.has(key)) return;
    firstOfPair.add(key);
    owners.set(i, { key: alertOwnerKey(wantsAlert[i]!) });
  });
  const ownerList = [...owners.values()];
  let taken: boolean[];
  try {
    taken = await store.claimMany([...claimKeys, ...ownerList.map((o) => o.key)], windowMs);
  } catch (err) {
    // Its answer may have been lost with the claims taken: the events keep theirs, so that
    // the sender's retry finds its owner claim, or takes the pair's claim afresh.
    kept.eventClaims = true;
    throw err;
  }
  ownerList.forEach((o, n) => {
    o.taken = taken[claimKeys.length + n] === true;
  });
  const notOwners: string[] = [];
  wantsAlert.forEach((c, i) => {
    const owner = owners.get(i);
    // Elastic alerts skip the window check (Elastic judged them new) but not the claim: a
    // pair already alerted within the window, e.g. from the same event's Event Hub record,
    // updates that alert instead of posting a second one.
    if (taken[i]) {
      winners.push(c);
      alertClaims.push(owner ? { claim: claimKeys[i]!, owner: owner.key } : { claim: claimKeys[i]! });
    } else if (c.seenBefore && owner?.taken === false) {
      // The sender's retry of an event whose first delivery took the pair's claim for this
      // very alert and stopped (a crash) before storing the pair, or failed and could not
      // give the claim back (its event's claim is then kept too, see `settle`): the retry
      // alerts under the same id, which the outbox and the chat side post once.
      winners.push(c);
    } else {
      // Not this event's alert: its owner claim names nothing.
      if (owner?.taken) notOwners.push(owner.key);
      alertedElsewhere.push(c);
    }
  });
  try {
    if (notOwners.length > 0) await Promise.all(notOwners.map((key) => store.releaseClaim(key)));
  } catch (err) {
    await giveBack();
    throw err;
  }
  return { winners, alertedElsewhere, giveBack };
}

import type { Detection } from './detection.ts';
import type { GroupedClaims, StoreLifecycle } from './ports.ts';

/**
 * How long a delivered event id is remembered beyond the window: retries come within minutes to
 * hours, and an event from a window or more ago is a duplicate by its time alone (`pastTelling`).
 */
const DEDUP_MARGIN_MS = 24 * 3600 * 1000;

/** Events per claim call while a batch is parsed, on a store across the network. */
const CLAIM_CHUNK = 1000;

/** How long a failed evaluation tries to give its events' claims back (see `giveBack`). */
const RELEASE_WAIT_MS = 2000;

/** Delivered events are remembered in groups by the hour of their event time. */
const EVENT_GROUP_MS = 3600 * 1000;

/** A delivered event as its claim knows it: its id, and its time as given (epoch ms) when parsed. */
export interface ClaimedEvent {
  detection: Detection;
  eventMs?: number;
}

/**
 * Where the claim of a delivered event lives: a group per hour of event time (one Redis hash),
 * and in it a key led by the event's time, so that live events, which arrive roughly in time
 * order, land at the end of a SQL store's key index instead of at random places in it.
 */
export function eventClaim(c: ClaimedEvent): { group: string; key: string } {
  const at = c.eventMs ?? Date.parse(c.detection.eventTime);
  return {
    group: `event-${Math.floor(at / EVENT_GROUP_MS).toString(36)}`,
    key: `${at.toString(36)}:${c.detection.eventId}`,
  };
}

/** What an evaluation's judgement gets of its events' claims (see `EventClaimBatch.settle`). */
export interface ClaimOutcome<T extends ClaimedEvent> {
  /**
   * Per event, whether this evaluation took its claim (an event repeated in the batch counts as
   * its first occurrence); rejects, holding none of the claims, when a claim call failed.
   */
  won: Promise<boolean[]>;
  /**
   * On a store across the network, whether another evaluation in this process holds the event
   * too (read once the claims are in); undefined elsewhere.
   */
  heldElsewhere: ((c: T) => boolean) | undefined;
  /**
   * Set by the judgement when an alert's claims could not be given back: the events' are kept too
   * (`eventClaims`); and when it failed after the sightings of some events were stored: those
   * events' claims are kept (`recorded`), so that the sender's retry counts them once, as
   * duplicates, and only the others again.
   */
  kept: { eventClaims: boolean; recorded?: (c: T) => boolean };
}

/** The claims of one evaluation's events, taken as it parses them. */
export interface EventClaimBatch<T extends ClaimedEvent> {
  /**
   * Takes note of the event just added to the evaluation's list. On a store across the network,
   * a full chunk is claimed at once, and the promise answered is the turn to wait for its sending.
   */
  added(moreToCome: boolean): Promise<void> | undefined;
  /**
   * Claims the events not claimed yet and judges them with the outcome, which `judge` awaits
   * when it needs it; should `judge` fail, the claims this evaluation won are given back (unless
   * it kept them), so that the sender's retry is evaluated, not reported as a duplicate.
   */
  settle(judge: (outcome: ClaimOutcome<T>) => Promise<void>): Promise<void>;
  /** Ends the evaluation's part in the tracking of events in flight here; call it however it ends. */
  end(): void;
}

/** Claims of delivered events: one evaluation per event, also in a race and across processes. */
export interface EventClaims {
  /** Starts the claims of an evaluation whose parsed events are pushed onto `parsed`. */
  begin<T extends ClaimedEvent>(parsed: T[]): EventClaimBatch<T>;
}

/** An event held by evaluations in this process (see `holding` in `createEventClaims`). */
interface Holding {
  id: string;
  count: number;
  /** Two evaluations held it at once. */
  shared: boolean;
  /** The evaluation that counted itself last. */
  last: InFlight;
}

/** An evaluation in flight, on a store across the network. */
interface InFlight {
  parsed: readonly ClaimedEvent[];
  /** Its entries in `holding`, given up when it ends. */
  held: Holding[];
  /** Whether it registers its events in `holding` (only while another one is in flight). */
  registering: boolean;
}

/** Where a later occurrence of an event in `parsed` won its claim, gives the win to the first one. */
function firstOccurrenceWins(parsed: readonly ClaimedEvent[], won: boolean[]): void {
  const first = new Map<string, number>();
  parsed.forEach((c, i) => {
    const id = c.detection.eventId;
    const f = first.get(id);
    if (f === undefined) first.set(id, i);
    else if (won[i]) {
      won[i] = false;
      won[f] = true;
    }
  });
}

/** The event claims of an engine judging by a history window of `windowMs`, in `store`. */
export function createEventClaims(
  store: GroupedClaims & Pick<StoreLifecycle, 'acrossNetwork'>,
  windowMs: number,
): EventClaims {
  // An event's claim is taken at or after its time (a future time counts as now), so a window and
  // a margin from the claim outlast the time after which its redelivery is a duplicate by its time.
  const dedupTtl = windowMs + DEDUP_MARGIN_MS;
  const remote = store.acrossNetwork;
  /**
   * On a store across the network, the events each evaluation in this process holds (event id →
   * how many hold it, and whether two ever held it at once). The claim answers of two evaluations
   * may come back in either order (chunks, a connection pool), so an evaluation that lost an
   * event's claim cannot tell by the lock order whether the winner is at work in this process.
   */
  const holding = new Map<string, Holding>();
  /**
   * The evaluations in flight (on a store across the network). One alone registers nothing: the
   * ingest runs one evaluation at a time. The second to start registers what the first parsed so
   * far, and from then on both register as they parse.
   */
  const inFlight = new Set<InFlight>();
  const hold = (ev: InFlight, id: string) => {
    const entry = holding.get(id);
    if (entry === undefined) {
      const mine: Holding = { id, count: 1, shared: false, last: ev };
      holding.set(id, mine);
      ev.held.push(mine);
    } else if (entry.last !== ev) {
      // (Should an evaluation meet the event again after another one, it counts twice and gives
      // up twice: the balance holds.)
      entry.count++;
      entry.shared = true;
      entry.last = ev;
      ev.held.push(entry);
    }
  };

  /**
   * Claims each event's id in its hour's group, all in one call; true where this call took it.
   * A failed call holds none of them, so the sender's retry is evaluated, not called a duplicate.
   */
  async function claimEvents(parsed: readonly ClaimedEvent[]): Promise<boolean[]> {
    const groups = new Map<string, { keys: string[]; at: number[] }>();
    parsed.forEach((c, i) => {
      const { group, key } = eventClaim(c);
      let g = groups.get(group);
      if (g === undefined) {
        g = { keys: [], at: [] };
        groups.set(group, g);
      }
      g.keys.push(key);
      g.at.push(i);
    });
    const list = [...groups];
    const taken = await store.claimInGroups(
      list.map(([group, g]) => ({ group, keys: g.keys })),
      dedupTtl,
    );
    const won = new Array<boolean>(parsed.length);
    list.forEach(([, g], n) => {
      g.at.forEach((i, k) => {
        won[i] = taken[n]![k]!;
      });
    });
    return won;
  }

  const releaseEvent = (c: ClaimedEvent) => {
    const { group, key } = eventClaim(c);
    return store.releaseInGroup(group, key);
  };

  /**
   * Gives the claims of `events` back, trying those that fail again, with pauses, for up to
   * `RELEASE_WAIT_MS`: a store call fails most often as its connection drops, and the client
   * connects again within moments. The failed request is answered after this, so that the
   * sender's retry finds the claims free rather than taking its events for counted.
   */
  async function giveBack(events: readonly ClaimedEvent[]): Promise<void> {
    const until = performance.now() + RELEASE_WAIT_MS;
    let left = events;
    for (let pause = 50; left.length > 0; pause *= 2) {
      const results = await Promise.allSettled(left.map(releaseEvent));
      left = left.filter((_, i) => results[i]!.status === 'rejected');
      if (left.length === 0 || performance.now() + pause > until) return;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  function begin<T extends ClaimedEvent>(parsed: T[]): EventClaimBatch<T> {
    // A store across the network claims the events a chunk at a time while the next chunk is
    // parsed, so that its work overlaps with ours; an embedded one claims them in one transaction.
    const claims: Array<{ start: number; won: Promise<boolean[]> }> = [];
    let claimed = 0;
    const claimUpTo = (end: number) => {
      const won = claimEvents(parsed.slice(claimed, end));
      // Awaited below; until then a failure must not count as unhandled.
      won.catch(() => undefined);
      claims.push({ start: claimed, won });
      claimed = end;
    };
    const ev: InFlight | undefined = remote ? { parsed, held: [], registering: false } : undefined;
    if (ev) {
      for (const other of inFlight) {
        if (other.registering) continue;
        other.registering = true;
        for (const c of other.parsed) hold(other, c.detection.eventId);
      }
      ev.registering = inFlight.size > 0;
      inFlight.add(ev);
    }

    /** Resolves with the claims' outcome; rejects, holding none of them, when one call failed. */
    async function outcome(): Promise<boolean[]> {
      const settled = await Promise.allSettled(claims.map((c) => c.won));
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed) {
        // All or nothing: give back what the other chunks took, so that the sender's retry is
        // evaluated. A failed call's own claims stay as they are: it may have taken them before
        // its connection dropped, but a claim it found held is an earlier delivery's, and giving
        // that back would count the event again.
        const release: ClaimedEvent[] = [];
        settled.forEach((r, n) => {
          if (r.status !== 'fulfilled') return;
          r.value.forEach((took, k) => {
            if (took) release.push(parsed[claims[n]!.start + k]!);
          });
        });
        await giveBack(release);
        throw failed.reason;
      }
      const won = settled.flatMap((r) => (r as PromiseFulfilledResult<boolean[]>).value);
      // Chunks may be claimed out of order (PostgreSQL runs them on several connections): an event
      // repeated in the batch counts as its first occurrence, as one claim call would have it.
      if (claims.length > 1 && won.includes(false)) firstOccurrenceWins(parsed, won);
      return won;
    }

    return {
      added(moreToCome) {
        if (!ev) return undefined;
        if (ev.registering) hold(ev, parsed.at(-1)!.detection.eventId);
        if (parsed.length - claimed < CLAIM_CHUNK || !moreToCome) return undefined;
        claimUpTo(parsed.length);
        // One turn of the event loop, in which the client sends the chunk (its writes wait for one).
        return new Promise((resolve) => setImmediate(resolve));
      },
      async settle(judge) {
        if (claimed < parsed.length) claimUpTo(parsed.length);
        const won = outcome();
        // Awaited in `judge`; until then a failure must not count as unhandled.
        won.catch(() => undefined);
        // An event this evaluation lost while another one here held it too: that one won it, or
        // answers it as a duplicate as well (a third party won it).
        const heldElsewhere = ev ? (c: T) => holding.get(c.detection.eventId)?.shared === true : undefined;
        const kept: ClaimOutcome<T>['kept'] = { eventClaims: false };
        try {
          // `judge` reads the pairs while the last claims are still on their way.
          await judge({ won, heldElsewhere, kept });
        } catch (err) {
          // Give the events back so that the sender's retry is evaluated, not reported as a duplicate.
          const taken = await won.catch(() => undefined);
          if (taken && !kept.eventClaims) {
            const { recorded } = kept;
            await giveBack(parsed.filter((c, i) => taken[i] && !recorded?.(c)));
          }
          throw err;
        }
      },
      end() {
        if (!ev) return;
        inFlight.delete(ev);
        for (const entry of ev.held) if (--entry.count === 0) holding.delete(entry.id);
      },
    };
  }

  return { begin };
}

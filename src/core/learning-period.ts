import type { Claims, StateEntry, Values } from './ports.ts';

const LEARNING_KEY = 'meta:learning-until';
/**
 * The end a learning period had before a start ended it early (`LEARNING_PERIOD=0`), kept until
 * that end: replicas of a release that reads the end only at its start keep learning until it.
 */
export const LEARNING_REPLACED_KEY = 'meta:learning-replaced-end';
/** Claimed for good by the first start of a store (with LEARNING_PERIOD set). */
const FIRST_START = 'meta:first-start';
/** Set once the store holds any sighting: a learning period opens only on an empty history. */
const HISTORY_MARK = 'meta:has-history';

/** How long a start waits for the learning period's end that another replica's first start writes. */
const FIRST_START_WAIT_MS = 5000;

/** The learning period of a store's history, and the marks that say the store is in use. */
export interface LearningPeriod {
  /** End of the learning period (epoch ms), when one applies. */
  readonly until: number | undefined;
  /**
   * The learning period's end was fixed by another start (an earlier one, or another replica's at
   * the same moment): this one's `learningPeriodMs` changed nothing.
   */
  readonly fixedEarlier: boolean;
  /** This start ended a running learning period (`learningPeriodMs` 0). */
  readonly endedHere: boolean;
  /** When this start ended a running period: the end that period had. */
  readonly replacedEnd: number | undefined;
  /**
   * The end of a period an earlier start opened, still running, when this start does not set
   * `learningPeriodMs` (it alerts at once; replicas started with it set learn until then).
   */
  readonly runsElsewhereUntil: number | undefined;
  /**
   * Reads the period's end again while it runs, which another start may have brought forward (a
   * replica started with `learningPeriodMs` 0). True when the period ended early by it.
   */
  refresh(): Promise<boolean>;
  /**
   * The entry that marks the store as holding history, for the first write that stores a new
   * pair; undefined once this process wrote it (or `markInUse` did).
   */
  takeHistoryMark(): StateEntry | undefined;
  /** See `Engine.markInUse`. */
  markInUse(): Promise<void>;
}

/** Whether a service ever stored a sighting in `store` (a store never used holds no mark). */
export async function holdsHistory(store: Values): Promise<boolean> {
  return (await store.get(HISTORY_MARK)) !== undefined;
}

/** A stored end of the learning period; an end that is no finite time (a value no start writes now) ends learning (0). */
function readEnd(stored: unknown): number {
  return typeof stored === 'number' && Number.isFinite(new Date(stored).getTime()) ? stored : 0;
}

/**
 * Reads or fixes the learning period at a start: the first start of an empty history opens it
 * for `learningPeriodMs` (none when undefined); later starts that set it keep its end, one
 * without it alerts at once, and 0 ends a period still running (for every replica: each reads
 * the end again with `refresh`) and opens none.
 */
export async function startLearningPeriod(
  store: Values & Claims,
  learningPeriodMs: number | undefined,
  now: () => number,
): Promise<LearningPeriod> {
  let historyMarked = false;
  let learningUntil: number | undefined;
  let learningFixedEarlier = false;
  let endedHere = false;
  let replacedEnd: number | undefined;
  let runsElsewhereUntil: number | undefined;
  if (learningPeriodMs !== undefined && learningPeriodMs > 0) {
    // The first start of an empty history opens the learning period; later starts keep its end.
    const until = now() + learningPeriodMs;
    if (await store.claim(FIRST_START)) {
      const empty = (await store.get(HISTORY_MARK)) === undefined;
      learningUntil = empty ? until : 0;
      await store.set(LEARNING_KEY, learningUntil);
    } else {
      learningFixedEarlier = true;
      // Another replica starting at the same moment may have taken the first start and not yet
      // written the end: wait a little for it, rather than alert through its learning period.
      let stored = await store.get<unknown>(LEARNING_KEY);
      for (let waited = 0; stored === undefined && waited < FIRST_START_WAIT_MS; waited += 100) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        stored = await store.get<unknown>(LEARNING_KEY);
      }
      learningUntil = readEnd(stored);
    }
    if (learningUntil === 0) learningUntil = undefined;
  } else {
    // Unset for this start: it alerts at once (the contract's default), even while a period that
    // a start with LEARNING_PERIOD opened runs on for the replicas that set it. Set to 0, the
    // start ends that period now, for every replica.
    const stored = readEnd(await store.get<unknown>(LEARNING_KEY));
    const t = now();
    if (stored > t && learningPeriodMs === 0) {
      learningUntil = t;
      endedHere = true;
      replacedEnd = stored;
      // In one write: the end replaced is never lost to a failure between the two.
      await store.setMany([
        { key: LEARNING_REPLACED_KEY, value: stored, ttlMs: stored - t },
        { key: LEARNING_KEY, value: learningUntil },
      ]);
    } else if (stored > t) {
      runsElsewhereUntil = stored;
    }
  }

  return {
    get until() {
      return learningUntil;
    },
    fixedEarlier: learningFixedEarlier,
    endedHere,
    replacedEnd,
    runsElsewhereUntil,
    async refresh() {
      if (learningUntil === undefined || learningUntil <= now()) return false;
      const stored = readEnd(await store.get<unknown>(LEARNING_KEY));
      // None stored (a store that lost its data, whose marks are written again) is no news.
      if (stored <= 0 || stored >= learningUntil) return false;
      // Brought forward by another start (LEARNING_PERIOD=0 writes the time it ended it).
      learningUntil = stored;
      return learningUntil <= now();
    },
    takeHistoryMark() {
      if (historyMarked) return undefined;
      historyMarked = true;
      return { key: HISTORY_MARK, value: true };
    },
    async markInUse() {
      await store.claim(FIRST_START);
      // The earlier of this process's end and one stored meanwhile (another replica's start may
      // have ended the period since this one last read it).
      const stored = readEnd(await store.get<unknown>(LEARNING_KEY));
      const end =
        stored > 0 && learningUntil !== undefined
          ? Math.min(stored, learningUntil)
          : (learningUntil ?? stored);
      await store.setMany([
        { key: HISTORY_MARK, value: true },
        { key: LEARNING_KEY, value: end },
      ]);
      historyMarked = true;
    },
  };
}

import type { AlertRecord } from '../core/alert.ts';
import type { AuditRef } from '../core/audit.ts';
import { KeyedLock } from '../core/keyed-lock.ts';
import { normaliseAppId } from '../core/pair.ts';
import type { Claims, Values } from '../core/ports.ts';
import type {
  Enrichment,
  RemainingAccess,
  RemediationPlan,
  RemediationResult,
  TimeBoundSeen,
} from '../core/remediation.ts';

/** Who marked the alert's pair benign, why and until when. */
export interface BenignMark {
  by: string;
  reason: string;
  at: number;
  /** Epoch ms; absent: the allowlist entry never expires. */
  until?: number;
  /** The allowlist entry was removed (from /arc-history): detections of the pair are judged again. */
  removed?: { by: string; at: number };
}

/** The state of a remediation run for one alert: Revoke, or Remove broad roles too. */
export interface RevokeRun {
  status: 'running' | 'done' | 'failed';
  mode: 'dry-run' | 'live';
  by: string;
  at: number;
  finishedAt?: number;
  plan?: RemediationPlan;
  result?: RemediationResult;
  /** Set when planning or executing threw. */
  error?: string;
}

/** A Revoke that was undone, kept short when Revoke is pressed again (the thread has the details). */
export interface PastRevoke {
  mode: 'dry-run' | 'live';
  by: string;
  at: number;
  undoneBy: string;
  undoneAt: number;
}

/** The state of Undo: re-creating what the live runs removed and re-enabling the principal. */
export interface UndoRun {
  status: 'running' | 'done' | 'failed';
  /**
   * Undo refuses to run in dry-run, but a state may hold an Undo in dry-run: it only said what it
   * would do, changed nothing, and counts as no Undo (see `liveUndo`).
   */
  mode: 'dry-run' | 'live';
  by: string;
  at: number;
  finishedAt?: number;
  /** One result per undone step; step ids are those of the Revoke and broad-removal plans. */
  result?: RemediationResult;
  /** Set when undo threw. */
  error?: string;
  /**
   * Set when the access was restored by an Undo on another alert of the same identity (its id):
   * this alert's Revoke is then undone too, and Revoke is offered again.
   */
  elsewhere?: string;
  /** With `elsewhere`: how many assignments that Undo left to PIM (see `StepResult.leftToPim`). */
  leftToPim?: number;
  /**
   * The `at` of the Revoke run it reversed: a retry of that run leaves out what it undid. Absent:
   * no Revoke run is known to be the one it reversed.
   */
  of?: number;
}

/**
 * A live Revoke on another alert of the same principal (see `samePrincipal`): this alert's
 * identity is revoked through it. Kept until an Undo there clears it.
 */
export interface RevokedElsewhere {
  /** The alert whose Revoke it was, and its message. */
  alertId: string;
  channel: string;
  ts?: string;
  /** Who ran that Revoke, and when it ended. */
  by: string;
  at: number;
  /** That Revoke's round: when it started (`RevokeRun.at`); a Revoke again after an Undo marks anew. */
  of?: number;
}

/**
 * What the Slack side keeps for each posted alert (`slack-alert:<alertId>`), so that buttons,
 * which carry only the alert id, can find the alert, its message and what happened to it.
 */
export interface SlackAlertState {
  alert: AlertRecord;
  channel: string;
  /** Message ts once posted. */
  ts?: string;
  enrichment?: Enrichment;
  /** Posted before the enrichment arrived; the message is updated when it does. */
  enrichmentPending?: boolean;
  /** The Revoke confirm dialog's text: from the plan once it is known, general until then. */
  confirmText: string;
  /**
   * What the alert's plan read of PIM (see `PlanOptions.timeBoundSeen`): absent when it could not
   * read the schedules, or before a plan arrived.
   */
  timeBoundSeen?: TimeBoundSeen[];
  /**
   * The plan's alarms (possible tampering), shown in the alert before anyone presses Revoke: the
   * detection names someone else's access or object id.
   */
  planAlarms?: string[];
  repeat?: { count: number; lastSeen: number };
  benign?: BenignMark;
  revoke?: RevokeRun;
  /** "Remove broad roles too": the separately confirmed removal of `stillHasAccessThrough`. */
  broad?: RevokeRun;
  undo?: UndoRun;
  /** The identity was revoked through another alert's live Revoke (shown while this alert has none of its own). */
  revokedElsewhere?: RevokedElsewhere;
  /**
   * The last marking or clearing of the other alerts' marks that this alert's thread was told of
   * (`mark:<round>`, `clear:<undo time>`): told once, however often it is brought in line.
   */
  marksTold?: string;
  /** Earlier Revoke-and-Undo rounds, oldest first (at most `PAST_REVOKES_KEPT`). */
  past?: PastRevoke[];
  /** Audit lines for the thread that Slack has not taken yet, oldest first (see follow-ups.ts). */
  pendingThread?: ThreadLine[];
  /**
   * What the last catch-up showed in the message (`shownState`): a catch-up that waits for a
   * thread line to settle does not send the same update again at each pass.
   */
  caughtUp?: string;
}

/** An audit line for the alert's thread. */
export interface ThreadLine {
  text: string;
  /**
   * Carried in the posted message's metadata, so that the thread can be searched for it. Empty for
   * a line stored as its text alone: it is posted without metadata, and searched for by its text.
   */
  id: string;
  /**
   * When a post of it got no clear answer (epoch ms): Slack may have it already, so the thread is
   * searched before it is posted again.
   */
  uncertainSince?: number;
}

/**
 * Holds a running remediation (Revoke, Remove broad roles, Undo); long enough for ARM and Graph,
 * short enough to retry after a crash. A run still marked running after this long was interrupted
 * (the process stopped mid-run): it counts as failed, so its button is offered again.
 */
export const REMEDIATION_LOCK_TTL_MS = 15 * 60 * 1000;

/** The per-alert locks (store claims) of the three remediation runs. */
export const revokeLockKey = (alertId: string): string => `revoke-lock:${alertId}`;
export const broadLockKey = (alertId: string): string => `broad-removal-lock:${alertId}`;
export const undoLockKey = (alertId: string): string => `undo-lock:${alertId}`;

/** The alerts of one identity with a live Revoke in force: an Undo on one restores them all. */
export const revokedAlertsKey = (appId: string): string => `revoked-alerts:${normaliseAppId(appId)}`;

/**
 * The alerts that one alert's live Revoke marked revoked elsewhere (a value, a list of alert ids,
 * kept as long as alert states): its Undo clears their marks.
 */
export const markedElsewhereKey = (alertId: string): string => `revoked-elsewhere:${alertId}`;

/** How many undone Revoke rounds an alert keeps. */
const PAST_REVOKES_KEPT = 5;

/** Alert states are kept this long: buttons on older messages answer "no longer known". */
export const ALERT_STATE_TTL_MS = 90 * 24 * 3600 * 1000;

/** The alert's message and detection, as its audit records keep them (they outlive the state). */
export function alertRef(state: SlackAlertState): AuditRef {
  const d = state.alert.detection;
  const all: Record<keyof AuditRef, string | undefined> = {
    channel: state.channel,
    ts: state.ts,
    eventId: d.eventId,
    eventTime: d.eventTime,
    correlationId: d.correlationId,
    tenantId: d.tenantId,
    clusterId: d.cluster?.id,
    elasticAlertUuid: d.elasticAlert?.alertUuid,
    azureAlertId: d.azureAlert?.alertId,
  };
  const ref: AuditRef = {};
  for (const [key, value] of Object.entries(all)) if (value !== undefined) ref[key as keyof AuditRef] = value;
  return ref;
}

export const alertStateKey = (alertId: string): string => `slack-alert:${alertId}`;

/** `C123:1700000000.000100`: the reference the sink returns for a posted message. */
export const refOf = (channel: string, ts: string): string => `${channel}:${ts}`;

/** Splits a reference back into channel and ts; undefined when malformed. */
export function parseRef(ref: string): { channel: string; ts: string } | undefined {
  const m = /^([A-Z0-9]+):(\d+\.\d+)$/.exec(ref);
  return m ? { channel: m[1]!, ts: m[2]! } : undefined;
}

/** Alert ids are short hex strings; anything else in a button value is refused. */
export const isAlertId = (value: unknown): value is string =>
  typeof value === 'string' && /^[A-Za-z0-9_-]{1,128}$/.test(value);

/**
 * An alert's state as the store may hold it: the current shape, or one whose thread lines are
 * their text alone, or whose Undo does not name the Revoke run it reversed (no `of`).
 */
type StoredAlertState = Omit<SlackAlertState, 'pendingThread'> & {
  pendingThread?: Array<ThreadLine | string>;
};

/**
 * A stored alert state in the current shape: a thread line stored as its text alone becomes a
 * line without an id; a live Undo without `of` reversed the Revoke run that had ended when the
 * Undo began, if any, and gets that run's `at`. Never changes the objects passed in.
 */
function upgradeAlertState(stored: StoredAlertState): SlackAlertState {
  const { pendingThread, ...rest } = stored;
  const state: SlackAlertState = { ...rest };
  if (pendingThread) {
    state.pendingThread = pendingThread.map((line) =>
      typeof line === 'string' ? { text: line, id: '' } : line,
    );
  }
  const { undo, revoke } = state;
  if (undo?.mode === 'live' && undo.of === undefined && revoke && revoke.status !== 'running') {
    if (undo.at >= (revoke.finishedAt ?? revoke.at)) state.undo = { ...undo, of: revoke.at };
  }
  return state;
}

/**
 * Loads an alert's state, in the current shape (see `upgradeAlertState`). With `now`, runs
 * interrupted long ago are read as failed (see `settleStaleRuns`; the stored state is not changed).
 */
export async function loadAlertState(
  store: Values & Claims,
  alertId: string,
  now?: number,
): Promise<SlackAlertState | undefined> {
  if (!isAlertId(alertId)) return undefined;
  const stored = await store.get<StoredAlertState>(alertStateKey(alertId));
  if (!stored) return undefined;
  const state = upgradeAlertState(stored);
  if (now !== undefined) settleStaleRuns(state, now);
  return state;
}

/** The states of many alerts in one read of the store, in order (undefined for those not kept). */
export async function loadAlertStates(
  store: Values,
  alertIds: readonly string[],
): Promise<Array<SlackAlertState | undefined>> {
  const valid = alertIds.filter(isAlertId);
  const stored = await store.getMany<StoredAlertState>(valid.map(alertStateKey));
  const byId = new Map(valid.map((id, i) => [id, stored[i]]));
  return alertIds.map((id) => {
    const raw = byId.get(id);
    return raw === undefined ? undefined : upgradeAlertState(raw);
  });
}

export async function saveAlertState(store: Values & Claims, state: SlackAlertState): Promise<void> {
  await store.set(alertStateKey(state.alert.id), state, ALERT_STATE_TTL_MS);
}

const updates = new KeyedLock();

/** The store claim that serialises one alert's state updates across replicas. */
export const alertStateLockKey = (alertId: string): string => `alert-state-lock:${alertId}`;
/** How long an update holds the alert (a holder that died frees it after this). */
const STATE_LOCK_TTL_MS = 5000;
/**
 * How long an update waits for another replica's: past the claim's lifetime, so that a holder that
 * died is outlasted; then it goes on all the same (a stuck store never blocks an alert for good).
 */
const STATE_LOCK_WAIT_MS = STATE_LOCK_TTL_MS + 1000;
const STATE_LOCK_POLL_MS = 10;

/**
 * Reads the latest state, applies `change` and stores it. Updates of one alert are serialised in
 * this process, and across replicas by a short store claim, so that concurrent changes (a repeat,
 * late enrichment, a revoke, a thread line kept and one caught up) never undo each other.
 */
export function updateAlertState(
  store: Values & Claims,
  alertId: string,
  change: (state: SlackAlertState) => void,
): Promise<SlackAlertState | undefined> {
  return updates.run([alertId], async () => {
    const lock = alertStateLockKey(alertId);
    let held = false;
    // A wait measured on the monotonic clock: a wall clock set back does not make it longer.
    for (const giveUp = performance.now() + STATE_LOCK_WAIT_MS; ; ) {
      held = await store.claim(lock, STATE_LOCK_TTL_MS);
      if (held || performance.now() >= giveUp) break;
      await new Promise((resolve) => setTimeout(resolve, STATE_LOCK_POLL_MS));
    }
    try {
      const state = await loadAlertState(store, alertId);
      if (!state) return undefined;
      change(state);
      await saveAlertState(store, state);
      return state;
    } finally {
      if (held) await store.releaseClaim(lock).catch(() => {});
    }
  });
}

/** The broad-role assignments a separate action can remove (group and root-scope ones stay). */
export function removableBroadAccess(plan: RemediationPlan | undefined): RemainingAccess[] {
  return (plan?.stillHasAccessThrough ?? []).filter((r) => r.kind !== 'group' && r.kind !== 'root');
}

/**
 * A live run that changed something Undo can reverse: it removed an assignment or disabled a
 * principal. Revoked sign-in sessions alone are not such a change: nothing restores them.
 */
const changedSomething = (
  run: RevokeRun | undefined,
): run is RevokeRun & Required<Pick<RevokeRun, 'plan' | 'result'>> => {
  if (run === undefined || run.mode !== 'live' || run.status === 'running') return false;
  if (run.plan === undefined || run.result?.mode !== 'live') return false;
  const kinds = new Map(run.plan.steps.map((s) => [s.id, s.kind]));
  return run.result.steps.some((s) => s.status === 'done' && kinds.get(s.stepId) !== 'revoke-user-sessions');
};

/**
 * The runs Undo reverses, latest first (the broad removal, then the Revoke): live runs that
 * removed or disabled something.
 */
export function undoableRuns(
  state: SlackAlertState,
): Array<RevokeRun & Required<Pick<RevokeRun, 'plan' | 'result'>>> {
  return [state.broad, state.revoke].filter(changedSomething);
}

/**
 * Whether the alert offers Undo: after a live Revoke that ended (done, or failed partway) and
 * removed or disabled something, while nothing runs, and until an undo has succeeded. A failed
 * run that changed something can be undone as well as retried.
 */
export function canUndo(state: SlackAlertState): boolean {
  if (!state.revoke || state.revoke.status === 'running' || state.revoke.mode !== 'live') return false;
  if (state.broad?.status === 'running' || state.undo?.status === 'running') return false;
  // Once a live Undo has succeeded (one in dry-run changed nothing: Undo is still to be done).
  if (revokeUndone(state)) return false;
  return undoableRuns(state).length > 0;
}

/**
 * Whether the alert offers "Remove broad roles too": the Revoke finished in the remediator's
 * `mode` (live, or dry-run) and left broad-role access in place, that access has not been removed
 * (live) yet, nothing runs and nothing was undone.
 */
export function canRemoveBroad(state: SlackAlertState, mode: 'dry-run' | 'live'): boolean {
  if (state.revoke?.status !== 'done' || state.revoke.mode !== mode) return false;
  if (liveUndo(state)) return false;
  if (state.broad?.status === 'running') return false;
  if (state.broad?.status === 'done' && state.broad.mode === 'live') return false;
  return removableBroadAccess(state.revoke.plan).length > 0;
}

/** The error of a run that did not finish within `REMEDIATION_LOCK_TTL_MS`. */
const INTERRUPTED =
  'it did not finish within 15 minutes: it was interrupted (arc-responder stopped or lost Azure mid-run). What it changed is unknown; pressing the button again re-plans and finishes it';

/** A run marked running for longer than the lock lasts: nothing is running it any more. */
export const isStale = (run: { status: string; at: number } | undefined, now: number): boolean =>
  run?.status === 'running' && now - run.at >= REMEDIATION_LOCK_TTL_MS;

/**
 * Marks each stale run (see `isStale`) as failed with `INTERRUPTED`, replacing the run objects
 * (never changing the ones passed in). Returns the names of the runs it settled.
 */
export function settleStaleRuns(state: SlackAlertState, now: number): Array<'revoke' | 'broad' | 'undo'> {
  const settled: Array<'revoke' | 'broad' | 'undo'> = [];
  const failed = <T extends RevokeRun | UndoRun>(run: T): T => ({
    ...run,
    status: 'failed',
    error: INTERRUPTED,
    finishedAt: now,
  });
  if (state.revoke && isStale(state.revoke, now)) {
    state.revoke = failed(state.revoke);
    settled.push('revoke');
  }
  if (state.broad && isStale(state.broad, now)) {
    state.broad = failed(state.broad);
    settled.push('broad');
  }
  if (state.undo && isStale(state.undo, now)) {
    state.undo = failed(state.undo);
    settled.push('undo');
  }
  return settled;
}

/**
 * The alert's Undo unless it was in dry-run (see `UndoRun.mode`): running, done or failed, it is
 * undoing or undid the revoke.
 */
export const liveUndo = (state: SlackAlertState): UndoRun | undefined =>
  state.undo?.mode === 'dry-run' ? undefined : state.undo;

/** An Undo that re-created and re-enabled what the live runs had removed. */
export const revokeUndone = (state: SlackAlertState): boolean =>
  state.undo?.status === 'done' && state.undo.mode === 'live';

/** How many steps an Undo restored (re-created or re-enabled): a failed one may have restored some. */
export const undoneSteps = (undo: UndoRun): number =>
  undo.result?.steps.filter((s) => s.status === 'done').length ?? 0;

/** A live Revoke finished and has not been undone: Revoke is not offered again. */
export const revokeInForce = (state: SlackAlertState): boolean =>
  state.revoke?.status === 'done' && state.revoke.mode === 'live' && !revokeUndone(state);

/**
 * Starts a new Revoke round after an Undo: the undone round is kept short in `past`, and the
 * Revoke, broad-removal and Undo runs are cleared so that each is offered again in order.
 */
export function startNewRevokeRound(state: SlackAlertState): void {
  const { revoke, undo } = state;
  if (!revoke || !undo || !revokeUndone(state)) return;
  state.past = [
    ...(state.past ?? []),
    { mode: revoke.mode, by: revoke.by, at: revoke.at, undoneBy: undo.by, undoneAt: undo.at },
  ].slice(-PAST_REVOKES_KEPT);
  delete state.revoke;
  delete state.broad;
  delete state.undo;
}

/**
 * Whether the alert says its identity was revoked through another alert: marked so, while it has
 * no live Revoke of its own standing (running, done or failed, and not undone), whose own text
 * then says what is so.
 */
export const showsRevokedElsewhere = (
  state: SlackAlertState,
): state is SlackAlertState & { revokedElsewhere: RevokedElsewhere } =>
  state.revokedElsewhere !== undefined && !(state.revoke?.mode === 'live' && !revokeUndone(state));

import type { AlertRecord } from '../core/alert.ts';
import { KeyedLock } from '../core/keyed-lock.ts';
import type { StateStore } from '../core/ports.ts';
import type { Enrichment, RemainingAccess, RemediationPlan, RemediationResult } from '../core/remediation.ts';

/** Who marked the alert's pair benign, why and until when. */
export interface BenignMark {
  by: string;
  reason: string;
  at: number;
  /** Epoch ms; absent: the allowlist entry never expires. */
  until?: number;
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

/** The state of Undo: re-creating what the live runs removed and re-enabling the principal. */
export interface UndoRun {
  status: 'running' | 'done' | 'failed';
  mode: 'dry-run' | 'live';
  by: string;
  at: number;
  finishedAt?: number;
  /** One result per undone step; step ids are those of the Revoke and broad-removal plans. */
  result?: RemediationResult;
  /** Set when undo threw. */
  error?: string;
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
  repeat?: { count: number; lastSeen: number };
  benign?: BenignMark;
  revoke?: RevokeRun;
  /** "Remove broad roles too": the separately confirmed removal of `stillHasAccessThrough`. */
  broad?: RevokeRun;
  undo?: UndoRun;
}

/** Alert states are kept this long: buttons on older messages answer "no longer known". */
export const ALERT_STATE_TTL_MS = 90 * 24 * 3600 * 1000;

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

export async function loadAlertState(
  store: StateStore,
  alertId: string,
): Promise<SlackAlertState | undefined> {
  if (!isAlertId(alertId)) return undefined;
  return store.get<SlackAlertState>(alertStateKey(alertId));
}

export async function saveAlertState(store: StateStore, state: SlackAlertState): Promise<void> {
  await store.set(alertStateKey(state.alert.id), state, ALERT_STATE_TTL_MS);
}

const updates = new KeyedLock();

/**
 * Reads the latest state, applies `change` and stores it. Updates of one alert are serialised in
 * this process, so that concurrent changes (a repeat, late enrichment and a revoke at once) never
 * undo each other.
 */
export function updateAlertState(
  store: StateStore,
  alertId: string,
  change: (state: SlackAlertState) => void,
): Promise<SlackAlertState | undefined> {
  return updates.run([alertId], async () => {
    const state = await loadAlertState(store, alertId);
    if (!state) return undefined;
    change(state);
    await saveAlertState(store, state);
    return state;
  });
}

/** The broad-role assignments a separate action can remove (group assignments stay). */
export function removableBroadAccess(plan: RemediationPlan | undefined): RemainingAccess[] {
  return (plan?.stillHasAccessThrough ?? []).filter((r) => r.kind !== 'group');
}

/** A live run that changed something: it has steps that Undo can reverse. */
const changedSomething = (
  run: RevokeRun | undefined,
): run is RevokeRun & Required<Pick<RevokeRun, 'plan' | 'result'>> =>
  run !== undefined &&
  run.mode === 'live' &&
  run.status !== 'running' &&
  run.plan !== undefined &&
  run.result?.mode === 'live' &&
  run.result.steps.some((s) => s.status === 'done');

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
 * Whether the alert offers Undo: after a live Revoke that finished and removed something, while
 * nothing runs, and until an undo has succeeded.
 */
export function canUndo(state: SlackAlertState): boolean {
  if (state.revoke?.status !== 'done' || state.revoke.mode !== 'live') return false;
  if (state.broad?.status === 'running' || state.undo?.status === 'running') return false;
  if (state.undo?.status === 'done') return false;
  return undoableRuns(state).length > 0;
}

/**
 * Whether the alert offers "Remove broad roles too": the Revoke finished in the remediator's
 * `mode` (live, or dry-run) and left broad-role access in place, that access has not been removed
 * (live) yet, nothing runs and nothing was undone.
 */
export function canRemoveBroad(state: SlackAlertState, mode: 'dry-run' | 'live'): boolean {
  if (state.revoke?.status !== 'done' || state.revoke.mode !== mode) return false;
  if (state.undo) return false;
  if (state.broad?.status === 'running') return false;
  if (state.broad?.status === 'done' && state.broad.mode === 'live') return false;
  return removableBroadAccess(state.revoke.plan).length > 0;
}

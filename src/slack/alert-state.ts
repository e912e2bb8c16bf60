import type { AlertRecord } from '../core/alert.ts';
import type { StateStore } from '../core/ports.ts';
import type { Enrichment, RemediationPlan, RemediationResult } from '../core/remediation.ts';

/** Who marked the alert's pair benign, why and until when. */
export interface BenignMark {
  by: string;
  reason: string;
  at: number;
  /** Epoch ms; absent: the allowlist entry never expires. */
  until?: number;
}

/** The state of the Revoke button's remediation for one alert. */
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
  /** The Revoke confirm dialog's text, fixed when the message was first built. */
  confirmText: string;
  repeat?: { count: number; lastSeen: number };
  benign?: BenignMark;
  revoke?: RevokeRun;
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

/**
 * Reads the latest state, applies `change` and stores it. Re-reading right before writing keeps
 * concurrent updates (a repeat while a revoke runs) from undoing each other in one process.
 */
export async function updateAlertState(
  store: StateStore,
  alertId: string,
  change: (state: SlackAlertState) => void,
): Promise<SlackAlertState | undefined> {
  const state = await loadAlertState(store, alertId);
  if (!state) return undefined;
  change(state);
  await saveAlertState(store, state);
  return state;
}

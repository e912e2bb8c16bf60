import { randomUUID } from 'node:crypto';
import { clipped, cutBefore } from './formats/fields.ts';
import type { MemberSets, Values } from './ports.ts';

/** What the audit needs of the store: its records are values, listed through member sets. */
export type AuditStore = Values & MemberSets;

/** One audited attempt: who did what to which alert, and how it went. */
export interface AuditEntry {
  id: string;
  at: number;
  /** Who acted: a Slack user id, or `system`. */
  actor: string;
  action: string;
  alertId?: string;
  appId?: string;
  ip?: string;
  /** `ok`, `refused`, `failed`, `dry-run`, ... */
  result: string;
  detail?: unknown;
  /** The alert's message and detection, for a record of an alert (see `AuditRef`). */
  ref?: AuditRef;
}

/**
 * What an alert is, kept with each of its records: its Slack message (`channel`, `ts`) and the
 * detection it came from (the event's id and time, the activity log's correlation id, the tenant,
 * the cluster, the Elastic or Azure Monitor alert). The alert's own state is kept for 90 days,
 * its audit records for 400: these let a record be tied to Slack and to Azure's logs after that.
 */
export interface AuditRef {
  channel?: string;
  ts?: string;
  eventId?: string;
  eventTime?: string;
  correlationId?: string;
  tenantId?: string;
  clusterId?: string;
  elasticAlertUuid?: string;
  azureAlertId?: string;
}

const AUDIT_TTL_MS = 400 * 24 * 3600 * 1000;
const ALL = 'audit:all';
const forAlert = (alertId: string) => `audit:alert:${alertId}`;

/** Results that an on-call person should see first: a click refused, a run that failed. */
const NOTABLE = new Set(['refused', 'failed']);

/** Who else hears of each audit record: the log, and a counter by action and result. */
export interface AuditObserver {
  /** A structured logger (pino's shape): fields first, then the message. */
  logger: { info(fields: object, message: string): void; warn(fields: object, message: string): void };
  counter?: { inc(labels: { action: string; result: string }): void };
}

/**
 * Stores an audit record; it can be listed for its alert and overall. With `observer`, it is also
 * written as one log line (who, what, which alert and pair, the result, and the reason or error
 * when the detail names one), so that the log alone says what responders did, and counted.
 */
export async function recordAudit(
  store: AuditStore,
  entry: Omit<AuditEntry, 'id' | 'at'> & { at?: number },
  observer?: AuditObserver,
) {
  const full: AuditEntry = { ...entry, id: randomUUID(), at: entry.at ?? Date.now() };
  const { actor, action, alertId, appId, ip, result, ref } = full;
  const line: Record<string, unknown> = { audit: full.id, actor, action, alertId, appId, ip, result };
  if (ref !== undefined) line.ref = ref;
  const why = reasonOf(full.detail, result);
  if (why !== undefined) line.why = why;
  try {
    await store.set(`audit:${full.id}`, full, AUDIT_TTL_MS);
    await store.addMembers(ALL, [full.id]);
    if (full.alertId) await store.addMembers(forAlert(full.alertId), [full.id]);
  } catch (err) {
    // What was done is said all the same: the log is then its only record.
    observer?.logger.warn(
      { ...line, err: err instanceof Error ? err.message : String(err) },
      `${action} by ${actor}: ${result} (its audit record could not be stored)`,
    );
    throw err;
  }
  observer?.counter?.inc({ action, result });
  const log = observer?.logger;
  if (log) (NOTABLE.has(result) ? log.warn : log.info).call(log, line, `${action} by ${actor}: ${result}`);
  return full;
}

/** Audit records, oldest first: those of one alert, or all of them. */
export async function listAudit(store: AuditStore, alertId?: string): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  await exportAudit(store, alertId ? { alertId } : {}, (e) => void entries.push(e));
  return entries;
}

/** How many records an export reads at a time. */
const EXPORT_CHUNK = 500;

/**
 * Reads every audit record (or one alert's) once, a chunk at a time, in no particular order.
 * Records expire by themselves: the index entries of those found gone are dropped (index sets
 * have no expiry).
 */
export async function scanAudit(
  store: AuditStore,
  visit: (entry: AuditEntry, id: string) => void,
  alertId?: string,
): Promise<void> {
  const set = alertId ? forAlert(alertId) : ALL;
  const ids = await store.members(set);
  const gone: string[] = [];
  for (let i = 0; i < ids.length; i += EXPORT_CHUNK) {
    const chunk = ids.slice(i, i + EXPORT_CHUNK);
    const entries = await store.getMany<AuditEntry>(chunk.map((id) => `audit:${id}`));
    entries.forEach((e, k) => {
      if (e === undefined) gone.push(chunk[k]!);
      else visit(e, chunk[k]!);
    });
  }
  if (gone.length > 0) await store.removeGoneMembers(set, 'audit:', gone);
}

/**
 * Writes audit records oldest first, without holding them all: a first pass (`scanAudit`) keeps
 * only each one's time and id, a second reads them again in that order. Only records from `since`
 * on (ms since the epoch) are written; one that expires between the passes is left out.
 */
export async function exportAudit(
  store: AuditStore,
  options: { alertId?: string; since?: number },
  write: (entry: AuditEntry) => void | Promise<void>,
): Promise<number> {
  const since = options.since ?? Number.NEGATIVE_INFINITY;
  const order: Array<[at: number, id: string]> = [];
  await scanAudit(
    store,
    (e, id) => {
      if (e.at >= since) order.push([e.at, id]);
    },
    options.alertId,
  );
  // A stable sort: records of the same millisecond stay in the index's order.
  order.sort((a, b) => a[0] - b[0]);
  let written = 0;
  for (let i = 0; i < order.length; i += EXPORT_CHUNK) {
    const chunk = order.slice(i, i + EXPORT_CHUNK);
    const entries = await store.getMany<AuditEntry>(chunk.map(([, id]) => `audit:${id}`));
    for (const e of entries) {
      if (e === undefined) continue;
      await write(e);
      written++;
    }
  }
  return written;
}

/** How much of a reason the log line keeps. */
const WHY_CLIP = 300;

/** A step result as a run's record holds it (see `StepResult`). */
type RecordedStep = { stepId?: unknown; status?: unknown; detail?: unknown; fix?: unknown };

/** `text` cut to `max` characters, marked where it was cut (see `clipped`). */
const clip = (text: string, max: number) => clipped(text, max) ?? '';

/**
 * The reason an audit detail gives, clipped: a refusal's text, a Mark benign's reason, a run's
 * error, or, for a run whose steps failed, the first failed step (its error and fix) and how many
 * more failed. A failed run with no failed step says why from its plan: Azure not read, or no step.
 */
function reasonOf(detail: unknown, result: string): string | undefined {
  if (typeof detail === 'string') return detail.slice(0, WHY_CLIP);
  if (typeof detail !== 'object' || detail === null) return undefined;
  const { error, reason, steps, plan } = detail as {
    error?: unknown;
    reason?: unknown;
    steps?: unknown;
    plan?: { steps?: unknown; unchecked?: unknown; warnings?: unknown };
  };
  for (const text of [error, reason]) if (typeof text === 'string') return cutBefore(text, WHY_CLIP);
  const failed = (Array.isArray(steps) ? (steps as RecordedStep[]) : []).filter(
    (s): s is RecordedStep & { detail: string } => s?.status === 'failed' && typeof s.detail === 'string',
  );
  const [first] = failed;
  if (first) {
    // A step's id is `kind:target` and its detail `<call> failed: <error>`: the kind and the
    // error say it in a few words, where the call's full ARM path would fill the line.
    const kind = typeof first.stepId === 'string' ? first.stepId.split(':')[0] : undefined;
    const at = first.detail.indexOf(' failed: ');
    const error = at >= 0 ? first.detail.slice(at + ' failed: '.length) : first.detail;
    const more = failed.length - 1;
    const parts = [
      `${kind ? `${kind}: ` : ''}${clip(error, 110)}`,
      typeof first.fix === 'string' ? `fix: ${clip(first.fix, 120)}` : undefined,
      more > 0 ? `${more} more step${more === 1 ? '' : 's'} failed` : undefined,
    ]
      .filter((part) => part !== undefined)
      .join('; ');
    return clip(parts, WHY_CLIP);
  }
  if (result !== 'failed' || typeof plan !== 'object' || plan === null) return undefined;
  const [unread] = Array.isArray(plan.unchecked) ? plan.unchecked : [];
  if (typeof unread === 'string') return clip(`Azure could not be read for the plan: ${unread}`, WHY_CLIP);
  if (Array.isArray(plan.steps) && plan.steps.length === 0) {
    const [warning] = Array.isArray(plan.warnings) ? plan.warnings : [];
    return clip(`the plan has no step${typeof warning === 'string' ? `: ${warning}` : ''}`, WHY_CLIP);
  }
  return undefined;
}

import { randomUUID } from 'node:crypto';
import type { StateStore } from './ports.ts';

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
}

const AUDIT_TTL_MS = 400 * 24 * 3600 * 1000;
const ALL = 'audit:all';
const forAlert = (alertId: string) => `audit:alert:${alertId}`;

/** Stores an audit record; it can be listed for its alert and overall. */
export async function recordAudit(store: StateStore, entry: Omit<AuditEntry, 'id' | 'at'> & { at?: number }) {
  const full: AuditEntry = { ...entry, id: randomUUID(), at: entry.at ?? Date.now() };
  await store.set(`audit:${full.id}`, full, AUDIT_TTL_MS);
  await store.addMembers(ALL, [full.id]);
  if (full.alertId) await store.addMembers(forAlert(full.alertId), [full.id]);
  return full;
}

/** Audit records, oldest first: those of one alert, or all of them. */
export async function listAudit(store: StateStore, alertId?: string): Promise<AuditEntry[]> {
  const set = alertId ? forAlert(alertId) : ALL;
  const ids = await store.members(set);
  const entries = await store.getMany<AuditEntry>(ids.map((id) => `audit:${id}`));
  // Records expire by themselves; their index entries go as they are found.
  const expired = ids.filter((_, i) => entries[i] === undefined);
  if (expired.length > 0) await store.removeMembers(set, expired);
  return entries.filter((e): e is AuditEntry => e !== undefined).sort((a, b) => a.at - b.at);
}

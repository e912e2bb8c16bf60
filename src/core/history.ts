import {
  type AllowlistEntry,
  allowKey,
  identitySet,
  normaliseAppId,
  type PairDetails,
  type PairRecord,
  pairInfoKey,
  pairKey,
  type StoredPair,
} from './pair.ts';
import type { MemberSets, Values } from './ports.ts';

/** One source IP of an identity, with its allowlist entry when there is one. */
export interface IdentityHistoryEntry {
  pair: PairRecord;
  allow?: AllowlistEntry;
}

/** Reads an identity's history and manages the allowlist. */
export interface History {
  readonly windowMs: number;
  /** Every source IP of the identity seen within the window, most recent first. */
  listIdentity(appId: string): Promise<IdentityHistoryEntry[]>;
  /**
   * `listIdentity`, and in the same reads the identity's allowlist entries that last whose IP has
   * no sighting in the window (they still hold detections back), most recently made first.
   */
  readIdentity(appId: string): Promise<{ entries: IdentityHistoryEntry[]; dormant: AllowlistEntry[] }>;
  allow(entry: {
    appId: string;
    ip: string;
    by: string;
    reason: string;
    until?: number;
    /** The alert it is marked benign from. */
    alertId?: string;
  }): Promise<AllowlistEntry>;
  /** Removes an allowlist entry; false when there was none. */
  unallow(appId: string, ip: string): Promise<boolean>;
  /** The pair's allowlist entry while it lasts. */
  getAllow(appId: string, ip: string): Promise<AllowlistEntry | undefined>;
  /**
   * Every allowlist entry that lasts, of every identity, ordered by identity then IP: those of
   * the identities indexed when an entry was made, and of `alsoIdentities` (entries made before
   * that index existed are found through them).
   */
  listAllowlist(alsoIdentities?: Iterable<string>): Promise<AllowlistEntry[]>;
}

/** True while the entry suppresses alerts. */
export const isAllowActive = (entry: AllowlistEntry | undefined, now: number): entry is AllowlistEntry =>
  entry !== undefined && (entry.until === undefined || entry.until > now);

/** The IPs of an identity that have (or had) an allowlist entry: listing reads only those entries. */
const allowSet = (appId: string) => `allowed:${normaliseAppId(appId)}`;

/** The identities that have (or had) an allowlist entry: the review of every entry reads those. */
const ALLOWED_IDENTITIES = 'allowed-identities';

export function createHistory(opts: {
  store: Values & MemberSets;
  windowMs: number;
  now?: () => number;
}): History {
  const { store, windowMs } = opts;
  const now = opts.now ?? Date.now;

  /** The identity's allowlist entries by IP; expired entries leave the index as they are found. */
  async function allowedOf(appId: string): Promise<Map<string, AllowlistEntry>> {
    const ips = await store.members(allowSet(appId));
    if (ips.length === 0) return new Map();
    const entries = await store.getMany<AllowlistEntry>(ips.map((ip) => allowKey(appId, ip)));
    const gone = ips.filter((_, i) => entries[i] === undefined);
    if (gone.length > 0) await store.removeGoneMembers(allowSet(appId), allowKey(appId, ''), gone);
    return new Map(ips.flatMap((ip, i) => (entries[i] ? [[ip, entries[i]] as const] : [])));
  }

  async function readIdentity(appId: string): ReturnType<History['readIdentity']> {
    const own = normaliseAppId(appId);
    const set = identitySet(appId);
    // Where the store reads key ranges (SQLite), the identity's pairs are one range; elsewhere
    // its index names them.
    const readPairs = async (): Promise<{ pairs: StoredPair[]; gone: string[] }> => {
      const rows = await store.valuesByPrefix<StoredPair>(pairKey(appId, ''));
      if (rows !== undefined) {
        const pairs: StoredPair[] = [];
        for (const [, pair] of rows) if (pair.appId === own) pairs.push(pair);
        return { pairs, gone: [] };
      }
      const ips = await store.members(set);
      if (ips.length === 0) return { pairs: [], gone: [] };
      const found = await store.getMany<StoredPair>(ips.map((ip) => pairKey(appId, ip)));
      const pairs: StoredPair[] = [];
      const gone: string[] = [];
      ips.forEach((ip, i) => {
        const pair = found[i];
        if (pair) pairs.push(pair);
        else gone.push(ip);
      });
      return { pairs, gone };
    };
    const [{ pairs, gone }, allows] = await Promise.all([readPairs(), allowedOf(appId)]);
    // Records without `last` keep their details apart (at `pairInfoKey`).
    const legacy = pairs.filter((pair) => pair.last === undefined);
    const legacyDetails =
      legacy.length > 0
        ? await store.getMany<PairDetails>(legacy.map((pair) => pairInfoKey(pair.appId, pair.ip)))
        : [];
    const detailsOf = new Map(legacy.map((pair, i) => [pair.ip, legacyDetails[i]]));
    const t = now();
    const horizon = t - windowMs;
    const entries: IdentityHistoryEntry[] = [];
    for (const stored of pairs) {
      if (stored.lastSeen < horizon) continue;
      const pair: PairRecord = {
        appId: stored.appId,
        ip: stored.ip,
        firstSeen: stored.firstSeen,
        lastSeen: stored.lastSeen,
        count: stored.count,
        spans: stored.spans,
        last: stored.last ?? detailsOf.get(stored.ip) ?? {},
      };
      if (stored.alertId !== undefined) pair.alertId = stored.alertId;
      const allow = allows.get(stored.ip);
      entries.push(isAllowActive(allow, t) ? { pair, allow } : { pair });
    }
    // Pairs expire by themselves; drop their index entries as they are found.
    if (gone.length > 0) await store.removeGoneMembers(set, pairKey(appId, ''), gone);
    entries.sort((a, b) => b.pair.lastSeen - a.pair.lastSeen || a.pair.ip.localeCompare(b.pair.ip));
    const listed = new Set(entries.map((e) => e.pair.ip));
    const dormant = [...allows.values()]
      .filter((allow) => isAllowActive(allow, t) && !listed.has(allow.ip))
      .sort((a, b) => b.at - a.at || a.ip.localeCompare(b.ip));
    return { entries, dormant };
  }

  return {
    windowMs,

    async listIdentity(appId) {
      return (await readIdentity(appId)).entries;
    },

    readIdentity,

    async allow({ appId, ip, by, reason, until, alertId }) {
      const entry: AllowlistEntry = { appId: normaliseAppId(appId), ip, by, reason, at: now() };
      if (until !== undefined) entry.until = until;
      if (alertId !== undefined) entry.alertId = alertId;
      const ttl = until === undefined ? undefined : Math.max(1, until - now());
      await store.addMembers(ALLOWED_IDENTITIES, [entry.appId]);
      await store.addMembers(allowSet(appId), [ip]);
      await store.set(allowKey(appId, ip), entry, ttl);
      // Again after the entry: a reader that found the member before the entry was written may
      // have removed it (see `removeGoneMembers`).
      await store.addMembers(allowSet(appId), [ip]);
      return entry;
    },

    async unallow(appId, ip) {
      const removed = await store.delete(allowKey(appId, ip));
      await store.removeMembers(allowSet(appId), [ip]);
      return removed;
    },

    async getAllow(appId, ip) {
      const entry = await store.get<AllowlistEntry>(allowKey(appId, ip));
      return isAllowActive(entry, now()) ? entry : undefined;
    },

    async listAllowlist(alsoIdentities = []) {
      const indexed = await store.members(ALLOWED_IDENTITIES);
      const identities = [...new Set([...indexed, ...[...alsoIdentities].map(normaliseAppId)])].sort();
      const t = now();
      const listed: AllowlistEntry[] = [];
      // The index keeps identities whose entries are gone (few: one per identity ever marked), so
      // that it never loses one marked again meanwhile.
      for (const appId of identities) {
        const allows = [...(await allowedOf(appId)).values()].filter((a) => isAllowActive(a, t));
        listed.push(...allows.sort((a, b) => a.ip.localeCompare(b.ip)));
      }
      return listed;
    },
  };
}

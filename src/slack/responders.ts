import type { Logger } from 'pino';

/** The one Web API call responders need: members of a user group. */
export interface UsergroupClient {
  usergroups: {
    users: {
      list(args: { usergroup: string }): Promise<{ users?: string[] }>;
    };
  };
}

export interface ResponderCheckOptions {
  /** `SLACK_RESPONDERS`: user ids (`U…`, `W…`) and user-group ids (`S…`). */
  responders: readonly string[];
  client: UsergroupClient;
  logger: Logger;
  /** How long a group's member list is trusted; 5 minutes unless set. */
  ttlMs?: number;
  /**
   * How much longer a list past `ttlMs` still answers while Slack cannot be asked (a failed or late
   * lookup); 1 hour unless set. Past that, the group's members are refused until a lookup succeeds:
   * someone taken out of the group must not keep the power to revoke through an outage of the API.
   */
  staleGraceMs?: number;
  /**
   * Longest wait for a group's member list before the check answers with what it knows (1.5 s
   * unless set): a click's modal and a command's acknowledgement must come within 3 seconds. The
   * lookup goes on, and fills the list for the next check.
   */
  lookupBudgetMs?: number;
  now?: () => number;
}

/** Whether a user is one of SLACK_RESPONDERS (`decide` in authorise.ts says what that allows). */
export interface ResponderCheck {
  isResponder(userId: string): Promise<boolean>;
  /**
   * True when nobody is configured: Revoke, Undo and Remove broad roles are refused to everyone
   * (fail closed); Mark benign and Remove allowlist are left to the members of the alert channel.
   */
  readonly empty: boolean;
  /**
   * The user groups whose members could not be read from Slack (and none were known before): a
   * member of one of them is refused, and the refusal should say why.
   */
  unreadableGroups(): string[];
  /** Of those, the ones whose lookup only took too long (it goes on): pressing again may work. */
  slowGroups(): string[];
  /** Slack's error code from a group's last failed lookup (`no_such_subteam`, `missing_scope`, ...). */
  lookupError(group: string): string | undefined;
  /** Looks every group up once (at start), so that a group Slack refuses is known before a click. */
  warm(): Promise<void>;
  /** The groups Slack refuses to list, said for `/readyz` until a lookup succeeds. */
  warnings(): string[];
  /**
   * Whether the user is a responder as far as is known without asking Slack (listed by id, or in a
   * group's member list still fresh): for labelling a grant that needs no lookup.
   */
  knownResponder(userId: string): boolean;
}

/**
 * Builds the responder check. User ids match directly; user groups are expanded through
 * `usergroups.users.list` and cached for `ttlMs`. A failed lookup refuses (fails closed) and keeps
 * serving the last known member list if there is one, for `staleGraceMs` past its time.
 */
export function createResponderCheck(opts: ResponderCheckOptions): ResponderCheck {
  const ttl = opts.ttlMs ?? 5 * 60 * 1000;
  const grace = opts.staleGraceMs ?? 60 * 60 * 1000;
  // The cache's age is a duration: on a monotonic clock, so that a wall clock set back does not
  // keep a member removed in Slack a responder for as much longer.
  const now = opts.now ?? (() => performance.now());
  const users = new Set(opts.responders.filter((id) => /^[UW]/.test(id)));
  const groups = opts.responders.filter((id) => id.startsWith('S'));
  const cache = new Map<string, { members: Set<string>; at: number }>();
  const inflight = new Map<string, Promise<Set<string> | undefined>>();
  /** Groups whose last lookup failed (or is late) with no member list to fall back on. */
  const unreadable = new Set<string>();
  /** Of those, the groups whose lookup is only late. */
  const slow = new Set<string>();
  /** Slack's error code of each group's last failed lookup. */
  const errors = new Map<string, string>();

  const budget = opts.lookupBudgetMs ?? 1500;

  /**
   * The group's members, waiting for Slack until `late` settles: then the last known list, or none
   * (the group then counts as unreadable, and slow, so the refusal says why).
   */
  async function membersOf(group: string, late: Promise<'late'>): Promise<Set<string> | undefined> {
    const known = cache.get(group);
    if (known && now() - known.at < ttl) return known.members;
    // What answers should Slack not: a list past its grace answers nothing.
    const cached = usable(group);
    const first = await Promise.race([lookUp(group), late]);
    // A failed lookup answers with this check's own fallback: one that another check started,
    // earlier, may have had a list still within its grace.
    if (first !== 'late') return first ?? cached?.members;
    opts.logger.warn(
      { group, waitedMs: budget },
      'the members of a SLACK_RESPONDERS user group did not arrive in time; answering with what is known, the lookup goes on',
    );
    if (!cached) {
      unreadable.add(group);
      slow.add(group);
    }
    return cached?.members;
  }

  /** A list still within its grace past the TTL: what answers while Slack cannot be asked. */
  const usable = (group: string) => {
    const known = cache.get(group);
    return known && now() - known.at < ttl + grace ? known : undefined;
  };

  /** The group's members from Slack, or undefined when the lookup failed (shared while it runs). */
  function lookUp(group: string): Promise<Set<string> | undefined> {
    let pending = inflight.get(group);
    if (!pending) {
      pending = (async () => {
        try {
          const res = await opts.client.usergroups.users.list({ usergroup: group });
          const members = new Set((res.users ?? []).filter((u) => typeof u === 'string'));
          cache.set(group, { members, at: now() });
          errors.delete(group);
          unreadable.delete(group);
          slow.delete(group);
          return members;
        } catch (err) {
          const code = (err as { data?: { error?: unknown } }).data?.error;
          const known = errors.get(group);
          if (typeof code === 'string') errors.set(group, code.slice(0, 64));
          else errors.delete(group);
          // At warn once per group and cause (until a lookup succeeds); its repeats at debug.
          (known !== undefined && known === errors.get(group) ? opts.logger.debug : opts.logger.warn).call(
            opts.logger,
            { group, code, err: (err as Error).message },
            code === 'no_such_subteam'
              ? 'SLACK_RESPONDERS names a user group Slack does not know: correct the group id'
              : 'cannot list the members of a SLACK_RESPONDERS user group: check the usergroups:read scope and the group id',
          );
          if (!usable(group)) unreadable.add(group);
          slow.delete(group);
          return undefined;
        } finally {
          inflight.delete(group);
        }
      })();
      inflight.set(group, pending);
    }
    return pending;
  }

  return {
    empty: users.size === 0 && groups.length === 0,
    unreadableGroups: () => [...unreadable],
    slowGroups: () => [...slow],
    lookupError: (group) => errors.get(group),
    async warm() {
      await Promise.all(groups.map((group) => lookUp(group)));
    },
    warnings() {
      return [...errors].map(([group, code]) =>
        code === 'no_such_subteam'
          ? `SLACK_RESPONDERS names user group ${group}, which Slack does not know (no_such_subteam): its members cannot revoke; correct the group id`
          : `the members of SLACK_RESPONDERS user group ${group} cannot be read (${code}): its members cannot revoke; check the usergroups:read scope and the group id`,
      );
    },
    knownResponder(userId) {
      if (users.has(userId)) return true;
      return groups.some((group) => {
        const cached = cache.get(group);
        return cached !== undefined && now() - cached.at < ttl && cached.members.has(userId);
      });
    },
    async isResponder(userId) {
      if (typeof userId !== 'string' || userId === '') return false;
      if (users.has(userId)) return true;
      if (groups.length === 0) return false;
      // Every group at once, against one deadline: the budget is the whole check's.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), budget);
      });
      try {
        const lists = await Promise.all(groups.map((group) => membersOf(group, late)));
        return lists.some((members) => members?.has(userId) === true);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

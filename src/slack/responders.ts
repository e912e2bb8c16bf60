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
}

/**
 * Builds the responder check. User ids match directly; user groups are expanded through
 * `usergroups.users.list` and cached for `ttlMs`. A failed lookup refuses (fails closed) and keeps
 * serving the last known member list if there is one.
 */
export function createResponderCheck(opts: ResponderCheckOptions): ResponderCheck {
  const ttl = opts.ttlMs ?? 5 * 60 * 1000;
  const now = opts.now ?? Date.now;
  const users = new Set(opts.responders.filter((id) => /^[UW]/.test(id)));
  const groups = opts.responders.filter((id) => id.startsWith('S'));
  const cache = new Map<string, { members: Set<string>; at: number }>();
  const inflight = new Map<string, Promise<Set<string> | undefined>>();
  /** Groups whose last lookup failed with no member list to fall back on. */
  const unreadable = new Set<string>();

  async function membersOf(group: string): Promise<Set<string> | undefined> {
    const cached = cache.get(group);
    if (cached && now() - cached.at < ttl) return cached.members;
    let pending = inflight.get(group);
    if (!pending) {
      pending = (async () => {
        try {
          const res = await opts.client.usergroups.users.list({ usergroup: group });
          const members = new Set((res.users ?? []).filter((u) => typeof u === 'string'));
          cache.set(group, { members, at: now() });
          unreadable.delete(group);
          return members;
        } catch (err) {
          opts.logger.warn(
            { group, err: (err as Error).message },
            'cannot list the members of a SLACK_RESPONDERS user group: check the usergroups:read scope and the group id',
          );
          if (!cached) unreadable.add(group);
          return cached?.members;
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
    async isResponder(userId) {
      if (typeof userId !== 'string' || userId === '') return false;
      if (users.has(userId)) return true;
      for (const group of groups) {
        if ((await membersOf(group))?.has(userId)) return true;
      }
      return false;
    },
  };
}

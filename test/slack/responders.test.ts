/**
 * The responder check against Slack's user groups: one deadline for the whole check, whatever the
 * number of groups; what is known without asking Slack labels a grant that needs no lookup.
 */
import { pino } from 'pino';
import { expect, it, vi } from 'vitest';
import { createResponderCheck } from '../../src/slack/responders.ts';

/** A Slack client whose lookups answer after `delayMs`; `seen` counts those started and answered. */
const slowClient = (members: Record<string, string[]>, delayMs: number) => {
  const seen = { started: 0, answered: 0 };
  return {
    seen,
    usergroups: {
      users: {
        list(this: void, args: { usergroup: string }) {
          seen.started++;
          return new Promise<{ users?: string[] }>((resolve) =>
            setTimeout(() => {
              seen.answered++;
              resolve({ users: members[args.usergroup] ?? [] });
            }, delayMs),
          );
        },
      },
    },
  };
};

it('looks every group up at once against one budget, then answers with what is known and says which groups were late', async () => {
  const client = slowClient({ S1: ['U1'], S2: ['U2'] }, 1000);
  const check = createResponderCheck({
    responders: ['S1', 'S2', 'U0DIRECT'],
    client,
    logger: pino({ level: 'silent' }),
    lookupBudgetMs: 300,
  });
  const answer = check.isResponder('U2');
  // Both lookups went out at once, before either answered; the check answered at the budget's
  // end, before either did.
  await new Promise((resolve) => setImmediate(resolve));
  expect(client.seen).toEqual({ started: 2, answered: 0 });
  expect(await answer).toBe(false);
  expect(client.seen).toEqual({ started: 2, answered: 0 });
  expect(check.slowGroups().sort()).toEqual(['S1', 'S2']);
  expect(check.unreadableGroups().sort()).toEqual(['S1', 'S2']);
  expect(check.knownResponder('U0DIRECT')).toBe(true);
  expect(check.knownResponder('U2')).toBe(false);
  // The lookups went on: once they are in, the members are known, and nothing is late.
  await new Promise((r) => setTimeout(r, 900));
  expect(check.slowGroups()).toEqual([]);
  expect(check.knownResponder('U2')).toBe(true);
  expect(await check.isResponder('U1')).toBe(true);
});

it('keeps the members of a group for their TTL on a monotonic clock: with the wall clock set back an hour, a member removed in Slack loses the right when the TTL ends', async () => {
  vi.useFakeTimers({ toFake: ['Date'] });
  try {
    const members: Record<string, string[]> = { S1: ['U1'] };
    // As the service builds it: no clock injected.
    const check = createResponderCheck({
      responders: ['S1'],
      client: slowClient(members, 0),
      logger: pino({ level: 'silent' }),
      ttlMs: 50,
    });
    expect(await check.isResponder('U1')).toBe(true);
    vi.setSystemTime(Date.now() - 3_600_000);
    members.S1 = [];
    await new Promise((r) => setTimeout(r, 100));
    expect(await check.isResponder('U1')).toBe(false);
    expect(check.knownResponder('U1')).toBe(false);
  } finally {
    vi.useRealTimers();
  }
});

it('answers from a list past its TTL while Slack cannot be asked, but only for the grace: then the group is refused until Slack answers', async () => {
  let clock = 0;
  let failing = false;
  const members: Record<string, string[]> = { S1: ['U1'] };
  const client = {
    usergroups: {
      users: {
        async list(this: void, args: { usergroup: string }) {
          if (failing)
            throw Object.assign(new Error('An API error occurred: ratelimited'), {
              data: { error: 'ratelimited' },
            });
          return { users: members[args.usergroup] ?? [] };
        },
      },
    },
  };
  const check = createResponderCheck({
    responders: ['S1', 'U0DIRECT'],
    client,
    logger: pino({ level: 'silent' }),
    ttlMs: 5 * 60_000,
    staleGraceMs: 60 * 60_000,
    now: () => clock,
  });
  expect(await check.isResponder('U1')).toBe(true);
  // Taken out of the group in Slack, while Slack's API refuses to list it.
  members.S1 = [];
  failing = true;
  clock = 30 * 60_000;
  expect(await check.isResponder('U1')).toBe(true);
  expect(check.unreadableGroups()).toEqual([]);
  clock = 66 * 60_000;
  expect(await check.isResponder('U1')).toBe(false);
  expect(check.unreadableGroups()).toEqual(['S1']);
  expect(check.lookupError('S1')).toBe('ratelimited');
  // Those named by id are not concerned.
  expect(await check.isResponder('U0DIRECT')).toBe(true);
  // Once Slack answers, its list counts.
  failing = false;
  members.S1 = ['U2'];
  expect(await check.isResponder('U1')).toBe(false);
  expect(await check.isResponder('U2')).toBe(true);
  expect(check.unreadableGroups()).toEqual([]);
});

/**
 * A check of group S1 (TTL 5 minutes, grace an hour) on a clock the test sets, whose first lookup
 * lists U1 and whose later ones hang until the test settles them.
 */
function checkWithHangingLookups(lookupBudgetMs: number) {
  const t = { clock: 0, settle: undefined as ((err?: Error) => void) | undefined };
  let first = true;
  const client = {
    usergroups: {
      users: {
        list(this: void) {
          if (first) {
            first = false;
            return Promise.resolve({ users: ['U1'] });
          }
          return new Promise<{ users?: string[] }>((resolve, reject) => {
            t.settle = (err) => (err ? reject(err) : resolve({ users: [] }));
          });
        },
      },
    },
  };
  const check = createResponderCheck({
    responders: ['S1'],
    client,
    logger: pino({ level: 'silent' }),
    ttlMs: 5 * 60_000,
    staleGraceMs: 60 * 60_000,
    lookupBudgetMs,
    now: () => t.clock,
  });
  return { check, t };
}

it('past the grace, a late lookup answers nothing either', async () => {
  const { check, t } = checkWithHangingLookups(50);
  expect(await check.isResponder('U1')).toBe(true);
  // Late, within the grace: the list still answers.
  t.clock = 60 * 60_000;
  expect(await check.isResponder('U1')).toBe(true);
  // Late, past the grace: nothing answers; the group is named as late.
  t.clock = 66 * 60_000;
  expect(await check.isResponder('U1')).toBe(false);
  expect(check.slowGroups()).toEqual(['S1']);
  t.settle?.();
});

it('a check past the grace that joins a lookup started within it gets nothing from the list when that lookup fails', async () => {
  const { check, t } = checkWithHangingLookups(5000);
  expect(await check.isResponder('U1')).toBe(true);
  t.clock = 65 * 60_000 - 1;
  const withinGrace = check.isResponder('U1');
  t.clock = 66 * 60_000;
  const pastGrace = check.isResponder('U1');
  t.settle!(
    Object.assign(new Error('An API error occurred: ratelimited'), { data: { error: 'ratelimited' } }),
  );
  expect(await withinGrace).toBe(true);
  expect(await pastGrace).toBe(false);
  expect(check.unreadableGroups()).toEqual(['S1']);
});

/**
 * A live Revoke marks its identity's other alerts one by one while Slack paces the updates; its
 * Undo can run meanwhile, a stop or a crash can cut it short. No mark may outlive the Undo, and
 * none is left undone or unshown once the work is taken up again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import {
  MARKS_PENDING,
  MarksWork,
  marksLockKey,
  requestMarks,
  resumeMarks,
  syncMarks,
} from '../../src/slack/actions/revoked-elsewhere.ts';
import {
  loadAlertState,
  markedElsewhereKey,
  type RevokeRun,
  type SlackAlertState,
  saveAlertState,
  updateAlertState,
} from '../../src/slack/alert-state.ts';
import type { SlackContext } from '../../src/slack/context.ts';
import { FOLLOW_UPS, sweepFollowUps } from '../../src/slack/follow-ups.ts';
import { openMemoryStateStore } from '../../src/store/memory-state-store.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { sampleAlert } from './sample-alert.ts';

const A = 'aaaaaaaaaaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbbbbbbbbbb';
const C = 'cccccccccccccccccccccccc';
const state = (id: string, ip: string): SlackAlertState => ({
  alert: sampleAlert({ id }, { sourceIp: ip }),
  channel: 'C1',
  ts: `1.${id.length}${ip.length}`,
  confirmText: 'x',
});

/** The context the marking uses: the store, a quiet log, A's identity's alerts B and C, and `messenger`. */
const contextOf = (store: unknown, messenger: Record<string, unknown>, marks?: MarksWork): SlackContext =>
  ({
    ...(marks ? { marks } : {}),
    store,
    logger: { warn: () => {}, error: () => {}, info: () => {}, debug: () => {} },
    now: () => 3,
    history: {
      readIdentity: async () => ({ entries: [B, C].map((alertId) => ({ pair: { alertId } })), dormant: [] }),
    },
    messenger,
  }) as unknown as SlackContext;

/** A live Revoke of A, done. */
const RUN: RevokeRun = { status: 'done', mode: 'live', by: 'U1', at: 1, finishedAt: 2 };

/** A, B and C of one principal, A revoked live (`run`): saved. */
async function threeAlerts(store: Parameters<typeof saveAlertState>[0], run: RevokeRun = RUN) {
  await saveAlertState(store, { ...state(A, '192.0.2.1'), revoke: run });
  await saveAlertState(store, state(B, '192.0.2.2'));
  await saveAlertState(store, state(C, '192.0.2.3'));
}

describe('Revoked elsewhere: an Undo during the marking', () => {
  it('leaves no alert marked revoked through an alert whose Revoke was undone meanwhile', async () => {
    const store = openMemoryStateStore('t');
    await threeAlerts(store);
    let undone = false;
    const ctx: SlackContext = contextOf(store, {
      updateAlert: async (s: SlackAlertState) => {
        // The Undo on A lands while the loop shows B (Slack is slow: 200 alerts, 429s).
        if (s.alert.id === B && !undone) {
          undone = true;
          await updateAlertState(store, A, (x) => {
            x.undo = { status: 'done', mode: 'live', by: 'U2', at: 4, of: 1 };
          });
          // This process brings A's marks in line already: the Undo's request is its to take up.
          expect(await syncMarks(ctx, A)).toBe('busy');
        }
      },
      postThread: async () => {},
    });
    await syncMarks(ctx, A);
    expect((await loadAlertState(store, B))?.revokedElsewhere).toBeUndefined();
    expect((await loadAlertState(store, C))?.revokedElsewhere).toBeUndefined();
    expect(await store.get(markedElsewhereKey(A))).toBeUndefined();
  });

  it("shows the marked alerts one at a time, at most about 46 a minute (under Slack's chat.update limit), and says how many once, in the thread of the revoking alert", async () => {
    const store = openMemoryStateStore('t');
    await threeAlerts(store);
    const shownAt: number[] = [];
    const threads: Array<{ alert: string; text: string }> = [];
    const ctx = contextOf(store, {
      updateAlert: async () => void shownAt.push(performance.now()),
      postThread: async (s: SlackAlertState, line: { text: string }) =>
        void threads.push({ alert: s.alert.id, text: line.text }),
    });
    await syncMarks(ctx, A);
    expect(shownAt).toHaveLength(2);
    expect(shownAt[1]! - shownAt[0]!).toBeGreaterThanOrEqual(1100);
    expect(threads).toEqual([
      {
        alert: A,
        text: expect.stringContaining('2 other alerts of the same principal now say "Identity revoked"'),
      },
    ]);
  });
});

const markOf = async (store: ReturnType<typeof openMemoryStateStore>, id: string) =>
  (await loadAlertState(store, id))?.revokedElsewhere;

/**
 * Requests A's marks in a process whose stop (SIGTERM) comes while Slack takes its first update;
 * resolves once stopped. `lines` gets the thread lines it posts.
 */
async function requestedThenStopped(store: ReturnType<typeof openMemoryStateStore>, lines: string[]) {
  const marks = new MarksWork();
  let stopping: Promise<void> | undefined;
  const ctx = contextOf(
    store,
    {
      updateAlert: async () => {
        stopping ??= marks.close(3000);
      },
      postThread: async (_s: SlackAlertState, line: { text: string }) => void lines.push(line.text),
    },
    marks,
  );
  await requestMarks(ctx, [A]);
  await vi.waitFor(() => expect(stopping).toBeDefined(), { timeout: 5000 });
  await stopping;
}

describe('Revoked elsewhere: a stop, a crash, a Revoke again', () => {
  it('a stop during the marking leaves it pending, and the next start finishes it, saying so once in the thread', async () => {
    const store = openMemoryStateStore('t');
    await threeAlerts(store);
    const lines: string[] = [];
    await requestedThenStopped(store, lines);
    expect((await markOf(store, B))?.alertId).toBe(A);
    expect(await markOf(store, C)).toBeUndefined();
    expect(await store.members(MARKS_PENDING)).toEqual([A]);
    // The stop gave the lock back: the next start need not wait for it to lapse.
    expect(await store.claim(marksLockKey(A), 1000)).toBe(true);
    await store.releaseClaim(marksLockKey(A));

    const shown: string[] = [];
    const after = contextOf(
      store,
      {
        updateAlert: async (s: SlackAlertState) => void shown.push(s.alert.id),
        postThread: async (_s: SlackAlertState, line: { text: string }) => void lines.push(line.text),
      },
      new MarksWork(),
    );
    await resumeMarks(after);
    await vi.waitFor(async () => expect(await store.members(MARKS_PENDING)).toEqual([]), { timeout: 5000 });
    expect((await markOf(store, C))?.alertId).toBe(A);
    expect(shown).toEqual([C]);
    expect(lines).toEqual([
      expect.stringContaining('2 other alerts of the same principal now say "Identity revoked"'),
    ]);
    // Brought in line again (a repeated request), it says nothing more.
    expect(await syncMarks(after, A)).toBe('done');
    expect(lines).toHaveLength(1);
  });

  it('marks held by a process that died stay pending until its lock lapses', async () => {
    const store = openMemoryStateStore('t');
    await threeAlerts(store);
    await store.addMembers(MARKS_PENDING, [A]);
    await store.claim(marksLockKey(A), 60_000);
    const ctx = contextOf(store, { updateAlert: async () => {}, postThread: async () => {} });
    expect(await syncMarks(ctx, A)).toBe('busy');
    expect(await store.members(MARKS_PENDING)).toEqual([A]);
    expect(await markOf(store, B)).toBeUndefined();
    // Lapsed (as its TTL makes it): the next sweep takes it up.
    await store.releaseClaim(marksLockKey(A));
    expect(await syncMarks(ctx, A)).toBe('done');
    expect((await markOf(store, B))?.alertId).toBe(A);
    expect(await store.members(MARKS_PENDING)).toEqual([]);
  });

  it("a Revoke again while the Undo's clearing runs: the other alerts end marked by the new Revoke, and its Undo clears them all", async () => {
    const store = openMemoryStateStore('t');
    const run1: RevokeRun = { status: 'done', mode: 'live', by: 'U1', at: 1, finishedAt: 2 };
    await threeAlerts(store, run1);
    const quiet = contextOf(store, { updateAlert: async () => {}, postThread: async () => {} });
    expect(await syncMarks(quiet, A)).toBe('done');
    expect((await markOf(store, C))?.of).toBe(1);

    await updateAlertState(store, A, (x) => {
      x.undo = { status: 'done', mode: 'live', by: 'U2', at: 4, of: 1 };
    });
    const run2: RevokeRun = { status: 'done', mode: 'live', by: 'U3', at: 10, finishedAt: 11 };
    let revokedAgain = false;
    const ctx = contextOf(store, {
      // Revoke #2 of A ends while the clearing shows B (Revoke is offered again once Undo ends).
      updateAlert: async (s: SlackAlertState) => {
        if (s.alert.id !== B || revokedAgain) return;
        revokedAgain = true;
        await updateAlertState(store, A, (x) => {
          delete x.undo;
          x.revoke = run2;
        });
        // Its request finds this process at A's marks: the pass running takes it up.
        expect(await syncMarks(quiet, A)).toBe('busy');
      },
      postThread: async () => {},
    });
    expect(await syncMarks(ctx, A)).toBe('done');
    expect(await markOf(store, B)).toMatchObject({ alertId: A, of: 10, by: 'U3' });
    expect(await markOf(store, C)).toMatchObject({ alertId: A, of: 10, by: 'U3' });
    expect(await store.get(markedElsewhereKey(A))).toEqual(expect.arrayContaining([B, C]));

    await updateAlertState(store, A, (x) => {
      x.undo = { status: 'done', mode: 'live', by: 'U4', at: 20, of: 10 };
    });
    expect(await syncMarks(quiet, A)).toBe('done');
    expect(await markOf(store, B)).toBeUndefined();
    expect(await markOf(store, C)).toBeUndefined();
    expect(await store.get(markedElsewhereKey(A))).toBeUndefined();
  }, 20_000);
});

describe('Revoked elsewhere: an Undo cut short by a stop', () => {
  it('the clearing finished by the next start says in the thread how many alerts it cleared in all', async () => {
    const store = openMemoryStateStore('t');
    await threeAlerts(store);
    const quiet = contextOf(store, { updateAlert: async () => {}, postThread: async () => {} });
    expect(await syncMarks(quiet, A)).toBe('done');
    expect((await loadAlertState(store, B))?.revokedElsewhere?.alertId).toBe(A);
    expect((await loadAlertState(store, C))?.revokedElsewhere?.alertId).toBe(A);

    await updateAlertState(store, A, (x) => {
      x.undo = { status: 'done', mode: 'live', by: 'U2', at: 4, of: 1 };
    });
    const lines: string[] = [];
    await requestedThenStopped(store, lines);
    expect((await loadAlertState(store, B))?.revokedElsewhere).toBeUndefined();
    expect((await loadAlertState(store, C))?.revokedElsewhere?.alertId).toBe(A);

    const after = contextOf(
      store,
      {
        updateAlert: async () => {},
        postThread: async (_s: SlackAlertState, line: { text: string }) => void lines.push(line.text),
      },
      new MarksWork(),
    );
    await resumeMarks(after);
    await vi.waitFor(async () => expect(await store.members(MARKS_PENDING)).toEqual([]), { timeout: 5000 });
    expect((await loadAlertState(store, C))?.revokedElsewhere).toBeUndefined();
    // B and C were both cleared by this Undo.
    expect(lines).toEqual([expect.stringContaining('took "Identity revoked" off 2 other alerts')]);
  }, 20_000);
});

describe('Revoked elsewhere: a stop while Slack holds an update back', () => {
  it('gives the marks back before the store closes, so that the next start takes them up at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'marks-stop-'));
    const url = `sqlite://${join(dir, 'store.db')}`;
    try {
      const store = await openStateStore(url);
      await threeAlerts(store);
      // As the Slack adapter builds it: a stop gives back the claims of the calls still running.
      const before = new MarksWork((id) => store.releaseClaim(marksLockKey(id)));
      let updating: (() => void) | undefined;
      const first = contextOf(
        store,
        {
          // Slack answered the channel's updates 429 Retry-After: 5 (the queue waits it out).
          updateAlert: () => new Promise<void>((resolve) => (updating = resolve)),
          postThread: async () => {},
        },
        before,
      );
      await requestMarks(first, [A]);
      await vi.waitFor(() => expect(updating).toBeDefined(), { timeout: 5000 });
      // The Slack adapter's stop (MARKS_STOP_WAIT_MS), then the app closes the store.
      await before.close(3000);
      await store.close();
      // Slack takes the update after all; the pass ends at its next step.
      updating!();
      await new Promise((resolve) => setTimeout(resolve, 200));

      const again = await openStateStore(url);
      try {
        expect(await again.members(MARKS_PENDING)).toEqual([A]);
        const after = contextOf(
          again,
          { updateAlert: async () => {}, postThread: async () => {} },
          new MarksWork(),
        );
        expect(await syncMarks(after, A)).toBe('done');
        expect((await loadAlertState(again, C))?.revokedElsewhere?.alertId).toBe(A);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});

/** `store`, until `dies(method, args)` says the process died there: then nothing answers any more. */
function dyingStore<T extends object>(store: T, dies: (method: string | symbol, args: unknown[]) => boolean) {
  let dead = false;
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (dead) return new Promise(() => {});
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (dies(prop, args)) dead = true;
        return result;
      };
    },
  });
  return { proxy, dead: () => dead };
}

describe('Revoked elsewhere: a crash between a mark and its message update', () => {
  it('the pass taken up after the crash shows the alert whose mark was stored but never shown', async () => {
    const store = openMemoryStateStore('t');
    await threeAlerts(store);
    // The process dies right after B's mark is stored (its update ends): nothing it asks for
    // answers any more.
    const dying = dyingStore(
      store,
      (method, args) => method === 'releaseClaim' && args[0] === `alert-state-lock:${B}`,
    );
    const shownBefore: string[] = [];
    const first = contextOf(dying.proxy, {
      updateAlert: async (s: SlackAlertState) => void shownBefore.push(s.alert.id),
      postThread: async () => {},
    });
    void syncMarks(first, A);
    await vi.waitFor(() => expect(dying.dead()).toBe(true), { timeout: 5000 });
    expect((await loadAlertState(store, B))?.revokedElsewhere?.alertId).toBe(A);
    expect(shownBefore).toEqual([]);
    // Its lock lapses (8 minutes); the sweep takes the marks up.
    await store.releaseClaim(marksLockKey(A));
    const shown: string[] = [];
    const after = contextOf(store, {
      updateAlert: async (s: SlackAlertState) => void shown.push(s.alert.id),
      postThread: async () => {},
    });
    expect(await syncMarks(after, A)).toBe('done');
    expect(shown).toEqual([C]);
    // B was noted for Slack's catch-up before its mark was stored: the sweep shows it.
    expect(await store.members(FOLLOW_UPS)).toEqual([B]);
    await sweepFollowUps(after);
    expect(shown.sort()).toEqual([B, C]);
    expect(await store.members(FOLLOW_UPS)).toEqual([]);
  }, 20_000);

  it('the clearing taken up after the crash shows the alert whose mark was taken off but never shown', async () => {
    const store = openMemoryStateStore('t');
    await threeAlerts(store);
    const quiet = contextOf(store, { updateAlert: async () => {}, postThread: async () => {} });
    expect(await syncMarks(quiet, A)).toBe('done');
    await updateAlertState(store, A, (x) => {
      x.undo = { status: 'done', mode: 'live', by: 'U2', at: 4, of: 1 };
    });
    // The process dies right after B's mark is taken off in the store (its update ends).
    const dying = dyingStore(
      store,
      (method, args) => method === 'releaseClaim' && args[0] === `alert-state-lock:${B}`,
    );
    const first = contextOf(dying.proxy, { updateAlert: async () => {}, postThread: async () => {} });
    void syncMarks(first, A);
    await vi.waitFor(() => expect(dying.dead()).toBe(true), { timeout: 5000 });
    expect((await loadAlertState(store, B))?.revokedElsewhere).toBeUndefined();
    await store.releaseClaim(marksLockKey(A));
    const shown: string[] = [];
    const after = contextOf(store, {
      updateAlert: async (s: SlackAlertState) => void shown.push(s.alert.id),
      postThread: async () => {},
    });
    expect(await syncMarks(after, A)).toBe('done');
    expect(shown).toEqual([C]);
    // B was noted for Slack's catch-up before its mark was taken off: the sweep shows it.
    await sweepFollowUps(after);
    expect(shown.sort()).toEqual([B, C]);
    expect(await store.members(FOLLOW_UPS)).toEqual([]);
  }, 20_000);
});

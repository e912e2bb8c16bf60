/**
 * A live Revoke marks its identity's other alerts one by one while Slack paces the updates; its
 * Undo can run meanwhile. No mark may outlive the Undo.
 */
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
import { openMemoryStateStore } from '../../src/store/memory-state-store.ts';
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

describe('Revoked elsewhere: an Undo during the marking', () => {
  it('leaves no alert marked revoked through an alert whose Revoke was undone meanwhile', async () => {
    const store = openMemoryStateStore('t');
    const run: RevokeRun = { status: 'done', mode: 'live', by: 'U1', at: 1, finishedAt: 2 };
    const a = { ...state(A, '192.0.2.1'), revoke: run };
    await saveAlertState(store, a);
    await saveAlertState(store, state(B, '192.0.2.2'));
    await saveAlertState(store, state(C, '192.0.2.3'));
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
    const run: RevokeRun = { status: 'done', mode: 'live', by: 'U1', at: 1, finishedAt: 2 };
    const a = { ...state(A, '192.0.2.1'), revoke: run };
    await saveAlertState(store, a);
    for (const [id, ip] of [
      [B, '192.0.2.2'],
      [C, '192.0.2.3'],
    ] as const) {
      await saveAlertState(store, state(id, ip));
    }
    const shownAt: number[] = [];
    const threads: Array<{ alert: string; text: string }> = [];
    const ctx = contextOf(store, {
      updateAlert: async () => void shownAt.push(performance.now()),
      postThread: async (s: SlackAlertState, line: { text: string }) =>
        void threads.push({ alert: s.alert.id, text: line.text }),
    });
    await syncMarks(ctx, A);
    expect(shownAt).toHaveLength(2);
    expect(shownAt[1]! - shownAt[0]!).toBeGreaterThanOrEqual(1250);
    expect(threads).toEqual([
      {
        alert: A,
        text: expect.stringContaining('2 other alerts of the same principal now say "Identity revoked"'),
      },
    ]);
  });
});

/** A, B and C of one principal, A revoked live (`run`): saved. */
async function threeAlerts(store: ReturnType<typeof openMemoryStateStore>, run: RevokeRun) {
  await saveAlertState(store, { ...state(A, '192.0.2.1'), revoke: run });
  await saveAlertState(store, state(B, '192.0.2.2'));
  await saveAlertState(store, state(C, '192.0.2.3'));
}
const markOf = async (store: ReturnType<typeof openMemoryStateStore>, id: string) =>
  (await loadAlertState(store, id))?.revokedElsewhere;

describe('Revoked elsewhere: a stop, a crash, a Revoke again', () => {
  it('a stop during the marking leaves it pending, and the next start finishes it, saying so once in the thread', async () => {
    const store = openMemoryStateStore('t');
    const run: RevokeRun = { status: 'done', mode: 'live', by: 'U1', at: 1, finishedAt: 2 };
    await threeAlerts(store, run);
    const before = new MarksWork();
    const lines: string[] = [];
    let stopping: Promise<void> | undefined;
    const first = contextOf(
      store,
      {
        // The service stops (SIGTERM) while Slack takes B's update.
        updateAlert: async () => {
          stopping ??= before.close(3000);
        },
        postThread: async (_s: SlackAlertState, line: { text: string }) => void lines.push(line.text),
      },
      before,
    );
    await requestMarks(first, [A]);
    await vi.waitFor(() => expect(stopping).toBeDefined(), { timeout: 5000 });
    await stopping;
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
    const run: RevokeRun = { status: 'done', mode: 'live', by: 'U1', at: 1, finishedAt: 2 };
    await threeAlerts(store, run);
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

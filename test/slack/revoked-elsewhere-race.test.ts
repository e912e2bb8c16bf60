/**
 * A live Revoke marks its identity's other alerts one by one while Slack paces the updates; its
 * Undo can run meanwhile. No mark may outlive the Undo.
 */
import { describe, expect, it } from 'vitest';
import { clearRevokedElsewhere, markRevokedElsewhere } from '../../src/slack/actions/revoked-elsewhere.ts';
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
const contextOf = (store: unknown, messenger: Record<string, unknown>): SlackContext =>
  ({
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
          await clearRevokedElsewhere(ctx, a, { status: 'done', mode: 'live', by: 'U2', at: 4 }, []);
        }
      },
      postThread: async () => {},
    });
    await markRevokedElsewhere(ctx, a, run);
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
    await markRevokedElsewhere(ctx, a, run);
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

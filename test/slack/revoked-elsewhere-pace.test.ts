/**
 * The marking after a Revoke paces its chat.update calls at one per 1.3 s, under Slack's about 50
 * a minute for the workspace. The pace is the process's, shared by every marking and clearing at
 * once: two Revokes of two identities at once (an incident with several compromised identities)
 * do not update twice as fast.
 */
import { describe, expect, it } from 'vitest';
import { syncMarks } from '../../src/slack/actions/revoked-elsewhere.ts';
import { type RevokeRun, type SlackAlertState, saveAlertState } from '../../src/slack/alert-state.ts';
import type { SlackContext } from '../../src/slack/context.ts';
import { openMemoryStateStore } from '../../src/store/memory-state-store.ts';
import { sampleAlert } from './sample-alert.ts';

const APP1 = '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f21';
const APP2 = '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f22';
const state = (id: string, appId: string, ip: string): SlackAlertState => ({
  alert: sampleAlert({ id }, { sourceIp: ip, appId }),
  channel: 'C1',
  ts: `1.${id}`,
  confirmText: 'x',
});

describe('Revoked elsewhere: pacing across markings', () => {
  it('two markings at once keep, together, to one chat.update per 1.3 s', async () => {
    const store = openMemoryStateStore('t');
    const ids: Record<string, string[]> = {
      [APP1]: ['a1', 'a2', 'a3', 'a4'],
      [APP2]: ['b1', 'b2', 'b3', 'b4'],
    };
    for (const [app, list] of Object.entries(ids)) {
      for (const [i, id] of list.entries()) await saveAlertState(store, state(id, app, `192.0.2.${i + 1}`));
    }
    const shownAt: number[] = [];
    const ctx = {
      store,
      logger: { warn: () => {}, error: () => {}, info: () => {}, debug: () => {} },
      now: () => 3,
      history: {
        readIdentity: async (appId: string) => ({
          entries: ids[appId]!.map((alertId) => ({ pair: { alertId } })),
          dormant: [],
        }),
      },
      messenger: {
        updateAlert: async () => void shownAt.push(performance.now()),
        postThread: async () => {},
      },
    } as unknown as SlackContext;
    const run: RevokeRun = { status: 'done', mode: 'live', by: 'U1', at: 1, finishedAt: 2 };
    const a = { ...state('a1', APP1, '192.0.2.1'), revoke: run };
    const b = { ...state('b1', APP2, '192.0.2.1'), revoke: run };
    await saveAlertState(store, a);
    await saveAlertState(store, b);
    await Promise.all([syncMarks(ctx, 'a1'), syncMarks(ctx, 'b1')]);
    expect(shownAt).toHaveLength(6);
    shownAt.sort((x, y) => x - y);
    const gaps = shownAt.slice(1).map((t, i) => t - shownAt[i]!);
    // Paced from before the store calls that precede each update: a stall there shortens one gap.
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(1100);
  }, 20_000);
});

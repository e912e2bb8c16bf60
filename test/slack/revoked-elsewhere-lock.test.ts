/**
 * One alert's revoked-elsewhere marks are brought in line by one pass at a time across replicas:
 * a call works within its store claim (it gives it back and takes it again before it can lapse),
 * however many markings this process paces together (one chat.update per 1.3 s for all of them).
 */
import { describe, expect, it, vi } from 'vitest';
import {
  MARKS_PENDING,
  MarksWork,
  marksLockKey,
  requestMarks,
} from '../../src/slack/actions/revoked-elsewhere.ts';
import {
  loadAlertState,
  type RevokeRun,
  type SlackAlertState,
  saveAlertState,
} from '../../src/slack/alert-state.ts';
import type { SlackContext } from '../../src/slack/context.ts';
import { openMemoryStateStore } from '../../src/store/memory-state-store.ts';
import { sampleAlert } from './sample-alert.ts';

describe('Revoked elsewhere: one pass per alert at a time across replicas', () => {
  it('holds an alert whose marking lasts while two identities are marked at once (one pace per process)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    try {
      const store = openMemoryStateStore('t');
      const hex = (n: number) => n.toString(16).padStart(24, '0');
      const APP2 = '0f0f0f0f-0000-4000-8000-000000000002';
      const others = new Map<string, string[]>();
      const identities: Array<{ id: string; appId: string | undefined }> = [
        { id: hex(1), appId: undefined },
        { id: hex(2), appId: APP2 },
      ];
      for (const [k, { id, appId }] of identities.entries()) {
        const alertOf = (alertId: string, n: number): SlackAlertState => ({
          alert: sampleAlert({ id: alertId }, { sourceIp: `198.51.${k}.${n}`, ...(appId ? { appId } : {}) }),
          channel: 'C1',
          ts: `1.${alertId}`,
          confirmText: 'x',
        });
        const run: RevokeRun = { status: 'done', mode: 'live', by: 'U1', at: 1, finishedAt: 2 };
        await saveAlertState(store, { ...alertOf(id, 0), revoke: run });
        const ids: string[] = [];
        for (let n = 1; n <= 200; n++) {
          const other = hex(1000 * (k + 1) + n);
          ids.push(other);
          await saveAlertState(store, alertOf(other, n));
        }
        others.set(appId ?? 'default', ids);
      }
      const ctxOf = (marks: MarksWork) =>
        ({
          marks,
          store,
          logger: { warn: () => {}, error: () => {}, info: () => {}, debug: () => {} },
          now: () => 3,
          history: {
            readIdentity: async (appId: string) => ({
              entries: (others.get(appId === APP2 ? APP2 : 'default') ?? []).map((alertId) => ({
                pair: { alertId },
              })),
              dormant: [],
            }),
          },
          messenger: { updateAlert: async () => {}, postThread: async () => {} },
        }) as unknown as SlackContext;
      const here = ctxOf(new MarksWork());
      await requestMarks(here, [hex(1), hex(2)]);
      // 8 minutes 15 s on: both markings still run (400 updates, 1.3 s apart: 520 s).
      for (let t = 0; t < 495; t++) await vi.advanceTimersByTimeAsync(1000);
      const marked = async (id: string) =>
        (await loadAlertState(store, id))?.revokedElsewhere?.alertId === hex(1);
      expect(await marked(others.get('default')!.at(-1)!)).toBe(false);
      // Another replica's sweep finds the first alert pending: it is still held here (the claim
      // that its syncMarks takes first).
      expect(await store.members(MARKS_PENDING)).toContain(hex(1));
      expect(await store.claim(marksLockKey(hex(1)), 60_000)).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  }, 120_000);
});

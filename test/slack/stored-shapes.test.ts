/**
 * Records the store may hold in other shapes than the ones written now, written raw as they were
 * stored, and read as before: an alert's thread lines kept as their text alone, an Undo that does
 * not name the Revoke run it reversed, an Undo in dry-run, a post mark that is a bare number (whose
 * whole flow, a search of the channel before posting again, is in delivery.test.ts).
 */

import { afterEach, describe, expect, it, vi } from 'vitest';
import type { StateStore } from '../../src/core/ports.ts';
import {
  ALERT_STATE_TTL_MS,
  alertStateKey,
  canRemoveBroad,
  canUndo,
  liveUndo,
  loadAlertState,
  type RevokeRun,
  revokeInForce,
  updateAlertState,
} from '../../src/slack/alert-state.ts';
import { buildAlertMessage } from '../../src/slack/blocks/alert.ts';
import { FOLLOW_UPS } from '../../src/slack/follow-ups.ts';
import { postMarkKey, readPostMark } from '../../src/slack/sink.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { type Overrides, overridden } from '../support/overrides.ts';
import { type Harness, startHarness } from './harness.ts';
import { DETECTED_AT, sampleAlert, sampleRevokeResult, sampleRevokeSteps } from './sample-alert.ts';

let store: StateStore | undefined;
let h: Harness | undefined;
afterEach(async () => {
  await store?.close();
  await h?.close();
  [store, h] = [undefined, undefined];
});

const alert = sampleAlert();
const T = DETECTED_AT + 60_000;

/** A live Revoke that removed the assignment and disabled the principal, and left an Owner role. */
const revoke = (over: Overrides<RevokeRun> = {}): RevokeRun =>
  overridden<RevokeRun>(
    {
      status: 'done',
      mode: 'live',
      by: 'UALICE',
      at: T,
      finishedAt: T + 5000,
      plan: {
        appId: alert.detection.appId,
        steps: sampleRevokeSteps(),
        stillHasAccessThrough: [
          { assignmentId: 'owner-1', roleName: 'Owner', scope: '/subscriptions/s', kind: 'broad-role' },
        ],
        warnings: [],
      },
      result: sampleRevokeResult(),
    },
    over,
  );

/** Stores `fields` with the alert as they stand, without going through the state's own writer. */
async function storedRaw(fields: Record<string, unknown>) {
  store = await openStateStore('memory://');
  await store.set(
    alertStateKey(alert.id),
    { alert, channel: 'C123', ts: '1700000000.000001', confirmText: 'x', ...fields },
    ALERT_STATE_TTL_MS,
  );
  return store;
}

describe('thread lines stored as their text alone', () => {
  it('are read as lines without an id, in their order among lines with one', async () => {
    const store = await storedRaw({
      pendingThread: ['Audit: first', { text: 'Audit: second', id: 'l-2' }, 'Audit: third'],
    });
    expect((await loadAlertState(store, alert.id))?.pendingThread).toEqual([
      { text: 'Audit: first', id: '' },
      { text: 'Audit: second', id: 'l-2' },
      { text: 'Audit: third', id: '' },
    ]);
  });

  it('are written back in the current shape by the next update, the rest of the state unchanged', async () => {
    const store = await storedRaw({ pendingThread: ['Audit: first'], repeat: { count: 2, lastSeen: T } });
    await updateAlertState(store, alert.id, (s) => {
      s.pendingThread = [...(s.pendingThread ?? []), { text: 'Audit: second', id: 'l-2' }];
    });
    expect(await store.get(alertStateKey(alert.id))).toEqual({
      alert,
      channel: 'C123',
      ts: '1700000000.000001',
      confirmText: 'x',
      repeat: { count: 2, lastSeen: T },
      pendingThread: [
        { text: 'Audit: first', id: '' },
        { text: 'Audit: second', id: 'l-2' },
      ],
    });
  });

  it('are posted by the catch-up as before, without metadata, and dropped once posted', async () => {
    h = await startHarness({ tuning: { staleSweepIntervalMs: 50 } });
    await h.chat.sink.post(alert);
    const posted = await h.store.get<Record<string, unknown>>(alertStateKey(alert.id));
    await h.store.set(
      alertStateKey(alert.id),
      { ...posted, pendingThread: ['Audit: first', 'Audit: second'] },
      ALERT_STATE_TTL_MS,
    );
    await h.store.addMembers(FOLLOW_UPS, [alert.id]);
    await h.chat.start!();
    await vi.waitFor(async () => expect(await h!.store.members(FOLLOW_UPS)).toEqual([]), { timeout: 15_000 });
    const lines = h.fake.callsOf('chat.postMessage').filter((c) => c.args.thread_ts);
    expect(lines.map((c) => [c.args.text, c.args.metadata])).toEqual([
      ['Audit: first', undefined],
      ['Audit: second', undefined],
    ]);
    expect((await loadAlertState(h.store, alert.id))?.pendingThread).toBeUndefined();
    await h.chat.stop!();
  });
});

describe('a live Undo stored without `of` (the Revoke run it reversed)', () => {
  const undo = { status: 'failed', mode: 'live', by: 'UBOB', error: 'x' } as const;

  it('that began once the Revoke run had ended is of that run', async () => {
    const failed = revoke({ status: 'failed' });
    for (const at of [failed.finishedAt!, failed.finishedAt! + 1]) {
      const store = await storedRaw({ revoke: failed, undo: { ...undo, at } });
      expect((await loadAlertState(store, alert.id))?.undo).toEqual({ ...undo, at, of: failed.at });
      await store.close();
    }
  });

  it('of a Revoke run stored without its end, began after its start', async () => {
    const failed = revoke({ status: 'failed', finishedAt: undefined });
    const store = await storedRaw({ revoke: failed, undo: { ...undo, at: T + 1 } });
    expect((await loadAlertState(store, alert.id))?.undo?.of).toBe(T);
  });

  it('that began before the Revoke run ended (a run since) is of no run', async () => {
    const retried = revoke({ status: 'failed', at: T + 10_000, finishedAt: T + 20_000 });
    const store = await storedRaw({ revoke: retried, undo: { ...undo, at: T + 9000 } });
    const state = (await loadAlertState(store, alert.id))!;
    expect(state.undo).toEqual({ ...undo, at: T + 9000 });
    expect('of' in state.undo!).toBe(false);
  });

  it('while the Revoke run is marked running (a retry), or when there is none, is of no run', async () => {
    for (const fields of [{ revoke: revoke({ status: 'running', finishedAt: undefined, at: T }) }, {}]) {
      const store = await storedRaw({ ...fields, undo: { ...undo, at: T + 9000 } });
      expect((await loadAlertState(store, alert.id))?.undo).toEqual({ ...undo, at: T + 9000 });
      // Nor once the running one is read as interrupted, long after.
      expect((await loadAlertState(store, alert.id, T + 3600_000))?.undo?.of).toBeUndefined();
      await store.close();
    }
  });

  it('keeps the `of` it has', async () => {
    const store = await storedRaw({ revoke: revoke(), undo: { ...undo, at: T + 9000, of: 42 } });
    expect((await loadAlertState(store, alert.id))?.undo?.of).toBe(42);
  });
});

describe('an Undo in dry-run', () => {
  it('is kept and shown, and counts as none: the revoke is in force, Undo and Remove broad roles offered', async () => {
    const dryRun = {
      status: 'done',
      mode: 'dry-run',
      by: 'UBOB',
      at: T + 9000,
      result: {
        mode: 'dry-run',
        ok: true,
        steps: [{ stepId: 'disable', status: 'would-do', detail: 'dry-run' }],
      },
    } as const;
    const store = await storedRaw({ revoke: revoke(), undo: dryRun });
    const state = (await loadAlertState(store, alert.id))!;
    expect(state.undo).toEqual(dryRun);
    expect(liveUndo(state)).toBeUndefined();
    expect(revokeInForce(state)).toBe(true);
    expect(canUndo(state)).toBe(true);
    expect(canRemoveBroad(state, 'live')).toBe(true);
    expect(JSON.stringify(buildAlertMessage({ ...state, mode: 'live', broadRemoval: true }))).toContain(
      'Undo (dry-run)',
    );
  });

  it('unlike a live one, running, done or failed', async () => {
    for (const status of ['running', 'done', 'failed'] as const) {
      const store = await storedRaw({
        revoke: revoke(),
        undo: { status, mode: 'live', by: 'UBOB', at: T + 9000 },
      });
      const state = (await loadAlertState(store, alert.id))!;
      expect(liveUndo(state)?.status).toBe(status);
      expect(canRemoveBroad(state, 'live')).toBe(false);
      await store.close();
    }
  });
});

describe('a post mark', () => {
  it('stored as a bare number is the time of the attempt, in the alert’s channel', async () => {
    store = await openStateStore('memory://');
    await store.set(postMarkKey(alert.id), T, 60_000);
    expect(readPostMark(await store.get(postMarkKey(alert.id)), 'C123')).toEqual({ at: T, channel: 'C123' });
  });

  it('stored with its channel keeps that channel; none is none', async () => {
    store = await openStateStore('memory://');
    await store.set(postMarkKey(alert.id), { at: T, channel: 'C0OLD' }, 60_000);
    expect(readPostMark(await store.get(postMarkKey(alert.id)), 'C123')).toEqual({ at: T, channel: 'C0OLD' });
    expect(readPostMark(await store.get(postMarkKey('other')), 'C123')).toBeUndefined();
  });
});

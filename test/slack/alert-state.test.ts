/**
 * An alert's state is updated under a short store claim as well as the process's own lock, so that
 * two replicas sharing the store never overwrite each other's change (a thread line kept on one
 * while the other catches the alert up).
 */
import { afterEach, expect, it, vi } from 'vitest';
import type { StateStore } from '../../src/core/ports.ts';
import {
  alertStateLockKey,
  loadAlertState,
  saveAlertState,
  updateAlertState,
} from '../../src/slack/alert-state.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { sampleAlert } from './sample-alert.ts';

let store: StateStore | undefined;
afterEach(async () => store?.close());

it('waits while another replica holds the alert, then applies its change on top of that replica’s', async () => {
  store = await openStateStore('memory://');
  const alert = sampleAlert();
  await saveAlertState(store, { alert, channel: 'C123', ts: '1.000001', confirmText: 'x' });
  // Another replica holds the alert, and is about to store its change.
  expect(await store.claim(alertStateLockKey(alert.id), 5000)).toBe(true);
  let done = false;
  const mine = updateAlertState(store, alert.id, (s) => {
    s.pendingThread = [...(s.pendingThread ?? []), { text: 'mine', id: 'b' }];
  }).then((s) => {
    done = true;
    return s;
  });
  await new Promise((r) => setTimeout(r, 100));
  expect(done).toBe(false);
  const other = (await loadAlertState(store, alert.id))!;
  other.pendingThread = [{ text: 'theirs', id: 'a' }];
  await saveAlertState(store, other);
  await store.releaseClaim(alertStateLockKey(alert.id));
  expect((await mine)?.pendingThread).toEqual([
    { text: 'theirs', id: 'a' },
    { text: 'mine', id: 'b' },
  ]);
  // And it gave the claim back.
  expect(await store.claim(alertStateLockKey(alert.id), 1000)).toBe(true);
});

it('goes on after a while when the holder never lets go (a replica that died), so nothing blocks for long', async () => {
  store = await openStateStore('memory://');
  const alert = sampleAlert();
  await saveAlertState(store, { alert, channel: 'C123', ts: '1.000001', confirmText: 'x' });
  expect(await store.claim(alertStateLockKey(alert.id), 60_000)).toBe(true);
  // The wait's clock and timers are faked: the 6 s pass at once.
  vi.useFakeTimers({ toFake: ['setTimeout', 'performance'] });
  try {
    const update = updateAlertState(store, alert.id, (s) => {
      s.pendingThread = [{ text: 'line', id: 'c' }];
    });
    await vi.advanceTimersByTimeAsync(5_900);
    expect(await loadAlertState(store, alert.id)).not.toHaveProperty('pendingThread');
    await vi.advanceTimersByTimeAsync(200);
    expect((await update)?.pendingThread).toEqual([{ text: 'line', id: 'c' }]);
  } finally {
    vi.useRealTimers();
  }
});

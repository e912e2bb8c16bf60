import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { alertOwnerKey, claimAlerts } from '../../src/core/alert-claims.ts';
import type { StateStore } from '../../src/core/ports.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { candidate, DAY, NOW, WINDOW } from '../support/candidates.ts';

const indexes = (cs: ReadonlyArray<{ index: number }>) => cs.map((c) => c.index);

describe('claimAlerts: one alert per pair, also across processes', () => {
  let store: StateStore;
  beforeEach(async () => {
    store = await openStateStore('memory://');
  });
  afterEach(async () => {
    await store.close();
  });

  it("lets the first event of a pair alert; the others, here or in a later batch, are the pair's alert's", async () => {
    const first = candidate({ index: 0, agoMs: DAY });
    const second = candidate({ index: 1, agoMs: DAY / 2 });
    const kept = { eventClaims: false };
    const claimed = await claimAlerts(store, [first, second], NOW, WINDOW, kept);
    expect(indexes(claimed.winners)).toEqual([0]);
    expect(indexes(claimed.alertedElsewhere)).toEqual([1]);

    const later = candidate({ index: 0, agoMs: DAY / 4 });
    const again = await claimAlerts(store, [later], NOW, WINDOW, kept);
    expect(again.winners).toEqual([]);
    expect(indexes(again.alertedElsewhere)).toEqual([0]);
    // Its owner claim, which names nothing, was given back; the winner's is held.
    expect(await store.claimMany([alertOwnerKey(later), alertOwnerKey(first)], WINDOW)).toEqual([
      true,
      false,
    ]);
    expect(kept.eventClaims).toBe(false);
  });

  it("alerts the sender's retry of an event whose first delivery took the pair's claim for it", async () => {
    const c = candidate({ index: 0 });
    const kept = { eventClaims: false };
    await claimAlerts(store, [c], NOW, WINDOW, kept);
    const retry = await claimAlerts(store, [{ ...c, seenBefore: true }], NOW, WINDOW, kept);
    expect(indexes(retry.winners)).toEqual([0]);

    // Not so a redelivery of another event of the pair.
    const other = { ...candidate({ index: 0, agoMs: DAY / 2 }), seenBefore: true };
    expect((await claimAlerts(store, [other], NOW, WINDOW, kept)).winners).toEqual([]);
  });

  it('gives the claims back, so that the retry alerts', async () => {
    const c = candidate({ index: 0 });
    const kept = { eventClaims: false };
    await (await claimAlerts(store, [c], NOW, WINDOW, kept)).giveBack();
    const retry = await claimAlerts(store, [candidate({ index: 0, agoMs: DAY / 2 })], NOW, WINDOW, kept);
    expect(indexes(retry.winners)).toEqual([0]);
    expect(kept.eventClaims).toBe(false);
  });

  it('claims a replay older than the window apart from the live alert of its pair', async () => {
    const kept = { eventClaims: false };
    await claimAlerts(store, [candidate({ index: 0 })], NOW, WINDOW, kept);
    const replay = candidate({ index: 0, agoMs: WINDOW + DAY });
    expect(indexes((await claimAlerts(store, [replay], NOW, WINDOW, kept)).winners)).toEqual([0]);
    // Unless it claims the live alert.
    const late = { ...candidate({ index: 0, agoMs: WINDOW + DAY }), claimsLive: true as const };
    expect((await claimAlerts(store, [late], NOW, WINDOW, kept)).winners).toEqual([]);
  });
});

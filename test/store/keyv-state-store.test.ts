import { Keyv } from 'keyv';
import { describe, expect, it } from 'vitest';
import type { ClaimsAndSets } from '../../src/store/keyv-state-store.ts';
import { KeyvStateStore } from '../../src/store/keyv-state-store.ts';
import { isStoreDown, StoreError } from '../../src/store/store-error.ts';

/** Claims and sets whose backend has gone away: some calls throw, others reject. */
const unreachable = (): ClaimsAndSets => ({
  claim: () => {
    throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
  },
  claimMany: async () => {
    throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
  },
  releaseClaim: async () => {},
  addMembers: async () => {},
  addToSets: async () => {},
  removeMembers: async () => {},
  members: async () => {
    throw new StoreError('STORE_BAD_INPUT', 'a refusal of the store itself');
  },
  membersOfMany: async () => [],
  ping: async () => {},
  close: async () => {},
});

/** The conditional writes of a backend that has gone away. */
const writesUnreachable = {
  writeIfUnchanged: async (): Promise<never> => {
    throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  },
};

describe('KeyvStateStore: driver failures', () => {
  it('reports what a driver throws or rejects with once open as STORE_UNREACHABLE, naming the cause', async () => {
    const store = new KeyvStateStore('redis', new Keyv(), unreachable(), '', writesUnreachable);
    const thrown = await store.claim('k', 1000).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(StoreError);
    expect(thrown).toMatchObject({ code: 'STORE_UNREACHABLE' });
    expect((thrown as Error).message).toBe('The redis store failed: connect ECONNREFUSED 127.0.0.1:6379');
    const rejected = await store.claimMany(['a'], 1000).catch((e: unknown) => e);
    expect(isStoreDown(rejected)).toBe(true);
    expect((rejected as Error).message).toContain('Connection terminated unexpectedly (ECONNRESET)');
    await expect(store.setManyIfUnchanged([{ key: 'k', value: 1, expect: 'absent' }])).rejects.toMatchObject({
      code: 'STORE_UNREACHABLE',
      message: expect.stringMatching(/^The redis store failed: read ECONNRESET/),
    });
    // The store's own errors pass as they are.
    await expect(store.members('s')).rejects.toMatchObject({ code: 'STORE_BAD_INPUT' });
    // Values go through Keyv: its store failing is a store failure too.
    const keyv = new Keyv({
      store: {
        get: async () => {
          throw new Error('ETIMEDOUT');
        },
        set: async () => true,
        delete: async () => true,
        clear: async () => {},
      } as never,
      throwOnErrors: true,
    });
    keyv.on('error', () => {});
    const values = new KeyvStateStore('postgres', keyv, unreachable(), 'ns:', writesUnreachable);
    await expect(values.get('x')).rejects.toMatchObject({
      code: 'STORE_UNREACHABLE',
      message: 'The postgres store failed: ETIMEDOUT',
    });
  });
});

describe('KeyvStateStore: construction', () => {
  it('refuses claims and sets that can neither count live members nor list many sets', () => {
    const { membersOfMany: _unused, ...neither } = unreachable();
    expect(() => new KeyvStateStore('redis', new Keyv(), neither, '', writesUnreachable)).toThrow(
      /needs countLiveMembers or membersOfMany/,
    );
  });
});

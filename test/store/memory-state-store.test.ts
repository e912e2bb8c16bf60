import { describe, expect, it } from 'vitest';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { describeStateStoreContract } from './state-store-contract.ts';

describe('memory:// state store', () => {
  describeStateStoreContract('mem', (namespace) => openStateStore('memory://', { namespace }));

  it('gives every open its own empty store', async () => {
    const one = await openStateStore('memory://');
    const two = await openStateStore('memory://');
    try {
      expect(one.kind).toBe('memory');
      await one.set('k', 1);
      expect(await one.claim('c')).toBe(true);
      expect(await two.get('k')).toBeUndefined();
      expect(await two.claim('c')).toBe(true);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

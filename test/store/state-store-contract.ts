import { afterEach, describe, expect, it } from 'vitest';
import { MAX_APP_ID_LENGTH } from '../../src/core/app-id.ts';
import { allowKey, identitySet, pairInfoKey, pairKey } from '../../src/core/pair.ts';
import type { StateStore } from '../../src/core/ports.ts';
import { shuffled, sleep, sorted, uniqueNamespace } from './helpers.ts';

/** Opens a store of the backend under test in `namespace` (the same backend every time). */
export type OpenInNamespace = (namespace: string) => Promise<StateStore>;

/** Long enough to read a value back before it expires, even on a loaded 2-core machine. */
const SHORT_TTL = 400;
/** Waiting this long after a write with SHORT_TTL is safely past its expiry. */
const PAST_EXPIRY = 600;

/**
 * The behaviour every `StateStore` backend must show. `tag` keeps namespaces apart between
 * backends and test files sharing one Redis or PostgreSQL.
 */
export function describeStateStoreContract(tag: string, open: OpenInNamespace): void {
  describe('StateStore contract', () => {
    const opened: StateStore[] = [];
    const fresh = async (namespace = uniqueNamespace(tag)): Promise<StateStore> => {
      const store = await open(namespace);
      opened.push(store);
      return store;
    };

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    describe('values', () => {
      it('stores and reads back JSON values of every shape', async () => {
        const store = await fresh();
        const record = {
          appId: '3f1c2a4b-1111-2222-3333-444455556666',
          ip: '2001:db8::1',
          count: 3,
          spans: [[1, 2]],
          last: { eventId: 'e-1', geo: { country: 'NL' } },
        };
        await store.set('pair:a:1', record);
        await store.set('str', '::1');
        await store.set('colon-list', [':a', '::b', 'c:']);
        await store.set('num', 42);
        await store.set('flag', false);
        await store.set('nothing', null);

        expect(await store.get('pair:a:1')).toEqual(record);
        expect(await store.get('str')).toBe('::1');
        expect(await store.get('colon-list')).toEqual([':a', '::b', 'c:']);
        expect(await store.get('num')).toBe(42);
        expect(await store.get('flag')).toBe(false);
        expect(await store.get('nothing')).toBeNull();
        expect(await store.get('missing')).toBeUndefined();
      });

      it('overwrites a value and deletes it, reporting whether it existed', async () => {
        const store = await fresh();
        await store.set('k', { v: 1 });
        await store.set('k', { v: 2 });
        expect(await store.get('k')).toEqual({ v: 2 });
        expect(await store.delete('k')).toBe(true);
        expect(await store.get('k')).toBeUndefined();
        expect(await store.delete('k')).toBe(false);
      });

      it('getMany answers in the order asked, undefined for missing keys, repeats included', async () => {
        const store = await fresh();
        await store.set('a', 'A');
        await store.set('c', { c: true });
        expect(await store.getMany(['c', 'missing', 'a', 'c'])).toEqual([
          { c: true },
          undefined,
          'A',
          { c: true },
        ]);
        expect(await store.getMany([])).toEqual([]);
      });

      it('valuesByPrefix reads the live values under a prefix in key order, or says it cannot', async () => {
        const store = await fresh();
        await store.setMany([
          { key: 'pair:a:10.0.0.2', value: { n: 2 } },
          { key: 'pair:a:10.0.0.1', value: { n: 1 }, ttlMs: 60_000 },
          { key: 'pair:a:::1', value: { n: 3 } },
          { key: 'pair:a:gone', value: { n: 4 }, ttlMs: SHORT_TTL },
          { key: 'pair:ab:10.0.0.1', value: 'other identity' },
          { key: 'pair:a;', value: 'next prefix' },
          { key: 'pair:a', value: 'the prefix without its separator' },
        ]);
        await store.claim('pair:a:claimed', 60_000);
        await sleep(PAST_EXPIRY);
        const rows = await store.valuesByPrefix('pair:a:');
        if (store.kind === 'sqlite') {
          expect(rows).toEqual([
            ['pair:a:10.0.0.1', { n: 1 }],
            ['pair:a:10.0.0.2', { n: 2 }],
            ['pair:a:::1', { n: 3 }],
          ]);
          expect(await store.valuesByPrefix('pair:none:')).toEqual([]);
        } else {
          // Redis keeps no ordered key index; @keyv/postgres's key column may sort by locale.
          expect(rows).toBeUndefined();
        }
        await expect(store.valuesByPrefix('')).rejects.toThrow(/prefix must be a non-empty string/);
      });

      it('setMany writes every entry and overwrites existing ones', async () => {
        const store = await fresh();
        await store.set('x1', 'old');
        const entries = Array.from({ length: 250 }, (_, i) => ({ key: `x${i}`, value: { i } }));
        await store.setMany(entries);
        await store.setMany([]);
        const values = await store.getMany(entries.map((e) => e.key));
        expect(values).toEqual(entries.map((e) => e.value));
      });

      it('handles a key that starts with the namespace itself like any other key', async () => {
        const namespace = uniqueNamespace(tag);
        const store = await fresh(namespace);
        await store.set(`${namespace}:x`, 1);
        await store.setMany([{ key: `${namespace}:y`, value: 2 }]);
        expect(await store.getMany([`${namespace}:x`, `${namespace}:y`])).toEqual([1, 2]);
        expect(await store.get(`${namespace}:y`)).toBe(2);
        expect(await store.get('x')).toBeUndefined();
        expect(await store.delete(`${namespace}:x`)).toBe(true);
      });

      it('keeps values, claims and sets as three separate key spaces', async () => {
        const store = await fresh();
        await store.set('same', 'value');
        expect(await store.claim('same', 60_000)).toBe(true);
        await store.addMembers('same', ['m']);
        expect(await store.get('same')).toBe('value');
        expect(await store.delete('same')).toBe(true);
        expect(await store.claim('same', 60_000)).toBe(false);
        expect(await store.members('same')).toEqual(['m']);
      });
    });

    describe('conditional writes', () => {
      it('writes each entry only over what it expects, and says what it found instead', async () => {
        const store = await fresh();
        await store.setMany([
          { key: 'a', value: { n: 1, rev: 'r1' } },
          { key: 'b', value: { n: 1 } },
          { key: 'd', value: { n: 1, rev: 'r2' } },
          { key: 'e', value: { n: 1, rev: 'r3' } },
          { key: 'h', value: { n: 1, rev: 'r4' } },
          { key: 'i', value: { n: 1, rev: 'r10' } },
          // The text of the expected rev inside a string is not the value's rev.
          { key: 'j', value: { note: '"rev":"r1"', rev: 'r5' } },
          { key: 'u', value: 'old' },
        ]);
        const answers = await store.setManyIfUnchanged([
          { key: 'a', value: { n: 2, rev: 'w1' }, expect: { rev: 'r1' } },
          { key: 'b', value: { n: 2, rev: 'w2' }, expect: { rev: null } },
          { key: 'c', value: { n: 2, rev: 'w3' }, expect: 'absent', ttlMs: 60_000 },
          { key: 'd', value: { n: 2 }, expect: { rev: 'other' } },
          { key: 'e', value: { n: 2 }, expect: 'absent' },
          { key: 'f', value: { n: 2 }, expect: { rev: 'r1' } },
          { key: 'g', value: { n: 2 }, expect: { rev: null } },
          { key: 'h', value: { n: 2 }, expect: { rev: null } },
          { key: 'i', value: { n: 2 }, expect: { rev: 'r1' } },
          { key: 'j', value: { n: 2 }, expect: { rev: 'r1' } },
          { key: 'u', value: 'new' },
        ]);
        expect(answers).toEqual([
          true,
          true,
          true,
          { value: { n: 1, rev: 'r2' } },
          { value: { n: 1, rev: 'r3' } },
          { value: undefined },
          { value: undefined },
          { value: { n: 1, rev: 'r4' } },
          { value: { n: 1, rev: 'r10' } },
          { value: { note: '"rev":"r1"', rev: 'r5' } },
          true,
        ]);
        expect(await store.getMany(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'u'])).toEqual([
          { n: 2, rev: 'w1' },
          { n: 2, rev: 'w2' },
          { n: 2, rev: 'w3' },
          { n: 1, rev: 'r2' },
          { n: 1, rev: 'r3' },
          undefined,
          undefined,
          { n: 1, rev: 'r4' },
          { n: 1, rev: 'r10' },
          'new',
        ]);
        expect(await store.setManyIfUnchanged([])).toEqual([]);
      });

      it('takes an expired value for none, and gives what it writes its TTL', async () => {
        const store = await fresh();
        await store.set('x', { rev: 'r1' }, SHORT_TTL);
        await sleep(PAST_EXPIRY);
        expect(
          await store.setManyIfUnchanged([{ key: 'x', value: { rev: 'r1' }, expect: { rev: 'r1' } }]),
        ).toEqual([{ value: undefined }]);
        expect(
          await store.setManyIfUnchanged([
            { key: 'x', value: { rev: 'w1' }, expect: 'absent', ttlMs: SHORT_TTL },
          ]),
        ).toEqual([true]);
        expect(await store.get('x')).toEqual({ rev: 'w1' });
        await sleep(PAST_EXPIRY);
        expect(await store.get('x')).toBeUndefined();
      });

      it('updates keys held, where the backend can: each live value read (an expired one as none), what the update answers written with its TTL, nothing where it answers none', async () => {
        const store = await fresh();
        const updateManyHeld = store.updateManyHeld?.bind(store);
        if (!updateManyHeld) {
          // Redis runs no caller's code inside its step; one process's map needs no holding.
          expect(['redis', 'memory']).toContain(store.kind);
          return;
        }
        await store.set('old', { n: 7 }, 1);
        await store.set('kept', { n: 1 });
        await sleep(10);
        const seen: Array<[string, unknown]> = [];
        await updateManyHeld(['old', 'kept', 'none'], (key, current) => {
          seen.push([key, current]);
          return key === 'kept' ? undefined : { value: { n: 2 }, ttlMs: SHORT_TTL };
        });
        expect(seen.toSorted()).toEqual([
          ['kept', { n: 1 }],
          ['none', undefined],
          ['old', undefined],
        ]);
        expect(await store.getMany(['old', 'kept', 'none'])).toEqual([{ n: 2 }, { n: 1 }, { n: 2 }]);
        await sleep(PAST_EXPIRY);
        // Expired for the store's own checks too (before a read could delete it), not only for reads.
        expect(await store.setManyIfUnchanged([{ key: 'none', value: { n: 3 }, expect: 'absent' }])).toEqual([
          true,
        ]);
        expect(await store.getMany(['old', 'kept'])).toEqual([undefined, { n: 1 }]);
        await expect(updateManyHeld(['x', 'x'], () => undefined)).rejects.toMatchObject({
          code: 'STORE_BAD_INPUT',
        });
      });

      it('counts every increment of writers on two connections that each write only over what they read', async () => {
        const namespace = uniqueNamespace(tag);
        const first = await fresh(namespace);
        // A store no other process shares is one store: two of them would be two maps.
        const second = first.sharedAcrossProcesses ? await fresh(namespace) : first;
        let revs = 0;
        let lost = 0;
        const increment = async (store: StateStore) => {
          let seen = await store.get<{ n: number; rev: string }>('counter');
          for (;;) {
            const rev = `w${revs++}`;
            const [answer] = await store.setManyIfUnchanged([
              {
                key: 'counter',
                value: { n: (seen?.n ?? 0) + 1, rev },
                expect: seen ? { rev: seen.rev } : 'absent',
              },
            ]);
            if (answer === true) return;
            lost++;
            seen = answer!.value as typeof seen;
          }
        };
        await Promise.all(Array.from({ length: 40 }, (_, i) => increment(i % 2 === 0 ? first : second)));
        expect(await first.get('counter')).toMatchObject({ n: 40 });
        // The writers did meet: some lost a round and merged what they found.
        expect(lost).toBeGreaterThan(0);
      });

      it('refuses repeated keys and unusable expectations, naming them, and writes nothing then', async () => {
        const store = await fresh();
        await expect(
          store.setManyIfUnchanged([
            { key: 'k', value: 1 },
            { key: 'k', value: 2 },
          ]),
        ).rejects.toThrow(/entries\[1\]\.key repeats an earlier entry's key/);
        await expect(
          store.setManyIfUnchanged([{ key: 'k', value: 1, expect: { rev: 'a"b' } }]),
        ).rejects.toThrow(/entries\[0\]\.expect must be 'absent' or \{ rev \}/);
        await expect(
          store.setManyIfUnchanged([{ key: 'k', value: 1, expect: 'gone' as unknown as 'absent' }]),
        ).rejects.toThrow(/entries\[0\]\.expect must be/);
        expect(await store.get('k')).toBeUndefined();
      });
    });

    describe('expiry', () => {
      // One wait for every expiry check keeps the suite quick on every backend.
      it('expires values and claims after their TTL and keeps those without one', async () => {
        const store = await fresh();
        await store.set('short', 'gone soon', SHORT_TTL);
        await store.set('forever', 'stays');
        await store.setMany([
          { key: 'batch-short', value: 1, ttlMs: SHORT_TTL },
          { key: 'batch-long', value: 2, ttlMs: 60_000 },
          { key: 'batch-forever', value: 3 },
        ]);
        expect(await store.get('short')).toBe('gone soon');
        expect(await store.get('batch-short')).toBe(1);

        expect(await store.claim('alert:1', SHORT_TTL)).toBe(true);
        expect(await store.claim('alert:1', SHORT_TTL)).toBe(false);
        expect(await store.claim('lock')).toBe(true);
        expect(await store.claimMany(['e1', 'e2'], SHORT_TTL)).toEqual([true, true]);
        expect(await store.claimMany(['p1'])).toEqual([true]);

        await sleep(PAST_EXPIRY);

        expect(await store.get('short')).toBeUndefined();
        expect(await store.get('forever')).toBe('stays');
        expect(await store.getMany(['batch-short', 'batch-long', 'batch-forever', 'short'])).toEqual([
          undefined,
          2,
          3,
          undefined,
        ]);
        // An expired key is free for a new value.
        await store.set('short', 'again');
        expect(await store.get('short')).toBe('again');

        // An expired claim can be won again, once; a claim without TTL is held until released.
        expect(await store.claim('alert:1', 60_000)).toBe(true);
        expect(await store.claim('alert:1', 60_000)).toBe(false);
        expect(await store.claim('lock', SHORT_TTL)).toBe(false);
        expect(await store.claimMany(['e1', 'p1', 'e2', 'e1'], 60_000)).toEqual([true, false, true, false]);
        await store.releaseClaim('lock');
        await store.releaseClaim('p1');
        expect(await store.claimMany(['lock', 'p1'], 60_000)).toEqual([true, true]);
      });
    });

    describe('namespaces', () => {
      it('isolates values, claims and sets of different namespaces on one backend', async () => {
        const one = await fresh();
        const two = await fresh();
        await one.set('k', 'one');
        await two.set('k', 'two');
        expect(await one.get('k')).toBe('one');
        expect(await two.get('k')).toBe('two');
        expect(await two.getMany(['k'])).toEqual(['two']);

        expect(await one.claim('c', 60_000)).toBe(true);
        expect(await two.claim('c', 60_000)).toBe(true);
        expect(await one.claimMany(['c', 'd'], 60_000)).toEqual([false, true]);
        expect(await two.claimMany(['c', 'd'], 60_000)).toEqual([false, true]);

        await one.addMembers('s', ['a']);
        await two.addMembers('s', ['b']);
        expect(await one.members('s')).toEqual(['a']);
        expect(await two.members('s')).toEqual(['b']);

        expect(await one.delete('k')).toBe(true);
        expect(await two.get('k')).toBe('two');
      });
    });

    describe('claims', () => {
      it('gives a key to the first claimer only and again after it was released', async () => {
        const store = await fresh();
        expect(await store.claim('alert:1', 60_000)).toBe(true);
        expect(await store.claim('alert:1', 60_000)).toBe(false);
        expect(await store.claim('alert:2', 60_000)).toBe(true);
        await store.releaseClaim('alert:1');
        expect(await store.claim('alert:1', 60_000)).toBe(true);
        expect(await store.claim('alert:1')).toBe(false);
        // Releasing what nobody holds is harmless.
        await store.releaseClaim('never-claimed');
        expect(await store.claim('never-claimed')).toBe(true);
      });

      it('claimMany wins each free key once, repeats and held keys lose', async () => {
        const store = await fresh();
        expect(await store.claim('held', 60_000)).toBe(true);
        expect(await store.claimMany(['a', 'b', 'a', 'held', 'c', 'b'], 60_000)).toEqual([
          true,
          true,
          false,
          false,
          true,
          false,
        ]);
        expect(await store.claimMany(['a', 'b', 'c', 'd'], 60_000)).toEqual([false, false, false, true]);
        expect(await store.claimMany([], 60_000)).toEqual([]);
        await store.releaseClaim('b');
        expect(await store.claim('b', 60_000)).toBe(true);
      });

      it('lets exactly one of 50 concurrent claims of one key win', async () => {
        const store = await fresh();
        const results = await Promise.all(Array.from({ length: 50 }, () => store.claim('contended', 60_000)));
        expect(results.filter(Boolean)).toHaveLength(1);
      });

      it('claims keys in groups once each, releases them, and lets a group expire', async () => {
        const store = await fresh();
        const one = (group: string, keys: string[], ttl = 60_000) =>
          store.claimInGroups([{ group, keys }], ttl).then((won) => won[0]);
        expect(await one('g1', ['a', 'b', 'a'])).toEqual([true, true, false]);
        expect(
          await store.claimInGroups(
            [
              { group: 'g1', keys: ['b', 'c'] },
              { group: 'g2', keys: ['a'] },
              { group: 'g3', keys: [] },
            ],
            60_000,
          ),
        ).toEqual([[false, true], [true], []]);
        await store.releaseInGroup('g1', 'a');
        await store.releaseInGroup('g1', 'never-claimed');
        expect(await one('g1', ['a', 'b'])).toEqual([true, false]);
        expect(await store.claimInGroups([], 60_000)).toEqual([]);

        expect(await one('short', ['x', 'y'], SHORT_TTL)).toEqual([true, true]);
        // A claim is held at least its own TTL, whatever shorter ones come after it in its group.
        expect(await one('mixed', ['long'])).toEqual([true]);
        expect(await one('mixed', ['brief'], SHORT_TTL)).toEqual([true]);
        await sleep(PAST_EXPIRY);
        expect(await one('short', ['x', 'y'])).toEqual([true, true]);
        expect(await one('short', ['x'])).toEqual([false]);
        expect(await one('mixed', ['long'])).toEqual([false]);
      });

      it('refuses grouped claims without a TTL or with a group name holding ":"', async () => {
        const store = await fresh();
        await expect(
          store.claimInGroups([{ group: 'g', keys: ['z'] }], undefined as unknown as number),
        ).rejects.toThrow(/needs a TTL/);
        await expect(store.claimInGroups([{ group: 'a:b', keys: ['z'] }], 60_000)).rejects.toThrow(
          /groups\[0\]\.group must be 1-128 letters/,
        );
        await expect(store.releaseInGroup('a:b', 'z')).rejects.toThrow(/group must be 1-128 letters/);
      });

      it('lets each grouped key be won exactly once by concurrent overlapping calls', async () => {
        const store = await fresh();
        const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
        const orders = Array.from({ length: 8 }, () => ({
          a: shuffled(keys),
          b: shuffled(keys.slice(0, 10)),
        }));
        const runs = await Promise.all(
          orders.map((order) =>
            store.claimInGroups(
              [
                { group: 'race-a', keys: order.a },
                { group: 'race-b', keys: order.b },
              ],
              60_000,
            ),
          ),
        );
        const wins = new Map<string, number>();
        const count = (key: string) => wins.set(key, (wins.get(key) ?? 0) + 1);
        runs.forEach(([a, b], r) => {
          orders[r]!.a.forEach((key, i) => {
            if (a![i]) count(`a:${key}`);
          });
          orders[r]!.b.forEach((key, i) => {
            if (b![i]) count(`b:${key}`);
          });
        });
        expect([...wins.values()].every((n) => n === 1)).toBe(true);
        expect(wins.size).toBe(110);
      });

      it('lets each key be won exactly once by concurrent overlapping claimMany calls', async () => {
        const store = await fresh();
        const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
        const calls = Array.from({ length: 10 }, () => {
          const order = shuffled(keys);
          return store.claimMany(order, 60_000).then((won) => order.filter((_, i) => won[i]));
        });
        const winners = (await Promise.all(calls)).flat();
        expect(sorted(winners)).toEqual(sorted(keys));
      });
    });

    describe('member sets', () => {
      it('adds, lists (sorted, without repeats) and removes members', async () => {
        const store = await fresh();
        await store.addMembers('ident:app', ['10.0.0.2', '10.0.0.1', '10.0.0.2']);
        await store.addMembers('ident:app', ['2001:db8::1']);
        await store.addMembers('ident:other', ['192.0.2.9']);
        await store.addMembers('ident:app', []);
        expect(await store.members('ident:app')).toEqual(['10.0.0.1', '10.0.0.2', '2001:db8::1']);

        await store.removeMembers('ident:app', ['10.0.0.2', 'not-a-member']);
        await store.removeMembers('ident:app', []);
        expect(await store.members('ident:app')).toEqual(['10.0.0.1', '2001:db8::1']);
        expect(await store.members('ident:other')).toEqual(['192.0.2.9']);

        await store.removeMembers('ident:app', ['10.0.0.1', '2001:db8::1']);
        expect(await store.members('ident:app')).toEqual([]);
        expect(await store.members('never-used')).toEqual([]);
        await store.addMembers('ident:app', ['10.0.0.3']);
        expect(await store.members('ident:app')).toEqual(['10.0.0.3']);
      });

      it('counts the members whose value is live, drops the others, and checks a large set on a sample', async () => {
        const store = await fresh();
        await store.setMany([
          { key: 'pair:a:1', value: 1 },
          { key: 'pair:a:2', value: 2, ttlMs: 60_000 },
          { key: 'pair:a:3', value: 3, ttlMs: SHORT_TTL },
          { key: 'pair:b:1', value: 4 },
        ]);
        await store.addToSets([
          ['ident:a', '1'],
          ['ident:a', '2'],
          ['ident:a', '3'],
          ['ident:a', 'never-stored'],
          ['ident:b', '1'],
          ['ident:big', 'v'],
          ['ident:big', 'w'],
          ['ident:big', 'x'],
          ['ident:big', 'y'],
          ['ident:big', 'z'],
          ...['1', '2', '3', '4', '5'].map((m) => ['ident:live', m] as const),
        ]);
        await store.setMany(['1', '2', '3', '4', '5'].map((m) => ({ key: `pair:live:${m}`, value: m })));
        // A claim or a set of the same name is not a value.
        await store.claim('pair:a:never-stored', 60_000);
        await sleep(PAST_EXPIRY);
        const queries = [
          { set: 'ident:a', valuePrefix: 'pair:a:' },
          { set: 'ident:none', valuePrefix: 'pair:none:' },
          { set: 'ident:b', valuePrefix: 'pair:b:' },
          { set: 'ident:big', valuePrefix: 'pair:big:' },
          { set: 'ident:live', valuePrefix: 'pair:live:' },
        ];
        // Over the limit (4), a sample of 4 is checked: every member of `big` is gone (its sample
        // says so, and the rest is estimated from it), every member of `live` is there.
        const counts = (list: Array<{ count: number; sampled: boolean }>) => list.map((c) => c.count);
        const first = await store.countLiveMembers(queries, 4);
        expect(counts(first)).toEqual([2, 0, 1, 0, 5]);
        expect(first.map((c) => c.sampled)).toEqual([false, false, false, true, true]);
        expect(await store.members('ident:a')).toEqual(['1', '2']);
        // The gone members of the sample left the set; the next call checks what is left.
        expect(await store.members('ident:big')).toHaveLength(1);
        expect(await store.countLiveMembers(queries.slice(3), 4)).toEqual([
          { count: 0, sampled: false },
          { count: 5, sampled: true },
        ]);
        expect(await store.members('ident:big')).toEqual([]);
        expect(await store.members('ident:live')).toHaveLength(5);
        expect(await store.countLiveMembers([], 4)).toEqual([]);
        await expect(store.countLiveMembers([{ set: '', valuePrefix: 'p' }], 2)).rejects.toThrow(
          /queries\[0\]\.set must be a non-empty string/,
        );
      });

      it('removes only the members whose value is gone, as it removes them', async () => {
        const store = await fresh();
        await store.addMembers('ident:g', ['live', 'never', 'expired', 'forever']);
        await store.set('pair:g:live', 1, 60_000);
        await store.set('pair:g:expired', 1, 50);
        await store.set('pair:g:forever', 1);
        // A value of another prefix, a claim and a set of the member's name are not its value.
        await store.set('pair:other:never', 1);
        await store.claim('pair:g:never', 60_000);
        await sleep(PAST_EXPIRY);
        // A reader found all four without a value; by now two have one.
        await store.removeGoneMembers('ident:g', 'pair:g:', ['live', 'never', 'expired', 'forever']);
        const left = await store.members('ident:g');
        // An expired value may still be held until it is swept (PostgreSQL): its member may stay.
        expect(left.filter((m) => m !== 'expired')).toEqual(['forever', 'live']);
        if (store.kind !== 'postgres') expect(left).toEqual(['forever', 'live']);
        // Members not named are left alone, gone or not; naming none is nothing to do.
        await store.addMembers('ident:g', ['unnamed']);
        await store.removeGoneMembers('ident:g', 'pair:g:', []);
        await store.removeGoneMembers('ident:g', 'pair:g:', ['live']);
        expect(await store.members('ident:g')).toContain('unnamed');
        await expect(store.removeGoneMembers('ident:g', '', ['live'])).rejects.toThrow(
          /valuePrefix must be a non-empty string/,
        );
      });

      it('adds to many sets at once', async () => {
        const store = await fresh();
        await store.addMembers('ident:a', ['10.0.0.9']);
        await store.addToSets([
          ['ident:a', '10.0.0.1'],
          ['ident:b', '10.0.0.2'],
          ['ident:a', '10.0.0.1'],
          ['ident:c', '2001:db8::1'],
        ]);
        await store.addToSets([]);
        expect(await store.members('ident:a')).toEqual(['10.0.0.1', '10.0.0.9']);
        expect(await store.members('ident:b')).toEqual(['10.0.0.2']);
        expect(await store.members('ident:c')).toEqual(['2001:db8::1']);
        await expect(store.addToSets([['', 'x']])).rejects.toThrow(
          /entries\[0\] set must be a non-empty string/,
        );
      });

      it('stores every key of the longest identity that ingest accepts, with the longest IP', async () => {
        const store = await fresh();
        const appId = `svc@${'x'.repeat(MAX_APP_ID_LENGTH - 4)}`;
        const ip = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
        const keys = [pairKey(appId, ip), pairInfoKey(appId, ip), allowKey(appId, ip)];
        await store.setMany(keys.map((key) => ({ key, value: { ip } })));
        expect(await store.getMany(keys)).toEqual(keys.map(() => ({ ip })));
        await store.addToSets([[identitySet(appId), ip]]);
        expect(await store.members(identitySet(appId))).toEqual([ip]);
      });

      it('handles a set of a thousand members', async () => {
        const store = await fresh();
        const many = Array.from({ length: 1000 }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
        await store.addMembers('big', many);
        expect(await store.members('big')).toEqual(sorted(many));
      });
    });

    describe('input checks', () => {
      it('rejects unusable TTLs, keys and member lists with a message naming the problem', async () => {
        const store = await fresh();
        await expect(store.set('k', 1, 0)).rejects.toThrow(/ttlMs must be a positive number.*got 0/);
        await expect(store.claim('k', -5)).rejects.toThrow(/ttlMs must be a positive number.*got -5/);
        await expect(store.claimMany(['k'], Number.NaN)).rejects.toThrow(/got NaN/);
        await expect(store.setMany([{ key: 'k', value: 1, ttlMs: Infinity }])).rejects.toThrow(
          /got Infinity/,
        );
        await expect(store.get('')).rejects.toThrow(/key must be a non-empty string, got an empty string/);
        await expect(store.getMany(['ok', 7 as unknown as string])).rejects.toThrow(
          /keys\[1\] must be a non-empty string, got number/,
        );
        await expect(store.setMany([{ key: undefined as unknown as string, value: 1 }])).rejects.toThrow(
          /entries\[0\]\.key must be a non-empty string/,
        );
        await expect(store.addMembers('s', 'abc' as unknown as string[])).rejects.toThrow(
          /members must be an array/,
        );
        await expect(store.members('')).rejects.toThrow(/set must be a non-empty string/);
        const circular: Record<string, unknown> = { a: 1 };
        circular.self = circular;
        await expect(store.set('k', circular)).rejects.toThrow(
          /The value is not JSON-serialisable: .*circular/i,
        );
        await expect(store.setMany([{ key: 'k', value: { n: 10n } }])).rejects.toThrow(
          /The value is not JSON-serialisable: .*BigInt/,
        );
        // Nothing of the rejected calls was written.
        expect(await store.get('k')).toBeUndefined();
        expect(await store.claim('k', 60_000)).toBe(true);
      });

      it('accepts a fractional TTL, rounding it up to whole milliseconds', async () => {
        const store = await fresh();
        await store.set('frac', 'v', 60_000.4);
        expect(await store.get('frac')).toBe('v');
        expect(await store.claim('frac', 0.5)).toBe(true);
      });
    });

    describe('lifecycle', () => {
      it('answers ping while open and refuses every call once closed', async () => {
        const store = await fresh();
        await expect(store.ping()).resolves.toBeUndefined();
        await store.close();
        await store.close();
        await expect(store.ping()).rejects.toMatchObject({ code: 'STORE_CLOSED' });
        await expect(store.get('k')).rejects.toThrow(/state store is closed/);
        await expect(store.claim('k')).rejects.toThrow(/state store is closed/);
        await expect(store.members('s')).rejects.toThrow(/state store is closed/);
      });
    });
  });
}

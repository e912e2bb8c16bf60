/**
 * The audit's index lists record ids; records expire after 400 days, and their ids must go too, or
 * the index (sets have no expiry) would grow for ever and every export would read dead ids. Each
 * new record drops a sample of the dead ones, whether or not anyone exports.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { recordAudit } from '../../src/core/audit.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'arc-audit-index-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it.each(['memory://', `sqlite://${path.join(dir, 'audit.db')}`])(
  'a new record drops the index entries of records gone (%s)',
  async (url) => {
    const store = await openStateStore(url);
    try {
      const first = await recordAudit(store, { actor: 'U1', action: 'revoke', alertId: 'al1', result: 'ok' });
      const second = await recordAudit(store, { actor: 'U1', action: 'undo', alertId: 'al1', result: 'ok' });
      // The first record expires (its value goes; its index entries stay until noticed).
      await store.delete(`audit:${first.id}`);
      expect(await store.members('audit:all')).toContain(first.id);
      const third = await recordAudit(store, {
        actor: 'U2',
        action: 'mark-benign',
        alertId: 'al1',
        result: 'ok',
      });
      expect((await store.members('audit:all')).sort()).toEqual([second.id, third.id].sort());
      expect((await store.members('audit:alert:al1')).sort()).toEqual([second.id, third.id].sort());
    } finally {
      await store.close();
    }
  },
);

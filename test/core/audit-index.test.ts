/**
 * The audit's index lists record ids; records expire after 400 days, and their ids must go too, or
 * the index (sets have no expiry) would grow for ever and every export would read dead ids. An
 * export drops the entries of the records it finds gone, and leaves the others.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { exportAudit, recordAudit } from '../../src/core/audit.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'arc-audit-index-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it.each(['memory://', `sqlite://${path.join(dir, 'audit.db')}`])(
  'an export drops the index entries of records gone (%s)',
  async (url) => {
    const store = await openStateStore(url);
    try {
      const first = await recordAudit(store, { actor: 'U1', action: 'revoke', alertId: 'al1', result: 'ok' });
      const second = await recordAudit(store, { actor: 'U1', action: 'undo', alertId: 'al1', result: 'ok' });
      // The first record expires (its value goes; its index entries stay until noticed).
      await store.delete(`audit:${first.id}`);
      const written: string[] = [];
      expect(await exportAudit(store, { alertId: 'al1' }, (e) => void written.push(e.id))).toBe(1);
      expect(written).toEqual([second.id]);
      expect(await store.members('audit:alert:al1')).toEqual([second.id]);
      expect((await store.members('audit:all')).sort()).toEqual([first.id, second.id].sort());
      await exportAudit(store, {}, () => undefined);
      expect(await store.members('audit:all')).toEqual([second.id]);
    } finally {
      await store.close();
    }
  },
);

/** Audit records: stored, listed, and said in the log and a counter, also when the store refuses them. */
import { expect, it } from 'vitest';
import { type AuditObserver, listAudit, recordAudit } from '../../src/core/audit.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';

function observer() {
  const lines: Array<{ level: string; fields: Record<string, unknown>; msg: string }> = [];
  const counted: Array<{ action: string; result: string }> = [];
  const o: AuditObserver = {
    logger: {
      info: (fields: object, msg?: string) =>
        void lines.push({ level: 'info', fields: fields as never, msg: msg ?? '' }),
      warn: (fields: object, msg?: string) =>
        void lines.push({ level: 'warn', fields: fields as never, msg: msg ?? '' }),
    } as AuditObserver['logger'],
    counter: { inc: (labels) => void counted.push(labels) },
  };
  return { o, lines, counted };
}

const entry = {
  actor: 'U0RESP1',
  action: 'revoke',
  alertId: 'a1',
  appId: '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20',
  ip: '203.0.113.7',
};

it('stores the record, then says it in one log line (refusals and failures at warn) and counts it', async () => {
  const store = await openStateStore('memory://');
  try {
    const { o, lines, counted } = observer();
    // Listed by time: two records of one millisecond would come in either order.
    const at = Date.now();
    await recordAudit(store, { ...entry, at, result: 'ok', detail: { mode: 'live', steps: [] } }, o);
    await recordAudit(
      store,
      { ...entry, at: at + 1, actor: 'U0OTHER', result: 'refused', detail: 'not in SLACK_RESPONDERS' },
      o,
    );
    expect((await listAudit(store, 'a1')).map((e) => e.result)).toEqual(['ok', 'refused']);
    expect(lines).toEqual([
      {
        level: 'info',
        fields: expect.objectContaining({ ...entry, result: 'ok' }),
        msg: 'revoke by U0RESP1: ok',
      },
      {
        level: 'warn',
        fields: expect.objectContaining({
          actor: 'U0OTHER',
          result: 'refused',
          why: 'not in SLACK_RESPONDERS',
        }),
        msg: 'revoke by U0OTHER: refused',
      },
    ]);
    // A run that went well has no reason to give: its mode is no `why`.
    expect(lines[0]?.fields).not.toHaveProperty('why');
    expect(counted).toEqual([
      { action: 'revoke', result: 'ok' },
      { action: 'revoke', result: 'refused' },
    ]);
  } finally {
    await store.close();
  }
});

it('says what was done even when the store refuses its record, and fails', async () => {
  const store = await openStateStore('memory://');
  await store.close();
  const { o, lines, counted } = observer();
  await expect(recordAudit(store, { ...entry, result: 'ok' }, o)).rejects.toThrow(/closed/);
  expect(lines).toEqual([
    {
      level: 'warn',
      fields: expect.objectContaining({ ...entry, result: 'ok', err: expect.stringMatching(/closed/) }),
      msg: 'revoke by U0RESP1: ok (its audit record could not be stored)',
    },
  ]);
  expect(counted).toEqual([]);
});

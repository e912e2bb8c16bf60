/**
 * An alert whose own Revoke was undone, marked afterwards through another alert's live Revoke (the
 * marking leaves out only alerts whose Revoke is in force): its message text (notifications,
 * search, the plain and text-only forms) says "Identity revoked", as its blocks do.
 */
import { expect, it } from 'vitest';
import { type AlertView, buildAlertMessage } from '../../src/slack/blocks/alert.ts';
import { DETECTED_AT, sampleAlert } from './sample-alert.ts';

it('the text of an undone alert marked revoked elsewhere says it is revoked, as its blocks do', () => {
  const v: AlertView = {
    alert: sampleAlert(),
    channel: 'C123',
    ts: '1700000000.000001',
    confirmText: 'x',
    mode: 'live',
    revoke: { status: 'done', mode: 'live', by: 'UALICE', at: DETECTED_AT, finishedAt: DETECTED_AT + 1 },
    undo: { status: 'done', mode: 'live', by: 'UBOB', at: DETECTED_AT + 2, finishedAt: DETECTED_AT + 3 },
    revokedElsewhere: {
      alertId: 'a1',
      channel: 'C123',
      ts: '1700000000.000002',
      by: 'UCAROL',
      at: DETECTED_AT + 9,
    },
  } as AlertView;
  const m = buildAlertMessage(v);
  expect(JSON.stringify(m.blocks)).toContain('*Identity revoked* through');
  expect(m.text).not.toContain('(revoke undone)');
  expect(m.text).toContain('(revoked through another alert)');
});

/**
 * The remediator's own audit records (`azure.revoke`, `azure.remove-broad-roles`, `azure.undo`) are
 * said in the log as they are stored, like every other audit record: a log pipeline keeps a copy.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { CLUSTER_ID, closeOpened, fakeWithEvidenceAt, remediatorOn, spDetection } from './helpers.ts';

afterEach(closeOpened);

it('logs each azure.* audit record as it is stored, with its id, who, what and the result', async () => {
  const fake = await fakeWithEvidenceAt(CLUSTER_ID);
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(String(chunk)));
        cb();
      },
    }),
  );
  const { store, remediator } = await remediatorOn(fake, 'dry-run', { logger });
  const detection = spDetection(CLUSTER_ID);
  const plan = await remediator.plan(detection);
  await remediator.execute(plan, undefined, { actor: 'UALICE', alertId: 'a1', ip: detection.sourceIp });

  const [record] = await listAudit(store, 'a1');
  expect(record).toMatchObject({ action: 'azure.revoke', result: 'dry-run' });
  expect(lines.filter((l) => l.audit !== undefined)).toEqual([
    expect.objectContaining({
      audit: record!.id,
      actor: 'UALICE',
      action: 'azure.revoke',
      alertId: 'a1',
      appId: detection.appId,
      ip: detection.sourceIp,
      result: 'dry-run',
      msg: 'azure.revoke by UALICE: dry-run',
    }),
  ]);
});

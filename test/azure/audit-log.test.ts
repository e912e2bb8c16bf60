/**
 * The remediator's own audit records (`azure.revoke`, `azure.remove-broad-roles`, `azure.undo`) are
 * said in the log as they are stored, like every other audit record: a log pipeline keeps a copy.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import type { FakeAzure } from '../support/fake-azure.ts';
import { CLUSTER_ID, closeOpened, fakeWithEvidenceAt, remediatorOn, spDetection } from './helpers.ts';

afterEach(closeOpened);

/** The real remediator on `fake`, logging into `lines` (one parsed object per line). */
async function logged(fake: FakeAzure, mode: 'dry-run' | 'live') {
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
  const { store, remediator } = await remediatorOn(fake, mode, { logger });
  const auditLines = () => lines.filter((l) => l.audit !== undefined);
  return { store, remediator, lines, auditLines };
}

it('logs each azure.* audit record as it is stored, with its id, who, what and the result', async () => {
  const fake = await fakeWithEvidenceAt(CLUSTER_ID);
  const { store, remediator, auditLines } = await logged(fake, 'dry-run');
  const detection = spDetection(CLUSTER_ID);
  const plan = await remediator.plan(detection);
  await remediator.execute(plan, undefined, { actor: 'UALICE', alertId: 'a1', ip: detection.sourceIp });

  const [record] = await listAudit(store, 'a1');
  expect(record).toMatchObject({ action: 'azure.revoke', result: 'dry-run' });
  expect(auditLines()).toEqual([
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

it('a failed run says why: its first failed step with the fix, and how many more failed; never its mode', async () => {
  const fake = await fakeWithEvidenceAt(CLUSTER_ID);
  fake
    .deny('arm', 'DELETE', 'roleAssignments', 'Microsoft.Authorization/roleAssignments/delete')
    .deny('graph', 'PATCH', 'servicePrincipals');
  const { remediator, lines, auditLines } = await logged(fake, 'live');
  const plan = await remediator.plan(spDetection(CLUSTER_ID));
  const result = await remediator.execute(plan, undefined, { actor: 'UALICE', alertId: 'a2' });
  expect(result.steps.map((s) => s.status)).toEqual(['failed', 'failed']);

  const [line] = auditLines();
  expect(line).toMatchObject({ action: 'azure.revoke', result: 'failed', level: 40 });
  const why = String(line!.why);
  expect(why).toMatch(/^remove-assignment: 403 AuthorizationFailed: /);
  expect(why).toContain(
    "; fix: grant arc-responder's identity Microsoft.Authorization/roleAssignments/delete",
  );
  expect(why).toMatch(/; 1 more step failed$/);
  expect(why.length).toBeLessThanOrEqual(300);
  expect(JSON.stringify(lines)).not.toContain(fake.clientSecret);
});

it('a failed run with no step says that the plan has none and why; a run that succeeded has no why', async () => {
  const fake = await fakeWithEvidenceAt(CLUSTER_ID);
  fake.servicePrincipals.clear();
  const { remediator, auditLines } = await logged(fake, 'live');
  const none = await remediator.plan(spDetection(CLUSTER_ID));
  await remediator.execute(none, undefined, { actor: 'UALICE', alertId: 'a3' });
  expect(auditLines()[0]).toMatchObject({
    result: 'failed',
    why: expect.stringMatching(
      /^the plan has no step: application .* has no service principal in this tenant/,
    ),
  });

  const ok = await fakeWithEvidenceAt(CLUSTER_ID);
  const run = await logged(ok, 'live');
  const done = await run.remediator.execute(await run.remediator.plan(spDetection(CLUSTER_ID)));
  expect(done.ok).toBe(true);
  expect(run.auditLines()).toEqual([expect.objectContaining({ action: 'azure.revoke', result: 'ok' })]);
  expect(run.auditLines()[0]).not.toHaveProperty('why');
});

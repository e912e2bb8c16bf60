import { afterEach, describe, expect, it } from 'vitest';
import { listRemediationAttempts } from '../../src/azure/index.ts';
import { TAMPERING } from '../../src/core/remediation-plan.ts';
import {
  A,
  APP_ID,
  CLUSTER_ID,
  closeOpened,
  fakeWithEvidenceAt,
  RG_SCOPE,
  ROLE,
  remediatorOn,
  SP_ID,
  spDetection,
} from './helpers.ts';

afterEach(closeOpened);

/** `APP_ID` as an operator may write it in AZURE_CLIENT_ID: upper case, without dashes. */
const APP_ID_AS_CONFIGURED = APP_ID.replaceAll('-', '').toUpperCase();

/**
 * The caller is the application arc-responder runs as, named by AZURE_CLIENT_ID (the fake's tokens
 * name another client, so only the configuration tells). Besides its Arc role it holds Owner on the
 * resource group, which a "Remove broad roles too" would otherwise offer to take.
 */
async function configured(mode: 'dry-run' | 'live') {
  const fake = await fakeWithEvidenceAt(CLUSTER_ID);
  fake.assign({
    name: A.owner,
    scope: RG_SCOPE,
    roleDefinitionId: ROLE.owner,
    principalId: SP_ID,
    principalType: 'ServicePrincipal',
  });
  const { store, remediator } = await remediatorOn(fake, mode, {}, { AZURE_CLIENT_ID: APP_ID_AS_CONFIGURED });
  return { fake, store, remediator };
}

describe("Revoke of arc-responder's own identity", () => {
  it('named by AZURE_CLIENT_ID: plans nothing against it and raises the alarm, in dry-run', async () => {
    const { fake, remediator } = await configured('dry-run');
    const plan = await remediator.plan(spDetection());
    expect(plan.steps).toEqual([]);
    expect(plan.stillHasAccessThrough).toEqual([]);
    expect(remediator.planBroadRemoval(plan).steps).toEqual([]);
    const alarm = plan.warnings[0] ?? '';
    expect(alarm.startsWith(TAMPERING)).toBe(true);
    expect(alarm).toContain(`application ${APP_ID} is arc-responder's own identity (AZURE_CLIENT_ID)`);
    expect(alarm).toMatch(/Revoke leaves it alone/);
    expect(alarm).toMatch(/rotate its credential and remove its access by hand/);
    const result = await remediator.execute(plan);
    expect(result.steps).toEqual([]);
    expect(fake.mutations()).toEqual([]);
  });

  it('named by AZURE_CLIENT_ID: a live Revoke changes nothing in Azure, and its audit says why', async () => {
    const { fake, store, remediator } = await configured('live');
    const plan = await remediator.plan(spDetection());
    const result = await remediator.execute(plan, undefined, { actor: 'U0RESPOND', alertId: 'alert-own' });
    expect(result.ok).toBe(false);
    expect(fake.mutations()).toEqual([]);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(true);
    expect(fake.assignmentsByName.has(A.evidence)).toBe(true);
    expect(fake.assignmentsByName.has(A.owner)).toBe(true);
    const attempts = await listRemediationAttempts(store, 'alert-own');
    expect(attempts.map((a) => a.detail)).toEqual([
      expect.objectContaining({
        plan: expect.objectContaining({
          warnings: [expect.stringContaining("arc-responder's own identity (AZURE_CLIENT_ID)")],
        }),
      }),
    ]);
  });

  it('known only from its own access token (a managed identity): a live Revoke leaves it enabled', async () => {
    const fake = await fakeWithEvidenceAt(CLUSTER_ID);
    // The service's own principal, as the fake's tokens name it (appid and oid), with an Arc role.
    fake
      .servicePrincipal({ id: fake.clientObjectId, appId: fake.clientId, displayName: 'arc-responder' })
      .assign({
        name: A.rg,
        scope: CLUSTER_ID,
        roleDefinitionId: ROLE.clusterUser,
        principalId: fake.clientObjectId,
        principalType: 'ServicePrincipal',
      });
    const { remediator } = await remediatorOn(fake, 'live');
    const d = spDetection(CLUSTER_ID, {
      appId: fake.clientId.replaceAll('-', '').toUpperCase(),
      principalId: fake.clientObjectId,
    });
    d.evidence = { ...d.evidence, roleAssignmentId: A.rg, principalId: fake.clientObjectId };
    const plan = await remediator.plan(d);
    expect(plan.steps).toEqual([]);
    expect(plan.warnings[0]).toContain(
      `application ${fake.clientId} is arc-responder's own identity (named by its own access tokens)`,
    );
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(false);
    expect(fake.mutations()).toEqual([]);
    expect(fake.servicePrincipals.get(fake.clientObjectId)?.accountEnabled).toBe(true);
    expect(fake.assignmentsByName.has(A.rg)).toBe(true);
  });

  it("a detection claiming the service's own object id for another application acts on nobody", async () => {
    const fake = await fakeWithEvidenceAt(CLUSTER_ID);
    const { remediator } = await remediatorOn(fake, 'live');
    const plan = await remediator.plan(spDetection(CLUSTER_ID, { principalId: fake.clientObjectId }));
    expect(plan.steps).toEqual([]);
    expect(plan.warnings[0]).toContain(
      `the principal ${fake.clientObjectId} is arc-responder's own identity (named by its own access tokens)`,
    );
    await remediator.execute(plan);
    expect(fake.mutations()).toEqual([]);
  });
});

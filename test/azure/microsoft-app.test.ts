import { afterEach, describe, expect, it } from 'vitest';
import { createAzureRemediator } from '../../src/azure/index.ts';
import { loadConfig } from '../../src/config.ts';
import {
  A,
  APP_ID,
  CLUSTER_ID,
  closeOpened,
  configFor,
  FAST_RETRY,
  fakeWithEvidenceAt,
  memoryStore,
  quietLogger,
  ROLE,
  remediatorOn,
  SP_ID,
  spDetection,
  stubAzureEnv,
  USER_ID,
} from './helpers.ts';

afterEach(closeOpened);

/** Microsoft Services, the tenant Microsoft's first-party applications are registered in. */
const MICROSOFT_SERVICES = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a';
/** The Azure CLI, a Microsoft client application users sign in through. */
const AZURE_CLI = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';

/**
 * The caller is a Microsoft first-party application (the Custom Locations resource provider, say):
 * Graph has its service principal in the tenant, owned by a Microsoft tenant.
 */
async function setup(mode: 'dry-run' | 'live' = 'live', owner = MICROSOFT_SERVICES) {
  const fake = await fakeWithEvidenceAt(CLUSTER_ID);
  fake.servicePrincipal({
    id: SP_ID,
    appId: APP_ID,
    displayName: 'Custom Locations RP',
    appOwnerOrganizationId: owner,
  });
  const { remediator } = await remediatorOn(fake, mode);
  return { fake, remediator };
}

describe('Revoke of a Microsoft application', () => {
  it('plans no disable step, and says that the application is Microsoft’s', async () => {
    const { fake, remediator } = await setup('dry-run');
    const plan = await remediator.plan(spDetection());
    expect(plan.steps.map((s) => s.kind)).toEqual(['remove-assignment']);
    expect(plan.steps[0]?.target).toContain(A.evidence);
    const said = plan.warnings.join('\n');
    expect(said).toContain(`application ${APP_ID} is a Microsoft application`);
    expect(said).toMatch(/not disabled/);
    expect(said).toMatch(/whole tenant/);
    // What dry-run reports: the assignment only.
    const result = await remediator.execute(plan);
    expect(result.steps.map((s) => s.status)).toEqual(['would-do']);
    expect(fake.mutations()).toEqual([]);
  });

  it('knows Microsoft’s corporate tenant too, whatever the case of its id', async () => {
    const { remediator } = await setup('dry-run', '72F988BF-86F1-41AF-91AB-2D7CD011DB47');
    const plan = await remediator.plan(spDetection());
    expect(plan.steps.map((s) => s.kind)).toEqual(['remove-assignment']);
    expect(plan.warnings.join('\n')).toMatch(/is a Microsoft application/);
  });

  it("in Microsoft's own tenant, disables the tenant's own applications as any other", async () => {
    const corporate = '72f988bf-86f1-41af-91ab-2d7cd011db47';
    const { remediator } = await setup('dry-run', corporate);
    const plan = await remediator.plan(spDetection(CLUSTER_ID, { tenantId: corporate.toUpperCase() }));
    expect(plan.steps.map((s) => s.kind)).toEqual(['remove-assignment', 'disable-service-principal']);
    expect(plan.warnings.join('\n')).not.toMatch(/is a Microsoft application/);
  });

  it('in the tenant the service acts in (AZURE_TENANT_ID), disables its applications though the event names no tenant', async () => {
    const corporate = '72f988bf-86f1-41af-91ab-2d7cd011db47';
    const fake = await fakeWithEvidenceAt(CLUSTER_ID);
    fake.servicePrincipal({
      id: SP_ID,
      appId: APP_ID,
      displayName: 'build agent',
      appOwnerOrganizationId: corporate,
    });
    stubAzureEnv(fake);
    const config = configFor(fake, 'dry-run');
    const remediator = createAzureRemediator(
      {
        ...config,
        azure: {
          ...config.azure,
          tenantId: loadConfig({ AZURE_TENANT_ID: corporate.toUpperCase() }).azure.tenantId!,
        },
      },
      { store: await memoryStore(), logger: quietLogger(), tlsCa: fake.ca, retry: FAST_RETRY },
    );
    try {
      const plan = await remediator.plan(spDetection());
      expect(plan.steps.map((s) => s.kind)).toEqual(['remove-assignment', 'disable-service-principal']);
    } finally {
      await fake.close();
    }
  });

  it('a live Revoke removes its Arc assignment, sends no PATCH to Graph, and Undo puts it back', async () => {
    const { fake, remediator } = await setup();
    const plan = await remediator.plan(spDetection());
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(true);
    expect(fake.calls('graph', 'PATCH')).toEqual([]);
    expect(fake.assignmentsByName.has(A.evidence)).toBe(false);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(true);

    const undone = await remediator.undo(plan, result);
    expect(undone.ok).toBe(true);
    expect(undone.steps.map((s) => [s.stepId.split(':')[0], s.status])).toEqual([
      ['remove-assignment', 'done'],
    ]);
    expect(fake.calls('graph', 'PATCH')).toEqual([]);
    const back = [...fake.assignmentsByName.values()].filter((a) => a.principalId === SP_ID);
    expect(back.map((a) => a.roleDefinitionId)).toEqual([expect.stringContaining(ROLE.clusterUser)]);
  });

  it('still disables a user who signed in through a Microsoft client application', async () => {
    const { fake, remediator } = await setup();
    fake.assignmentsByName.clear();
    fake
      .assign({
        name: A.evidence,
        scope: CLUSTER_ID,
        roleDefinitionId: ROLE.clusterUser,
        principalId: USER_ID,
        principalType: 'User',
      })
      .servicePrincipal({
        id: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
        appId: AZURE_CLI,
        displayName: 'Microsoft Azure CLI',
        appOwnerOrganizationId: MICROSOFT_SERVICES,
      })
      .user({ id: USER_ID, userPrincipalName: 'mallory@contoso.example', displayName: 'Mallory' });
    const d = spDetection(CLUSTER_ID, {
      appId: AZURE_CLI,
      principalId: USER_ID,
      principalType: 'User',
      user: { upn: 'mallory@contoso.example' },
    });
    d.evidence = { ...d.evidence, principalId: USER_ID, principalType: 'User' };
    const plan = await remediator.plan(d);
    expect(plan.steps.map((s) => s.kind)).toEqual([
      'remove-assignment',
      'disable-user',
      'revoke-user-sessions',
    ]);
    expect(plan.warnings.join('\n')).not.toMatch(/Microsoft application/);
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(true);
    expect(fake.users.get(USER_ID)).toMatchObject({ accountEnabled: false, revokedSessions: 1 });
  });
});

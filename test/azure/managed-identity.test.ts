import { afterEach, describe, expect, it } from 'vitest';
import {
  A,
  APP_ID,
  CLUSTER_ID,
  closeOpened,
  fakeWithEvidenceAt,
  remediatorOn,
  SP_ID,
  spDetection,
} from './helpers.ts';

afterEach(closeOpened);

/** The caller is a managed identity: Graph has its service principal, of type ManagedIdentity. */
async function setup(mode: 'dry-run' | 'live' = 'live') {
  const fake = await fakeWithEvidenceAt(CLUSTER_ID);
  fake.servicePrincipal({
    id: SP_ID,
    appId: APP_ID,
    displayName: 'arc-gitops-uami',
    servicePrincipalType: 'ManagedIdentity',
  });
  // Graph does not let a managed identity's service principal be disabled (README, "Microsoft
  // Graph application permissions"); the fake refuses the PATCH as Graph refuses an update it
  // does not allow.
  fake.deny('graph', 'PATCH', `/servicePrincipals/${SP_ID}`);
  const { remediator } = await remediatorOn(fake, mode);
  return { fake, remediator };
}

describe('Revoke of a managed identity', () => {
  it('plans no disable step that Graph cannot carry out, and says what stops the identity instead', async () => {
    const { remediator } = await setup();
    const plan = await remediator.plan(spDetection());
    expect(plan.steps.map((s) => s.kind)).toEqual(['remove-assignment']);
    expect(plan.steps[0]?.target).toContain(A.evidence);
    const said = plan.warnings.join('\n');
    expect(said).toMatch(/managed identity/);
    expect(said).toMatch(/cannot be disabled/);
    expect(said).toMatch(/federated credential/);
    expect(said).toMatch(/until they expire/);
  });

  it('a live Revoke removes its Arc assignment, sends no PATCH to Graph, and ends done', async () => {
    const { fake, remediator } = await setup();
    const plan = await remediator.plan(spDetection());
    const result = await remediator.execute(plan);
    expect(fake.calls('graph', 'PATCH')).toEqual([]);
    expect(result.steps.map((s) => s.status)).toEqual(['done']);
    expect(result.ok).toBe(true);
  });
});

/**
 * The assignment named in a detection's evidence is read from ARM by id before the plan may remove
 * it, and re-read before each DELETE: whoever can post a detection must not be able to make a
 * Revoke delete someone else's role assignment. Real SDK clients against the HTTPS fakes.
 */

import { afterEach, describe, expect, it } from 'vitest';
import type { Detection } from '../../src/core/detection.ts';
import { evidencePlanRemediator } from '../../src/core/evidence-plan.ts';
import { buildRemediationPlan, TAMPERING } from '../../src/core/remediation-plan.ts';
import type { FakeAzure } from '../support/fake-azure.ts';
import { type Overrides, overridden } from '../support/overrides.ts';
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
  SUB_SCOPE,
  spDetection,
  USER_ID,
} from './helpers.ts';

/** The security team's own principal and assignments: what tampered evidence points at. */
const SEC_ID = 'ae5ec7ea-0000-4000-8000-00000000beef';
const TEAM = {
  owner: 'ae5ec7ea-0000-4000-8000-000000000001',
  arc: 'ae5ec7ea-0000-4000-8000-000000000002',
};
const OTHER_SP = '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a';
const GROUP_ID = '99999999-8888-4777-8666-555544443333';

afterEach(closeOpened);

async function setup(mode: 'dry-run' | 'live') {
  const fake = await fakeWithEvidenceAt(CLUSTER_ID);
  const { remediator } = await remediatorOn(fake, mode);
  return { fake, remediator };
}

const idAt = (scope: string, name: string) =>
  `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}`;
const deletes = (fake: FakeAzure) => fake.calls('arm', 'DELETE').map((r) => r.path);
const reads = (fake: FakeAzure, id: string) =>
  fake.calls('arm', 'GET').filter((r) => r.path.toLowerCase() === id.toLowerCase());

/** The SP's detection whose evidence names `name` at `scope`, claiming the Arc Cluster User role. */
function evidenceNaming(scope: string, name: string, evidencePrincipal = SP_ID) {
  const d = spDetection(scope);
  d.evidence = {
    ...d.evidence,
    roleAssignmentScope: scope,
    roleAssignmentId: name.replaceAll('-', ''),
    principalId: evidencePrincipal.replaceAll('-', ''),
  };
  return d;
}

describe('tampered evidence', () => {
  for (const mode of ['dry-run', 'live'] as const) {
    it(`${mode}: evidence naming the security team's Owner assignment deletes nothing of it and warns first`, async () => {
      const { fake, remediator } = await setup(mode);
      fake.assign({
        name: TEAM.owner,
        scope: SUB_SCOPE,
        roleDefinitionId: ROLE.owner,
        principalId: SEC_ID,
        principalType: 'User',
      });
      const teamOwner = idAt(SUB_SCOPE, TEAM.owner);
      const plan = await remediator.plan(evidenceNaming(SUB_SCOPE, TEAM.owner));

      // The SP's own Arc assignment (from ARM's listing) and the SP itself; never the team's Owner.
      expect(plan.steps.map((s) => s.target)).toEqual([idAt(CLUSTER_ID, A.evidence), SP_ID]);
      expect(plan.warnings[0]).toMatch(
        new RegExp(
          `^POSSIBLE TAMPERING: the detection's evidence names a role assignment of a different principal \\(${SEC_ID}, User\\), not of the detected principal ${SP_ID}: not removed`,
        ),
      );
      // The id comes last: what Slack shows of a warning (its first 300 characters) says it all.
      expect(plan.warnings[0]!.endsWith(`: ${teamOwner}`)).toBe(true);
      expect(plan.warnings[0]!.length - teamOwner.length).toBeLessThan(300);
      // Not offered for the separate broad-role removal either.
      expect(JSON.stringify(plan.stillHasAccessThrough)).not.toContain(TEAM.owner);
      expect(remediator.planBroadRemoval(plan).steps).toEqual([]);

      // It was read by id, with the role-assignments API version and no doubled slash.
      const [read] = reads(fake, teamOwner);
      expect(read).toMatchObject({ status: 200, query: { 'api-version': '2022-04-01' } });
      expect(read?.rawPath.startsWith('//')).toBe(false);

      const result = await remediator.execute(plan);
      expect(result.ok).toBe(true);
      if (mode === 'dry-run') {
        expect(fake.mutations()).toEqual([]);
      } else {
        expect(deletes(fake)).toEqual([idAt(CLUSTER_ID, A.evidence)]);
        expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(false);
      }
      expect(fake.assignmentsByName.get(TEAM.owner)?.principalId).toBe(SEC_ID);
    });
  }

  it("evidence naming another principal's Arc Cluster User assignment (a role the plan removes) is not deleted", async () => {
    const { fake, remediator } = await setup('live');
    fake.assign({
      name: TEAM.arc,
      scope: RG_SCOPE,
      roleDefinitionId: ROLE.clusterUser,
      principalId: SEC_ID,
      principalType: 'ServicePrincipal',
    });
    const plan = await remediator.plan(evidenceNaming(RG_SCOPE, TEAM.arc));
    expect(plan.steps.map((s) => s.target)).not.toContain(idAt(RG_SCOPE, TEAM.arc));
    expect(plan.warnings[0]).toMatch(/^POSSIBLE TAMPERING/);
    await remediator.execute(plan);
    expect(deletes(fake)).not.toContain(idAt(RG_SCOPE, TEAM.arc));
    expect(fake.assignmentsByName.has(TEAM.arc)).toBe(true);
  });

  it('a group assignment named in the evidence is left in place with a warning, never offered for removal', async () => {
    const { fake, remediator } = await setup('live');
    fake.assign({
      name: TEAM.owner,
      scope: SUB_SCOPE,
      roleDefinitionId: ROLE.owner,
      principalId: GROUP_ID,
      principalType: 'Group',
    });
    const d = evidenceNaming(SUB_SCOPE, TEAM.owner, GROUP_ID);
    d.evidence.principalType = 'Group';
    const plan = await remediator.plan(d);
    expect(plan.steps.map((s) => s.target)).toEqual([idAt(CLUSTER_ID, A.evidence), SP_ID]);
    expect(plan.stillHasAccessThrough).toMatchObject([
      { kind: 'group', assignmentId: idAt(SUB_SCOPE, TEAM.owner), roleName: 'Owner' },
    ]);
    expect(plan.warnings.join('\n')).toMatch(/made to group 99999999-.*remove the principal from the group/);
    expect(remediator.planBroadRemoval(plan).steps).toEqual([]);
    await remediator.execute(plan);
    expect(fake.assignmentsByName.has(TEAM.owner)).toBe(true);
  });
});

describe('the evidence assignment as ARM has it', () => {
  it('already gone: no step for it, and a line saying so', async () => {
    const { fake, remediator } = await setup('live');
    fake.assignmentsByName.delete(A.evidence);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
    expect(plan.warnings).toEqual([
      `the role assignment named in the evidence is already gone (ARM has no ${idAt(CLUSTER_ID, A.evidence)})`,
    ]);
    expect(reads(fake, idAt(CLUSTER_ID, A.evidence)).map((r) => r.status)).toEqual([404]);
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(true);
    expect(fake.calls('arm', 'DELETE')).toEqual([]);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(false);
  });

  for (const mode of ['dry-run', 'live'] as const) {
    it(`${mode}: a refused read (403) plans no delete of the unchecked assignment and names roleAssignments/read`, async () => {
      const { fake, remediator } = await setup(mode);
      const evidenceId = idAt(CLUSTER_ID, A.evidence);
      // Reading it by id is refused; the listing at the cluster still works (and shows it).
      fake.deny(
        'arm',
        'GET',
        `/roleAssignments/${A.evidence}`,
        'Microsoft.Authorization/roleAssignments/read',
      );
      const plan = await remediator.plan(spDetection(CLUSTER_ID));
      expect(plan.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
      expect(plan.warnings).toHaveLength(1);
      expect(plan.warnings[0]).toMatch(
        /^could not read the role assignment named in the evidence \(403 AuthorizationFailed: .*\): it is not removed, since it could not be checked; grant arc-responder's identity Microsoft\.Authorization\/roleAssignments\/read at /,
      );
      expect(plan.warnings[0]).toContain(evidenceId);
      const result = await remediator.execute(plan);
      expect(result.steps.map((s) => s.stepId)).toEqual([`disable-service-principal:${SP_ID}`]);
      expect(fake.calls('arm', 'DELETE')).toEqual([]);
      expect(fake.assignmentsByName.has(A.evidence)).toBe(true);
    });
  }

  it('an unreachable ARM (5xx after the retries) also plans no delete of the unchecked assignment', async () => {
    const { fake, remediator } = await setup('live');
    fake.fail({
      service: 'arm',
      method: 'GET',
      path: `/roleAssignments/${A.evidence}`,
      status: 503,
      body: { error: { code: 'ServiceUnavailable', message: 'try later' } },
      times: Number.POSITIVE_INFINITY,
    });
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
    expect(plan.warnings[0]).toMatch(/could not read the role assignment named in the evidence \(503/);
  });

  it('is classified by its real role definition, not the role the evidence names', async () => {
    const { fake, remediator } = await setup('live');
    // The evidence says Arc Cluster User; ARM says Reader, which grants no Arc credential.
    fake.assignmentsByName.get(A.evidence)!.roleDefinitionId = ROLE.reader;
    let plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
    expect(plan.warnings).toEqual([
      `the evidence assignment ${idAt(CLUSTER_ID, A.evidence)} is "Reader", which does not grant listClusterUserCredential: not removed`,
    ]);

    // The evidence says Owner (which the plan would leave); ARM says a custom Arc role: removed,
    // labelled and restorable with the real role.
    fake.assignmentsByName.get(A.evidence)!.roleDefinitionId = ROLE.customArc;
    const d = spDetection(CLUSTER_ID);
    d.evidence.role = 'Owner';
    d.evidence.roleDefinitionId = ROLE.owner;
    plan = await remediator.plan(d);
    expect(plan.steps[0]).toMatchObject({
      target: idAt(CLUSTER_ID, A.evidence),
      description: `Remove "Arc proxy users (custom)" at ${CLUSTER_ID}: the assignment named in the evidence`,
      assignment: { roleName: 'Arc proxy users (custom)', principalId: SP_ID },
    });
    expect(plan.steps[0]?.assignment?.roleDefinitionId).toMatch(new RegExp(`/${ROLE.customArc}$`));
    expect(plan.stillHasAccessThrough).toEqual([]);
  });
});

describe('the claims and the evidence name different principals', () => {
  it('warns and acts on the caller from the claims; its own assignment is still removed', async () => {
    const { fake, remediator } = await setup('live');
    const plan = await remediator.plan(evidenceNaming(CLUSTER_ID, A.evidence, OTHER_SP));
    expect(plan.warnings).toEqual([
      `the caller's object id in the claims (${SP_ID}) differs from the principal in the evidence (${OTHER_SP}): the plan acts on the caller`,
    ]);
    expect(plan.principalId).toBe(SP_ID);
    // ARM shows the assignment is the caller's: it goes, and the caller is disabled.
    expect(plan.steps.map((s) => s.target)).toEqual([idAt(CLUSTER_ID, A.evidence), SP_ID]);
    const list = fake.calls('arm', 'GET').find((r) => r.path.endsWith('/roleAssignments'));
    expect(list?.query.$filter).toBe(`principalId eq '${SP_ID}'`);
    await remediator.execute(plan);
    expect(deletes(fake)).toEqual([idAt(CLUSTER_ID, A.evidence)]);
    expect(fake.calls('graph', 'PATCH').map((r) => r.path)).toEqual([`/v1.0/servicePrincipals/${SP_ID}`]);
  });

  it("when ARM agrees with the evidence, the other principal's assignment is not removed", async () => {
    const { fake, remediator } = await setup('live');
    fake.assign({
      name: TEAM.arc,
      scope: CLUSTER_ID,
      roleDefinitionId: ROLE.clusterUser,
      principalId: OTHER_SP,
      principalType: 'ServicePrincipal',
    });
    const plan = await remediator.plan(evidenceNaming(CLUSTER_ID, TEAM.arc, OTHER_SP));
    expect(plan.warnings[0]).toMatch(/^POSSIBLE TAMPERING/);
    expect(plan.warnings[1]).toMatch(/differs from the principal in the evidence/);
    expect(plan.steps.map((s) => s.target)).toEqual([idAt(CLUSTER_ID, A.evidence), SP_ID]);
    await remediator.execute(plan);
    expect(fake.assignmentsByName.has(TEAM.arc)).toBe(true);
  });
});

describe('the caller is acted on only as Microsoft Graph confirms it', () => {
  const OTHER_APP = 'eeeeeeee-1111-4222-8333-444444444444';
  const CEO = 'ce0ce0ce-0000-4000-8000-00000000ce00';
  const GROUP = '99999999-8888-4777-8666-555544443333';
  /** A detection whose object ids (claims and evidence) name another principal. */
  const otherObjectId = (id = OTHER_SP, over: Overrides<Detection> = {}) => {
    const d = evidenceNaming(CLUSTER_ID, A.evidence, id);
    d.principalId = id;
    return overridden(d, over);
  };
  /** That other principal's own Arc access on the cluster, which no Revoke of this alert may touch. */
  const arcAccessOf = (fake: FakeAzure, principalId: string, principalType: string) =>
    fake.assign({
      name: TEAM.arc,
      scope: CLUSTER_ID,
      roleDefinitionId: ROLE.clusterUser,
      principalId,
      principalType,
    });
  const untouched = (fake: FakeAzure) => {
    expect(fake.assignmentsByName.has(TEAM.arc)).toBe(true);
    expect(deletes(fake)).toEqual([]);
    expect(fake.calls('graph', 'PATCH')).toEqual([]);
    expect(fake.calls('graph', 'POST')).toEqual([]);
  };

  it("an object id that is not the appid's service principal: neither is acted on, and the plan says so", async () => {
    const { fake, remediator } = await setup('live');
    fake.servicePrincipal({ id: OTHER_SP, appId: OTHER_APP, displayName: 'payments-prod-sp' });
    arcAccessOf(fake, OTHER_SP, 'ServicePrincipal');
    const plan = await remediator.plan(otherObjectId());
    expect(plan.warnings[0]).toBe(
      `POSSIBLE TAMPERING: the detection's object id ${OTHER_SP} is not the service principal of application ${APP_ID} (Graph: ${SP_ID}): neither is acted on; check who made the call`,
    );
    expect(plan.principalId).toBeUndefined();
    expect(plan.steps).toEqual([]);
    await remediator.execute(plan);
    untouched(fake);
    expect(fake.servicePrincipals.get(OTHER_SP)?.accountEnabled).toBe(true);
  });

  it('an appid that is no GUID names nobody: nothing is acted on', async () => {
    const { fake, remediator } = await setup('live');
    arcAccessOf(fake, OTHER_SP, 'ServicePrincipal');
    const plan = await remediator.plan(otherObjectId(OTHER_SP, { appId: 'totally-not-a-guid' }));
    expect(plan.warnings).toContain(
      'the appid totally-not-a-guid is no GUID, so no service principal can be looked up: the plan acts on no principal',
    );
    expect(plan.steps).toEqual([]);
    await remediator.execute(plan);
    untouched(fake);
  });

  it("a caller called a user is looked up as one: another principal's or a group's id is no user", async () => {
    const { fake, remediator } = await setup('live');
    arcAccessOf(fake, OTHER_SP, 'ServicePrincipal');
    const asUser = { principalType: 'User', user: { upn: 'eve@contoso.example' } } as const;
    const plan = await remediator.plan(otherObjectId(OTHER_SP, asUser));
    expect(plan.warnings).toContain(
      `Microsoft Graph has no user ${OTHER_SP} in this tenant: the plan acts on no principal`,
    );
    expect(plan.steps).toEqual([]);
    await remediator.execute(plan);
    untouched(fake);
    // Nor a group's id, whose Owner would otherwise be offered as a broad role.
    fake.assignmentsByName.delete(TEAM.arc);
    arcAccessOf(fake, GROUP, 'Group');
    fake.assign({
      name: TEAM.owner,
      scope: RG_SCOPE,
      roleDefinitionId: ROLE.owner,
      principalId: GROUP,
      principalType: 'Group',
    });
    const viaGroup = await remediator.plan(otherObjectId(GROUP, asUser));
    expect(viaGroup.steps).toEqual([]);
    expect(viaGroup.stillHasAccessThrough).toEqual([]);
    expect(remediator.planBroadRemoval(viaGroup).steps).toEqual([]);
  });

  it("a user's object id whose UPN is not the detection's: neither account is touched", async () => {
    const { fake, remediator } = await setup('live');
    fake.user({ id: CEO, userPrincipalName: 'ceo@contoso.example', displayName: 'The CEO' });
    fake.user({ id: USER_ID, userPrincipalName: 'intern@contoso.example', displayName: 'Intern' });
    const plan = await remediator.plan(
      otherObjectId(CEO, { principalType: 'User', user: { upn: 'intern@contoso.example' } }),
    );
    expect(plan.warnings[0]).toBe(
      `POSSIBLE TAMPERING: the detection's object id ${CEO} is the user ceo@contoso.example, not intern@contoso.example as the detection says: neither is acted on`,
    );
    expect(plan.steps).toEqual([]);
    await remediator.execute(plan);
    expect(fake.users.get(CEO)).toMatchObject({ accountEnabled: true, revokedSessions: 0 });
    expect(fake.users.get(USER_ID)).toMatchObject({ accountEnabled: true, revokedSessions: 0 });
  });

  it("a user named by object id only (no UPN to confirm it) is not touched: the warning names Graph's user", async () => {
    const { fake, remediator } = await setup('live');
    fake.user({ id: CEO, userPrincipalName: 'ceo@contoso.example', displayName: 'The CEO' });
    const plan = await remediator.plan(otherObjectId(CEO, { principalType: 'User', user: {} }));
    expect(plan.steps).toEqual([]);
    expect(plan.warnings).toContain(
      `the detection names the user ${CEO} (ceo@contoso.example in Microsoft Graph) by object id only, with no UPN to confirm it: the plan acts on no principal; check the sign-in logs, and disable the account by hand if it made the call`,
    );
    await remediator.execute(plan);
    expect(fake.users.get(CEO)).toMatchObject({ accountEnabled: true, revokedSessions: 0 });
  });

  it('a user whose object id and UPN agree is disabled, and the dialog names both', async () => {
    const { fake, remediator } = await setup('live');
    fake.user({ id: USER_ID, userPrincipalName: 'intern@contoso.example', displayName: 'Intern' });
    const plan = await remediator.plan(
      otherObjectId(USER_ID, { principalType: 'User', user: { upn: 'Intern@Contoso.example' } }),
    );
    expect(plan.steps.map((st) => [st.kind, st.target])).toEqual([
      ['disable-user', USER_ID],
      ['revoke-user-sessions', USER_ID],
    ]);
    expect(plan.steps[0]?.description).toBe(
      `Disable the user account Intern@Contoso.example (${USER_ID}) so that it cannot sign in (to anything in the tenant, not only Azure)`,
    );
  });

  it('a guest, whose detection gives the address it signed in with, is found by its mail and disabled', async () => {
    const { fake, remediator } = await setup('live');
    fake.user({
      id: USER_ID,
      userPrincipalName: 'alice_fabrikam.com#EXT#@contoso.onmicrosoft.com',
      mail: 'Alice@fabrikam.com',
      displayName: 'Alice (guest)',
    });
    const plan = await remediator.plan(
      otherObjectId(USER_ID, { principalType: 'User', user: { upn: 'alice@fabrikam.com' } }),
    );
    expect(plan.warnings.join('\n')).not.toMatch(/as the detection says/);
    expect(plan.principalId).toBe(USER_ID);
    expect(plan.steps.filter((st) => st.target === USER_ID).map((st) => st.kind)).toEqual([
      'disable-user',
      'revoke-user-sessions',
    ]);
  });

  it('a guest known only by its UPN (…#EXT#@…) is looked up by it and disabled', async () => {
    const { fake, remediator } = await setup('live');
    const upn = 'alice_fabrikam.com#EXT#@contoso.onmicrosoft.com';
    fake.user({ id: USER_ID, userPrincipalName: upn, displayName: 'Alice (guest)' });
    const d = spDetection(CLUSTER_ID, { principalId: undefined, principalType: 'User', user: { upn } });
    delete d.evidence.principalId;
    delete d.evidence.principalType;
    const plan = await remediator.plan(d);
    expect(plan.principalId).toBe(USER_ID);
    expect(plan.steps.filter((st) => st.target === USER_ID).map((st) => st.kind)).toEqual([
      'disable-user',
      'revoke-user-sessions',
    ]);
    await remediator.execute(plan);
    expect(fake.users.get(USER_ID)).toMatchObject({ accountEnabled: false, revokedSessions: 1 });
  });

  it('a stored detection with a group taken for the caller is not called tampered', async () => {
    const { remediator } = await setup('live');
    const group = '99999999-8888-4777-8666-555544443333';
    const d = spDetection(CLUSTER_ID, { principalId: group, principalType: 'Group' });
    d.evidence = { ...d.evidence, principalType: 'Group', principalId: group };
    const plan = await remediator.plan(d);
    expect(plan.warnings.join('\n')).not.toMatch(/TAMPERING/);
    // The appid's service principal, as Graph has it.
    expect(plan.principalId).toBe(SP_ID);
  });

  it('an application without a service principal in the tenant: nothing is acted on, and the plan says why', async () => {
    const { fake, remediator } = await setup('live');
    fake.servicePrincipals.delete(SP_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.warnings).toContain(
      `application ${APP_ID} has no service principal in this tenant: the plan acts on no principal`,
    );
    expect(plan.steps).toEqual([]);
    // A live run of it revoked nothing, and does not say otherwise.
    expect((await remediator.execute(plan)).ok).toBe(false);
  });

  it('when the caller cannot be looked up, nothing is acted on until it can', async () => {
    const { fake, remediator } = await setup('live');
    fake.deny('graph', 'GET', /servicePrincipals\(appId=/);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.steps).toEqual([]);
    expect(plan.unchecked?.join('\n')).toMatch(/looking the caller up in Microsoft Graph \(403/);
    expect(plan.warnings.join('\n')).toMatch(
      /could not look the caller up in Microsoft Graph \(403.*: the plan acts on no principal until it can be checked; grant .*Application\.Read\.All/,
    );
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(false);
    expect(deletes(fake)).toEqual([]);
  });

  it('the disable step writes nothing when it cannot check the service principal first', async () => {
    const { fake, remediator } = await setup('live');
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.deny('graph', 'GET', new RegExp(`servicePrincipals/${SP_ID}$`));
    const result = await remediator.execute(plan);
    const disable = result.steps.find((r) => r.stepId.startsWith('disable-service-principal'));
    expect(disable?.status).toBe('failed');
    expect(disable?.detail).toMatch(
      /the check that it is the service principal of application .* failed: 403/,
    );
    expect(fake.calls('graph', 'PATCH')).toEqual([]);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(true);
  });

  it("the disable step itself refuses another application's principal, whatever plan it is given", async () => {
    const { fake, remediator } = await setup('live');
    fake.servicePrincipal({ id: OTHER_SP, appId: OTHER_APP, displayName: 'payments-prod-sp' });
    // A plan made from the detection alone (as without Azure lookups): it names the other principal.
    const plan = buildRemediationPlan({
      detection: otherObjectId(),
      endpoints: { arm: fake.armUrl, graph: fake.graphUrl },
    });
    expect(plan.steps.find((st) => st.kind === 'disable-service-principal')?.target).toBe(OTHER_SP);
    const result = await remediator.execute(plan);
    const disable = result.steps.find((r) => r.stepId.startsWith('disable-service-principal'));
    expect(disable).toMatchObject({
      status: 'failed',
      detail: `not disabled: ${OTHER_SP} is the service principal of application ${OTHER_APP}, not of the detected application ${APP_ID}`,
    });
    expect(fake.calls('graph', 'PATCH')).toEqual([]);
    expect(fake.servicePrincipals.get(OTHER_SP)?.accountEnabled).toBe(true);
  });
});

describe('live execution re-reads each assignment before deleting it', () => {
  it('skips an assignment whose id now names another principal (id reused)', async () => {
    const { fake, remediator } = await setup('live');
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const reused = fake.assignmentsByName.get(A.evidence)!;
    reused.principalId = SEC_ID;
    reused.principalType = 'User';
    fake.clearRequests();
    const result = await remediator.execute(plan);
    expect(result.steps[0]).toMatchObject({
      stepId: `remove-assignment:${idAt(CLUSTER_ID, A.evidence).toLowerCase()}`,
      status: 'skipped',
    });
    expect(result.steps[0]?.detail).toBe(
      `not removed: ${idAt(CLUSTER_ID, A.evidence)} is now assigned to ${SEC_ID}, not to the plan's principal ${SP_ID} (the assignment id may have been reused)`,
    );
    expect(result.ok).toBe(false);
    expect(reads(fake, idAt(CLUSTER_ID, A.evidence))).toHaveLength(1);
    expect(fake.calls('arm', 'DELETE')).toEqual([]);
    expect(fake.assignmentsByName.has(A.evidence)).toBe(true);
  });

  it("skips an assignment that turns out to be a group's, whatever the plan says", async () => {
    const { fake, remediator } = await setup('live');
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const now = fake.assignmentsByName.get(A.evidence)!;
    now.principalType = 'Group';
    const result = await remediator.execute(plan);
    expect(result.steps[0]).toMatchObject({
      status: 'skipped',
      detail: `not removed: ${idAt(CLUSTER_ID, A.evidence)} is assigned to group ${SP_ID}, and removing it would affect every member`,
    });
    expect(fake.calls('arm', 'DELETE')).toEqual([]);
  });

  it('skips an assignment whose id now grants a different role', async () => {
    const { fake, remediator } = await setup('live');
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.assignmentsByName.get(A.evidence)!.roleDefinitionId = ROLE.owner;
    const result = await remediator.execute(plan);
    expect(result.steps[0]?.status).toBe('skipped');
    expect(result.steps[0]?.detail).toMatch(new RegExp(`now grants role ${ROLE.owner}, not the planned`));
    expect(fake.calls('arm', 'DELETE')).toEqual([]);
  });

  it('re-checks the separately confirmed broad-role removal too', async () => {
    const { fake, remediator } = await setup('live');
    fake.assign({
      name: TEAM.owner,
      scope: SUB_SCOPE,
      roleDefinitionId: ROLE.owner,
      principalId: SP_ID,
      principalType: 'ServicePrincipal',
    });
    const broad = remediator.planBroadRemoval(await remediator.plan(spDetection(CLUSTER_ID)));
    expect(broad.steps.map((s) => s.target)).toEqual([idAt(SUB_SCOPE, TEAM.owner)]);
    fake.assignmentsByName.get(TEAM.owner)!.principalId = SEC_ID;
    const result = await remediator.execute(broad);
    expect(result.steps.map((s) => s.status)).toEqual(['skipped']);
    expect(fake.calls('arm', 'DELETE')).toEqual([]);
  });

  it('a refused re-read fails the step with roleAssignments/read as the fix; nothing is deleted', async () => {
    const { fake, remediator } = await setup('live');
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.deny('arm', 'GET', `/roleAssignments/${A.evidence}`, 'Microsoft.Authorization/roleAssignments/read');
    const result = await remediator.execute(plan);
    expect(result.steps[0]?.status).toBe('failed');
    expect(result.steps[0]?.fix).toMatch(/Microsoft\.Authorization\/roleAssignments\/read at /);
    expect(fake.calls('arm', 'DELETE')).toEqual([]);

    // The permission is granted: the retry re-checks and deletes.
    fake.clearScripts();
    const retry = await remediator.execute(plan, result);
    expect(retry.ok).toBe(true);
    expect(deletes(fake)).toEqual([idAt(CLUSTER_ID, A.evidence)]);
  });
});

describe('evidence-only remediator (no Azure identity)', () => {
  it('labels the step it takes from the evidence as unverified and only reports it', async () => {
    const remediator = evidencePlanRemediator();
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.steps.map((s) => s.kind)).toEqual(['remove-assignment', 'disable-service-principal']);
    expect(plan.steps[0]?.description).toMatch(
      /\(unverified: taken from the detection, not checked in Azure\)$/,
    );
    const result = await remediator.execute(plan);
    expect(result).toMatchObject({ mode: 'dry-run', ok: true });
    expect(result.steps.map((s) => s.status)).toEqual(['would-do', 'would-do']);
  });

  it('does not plan an evidence assignment attributed to another principal than the caller', async () => {
    const plan = await evidencePlanRemediator().plan(evidenceNaming(SUB_SCOPE, TEAM.arc, SEC_ID));
    expect(plan.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
    expect(plan.warnings.join('\n')).toMatch(/differs from the principal in the evidence/);
    // Flagged as the Azure-checked plan flags it, so that the alert shows it before anyone presses Revoke.
    expect(plan.warnings.filter((w) => w.startsWith(TAMPERING)).join('\n')).toMatch(
      /attributed to another principal .* not removed/,
    );
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { listRemediationAttempts } from '../../src/azure/index.ts';
import { tokenIdentity } from '../../src/azure/own-identity.ts';
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
  USER_ID,
} from './helpers.ts';

afterEach(closeOpened);

/** `APP_ID` as an operator may write it in AZURE_CLIENT_ID: upper case, without dashes. */
const APP_ID_AS_CONFIGURED = APP_ID.replaceAll('-', '').toUpperCase();

/** An application arc-responder runs as, other than the caller's. */
const OWN_APP_ID = '3e9a1c04-6b2d-4f7e-9a58-1c0d2e3f4a5b';

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

  it('named by AZURE_CLIENT_ID: another application whose detection names no object id is still revoked', async () => {
    const fake = await fakeWithEvidenceAt(CLUSTER_ID);
    const { remediator } = await remediatorOn(fake, 'live', {}, { AZURE_CLIENT_ID: OWN_APP_ID });
    const d = spDetection(CLUSTER_ID);
    delete d.principalId;
    delete d.evidence.principalId;
    const plan = await remediator.plan(d);
    expect(plan.warnings.filter((w) => w.startsWith(TAMPERING))).toEqual([]);
    expect(plan.steps.map((s) => [s.kind, s.target])).toEqual([
      ['remove-assignment', expect.stringContaining(A.evidence)],
      ['disable-service-principal', SP_ID],
    ]);
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

/** The Azure CLI, the client application a developer login and most `az connectedk8s proxy` callers use. */
const AZURE_CLI = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';
/** The operator whose developer login arc-responder runs as. */
const OPERATOR_ID = '7a4c2e90-1b3d-4f56-8e7a-9c0b1d2e3f40';

/** A user's detection: signed in through the Azure CLI, holding the evidence's Arc role assignment. */
function userDetection(id: string, upn: string) {
  const d = spDetection(CLUSTER_ID, {
    appId: AZURE_CLI,
    principalId: id,
    principalType: 'User',
    user: { upn },
  });
  d.evidence = { ...d.evidence, principalId: id, principalType: 'User' };
  return d;
}

/**
 * arc-responder runs as the operator's developer login: its tokens are the operator's, issued
 * through the Azure CLI. Mallory, another user, holds the evidence's Arc role; so does the operator.
 */
async function developerLogin(mode: 'dry-run' | 'live') {
  const fake = await fakeWithEvidenceAt(CLUSTER_ID);
  fake.assignmentsByName.clear();
  fake
    .signedInAs({ id: OPERATOR_ID, upn: 'operator@contoso.example' })
    .user({ id: USER_ID, userPrincipalName: 'mallory@contoso.example', displayName: 'Mallory' })
    .user({ id: OPERATOR_ID, userPrincipalName: 'operator@contoso.example', displayName: 'Operator' });
  for (const [name, principalId] of [
    [A.evidence, USER_ID],
    [A.rg, OPERATOR_ID],
  ] as const) {
    fake.assign({
      name,
      scope: CLUSTER_ID,
      roleDefinitionId: ROLE.clusterUser,
      principalId,
      principalType: 'User',
    });
  }
  const { remediator } = await remediatorOn(fake, mode);
  return { fake, remediator };
}

describe('arc-responder on a developer login (user tokens)', () => {
  it('revokes another user who signed in through the same client application', async () => {
    const { fake, remediator } = await developerLogin('live');
    const plan = await remediator.plan(userDetection(USER_ID, 'mallory@contoso.example'));
    expect(plan.steps.map((s) => [s.kind, s.target])).toEqual([
      ['remove-assignment', expect.stringContaining(A.evidence)],
      ['disable-user', USER_ID],
      ['revoke-user-sessions', USER_ID],
    ]);
    expect(plan.warnings.filter((w) => w.startsWith(TAMPERING))).toEqual([]);
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(true);
    expect(fake.users.get(USER_ID)).toMatchObject({ accountEnabled: false, revokedSessions: 1 });
  });

  it('leaves the signed-in user alone, named by the object id of its tokens, and raises the alarm', async () => {
    const { fake, remediator } = await developerLogin('live');
    const d = userDetection(OPERATOR_ID, 'operator@contoso.example');
    d.evidence = { ...d.evidence, roleAssignmentId: A.rg };
    const plan = await remediator.plan(d);
    expect(plan.steps).toEqual([]);
    const alarm = plan.warnings[0] ?? '';
    expect(alarm.startsWith(TAMPERING)).toBe(true);
    expect(alarm).toContain(
      `the principal ${OPERATOR_ID} is arc-responder's own identity (named by its own access tokens)`,
    );
    await remediator.execute(plan);
    expect(fake.mutations()).toEqual([]);
    expect(fake.users.get(OPERATOR_ID)?.accountEnabled).toBe(true);
  });

  it('revokes another user whose detection carries an appid that is no GUID', async () => {
    const { fake, remediator } = await developerLogin('live');
    const d = userDetection(USER_ID, 'mallory@contoso.example');
    d.appId = 'kubectl-oidc-login';
    const plan = await remediator.plan(d);
    expect(plan.warnings.filter((w) => w.startsWith(TAMPERING))).toEqual([]);
    expect(plan.steps.map((s) => s.kind)).toContain('disable-user');
    await remediator.execute(plan);
    expect(fake.users.get(USER_ID)?.accountEnabled).toBe(false);
  });

  it('leaves the signed-in user alone when the detection names it by UPN only, as Graph finds it', async () => {
    const { fake, remediator } = await developerLogin('live');
    const d = userDetection(OPERATOR_ID, 'operator@contoso.example');
    delete d.principalId;
    delete d.evidence.principalId;
    d.evidence.roleAssignmentId = A.rg;
    const plan = await remediator.plan(d);
    expect(plan.steps).toEqual([]);
    expect(plan.warnings[0]).toContain(
      `the principal ${OPERATOR_ID} is arc-responder's own identity (named by its own access tokens)`,
    );
    await remediator.execute(plan);
    expect(fake.mutations()).toEqual([]);
    expect(fake.users.get(OPERATOR_ID)?.accountEnabled).toBe(true);
  });

  it('still knows the application its earlier app-only tokens named, once its tokens are a user’s', async () => {
    const fake = await fakeWithEvidenceAt(CLUSTER_ID);
    // Each call gets a fresh token, so the second plan's tokens are the user's.
    fake.tokenLifetimeSeconds = 1;
    const { remediator } = await remediatorOn(fake, 'live');
    await remediator.plan(userDetection(USER_ID, 'mallory@contoso.example'));
    fake.signedInAs({ id: OPERATOR_ID, upn: 'operator@contoso.example' });
    await remediator.plan(userDetection(USER_ID, 'mallory@contoso.example'));
    const plan = await remediator.plan(spDetection(CLUSTER_ID, { appId: fake.clientId }));
    expect(plan.steps).toEqual([]);
    expect(plan.warnings[0]).toContain(
      `application ${fake.clientId} is arc-responder's own identity (named by its own access tokens)`,
    );
  });
});

describe('tokenIdentity', () => {
  const jwt = (claims: object) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
  const issued = { appid: AZURE_CLI, oid: OPERATOR_ID };

  it('names a user token by its object id only, never by the client application it came through', () => {
    for (const marker of [
      { idtyp: 'user' },
      { scp: 'user_impersonation' },
      { upn: 'a@b.c' },
      { unique_name: 'a@b.c' },
    ]) {
      expect(tokenIdentity(jwt({ ...issued, ...marker }))).toEqual({ objectId: OPERATOR_ID });
    }
    expect(tokenIdentity(jwt({ azp: AZURE_CLI, oid: OPERATOR_ID, scp: 'x' }))).toEqual({
      objectId: OPERATOR_ID,
    });
  });

  it('names an app-only token by its appid or azp and its object id', () => {
    expect(tokenIdentity(jwt({ ...issued, idtyp: 'app' }))).toEqual({
      appId: AZURE_CLI,
      objectId: OPERATOR_ID,
    });
    expect(tokenIdentity(jwt({ azp: APP_ID, oid: SP_ID, roles: ['x'] }))).toEqual({
      appId: APP_ID,
      objectId: SP_ID,
    });
  });
});

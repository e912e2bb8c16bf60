import { afterEach, describe, expect, it, vi } from 'vitest';
import { type AzureEnricher, createAzureEnricher } from '../../src/azure/index.ts';
import type { FakeAzure } from '../support/fake-azure.ts';
import {
  A,
  APP_ID,
  CLUSTER_ID,
  configFor,
  FAST_RETRY,
  fakeWithEvidenceAt,
  quietLogger,
  RG_SCOPE,
  SP_ID,
  spDetection,
  stubAzureEnv,
  USER_ID,
} from './helpers.ts';

const CLUSTER_PATH = new RegExp(`^${CLUSTER_ID}$`, 'i');
const open: FakeAzure[] = [];
afterEach(async () => {
  vi.unstubAllEnvs();
  for (const f of open.splice(0)) await f.close();
});

async function setup(scope = CLUSTER_ID): Promise<{ fake: FakeAzure; enricher: AzureEnricher }> {
  const fake = await fakeWithEvidenceAt(scope);
  open.push(fake);
  stubAzureEnv(fake);
  const enricher = createAzureEnricher(configFor(fake, 'dry-run'), {
    logger: quietLogger(),
    tlsCa: fake.ca,
    retry: FAST_RETRY,
  });
  return { fake, enricher };
}

describe('Azure enricher', () => {
  it('looks up the service principal, the evidence assignment and the cluster', async () => {
    const { fake, enricher } = await setup(RG_SCOPE);
    fake.assignmentsByName.get(A.evidence)!.createdOn = '2026-03-11T22:00:00.0000000Z';
    const e = await enricher.enrich(spDetection(RG_SCOPE));
    expect(e).toEqual({
      principalDisplayName: 'ci-deployer',
      principalCreatedAt: '2026-03-10T08:00:00Z',
      principalRecentlyCreated: true,
      assignmentCreatedAt: '2026-03-11T22:00:00.000Z',
      assignmentRecent: true,
      cluster: { location: 'westeurope', tags: { env: 'prod' }, distribution: 'k3s' },
    });
    expect(fake.calls('graph', 'GET').map((r) => r.path)).toEqual([
      `/v1.0/servicePrincipals(appId='${APP_ID}')`,
      `/v1.0/applications(appId='${APP_ID}')`,
    ]);
    const clusterRead = fake.calls('arm', 'GET').find((r) => r.path === CLUSTER_ID);
    expect(clusterRead?.query['api-version']).toBe('2024-01-01');
    expect(clusterRead?.rawPath.startsWith('//')).toBe(false);
    expect(fake.mutations()).toEqual([]);
  });

  it('never takes a group the evidence names for the caller', async () => {
    const { fake, enricher } = await setup();
    const group = '99999999-8888-4777-8666-555544443333';
    // A user's detection (UPN, no object id claim) whose access came through a group.
    const d = spDetection(CLUSTER_ID, {
      principalId: undefined,
      principalType: undefined,
      user: { upn: 'mallory@contoso.example' },
    });
    d.evidence = { ...d.evidence, principalType: 'Group', principalId: group };
    const e = await enricher.enrich(d);
    // Neither the group looked up as the user, nor the client application's principal named as hers.
    expect(e.principalDisplayName).toBeUndefined();
    expect(e.errors?.join('\n')).toMatch(/the user has no object id in the detection/);
    const paths = fake.calls('graph', 'GET').map((r) => r.path);
    expect(paths.some((p) => p.includes(group) || p.includes('servicePrincipals'))).toBe(false);
  });

  it('flags nothing for an old identity and an old assignment', async () => {
    const { fake, enricher } = await setup();
    fake.servicePrincipals.get(SP_ID)!.appCreatedDateTime = '2024-05-01T00:00:00Z';
    fake.assignmentsByName.get(A.evidence)!.createdOn = '2025-11-02T10:00:00.0000000Z';
    const e = await enricher.enrich(spDetection());
    expect(e).toMatchObject({ principalRecentlyCreated: false, assignmentRecent: false });
    expect(e.errors).toBeUndefined();
  });

  it('looks a user up by object id', async () => {
    const { fake, enricher } = await setup();
    fake.user({
      id: USER_ID,
      userPrincipalName: 'mallory@contoso.example',
      displayName: 'Mallory',
      createdDateTime: '2026-03-01T00:00:00Z',
    });
    const e = await enricher.enrich(spDetection(CLUSTER_ID, { principalId: USER_ID, principalType: 'User' }));
    expect(e).toMatchObject({
      principalDisplayName: 'Mallory',
      principalCreatedAt: '2026-03-01T00:00:00Z',
      principalRecentlyCreated: false,
    });
  });

  it('says when the caller is disabled in Entra ID (a Revoke on another alert, say), and not when enabled', async () => {
    const { fake, enricher } = await setup();
    expect((await enricher.enrich(spDetection())).principalDisabled).toBeUndefined();
    fake.servicePrincipals.get(SP_ID)!.accountEnabled = false;
    expect(await enricher.enrich(spDetection())).toMatchObject({ principalDisabled: true });
    fake.user({
      id: USER_ID,
      userPrincipalName: 'mallory@contoso.example',
      displayName: 'Mallory',
      accountEnabled: false,
    });
    const user = await enricher.enrich(
      spDetection(CLUSTER_ID, { principalId: USER_ID, principalType: 'User' }),
    );
    expect(user).toMatchObject({ principalDisplayName: 'Mallory', principalDisabled: true });
  });

  it('reports each failed lookup in errors and never throws', async () => {
    const { fake, enricher } = await setup();
    fake.deny('graph', 'GET', 'servicePrincipals');
    fake.assignmentsByName.delete(A.evidence);
    fake.fail({ service: 'arm', method: 'GET', path: CLUSTER_PATH, status: 500, times: 10 });
    const e = await enricher.enrich(spDetection());
    expect(e.principalDisplayName).toBeUndefined();
    expect(e.cluster).toBeUndefined();
    expect(e.errors).toHaveLength(3);
    const text = e.errors!.join('\n');
    expect(text).toMatch(/principal: 403 Authorization_RequestDenied/);
    expect(text).toMatch(/Application\.Read\.All/);
    expect(text).toMatch(/evidence assignment: the role assignment named in the evidence no longer exists/);
    expect(text).toMatch(/cluster: 500/);
  });

  it('says when the application is registered in another tenant', async () => {
    const { fake, enricher } = await setup();
    delete fake.servicePrincipals.get(SP_ID)!.appCreatedDateTime;
    const e = await enricher.enrich(spDetection());
    expect(e.principalDisplayName).toBe('ci-deployer');
    expect(e.principalCreatedAt).toBeUndefined();
    expect(e.errors).toEqual([
      `principal: creation time unknown: application ${APP_ID} is not registered in this tenant`,
    ]);
  });

  it('looks up no application registration for a managed identity, which has none: no failed lookup', async () => {
    const { fake, enricher } = await setup();
    const sp = fake.servicePrincipals.get(SP_ID)!;
    delete sp.appCreatedDateTime;
    sp.servicePrincipalType = 'ManagedIdentity';
    const e = await enricher.enrich(spDetection());
    expect(e.principalDisplayName).toBe('ci-deployer');
    expect(e.principalCreatedAt).toBeUndefined();
    expect(e.errors ?? []).toEqual([]);
    expect(fake.calls('graph').filter((r) => r.path.includes('applications'))).toEqual([]);
  });

  it('returns what finished when a slow lookup outlasts the timeout', async () => {
    const { fake, enricher } = await setup();
    fake.delay('arm', CLUSTER_PATH, 5_000);
    const e = await enricher.enrich(spDetection(), { timeoutMs: 300 });
    expect(e.principalDisplayName).toBe('ci-deployer');
    expect(e.assignmentCreatedAt).toBeDefined();
    expect(e.cluster).toBeUndefined();
    expect(e.errors).toEqual(['cluster: not finished in time']);
  });

  it('honours a caller abort signal', async () => {
    const { enricher } = await setup();
    const controller = new AbortController();
    controller.abort();
    const e = await enricher.enrich(spDetection(), { signal: controller.signal });
    expect(e.errors).toHaveLength(3);
    expect(e.errors!.every((line) => line.endsWith('not finished in time'))).toBe(true);
  });

  it('skips lookups the detection gives no input for', async () => {
    const { fake, enricher } = await setup();
    const d = spDetection(CLUSTER_ID, { appId: 'not-a-guid', cluster: undefined });
    d.evidence = {};
    const e = await enricher.enrich(d);
    expect(e.errors).toEqual(['principal: appId not-a-guid is not a GUID']);
    expect(fake.calls('arm')).toEqual([]);
  });
});

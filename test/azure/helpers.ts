import { pino } from 'pino';
import { vi } from 'vitest';
import { createAzureRemediator } from '../../src/azure/index.ts';
import type { AzureDeps } from '../../src/azure/services.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { parseResourceId } from '../../src/core/azure-ids.ts';
import type { Detection } from '../../src/core/detection.ts';
import type { StateStore } from '../../src/core/ports.ts';
import { ARC_CLUSTER_USER_ROLE_ID } from '../../src/core/remediation-plan.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { type FakeAzure, startFakeAzure } from '../support/fake-azure.ts';
import { type Overrides, overridden } from '../support/overrides.ts';

export const SUB = '6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b';
export const RG = 'rg-arc-prod';
export const SUB_SCOPE = `/subscriptions/${SUB}`;
export const RG_SCOPE = `${SUB_SCOPE}/resourceGroups/${RG}`;
export const CLUSTER_ID = `${RG_SCOPE}/providers/Microsoft.Kubernetes/connectedClusters/arc-prod-01`;
export const OTHER_CLUSTER_ID = `${RG_SCOPE}/providers/Microsoft.Kubernetes/connectedClusters/arc-prod-02`;
export const MG_SCOPE = '/providers/Microsoft.Management/managementGroups/contoso-root';
export const SP_ID = '4c2a9e71-8b3d-4f05-a6c1-2d7e9b0f5a38';
export const APP_ID = '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20';
export const USER_ID = '5d3b0f82-9c4e-4a16-b7d2-3e8f0a1b6c49';
export const EVENT_TIME = '2026-03-12T09:15:27.355Z';

export const ROLE = {
  clusterUser: ARC_CLUSTER_USER_ROLE_ID,
  owner: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635',
  contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
  reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7',
  customArc: '9a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9',
  customWildcard: 'c0ffee00-1111-4222-8333-944455556666',
  customNotAction: 'deadbeef-1111-4222-8333-944455556666',
};

/** Evidence assignment names (GUIDs) used across the tests. */
export const A = {
  evidence: '7f06f09d-d676-4b44-930a-dbec3f10e92b',
  rg: '1a2b3c4d-0000-4000-8000-000000000001',
  sub: '1a2b3c4d-0000-4000-8000-000000000002',
  mg: '1a2b3c4d-0000-4000-8000-000000000003',
  owner: '1a2b3c4d-0000-4000-8000-000000000004',
  reader: '1a2b3c4d-0000-4000-8000-000000000005',
  otherCluster: '1a2b3c4d-0000-4000-8000-000000000006',
  customWildcard: '1a2b3c4d-0000-4000-8000-000000000007',
  notAction: '1a2b3c4d-0000-4000-8000-000000000008',
};

/** Role definitions as ARM serves them (the Arc Cluster User role as documented). */
export function addRoles(fake: FakeAzure): FakeAzure {
  return fake
    .role({
      id: ROLE.clusterUser,
      roleName: 'Azure Arc Enabled Kubernetes Cluster User Role',
      actions: [
        'Microsoft.Resources/deployments/write',
        'Microsoft.Resources/subscriptions/operationresults/read',
        'Microsoft.Resources/subscriptions/read',
        'Microsoft.Resources/subscriptions/resourceGroups/read',
        'Microsoft.Kubernetes/connectedClusters/listClusterUserCredentials/action',
        'Microsoft.Authorization/*/read',
        'Microsoft.Insights/alertRules/*',
        'Microsoft.Support/*',
        'Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action',
      ],
    })
    .role({ id: ROLE.owner, roleName: 'Owner', actions: ['*'] })
    .role({
      id: ROLE.contributor,
      roleName: 'Contributor',
      actions: ['*'],
      notActions: ['Microsoft.Authorization/*/Delete', 'Microsoft.Authorization/*/Write'],
    })
    .role({ id: ROLE.reader, roleName: 'Reader', actions: ['*/read'] })
    .role({
      id: ROLE.customArc,
      roleName: 'Arc proxy users (custom)',
      actions: ['microsoft.kubernetes/connectedclusters/LISTCLUSTERUSERCREDENTIAL/ACTION'],
      roleType: 'CustomRole',
    })
    .role({
      id: ROLE.customWildcard,
      roleName: 'Arc operators (custom)',
      actions: ['Microsoft.Kubernetes/connectedClusters/*'],
      roleType: 'CustomRole',
    })
    .role({
      id: ROLE.customNotAction,
      roleName: 'Everything but Arc credentials (custom)',
      actions: ['*'],
      notActions: ['Microsoft.Kubernetes/connectedClusters/listClusterUser*'],
      roleType: 'CustomRole',
    });
}

/** A service-principal detection whose evidence names assignment `A.evidence` at `scope`. */
export function spDetection(scope = CLUSTER_ID, overrides: Overrides<Detection> = {}): Detection {
  return overridden<Detection>(
    {
      eventId: `evt-${Math.random().toString(36).slice(2)}`,
      sourceFormat: 'azure-activity-log-record',
      eventTime: EVENT_TIME,
      operation: 'MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/LISTCLUSTERUSERCREDENTIAL/ACTION',
      outcome: 'success',
      appId: APP_ID,
      principalId: SP_ID,
      principalType: 'ServicePrincipal',
      evidence: {
        role: 'Azure Arc Enabled Kubernetes Cluster User Role',
        roleDefinitionId: ROLE.clusterUser,
        roleAssignmentId: A.evidence,
        roleAssignmentScope: scope,
        principalId: SP_ID,
        principalType: 'ServicePrincipal',
      },
      sourceIp: '203.0.113.7',
      cluster: parseResourceId(CLUSTER_ID),
    },
    overrides,
  );
}

/** The fake with the SP, its evidence assignment at `scope`, the roles and the cluster resource. */
export async function fakeWithEvidenceAt(scope: string): Promise<FakeAzure> {
  const fake = addRoles(await startFakeAzure());
  fake
    .assign({
      name: A.evidence,
      scope,
      roleDefinitionId: ROLE.clusterUser,
      principalId: SP_ID,
      principalType: 'ServicePrincipal',
    })
    .servicePrincipal({
      id: SP_ID,
      appId: APP_ID,
      displayName: 'ci-deployer',
      appCreatedDateTime: '2026-03-10T08:00:00Z',
    })
    .resource({
      id: CLUSTER_ID,
      location: 'westeurope',
      tags: { env: 'prod' },
      properties: { distribution: 'k3s', kubernetesVersion: '1.30.4' },
    });
  return fake;
}

/** The configuration pointing at the fake, as `loadConfig` builds it from the environment (plus `env`). */
export function configFor(
  fake: FakeAzure,
  remediation: 'dry-run' | 'live',
  env: Record<string, string> = {},
): Config {
  return loadConfig({
    AZURE_REMEDIATION: remediation,
    AZURE_ARM_ENDPOINT: fake.armUrl,
    GRAPH_ENDPOINT: fake.graphUrl,
    AZURE_AUTHORITY_HOST: fake.loginUrl,
    ...env,
  });
}

/**
 * Sets the variables `DefaultAzureCredential` reads itself (its EnvironmentCredential becomes a
 * ClientSecretCredential). `AZURE_AUTHORITY_HOST` is left out on purpose: the fake token endpoint
 * is reached only through `config.azure.authorityHost`, which proves the adapter passes it on (and
 * turns instance discovery off, which would otherwise call the real login host). Undo with
 * `vi.unstubAllEnvs()`.
 */
export function stubAzureEnv(fake: FakeAzure): void {
  vi.stubEnv('AZURE_TENANT_ID', fake.tenantId);
  vi.stubEnv('AZURE_CLIENT_ID', fake.clientId);
  vi.stubEnv('AZURE_CLIENT_SECRET', fake.clientSecret);
  vi.stubEnv('AZURE_AUTHORITY_HOST', undefined);
}

/** Small retries so that tests stay fast. */
export const FAST_RETRY = { maxRetries: 2, retryDelayMs: 5, maxRetryDelayMs: 20 };

/** A silent logger. */
export const quietLogger = () => pino({ level: 'silent' });

/** A fresh in-memory store. */
export const memoryStore = (): Promise<StateStore> => openStateStore('memory://');

/** The fakes and stores `remediatorOn` opened, closed by `closeOpened`. */
const opened: Array<{ close(): Promise<void> }> = [];

/** Closes what `remediatorOn` opened and drops the stubbed Azure variables: call it in `afterEach`. */
export async function closeOpened(): Promise<void> {
  vi.unstubAllEnvs();
  for (const x of opened.splice(0)) await x.close();
}

/**
 * The real remediator on `fake`, in `mode`, over a fresh in-memory store, with a silent logger and
 * fast retries unless `deps` says otherwise, configured from `env` too; the fake and the store are
 * closed by `closeOpened`.
 */
export async function remediatorOn(
  fake: FakeAzure,
  mode: 'dry-run' | 'live',
  deps: Partial<Omit<AzureDeps, 'store'>> = {},
  env: Record<string, string> = {},
) {
  const store = await memoryStore();
  opened.push(fake, store);
  stubAzureEnv(fake);
  const remediator = createAzureRemediator(configFor(fake, mode, env), {
    store,
    logger: quietLogger(),
    tlsCa: fake.ca,
    retry: FAST_RETRY,
    ...deps,
  });
  return { store, remediator };
}

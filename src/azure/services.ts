import type { TokenCredential } from '@azure/identity';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { AuditStore } from '../core/audit.ts';

import type { OwnIdentity, PlanEndpoints } from '../core/remediation-plan.ts';
import { type ArmGateway, createArmGateway } from './arm.ts';
import { createDefaultCredential, httpsBase } from './endpoints.ts';
import { createGraphClient, type GraphClient, type RetrySettings } from './graph.ts';
import { watchOwnIdentity } from './own-identity.ts';

/** What the Azure adapter needs from its host. */
export interface AzureDeps {
  store: AuditStore;
  logger: Logger;
  /** Defaults to `DefaultAzureCredential` configured from `config.azure`. */
  credential?: TokenCredential;
  /** Extra CA certificate (PEM) trusted for ARM, Graph and the token endpoint. */
  tlsCa?: string;
  retry?: RetrySettings;
  /** How long one attempt of an ARM or Graph call may wait for its answer. Default 30 s. */
  requestTimeoutMs?: number;
}

/** The clients shared by the remediator and the enricher. */
export interface AzureServices {
  arm: ArmGateway;
  graph: GraphClient;
  endpoints: PlanEndpoints;
  /** The tenant the service acts in, when `AZURE_TENANT_ID` names it by id. */
  homeTenantId?: string;
  /** The identity the service runs as, as far as it is known yet (see `watchOwnIdentity`). */
  own: () => readonly OwnIdentity[];
}

/** Builds the ARM gateway and the Graph client from the configuration (no call is made yet). */
export function createAzureServices(
  config: Config,
  deps: Omit<AzureDeps, 'store' | 'logger'>,
): AzureServices {
  // Every token it obtains says whom it was issued to: plans never act on that identity.
  const { credential, own } = watchOwnIdentity(
    deps.credential ?? createDefaultCredential(config.azure, deps.tlsCa),
    config.azure.clientId,
  );
  const endpoints: PlanEndpoints = {
    arm: httpsBase(config.azure.armEndpoint, 'AZURE_ARM_ENDPOINT'),
    graph: httpsBase(config.azure.graphEndpoint, 'GRAPH_ENDPOINT'),
  };
  const shared = {
    credential,
    ...(deps.tlsCa ? { tlsCa: deps.tlsCa } : {}),
    ...(deps.retry ? { retry: deps.retry } : {}),
    ...(deps.requestTimeoutMs !== undefined ? { requestTimeoutMs: deps.requestTimeoutMs } : {}),
  };
  return {
    arm: createArmGateway({ endpoint: endpoints.arm, ...shared }),
    graph: createGraphClient({ endpoint: endpoints.graph, ...shared }),
    endpoints,
    own,
    ...(config.azure.tenantId ? { homeTenantId: config.azure.tenantId } : {}),
  };
}

/**
 * The Azure adapter: remediation (remove the Arc role assignments, disable the principal) and
 * enrichment, through the Azure SDK clients and Microsoft Graph with one credential.
 */
export { type ArmGateway, CONNECTED_CLUSTER_API_VERSION, createArmGateway, sdkId } from './arm.ts';
export { type CallRecord, withCallLog } from './call-log.ts';
export { createDefaultCredential, isPublicAuthority, scopeForEndpoint } from './endpoints.ts';
export {
  type AzureEnricher,
  createAzureEnricher,
  createEnricherWith,
  type EnrichOptions,
  RECENT_MS,
} from './enricher.ts';
export { describeFailure, type FailureInfo, GraphRequestError } from './errors.ts';
export { createGraphClient, type GraphClient, parseRetryAfter, type RetrySettings } from './graph.ts';
export {
  AUDIT_ACTIONS,
  type AzureRemediator,
  createAzureRemediator,
  createRemediatorWith,
  listRemediationAttempts,
} from './remediator.ts';
export { type AzureDeps, type AzureServices, createAzureServices } from './services.ts';

/** Where a detection came from. */
export type SourceFormat =
  | 'elastic-ecs'
  | 'elastic-alert'
  | 'azure-activity-log-rest'
  | 'azure-activity-log-record'
  | 'azure-monitor-common'
  | 'azure-monitor-legacy';

/** An Azure resource id split into its parts. Parts keep the case Azure sent. */
export interface ClusterRef {
  /** The resource id as received. */
  id: string;
  /** Lower-cased id, the key for case-insensitive comparison. */
  key: string;
  subscriptionId?: string;
  resourceGroup?: string;
  /** The connected cluster's name when the id is a connected cluster, else the last segment. */
  name?: string;
  /** Provider and type, e.g. `Microsoft.Kubernetes/connectedClusters`. */
  resourceType?: string;
}

export interface Evidence {
  role?: string;
  /** Dashed GUID. */
  roleDefinitionId?: string;
  /** Dashed GUID. */
  roleAssignmentId?: string;
  roleAssignmentScope?: string;
  /** Dashed GUID. */
  principalId?: string;
  principalType?: string;
}

export interface Geo {
  countryName?: string;
  countryIsoCode?: string;
  cityName?: string;
}

export interface AutonomousSystem {
  number?: number;
  organizationName?: string;
}

/** Set when the detection arrived as an Elastic Security alert. */
export interface ElasticAlertInfo {
  alertUuid?: string;
  ruleId?: string;
  ruleUuid?: string;
  ruleName?: string;
  severity?: string;
  riskScore?: number;
  reason?: string;
  /** Kibana link to the alert, when the alert carries one. */
  url?: string;
  /** Kibana link to the rule's alerts (the webhook's `results_link`), when the alert has no link of its own. */
  resultsUrl?: string;
  /** When Elastic raised the alert (`kibana.alert.start`, else the alert's `@timestamp`), ISO 8601 UTC. */
  raisedAt?: string;
  /**
   * The alert comes from a new-terms rule on (appid, source IP), Elastic's Arc rule or a copy of
   * it, or says nothing of its rule: Elastic judged the pair new, so it alerts without the window
   * check. An alert of another rule on the operation is judged by the history like any event.
   */
  judgedNew?: true;
}

/** Set when the detection arrived as an Azure Monitor action-group alert. */
export interface AzureAlertInfo {
  alertId?: string;
  alertRule?: string;
  severity?: string;
  firedAt?: string;
}

/** One normalised detection, whatever format it arrived in. */
export interface Detection {
  /** Stable id used for de-duplication of repeated deliveries. */
  eventId: string;
  sourceFormat: SourceFormat;
  /** Event time, ISO 8601 UTC. */
  eventTime: string;
  /** Operation name as received (case preserved). */
  operation: string;
  /** Outcome lower-cased: `success`, `succeeded`, `failure`, `start`, ... or undefined. */
  outcome?: string;
  /** `claims.appid`: the identity the rule keys on (a GUID dashed and in lower case). */
  appId: string;
  /** The appid as the event wrote it, when that differs from `appId` (undashed, upper case...). */
  appIdAsSent?: string;
  /** Object id of the caller (claims objectidentifier, else evidence principal id), dashed. */
  principalId?: string;
  principalType?: string;
  tenantId?: string;
  evidence: Evidence;
  /** Present when the caller is a user. */
  user?: { upn?: string; name?: string };
  /** Canonical source IP. */
  sourceIp: string;
  geo?: Geo;
  /** Which of geo and AS were looked up here (GeoIP databases) rather than carried by the event. */
  located?: { geo?: true; as?: true };
  as?: AutonomousSystem;
  cluster?: ClusterRef;
  correlationId?: string;
  elasticAlert?: ElasticAlertInfo;
  azureAlert?: AzureAlertInfo;
}

/** Why an event is no detection; `format` when it was recognised as one of the formats. */
export type ParseFailure = { ok: false; kind: 'invalid' | 'ignored'; reason: string; format?: SourceFormat };
/** A Detection, or why an input could not become one. */
export type ParseResult = { ok: true; detection: Detection } | ParseFailure;

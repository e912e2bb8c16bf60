/**
 * A fixed detection and alert for the Slack tests (values follow test/support/samples.ts `ARC`:
 * Arc-shaped and DERIVED, since no public Arc listClusterUserCredential record exists).
 */

import type { AlertRecord } from '../../src/core/alert.ts';
import type { Detection } from '../../src/core/detection.ts';
import type { PlannedStep, RemediationResult } from '../../src/core/remediation.ts';
import { type Overrides, overridden } from '../support/overrides.ts';
import { ARC } from '../support/samples.ts';

export const DETECTED_AT = Date.parse('2026-03-12T09:16:00Z');

export function sampleDetection(over: Overrides<Detection> = {}): Detection {
  return overridden<Detection>(
    {
      eventId: 'evt-1',
      sourceFormat: 'elastic-alert',
      eventTime: ARC.timeIso,
      operation: ARC.operationUpper,
      outcome: 'success',
      appId: ARC.appId,
      principalId: ARC.principalId,
      principalType: 'ServicePrincipal',
      tenantId: ARC.tenantId,
      evidence: {
        role: ARC.role,
        roleDefinitionId: ARC.roleDefinitionId,
        roleAssignmentId: ARC.roleAssignmentId,
        roleAssignmentScope: ARC.roleAssignmentScope,
        principalId: ARC.principalId,
        principalType: 'ServicePrincipal',
      },
      sourceIp: ARC.ip,
      geo: { ...ARC.geo },
      as: { ...ARC.as },
      cluster: {
        id: ARC.clusterId,
        key: ARC.clusterKey,
        subscriptionId: ARC.subscriptionId,
        resourceGroup: ARC.resourceGroup,
        name: ARC.clusterName,
        resourceType: 'Microsoft.Kubernetes/connectedClusters',
      },
      correlationId: ARC.correlationId,
      elasticAlert: {
        alertUuid: ARC.alertUuid,
        ruleId: '022c37cd-5a4f-422b-8227-b136b7a23180',
        ruleName: 'Azure Arc Cluster Credential Access by Identity from Unusual Source',
        severity: 'medium',
        riskScore: 47,
        url: `${ARC.kibanaUrl}/app/security/alerts/redirect/${ARC.alertUuid}`,
      },
    },
    over,
  );
}

export function sampleAlert(
  over: Partial<AlertRecord> = {},
  detection: Overrides<Detection> = {},
): AlertRecord {
  return {
    id: 'a1b2c3d4e5f6a7b8c9d0e1f2',
    detection: sampleDetection(detection),
    detectedAt: DETECTED_AT,
    reason: 'new-pair',
    otherIps: 2,
    windowMs: 7 * 24 * 3600 * 1000,
    ...over,
  };
}

const EVIDENCE_ASSIGNMENT = `${ARC.roleAssignmentScope}/providers/Microsoft.Authorization/roleAssignments/${ARC.roleAssignmentId}`;

/** The steps a live Revoke of the sample detection plans: remove its evidence's assignment, disable its principal. */
export function sampleRevokeSteps(): [PlannedStep, PlannedStep] {
  return [
    {
      id: 'remove',
      kind: 'remove-assignment',
      description: `Remove "${ARC.role}" at ${ARC.roleAssignmentScope}`,
      call: `DELETE https://management.azure.com${EVIDENCE_ASSIGNMENT}?api-version=2022-04-01`,
      target: EVIDENCE_ASSIGNMENT,
      assignment: {
        scope: ARC.roleAssignmentScope,
        roleDefinitionId: ARC.roleDefinitionId,
        principalId: ARC.principalId,
        roleName: ARC.role,
      },
    },
    {
      id: 'disable',
      kind: 'disable-service-principal',
      description: 'Disable the service principal',
      call: `PATCH https://graph.microsoft.com/v1.0/servicePrincipals/${ARC.principalId} {"accountEnabled":false}`,
      target: ARC.principalId,
    },
  ];
}

/** What a live run of `sampleRevokeSteps` did: both steps done. */
export function sampleRevokeResult(): RemediationResult {
  return {
    mode: 'live',
    ok: true,
    steps: [
      { stepId: 'remove', status: 'done', detail: 'removed' },
      { stepId: 'disable', status: 'done', detail: 'disabled' },
    ],
  };
}

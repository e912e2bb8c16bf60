/**
 * Arc-shaped Event Hub records for the ingest benchmarks (DERIVED shape, FORMATS.md §4.2): one
 * successful `listClusterUserCredential` per call, unique by correlation id.
 */

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

/** A GUID-shaped identity for pair number `i`. */
export const appIdOf = (i: number): string => `${hex(i, 8)}-0000-4000-8000-${hex(i, 12)}`;
/** An IPv4 address for pair number `i`. */
export const ipOf = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

let serial = 0;
const base = Date.now().toString(16).slice(-8);

/** One record for (appId, ip) at `time` (epoch ms), unique through its correlation id. */
export function arcRecord(appId: string, ip: string, time = Date.now()): Record<string, unknown> {
  serial++;
  return {
    time: new Date(time).toISOString(),
    resourceId:
      '/SUBSCRIPTIONS/6F1C2B3A-4D5E-4F60-8A7B-9C0D1E2F3A4B/RESOURCEGROUPS/RG-ARC/PROVIDERS/MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/ARC-01',
    operationName: 'MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/LISTCLUSTERUSERCREDENTIAL/ACTION',
    category: 'Action',
    resultType: 'Success',
    resultSignature: 'Succeeded.OK',
    durationMs: 0,
    callerIpAddress: ip,
    correlationId: `${base}-${hex((serial >> 16) & 0xffff, 4)}-4000-8000-${hex(serial, 12)}`,
    identity: {
      authorization: {
        scope:
          '/subscriptions/6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/resourceGroups/rg-arc/providers/Microsoft.Kubernetes/connectedClusters/arc-01',
        action: 'Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action',
        evidence: {
          role: 'Azure Arc Enabled Kubernetes Cluster User Role',
          roleAssignmentScope: '/subscriptions/6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/resourceGroups/rg-arc',
          roleAssignmentId: '5d1f3a7b9c2e4b48a6d0e8f1a2b3c4d5',
          roleDefinitionId: '00493d7278f64148b6c5d3ce8e4799dd',
          principalId: appId.replaceAll('-', ''),
          principalType: 'ServicePrincipal',
        },
      },
      claims: {
        aud: 'https://management.core.windows.net/',
        iss: 'https://sts.windows.net/9e8d7c6b-5a49-4382-b1c0-f1e2d3c4b5a6/',
        appid: appId,
        appidacr: '2',
        'http://schemas.microsoft.com/identity/claims/objectidentifier': appId,
        'http://schemas.microsoft.com/identity/claims/tenantid': '9e8d7c6b-5a49-4382-b1c0-f1e2d3c4b5a6',
        ver: '1.0',
      },
    },
    level: 'Information',
    location: 'global',
    properties: { statusCode: 'OK', serviceRequestId: null, eventCategory: 'Administrative' },
  };
}

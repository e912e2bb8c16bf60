import { describe, expect, it } from 'vitest';
import { dashGuid, isConnectedCluster, parseResourceId } from '../../src/core/azure-ids.ts';

describe('dashGuid', () => {
  it('dashes the undashed evidence ids of the real samples (FORMATS.md §0.2)', () => {
    expect(dashGuid('68b1adf93eb744b08eb8ce96522a08d3')).toBe('68b1adf9-3eb7-44b0-8eb8-ce96522a08d3');
    expect(dashGuid('7f06f09dd6764b44930adbec3f10e92b')).toBe('7f06f09d-d676-4b44-930a-dbec3f10e92b');
    // Owner
    expect(dashGuid('8e3af657a8ff443ca75c2fe8c4bcb635')).toBe('8e3af657-a8ff-443c-a75c-2fe8c4bcb635');
  });

  it('lower-cases, passes dashed GUIDs through, accepts braces and surrounding spaces', () => {
    expect(dashGuid('68B1ADF93EB744B08EB8CE96522A08D3')).toBe('68b1adf9-3eb7-44b0-8eb8-ce96522a08d3');
    expect(dashGuid('68b1adf9-3eb7-44b0-8eb8-ce96522a08d3')).toBe('68b1adf9-3eb7-44b0-8eb8-ce96522a08d3');
    expect(dashGuid(' {68B1ADF9-3EB7-44B0-8EB8-CE96522A08D3} ')).toBe('68b1adf9-3eb7-44b0-8eb8-ce96522a08d3');
  });

  it.each([
    '123abc45-8211-44e3-95xq-85137af64708', // from the Azure docs sample: not hex
    '12345a-1234b-123c-123d-12345678e', // from the common-schema docs sample
    '68b1adf93eb744b08eb8ce96522a08d',
    '68b1adf9-3eb744b0-8eb8-ce96522a08d3',
    '',
    'x'.repeat(1000),
  ])('returns undefined for non-GUID %j', (s) => expect(dashGuid(s)).toBeUndefined());

  it('gives the same answers on the fast path (lower-case forms) and the general one', () => {
    const dashed = '68b1adf9-3eb7-44b0-8eb8-ce96522a08d3';
    for (const form of [
      dashed,
      dashed.replaceAll('-', ''),
      dashed.toUpperCase(),
      dashed.replaceAll('-', '').toUpperCase(),
      `{${dashed}}`,
      ` ${dashed.replaceAll('-', '')}`,
      `${dashed.replaceAll('-', '')}\n`,
    ]) {
      expect(dashGuid(form), JSON.stringify(form)).toBe(dashed);
    }
    for (const bad of [
      '68b1adf93eb744b08eb8ce96522a08dg',
      '68b1adf9-3eb7-44b0-8eb8-ce96522a08dg',
      '68b1adf9_3eb7_44b0_8eb8_ce96522a08d3',
    ]) {
      expect(dashGuid(bad), bad).toBeUndefined();
    }
  });

  it('returns undefined for non-strings', () => {
    expect(dashGuid(undefined)).toBeUndefined();
    expect(dashGuid(12345)).toBeUndefined();
    expect(dashGuid({})).toBeUndefined();
  });
});

describe('parseResourceId', () => {
  const sub = '6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b';

  it('splits a connected cluster id', () => {
    const id = `/subscriptions/${sub}/resourceGroups/rg-arc/providers/Microsoft.Kubernetes/connectedClusters/arc-01`;
    const ref = parseResourceId(id);
    expect(ref).toEqual({
      id,
      key: id.toLowerCase(),
      subscriptionId: sub,
      resourceGroup: 'rg-arc',
      resourceType: 'Microsoft.Kubernetes/connectedClusters',
      name: 'arc-01',
    });
    expect(isConnectedCluster(ref)).toBe(true);
  });

  it('matches upper-case Event Hub ids case-insensitively and keeps the received case in the parts', () => {
    const id = `/SUBSCRIPTIONS/${sub}/RESOURCEGROUPS/RG-ARC/PROVIDERS/MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/ARC-01`;
    const ref = parseResourceId(id);
    expect(ref.subscriptionId).toBe(sub);
    expect(ref.resourceGroup).toBe('RG-ARC');
    expect(ref.resourceType).toBe('MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS');
    expect(ref.name).toBe('ARC-01');
    expect(ref.key).toBe(
      `/subscriptions/${sub}/resourcegroups/rg-arc/providers/microsoft.kubernetes/connectedclusters/arc-01`,
    );
    expect(isConnectedCluster(ref)).toBe(true);
    expect(
      parseResourceId(
        `/subscriptions/${sub}/resourcegroups/rg-arc/providers/microsoft.kubernetes/connectedclusters/arc-01`,
      ).key,
    ).toBe(ref.key);
  });

  it('gives the cluster for an id inside a connected cluster', () => {
    const ref = parseResourceId(
      `/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/c1/providers/Microsoft.KubernetesConfiguration/extensions/flux`,
    );
    expect(ref.name).toBe('c1');
    expect(isConnectedCluster(ref)).toBe(true);
  });

  it('splits nested types of the real upper-case Event Hub sample', () => {
    const ref = parseResourceId(
      '/SUBSCRIPTIONS/8a4de8b5-095c-47d0-a96f-a75130c61d53/RESOURCEGROUPS/SA-HEMA/PROVIDERS/MICROSOFT.EVENTHUB/NAMESPACES/AZURELSEVENTS/AUTHORIZATIONRULES/ROOTMANAGESHAREDACCESSKEY',
    );
    expect(ref.resourceType).toBe('MICROSOFT.EVENTHUB/NAMESPACES/AUTHORIZATIONRULES');
    expect(ref.name).toBe('ROOTMANAGESHAREDACCESSKEY');
    expect(isConnectedCluster(ref)).toBe(false);
  });

  it('handles tenant-level, subscription-only and garbage ids', () => {
    const tenant = parseResourceId(
      '/TeNaNtS/ffffffff-aaaa-bbbb-cccc-dddddddddddd/PrOvIdErS/Microsoft.aadiam',
    );
    expect(tenant.subscriptionId).toBeUndefined();
    expect(tenant.resourceType).toBe('Microsoft.aadiam');
    expect(parseResourceId(`/subscriptions/${sub}`)).toMatchObject({ subscriptionId: sub });
    expect(parseResourceId('garbage')).toMatchObject({ id: 'garbage', key: 'garbage' });
    expect(parseResourceId('')).toEqual({ id: '', key: '' });
    expect(isConnectedCluster(undefined)).toBe(false);
  });
});

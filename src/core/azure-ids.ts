import type { ClusterRef } from './detection.ts';

const GUID_DASHED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const GUID_UNDASHED = /^[0-9a-f]{32}$/;
const CONNECTED_CLUSTERS = 'microsoft.kubernetes/connectedclusters';

/**
 * A GUID in the dashed 8-4-4-4-12 lower-case form ARM and Graph expect, or undefined for anything
 * that is not a GUID. Activity-log `evidence` ids arrive as 32 hex characters without dashes
 * (`68b1adf93eb744b08eb8ce96522a08d3`); claims carry the same ids dashed. Braces are accepted.
 */
export function dashGuid(s: unknown): string | undefined {
  if (typeof s !== 'string' || s.length > 40) return undefined;
  // Fast path for the forms that arrive (three per event): lower-case, undashed or dashed.
  if (s.length === 32 && isLowerHex(s, 0, 32)) {
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
  }
  if (s.length === 36 && isDashedLowerGuid(s)) return s;
  let g = s.trim().toLowerCase();
  if (g.startsWith('{') && g.endsWith('}')) g = g.slice(1, -1);
  if (GUID_DASHED.test(g)) return g;
  if (!GUID_UNDASHED.test(g)) return undefined;
  return `${g.slice(0, 8)}-${g.slice(8, 12)}-${g.slice(12, 16)}-${g.slice(16, 20)}-${g.slice(20)}`;
}

function isLowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function isDashedLowerGuid(s: string): boolean {
  return (
    s[8] === '-' &&
    s[13] === '-' &&
    s[18] === '-' &&
    s[23] === '-' &&
    isLowerHex(s, 0, 8) &&
    isLowerHex(s, 9, 13) &&
    isLowerHex(s, 14, 18) &&
    isLowerHex(s, 19, 23) &&
    isLowerHex(s, 24, 36)
  );
}

/**
 * Splits an ARM resource id. Segment names (`subscriptions`, `resourceGroups`, `providers`) match
 * in any case, since Event Hub records send `/SUBSCRIPTIONS/…/RESOURCEGROUPS/…`; the parts keep the
 * case they arrived in and `key` is the lower-cased id for comparisons. For an id inside a
 * connected cluster (e.g. one of its extensions) `name` and `resourceType` are the cluster's.
 */
export function parseResourceId(id: string): ClusterRef {
  const trimmed = typeof id === 'string' ? id.trim() : '';
  const ref: ClusterRef = { id: trimmed, key: trimmed.toLowerCase() };
  const segs = trimmed.split('/').filter((seg) => seg !== '');
  let namespace: string | undefined;
  let types: string[] = [];
  let names: string[] = [];
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const lower = seg.toLowerCase();
    const next = segs[i + 1];
    if (namespace === undefined && lower === 'subscriptions' && next !== undefined) {
      ref.subscriptionId ??= next;
      i++;
    } else if (namespace === undefined && lower === 'resourcegroups' && next !== undefined) {
      ref.resourceGroup ??= next;
      i++;
    } else if (lower === 'providers' && next !== undefined) {
      if (namespace !== undefined && isConnectedClusterType(namespace, types)) break;
      namespace = next;
      types = [];
      names = [];
      i++;
    } else if (namespace !== undefined) {
      types.push(seg);
      if (next !== undefined) names.push(next);
      i++;
    }
  }
  if (namespace !== undefined) {
    ref.resourceType = types.length > 0 ? `${namespace}/${types.join('/')}` : namespace;
  }
  const name = names.length > 0 ? names[names.length - 1] : segs[segs.length - 1];
  if (name !== undefined) ref.name = name;
  return ref;
}

function isConnectedClusterType(namespace: string, types: readonly string[]): boolean {
  return types.length === 1 && `${namespace}/${types[0]}`.toLowerCase() === CONNECTED_CLUSTERS;
}

/** True when the id names an Azure Arc connected cluster (`Microsoft.Kubernetes/connectedClusters`). */
export function isConnectedCluster(ref: ClusterRef | undefined): boolean {
  return ref?.resourceType?.toLowerCase() === CONNECTED_CLUSTERS;
}

/** An RBAC principal type that names a group, in any case (evidence, role assignments). */
export const isGroup = (principalType: string | undefined): boolean =>
  principalType?.length === 5 && principalType.toLowerCase() === 'group';

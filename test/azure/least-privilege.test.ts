import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ARC_CLUSTER_USER_ROLE_ID, actionMatches, classifyRole } from '../../src/core/remediation-plan.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const role = JSON.parse(readFileSync(path.join(ROOT, 'deploy/azure/arc-responder-role.json'), 'utf8')) as {
  Name: string;
  IsCustom: boolean;
  Actions: string[];
  NotActions: string[];
  DataActions: string[];
  AssignableScopes: string[];
};
const condition = readFileSync(path.join(ROOT, 'deploy/azure/arc-responder-condition.txt'), 'utf8');

/** Every ARM permission the remediator and the enricher use (see src/azure/arm.ts). */
const USED = [
  'Microsoft.Authorization/roleAssignments/read',
  'Microsoft.Authorization/roleAssignments/delete',
  'Microsoft.Authorization/roleAssignments/write',
  'Microsoft.Authorization/roleDefinitions/read',
  'Microsoft.Authorization/roleAssignmentScheduleInstances/read',
  'Microsoft.Kubernetes/connectedClusters/read',
];

describe('deploy/azure/arc-responder-role.json', () => {
  it('grants exactly what arc-responder calls, with no wildcard and no data action', () => {
    expect(role.IsCustom).toBe(true);
    for (const action of USED) expect(role.Actions.some((a) => actionMatches(a, action))).toBe(true);
    expect(role.Actions).toHaveLength(USED.length);
    expect(role.Actions.some((a) => a.includes('*'))).toBe(false);
    expect(role.DataActions).toEqual([]);
    expect(role.AssignableScopes.every((s) => s.startsWith('/subscriptions/'))).toBe(true);
  });

  it('cannot itself fetch Arc cluster credentials', () => {
    expect(classifyRole({ permissions: [{ actions: role.Actions, notActions: role.NotActions }] })).toBe(
      'none',
    );
  });

  it('ships an ABAC condition that limits writes and deletes to the Arc Cluster User role', () => {
    expect(condition).toContain("ActionMatches{'Microsoft.Authorization/roleAssignments/delete'}");
    expect(condition).toContain("ActionMatches{'Microsoft.Authorization/roleAssignments/write'}");
    expect(condition).toContain(
      `@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${ARC_CLUSTER_USER_ROLE_ID}}`,
    );
    expect(condition).toContain(
      `@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${ARC_CLUSTER_USER_ROLE_ID}}`,
    );
    // Balanced parentheses, as the condition parser requires.
    let depth = 0;
    for (const ch of condition) {
      if (ch === '(') depth++;
      if (ch === ')') depth--;
      expect(depth).toBeGreaterThanOrEqual(0);
    }
    expect(depth).toBe(0);
  });
});

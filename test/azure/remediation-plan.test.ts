import { describe, expect, it } from 'vitest';
import {
  type AssignmentInfo,
  actionMatches,
  buildBroadRemovalPlan,
  buildRemediationPlan,
  classifyRole,
  isSafeScope,
  KNOWN_ROLES,
  type RoleDefinitionInfo,
  restoreInfo,
  samePrincipal,
  scopeCovers,
} from '../../src/core/remediation-plan.ts';
import {
  A,
  CLUSTER_ID,
  MG_SCOPE,
  OTHER_CLUSTER_ID,
  RG_SCOPE,
  ROLE,
  SP_ID,
  SUB,
  SUB_SCOPE,
  spDetection,
  USER_ID,
} from './helpers.ts';

const endpoints = { arm: 'https://management.azure.com', graph: 'https://graph.microsoft.com' };
const roleDefId = (guid: string) =>
  `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${guid}`;
const assignment = (
  name: string,
  scope: string,
  role: string,
  extra: Partial<AssignmentInfo> = {},
): AssignmentInfo => ({
  id: `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}`,
  scope,
  roleDefinitionId: roleDefId(role),
  principalId: SP_ID,
  principalType: 'ServicePrincipal',
  ...extra,
});
const roles = new Map<string, RoleDefinitionInfo>([
  ...KNOWN_ROLES,
  [ROLE.reader, { id: ROLE.reader, roleName: 'Reader', permissions: [{ actions: ['*/read'] }] }],
  [
    ROLE.customArc,
    {
      id: ROLE.customArc,
      roleName: 'Arc proxy users (custom)',
      permissions: [{ actions: ['microsoft.kubernetes/connectedclusters/LISTCLUSTERUSERCREDENTIAL/ACTION'] }],
    },
  ],
  [
    ROLE.customWildcard,
    {
      id: ROLE.customWildcard,
      roleName: 'Arc operators',
      permissions: [{ actions: ['Microsoft.Kubernetes/connectedClusters/*'] }],
    },
  ],
  [
    ROLE.customNotAction,
    {
      id: ROLE.customNotAction,
      roleName: 'All but Arc creds',
      permissions: [
        { actions: ['*'], notActions: ['Microsoft.Kubernetes/connectedClusters/listClusterUser*'] },
      ],
    },
  ],
]);

describe('wildcard action semantics', () => {
  it('matches case-insensitively with * spanning segments', () => {
    const action = 'Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action';
    expect(actionMatches('*', action)).toBe(true);
    expect(actionMatches('Microsoft.Kubernetes/*', action)).toBe(true);
    expect(actionMatches('*/action', action)).toBe(true);
    expect(
      actionMatches('MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/LISTCLUSTERUSERCREDENTIAL/ACTION', action),
    ).toBe(true);
    expect(actionMatches('*/read', action)).toBe(false);
    expect(
      actionMatches('Microsoft.Kubernetes/connectedClusters/listClusterUserCredentials/action', action),
    ).toBe(false);
    expect(
      actionMatches('Microsoft.Kubernetes.connectedClusters', 'MicrosoftXKubernetes.connectedClusters'),
    ).toBe(false);
  });

  it('classifies roles: named action is specific, wildcard grant is broad, NotActions subtract', () => {
    expect(classifyRole(KNOWN_ROLES.get(ROLE.clusterUser)!)).toBe('specific');
    expect(classifyRole(KNOWN_ROLES.get(ROLE.owner)!)).toBe('broad');
    expect(classifyRole(KNOWN_ROLES.get(ROLE.contributor)!)).toBe('broad');
    expect(classifyRole(roles.get(ROLE.customWildcard)!)).toBe('broad');
    expect(classifyRole(roles.get(ROLE.customArc)!)).toBe('specific');
    expect(classifyRole(roles.get(ROLE.reader)!)).toBe('none');
    expect(classifyRole(roles.get(ROLE.customNotAction)!)).toBe('none');
    // A role naming the Arc action among other changes takes more than the Arc access when removed.
    const alsoElsewhere = (extra: string) =>
      classifyRole({
        permissions: [
          {
            actions: [
              'Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action',
              'Microsoft.Resources/subscriptions/read',
              extra,
            ],
          },
        ],
      });
    expect(alsoElsewhere('Microsoft.Authorization/roleAssignments/write')).toBe('broad');
    expect(alsoElsewhere('Microsoft.KeyVault/*')).toBe('broad');
    expect(alsoElsewhere('Microsoft.Compute/virtualMachines/start/action')).toBe('broad');
    // Reads and the cluster's own actions stay with the Arc access.
    expect(alsoElsewhere('Microsoft.Compute/*/read')).toBe('specific');
    expect(alsoElsewhere('Microsoft.Kubernetes/connectedClusters/read')).toBe('specific');
    // A wildcard that matches the credential actions only is as specific as naming them.
    const only = (...actions: string[]) => classifyRole({ permissions: [{ actions }] });
    expect(only('Microsoft.Kubernetes/connectedClusters/listClusterUser*/action')).toBe('specific');
    expect(only('microsoft.kubernetes/connectedclusters/LISTCLUSTERUSERCREDENTIAL*')).toBe('specific');
    expect(
      only(
        'Microsoft.Kubernetes/connectedClusters/listClusterUser*/action',
        'Microsoft.Resources/subscriptions/read',
      ),
    ).toBe('specific');
    // Any wider one is not: it matches other actions of the cluster, or of anything.
    expect(only('Microsoft.Kubernetes/connectedClusters/list*/action')).toBe('broad');
    expect(only('Microsoft.Kubernetes/connectedClusters/*/action')).toBe('broad');
    expect(only('Microsoft.Kubernetes/*')).toBe('broad');
    expect(only('*/listClusterUserCredential/action')).toBe('broad');
    // The plural preview action alone still counts.
    expect(
      classifyRole({
        permissions: [
          { actions: ['Microsoft.Kubernetes/connectedClusters/listClusterUserCredentials/action'] },
        ],
      }),
    ).toBe('specific');
  });

  it('decides scope coverage on path-segment boundaries, case-insensitively', () => {
    expect(scopeCovers(CLUSTER_ID, CLUSTER_ID.toUpperCase())).toBe(true);
    expect(scopeCovers(RG_SCOPE.toLowerCase(), CLUSTER_ID)).toBe(true);
    expect(scopeCovers(`${SUB_SCOPE}/`, CLUSTER_ID)).toBe(true);
    expect(scopeCovers(MG_SCOPE, CLUSTER_ID)).toBe(true);
    expect(scopeCovers('/', CLUSTER_ID)).toBe(true);
    expect(scopeCovers(`${RG_SCOPE}-staging`, CLUSTER_ID)).toBe(false);
    // A scope that is only a prefix of the resource group's name: `…/rg-arc` is not `…/rg-arc-prod`.
    expect(scopeCovers(RG_SCOPE.slice(0, -'-prod'.length), CLUSTER_ID)).toBe(false);
    expect(scopeCovers(CLUSTER_ID.slice(0, -1), CLUSTER_ID)).toBe(false);
    expect(scopeCovers(OTHER_CLUSTER_ID, CLUSTER_ID)).toBe(false);
    expect(
      scopeCovers(`${CLUSTER_ID}/providers/Microsoft.KubernetesConfiguration/extensions/flux`, CLUSTER_ID),
    ).toBe(false);
  });

  it('refuses scopes that could smuggle a query or path traversal into a request', () => {
    expect(isSafeScope(CLUSTER_ID)).toBe(true);
    expect(isSafeScope(`${RG_SCOPE}?api-version=1`)).toBe(false);
    expect(isSafeScope(`${RG_SCOPE}/../../x`)).toBe(false);
    expect(isSafeScope(`${RG_SCOPE}#x`)).toBe(false);
    expect(isSafeScope('/subscriptions/a b')).toBe(false);
  });
});

describe('buildRemediationPlan', () => {
  for (const [label, scope] of [
    ['cluster', CLUSTER_ID],
    ['resource group', RG_SCOPE],
    ['subscription', SUB_SCOPE],
  ] as const) {
    it(`removes the evidence assignment at ${label} scope and disables the service principal`, () => {
      const plan = buildRemediationPlan({
        detection: spDetection(scope),
        endpoints,
        assignments: [assignment(A.evidence, scope, ROLE.clusterUser)],
        roles,
      });
      const id = `${scope}/providers/Microsoft.Authorization/roleAssignments/${A.evidence}`;
      expect(plan.steps.map((s) => s.kind)).toEqual(['remove-assignment', 'disable-service-principal']);
      expect(plan.steps[0]).toMatchObject({
        id: `remove-assignment:${id.toLowerCase()}`,
        target: id,
        call: `DELETE https://management.azure.com${id}?api-version=2022-04-01`,
      });
      expect(restoreInfo(plan.steps[0]!)).toEqual({
        scope,
        roleDefinitionId: roleDefId(ROLE.clusterUser),
        principalId: SP_ID,
        principalType: 'ServicePrincipal',
        roleName: 'Azure Arc Enabled Kubernetes Cluster User Role',
      });
      expect(plan.steps[1]).toMatchObject({
        id: `disable-service-principal:${SP_ID}`,
        target: SP_ID,
        call: `PATCH https://graph.microsoft.com/v1.0/servicePrincipals/${SP_ID} {"accountEnabled":false}`,
      });
      expect(plan.stillHasAccessThrough).toEqual([]);
      expect(plan.warnings).toEqual([]);
    });
  }

  it('adds inherited assignments that grant the action and lists broad roles as remaining access', () => {
    const plan = buildRemediationPlan({
      detection: spDetection(CLUSTER_ID),
      endpoints,
      assignments: [
        assignment(A.evidence, CLUSTER_ID, ROLE.clusterUser),
        assignment(A.rg, RG_SCOPE, ROLE.customArc),
        assignment(A.mg, MG_SCOPE, ROLE.clusterUser, {
          roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${ROLE.clusterUser}`,
        }),
        assignment(A.owner, SUB_SCOPE, ROLE.owner),
        assignment(A.customWildcard, RG_SCOPE, ROLE.customWildcard),
        assignment(A.reader, SUB_SCOPE, ROLE.reader),
        assignment(A.notAction, SUB_SCOPE, ROLE.customNotAction),
        assignment(A.otherCluster, OTHER_CLUSTER_ID, ROLE.clusterUser),
      ],
      roles,
    });
    expect(plan.steps.map((s) => s.target)).toEqual([
      `${CLUSTER_ID}/providers/Microsoft.Authorization/roleAssignments/${A.evidence}`,
      `${RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments/${A.rg}`,
      `${MG_SCOPE}/providers/Microsoft.Authorization/roleAssignments/${A.mg}`,
      SP_ID,
    ]);
    expect(plan.stillHasAccessThrough.map((r) => [r.roleName, r.scope])).toEqual([
      ['Owner', SUB_SCOPE],
      ['Arc operators', RG_SCOPE],
    ]);
    expect(plan.warnings).toEqual([]);
  });

  it("plans nothing for another principal's assignments in the listing, whatever their role", () => {
    const other = { principalId: USER_ID, principalType: 'User' };
    const plan = buildRemediationPlan({
      detection: spDetection(CLUSTER_ID),
      endpoints,
      assignments: [
        assignment(A.evidence, CLUSTER_ID, ROLE.clusterUser),
        assignment(A.rg, RG_SCOPE, ROLE.clusterUser, other),
        assignment(A.owner, SUB_SCOPE, ROLE.owner, other),
      ],
      roles,
    });
    expect(plan.steps.map((s) => s.target)).toEqual([
      `${CLUSTER_ID}/providers/Microsoft.Authorization/roleAssignments/${A.evidence}`,
      SP_ID,
    ]);
    expect(plan.stillHasAccessThrough).toEqual([]);
    expect(plan.warnings).toEqual([]);
  });

  it('lists assignments at the root scope (/) as remaining access, with a warning, and never removes them', () => {
    const atRoot = (name: string, role: string) =>
      assignment(name, '/', role, {
        id: `/providers/Microsoft.Authorization/roleAssignments/${name}`,
        roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${role}`,
      });
    const arcAtRoot = 'a0a0a0a0-0000-4000-8000-00000000000a';
    const ownerAtRoot = 'a0a0a0a0-0000-4000-8000-00000000000b';
    const plan = buildRemediationPlan({
      detection: spDetection(CLUSTER_ID),
      endpoints,
      assignments: [
        assignment(A.evidence, CLUSTER_ID, ROLE.clusterUser),
        atRoot(arcAtRoot, ROLE.clusterUser),
        atRoot(ownerAtRoot, ROLE.owner),
      ],
      roles,
    });
    expect(plan.steps.map((s) => s.target)).toEqual([
      `${CLUSTER_ID}/providers/Microsoft.Authorization/roleAssignments/${A.evidence}`,
      SP_ID,
    ]);
    expect(plan.stillHasAccessThrough.map((r) => [r.roleName, r.scope, r.kind])).toEqual([
      ['Azure Arc Enabled Kubernetes Cluster User Role', '/', 'root'],
      ['Owner', '/', 'root'],
    ]);
    expect(plan.warnings.join('\n')).toContain(
      `at the tenant's root scope (/): tenant-wide access that this service does not remove; remove /providers/Microsoft.Authorization/roleAssignments/${arcAtRoot} in Azure`,
    );
    // Nor does "Remove broad roles too".
    expect(buildBroadRemovalPlan(plan, endpoints).steps).toEqual([]);
  });

  it('leaves a broad evidence role in place and says so', () => {
    const d = spDetection(SUB_SCOPE, {});
    d.evidence.roleDefinitionId = ROLE.owner;
    d.evidence.role = 'Owner';
    const plan = buildRemediationPlan({ detection: d, endpoints });
    expect(plan.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
    expect(plan.stillHasAccessThrough).toMatchObject([
      { roleName: 'Owner', scope: SUB_SCOPE, kind: 'broad-role' },
    ]);
    expect(plan.warnings.join('\n')).toMatch(/broad role Owner/);
  });

  it('does not remove a group assignment named in the evidence', () => {
    const d = spDetection(RG_SCOPE);
    d.evidence.principalType = 'Group';
    d.evidence.principalId = '99999999-8888-4777-8666-555544443333';
    const plan = buildRemediationPlan({ detection: d, endpoints });
    expect(plan.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
    expect(plan.stillHasAccessThrough).toMatchObject([{ kind: 'group' }]);
    expect(plan.warnings.join('\n')).toMatch(/group/);
  });

  it("never removes a group's assignment, even when the detection gives the group's id as the caller's", () => {
    // As a detection stored before group evidence was told apart: no object id claim, so the
    // evidence's principal (the group) stood in for the caller.
    const group = '99999999-8888-4777-8666-555544443333';
    const d = spDetection(RG_SCOPE);
    d.principalId = group;
    d.evidence.principalType = 'Group';
    d.evidence.principalId = group;
    const id = assignment(A.evidence, RG_SCOPE, ROLE.clusterUser).id;
    const plan = buildRemediationPlan({
      detection: d,
      endpoints,
      evidenceAssignment: {
        status: 'found',
        assignment: assignment(A.evidence, RG_SCOPE, ROLE.clusterUser, {
          id,
          principalId: group,
          principalType: 'Group',
        }),
      },
      roles: new Map([[ROLE.clusterUser, KNOWN_ROLES.get(ROLE.clusterUser)!]]),
    });
    expect(plan.steps.some((s) => s.kind === 'remove-assignment')).toBe(false);
    expect(plan.stillHasAccessThrough).toMatchObject([{ kind: 'group', assignmentId: id }]);
    expect(plan.warnings.join('\n')).toMatch(/made to group 99999999-.*: not removed/);
  });

  it("never lists a group's assignment as the caller's own, even under the group's id", () => {
    const group = '99999999-8888-4777-8666-555544443333';
    const d = spDetection(CLUSTER_ID, { principalId: group });
    const plan = buildRemediationPlan({
      detection: d,
      endpoints,
      assignments: [
        assignment('0a0a0a0a-0000-4000-8000-000000000001', CLUSTER_ID, ROLE.clusterUser, {
          principalId: group,
          principalType: 'Group',
        }),
        assignment('0a0a0a0a-0000-4000-8000-000000000002', RG_SCOPE, ROLE.owner, {
          principalId: group,
          principalType: 'Group',
        }),
      ],
      roles: new Map([
        [ROLE.clusterUser, KNOWN_ROLES.get(ROLE.clusterUser)!],
        [ROLE.owner, KNOWN_ROLES.get(ROLE.owner)!],
      ]),
    });
    expect(plan.steps.filter((s) => s.kind === 'remove-assignment').map((s) => s.target)).not.toContain(
      `${CLUSTER_ID}/providers/Microsoft.Authorization/roleAssignments/0a0a0a0a-0000-4000-8000-000000000001`,
    );
    expect(plan.stillHasAccessThrough.filter((r) => r.kind === 'broad-role')).toEqual([]);
    expect(buildBroadRemovalPlan(plan, endpoints).steps).toEqual([]);
  });

  it('falls back to the evidence alone and carries the reader warnings', () => {
    const plan = buildRemediationPlan({
      detection: spDetection(CLUSTER_ID),
      endpoints,
      warnings: ['could not list the role assignments at the cluster'],
    });
    expect(plan.steps.map((s) => s.kind)).toEqual(['remove-assignment', 'disable-service-principal']);
    expect(restoreInfo(plan.steps[0]!)?.roleDefinitionId).toBe(roleDefId(ROLE.clusterUser));
    expect(plan.warnings).toEqual(['could not list the role assignments at the cluster']);
  });

  it('leaves assignments of unreadable roles in place with a warning', () => {
    const unknownRole = '12121212-3434-4565-8787-909090909090';
    const plan = buildRemediationPlan({
      detection: spDetection(CLUSTER_ID),
      endpoints,
      assignments: [
        assignment(A.evidence, CLUSTER_ID, ROLE.clusterUser),
        assignment(A.rg, RG_SCOPE, unknownRole),
      ],
      roles,
    });
    expect(plan.steps).toHaveLength(2);
    expect(plan.warnings.join('\n')).toMatch(new RegExp(`could not read role definition ${unknownRole}`));
  });

  it('disables a user and revokes its sessions instead of touching a service principal', () => {
    const d = spDetection(CLUSTER_ID, {
      principalId: USER_ID,
      principalType: 'User',
      user: { upn: 'mallory@contoso.example' },
    });
    d.evidence.principalId = USER_ID;
    d.evidence.principalType = 'User';
    const plan = buildRemediationPlan({ detection: d, endpoints });
    expect(plan.steps.map((s) => [s.kind, s.target])).toEqual([
      ['remove-assignment', `${CLUSTER_ID}/providers/Microsoft.Authorization/roleAssignments/${A.evidence}`],
      ['disable-user', USER_ID],
      ['revoke-user-sessions', USER_ID],
    ]);
    expect(plan.steps[2]?.call).toBe(
      `POST https://graph.microsoft.com/v1.0/users/${USER_ID}/revokeSignInSessions`,
    );
  });

  it('uses the appId form when the object id is unknown', () => {
    const d = spDetection(CLUSTER_ID, { principalId: undefined });
    d.evidence = {};
    const plan = buildRemediationPlan({ detection: d, endpoints });
    expect(plan.steps).toMatchObject([
      {
        kind: 'disable-service-principal',
        call: `PATCH https://graph.microsoft.com/v1.0/servicePrincipals(appId='${d.appId}') {"accountEnabled":false}`,
        targetIs: 'appId',
      },
    ]);
    expect(plan.warnings.join('\n')).toMatch(/names no role assignment/);
  });

  it('does not guess a principal kind, and ignores malformed ids instead of building calls from them', () => {
    const d = spDetection(`${RG_SCOPE}?x=1`, { principalType: undefined });
    delete d.evidence.principalType;
    d.evidence.roleAssignmentId = 'not-a-guid';
    const plan = buildRemediationPlan({ detection: d, endpoints });
    expect(plan.steps).toEqual([]);
    expect(plan.warnings.join('\n')).toMatch(/not a valid ARM scope/);
    expect(plan.warnings.join('\n')).toMatch(/unknown: it is not disabled/);
  });

  it('builds the separately confirmed plan that removes the broad roles', () => {
    const plan = buildRemediationPlan({
      detection: spDetection(CLUSTER_ID),
      endpoints,
      assignments: [
        assignment(A.evidence, CLUSTER_ID, ROLE.clusterUser),
        assignment(A.owner, SUB_SCOPE, ROLE.owner),
      ],
      roles,
    });
    const broad = buildBroadRemovalPlan(plan, endpoints);
    const ownerId = `${SUB_SCOPE}/providers/Microsoft.Authorization/roleAssignments/${A.owner}`;
    expect(broad.steps).toMatchObject([{ kind: 'remove-assignment', target: ownerId }]);
    expect(restoreInfo(broad.steps[0]!)).toMatchObject({
      scope: SUB_SCOPE,
      roleDefinitionId: roleDefId(ROLE.owner),
      principalId: SP_ID,
    });
    expect(broad.steps[0]?.description).toMatch(/loses everything/);
    expect(broad.stillHasAccessThrough).toEqual([]);
  });
});

describe('buildRemediationPlan: the evidence assignment as read from ARM', () => {
  const evidenceId = `${CLUSTER_ID}/providers/Microsoft.Authorization/roleAssignments/${A.evidence}`;
  const other = 'ae5ec7ea-0000-4000-8000-00000000beef';

  it('removes it when ARM shows it is the principal’s own Arc role', () => {
    const plan = buildRemediationPlan({
      detection: spDetection(CLUSTER_ID),
      endpoints,
      evidenceAssignment: {
        status: 'found',
        assignment: assignment(A.evidence, CLUSTER_ID, ROLE.clusterUser),
      },
      roles,
    });
    expect(plan.steps.map((s) => s.target)).toEqual([evidenceId, SP_ID]);
    expect(plan.steps[0]?.description).not.toMatch(/unverified/);
    expect(plan.warnings).toEqual([]);
  });

  it('never removes another principal’s assignment, whatever its role, and puts the alarm first', () => {
    for (const role of [ROLE.owner, ROLE.clusterUser]) {
      const plan = buildRemediationPlan({
        detection: spDetection(CLUSTER_ID),
        endpoints,
        warnings: ['an earlier reader warning'],
        evidenceAssignment: {
          status: 'found',
          assignment: assignment(A.evidence, CLUSTER_ID, role, { principalId: other, principalType: 'User' }),
        },
        roles,
      });
      expect(plan.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
      expect(plan.warnings[0]).toMatch(/^POSSIBLE TAMPERING: .*different principal/);
      expect(plan.warnings[1]).toBe('an earlier reader warning');
      expect(plan.stillHasAccessThrough).toEqual([]);
      expect(buildBroadRemovalPlan(plan, endpoints).steps).toEqual([]);
    }
  });

  it('plans nothing for it when it is gone, unreadable, of an unreadable role, or the principal is unknown', () => {
    const gone = buildRemediationPlan({
      detection: spDetection(CLUSTER_ID),
      endpoints,
      evidenceAssignment: { status: 'absent' },
    });
    expect(gone.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
    expect(gone.warnings).toEqual([
      `the role assignment named in the evidence is already gone (ARM has no ${evidenceId})`,
    ]);

    const unreadable = buildRemediationPlan({
      detection: spDetection(CLUSTER_ID),
      endpoints,
      evidenceAssignment: { status: 'unreadable', error: '403 AuthorizationFailed', fix: 'grant read' },
    });
    expect(unreadable.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
    expect(unreadable.warnings[0]).toBe(
      `could not read the role assignment named in the evidence (403 AuthorizationFailed): it is not removed, since it could not be checked; grant read: ${evidenceId}`,
    );

    const unknownRole = '12121212-3434-4565-8787-909090909090';
    const noRole = buildRemediationPlan({
      detection: spDetection(CLUSTER_ID),
      endpoints,
      evidenceAssignment: { status: 'found', assignment: assignment(A.evidence, CLUSTER_ID, unknownRole) },
      roles,
    });
    expect(noRole.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
    expect(noRole.warnings[0]).toMatch(/could not read role definition 12121212-.*roleDefinitions\/read/);

    const d = spDetection(CLUSTER_ID, { principalId: undefined });
    delete d.evidence.principalId;
    const nobody = buildRemediationPlan({
      detection: d,
      endpoints,
      evidenceAssignment: {
        status: 'found',
        assignment: assignment(A.evidence, CLUSTER_ID, ROLE.clusterUser),
      },
      roles,
    });
    expect(nobody.steps.map((s) => s.kind)).toEqual(['disable-service-principal']);
    expect(nobody.warnings[0]).toMatch(/no principal was confirmed/);
  });

  it('labels a step planned from the evidence alone as unverified', () => {
    const plan = buildRemediationPlan({ detection: spDetection(CLUSTER_ID), endpoints });
    expect(plan.steps[0]?.description).toMatch(
      /\(unverified: taken from the detection, not checked in Azure\)$/,
    );
  });
});

describe('samePrincipal', () => {
  const user = (principalId: string | undefined, appId = '04b07795-8ddb-461a-bbee-02f9e1bf7b46') =>
    spDetection(CLUSTER_ID, {
      appId,
      principalId,
      principalType: 'User',
      evidence: { principalType: 'User' },
    });

  it('matches a service principal by its appid, in any spelling', () => {
    const a = spDetection(CLUSTER_ID, { sourceIp: '192.0.2.1' });
    expect(
      samePrincipal(a, spDetection(CLUSTER_ID, { appId: a.appId.toUpperCase().replaceAll('-', '') })),
    ).toBe(true);
    expect(samePrincipal(a, spDetection(CLUSTER_ID, { appId: '11111111-2222-4333-8444-555555555555' }))).toBe(
      false,
    );
  });

  it('matches a user only by the same object id, never a service principal or another user of the appid', () => {
    const alice = user('1a1a1a1a-0000-4000-8000-0000000000a1');
    expect(samePrincipal(alice, user('1A1A1A1A0000400080000000000000A1'))).toBe(true);
    expect(samePrincipal(alice, user('2b2b2b2b-0000-4000-8000-0000000000b2'))).toBe(false);
    expect(samePrincipal(alice, user(undefined))).toBe(false);
    expect(samePrincipal(user(undefined), user(undefined))).toBe(false);
    expect(samePrincipal(alice, spDetection(CLUSTER_ID, { appId: alice.appId }))).toBe(false);
  });
});

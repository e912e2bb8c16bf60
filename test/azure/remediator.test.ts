import { ClientSecretCredential } from '@azure/identity';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { mayHaveApplied } from '../../src/azure/errors.ts';
import { createAzureRemediator, listRemediationAttempts } from '../../src/azure/index.ts';
import type { AzureDeps } from '../../src/azure/services.ts';
import type { RemediationPlan, RemediationResult } from '../../src/core/remediation.ts';
import { restoreInfo, timeBoundSeenIn } from '../../src/core/remediation-plan.ts';
import type { FakeAzure } from '../support/fake-azure.ts';
import {
  A,
  APP_ID,
  CLUSTER_ID,
  closeOpened,
  configFor,
  FAST_RETRY,
  fakeWithEvidenceAt,
  MG_SCOPE,
  OTHER_CLUSTER_ID,
  quietLogger,
  RG_SCOPE,
  ROLE,
  remediatorOn,
  SP_ID,
  SUB_SCOPE,
  spDetection,
  USER_ID,
} from './helpers.ts';

afterEach(closeOpened);

async function setup(
  evidenceScope: string,
  mode: 'dry-run' | 'live' = 'live',
  extra: Pick<AzureDeps, 'requestTimeoutMs'> = {},
) {
  const fake = await fakeWithEvidenceAt(evidenceScope);
  const { store, remediator } = await remediatorOn(fake, mode, extra);
  return { fake, store, remediator };
}

const idAt = (scope: string, name: string) =>
  `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}`;
const deletes = (fake: FakeAzure) => fake.calls('arm', 'DELETE').map((r) => r.path);

describe('Azure remediator: plan', () => {
  for (const [label, scope] of [
    ['cluster', CLUSTER_ID],
    ['resource group', RG_SCOPE],
    ['subscription', SUB_SCOPE],
  ] as const) {
    it(`plans from the listing for evidence at ${label} scope, through DefaultAzureCredential`, async () => {
      const { fake, remediator } = await setup(scope);
      const plan = await remediator.plan(spDetection(scope));
      expect(plan.warnings).toEqual([]);
      expect(plan.steps.map((s) => s.target)).toEqual([idAt(scope, A.evidence), SP_ID]);
      expect(restoreInfo(plan.steps[0]!)?.roleDefinitionId).toBe(
        `${SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/${ROLE.clusterUser}`,
      );

      // The listing: at the cluster, filtered on the principal, the id without a leading "//".
      const list = fake.calls('arm', 'GET').find((r) => r.path.endsWith('/roleAssignments'));
      expect(list?.path).toBe(`${CLUSTER_ID}/providers/Microsoft.Authorization/roleAssignments`);
      expect(list?.query.$filter).toBe(`principalId eq '${SP_ID}'`);
      for (const r of fake.calls('arm')) expect(r.rawPath.startsWith('//')).toBe(false);
      // Tokens: one secret-credential grant per audience, scopes derived from the endpoints.
      const scopes = fake.calls('login', 'POST').map((r) => r.scope);
      expect(scopes).toContain(`${fake.armUrl}/.default`);
      expect(fake.mutations()).toEqual([]);
    });
  }

  it('adds inherited assignments and reports broad roles; reads each role definition once', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    fake
      .assign({
        name: A.rg,
        scope: RG_SCOPE,
        roleDefinitionId: ROLE.customArc,
        principalId: SP_ID,
        principalType: 'ServicePrincipal',
      })
      .assign({
        name: A.mg,
        scope: MG_SCOPE,
        roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${ROLE.clusterUser}`,
        principalId: SP_ID,
        principalType: 'ServicePrincipal',
      })
      .assign({
        name: A.owner,
        scope: SUB_SCOPE,
        roleDefinitionId: ROLE.owner,
        principalId: SP_ID,
        principalType: 'ServicePrincipal',
      })
      .assign({
        name: A.reader,
        scope: SUB_SCOPE,
        roleDefinitionId: ROLE.reader,
        principalId: SP_ID,
        principalType: 'ServicePrincipal',
      })
      .assign({
        name: A.otherCluster,
        scope: OTHER_CLUSTER_ID,
        roleDefinitionId: ROLE.clusterUser,
        principalId: SP_ID,
        principalType: 'ServicePrincipal',
      })
      .assign({
        scope: RG_SCOPE,
        roleDefinitionId: ROLE.clusterUser,
        principalId: USER_ID,
        principalType: 'User',
      });
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.steps.map((s) => s.target)).toEqual([
      idAt(CLUSTER_ID, A.evidence),
      idAt(RG_SCOPE, A.rg),
      idAt(MG_SCOPE, A.mg),
      SP_ID,
    ]);
    expect(plan.stillHasAccessThrough).toMatchObject([
      { roleName: 'Owner', scope: SUB_SCOPE, assignmentId: idAt(SUB_SCOPE, A.owner) },
    ]);
    const roleReads = fake.calls('arm', 'GET').filter((r) => r.path.includes('/roleDefinitions/'));
    const guids = roleReads.map((r) => r.path.split('/').pop());
    expect(new Set(guids).size).toBe(guids.length);

    // A second plan uses the cached role definitions.
    fake.clearRequests();
    await remediator.plan(spDetection(CLUSTER_ID));
    expect(fake.calls('arm', 'GET').filter((r) => r.path.includes('/roleDefinitions/'))).toEqual([]);
  });

  it('follows nextLink pages of the listing', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    fake.pageSize = 1;
    fake
      .assign({
        name: A.rg,
        scope: RG_SCOPE,
        roleDefinitionId: ROLE.clusterUser,
        principalId: SP_ID,
        principalType: 'ServicePrincipal',
      })
      .assign({
        name: A.sub,
        scope: SUB_SCOPE,
        roleDefinitionId: ROLE.customArc,
        principalId: SP_ID,
        principalType: 'ServicePrincipal',
      });
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.steps.map((s) => s.target)).toEqual([
      idAt(CLUSTER_ID, A.evidence),
      idAt(RG_SCOPE, A.rg),
      idAt(SUB_SCOPE, A.sub),
      SP_ID,
    ]);
    const pages = fake.calls('arm', 'GET').filter((r) => r.path.endsWith('/roleAssignments'));
    expect(pages.map((r) => r.query.$skipToken)).toEqual([undefined, '1', '2']);
  });

  it('retries a throttled listing after Retry-After', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    fake.throttle('arm', 'GET', '/roleAssignments', 0, 2);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.warnings).toEqual([]);
    const statuses = fake
      .calls('arm', 'GET')
      .filter((r) => r.path.endsWith('/roleAssignments'))
      .map((r) => r.status);
    expect(statuses).toEqual([429, 429, 200]);
  });

  it('signs the retry of a throttled delete with a fresh token when the first one expired during the wait', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID, 'live');
    fake.tokenLifetimeSeconds = 1;
    fake.throttle('arm', 'DELETE', A.evidence, 2, 1);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const result = await remediator.execute(plan);
    const removal = plan.steps.find((step) => step.target === idAt(CLUSTER_ID, A.evidence));
    expect(result.steps.find((r) => r.stepId === removal?.id)?.status).toBe('done');
    const deletes = fake.calls('arm', 'DELETE');
    expect(deletes.map((r) => r.status)).toEqual([429, 200]);
    // The retry went out with another token than the first attempt's, which had expired.
    expect(deletes[0]?.bearer).toBeDefined();
    expect(deletes[1]?.bearer).not.toBe(deletes[0]?.bearer);
  });

  it('signs the retry of a throttled delete from the token it already holds', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID, 'live');
    fake.throttle('arm', 'DELETE', A.evidence, 0, 1);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const armTokens = () => fake.calls('login', 'POST').filter((r) => r.scope?.includes(fake.armUrl)).length;
    const before = armTokens();
    expect(before).toBe(1);
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(true);
    expect(fake.calls('arm', 'DELETE').map((r) => r.status)).toEqual([429, 200]);
    // The retry asks the credential as the SDK does, so no second token request goes out.
    expect(armTokens()).toBe(before);
  });

  it('a disable step throttled for longer than the cap fails at once and says how long Graph asked to wait', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID, 'live');
    fake.throttle('graph', 'PATCH', SP_ID, 120, 5);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const result = await remediator.execute(plan);
    const disable = result.steps.find((r) => r.stepId.startsWith('disable-service-principal'));
    expect(disable?.status).toBe('failed');
    expect(disable?.fix).toBe('Azure asked to wait 2 minutes before the next call: try again after that');
    expect(fake.calls('graph', 'PATCH').map((r) => r.status)).toEqual([429]);
  });

  it('gives up at once on a throttled listing that asks for a longer wait than the cap', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    // An hour: the SDK's own policy would wait it out, holding the run for that hour.
    fake.throttle('arm', 'GET', '/roleAssignments', 3600, 5);
    const started = Date.now();
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(plan.warnings.join('\n')).toMatch(/could not list the role assignments at the cluster \(.*429/);
    // The advice gives the wait Azure asked for, not a guess.
    expect(plan.warnings.join('\n')).toContain(
      'Azure asked to wait 1 hour before the next call: try again after that',
    );
    const statuses = fake
      .calls('arm', 'GET')
      .filter((r) => r.path.endsWith('/roleAssignments'))
      .map((r) => r.status);
    expect(statuses).toEqual([429]);
  });

  it('with no working credential, removes nothing it could not check and says why', async () => {
    const fake = await fakeWithEvidenceAt(CLUSTER_ID);
    const lines: Array<{ level: number; msg: string }> = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const { remediator } = await remediatorOn(fake, 'dry-run', {
      logger,
      credential: new ClientSecretCredential(fake.tenantId, fake.clientId, 'wrong-secret', {
        authorityHost: fake.loginUrl,
        disableInstanceDiscovery: true,
        tlsOptions: { ca: fake.ca },
      }),
    });
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    // Neither the caller nor the evidence assignment could be read: nothing is done on the
    // detection's word alone, and the plan says why, with the fix.
    expect(plan.steps).toEqual([]);
    expect(plan.warnings).toHaveLength(2);
    const warning = (re: RegExp) => plan.warnings.find((w) => re.test(w)) ?? '';
    expect(warning(/could not look the caller up in Microsoft Graph .*acts on no principal/)).toMatch(
      /AZURE_CLIENT_SECRET/,
    );
    expect(warning(/could not read the role assignment named in the evidence/)).toMatch(
      /AZURE_CLIENT_SECRET/,
    );
    expect(plan.unchecked?.join('\n')).toMatch(/looking the caller up in Microsoft Graph/);
    expect(plan.warnings.join('\n')).not.toContain('wrong-secret');
    expect(fake.calls('arm')).toEqual([]);
    // The next alert fails alike: its cause is logged at warn once, then at debug.
    await remediator.plan(spDetection(CLUSTER_ID));
    const graphLines = lines.filter((l) =>
      l.msg.startsWith('looking the caller up in Microsoft Graph failed'),
    );
    expect(graphLines.map((l) => l.level)).toEqual([40, 20]);
  });

  it('names the missing read permission when the listing is refused', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    // Only the listing is refused; the evidence assignment is still read by id.
    fake.deny('arm', 'GET', /roleAssignments$/i, 'Microsoft.Authorization/roleAssignments/read');
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.steps.map((s) => s.kind)).toEqual(['remove-assignment', 'disable-service-principal']);
    expect(plan.warnings[0]).toMatch(/403 AuthorizationFailed/);
    expect(plan.warnings[0]).toMatch(/Microsoft\.Authorization\/roleAssignments\/read at/);
  });
});

/**
 * The result a live run leaves when its last step's PATCH lost its answer and the read that would
 * settle it failed too; `othersDone`: the steps before it were done.
 */
function unsettledDisable(plan: RemediationPlan, othersDone: boolean): RemediationResult {
  const disable = plan.steps.at(-1)!;
  return {
    mode: 'live',
    ok: false,
    steps: [
      ...(othersDone
        ? plan.steps
            .slice(0, -1)
            .map((s) => ({ stepId: s.id, status: 'done' as const, detail: 'removed it' }))
        : []),
      { stepId: disable.id, status: 'failed', detail: 'PATCH failed: 500', maybeApplied: true },
    ],
  };
}

describe('Azure remediator: execute', () => {
  it('dry-run reads to plan but makes no mutating call, and audits the attempt', async () => {
    const { fake, store, remediator } = await setup(CLUSTER_ID, 'dry-run');
    expect(remediator.mode).toBe('dry-run');
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const result = await remediator.execute(plan, undefined, { actor: 'U123', alertId: 'alert-1' });
    expect(result).toMatchObject({ mode: 'dry-run', ok: true });
    expect(result.steps.map((s) => s.status)).toEqual(['would-do', 'would-do']);
    expect(result.steps[0]?.detail).toContain(`DELETE ${fake.armUrl}${idAt(CLUSTER_ID, A.evidence)}`);
    expect(fake.calls('arm', 'GET').length).toBeGreaterThan(0);
    expect(fake.mutations()).toEqual([]);
    expect(fake.assignmentsByName.has(A.evidence)).toBe(true);
    const attempts = await listRemediationAttempts(store, 'alert-1');
    expect(attempts).toMatchObject([
      { actor: 'U123', action: 'azure.revoke', result: 'dry-run', appId: APP_ID },
    ]);
  });

  it('live: deletes exactly the planned assignments and disables the service principal', async () => {
    const { fake, store, remediator } = await setup(RG_SCOPE);
    fake.assign({
      name: A.sub,
      scope: SUB_SCOPE,
      roleDefinitionId: ROLE.customArc,
      principalId: SP_ID,
      principalType: 'ServicePrincipal',
    });
    fake.assign({
      name: A.owner,
      scope: SUB_SCOPE,
      roleDefinitionId: ROLE.owner,
      principalId: SP_ID,
      principalType: 'ServicePrincipal',
    });
    const plan = await remediator.plan(spDetection(RG_SCOPE));
    fake.clearRequests();
    const result = await remediator.execute(plan, undefined, { actor: 'U123', alertId: 'alert-2' });
    expect(result.ok).toBe(true);
    expect(result.steps.map((s) => s.status)).toEqual(['done', 'done', 'done']);
    expect(deletes(fake)).toEqual([idAt(RG_SCOPE, A.evidence), idAt(SUB_SCOPE, A.sub)]);
    expect(fake.calls('graph', 'PATCH')).toMatchObject([
      { path: `/v1.0/servicePrincipals/${SP_ID}`, body: { accountEnabled: false } },
    ]);
    expect(fake.calls('graph', 'PATCH')[0]?.tokenScope).toBe(`${fake.graphUrl}/.default`);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(false);
    expect(fake.assignmentsByName.has(A.owner)).toBe(true);

    const [attempt] = await listRemediationAttempts(store, 'alert-2');
    expect(attempt).toMatchObject({ actor: 'U123', action: 'azure.revoke', result: 'ok' });
    const detail = attempt?.detail as {
      plan: unknown;
      calls: Array<{ method: string; url: string; status: number }>;
    };
    const { reads, ...planned } = plan;
    expect(detail.plan).toEqual(planned);
    // The reads the plan was made from (the caller's service principal, its assignments) come first.
    expect(reads?.length).toBeGreaterThan(0);
    expect(detail.calls.slice(0, reads!.length)).toEqual(reads);
    expect(detail.calls[0]!.url).toContain("/v1.0/servicePrincipals(appId='");
    expect(
      detail.calls.some((c) => c.url.includes('roleAssignments?') && c.url.includes('principalId')),
    ).toBe(true);
    expect(detail.calls.filter((c) => c.method !== 'GET').map((c) => [c.method, c.status])).toEqual([
      ['DELETE', 200],
      ['DELETE', 200],
      ['PATCH', 204],
    ]);
    expect(JSON.stringify(attempt)).not.toMatch(/fake-[0-9a-f-]{36}|Bearer/);
  });

  it("keeps each call's ids, as Azure answered them, in the audit record: to find the change in the activity log and Entra's audit log", async () => {
    const { fake, store, remediator } = await setup(RG_SCOPE);
    const plan = await remediator.plan(spDetection(RG_SCOPE));
    fake.clearRequests();
    await remediator.execute(plan, undefined, { actor: 'U123', alertId: 'alert-ids' });
    const [attempt] = await listRemediationAttempts(store, 'alert-ids');
    const calls = (attempt!.detail as { calls: Array<Record<string, unknown>> }).calls.filter(
      (c) => c.method !== 'GET',
    );
    const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    const [deleted] = fake.calls('arm', 'DELETE');
    expect(calls[0]).toMatchObject({
      method: 'DELETE',
      requestId: deleted!.ids!['x-ms-request-id'],
      correlationId: deleted!.ids!['x-ms-correlation-request-id'],
      clientRequestId: expect.stringMatching(GUID),
    });
    // The id sent is the one ARM was given (the activity log's `httpRequest.clientRequestId`).
    expect(deleted!.ids!['x-ms-client-request-id']).toBe(calls[0]!.clientRequestId);
    const [patched] = fake.calls('graph', 'PATCH');
    expect(calls.at(-1)).toMatchObject({
      method: 'PATCH',
      requestId: patched!.ids!['request-id'],
      clientRequestId: patched!.ids!['client-request-id'],
    });
    expect(calls.at(-1)!.clientRequestId).toMatch(GUID);
    // Each attempt has an id of its own.
    expect(new Set(calls.map((c) => c.clientRequestId)).size).toBe(calls.length);
  });

  it('addresses a service principal by its appId when the plan names it so, also in a step stored without `targetIs`', async () => {
    for (const stored of [false, true]) {
      const { fake, remediator } = await setup(RG_SCOPE);
      const plan = await remediator.plan(spDetection(RG_SCOPE));
      const byAppId = plan.steps.map((s) => {
        if (s.kind !== 'disable-service-principal') return s;
        const { targetIs: _, ...rest } = s;
        return {
          ...rest,
          target: APP_ID,
          call: `PATCH ${fake.graphUrl}/v1.0/servicePrincipals(appId='${APP_ID}') {"accountEnabled":false}`,
          ...(stored ? {} : { targetIs: 'appId' as const }),
        };
      });
      fake.clearRequests();
      const result = await remediator.execute({ ...plan, steps: byAppId }, undefined, {
        actor: 'U123',
        alertId: `alert-appid-${stored}`,
      });
      expect(result.steps.map((s) => s.status)).toEqual(['done', 'done']);
      expect(fake.calls('graph', 'PATCH').map((r) => r.path)).toEqual([
        `/v1.0/servicePrincipals(appId='${APP_ID}')`,
      ]);
      expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(false);
    }
  });

  it('treats an assignment already gone as done; a principal Graph no longer finds, seconds after the plan did, is not taken for deleted', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.assignmentsByName.delete(A.evidence);
    // What a Graph replica behind the plan's read answers: 404 for the principal it just found.
    fake.fail({ service: 'graph', method: 'GET', path: SP_ID, status: 404, times: 5 });
    fake.clearRequests();
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(false);
    expect(result.steps.map((s) => s.status)).toEqual(['already-done', 'failed']);
    expect(result.steps[1]?.detail).toMatch(/does not find .*which it found when the plan was made/);
    expect(result.steps[1]?.fix).toMatch(/press Revoke again in a minute/);
    // The check before the DELETE finds it gone: nothing is deleted; nothing is disabled.
    expect(fake.calls('arm', 'GET').map((r) => [r.path, r.status])).toEqual([
      [idAt(CLUSTER_ID, A.evidence), 404],
    ]);
    expect(fake.calls('arm', 'DELETE')).toEqual([]);
    expect(fake.calls('graph', 'PATCH')).toEqual([]);
    // Once Graph catches up, the retry disables it.
    fake.clearRules();
    const retried = await remediator.execute(plan, result);
    expect(retried.ok).toBe(true);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(false);
  });

  it('a DELETE answered 2xx by something that is not ARM (a proxy page) is never a removal: a read settles it', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const proxyPage = {
      service: 'arm' as const,
      method: 'DELETE',
      status: 200,
      rawBody: '<html><body>Corporate proxy</body></html>',
      headers: { 'content-type': 'text/html' },
    };
    fake.fail(proxyPage);
    const kept = await remediator.execute(plan);
    expect(kept.steps[0]).toMatchObject({ status: 'failed', maybeApplied: true });
    expect(kept.steps[0]?.detail).toMatch(/\(text\/html\) with no deleted role assignment/);
    expect(kept.steps[0]?.detail).not.toContain('<html>');
    expect(fake.assignmentsByName.has(A.evidence)).toBe(true);

    // The proxy passed the DELETE on, then answered with its page: the read shows it gone.
    fake.fail({ ...proxyPage, applied: true });
    const again = await remediator.execute(plan, kept);
    expect(again.steps[0]).toMatchObject({
      status: 'done',
      detail: expect.stringContaining('a read shows it gone'),
    });
    expect(fake.assignmentsByName.has(A.evidence)).toBe(false);
  });

  it('an ARM that takes a DELETE and never answers fails the step after the per-attempt timeout and its retries', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID, 'live', { requestTimeoutMs: 150 });
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.fail({ service: 'arm', method: 'DELETE', status: 200, delayMs: 60_000, times: 10 });
    const started = Date.now();
    const result = await remediator.execute(plan);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(result.steps[0]).toMatchObject({ status: 'failed', maybeApplied: true });
    expect(result.steps[0]?.detail).toMatch(/no answer from ARM within 150 ms/);
    // FAST_RETRY: the first attempt and two retries.
    expect(fake.calls('arm', 'DELETE')).toHaveLength(3);
    expect(fake.assignmentsByName.has(A.evidence)).toBe(true);
    // The other step still ran.
    expect(result.steps[1]).toMatchObject({ status: 'done' });
  });

  it('never disables a service principal whose answer names no application (a proxy page), and never takes a non-204 update as done', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const page = { rawBody: '<html>proxy</html>', headers: { 'content-type': 'text/html' } };
    fake.fail({ service: 'graph', method: 'GET', path: SP_ID, status: 200, ...page });
    const unchecked = await remediator.execute(plan);
    expect(unchecked.steps.at(-1)).toMatchObject({ status: 'failed' });
    expect(unchecked.steps.at(-1)?.detail).toMatch(/names no application \(an HTML or XML page\)/);
    expect(fake.calls('graph', 'PATCH')).toEqual([]);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(true);

    // The PATCH answered 200 with a page and not made: failed, may have been made (the retry settles it).
    fake.fail({ service: 'graph', method: 'PATCH', status: 200, ...page });
    const unconfirmed = await remediator.execute(plan, unchecked);
    expect(unconfirmed.steps.at(-1)).toMatchObject({ status: 'failed', maybeApplied: true });
    expect(unconfirmed.steps.at(-1)?.detail).toMatch(/expected to answer 204, and 200 came/);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(true);
    // Made behind the page: the read-back shows it, and it counts as done.
    fake.fail({ service: 'graph', method: 'PATCH', status: 200, applied: true, ...page });
    const made = await remediator.execute(plan, unconfirmed);
    expect(made.steps.at(-1)).toMatchObject({
      status: 'done',
      detail: expect.stringContaining('a read shows it disabled'),
    });
  });

  it('a DELETE answered 404 is also already done', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.fail({
      service: 'arm',
      method: 'DELETE',
      path: A.evidence,
      status: 404,
      body: { error: { code: 'RoleAssignmentNotFound', message: 'gone' } },
    });
    const result = await remediator.execute(plan);
    expect(result.steps[0]).toMatchObject({ status: 'already-done' });
  });

  it('retries throttled deletes and PATCHes after Retry-After', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.throttle('arm', 'DELETE', A.evidence, 1, 1).throttle('graph', 'PATCH', SP_ID, 0, 2);
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(true);
    expect(fake.calls('arm', 'DELETE').map((r) => r.status)).toEqual([429, 200]);
    expect(fake.calls('graph', 'PATCH').map((r) => r.status)).toEqual([429, 429, 204]);
  });

  /** ARM answers the next `times` deletes 503 with `Retry-After: retryAfter` (seconds). */
  const unavailableDeletes = (fake: FakeAzure, retryAfter: number, times: number) =>
    fake.fail({
      service: 'arm',
      method: 'DELETE',
      status: 503,
      headers: { 'retry-after': String(retryAfter) },
      body: { error: { code: 'ServiceUnavailable', message: 'The service is unavailable.' } },
      times,
    });

  it('fails a delete at once when ARM answers 503 and asks for a longer wait than the cap, rather than retrying it at once', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    unavailableDeletes(fake, 120, 5);
    const result = await remediator.execute(plan);
    expect(fake.calls('arm', 'DELETE').map((r) => r.status)).toEqual([503]);
    const removal = result.steps[0]!;
    expect(removal.status).toBe('failed');
    expect(removal.fix).toBe('Azure asked to wait 2 minutes before the next call: try again after that');
    expect(removal.detail).toContain('503');
    expect(removal.maybeApplied).toBeUndefined();
  });

  // Every 5xx the SDK retries (a gateway's 502 or 504, a 500) fails at once on a wait longer than
  // the cap, as a 503 does: its advice names the wait, not "after the retries", which never came.
  it('fails a delete answered 502 with a longer wait than the cap, with the wait in its advice', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.fail({
      service: 'arm',
      method: 'DELETE',
      status: 502,
      headers: { 'retry-after': '120' },
      body: { error: { code: 'BadGateway', message: 'The gateway did not receive a response.' } },
      times: 5,
    });
    const result = await remediator.execute(plan);
    expect(fake.calls('arm', 'DELETE').map((r) => r.status)).toEqual([502]);
    const removal = result.steps[0]!;
    expect(removal.status).toBe('failed');
    expect(removal.fix).toBe('Azure asked to wait 2 minutes before the next call: try again after that');
  });

  it('waits out a 503 whose Retry-After is within the cap, then succeeds', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    unavailableDeletes(fake, 1, 1);
    const started = Date.now();
    const result = await remediator.execute(plan);
    expect(result.steps[0]!.status).toBe('done');
    expect(fake.calls('arm', 'DELETE').map((r) => r.status)).toEqual([503, 200]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('retries 5xx answers with backoff', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.fail({
      service: 'arm',
      method: 'DELETE',
      status: 500,
      body: { error: { code: 'InternalServerError', message: 'boom' } },
    });
    fake.fail({
      service: 'graph',
      method: 'PATCH',
      status: 502,
      body: { error: { code: 'BadGateway', message: 'boom' } },
    });
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(true);
    expect(fake.calls('arm', 'DELETE').map((r) => r.status)).toEqual([500, 200]);
    expect(fake.calls('graph', 'PATCH').map((r) => r.status)).toEqual([502, 204]);
  });

  it('a DELETE that Azure carried out but answered 500, re-sent and answered "gone", is this run\'s removal: Undo re-creates it', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.fail({ service: 'arm', method: 'DELETE', status: 500, applied: true });
    const result = await remediator.execute(plan);
    expect(fake.calls('arm', 'DELETE').map((r) => r.status)).toEqual([500, 204]);
    expect(result.steps[0]).toMatchObject({
      status: 'done',
      detail: expect.stringContaining('a try whose answer was lost removed it'),
    });
    fake.clearRequests();
    const undone = await remediator.undo(plan, result);
    expect(undone.ok).toBe(true);
    expect(fake.calls('arm', 'PUT')).toHaveLength(1);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(true);
  });

  it('a PATCH whose every answer was a 500 is settled by a read in the same run: done if Azure made it, failed if not', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.fail({ service: 'graph', method: 'PATCH', status: 500, applied: true, times: 10 });
    const made = await remediator.execute(plan);
    expect(made.ok).toBe(true);
    expect(made.steps.at(-1)).toMatchObject({
      status: 'done',
      detail: expect.stringContaining('the answer was lost; a read shows it disabled'),
    });
    fake.clearRules();
    const undone = await remediator.undo(plan, made);
    expect(undone.ok).toBe(true);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(true);

    // Not made by the read's account: failed, and still unsettled (a read can lag the write); the
    // retry, finding it enabled, writes again.
    fake.clearRules();
    fake.assign({
      name: A.evidence,
      scope: CLUSTER_ID,
      roleDefinitionId: ROLE.clusterUser,
      principalId: SP_ID,
      principalType: 'ServicePrincipal',
    });
    fake.fail({ service: 'graph', method: 'PATCH', status: 500, times: 10 });
    const again = await remediator.plan(spDetection(CLUSTER_ID));
    const notMade = await remediator.execute(again);
    expect(notMade.steps.at(-1)).toMatchObject({ status: 'failed', maybeApplied: true });
    fake.clearRules();
    fake.clearRequests();
    const retried = await remediator.execute(again, notMade);
    expect(fake.calls('graph', 'PATCH').map((r) => r.status)).toEqual([204]);
    expect(retried.steps.at(-1)).toMatchObject({ status: 'done', detail: `disabled ${SP_ID}` });
  });

  it('a write that never went out (no token, a connection never opened) is a plain failure, never "may have been made"', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    // A PATCH refused before acting (503) and a token endpoint failing: nothing was made.
    fake.fail({ service: 'graph', method: 'PATCH', status: 503, times: 10 });
    const result = await remediator.execute(plan);
    expect(result.steps.at(-1)).toMatchObject({ status: 'failed' });
    expect(result.steps.at(-1)!.maybeApplied).toBeUndefined();
  });

  it('a write applied but answered 500, whose re-send then got a 429, is still settled as possibly made', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.fail({ service: 'graph', method: 'PATCH', status: 500, applied: true });
    fake.fail({
      service: 'graph',
      method: 'PATCH',
      status: 429,
      headers: { 'retry-after': '600' },
      times: 10,
    });
    const result = await remediator.execute(plan);
    // The read after it shows the principal disabled: done, so Undo re-enables it.
    expect(result.steps.at(-1)).toMatchObject({
      status: 'done',
      detail: expect.stringContaining('the answer was lost; a read shows it disabled'),
    });
  });

  it("a write left unsettled (maybeApplied) is counted as this service's by the retry that finds it made, so Undo reverses it", async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    // What a run leaves when its PATCH lost its answer and the read that would settle it failed too.
    const first = unsettledDisable(plan, true);
    fake.servicePrincipals.get(SP_ID)!.accountEnabled = false;
    const retry = await remediator.execute(plan, first);
    expect(retry.steps.at(-1)).toMatchObject({
      status: 'done',
      detail: expect.stringContaining('by the earlier attempt, whose answer was lost'),
    });
    fake.clearRequests();
    const undone = await remediator.undo(plan, { ...retry, steps: [retry.steps.at(-1)!] });
    expect(undone.ok).toBe(true);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(true);
  });

  it("an Undo's audit record lists its own calls only, not the reads the Revoke's plan was made from", async () => {
    const { store, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.reads?.length).toBeGreaterThan(0);
    const result = await remediator.execute(plan, undefined, { actor: 'U1', alertId: 'alert-undo-reads' });
    await remediator.undo(plan, result, { actor: 'U1', alertId: 'alert-undo-reads' });
    const records = await listRemediationAttempts(store, 'alert-undo-reads');
    const undo = records.find((r) => r.action === 'azure.undo')!;
    const calls = (undo.detail as { calls: Array<{ method: string; at: string }> }).calls;
    expect(calls.map((c) => c.method)).not.toContain('GET');
    expect(JSON.stringify(undo.detail)).not.toContain('"reads"');
  });

  it('a retry that fails again keeps what an earlier attempt may have done (maybeApplied)', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const first = unsettledDisable(plan, false);
    fake.fail({ service: 'graph', method: 'GET', status: 403, times: 10 });
    const retry = await remediator.execute(plan, first);
    expect(retry.steps.at(-1)).toMatchObject({ status: 'failed', maybeApplied: true });
  });

  it('a principal found disabled without an earlier attempt of this service is still "already disabled" (Undo leaves it)', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.fail({ service: 'graph', method: 'PATCH', status: 403, times: 10 });
    const first = await remediator.execute(plan);
    expect(first.steps.some((s) => s.status === 'failed' && s.maybeApplied === undefined)).toBe(true);
    fake.clearRules();
    fake.servicePrincipals.get(SP_ID)!.accountEnabled = false;
    const retry = await remediator.execute(plan, first);
    expect(retry.steps.at(-1)).toMatchObject({ status: 'already-done' });
  });

  it('partial failure names the failed step and the missing permission; a retry re-runs only that step', async () => {
    const { fake, store, remediator } = await setup(CLUSTER_ID);
    fake.assign({
      name: A.rg,
      scope: RG_SCOPE,
      roleDefinitionId: ROLE.clusterUser,
      principalId: SP_ID,
      principalType: 'ServicePrincipal',
    });
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    fake.deny('arm', 'DELETE', A.rg, 'Microsoft.Authorization/roleAssignments/delete');
    fake.deny('graph', 'PATCH', SP_ID);
    const first = await remediator.execute(plan, undefined, { actor: 'U1', alertId: 'alert-3' });
    expect(first.ok).toBe(false);
    expect(first.steps.map((s) => s.status)).toEqual(['done', 'failed', 'failed']);
    expect(first.steps[1]?.stepId).toBe(`remove-assignment:${idAt(RG_SCOPE, A.rg).toLowerCase()}`);
    expect(first.steps[1]?.detail).toMatch(/403 AuthorizationFailed/);
    // At the scope the assignment lives in, where a role is granted (ARM's message names the assignment).
    expect(first.steps[1]?.fix).toContain(`Microsoft.Authorization/roleAssignments/delete at ${RG_SCOPE};`);
    expect(first.steps[2]?.fix).toMatch(/Application\.ReadWrite\.OwnedBy .*Application\.ReadWrite\.All/);

    // The permission is granted; the retry runs only the two failed steps.
    fake.clearRequests().clearScripts();
    const second = await remediator.execute(plan, first, { actor: 'U1', alertId: 'alert-3' });
    expect(second.ok).toBe(true);
    expect(second.steps.map((s) => s.status)).toEqual(['done', 'done', 'done']);
    expect(second.steps[0]?.detail).toMatch(/^earlier attempt: /);
    expect(deletes(fake)).toEqual([idAt(RG_SCOPE, A.rg)]);
    expect(fake.calls('graph', 'PATCH')).toHaveLength(1);

    const attempts = await listRemediationAttempts(store, 'alert-3');
    expect(attempts.map((a) => a.result)).toEqual(['failed', 'ok']);
  });

  it('a second execution without the earlier result changes nothing', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    await remediator.execute(plan);
    fake.clearRequests();
    const again = await remediator.execute(plan);
    expect(again.ok).toBe(true);
    expect(again.steps.map((s) => s.status)).toEqual(['already-done', 'already-done']);
    expect(fake.calls('graph', 'PATCH')).toEqual([]);
    expect(fake.mutations()).toEqual([]);
  });

  /** The evidence's assignment held by a user instead, and that user's plan. */
  async function userPlan() {
    const { fake, remediator } = await setup(CLUSTER_ID);
    fake.assignmentsByName.clear();
    fake.assign({
      name: A.evidence,
      scope: CLUSTER_ID,
      roleDefinitionId: ROLE.clusterUser,
      principalId: USER_ID,
      principalType: 'User',
    });
    fake.user({ id: USER_ID, userPrincipalName: 'mallory@contoso.example', displayName: 'Mallory' });
    const d = spDetection(CLUSTER_ID, {
      principalId: USER_ID,
      principalType: 'User',
      user: { upn: 'mallory@contoso.example' },
    });
    d.evidence = { ...d.evidence, principalId: USER_ID, principalType: 'User' };
    return { fake, remediator, plan: await remediator.plan(d) };
  }

  it('disables a user and revokes its sessions', async () => {
    const { fake, remediator, plan } = await userPlan();
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(true);
    expect(fake.mutations().map((r) => [r.method, r.path])).toEqual([
      ['DELETE', idAt(CLUSTER_ID, A.evidence)],
      ['PATCH', `/v1.0/users/${USER_ID}`],
      ['POST', `/v1.0/users/${USER_ID}/revokeSignInSessions`],
    ]);
    expect(fake.users.get(USER_ID)).toMatchObject({ accountEnabled: false, revokedSessions: 1 });
  });

  it("an Undo that cannot re-create the user's assignment leaves the account disabled", async () => {
    const { fake, remediator, plan } = await userPlan();
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(true);
    fake.deny('arm', 'PUT', '/roleAssignments/', 'Microsoft.Authorization/roleAssignments/write');
    const undone = await remediator.undo(plan, result);
    expect(undone.ok).toBe(false);
    expect(undone.steps.map((st) => [st.stepId.split(':')[0], st.status])).toEqual([
      ['remove-assignment', 'failed'],
      ['revoke-user-sessions', 'already-done'],
      ['disable-user', 'failed'],
    ]);
    expect(undone.steps.at(-1)?.detail).toMatch(/^not enabled again: 1 removed assignment is not back/);
    expect(fake.users.get(USER_ID)).toMatchObject({ accountEnabled: false });
  });

  it('never takes a success without {"value": true} (a proxy\'s 200 {}) for revoked sign-in sessions', async () => {
    const { fake, remediator, plan } = await userPlan();
    fake.fail({ service: 'graph', method: 'POST', path: 'revokeSignInSessions', status: 200, body: {} });
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(false);
    expect(result.steps.at(-1)).toMatchObject({
      stepId: `revoke-user-sessions:${USER_ID}`,
      status: 'failed',
      detail: expect.stringContaining('not confirmed: Microsoft Graph answered 200'),
      fix: expect.stringContaining('a proxy'),
    });
    expect(fake.users.get(USER_ID)?.revokedSessions).toBe(0);

    // Graph's own answer on the retry settles it.
    const retry = await remediator.execute(plan, result);
    expect(retry.ok).toBe(true);
    expect(retry.steps.at(-1)).toMatchObject({ status: 'done' });
    expect(fake.users.get(USER_ID)?.revokedSessions).toBe(1);
  });

  it('names the user permissions when Graph refuses', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    fake.user({ id: USER_ID, userPrincipalName: 'mallory@contoso.example', displayName: 'Mallory' });
    const d = spDetection(CLUSTER_ID, {
      principalId: USER_ID,
      principalType: 'User',
      user: { upn: 'mallory@contoso.example' },
    });
    d.evidence = {};
    const plan = await remediator.plan(d);
    fake.deny('graph', 'PATCH', USER_ID).deny('graph', 'POST', 'revokeSignInSessions');
    const result = await remediator.execute(plan);
    expect(result.steps.map((s) => s.status)).toEqual(['failed', 'failed']);
    expect(result.steps[0]?.fix).toMatch(/User\.EnableDisableAccount\.All/);
    expect(result.steps[1]?.fix).toMatch(/User\.RevokeSessions\.All/);
  });
});

describe('Azure remediator: undo', () => {
  it('re-creates the removed assignments and re-enables the principal, audited', async () => {
    const { fake, store, remediator } = await setup(CLUSTER_ID);
    fake.assign({
      name: A.rg,
      scope: RG_SCOPE,
      roleDefinitionId: ROLE.customArc,
      principalId: SP_ID,
      principalType: 'ServicePrincipal',
      condition: "@Resource[Microsoft.Kubernetes/connectedClusters:name] StringEquals 'arc-prod-01'",
      conditionVersion: '2.0',
    });
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const result = await remediator.execute(plan, undefined, { actor: 'U9', alertId: 'alert-4' });
    expect(fake.assignmentsByName.size).toBe(0);
    fake.clearRequests();

    const undone = await remediator.undo(plan, result, { actor: 'U9', alertId: 'alert-4' });
    expect(undone.ok).toBe(true);
    expect(undone.steps.map((s) => s.status)).toEqual(['done', 'done', 'done']);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(true);
    const recreated = [...fake.assignmentsByName.values()];
    expect(
      recreated.map((a) => [a.scope, a.roleDefinitionId.split('/').pop(), a.principalId]).sort(),
    ).toEqual(
      [
        [CLUSTER_ID, ROLE.clusterUser, SP_ID],
        [RG_SCOPE, ROLE.customArc, SP_ID],
      ].sort(),
    );
    expect(recreated.every((a) => a.name !== A.evidence && a.name !== A.rg)).toBe(true);
    expect(recreated.find((a) => a.scope === RG_SCOPE)).toMatchObject({ conditionVersion: '2.0' });
    for (const put of fake.calls('arm', 'PUT')) expect(put.rawPath.startsWith('//')).toBe(false);

    // Undo again: the assignments exist, nothing new is created.
    const again = await remediator.undo(plan, result);
    expect(again.steps.filter((s) => s.stepId.startsWith('remove-assignment')).map((s) => s.status)).toEqual([
      'already-done',
      'already-done',
    ]);
    expect(fake.assignmentsByName.size).toBe(2);

    const attempts = await listRemediationAttempts(store, 'alert-4');
    expect(attempts.map((a) => [a.action, a.result])).toEqual([
      ['azure.revoke', 'ok'],
      ['azure.undo', 'ok'],
    ]);
  });

  it('does not re-enable a principal that was already disabled before the revoke', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    fake.servicePrincipals.get(SP_ID)!.accountEnabled = false;
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const result = await remediator.execute(plan);
    expect(result.steps[1]).toMatchObject({
      status: 'already-done',
      detail: `${SP_ID} was already disabled`,
    });
    expect(fake.calls('graph', 'PATCH')).toEqual([]);
    await remediator.undo(plan, result);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(false);
  });

  it('in dry-run, undoing a live result makes no write and says what it would undo', async () => {
    const { fake, store, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const result = await remediator.execute(plan);
    expect(result).toMatchObject({ mode: 'live', ok: true });
    fake.clearRequests();

    const dryRun = createAzureRemediator(configFor(fake, 'dry-run'), {
      store,
      logger: quietLogger(),
      tlsCa: fake.ca,
      retry: FAST_RETRY,
    });
    const undone = await dryRun.undo(plan, result, { actor: 'U1', alertId: 'alert-dry-undo' });
    expect(undone).toMatchObject({ mode: 'dry-run', ok: true });
    // The assignments in the reverse order of their removal, the principal's account last.
    const assignments = plan.steps.filter((s) => s.kind === 'remove-assignment').reverse();
    const accounts = plan.steps.filter((s) => s.kind !== 'remove-assignment');
    expect(accounts.length).toBeGreaterThan(0);
    expect(undone.steps.map((s) => [s.stepId, s.status])).toEqual(
      [...assignments, ...accounts].map((s) => [s.id, 'would-do']),
    );
    expect(undone.steps[0]?.detail).toMatch(/^dry-run: would undo "/);
    expect(fake.mutations()).toEqual([]);
    expect(fake.assignmentsByName.size).toBe(0);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(false);
    const attempts = await listRemediationAttempts(store, 'alert-dry-undo');
    expect(attempts.map((a) => [a.action, a.result])).toEqual([['azure.undo', 'dry-run']]);
  });

  it('a failed re-create names roleAssignments/write', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const result = await remediator.execute(plan);
    fake.deny('arm', 'PUT', '/roleAssignments/', 'Microsoft.Authorization/roleAssignments/write');
    const undone = await remediator.undo(plan, result);
    expect(undone.ok).toBe(false);
    const failedStep = undone.steps.find((s) => s.status === 'failed');
    expect(failedStep?.fix).toMatch(/Microsoft\.Authorization\/roleAssignments\/write/);
    // The principal is enabled last, and not while an assignment is not back: its access stays cut.
    expect(undone.steps.at(-1)).toMatchObject({
      status: 'failed',
      detail: expect.stringMatching(/^not enabled again: \d+ removed assignments? (is|are) not back/),
    });
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(false);
    expect(fake.calls('graph', 'PATCH')).toHaveLength(1);
  });
});

describe('Azure remediator: assignments that end at a set time through PIM', () => {
  const hours = (n: number) => new Date(Date.now() + n * 3_600_000).toISOString();
  /** An assignment of the service principal that PIM made or activated until `endDateTime`. */
  const timeBound = (
    fake: FakeAzure,
    name: string,
    scope: string,
    roleDefinitionId: string,
    assignmentType: 'Activated' | 'Assigned',
    endDateTime: string,
  ) =>
    fake.assign({
      name,
      scope,
      roleDefinitionId,
      principalId: SP_ID,
      principalType: 'ServicePrincipal',
      pim: { assignmentType, endDateTime },
    });

  it('removes a PIM activation like any assignment; Undo makes none permanent in its place, says how it comes back, and enables the principal', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const until = hours(4);
    timeBound(fake, A.rg, RG_SCOPE, ROLE.customArc, 'Activated', until);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    const step = plan.steps.find((st) => st.target.endsWith(A.rg))!;
    expect(step.description).toContain(`(a PIM activation until ${until}: Undo leaves it to PIM)`);
    expect(restoreInfo(step)).toMatchObject({ endsAt: until, activated: true });
    // The evidence assignment, made without an end, is not marked.
    expect(restoreInfo(plan.steps.find((st) => st.target.endsWith(A.evidence))!)?.endsAt).toBeUndefined();
    expect(plan.warnings.join(' ')).not.toMatch(/PIM/);
    const result = await remediator.execute(plan);
    expect(result.ok).toBe(true);
    expect(fake.assignmentsByName.size).toBe(0);

    const undone = await remediator.undo(plan, result);
    expect(undone.ok).toBe(true);
    expect(undone.steps.find((st) => st.stepId === step.id)).toMatchObject({
      status: 'already-done',
      detail: `left to PIM (made here it would be permanent): the principal can activate the role again in PIM (its eligibility was not removed); the activation ran until ${until}`,
      leftToPim: true,
    });
    // Only the assignment made without an end is back, and the principal is enabled again.
    expect([...fake.assignmentsByName.values()].map((a) => a.scope)).toEqual([CLUSTER_ID]);
    expect(fake.servicePrincipals.get(SP_ID)?.accountEnabled).toBe(true);
  });

  it('says when a removed PIM assignment would have ended anyway, and how to assign one that has not ended yet', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const ended = new Date(Date.now() + 1500).toISOString();
    timeBound(fake, A.rg, RG_SCOPE, ROLE.customArc, 'Assigned', ended);
    const until = hours(24 * 30);
    timeBound(fake, A.sub, SUB_SCOPE, ROLE.clusterUser, 'Assigned', until);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.steps.find((st) => st.target.endsWith(A.sub))?.description).toContain(
      `(assigned through PIM until ${until}: Undo leaves it to PIM)`,
    );
    const result = await remediator.execute(plan);
    await new Promise((resolve) => setTimeout(resolve, Date.parse(ended) - Date.now() + 50));
    const undone = await remediator.undo(plan, result);
    const detail = (name: string) =>
      undone.steps.find((st) => st.stepId.endsWith(name.toLowerCase()))?.detail;
    expect(detail(A.rg)).toBe(`not re-created: its PIM assignment ended at ${ended} anyway`);
    // Ended, it is not counted among those left to PIM to give back.
    expect(undone.steps.filter((st) => st.leftToPim).map((st) => st.stepId)).toEqual([
      expect.stringMatching(new RegExp(`${A.sub}$`, 'i')),
    ]);
    expect(detail(A.sub)).toBe(
      `left to PIM (made here it would be permanent): assign it again in PIM, ending at ${until}`,
    );
    expect(undone.ok).toBe(true);
    expect([...fake.assignmentsByName.values()].map((a) => a.scope)).toEqual([CLUSTER_ID]);
  });

  it('Remove broad roles too: an Owner activated through PIM is not made permanent by its Undo', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const until = hours(8);
    timeBound(fake, A.owner, SUB_SCOPE, ROLE.owner, 'Activated', until);
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    // What the alert keeps of PIM names the broad role it leaves, for a click that cannot read PIM.
    expect(timeBoundSeenIn(plan)).toContainEqual({
      assignmentId: fake.assignmentId(A.owner),
      endsAt: until,
      activated: true,
    });
    const broad = remediator.planBroadRemoval(plan);
    expect(broad.steps.map((st) => st.description)).toEqual([
      `Remove the broad role "Owner" at ${SUB_SCOPE}: the principal loses everything it grants there, not only the Arc access (a PIM activation until ${until}: Undo leaves it to PIM)`,
    ]);
    const removed = await remediator.execute(broad, undefined, { action: 'remove-broad-roles' });
    expect(removed.ok).toBe(true);
    expect(fake.assignmentsByName.has(A.owner)).toBe(false);
    const undone = await remediator.undo(broad, removed);
    expect(undone.steps).toEqual([
      expect.objectContaining({
        status: 'already-done',
        detail: expect.stringMatching(
          /^left to PIM \(made here it would be permanent\): the principal can activate/,
        ),
        leftToPim: true,
      }),
    ]);
    expect(fake.assignmentsByName.has(A.owner)).toBe(false);
    expect(fake.calls('arm', 'PUT')).toEqual([]);
  });

  it('without the right to read PIM schedules, the plan says Undo would re-create a removed assignment without its end; a tenant without PIM has no schedule', async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    fake.deny(
      'arm',
      'GET',
      '/roleAssignmentScheduleInstances',
      'Microsoft.Authorization/roleAssignmentScheduleInstances/read',
    );
    const plan = await remediator.plan(spDetection(CLUSTER_ID));
    expect(plan.warnings).toContainEqual(
      expect.stringMatching(
        /^could not read which role assignments end at a set time through PIM \(403 AuthorizationFailed: .*\): Undo would re-create a removed one without its end time; .*roleAssignmentScheduleInstances\/read/,
      ),
    );
    // Still a plan that removes and revokes: only Undo's fidelity depends on the read.
    expect(plan.unchecked ?? []).toEqual([]);
    // An API version ARM does not serve there is no proof that there is no PIM: warned of too.
    const { fake: elsewhere, remediator: onElsewhere } = await setup(CLUSTER_ID);
    elsewhere.fail({
      service: 'arm',
      method: 'GET',
      path: '/roleAssignmentScheduleInstances',
      status: 400,
      body: {
        error: {
          code: 'NoRegisteredProviderFound',
          message:
            "No registered resource provider found for location 'global' and API version '2020-10-01'.",
        },
      },
    });
    expect((await onElsewhere.plan(spDetection(CLUSTER_ID))).warnings).toContainEqual(
      expect.stringMatching(
        /^could not read which role assignments end at a set time through PIM \(400 NoRegisteredProviderFound/,
      ),
    );
    // Its broad removal says it too (an Owner PIM activated would come back permanent).
    fake.assign({
      name: A.owner,
      scope: SUB_SCOPE,
      roleDefinitionId: ROLE.owner,
      principalId: SP_ID,
      principalType: 'ServicePrincipal',
    });
    const broad = remediator.planBroadRemoval(await remediator.plan(spDetection(CLUSTER_ID)));
    expect(broad.steps).toHaveLength(1);
    expect(broad.warnings).toEqual([
      expect.stringMatching(/^could not read which role assignments end at a set time through PIM/),
    ]);

    // A tenant without PIM (no Entra ID P2), and an ARM without its API: no schedule, no warning.
    const noPim = {
      code: 'AadPremiumLicenseRequired',
      message: 'The tenant needs an AAD Premium 2 license.',
    };
    for (const [status, error] of [
      [400, noPim],
      [404, { code: 'NotFound', message: 'not found' }],
    ] as const) {
      const { fake: other, remediator: onOther } = await setup(CLUSTER_ID);
      other.fail({
        service: 'arm',
        method: 'GET',
        path: '/roleAssignmentScheduleInstances',
        status,
        body: { error },
      });
      const plain = await onOther.plan(spDetection(CLUSTER_ID));
      expect(plain.warnings.join(' ')).not.toMatch(/PIM/);
      expect(plain.steps.length).toBeGreaterThan(0);
    }
  });
  it("unreadable at the click, the schedules keep the end times the alert's plan read, but for those that ended", async () => {
    const { fake, remediator } = await setup(CLUSTER_ID);
    const until = hours(4);
    timeBound(fake, A.rg, RG_SCOPE, ROLE.customArc, 'Activated', until);
    const atAlert = timeBoundSeenIn(await remediator.plan(spDetection(CLUSTER_ID)))!;
    expect(atAlert).toEqual([{ assignmentId: fake.assignmentId(A.rg), endsAt: until, activated: true }]);
    fake.deny(
      'arm',
      'GET',
      '/roleAssignmentScheduleInstances',
      'Microsoft.Authorization/roleAssignmentScheduleInstances/read',
    );
    // The plan's own read failed: it says so, and has nothing to keep.
    expect(timeBoundSeenIn(await remediator.plan(spDetection(CLUSTER_ID)))).toBeUndefined();
    const plan = await remediator.plan(spDetection(CLUSTER_ID), { timeBoundSeen: atAlert });
    const step = plan.steps.find((st) => st.target.endsWith(A.rg))!;
    expect(restoreInfo(step)).toMatchObject({ endsAt: until, activated: true });
    expect(plan.warnings).toContainEqual(
      expect.stringMatching(
        /: the end times read as the alert was posted are kept \(1\), but Undo would re-create/,
      ),
    );
    // An end that has passed since is kept too: ARM may still list the assignment (PIM takes it
    // away), and Undo then says it ended rather than making it permanent.
    const ended = [{ ...atAlert[0]!, endsAt: new Date(Date.now() - 60_000).toISOString() }];
    const later = await remediator.plan(spDetection(CLUSTER_ID), { timeBoundSeen: ended });
    const endedStep = later.steps.find((st) => st.target.endsWith(A.rg))!;
    expect(restoreInfo(endedStep)?.endsAt).toBe(ended[0]!.endsAt);
    const result = await remediator.execute(later);
    const undone = await remediator.undo(later, result);
    expect(undone.steps.find((st) => st.stepId === endedStep.id)?.detail).toMatch(/ended at .* anyway/);
    expect(fake.assignmentsByName.has(A.rg.toLowerCase())).toBe(false);
    // Nothing read as the alert was posted ended at a set time: said so.
    const none = await remediator.plan(spDetection(CLUSTER_ID), { timeBoundSeen: [] });
    expect(none.warnings).toContainEqual(
      expect.stringMatching(
        /: none of these ended at a set time as the alert was posted, but Undo would re-create/,
      ),
    );
  });
});

describe('whether a failed write may have been made', () => {
  it.each([
    ['a 500', { statusCode: 500 }, true],
    ['a 504', { status: 504 }, true],
    ['a reset after sending', { code: 'ECONNRESET', message: 'read ECONNRESET' }, true],
    ['a socket hang up', { message: 'socket hang up' }, true],
    [
      "the Graph client's own timeout",
      { code: 'ETIMEDOUT', message: 'no answer from Graph within 30000 ms' },
      true,
    ],
    ['a bare ETIMEDOUT (a connect race gives one too)', { code: 'ETIMEDOUT', message: '' }, false],
    [
      "the Graph client's timeout before the request went out",
      {
        code: 'ETIMEDOUT',
        message: 'could not send the request to Graph within 30000 ms (no connection or TLS handshake)',
      },
      false,
    ],
    [
      'a reset during the TLS handshake',
      {
        code: 'ECONNRESET',
        message: 'Client network socket disconnected before secure TLS connection was established',
      },
      false,
    ],
    ['an abort (our timeout)', { name: 'AbortError', message: 'The operation was aborted' }, true],
    ['a 503 (refused before acting)', { statusCode: 503 }, false],
    ['a 403', { statusCode: 403 }, false],
    [
      'no token (with a status)',
      { name: 'AuthenticationError', statusCode: 500, message: 'Request timeout' },
      false,
    ],
    ['no credential', { name: 'CredentialUnavailableError', message: 'timed out' }, false],
    ['a connection never opened', { code: 'ETIMEDOUT', message: 'connect ETIMEDOUT 10.0.0.1:443' }, false],
    [
      'a name that does not resolve',
      { code: 'ENOTFOUND', message: 'getaddrinfo ENOTFOUND graph.example' },
      false,
    ],
    ['a DNS timeout', { code: 'ETIMEOUT', message: 'queryA ETIMEOUT graph.example' }, false],
    ['connection refused', { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:1' }, false],
    [
      'TLS',
      { code: 'SELF_SIGNED_CERT_IN_CHAIN', message: 'self-signed certificate in certificate chain' },
      false,
    ],
  ])('%s: %j → %s', (_what, error, expected) => {
    expect(
      mayHaveApplied(Object.assign(new Error(String((error as { message?: string }).message ?? '')), error)),
    ).toBe(expected);
  });
});

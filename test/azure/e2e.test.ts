/**
 * End to end: the real service (`createApp`, SQLite, outbox, engine, Slack adapter) with Slack
 * faked at the Web API and Azure faked at ARM, Graph and the token endpoint. POST /ingest raises
 * an alert; a signed Revoke click runs the live Azure remediator through the real SDK clients and
 * `DefaultAzureCredential`; ARM sees exactly the planned DELETEs and Graph the PATCH; a second
 * click changes nothing. A token endpoint failing on Entra ID's side is said so in the thread,
 * not blamed on the credential.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { createAzureRemediator, listRemediationAttempts } from '../../src/azure/index.ts';
import { loadConfig } from '../../src/config.ts';
import type { StateStore } from '../../src/core/ports.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import type { FakeAzure } from '../support/fake-azure.ts';
import { startFakeAzure } from '../support/fake-azure.ts';
import {
  buttonClick,
  type FakeSlack,
  payloadBody,
  sendSigned,
  startFakeSlack,
} from '../support/fake-slack.ts';
import { arcRecord, freshAppId, postIngest, startTestApp, type TestApp } from '../support/http-app.ts';
import { ARC } from '../support/samples.ts';
import { addRoles, FAST_RETRY, memoryStore, quietLogger, ROLE, stubAzureEnv } from './helpers.ts';

const SECRET = 'azure-e2e-signing-secret';
const TOKEN = 'xoxb-azure-e2e-token';
const RESPONDER = 'UALICE';
const CHANNEL = 'C0ALERTS';
const SUB_SCOPE = `/subscriptions/${ARC.subscriptionId}`;
const INHERITED = '2b3c4d5e-0000-4000-8000-00000000000a';
const OWNER = '2b3c4d5e-0000-4000-8000-00000000000b';

let app: TestApp | undefined;
let slack: FakeSlack | undefined;
let azure: FakeAzure | undefined;
let auditStore: StateStore | undefined;
afterEach(async () => {
  vi.unstubAllEnvs();
  await app?.close();
  await slack?.stop();
  await azure?.close();
  await auditStore?.close();
});

/**
 * The service with Slack faked and live remediation against `fake`; the Arc principal gets a
 * fresh app id. Also kept in `slack`, `auditStore` and `app` for `afterEach` to close.
 */
async function startLiveService(fake: FakeAzure) {
  const appId = freshAppId();
  fake.servicePrincipal({ id: ARC.principalId, appId, displayName: 'ci-deployer' });
  stubAzureEnv(fake);

  const env = {
    SLACK_BOT_TOKEN: TOKEN,
    SLACK_SIGNING_SECRET: SECRET,
    SLACK_ALERT_CHANNEL: CHANNEL,
    SLACK_RESPONDERS: RESPONDER,
    AZURE_REMEDIATION: 'live',
    AZURE_ARM_ENDPOINT: fake.armUrl,
    GRAPH_ENDPOINT: fake.graphUrl,
    AZURE_AUTHORITY_HOST: fake.loginUrl,
  };
  slack = await startFakeSlack();
  auditStore = await memoryStore();
  const remediator = createAzureRemediator(loadConfig(env), {
    store: auditStore,
    logger: quietLogger(),
    tlsCa: fake.ca,
    retry: FAST_RETRY,
  });
  app = await startTestApp({ env: { ...env, SLACK_API_URL: slack.apiUrl }, remediator });
  return { appId, f: slack, app, auditStore };
}

/** The id of the alert the service posted first, as its Revoke button carries it. */
function postedAlertId(f: FakeSlack): string {
  const blocks = f.callsOf('chat.postMessage')[0]!.args.blocks as Array<{
    elements?: Array<{ action_id: string; value: string }>;
  }>;
  return blocks.flatMap((b) => b.elements ?? []).find((b) => b.action_id === ACTION_IDS.revoke)!.value;
}

/** A responder's signed press of Revoke on `alertId`, its answer going to `responseId`. */
function pressRevoke(url: string, f: FakeSlack, alertId: string, responseId: string, messageTs?: string) {
  return sendSigned(
    `${url}/slack/events`,
    SECRET,
    payloadBody(
      buttonClick({
        actionId: ACTION_IDS.revoke,
        value: alertId,
        user: RESPONDER,
        channel: CHANNEL,
        ...(messageTs ? { messageTs } : {}),
        responseUrl: f.responseUrl(responseId),
      }),
    ),
  );
}

/** The lines the service posted in alerts' threads. */
const threadLines = (f: FakeSlack) => f.callsOf('chat.postMessage').filter((c) => c.args.thread_ts);

it('POST /ingest, then a signed Revoke click: exactly the planned DELETEs and the PATCH; a second click changes nothing', async () => {
  azure = addRoles(await startFakeAzure());
  const evidenceId = `${ARC.roleAssignmentScope}/providers/Microsoft.Authorization/roleAssignments/${ARC.roleAssignmentId}`;
  const inheritedId = `${SUB_SCOPE}/providers/Microsoft.Authorization/roleAssignments/${INHERITED}`;
  azure
    .assign({
      name: ARC.roleAssignmentId,
      scope: ARC.roleAssignmentScope,
      roleDefinitionId: ROLE.clusterUser,
      principalId: ARC.principalId,
      principalType: 'ServicePrincipal',
    })
    .assign({
      name: INHERITED,
      scope: SUB_SCOPE,
      roleDefinitionId: ROLE.customArc,
      principalId: ARC.principalId,
      principalType: 'ServicePrincipal',
    })
    .assign({
      name: OWNER,
      scope: SUB_SCOPE,
      roleDefinitionId: ROLE.owner,
      principalId: ARC.principalId,
      principalType: 'ServicePrincipal',
    });
  const { appId, f, app, auditStore } = await startLiveService(azure);

  const ingested = await postIngest(app.url, arcRecord({ appId, ip: '198.51.100.9' }));
  expect(ingested.body).toMatchObject({ counts: { alerted: 1 } });
  await app.app.outbox.drain();
  const alertId = postedAlertId(f);
  expect(azure.mutations()).toEqual([]);

  const click = (responseId: string) => pressRevoke(app.url, f, alertId, responseId, '1700000000.000001');
  const threads = () => threadLines(f);

  expect((await click('first')).status).toBe(200);
  await f.waitFor('the revoke audit in the thread', () => threads().length === 1, 15_000);

  // The planned DELETEs, nothing else: the evidence and the inherited Arc role, not the Owner.
  expect(azure.calls('arm', 'DELETE').map((r) => r.path)).toEqual([evidenceId, inheritedId]);
  expect(azure.calls('graph', 'PATCH')).toMatchObject([
    { path: `/v1.0/servicePrincipals/${ARC.principalId}`, body: { accountEnabled: false } },
  ]);
  expect(azure.mutations()).toHaveLength(3);
  expect(azure.servicePrincipals.get(ARC.principalId)?.accountEnabled).toBe(false);
  expect(azure.assignmentsByName.has(OWNER)).toBe(true);
  expect(String(threads()[0]!.args.text)).toContain('revoked the access');

  const attempts = await listRemediationAttempts(auditStore, alertId);
  expect(attempts).toMatchObject([{ actor: RESPONDER, action: 'azure.revoke', result: 'ok', appId }]);

  // A second click: refused as already revoked; Azure sees no new call.
  const before = azure.requests.length;
  expect((await click('second')).status).toBe(200);
  await f.waitFor('the answer to the second click', () => f.responsesTo('second').length === 1, 15_000);
  expect(JSON.stringify(f.responsesTo('second'))).toMatch(/Already revoked/);
  expect(azure.requests.length).toBe(before);
  expect(app.rawLogs()).not.toContain(azure.clientSecret);
});

it('POST /ingest of tampered evidence naming the security team’s Owner assignment, then Revoke: it is not deleted and the report says why', async () => {
  const SECURITY_TEAM = 'ae5ec7ea-0000-4000-8000-00000000beef';
  const TEAM_OWNER = 'ae5ec7ea-0000-4000-8000-000000000001';
  azure = addRoles(await startFakeAzure());
  const evidenceId = `${ARC.roleAssignmentScope}/providers/Microsoft.Authorization/roleAssignments/${ARC.roleAssignmentId}`;
  const teamOwnerId = `${SUB_SCOPE}/providers/Microsoft.Authorization/roleAssignments/${TEAM_OWNER}`;
  azure
    .assign({
      name: ARC.roleAssignmentId,
      scope: ARC.roleAssignmentScope,
      roleDefinitionId: ROLE.clusterUser,
      principalId: ARC.principalId,
      principalType: 'ServicePrincipal',
    })
    .assign({
      name: TEAM_OWNER,
      scope: SUB_SCOPE,
      roleDefinitionId: ROLE.owner,
      principalId: SECURITY_TEAM,
      principalType: 'Group',
    });
  const { appId, f, app } = await startLiveService(azure);

  // The record's evidence is rewritten to name the team's Owner assignment as the caller's
  // Arc Cluster User role (the caller's claims are left as they are).
  const record = arcRecord({ appId, ip: '198.51.100.10' });
  const evidence = (record.identity as { authorization: { evidence: Record<string, string> } }).authorization
    .evidence;
  evidence.roleAssignmentScope = SUB_SCOPE;
  evidence.roleAssignmentId = TEAM_OWNER.replaceAll('-', '');
  expect((await postIngest(app.url, record)).body).toMatchObject({ counts: { alerted: 1 } });
  await app.app.outbox.drain();
  const res = await pressRevoke(app.url, f, postedAlertId(f), 'tampered', '1700000000.000002');
  expect(res.status).toBe(200);
  const threads = () => threadLines(f);
  await f.waitFor('the revoke audit in the thread', () => threads().length === 1, 15_000);

  // Only the caller's own Arc assignment (from ARM's listing) is deleted; the team's Owner stays.
  expect(azure.calls('arm', 'DELETE').map((r) => r.path)).toEqual([evidenceId]);
  expect(azure.assignmentsByName.get(TEAM_OWNER)?.principalId).toBe(SECURITY_TEAM);
  const report = String(threads()[0]!.args.text);
  expect(report).toContain(':rotating_light: POSSIBLE TAMPERING');
  expect(report).toContain('different principal');
  expect(report).not.toContain(`DELETE ${azure.armUrl}${teamOwnerId}`);
});

it.each([
  ['server_error', 500, 'AADSTS50000: There was an error issuing a token.'],
  ['temporarily_unavailable', 503, 'AADSTS90033: A transient error has occurred. Please try again.'],
  // As Entra ID writes it, with the trailer of its own description (the library wraps it in about
  // 250 characters of its own first).
  [
    'server_error',
    500,
    'AADSTS50000: There was an error issuing a token or an issue with our sign-in service. Trace ID: 0b7e3c52-9d41-4f8a-b6e2-5a1c7d9ecc00 Correlation ID: 5d3b0f82-9c4e-4a16-b7d2-3e8f0a1b6c49 Timestamp: 2026-03-12 09:15:27Z',
  ],
])(
  'a token endpoint failing with %s: the thread says Entra ID failed, to press again, and blames no credential',
  { timeout: 60_000 },
  async (error, status, description) => {
    azure = addRoles(await startFakeAzure());
    azure.assign({
      name: ARC.roleAssignmentId,
      scope: ARC.roleAssignmentScope,
      roleDefinitionId: ROLE.clusterUser,
      principalId: ARC.principalId,
      principalType: 'ServicePrincipal',
    });
    // Entra ID fails on its side. The identity library then waits about a minute before it asks
    // again, so every click meanwhile fails without a call.
    azure.fail({
      service: 'login',
      method: 'POST',
      path: /oauth2\/v2\.0\/token$/,
      status,
      body: { error, error_description: description },
      times: Number.POSITIVE_INFINITY,
    });
    const { appId, f, app } = await startLiveService(azure);

    expect((await postIngest(app.url, arcRecord({ appId, ip: '198.51.100.70' }))).body).toMatchObject({
      counts: { alerted: 1 },
    });
    await app.app.outbox.drain();
    const alertId = postedAlertId(f);

    // The first click meets the failing endpoint; the second, the library's wait after it.
    for (const n of [1, 2]) {
      expect((await pressRevoke(app.url, f, alertId, `click-${n}`)).status).toBe(200);
      await f.waitFor(`the thread line of click ${n}`, () => threadLines(f).length === n, 15_000);
      const line = String(threadLines(f)[n - 1]!.args.text);
      expect(line).toContain('failed');
      expect(line).not.toContain('no working Azure credential');
      expect(line).toMatch(/Entra ID failed to issue a token/);
      expect(line).toMatch(/press again in a minute or two/);
      // Not the 400 the credential library wraps every failure in: Entra ID answered otherwise.
      expect(line).not.toMatch(/\b400\b/);
      // Entra ID's own words, without the library's wrapping around them.
      expect(line).toContain(`(${description.replace(/ Trace ID:.*$/, '')})`);
      expect(line).not.toContain('To troubleshoot');
    }
    expect(azure.mutations()).toEqual([]);
  },
);

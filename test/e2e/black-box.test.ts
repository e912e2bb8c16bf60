/**
 * The service as operators run it: `node src/main.ts` (what `npm start` runs), configured only
 * through the environment variables of CONTRACT.md, with Slack faked at its Web API and Azure at
 * ARM, Graph and the token endpoint over HTTPS (trusted through NODE_EXTRA_CA_CERTS, as a private
 * CA would be). Detections in real formats go in through POST /ingest; what Slack and Azure see is
 * checked from the fakes' records.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import { addRoles, ROLE } from '../azure/helpers.ts';
import { type FakeAzure, startFakeAzure } from '../support/fake-azure.ts';
import {
  buttonClick,
  type FakeSlack,
  payloadBody,
  sendSigned,
  startFakeSlack,
} from '../support/fake-slack.ts';
import { type ServiceProcess, startService } from '../support/http-child.ts';
import { ARC, arcEvent, kibanaWebhookBody, recordsEnvelope } from '../support/samples.ts';

const SECRET = 'black-box-signing-secret';
const BOT_TOKEN = 'xoxb-black-box-token';
const INGEST_TOKEN = 'black-box-ingest-token';
const CHANNEL = 'C0ALERTS';
const RESPONDER = 'URESPONDER';

const dir = mkdtempSync(path.join(tmpdir(), 'arc-black-box-'));
let slack: FakeSlack;
let azure: FakeAzure;
let service: ServiceProcess | undefined;
let caFile: string;

beforeAll(async () => {
  slack = await startFakeSlack();
  azure = addRoles(await startFakeAzure());
  caFile = path.join(dir, 'fake-azure-ca.pem');
  writeFileSync(caFile, azure.ca);
});
afterEach(async () => {
  service?.child.kill('SIGTERM');
  await service?.exited;
  service = undefined;
});
afterAll(async () => {
  await slack.stop();
  await azure.close();
  rmSync(dir, { recursive: true, force: true });
});

function start(extra: Record<string, string> = {}) {
  service = startService(
    {
      PORT: '0',
      HOST: '127.0.0.1',
      STORE_URL: `sqlite://${path.join(dir, `bb-${Date.now()}.db`)}`,
      INGEST_TOKEN,
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_ALERT_CHANNEL: CHANNEL,
      SLACK_API_URL: slack.apiUrl,
      SLACK_RESPONDERS: RESPONDER,
      AZURE_ARM_ENDPOINT: azure.armUrl,
      GRAPH_ENDPOINT: azure.graphUrl,
      AZURE_AUTHORITY_HOST: azure.loginUrl,
      AZURE_TENANT_ID: azure.tenantId,
      AZURE_CLIENT_ID: azure.clientId,
      AZURE_CLIENT_SECRET: azure.clientSecret,
      NODE_EXTRA_CA_CERTS: caFile,
      ...extra,
    },
    dir,
  );
  return service.url();
}

async function ingest(url: string, body: unknown, type = 'application/json') {
  const res = await fetch(`${url}/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${INGEST_TOKEN}`, 'content-type': type },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const posts = () =>
  slack.callsOf('chat.postMessage').filter((c) => c.args.channel === CHANNEL && !c.args.thread_ts);

describe('black box: npm start configured by the environment alone', () => {
  it('alerts once per new pair in every format, revokes through Azure on a signed click, and changes nothing twice', async () => {
    const appId = '7e1d2c3b-4a59-4867-9786-a5b4c3d2e1f0';
    azure
      .assign({
        name: ARC.roleAssignmentId,
        scope: ARC.roleAssignmentScope,
        roleDefinitionId: ROLE.clusterUser,
        principalId: ARC.principalId,
        principalType: 'ServicePrincipal',
      })
      .servicePrincipal({ id: ARC.principalId, appId, displayName: 'ci-deployer' });
    const url = await start({ AZURE_REMEDIATION: 'live' });
    const before = posts().length;

    // The same new pair as an Event Hub record, again in the records envelope, and as NDJSON.
    const time = new Date(Date.now() - 60_000);
    const record = arcEvent('azure-activity-log-record', { appId, ip: '198.51.100.77', time });
    const first = await ingest(url, record);
    expect(first).toMatchObject({ status: 200, body: { counts: { alerted: 1 } } });
    const again = await ingest(
      url,
      recordsEnvelope([
        record,
        arcEvent('azure-activity-log-record', {
          appId,
          ip: '198.51.100.77',
          time: new Date(),
          correlationId: 'cafe0000-0000-4000-8000-000000000001',
        }),
      ]),
    );
    expect(again).toMatchObject({ status: 200, body: { counts: { duplicate: 1, known: 1 } } });

    await slack.waitFor('the alert', () => posts().length === before + 1, 15_000);
    const alert = posts().at(-1)!;
    // Event Hub records carry the resource id upper-case; the alert shows it as Azure sent it.
    const blocksText = JSON.stringify(alert.args.blocks).toLowerCase();
    for (const expected of [appId, '198.51.100.77', ARC.clusterName, 'mark benign', 'revoke']) {
      expect(blocksText).toContain(expected.toLowerCase());
    }
    const revoke = (alert.args.blocks as Array<{ elements?: Array<{ action_id: string; value: string }> }>)
      .flatMap((b) => b.elements ?? [])
      .find((e) => e.action_id === ACTION_IDS.revoke)!;

    const click = (id: string) =>
      sendSigned(
        `${url}/slack/events`,
        SECRET,
        payloadBody(
          buttonClick({
            actionId: ACTION_IDS.revoke,
            value: revoke.value,
            user: RESPONDER,
            channel: CHANNEL,
            messageTs: '1700000000.000100',
            responseUrl: slack.responseUrl(id),
          }),
        ),
      );
    expect((await click('one')).status).toBe(200);
    await slack.waitFor(
      'the revoke report in the thread',
      () => slack.callsOf('chat.postMessage').some((c) => c.args.thread_ts),
      20_000,
    );
    const evidenceId = `${ARC.roleAssignmentScope}/providers/Microsoft.Authorization/roleAssignments/${ARC.roleAssignmentId}`;
    expect(azure.calls('arm', 'DELETE').map((r) => r.path)).toEqual([evidenceId]);
    expect(azure.calls('graph', 'PATCH')).toMatchObject([
      { path: `/v1.0/servicePrincipals/${ARC.principalId}`, body: { accountEnabled: false } },
    ]);
    const mutations = azure.mutations().length;
    expect((await click('two')).status).toBe(200);
    await slack.waitFor(
      'the answer to the second click',
      () => slack.responsesTo('two').length === 1,
      15_000,
    );
    expect(azure.mutations().length).toBe(mutations);

    const logs = JSON.stringify(service!.lines);
    for (const secret of [BOT_TOKEN, SECRET, INGEST_TOKEN, azure.clientSecret])
      expect(logs).not.toContain(secret);
  });

  it('in dry-run (the default) a Revoke click reports the plan and Azure sees no change', async () => {
    const url = await start();
    const before = posts().length;
    const appId = '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d';
    const alert = arcEvent('elastic-alert', {
      appId,
      ip: '203.0.113.90',
      time: new Date(Date.now() - 30_000),
    });
    expect(await ingest(url, kibanaWebhookBody([alert]))).toMatchObject({
      status: 200,
      body: { counts: { alerted: 1 } },
    });
    await slack.waitFor('the alert', () => posts().length === before + 1, 15_000);
    const message = posts().at(-1)!;
    const revoke = (message.args.blocks as Array<{ elements?: Array<{ action_id: string; value: string }> }>)
      .flatMap((b) => b.elements ?? [])
      .find((e) => e.action_id === ACTION_IDS.revoke)!;
    const mutations = azure.mutations().length;
    const threadsBefore = slack.callsOf('chat.postMessage').filter((c) => c.args.thread_ts).length;
    const res = await sendSigned(
      `${url}/slack/events`,
      SECRET,
      payloadBody(
        buttonClick({
          actionId: ACTION_IDS.revoke,
          value: revoke.value,
          user: RESPONDER,
          channel: CHANNEL,
          messageTs: '1700000000.000200',
          responseUrl: slack.responseUrl('dry'),
        }),
      ),
    );
    expect(res.status).toBe(200);
    await slack.waitFor(
      'the dry-run report',
      () => slack.callsOf('chat.postMessage').filter((c) => c.args.thread_ts).length > threadsBefore,
      20_000,
    );
    const report = JSON.stringify(
      slack
        .callsOf('chat.postMessage')
        .filter((c) => c.args.thread_ts)
        .at(-1),
    );
    expect(report).toMatch(/dry-run/i);
    expect(azure.mutations().length).toBe(mutations);
  });
});

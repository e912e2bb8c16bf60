/**
 * End to end: the Entra token endpoint fails on its side (a 5xx, `server_error` or
 * `temporarily_unavailable`) while a responder presses Revoke. The identity library then waits
 * about a minute before it asks again, so every click meanwhile fails without a call. The thread
 * must say that Entra ID failed and to press again later, not that the credential is missing.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { createAzureRemediator } from '../../src/azure/index.ts';
import { loadConfig } from '../../src/config.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import { type FakeAzure, startFakeAzure } from '../support/fake-azure.ts';
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

const SECRET = 'token-outage-signing-secret';
const RESPONDER = 'UALICE';
const CHANNEL = 'C0ALERTS';

let app: TestApp | undefined;
let slack: FakeSlack | undefined;
let azure: FakeAzure | undefined;
afterEach(async () => {
  vi.unstubAllEnvs();
  await app?.close();
  await slack?.stop();
  await azure?.close();
});

it.each([
  ['server_error', 500, 'AADSTS50000: There was an error issuing a token.'],
  ['temporarily_unavailable', 503, 'AADSTS90033: A transient error has occurred. Please try again.'],
])(
  'a token endpoint failing with %s: the thread says Entra ID failed, to press again, and blames no credential',
  { timeout: 60_000 },
  async (error, status, description) => {
    azure = addRoles(await startFakeAzure());
    const appId = freshAppId();
    azure
      .assign({
        name: ARC.roleAssignmentId,
        scope: ARC.roleAssignmentScope,
        roleDefinitionId: ROLE.clusterUser,
        principalId: ARC.principalId,
        principalType: 'ServicePrincipal',
      })
      .servicePrincipal({ id: ARC.principalId, appId, displayName: 'ci-deployer' });
    stubAzureEnv(azure);
    azure.fail({
      service: 'login',
      method: 'POST',
      path: /oauth2\/v2\.0\/token$/,
      status,
      body: { error, error_description: description },
      times: Number.POSITIVE_INFINITY,
    });
    const env = {
      SLACK_BOT_TOKEN: 'xoxb-token-outage',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_ALERT_CHANNEL: CHANNEL,
      SLACK_RESPONDERS: RESPONDER,
      AZURE_REMEDIATION: 'live',
      AZURE_ARM_ENDPOINT: azure.armUrl,
      GRAPH_ENDPOINT: azure.graphUrl,
      AZURE_AUTHORITY_HOST: azure.loginUrl,
    };
    slack = await startFakeSlack();
    const remediator = createAzureRemediator(loadConfig(env), {
      store: await memoryStore(),
      logger: quietLogger(),
      tlsCa: azure.ca,
      retry: FAST_RETRY,
    });
    app = await startTestApp({ env: { ...env, SLACK_API_URL: slack.apiUrl }, remediator });
    const f = slack;

    expect((await postIngest(app.url, arcRecord({ appId, ip: '198.51.100.70' }))).body).toMatchObject({
      counts: { alerted: 1 },
    });
    await app.app.outbox.drain();
    const buttons = (
      f.callsOf('chat.postMessage')[0]!.args.blocks as Array<{
        elements?: Array<{ action_id: string; value: string }>;
      }>
    ).flatMap((b) => b.elements ?? []);
    const alertId = buttons.find((b) => b.action_id === ACTION_IDS.revoke)!.value;
    const threads = () => f.callsOf('chat.postMessage').filter((c) => c.args.thread_ts);
    const click = (n: number) =>
      sendSigned(
        `${app!.url}/slack/events`,
        SECRET,
        payloadBody(
          buttonClick({
            actionId: ACTION_IDS.revoke,
            value: alertId,
            user: RESPONDER,
            channel: CHANNEL,
            text: 'Revoke',
            responseUrl: f.responseUrl(`click-${n}`),
          }),
        ),
      );

    // The first click meets the failing endpoint; the second, the library's wait after it.
    for (const n of [1, 2]) {
      expect((await click(n)).status).toBe(200);
      await f.waitFor(`the thread line of click ${n}`, () => threads().length === n, 15_000);
      const line = String(threads()[n - 1]!.args.text);
      expect(line).toContain('failed');
      expect(line).not.toContain('no working Azure credential');
      expect(line).toMatch(/Entra ID failed to issue a token/);
      expect(line).toMatch(/press again in a minute or two/);
    }
    expect(azure.mutations()).toEqual([]);
  },
);

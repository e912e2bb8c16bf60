/**
 * The alert's link to the cluster in the Azure portal, through the real service (`createApp`,
 * SQLite, HTTP, outbox) with Slack faked at its Web API: the portal is the configured cloud's.
 */
import { afterEach, expect, it } from 'vitest';
import { portalForArm } from '../../src/slack/blocks/alert.ts';
import { type FakeSlack, startFakeSlack } from '../support/fake-slack.ts';
import { arcRecord, freshAppId, postIngest, startTestApp, type TestApp } from '../support/http-app.ts';
import { ARC } from '../support/samples.ts';

let app: TestApp | undefined;
let fake: FakeSlack | undefined;
afterEach(async () => {
  await app?.close();
  await fake?.stop();
});

it("links the cluster, its activity log and the caller to the portal of the cloud AZURE_ARM_ENDPOINT names (a sovereign cloud's resources are not in the public portal)", async () => {
  fake = await startFakeSlack();
  app = await startTestApp({
    env: {
      SLACK_BOT_TOKEN: 'xoxb-portal',
      SLACK_SIGNING_SECRET: 'portal-signing-secret',
      SLACK_ALERT_CHANNEL: 'C0ALERTS',
      SLACK_API_URL: fake.apiUrl,
      AZURE_ARM_ENDPOINT: 'https://management.usgovcloudapi.net',
    },
  });
  const ingest = await postIngest(app.url, arcRecord({ appId: freshAppId(), ip: '198.51.100.31' }));
  expect(ingest.body).toMatchObject({ counts: { alerted: 1 } });
  await app.app.outbox.drain();
  const [post] = fake.callsOf('chat.postMessage');
  const blocks = JSON.stringify(post!.args.blocks);
  expect(blocks).toContain(`<https://portal.azure.us/#@${ARC.tenantId}/resource${ARC.clusterIdUpper}|`);
  expect(blocks).toContain(
    `<https://portal.azure.us/#@${ARC.tenantId}/resource${ARC.clusterIdUpper}/eventlogs|`,
  );
  expect(blocks).toContain(
    `<https://portal.azure.us/${ARC.tenantId}/#view/Microsoft_AAD_IAM/ManagedAppMenuBlade/`,
  );
  expect(blocks).not.toContain('portal.azure.com');

  expect(portalForArm('https://management.chinacloudapi.cn')).toBe('https://portal.azure.cn');
  expect(portalForArm('https://management.azure.com')).toBe('https://portal.azure.com');
  expect(portalForArm(undefined)).toBe('https://portal.azure.com');
});

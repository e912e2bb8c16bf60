import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { evidencePlanRemediator } from '../../src/core/evidence-plan.ts';
import { createHistory } from '../../src/core/history.ts';
import type { StateStore } from '../../src/core/ports.ts';
import { createSlackChat } from '../../src/slack/index.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { type FakeSlack, startFakeSlack } from '../support/fake-slack.ts';
import { sampleAlert } from './sample-alert.ts';

let fake: FakeSlack | undefined;
let store: StateStore | undefined;
afterEach(async () => {
  await store?.close();
  await fake?.stop();
});

it('with SLACK_APP_TOKEN uses Socket Mode: no HTTP listener, alerts still posted through the Web API', async () => {
  fake = await startFakeSlack();
  store = await openStateStore('memory://');
  const config = loadConfig({
    SLACK_BOT_TOKEN: 'xoxb-socket',
    SLACK_APP_TOKEN: 'xapp-1-socket',
    SLACK_ALERT_CHANNEL: 'C123',
    SLACK_API_URL: fake.apiUrl,
  });
  const chat = await createSlackChat(config, {
    store,
    logger: pino({ level: 'silent' }),
    history: createHistory({ store, windowMs: 7 * 86_400_000 }),
    remediator: evidencePlanRemediator(),
    tuning: { webApiRetries: 0 },
  });
  expect(chat.requestListener).toBeUndefined();
  expect(await chat.sink.post(sampleAlert())).toEqual({ ref: 'C123:1700000000.000001' });
  expect(fake.callsOf('chat.postMessage')[0]!.token).toBe('xoxb-socket');
});

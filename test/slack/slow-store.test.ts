/**
 * Slack wants every request answered within 3 s, and past them its answer is a 404 and an error
 * shown to the user. A store that is slow to answer (Redis reached through a TCP proxy of the
 * test's own that holds every byte while paused) must cost no acknowledgement: each request below
 * is answered while the store still answers nothing. Clicks and commands are answered at once,
 * `/arc-history` sends its list through the response_url once read, and a Mark benign submission
 * turns its dialog into a notice of the outcome.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { ACTION_IDS, CALLBACK_IDS } from '../../src/slack/ids.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { describeWithService, uniqueNamespace } from '../store/helpers.ts';
import { ARC } from '../support/samples.ts';
import { type TcpProxy, tcpProxy } from '../support/tcp-proxy.ts';
import { benignValues, CHANNEL, type Harness, OUTSIDER, RESPONDER, startHarness } from './harness.ts';
import { sampleAlert } from './sample-alert.ts';

let h: Harness | undefined;
let proxy: TcpProxy | undefined;
afterEach(async () => {
  proxy?.resume();
  await h?.close();
  await proxy?.close();
  h = undefined;
  proxy = undefined;
});

describeWithService('Slack while the store is slow to answer (Redis)', 'TEST_REDIS_URL', (url) => {
  async function slowStoreHarness(options: { historyAccess?: 'responders' } = {}) {
    proxy = await tcpProxy(new URL(url));
    const store = await openStateStore(proxy.url, { namespace: uniqueNamespace('slack-slow') });
    h = await startHarness({ store, ...options });
    await h.chat.sink.post(sampleAlert());
    return { h, proxy };
  }

  it('answers clicks and /arc-history help at once, whatever the store', async () => {
    const { h, proxy } = await slowStoreHarness();
    proxy.pause();
    const click = await h.click(ACTION_IDS.markBenign, sampleAlert().id, RESPONDER, { channel: CHANNEL });
    expect(click.status).toBe(200);
    const help = await h.command('help', RESPONDER);
    expect(help.status).toBe(200);
    expect(String((help.json() as { text: string }).text)).toMatch(/arc-history/);
    // Once the store answers, the click goes on: its modal opens.
    proxy.resume();
    await h.fake.waitFor('the modal', () => h.fake.callsOf('views.open').length === 1, 10_000);
  });

  it('refuses /arc-history to a caller SLACK_HISTORY leaves out before the store takes the record of it', async () => {
    const { h, proxy } = await slowStoreHarness({ historyAccess: 'responders' });
    proxy.pause();
    const cmd = await h.command(ARC.appId, OUTSIDER, CHANNEL);
    expect(cmd.status).toBe(200);
    expect((cmd.json() as { text: string }).text).toMatch(/Only responders/);
    expect(JSON.stringify(cmd.json())).not.toContain('198.51.100');
    // The record is stored once the store answers.
    proxy.resume();
    await vi.waitFor(async () =>
      expect((await listAudit(h.store)).map((e) => [e.action, e.result, e.actor])).toContainEqual([
        'history',
        'refused',
        OUTSIDER,
      ]),
    );
  });

  it('answers /arc-history before the store does, then sends the list through the response_url', async () => {
    const { h, proxy } = await slowStoreHarness();
    proxy.pause();
    const cmd = await h.command(ARC.appId, RESPONDER);
    expect(cmd.status).toBe(200);
    expect((cmd.json() as { text: string }).text).toMatch(/the store is slow to answer, so the list follows/);
    proxy.resume();
    await h.fake.waitFor('the list', () => h.fake.responsesTo(cmd.responseId).length > 0, 10_000);
    const [list] = h.fake.responsesTo(cmd.responseId);
    expect(list).toMatchObject({ response_type: 'ephemeral' });
    expect(JSON.stringify(list)).toContain(ARC.appId);
  });

  it('answers a Mark benign submission before the store does, stores the entry once it answers, and says so in the dialog', async () => {
    const { h, proxy } = await slowStoreHarness();
    await h.click(ACTION_IDS.markBenign, sampleAlert().id, RESPONDER, { channel: CHANNEL });
    await h.fake.waitFor('the modal', () => h.fake.callsOf('views.open').length === 1);
    const view = h.fake.callsOf('views.open')[0]!.args.view as { private_metadata: string };
    const values = benignValues('office VPN', '7d');
    proxy.pause();
    const submitted = await h.submit(CALLBACK_IDS.markBenign, RESPONDER, view.private_metadata, values);
    expect(submitted.status).toBe(200);
    expect(submitted.json()).toMatchObject({
      response_action: 'update',
      view: { blocks: [{ text: { text: expect.stringMatching(/the store is slow to answer/) } }] },
    });
    proxy.resume();
    await h.fake.waitFor(
      'the outcome in the dialog',
      () => h.fake.callsOf('views.update').length === 1,
      10_000,
    );
    const outcome = h.fake.callsOf('views.update')[0]!.args;
    expect(outcome.view_id).toBe('V1');
    expect(JSON.stringify(outcome.view)).toMatch(/office VPN/);
    const sample = sampleAlert().detection;
    expect(await h.history.getAllow(sample.appId, sample.sourceIp)).toMatchObject({
      by: RESPONDER,
      reason: 'office VPN',
    });
  });
});

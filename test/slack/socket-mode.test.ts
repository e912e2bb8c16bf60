import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ChatAdapter } from '../../src/chat-adapter.ts';
import { loadConfig } from '../../src/config.ts';
import { evidencePlanRemediator } from '../../src/core/evidence-plan.ts';
import { createHistory } from '../../src/core/history.ts';
import type { StateStore } from '../../src/core/ports.ts';
import { createSlackChat } from '../../src/slack/index.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { type FakeSlack, startFakeSlack } from '../support/fake-slack.ts';
import { type FakeSocketMode, startFakeSocketMode } from '../support/fake-socket-mode.ts';
import { sampleAlert } from './sample-alert.ts';

let fake: FakeSlack | undefined;
const socketConfig = (slack: FakeSlack) =>
  loadConfig({
    SLACK_BOT_TOKEN: 'xoxb-socket',
    SLACK_APP_TOKEN: 'xapp-1-socket',
    SLACK_ALERT_CHANNEL: 'C123',
    SLACK_API_URL: slack.apiUrl,
  });
let store: StateStore | undefined;
afterEach(async () => {
  await store?.close();
  await fake?.stop();
});

it('with SLACK_APP_TOKEN uses Socket Mode: no HTTP listener, alerts still posted through the Web API', async () => {
  fake = await startFakeSlack();
  store = await openStateStore('memory://');
  const config = socketConfig(fake);
  const chat = await createSlackChat(config, {
    store,
    logger: pino({ level: 'silent' }),
    history: createHistory({ store, windowMs: 7 * 86_400_000 }),
    remediator: evidencePlanRemediator(),
    tuning: { webApiRetries: 0 },
  });
  expect(chat.requestListener).toBeUndefined();
  expect(await chat.sink.post(sampleAlert())).toEqual({ ref: 'C123:1700000000.000001' });
  expect(chat.problems()).toEqual([]);
  expect(fake.callsOf('chat.postMessage')[0]!.token).toBe('xoxb-socket');
});

it('opens the Socket Mode connection through SLACK_API_URL, in the background: a failing Slack never holds up the start', async () => {
  fake = await startFakeSlack();
  fake.script('apps.connections.open', { error: 'invalid_auth' });
  store = await openStateStore('memory://');
  const config = socketConfig(fake);
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const chat = await createSlackChat(config, {
    store,
    logger,
    history: createHistory({ store, windowMs: 7 * 86_400_000 }),
    remediator: evidencePlanRemediator(),
    tuning: { webApiRetries: 0, startWaitMs: 1000 },
  });
  await chat.start?.();
  await fake.waitFor('apps.connections.open', () => fake!.callsOf('apps.connections.open').length > 0);
  expect(fake.callsOf('apps.connections.open')[0]!.token).toBe('xapp-1-socket');
  await expect
    .poll(() => lines.find((l) => String(l.msg).startsWith('Slack Socket Mode could not connect')))
    .toBeDefined();
  // Readiness says so, without the token.
  expect(chat.problems()).toEqual([
    expect.stringMatching(/^Slack Socket Mode could not connect .*SLACK_APP_TOKEN/),
  ]);
  expect(chat.problems().join()).not.toContain('xapp-1-socket');
  // Alerts still go out meanwhile.
  expect(await chat.sink.post(sampleAlert())).toEqual({ ref: 'C123:1700000000.000001' });
  await chat.stop?.();
});

describe('Socket Mode connection kept up', () => {
  let socket: FakeSocketMode | undefined;
  afterEach(async () => {
    await socket?.stop();
  });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /** The chat in Socket Mode against a fake Slack and a fake WebSocket endpoint, connected. */
  async function connectedChat(lines: Array<Record<string, unknown>>) {
    fake = await startFakeSlack();
    socket = await startFakeSocketMode();
    fake.socketUrl = socket.url;
    store = await openStateStore('memory://');
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const chat = await createSlackChat(socketConfig(fake), {
      store,
      logger,
      history: createHistory({ store, windowMs: 7 * 86_400_000 }),
      remediator: evidencePlanRemediator(),
      tuning: {
        webApiRetries: 0,
        startWaitMs: 1000,
        socketGraceMs: 300,
        socketRetryStepMs: 200,
        socketHelloMs: 500,
      },
    });
    await chat.start?.();
    await vi.waitFor(() => expect(socket!.open).toBe(1), { timeout: 5000 });
    expect(chat.problems()).toEqual([]);
    return chat;
  }

  /** Waits for a log line whose message `match`es. */
  const logged = (lines: Array<Record<string, unknown>>, match: (msg: string) => boolean, timeout: number) =>
    vi.waitFor(() => expect(lines.some((l) => match(String(l.msg)))).toBe(true), { timeout, interval: 50 });

  /**
   * Waits for one socket open again, and readiness with it. Both within `timeout`: a socket that
   * opened before Slack greets again is closed for want of `hello`, and the next one comes after
   * the client's own reconnection delay.
   */
  async function connectedAgain(chat: ChatAdapter, timeout: number) {
    await vi.waitFor(
      () => {
        expect(socket!.open).toBe(1);
        expect(chat.problems()).toEqual([]);
      },
      { timeout, interval: 50 },
    );
  }

  it('after a reconnection Slack refuses (the client gives up), says so in readiness and connects again once Slack takes it', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const chat = await connectedChat(lines);
    try {
      // Slack asks for a reconnection, and refuses the next apps.connections.open.
      fake!.script('apps.connections.open', { error: 'invalid_auth' }, { error: 'invalid_auth' });
      socket!.disconnectAll();
      await vi.waitFor(
        () =>
          expect(chat.problems()).toEqual([
            expect.stringMatching(
              /^Slack Socket Mode could not connect since .*invalid_auth.*SLACK_APP_TOKEN/,
            ),
          ]),
        { timeout: 15_000, interval: 50 },
      );
      expect(chat.problems().join()).not.toContain('xapp-1-socket');
      expect(lines.some((l) => String(l.msg).startsWith('Slack Socket Mode cannot reconnect'))).toBe(true);

      // Slack takes the token again, but its WebSocket never greets: the token is no longer blamed.
      socket!.silent = true;
      await vi.waitFor(
        () =>
          expect(chat.problems()).toEqual([
            expect.stringMatching(
              /^Slack Socket Mode could not connect since .*\(Slack accepts the app token, but the WebSocket connection does not come up or drops\).*wss-primary\.slack\.com/,
            ),
          ]),
        { timeout: 15_000, interval: 50 },
      );
      socket!.silent = false;

      // Once the socket greets again, the connection comes back, and readiness with it.
      await connectedAgain(chat, 30_000);
      expect(lines.some((l) => String(l.msg).startsWith('Slack Socket Mode connected again'))).toBe(true);
    } finally {
      await chat.stop?.();
    }
  }, 60_000);

  it('connects again after Slack asks it to wait (ratelimited), then refuses once: the client`s own retry failing is seen too', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const chat = await connectedChat(lines);
    try {
      fake!.script('apps.connections.open', { error: 'ratelimited' }, { error: 'invalid_auth' });
      socket!.disconnectAll();
      await logged(lines, (msg) => msg.startsWith('Slack Socket Mode cannot reconnect'), 30_000);
      await connectedAgain(chat, 10_000);
      expect(fake!.callsOf('apps.connections.open')).toHaveLength(4);
    } finally {
      await chat.stop?.();
    }
  }, 60_000);

  it('closes a socket Slack opens but never greets (no hello), and connects again', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const chat = await connectedChat(lines);
    try {
      socket!.silent = true;
      socket!.disconnectAll();
      await logged(lines, (msg) => msg.includes('no hello within 0.5 s'), 15_000);
      socket!.silent = false;
      await connectedAgain(chat, 20_000);
    } finally {
      await chat.stop?.();
    }
  }, 60_000);

  it('never opens a second socket while the client`s own reconnection is slow, and opens none after stop', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const chat = await connectedChat(lines);
    // The reconnection waits on a slow apps.connections.open, longer than readiness' grace.
    fake!.script('apps.connections.open', { delayMs: 1500 });
    socket!.disconnectAll();
    await vi.waitFor(() => expect(chat.problems()).toHaveLength(1), { timeout: 5000, interval: 50 });
    await vi.waitFor(() => expect(socket!.open).toBe(1), { timeout: 15_000, interval: 50 });
    await sleep(2000);
    expect(socket!.open).toBe(1);
    expect(socket!.opened).toBe(2);
    expect(chat.problems()).toEqual([]);
    await chat.stop?.();
    await sleep(1000);
    expect(socket!.open).toBe(0);
  }, 60_000);
});

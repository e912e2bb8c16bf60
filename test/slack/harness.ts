/**
 * Runs the Slack chat adapter for a test: a fake Slack Web API, a real memory store and history,
 * the dry-run remediator from the detection's evidence, and the adapter's request listener on a
 * local HTTP server that the tests reach with requests signed as Slack signs them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.ts';
import { evidencePlanRemediator } from '../../src/core/evidence-plan.ts';
import { createHistory, type History } from '../../src/core/history.ts';
import type { ChatAdapter, StateStore } from '../../src/core/ports.ts';
import type { Remediator } from '../../src/core/remediation.ts';
import { createSlackChat, type SlackTuning } from '../../src/slack/index.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import {
  buttonClick,
  commandBody,
  type FakeSlack,
  payloadBody,
  type SendOptions,
  sendSigned,
  slashCommand,
  startFakeSlack,
  viewSubmission,
} from '../support/fake-slack.ts';

export const SECRET = 'test-signing-secret-0123456789abcdef';
export const BOT_TOKEN = 'xoxb-test-bot-token';
export const CHANNEL = 'C123';
export const RESPONDER = 'UALICE';
export const GROUP_MEMBER = 'UBOB';
export const OUTSIDER = 'UMALLORY';
export const GROUP = 'SRESPONDERS';

export interface Harness {
  fake: FakeSlack;
  chat: ChatAdapter;
  store: StateStore;
  history: History;
  /** The URL of POST /slack/events. */
  url: string;
  /** Everything logged, as text: to check that secrets never appear. */
  logs: string[];
  failures: Array<Record<string, string> | undefined>;
  sleeps: number[];
  send(raw: string, opts?: SendOptions): Promise<{ status: number; text: string; json: () => unknown }>;
  click(
    actionId: string,
    value: string,
    user: string,
    extra?: Partial<Parameters<typeof buttonClick>[0]>,
  ): Promise<{ status: number; text: string; responseId: string }>;
  submit(
    callbackId: string,
    user: string,
    privateMetadata: string,
    values: Record<string, Record<string, unknown>>,
  ): Promise<{ status: number; text: string; json: () => unknown }>;
  command(text: string, user: string): Promise<{ status: number; text: string; json: () => unknown }>;
  close(): Promise<void>;
}

let responseCounter = 0;

export async function startHarness(
  opts: {
    responders?: string;
    remediator?: Remediator;
    tuning?: SlackTuning;
    now?: () => number;
    windowMs?: number;
  } = {},
): Promise<Harness> {
  const fake = await startFakeSlack();
  fake.usergroups.set(GROUP, [GROUP_MEMBER]);
  const store = await openStateStore('memory://');
  // A fake clock: the delivery queue's waits advance it instead of sleeping.
  let clock = 0;
  const base = Date.now();
  const now = opts.now ?? (() => base + clock);
  const history = createHistory({ store, windowMs: opts.windowMs ?? 7 * 24 * 3600 * 1000, now });
  const logs: string[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, cb) {
        logs.push(String(chunk));
        cb();
      },
    }),
  );
  const config = loadConfig({
    SLACK_BOT_TOKEN: BOT_TOKEN,
    SLACK_SIGNING_SECRET: SECRET,
    SLACK_ALERT_CHANNEL: CHANNEL,
    SLACK_API_URL: fake.apiUrl,
    SLACK_RESPONDERS: opts.responders ?? `${RESPONDER},${GROUP}`,
  });
  const failures: Array<Record<string, string> | undefined> = [];
  const sleeps: number[] = [];
  const chat = await createSlackChat(config, {
    store,
    logger,
    history,
    remediator: opts.remediator ?? evidencePlanRemediator(),
    metrics: { deliveryFailures: { inc: (labels) => failures.push(labels) } },
    now,
    tuning: {
      webApiRetries: 0,
      sleep: async (ms) => {
        sleeps.push(ms);
        clock += ms;
      },
      deliveryIntervalMs: 1000,
      ...opts.tuning,
    },
  });
  const server: Server = createServer((req, res) => {
    void chat.requestListener?.(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;

  const send = (raw: string, o?: SendOptions) => sendSigned(url, SECRET, raw, o);
  return {
    fake,
    chat,
    store,
    history,
    url,
    logs,
    failures,
    sleeps,
    send,
    async click(actionId, value, user, extra = {}) {
      responseCounter += 1;
      const responseId = `click-${responseCounter}`;
      const res = await send(
        payloadBody(
          buttonClick({ actionId, value, user, responseUrl: fake.responseUrl(responseId), ...extra }),
        ),
      );
      return { status: res.status, text: res.text, responseId };
    },
    submit(callbackId, user, privateMetadata, values) {
      return send(payloadBody(viewSubmission({ callbackId, user, privateMetadata, values })));
    },
    command(text, user) {
      responseCounter += 1;
      return send(
        commandBody(
          slashCommand({
            command: '/arc-history',
            text,
            user,
            responseUrl: fake.responseUrl(`cmd-${responseCounter}`),
          }),
        ),
      );
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await chat.stop?.();
      await store.close();
      await fake.stop();
    },
  };
}

/**
 * A live-mode stand-in for the Azure remediator, at the port: plans from the evidence like the
 * dry-run one and reports each step done (or failed, for `failSteps`). The Slack tests check what
 * Slack shows for each outcome; the Azure side has its own tests against fake ARM and Graph.
 */
export function liveRemediator(
  opts: { failSteps?: boolean; executions?: { count: number } } = {},
): Remediator {
  const base = evidencePlanRemediator();
  return {
    mode: 'live',
    plan: base.plan,
    async execute(plan, previous) {
      if (opts.executions) opts.executions.count += 1;
      const doneBefore = new Set(
        (previous?.steps ?? []).filter((s) => s.status === 'done').map((s) => s.stepId),
      );
      const steps = plan.steps.map((s) =>
        doneBefore.has(s.id)
          ? { stepId: s.id, status: 'already-done' as const, detail: 'done in an earlier run' }
          : opts.failSteps
            ? {
                stepId: s.id,
                status: 'failed' as const,
                detail: '403 AuthorizationFailed',
                fix: 'grant roleAssignments/delete',
              }
            : { stepId: s.id, status: 'done' as const, detail: 'removed' },
      );
      return { mode: 'live', ok: steps.every((s) => s.status !== 'failed'), steps };
    },
    undo: base.undo,
  };
}

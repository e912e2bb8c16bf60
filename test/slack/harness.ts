/**
 * Runs the Slack chat adapter for a test: a fake Slack Web API, a real memory store and history,
 * the dry-run remediator from the detection's evidence (or the real Azure remediator and enricher
 * against the local HTTPS fake of ARM, Graph and the token endpoint), and the adapter's request
 * listener on a local HTTP server that the tests reach with requests signed as Slack signs them.
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { vi } from 'vitest';
import { createAzureEnricher, createAzureRemediator } from '../../src/azure/index.ts';
import type { ChatAdapter } from '../../src/chat-adapter.ts';
import { loadConfig } from '../../src/config.ts';
import type { AlertRecord } from '../../src/core/alert.ts';
import { evidencePlanRemediator } from '../../src/core/evidence-plan.ts';
import { createHistory, type History } from '../../src/core/history.ts';
import type { StateStore } from '../../src/core/ports.ts';
import type { Enricher, Remediator } from '../../src/core/remediation.ts';
import { BENIGN_MODAL } from '../../src/slack/ids.ts';
import { createSlackChat, type SlackTuning } from '../../src/slack/index.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { addRoles, configFor, FAST_RETRY, ROLE, stubAzureEnv } from '../azure/helpers.ts';
import { type FakeAzure, startFakeAzure } from '../support/fake-azure.ts';
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
import { ARC } from '../support/samples.ts';

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
  /** Sends `/arc-history <text>` from `channel` (the alert channel unless set); `responseId` names its response_url. */
  command(
    text: string,
    user: string,
    channel?: string,
  ): Promise<{ status: number; text: string; json: () => unknown; responseId: string }>;
  close(): Promise<void>;
}

/** What the harness logged at warn or above about `alertId`: each line's message, in order. */
export function warningsAbout(h: Harness, alertId: string): string[] {
  return h.logs
    .join('')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { level: number; msg: string; alertId?: string })
    .filter((l) => l.level >= 40 && l.alertId === alertId)
    .map((l) => l.msg);
}

/**
 * Posts `alert`, then a count for it whose `chat.update` Slack answers with `error` (a message
 * deleted, or one too old to edit). Returns the post's reference.
 */
export async function postWithRefusedUpdate(h: Harness, alert: AlertRecord, error: string): Promise<string> {
  const { ref } = await h.chat.sink.post(alert);
  h.fake.script('chat.update', { error });
  await h.chat.sink.repeat(ref, alert, { alertId: alert.id, count: 2, lastSeen: alert.detectedAt + 60_000 });
  return ref;
}

let responseCounter = 0;

export async function startHarness(
  opts: {
    responders?: string;
    /** SLACK_ALERT_CHANNEL (default `CHANNEL`). */
    channel?: string;
    /** A fake Slack to use (a restart): it is left running by `close`. */
    fake?: FakeSlack;
    /** SLACK_ALLOWLIST. */
    allowlist?: string;
    /** SLACK_HISTORY. */
    historyAccess?: string;
    remediator?: Remediator;
    /** Runs the real Azure remediator (and enricher, with `enrich`) against this fake. */
    azure?: { fake: FakeAzure; mode: 'dry-run' | 'live'; enrich?: boolean };
    enricher?: Enricher;
    tuning?: SlackTuning;
    now?: () => number;
    windowMs?: number;
    /** The store (default: a memory store of its own); closed by `close` either way. */
    store?: StateStore;
  } = {},
): Promise<Harness> {
  const fake = opts.fake ?? (await startFakeSlack());
  fake.usergroups.set(GROUP, [GROUP_MEMBER]);
  const store = opts.store ?? (await openStateStore('memory://'));
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
    SLACK_ALERT_CHANNEL: opts.channel ?? CHANNEL,
    SLACK_API_URL: fake.apiUrl,
    SLACK_RESPONDERS: opts.responders ?? `${RESPONDER},${GROUP}`,
    SLACK_ALLOWLIST: opts.allowlist,
    SLACK_HISTORY: opts.historyAccess,
  });
  const failures: Array<Record<string, string> | undefined> = [];
  const sleeps: number[] = [];
  let remediator = opts.remediator ?? evidencePlanRemediator();
  let enricher = opts.enricher;
  if (opts.azure) {
    const { fake: azure, mode } = opts.azure;
    // DefaultAzureCredential reads the client secret from the environment, as in production.
    stubAzureEnv(azure);
    const azureConfig = configFor(azure, mode);
    const azureDeps = { store, logger, tlsCa: azure.ca, retry: FAST_RETRY };
    remediator = createAzureRemediator(azureConfig, azureDeps);
    if (opts.azure.enrich) enricher = createAzureEnricher(azureConfig, azureDeps);
  }
  const chat = await createSlackChat(config, {
    store,
    logger,
    history,
    remediator,
    ...(enricher ? { enricher } : {}),
    metrics: { deliveryFailures: { inc: (labels) => failures.push(labels) } },
    now,
    tuning: {
      webApiRetries: 0,
      sleep: async (ms) => {
        sleeps.push(ms);
        clock += ms;
      },
      deliveryIntervalMs: 1000,
      // An uncertain audit line's thread is searched at the next catch-up.
      threadSettleMs: 0,
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
    async command(text, user, channel) {
      responseCounter += 1;
      const responseId = `cmd-${responseCounter}`;
      const res = await send(
        commandBody(
          slashCommand({
            command: '/arc-history',
            text,
            user,
            responseUrl: fake.responseUrl(responseId),
            ...(channel ? { channel } : {}),
          }),
        ),
      );
      return { ...res, responseId };
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await chat.stop?.();
      await store.close();
      if (!opts.fake) await fake.stop();
      if (opts.azure) vi.unstubAllEnvs();
    },
  };
}

/** The name (GUID) of the Owner assignment at the subscription that `sampleAzure({ owner })` adds. */
export const OWNER_ASSIGNMENT = '2b3c4d5e-0000-4000-8000-00000000000b';
export const SUB_SCOPE = `/subscriptions/${ARC.subscriptionId}`;
/** Full ids of the sample's assignments, as ARM names them. */
export const EVIDENCE_ASSIGNMENT_ID = `${ARC.roleAssignmentScope}/providers/Microsoft.Authorization/roleAssignments/${ARC.roleAssignmentId}`;
export const OWNER_ASSIGNMENT_ID = `${SUB_SCOPE}/providers/Microsoft.Authorization/roleAssignments/${OWNER_ASSIGNMENT}`;

/**
 * The fake Azure (token endpoint, ARM, Graph over HTTPS) holding what the sample alert names: the
 * service principal, its Arc Cluster User assignment from the evidence, the cluster, the role
 * definitions, and with `owner` an Owner assignment at the subscription (a broad role that
 * Revoke leaves in place).
 */
export async function sampleAzure(opts: { owner?: boolean } = {}): Promise<FakeAzure> {
  const fake = addRoles(await startFakeAzure());
  fake
    .assign({
      name: ARC.roleAssignmentId,
      scope: ARC.roleAssignmentScope,
      roleDefinitionId: ROLE.clusterUser,
      principalId: ARC.principalId,
      principalType: 'ServicePrincipal',
    })
    .servicePrincipal({
      id: ARC.principalId,
      appId: ARC.appId,
      displayName: 'ci-deployer',
      appCreatedDateTime: '2026-03-10T08:00:00Z',
    })
    .resource({
      id: ARC.clusterId,
      location: 'westeurope',
      tags: { env: 'prod' },
      properties: { distribution: 'k3s' },
    });
  if (opts.owner) {
    fake.assign({
      name: OWNER_ASSIGNMENT,
      scope: SUB_SCOPE,
      roleDefinitionId: ROLE.owner,
      principalId: ARC.principalId,
      principalType: 'ServicePrincipal',
    });
  }
  return fake;
}

/** The state values of a Mark benign modal submitted with `reason` and `expiry` (e.g. `7d`). */
export const benignValues = (reason: string, expiry: string) => ({
  [BENIGN_MODAL.reasonBlock]: { [BENIGN_MODAL.reasonInput]: { type: 'plain_text_input', value: reason } },
  [BENIGN_MODAL.expiryBlock]: {
    [BENIGN_MODAL.expiryInput]: { type: 'static_select', selected_option: { value: expiry } },
  },
});

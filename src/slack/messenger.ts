import type { types, webApi } from '@slack/bolt';
import type { Logger } from 'pino';
import type { SlackAlertState, ThreadLine } from './alert-state.ts';
import { type AlertView, buildAlertMessage, type SlackMessage } from './blocks/alert.ts';
import { plainAlertMessage, textOnlyAlertMessage } from './blocks/alert-fallback.ts';
import { clip, mrkdwn } from './blocks/text.ts';
import {
  CONTENT_REFUSED,
  classify,
  type DeliveryProblems,
  type DeliveryQueue,
  failureReason,
  isTransient,
  METADATA_REFUSED,
  SlackDeliveryError,
} from './delivery-queue.ts';

/** Counts failed deliveries, labelled by Slack error code (a Prometheus counter fits). */
export interface DeliveryFailureCounter {
  inc(labels?: Record<string, string>): void;
}

/** Slack errors about one message that nothing can fix: the message is gone or too old. */
export const GONE = new Set([
  'message_not_found',
  'cant_update_message',
  'edit_window_closed',
  'thread_not_found',
]);

/** How many gone messages a process remembers (a restart tries each once more). */
const GONE_KEPT = 10_000;

/**
 * Of the `GONE` codes, those of a message Slack still has but will not let the bot edit (too old,
 * not the bot's): its thread still takes replies.
 */
const UNEDITABLE: ReadonlySet<string> = new Set(['cant_update_message', 'edit_window_closed']);

/** Slack refuses the bot the channel itself: another channel may still work. */
const CHANNEL_REFUSED: ReadonlySet<string> = new Set([
  'channel_not_found',
  'not_in_channel',
  'is_archived',
  'restricted_action',
]);

/** Posts and updates alert messages through the delivery queue, recording failures. */
export interface Messenger {
  /** Posts a new alert message; resolves with where it went. */
  postAlert(state: SlackAlertState): Promise<{ channel: string; ts: string }>;
  /**
   * The alert's message if Slack has it already: a post interrupted after Slack took it (the
   * process died, or the call timed out, before the answer was stored). Reads the channel's
   * history around `since` (epoch ms, when that post began) for the message whose buttons carry
   * the alert id. Undefined when there is none, and when the history can never be read (no
   * `channels:history` / `groups:history` scope, say): then the caller posts again, so an alert is
   * never lost to a lookup that cannot work. Throws a retryable `SlackDeliveryError` when the
   * lookup failed for now (a timeout, a 429, a 5xx): posting blind then could post twice.
   */
  findAlertMessage(
    state: SlackAlertState,
    since: number,
  ): Promise<{ channel: string; ts: string } | undefined>;
  /**
   * Renders the stored state into the posted message (chat.update). `refresh`: only a newer count
   * to show, which the caller retries later by itself. While Slack slows the channel's updates down
   * (429), it fails at once, as this message's alone (`itemOnly`), rather than waiting.
   */
  updateAlert(state: SlackAlertState, opts?: { refresh?: boolean }): Promise<void>;
  /**
   * Posts an audit line in the alert's thread, once: never re-sent by the client itself (a line
   * that got no clear answer is kept, and `findThreadLine` looks for it before it goes again).
   */
  postThread(state: SlackAlertState, line: ThreadLine): Promise<void>;
  /**
   * Whether the alert's thread holds `line` already (a post that got no clear answer, which Slack
   * took); `'later'` until `threadSettleMs` has passed since that post (Slack may still be
   * finishing it). Throws a retryable `SlackDeliveryError` when the thread cannot be read for now;
   * false when it can never be read (a missing scope), or has not been readable for 15 minutes
   * since the post: then the line is posted, once beats never.
   */
  findThreadLine(state: SlackAlertState, line: ThreadLine): Promise<boolean | 'later'>;
}

/** The metadata event type of audit lines (message metadata; nothing subscribes to it). */
const AUDIT_LINE_EVENT = 'arc_responder_audit_line';
/** The metadata event type of alert messages: the search finds a text-only form by it too. */
const ALERT_EVENT = 'arc_responder_alert';

/** The alert id a message's metadata carries (`ALERT_EVENT`), if any. */
function metadataAlertId(message: unknown): unknown {
  const metadata = (
    message as { metadata?: { event_type?: unknown; event_payload?: { alert_id?: unknown } } }
  ).metadata;
  return metadata?.event_type === ALERT_EVENT ? metadata.event_payload?.alert_id : undefined;
}
/** A message's update under way, and the one to send once it is done. */
interface UpdateLane {
  waiting?: {
    state: SlackAlertState;
    refresh: boolean;
    /** The callers of every update it replaced, and its own: told how it went. */
    settle: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
  };
}

/** Longest text of a thread line (Slack's `text` limit, with room). */
const THREAD_TEXT_MAX = 3900;
/** Longest text of a section block: a longer thread line goes as message text alone. */
const SECTION_TEXT_MAX = 3000;

/**
 * A thread line's message: its text in a section sent `verbatim` (Slack makes no link of a bare
 * web address or channel name a value brings), and as the message text for notifications.
 */
export function threadMessage(line: ThreadLine): { text: string; blocks?: types.KnownBlock[] } {
  const text = clip(line.text, THREAD_TEXT_MAX);
  return text.length <= SECTION_TEXT_MAX
    ? { text, blocks: [{ type: 'section', text: mrkdwn(text) }] }
    : { text };
}

export function createMessenger(opts: {
  client: webApi.WebClient;
  /** Posts new alerts: a client that never re-sends a call by itself (default `client`). */
  postClient?: webApi.WebClient;
  queue: DeliveryQueue;
  problems: DeliveryProblems;
  logger: Logger;
  mode: 'dry-run' | 'live';
  /** The Azure portal that alerts link to (`portalForArm`). */
  portal?: string;
  /** The remediator can remove the broad roles a plan leaves (`planBroadRemoval`). */
  broadRemoval?: boolean;
  failures?: DeliveryFailureCounter;
  /** The clock for rendering: interrupted runs show as failed with their button again. */
  now?: () => number;
  /** Whether a run of this process is at work on the alert: it never shows as interrupted. */
  runsHere?: (alertId: string) => boolean;
  /** How long after an uncertain audit line's post its thread is first searched (default 2 min). */
  threadSettleMs?: number;
  /** `SLACK_ALERT_CHANNEL`: an alert posted elsewhere (before it moved) fails on its own. */
  alertChannel?: string;
}): Messenger {
  const { client, queue, problems, logger } = opts;
  const postClient = opts.postClient ?? client;
  /**
   * Messages Slack said are gone (`channel:ts`), most recent last: nothing more is sent to them.
   * `true`: only its edits are refused (`UNEDITABLE`), and its thread still takes lines.
   */
  const goneMessages = new Map<string, boolean>();
  /** The message updates under way (`channel:ts`), each with the newest update waiting for it. */
  const updateLanes = new Map<string, UpdateLane>();
  const noteGone = (channel: string, ts: string, code: string) => {
    const key = `${channel}:${ts}`;
    // A message once gone stays so: a refused edit after that reopens no thread.
    const threadOk = UNEDITABLE.has(code) && goneMessages.get(key) !== false;
    goneMessages.delete(key);
    goneMessages.set(key, threadOk);
    if (goneMessages.size > GONE_KEPT) goneMessages.delete(goneMessages.keys().next().value!);
  };

  const countFailure = (err: unknown, e: SlackDeliveryError) =>
    opts.failures?.inc({ reason: failureReason(err, e) });

  async function deliver<T>(
    what: string,
    channel: string,
    paced: boolean,
    call: () => Promise<T>,
    runOpts: { failWhenLimited?: boolean; first?: boolean } = {},
  ): Promise<T> {
    // Every failed answer counts, a 429 that the queue waits out and sends again too; a call the
    // queue does not send (Slack's back-off lasts longer than it may wait) does not.
    const counted = () =>
      call().catch((err: unknown) => {
        countFailure(err, classify(err, channel));
        throw err;
      });
    try {
      const result = await queue.run(channel, paced, counted, runOpts);
      problems.succeeded(channel);
      return result;
    } catch (err) {
      const e = classify(err, channel);
      if (e.unsent) {
        // Held back by the queue (Slack's 429 back-off still runs): nothing reached Slack.
        logger.debug({ channel, code: e.code }, `Slack ${what} held back: ${e.message}`);
        throw e;
      }
      const isNew = problems.record(e, channel);
      if (GONE.has(e.code)) {
        // Nothing to retry: the caller drops what was for that message, and says so.
        logger.debug({ channel, code: e.code }, `Slack ${what} failed: the message is gone`);
      } else if (e.retryable) {
        logger.warn({ channel, code: e.code, err: e.message }, `Slack ${what} failed; it will be retried`);
      } else {
        // At error once per cause (until a call succeeds again); its repeats at debug.
        (isNew ? logger.error : logger.debug).call(
          logger,
          { channel, code: e.code, fix: e.fix },
          `Slack ${what} failed and retrying cannot fix it: ${e.fix}`,
        );
      }
      throw e;
    }
  }

  const view = (state: SlackAlertState): AlertView => ({
    ...state,
    mode: opts.mode,
    broadRemoval: opts.broadRemoval ?? false,
    ...(opts.portal ? { portal: opts.portal } : {}),
    ...(opts.runsHere?.(state.alert.id) ? {} : { now: (opts.now ?? Date.now)() }),
  });

  /**
   * Sends the alert's message; when Slack refuses it as it is (`invalid_blocks`, `msg_too_long`:
   * nothing was posted), sends it in plain form (`plainAlertMessage`), and when that is refused
   * too, as text alone (`textOnlyAlertMessage`): an alert without buttons beats none. When even
   * that is refused, the error is marked as this message's alone, so other deliveries go on, and
   * `/readyz` mentions the refusal (as a warning) until the message goes through.
   */
  async function inPlainFormIfRefused<T>(
    state: SlackAlertState,
    what: 'post' | 'update',
    send: (message: SlackMessage) => Promise<T>,
  ): Promise<T> {
    const alertId = state.alert.id;
    const full = buildAlertMessage(view(state));
    const forms = [() => full, () => plainAlertMessage(full), () => textOnlyAlertMessage(full, alertId)];
    for (let i = 0; ; i++) {
      try {
        const result = await send(forms[i]!());
        problems.messageSettled(alertId);
        return result;
      } catch (err) {
        if (!(err instanceof SlackDeliveryError && CONTENT_REFUSED.has(err.code))) throw err;
        if (i === forms.length - 1) {
          err.itemOnly = true;
          problems.messageRefused(alertId, err.code);
          logger.error(
            { alertId, code: err.code, what },
            `Slack refused the alert's message in every form, text alone too (${err.code}); it is retried later, and the other alerts go on`,
          );
          throw err;
        }
        logger.error(
          { alertId, code: err.code, what },
          `Slack refused the alert's message (${err.code}); sending it in ${i === 0 ? 'plain form' : 'text alone'} (please report this, with the alert id)`,
        );
      }
    }
  }

  /** Sends one update of the alert's message now (see `updateAlert`). */
  async function updateNow(state: SlackAlertState, refresh: boolean): Promise<void> {
    const ts = state.ts!;
    // Said once: later counts and clicks of a message Slack no longer has are dropped quietly.
    if (goneMessages.has(`${state.channel}:${ts}`)) return;
    try {
      await inPlainFormIfRefused(state, 'update', (message) =>
        deliver(
          'chat.update',
          state.channel,
          false,
          () =>
            client.chat.update({ channel: state.channel, ts, text: message.text, blocks: message.blocks }),
          { failWhenLimited: refresh },
        ),
      );
    } catch (err) {
      if (err instanceof SlackDeliveryError && GONE.has(err.code)) {
        problems.messageSettled(state.alert.id);
        noteGone(state.channel, ts, err.code);
        logger.warn(
          { alertId: state.alert.id, channel: state.channel, code: err.code },
          UNEDITABLE.has(err.code)
            ? "the alert's Slack message can no longer be edited (too old): its counts and states are no longer shown there; its thread still gets audit lines"
            : "the alert's Slack message is gone (deleted): it is no longer updated, and its thread lines are dropped; its audit records are kept",
        );
        return;
      }
      // Slack limits updates apart from posts: a count that waits holds back nothing else.
      if (refresh && err instanceof SlackDeliveryError && err.code === 'rate_limited') err.itemOnly = true;
      // A message in a channel that is no longer the alert channel (SLACK_ALERT_CHANNEL moved),
      // which Slack no longer lets the bot use: only that alert's updates wait, new alerts go on.
      if (
        err instanceof SlackDeliveryError &&
        opts.alertChannel !== undefined &&
        state.channel !== opts.alertChannel &&
        CHANNEL_REFUSED.has(err.code)
      ) {
        err.itemOnly = true;
      }
      throw err;
    }
  }

  return {
    async postAlert(state) {
      let withMetadata = true;
      const postOnce = (message: SlackMessage) =>
        deliver(
          'chat.postMessage',
          state.channel,
          true,
          () =>
            postClient.chat.postMessage({
              channel: state.channel,
              text: message.text,
              ...(message.blocks.length > 0 ? { blocks: message.blocks } : {}),
              unfurl_links: false,
              unfurl_media: false,
              // Found again by this after a post that got no clear answer, whatever form it took.
              ...(withMetadata
                ? { metadata: { event_type: ALERT_EVENT, event_payload: { alert_id: state.alert.id } } }
                : {}),
            }),
          // Before the thread lines waiting in the channel.
          { first: true },
        );
      // A workspace that refuses the metadata still gets the alert, without it (after an unclear
      // answer, such a post is then found by its buttons' value only).
      const post = async (message: SlackMessage) => {
        try {
          return await postOnce(message);
        } catch (err) {
          if (!(withMetadata && err instanceof SlackDeliveryError && METADATA_REFUSED.has(err.code)))
            throw err;
          withMetadata = false;
          logger.warn(
            { alertId: state.alert.id, code: err.code },
            `Slack refused the alert's message metadata (${err.code}); posting it without`,
          );
          return await postOnce(message);
        }
      };
      const res = await inPlainFormIfRefused(state, 'post', post);
      if (typeof res.ts !== 'string') {
        throw new SlackDeliveryError('bad_response', 'chat.postMessage answered without a message ts', true);
      }
      return { channel: typeof res.channel === 'string' ? res.channel : state.channel, ts: res.ts };
    },

    async findAlertMessage(state, since) {
      const id = state.alert.id;
      let cursor: string | undefined;
      // From a minute before the attempt (clocks) to past the longest it could have lasted.
      const oldest = (Math.max(0, since - 60_000) / 1000).toFixed(6);
      const latest = ((since + 5 * 60_000) / 1000).toFixed(6);
      try {
        for (let page = 0; page < 5; page++) {
          const res = await client.conversations.history({
            channel: state.channel,
            include_all_metadata: true,
            oldest,
            latest,
            inclusive: true,
            limit: 200,
            ...(cursor ? { cursor } : {}),
          });
          const found = res.messages?.find(
            (m) => typeof m.ts === 'string' && (metadataAlertId(m) === id || carriesAlertId(m.blocks, id)),
          );
          if (found?.ts) return { channel: state.channel, ts: found.ts };
          cursor = res.response_metadata?.next_cursor || undefined;
          if (!res.has_more || !cursor) return undefined;
        }
        return undefined;
      } catch (err) {
        const e = classify(err, state.channel);
        countFailure(err, e);
        // For now only (a timeout, a 429, a 5xx): the outbox asks again, for a while.
        if (isTransient(e) && Date.now() - since < SEARCH_GIVE_UP_MS) throw e;
        logger.warn(
          { alertId: id, channel: state.channel, code: e.code },
          `cannot read the alert channel to see whether an interrupted post went out (${e.code}); posting the alert again${e.code === 'missing_scope' ? ' (add the channels:history and groups:history scopes to avoid a possible second message)' : ''}`,
        );
        return undefined;
      }
    },

    async updateAlert(state, updateOpts = {}) {
      if (!state.ts) return;
      const key = `${state.channel}:${state.ts}`;
      const refresh = updateOpts.refresh === true;
      const lane = updateLanes.get(key);
      if (lane) {
        // An update of this message is under way (Slack's answer, or the client's retry of it, is
        // still to come): this one goes after it, in place of any other still waiting, so that the
        // last to land is the newest state.
        return new Promise<void>((resolve, reject) => {
          const waiting = lane.waiting;
          lane.waiting = {
            state,
            refresh: refresh && (waiting?.refresh ?? true),
            settle: [...(waiting?.settle ?? []), { resolve, reject }],
          };
        });
      }
      const mine: UpdateLane = {};
      updateLanes.set(key, mine);
      const first = updateNow(state, refresh);
      void (async () => {
        await first.catch(() => {});
        for (let next = mine.waiting; next; next = mine.waiting) {
          delete mine.waiting;
          try {
            await updateNow(next.state, next.refresh);
            for (const s of next.settle) s.resolve();
          } catch (err) {
            for (const s of next.settle) s.reject(err);
          }
        }
        updateLanes.delete(key);
      })();
      return first;
    },

    async postThread(state, line) {
      if (!state.ts) return;
      const ts = state.ts;
      if (goneMessages.get(`${state.channel}:${ts}`) === false) {
        const gone = new SlackDeliveryError(
          'message_not_found',
          "the alert's message is gone from Slack",
          true,
        );
        gone.goneBefore = true;
        throw gone;
      }
      try {
        await deliver('chat.postMessage (thread)', state.channel, true, () =>
          postClient.chat.postMessage({
            channel: state.channel,
            thread_ts: ts,
            ...threadMessage(line),
            unfurl_links: false,
            unfurl_media: false,
            ...(line.id
              ? {
                  metadata: {
                    event_type: AUDIT_LINE_EVENT,
                    event_payload: { alert_id: state.alert.id, line_id: line.id },
                  },
                }
              : {}),
          }),
        );
      } catch (err) {
        if (err instanceof SlackDeliveryError && GONE.has(err.code)) noteGone(state.channel, ts, err.code);
        throw err;
      }
    },

    async findThreadLine(state, line) {
      if (!state.ts) return false;
      const since = line.uncertainSince ?? 0;
      if (Date.now() - since < (opts.threadSettleMs ?? THREAD_SETTLE_MS)) return 'later';
      const { text } = threadMessage(line);
      // From a minute before the uncertain post (clocks) on.
      const oldest = (Math.max(0, since - 60_000) / 1000).toFixed(6);
      let cursor: string | undefined;
      try {
        for (let page = 0; page < 5; page++) {
          const res = await client.conversations.replies({
            channel: state.channel,
            ts: state.ts,
            oldest,
            inclusive: true,
            limit: 200,
            include_all_metadata: true,
            ...(cursor ? { cursor } : {}),
          });
          for (const m of res.messages ?? []) {
            const payload = (m as { metadata?: { event_payload?: { line_id?: unknown } } }).metadata
              ?.event_payload;
            // By the line's id in the metadata Slack returns. A line without an id was posted
            // without metadata: by its text, in a message without metadata.
            if (
              line.id
                ? payload?.line_id === line.id
                : payload === undefined && m.ts !== state.ts && m.text === text
            )
              return true;
          }
          cursor = res.response_metadata?.next_cursor || undefined;
          if (!res.has_more || !cursor) return false;
        }
        return false;
      } catch (err) {
        const e = classify(err, state.channel);
        countFailure(err, e);
        if (isTransient(e) && Date.now() - since < SEARCH_GIVE_UP_MS) throw e;
        logger.warn(
          { alertId: state.alert.id, channel: state.channel, code: e.code },
          "cannot read the alert's thread to see whether an audit line whose post got no clear answer went out; posting it again (add the channels:history and groups:history scopes to avoid a possible second line)",
        );
        return false;
      }
    },
  };
}

/** After this long, a channel that still cannot be searched is posted to anyway: once beats never. */
const SEARCH_GIVE_UP_MS = 15 * 60 * 1000;
/**
 * How long after an uncertain audit line's post its thread is first searched: past the client's
 * timeout, with room, so that Slack has finished with the post (as the alert's post claim lapses).
 */
const THREAD_SETTLE_MS = 2 * 60 * 1000;

/** Whether a message's blocks hold a button whose value is the alert id (Mark benign, Revoke). */
function carriesAlertId(blocks: unknown, alertId: string): boolean {
  if (!Array.isArray(blocks)) return false;
  for (const block of blocks as Array<{ type?: unknown; elements?: unknown }>) {
    if (block?.type !== 'actions' || !Array.isArray(block.elements)) continue;
    for (const element of block.elements as Array<{ value?: unknown }>) {
      if (element?.value === alertId) return true;
    }
  }
  return false;
}

import type { AnyMiddlewareArgs, App } from '@slack/bolt';
import { ACTION_IDS, actionMatcher, CALLBACK_IDS, COMMANDS } from './ids.ts';

/** Only Remove allowlist's buttons are numbered (several in one reply); the others are unique. */
const ACTIONS: readonly RegExp[] = Object.values(ACTION_IDS).map((id) =>
  id === ACTION_IDS.removeAllow ? actionMatcher(id) : new RegExp(`^${id}$`),
);
const CALLBACKS: ReadonlySet<string> = new Set(Object.values(CALLBACK_IDS));
const KNOWN_COMMANDS: ReadonlySet<string> = new Set(Object.values(COMMANDS));

/**
 * What in a request no handler of this app serves, or undefined when one does: a button whose
 * `action_id` is none of `ACTION_IDS` (another app's, or one this app does not post), a modal or
 * shortcut this app never opened, a command the manifest does not declare.
 */
function unservedPart(body: unknown): string | undefined {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b.command === 'string') {
    return KNOWN_COMMANDS.has(b.command) ? undefined : `command ${b.command.slice(0, 50)}`;
  }
  switch (b.type) {
    case 'block_actions': {
      const actions = Array.isArray(b.actions) ? (b.actions as Array<{ action_id?: unknown }>) : [];
      const ids = actions.map((a) => a?.action_id);
      return ids.some((id) => typeof id === 'string' && ACTIONS.some((m) => m.test(id)))
        ? undefined
        : `action ${ids.map((id) => String(id).slice(0, 50)).join(', ') || '(none)'}`;
    }
    case 'view_submission': {
      const id = (b.view as { callback_id?: unknown } | undefined)?.callback_id;
      return typeof id === 'string' && CALLBACKS.has(id) ? undefined : `view ${String(id).slice(0, 50)}`;
    }
    case 'view_closed':
      // No modal of this app asks to be told when it is closed (`notify_on_close`).
      return `view_closed ${String((b.view as { callback_id?: unknown } | undefined)?.callback_id).slice(0, 50)}`;
    case 'shortcut':
    case 'message_action':
    case 'block_suggestion':
    case 'dialog_submission':
    case 'interactive_message':
      return `${b.type} ${String(b.callback_id ?? b.action_id ?? '').slice(0, 50)}`.trim();
    default:
      // Events API deliveries are acknowledged by Bolt itself.
      return undefined;
  }
}

/**
 * A global middleware: a request that no handler serves is acknowledged at once (a command with a
 * short private answer) instead of after Bolt's 3 s timer, which Slack would show as an error.
 */
export function registerUnknownRequests(app: App, logger: { info(o: object, m: string): void }): void {
  app.use(async (args) => {
    const { body, next } = args;
    const unserved = unservedPart(body);
    if (unserved === undefined) {
      await next();
      return;
    }
    const ack = (args as AnyMiddlewareArgs & { ack?: (response?: unknown) => Promise<void> }).ack;
    logger.info({ unserved }, 'acknowledged a Slack request that no handler of this app serves');
    if (!ack) return;
    if (unserved.startsWith('command ')) {
      await ack({
        response_type: 'ephemeral',
        text: `arc-responder does not serve ${unserved.slice('command '.length)}. It answers ${COMMANDS.history} &lt;appid&gt;.`,
      });
    } else {
      await ack();
    }
  });
}

import { recordAudit } from '../core/audit.ts';
import type { SlackContext } from './context.ts';

/** A private reply to the clicking user: `respond()` posts to the payload's response_url. */
export type Respond = (message: {
  response_type?: 'ephemeral' | 'in_channel';
  replace_original?: boolean;
  text: string;
  blocks?: unknown[];
}) => Promise<unknown>;

/** What an audited button press is about. */
export interface ActionSubject {
  action: 'revoke' | 'undo' | 'remove-broad-roles' | 'mark-benign' | 'remove-allowlist';
  alertId?: string;
  appId?: string;
  ip?: string;
}

const VERB: Record<ActionSubject['action'], string> = {
  revoke: 'Revoke',
  undo: 'Undo',
  'remove-broad-roles': 'Remove broad roles',
  'mark-benign': 'Mark benign',
  'remove-allowlist': 'Remove allowlist',
};

/**
 * Lets only SLACK_RESPONDERS act. Anyone else gets a private refusal and an audit entry;
 * returns false then.
 */
export async function authorise(
  ctx: SlackContext,
  user: string,
  subject: ActionSubject,
  respond: Respond | undefined,
): Promise<boolean> {
  if (await ctx.responders.isResponder(user)) return true;
  await recordAudit(ctx.store, {
    actor: user,
    ...subject,
    result: 'refused',
    detail: 'not in SLACK_RESPONDERS',
  });
  ctx.logger.warn({ user, ...subject }, 'refused a Slack button press from someone not in SLACK_RESPONDERS');
  const text = ctx.responders.empty
    ? `:no_entry: Nobody may use ${VERB[subject.action]} yet: SLACK_RESPONDERS is not set. Ask the operators of arc-responder to add responders.`
    : `:no_entry: Only responders (SLACK_RESPONDERS) may use ${VERB[subject.action]}. Your attempt was recorded.`;
  await reply(ctx, respond, text);
  return false;
}

/** Sends a private note through the response_url; logs when that fails. */
export async function reply(ctx: SlackContext, respond: Respond | undefined, text: string): Promise<void> {
  if (!respond) return;
  try {
    await respond({ response_type: 'ephemeral', replace_original: false, text });
  } catch (err) {
    ctx.logger.warn({ err: (err as Error).message }, 'cannot reply through the response_url');
  }
}

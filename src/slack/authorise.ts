import { type AuditRef, recordAudit } from '../core/audit.ts';
import type { SlackContext } from './context.ts';

/** A private reply to the clicking user: `respond()` posts to the payload's response_url. */
export type Respond = (message: {
  response_type?: 'ephemeral' | 'in_channel';
  replace_original?: boolean;
  text: string;
  blocks?: unknown[];
}) => Promise<unknown>;

/** What an audited button press (or `/arc-history <appid>`) is about. */
export interface ActionSubject {
  action: 'revoke' | 'undo' | 'remove-broad-roles' | 'mark-benign' | 'remove-allowlist' | 'history';
  alertId?: string;
  appId?: string;
  ip?: string;
  /** The alert's message and detection, for a press on an alert. */
  ref?: AuditRef;
}

const VERB: Record<ActionSubject['action'], string> = {
  revoke: 'Revoke',
  undo: 'Undo',
  'remove-broad-roles': 'Remove broad roles',
  'mark-benign': 'Mark benign',
  'remove-allowlist': 'Remove allowlist',
  history: '/arc-history',
};

/**
 * Actions that change Azure: only SLACK_RESPONDERS may use them, always. With SLACK_RESPONDERS
 * unset nobody may (CONTRACT.md: "unset: nobody may revoke").
 */
const RESPONDERS_ONLY: ReadonlySet<ActionSubject['action']> = new Set([
  'revoke',
  'undo',
  'remove-broad-roles',
]);

/**
 * Who may use an action: anyone in the workspace, anyone in the alert channel (from there) and
 * responders anywhere, or responders only.
 */
function whoMay(ctx: SlackContext, action: ActionSubject['action']): 'anyone' | 'channel' | 'responders' {
  if (RESPONDERS_ONLY.has(action)) return 'responders';
  return action === 'history' ? ctx.historyBy : ctx.allowlistBy;
}

/** Why someone may act: as a responder, as a member of the alert channel, or as anyone may. */
export type Grant = 'responder' | 'alert-channel' | 'anyone';

export type Decision =
  | { ok: true; as: Grant }
  | {
      ok: false;
      /** For the audit entry. */
      detail: string;
      /** Why, in a sentence or two, for a message of another's making. */
      reason: string;
      /** The private refusal: the reason, and that the attempt was recorded. */
      text: string;
    };

/**
 * Who may press what (the README's "Who may press the buttons" follows this):
 *
 * - **Revoke, Undo, Remove broad roles too**: SLACK_RESPONDERS only (user ids, or members of the
 *   user groups listed there). SLACK_RESPONDERS unset: nobody; the refusal says it is not set.
 * - **Mark benign, Remove allowlist** (the allowlist itself): any member of the alert channel, that
 *   is anyone pressing the button where the alert was posted (`where` is the channel of the click,
 *   `home` the alert channel), and responders anywhere. CONTRACT.md reserves only Revoke for
 *   SLACK_RESPONDERS; who may allowlist is decided by who is in the alert channel. A press from
 *   anywhere else by someone who is not a responder is refused, saying where it works.
 *   `SLACK_ALLOWLIST=responders` makes them responders only, like Revoke.
 * - **`/arc-history <appid>`**: anyone in the workspace. `SLACK_HISTORY=channel` keeps it, as Mark
 *   benign, to whoever types it in the alert channel and responders anywhere;
 *   `SLACK_HISTORY=responders` keeps it to responders.
 *
 * Everything stays audited: who, what, and (for Mark benign) why and until when.
 */
export async function decide(
  ctx: SlackContext,
  user: string,
  action: ActionSubject['action'],
  place: { where?: string | undefined; home: string },
): Promise<Decision> {
  const verb = VERB[action];
  const refused = (detail: string, reason: string, recorded = true): Decision => ({
    ok: false,
    detail,
    reason,
    text: `:no_entry: ${reason}${recorded ? ' Your attempt was recorded.' : ''}`,
  });
  /** Why group membership could not be checked, when it could not (for refusals). */
  const unchecked = (): { detail: string; text: string } | undefined => {
    const unread = ctx.responders.unreadableGroups();
    if (unread.length === 0) return undefined;
    const slow = new Set(ctx.responders.slowGroups());
    const groups = unread.map((g) => `<!subteam^${g}>`).join(', ');
    const late = unread.every((g) => slow.has(g));
    const unknown = unread.filter((g) => ctx.responders.lookupError(g) === 'no_such_subteam');
    if (unknown.length > 0) {
      return {
        detail: `not in SLACK_RESPONDERS as far as could be checked: Slack knows no user group ${unknown.join(', ')} (no_such_subteam)`,
        text: `SLACK_RESPONDERS names ${unknown.length === 1 ? 'a user group' : 'user groups'} that Slack does not know (${unknown.join(', ')}: no_such_subteam), so membership through ${unknown.length === 1 ? 'it' : 'them'} could not be checked. Ask the operators of arc-responder to correct the group id.`,
      };
    }
    const codes = [
      ...new Set(unread.map((g) => ctx.responders.lookupError(g)).filter((c) => c !== undefined)),
    ];
    return {
      detail: `not in SLACK_RESPONDERS as far as could be checked: the members of ${unread.join(', ')} ${late ? 'did not arrive from Slack in time' : 'could not be read'}`,
      text: late
        ? `The members of ${groups} did not arrive from Slack in time, so membership through ${unread.length === 1 ? 'that group' : 'those groups'} could not be checked: press again in a moment.`
        : `The members of ${groups} could not be read from Slack just now (${codes.includes('missing_scope') ? 'the app lacks the usergroups:read scope' : codes.length > 0 ? `Slack answered ${codes.join(', ')}` : 'the app may lack the usergroups:read scope'}), so membership through ${unread.length === 1 ? 'that group' : 'those groups'} could not be checked. Ask the operators of arc-responder.`,
    };
  };
  const who = whoMay(ctx, action);
  if (who === 'anyone') return { ok: true, as: 'anyone' };
  if (who === 'channel') {
    // The alert channel first: it needs no lookup, so a slow user-group lookup never delays
    // the answer (a modal's trigger and a command's acknowledgement last 3 seconds). The grant
    // still says "responder" for whoever is known to be one without asking Slack.
    if (place.where !== undefined && place.where === place.home) {
      return { ok: true, as: ctx.responders.knownResponder(user) ? 'responder' : 'alert-channel' };
    }
    if (!ctx.responders.empty && (await ctx.responders.isResponder(user)))
      return { ok: true, as: 'responder' };
    if (ctx.responders.empty) {
      return refused(
        'not from the alert channel (SLACK_RESPONDERS is not set)',
        `${verb} works only in the alert channel <#${place.home}>: SLACK_RESPONDERS is not set, so the members of that channel may use it there.`,
      );
    }
    const why = unchecked();
    return refused(
      why
        ? `not from the alert channel; ${why.detail}`
        : 'not from the alert channel, not in SLACK_RESPONDERS',
      `${verb} works in the alert channel <#${place.home}>, or anywhere for responders (SLACK_RESPONDERS).${why ? ` ${why.text}` : ''}`,
    );
  }
  if (await ctx.responders.isResponder(user)) return { ok: true, as: 'responder' };
  if (ctx.responders.empty) {
    return refused(
      'SLACK_RESPONDERS is not set',
      `Nobody may use ${verb} yet: SLACK_RESPONDERS is not set. Ask the operators of arc-responder to add responders.`,
      false,
    );
  }
  // A member of a group that could not be read is refused (fail closed), but told why.
  const why = unchecked();
  return refused(
    why?.detail ?? 'not in SLACK_RESPONDERS',
    `Only responders (SLACK_RESPONDERS) may use ${verb}.${why ? ` ${why.text}` : ''}`,
  );
}

/** The channel a button was pressed in (block_actions: `channel.id`, else `container.channel_id`). */
export function channelOfClick(body: unknown): string | undefined {
  const b = (body ?? {}) as { channel?: { id?: unknown }; container?: { channel_id?: unknown } };
  const id = b.channel?.id ?? b.container?.channel_id;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

/**
 * Applies `decide` to a button press (or `/arc-history`). A refused press gets a private refusal
 * and an audit entry; returns the grant, or undefined when refused.
 */
export async function authorise(
  ctx: SlackContext,
  user: string,
  subject: ActionSubject,
  respond: Respond | undefined,
  place: { where?: string | undefined; home: string; answerFirst?: boolean },
): Promise<Grant | undefined> {
  const decision = await decide(ctx, user, subject.action, place);
  if (decision.ok) return decision.as;
  // A record the store does not take is logged (recordAudit says so); the refusal stands.
  const audited = () =>
    recordAudit(
      ctx.store,
      { actor: user, ...subject, result: 'refused', detail: decision.detail },
      ctx.audit,
    ).catch(() => undefined);
  // A command's refusal is its acknowledgement, due within Slack's 3 seconds whatever the store
  // does: told first. A press was acknowledged already: audited, then told.
  if (place.answerFirst) {
    await reply(ctx, respond, decision.text);
    await audited();
  } else {
    await audited();
    await reply(ctx, respond, decision.text);
  }
  return undefined;
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

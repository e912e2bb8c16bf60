/**
 * Every Slack `action_id`, `callback_id` and `block_id` the app uses, in one place. Block Kit
 * builders and handlers both import from here so that a rename cannot break the wiring.
 */

/** `action_id`s of interactive elements. */
export const ACTION_IDS = {
  /** Alert button: opens the Mark benign modal. */
  markBenign: 'arc_mark_benign',
  /** Alert button (danger, behind a confirm dialog): runs the remediation. */
  revoke: 'arc_revoke',
  /** Alert button after a live revoke (behind a confirm dialog): re-creates and re-enables. */
  undoRevoke: 'arc_undo_revoke',
  /** Alert button (danger, behind its own confirm dialog): removes the broad roles Revoke left. */
  removeBroadRoles: 'arc_remove_broad_roles',
  /** /arc-history button: removes the allowlist entry of one pair. */
  removeAllow: 'arc_remove_allow',
} as const;

/**
 * The `action_id` of the `n`th of several buttons of one kind in a message: Slack refuses a
 * message whose blocks repeat an `action_id` (`invalid_blocks`).
 */
export const numberedAction = (base: string, n: number): string => `${base}:${n}`;

/** Matches the `action_id` `base`, alone or numbered (`numberedAction`). */
export const actionMatcher = (base: string): RegExp => new RegExp(`^${base}(?::\\d{1,3})?$`);

/** `callback_id`s of modals. */
export const CALLBACK_IDS = {
  markBenign: 'arc_mark_benign_modal',
} as const;

/** `block_id`s of the messages' button rows. */
export const BLOCK_IDS = {
  /** The alert's buttons (Mark benign, Revoke, Undo, Remove broad roles too). */
  alertActions: 'arc_alert_actions',
  /** /arc-history's allowlist removal buttons. */
  historyAllowlist: 'arc_history_allowlist',
} as const;

/** `block_id`s and input `action_id`s inside the Mark benign modal. */
export const BENIGN_MODAL = {
  reasonBlock: 'benign_reason',
  reasonInput: 'reason',
  expiryBlock: 'benign_expiry',
  expiryInput: 'expiry',
} as const;

/** Slash commands, as declared in `manifest.yml`. */
export const COMMANDS = {
  history: '/arc-history',
} as const;

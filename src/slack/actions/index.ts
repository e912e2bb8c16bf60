import type { App } from '@slack/bolt';
import type { SlackContext } from '../context.ts';
import { registerMarkBenign } from './mark-benign.ts';
import { registerRemoveAllow } from './remove-allow.ts';
import { registerRemoveBroadRoles } from './remove-broad-roles.ts';
import { registerRevoke } from './revoke.ts';
import { registerUndo } from './undo.ts';

/** Registers every button handler. */
export function register(app: App, ctx: SlackContext): void {
  registerMarkBenign(app, ctx);
  registerRevoke(app, ctx);
  registerUndo(app, ctx);
  registerRemoveBroadRoles(app, ctx);
  registerRemoveAllow(app, ctx);
}

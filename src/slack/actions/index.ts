import type { App } from '@slack/bolt';
import type { SlackContext } from '../context.ts';
import { registerMarkBenign } from './mark-benign.ts';
import { registerRemoveAllow } from './remove-allow.ts';
import { registerRevoke } from './revoke.ts';

/** Registers every button handler. (`ACTION_IDS.undoRevoke` is reserved for the Azure undo.) */
export function register(app: App, ctx: SlackContext): void {
  registerMarkBenign(app, ctx);
  registerRevoke(app, ctx);
  registerRemoveAllow(app, ctx);
}

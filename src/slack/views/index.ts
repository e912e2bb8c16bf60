import type { App } from '@slack/bolt';
import type { SlackContext } from '../context.ts';
import { registerMarkBenignSubmit } from './mark-benign.ts';

/** Registers every modal submission handler. */
export function register(app: App, ctx: SlackContext): void {
  registerMarkBenignSubmit(app, ctx);
}

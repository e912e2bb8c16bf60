import type { App } from '@slack/bolt';
import type { SlackContext } from '../context.ts';
import { registerArcHistory } from './arc-history.ts';

/** Registers every slash command. */
export function register(app: App, ctx: SlackContext): void {
  registerArcHistory(app, ctx);
}

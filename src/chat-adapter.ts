import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AlertSink } from './core/ports.ts';

/** A chat platform plugged into the service (Slack now, Teams later). */
export interface ChatAdapter {
  readonly name: string;
  /** Where the outbox delivers alerts. */
  sink: AlertSink;
  /** Handles the platform's HTTP callbacks (Slack: `POST /slack/events`), if it takes any. */
  requestListener?: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;
  /**
   * Problems that stop chat delivery until a person acts (e.g. `channel_not_found`), with the fix:
   * `/readyz` warnings (ingest goes on, the outbox keeps the alerts) and the `arc_chat_problems` gauge.
   */
  problems(): string[];
  /**
   * What an operator should know that does not stop delivery as a whole (an alert the chat
   * refuses): `/readyz` warnings too.
   */
  warnings?(): string[];
  start?(): Promise<void>;
  stop?(): Promise<void>;
}

import type { webApi } from '@slack/bolt';
import type { Logger } from 'pino';
import type { AuditObserver } from '../core/audit.ts';
import type { History } from '../core/history.ts';
import type { StateStore } from '../core/ports.ts';
import type { Enricher, Remediator } from '../core/remediation.ts';
import type { MarksWork } from './actions/revoked-elsewhere.ts';
import type { Messenger } from './messenger.ts';
import type { ResponderCheck } from './responders.ts';
import type { ActiveRuns } from './stale-runs.ts';

/** Everything the Slack handlers and the sink share. Built once by `createSlackChat`. */
export interface SlackContext {
  store: StateStore;
  logger: Logger;
  history: History;
  remediator: Remediator;
  enricher?: Enricher;
  responders: ResponderCheck;
  /** Who may use Mark benign and Remove allowlist (`SLACK_ALLOWLIST`). */
  allowlistBy: 'channel' | 'responders';
  /** Who may use `/arc-history <appid>` (`SLACK_HISTORY`). */
  historyBy: 'anyone' | 'channel' | 'responders';
  messenger: Messenger;
  client: webApi.WebClient;
  alertChannel: string;
  now: () => number;
  /** The remediation runs of this process, which a stop waits for or settles. */
  runs: ActiveRuns;
  /** Where each audit record is also said: the log, and the responder actions counter. */
  audit: AuditObserver;
  /** The revoked-elsewhere marks being brought in line by this process (`requestMarks`). */
  marks?: MarksWork;
}

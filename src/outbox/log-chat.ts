import type { AlertRecord } from '../core/alert.ts';
import type { ChatAdapter } from '../core/ports.ts';
import type { Logger } from '../log.ts';

/** What the log-only chat writes for an alert: the fields a responder needs first. */
function summary(alert: AlertRecord) {
  const d = alert.detection;
  return {
    id: alert.id,
    reason: alert.reason,
    appId: d.appId,
    sourceIp: d.sourceIp,
    eventTime: d.eventTime,
    sourceFormat: d.sourceFormat,
    operation: d.operation,
    principalId: d.principalId,
    principalType: d.principalType ?? d.evidence.principalType,
    role: d.evidence.role,
    cluster: d.cluster?.id,
    geo: d.geo,
    as: d.as,
    otherIps: alert.otherIps,
  };
}

/**
 * The chat adapter used when no chat platform is configured: each alert becomes one JSON log line
 * (`"event":"alert"`), each repeat one line (`"event":"alert-repeat"`). It takes no callbacks and
 * never fails, so alerts still flow through the same outbox as with Slack.
 */
export function createLogChat(logger: Logger): ChatAdapter {
  const log = logger.child({ component: 'chat-log' });
  return {
    name: 'log-only',
    sink: {
      async post(alert) {
        const a = summary(alert);
        log.info({ event: 'alert', alert: a }, `ALERT ${a.appId} used ${a.sourceIp} for the first time`);
        return { ref: `log:${alert.id}` };
      },
      async repeat(ref, alert, repeat) {
        log.info(
          { event: 'alert-repeat', ref, alertId: alert.id, count: repeat.count, lastSeen: repeat.lastSeen },
          `alert ${alert.id} seen again (${repeat.count} times)`,
        );
      },
    },
    problems: () => [],
  };
}

import type { ChatAdapter } from '../chat-adapter.ts';
import type { AlertRecord } from '../core/alert.ts';
import { formatDuration } from '../core/duration.ts';
import { alertCause } from '../core/engine.ts';
import type { Logger } from '../log.ts';

/** What the log-only chat writes for an alert: the fields a responder needs first. */
function summary(alert: AlertRecord) {
  const d = alert.detection;
  return {
    id: alert.id,
    reason: alert.reason,
    appId: d.appId,
    ...(d.appIdAsSent === undefined ? {} : { appIdAsSent: d.appIdAsSent }),
    sourceIp: d.sourceIp,
    eventTime: d.eventTime,
    sourceFormat: d.sourceFormat,
    operation: d.operation,
    correlationId: d.correlationId,
    tenantId: d.tenantId,
    principalId: d.principalId,
    principalType: d.principalType ?? d.evidence.principalType,
    role: d.evidence.role,
    cluster: d.cluster?.id,
    geo: d.geo,
    as: d.as,
    otherIps: alert.otherIps,
    ...(alert.otherIpsEstimated ? { otherIpsEstimated: true } : {}),
    ...(alert.seenHereAt === undefined ? {} : { seenHereAt: new Date(alert.seenHereAt).toISOString() }),
  };
}

/** The line's message: why it fired, as the Slack alert says it. */
function headline(alert: AlertRecord): string {
  const { appId, sourceIp } = alert.detection;
  const window = formatDuration(alert.windowMs);
  const cause = alertCause(alert);
  if (cause === 'seen-here') {
    return `ALERT ${appId} from ${sourceIp}: Elastic judged the IP new for this identity, but this service saw the pair within ${window} (last ${new Date(alert.seenHereAt!).toISOString()})`;
  }
  if (cause === 'older-than-window') {
    return `ALERT ${appId} from ${sourceIp}: an event from longer ago than ${window}, so whether the IP was new then cannot be told`;
  }
  return `ALERT ${appId} used ${sourceIp} for the first time in ${window}`;
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
        log.info({ event: 'alert', alert: a }, headline(alert));
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

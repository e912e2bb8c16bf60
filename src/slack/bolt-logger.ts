import { type Logger as BoltLogger, LogLevel } from '@slack/bolt';
import type { Logger } from 'pino';

/**
 * Bolt's logger interface over pino. Bolt and the Web API client log strings; debug output is
 * dropped because it can echo request details.
 */
export function boltLogger(pino: Logger): BoltLogger {
  let level: LogLevel = LogLevel.INFO;
  const one = (m: unknown): string => {
    if (typeof m === 'string') return m;
    if (m instanceof Error) return m.message;
    try {
      return JSON.stringify(m) ?? String(m);
    } catch {
      return String(m);
    }
  };
  const text = (msg: unknown[]) => msg.map(one).join(' ');
  return {
    debug: () => {},
    info: (...msg: unknown[]) => pino.info({ component: 'bolt' }, text(msg)),
    warn: (...msg: unknown[]) => pino.warn({ component: 'bolt' }, text(msg)),
    error: (...msg: unknown[]) => pino.error({ component: 'bolt' }, text(msg)),
    setLevel: (l: LogLevel) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}

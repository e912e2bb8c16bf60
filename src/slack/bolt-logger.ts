import { type Logger as BoltLogger, LogLevel } from '@slack/bolt';
import type { Logger } from 'pino';

/**
 * Bolt's logger interface over pino. Bolt and the Web API client log strings; debug output is
 * dropped because it can echo request details.
 *
 * Lines carry exactly one `component` key: the one of `pino`'s bindings when it has one (pass a
 * child such as `logger.child({ component: 'slack-bolt' })`), else `bolt`. Pino does not merge
 * duplicate keys, so adding `component` to a logger that is already bound to one would write the
 * key twice on every line.
 */
export function boltLogger(pino: Logger): BoltLogger {
  const log = 'component' in pino.bindings() ? pino : pino.child({ component: 'bolt' });
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
    info: (...msg: unknown[]) => log.info(text(msg)),
    warn: (...msg: unknown[]) => log.warn(text(msg)),
    error: (...msg: unknown[]) => log.error(text(msg)),
    setLevel: (l: LogLevel) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}

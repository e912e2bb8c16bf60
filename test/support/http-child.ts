/**
 * Runs the real service (`node src/main.ts`) as a child process, as `npm start` does, and reads
 * its JSON log lines.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { expect, vi } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MAIN = path.join(ROOT, 'src/main.ts');

export interface ServiceProcess {
  child: ChildProcess;
  /** Parsed JSON lines from stdout. */
  lines: Array<Record<string, unknown>>;
  /** stderr text (configuration errors go there). */
  stderr(): string;
  /** Resolves with the first line (already seen or coming) that matches. */
  waitForLine(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  /** Base URL, once the start-up line was seen. */
  url(): Promise<string>;
}

/**
 * Starts `node src/main.ts` with exactly `env` (plus PATH and HOME) in `cwd`; with `args`, Node
 * with those arguments instead (in `cwd`); with `npm`, runs `npm start` in the repository instead
 * (then `cwd` is the repository's); with `group`, in a process group of its own.
 */
export function startService(
  env: Record<string, string>,
  cwd: string,
  opts: { npm?: boolean; group?: boolean; args?: readonly string[] } = {},
): ServiceProcess {
  const args = opts.npm ? ['start', '--silent'] : (opts.args ?? [MAIN]);
  const child = spawn(opts.npm ? 'npm' : process.execPath, args, {
    cwd: opts.npm ? ROOT : cwd,
    // Its own process group, as a terminal or a service manager starts it (signalled as a group).
    ...(opts.group ? { detached: true } : {}),
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{
    match: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }> = [];
  let buffered = '';
  let err = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf('\n');
    while (nl !== -1) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
      if (!text.trim()) continue;
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        line = { msg: text, unparsed: true };
      }
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.match(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });

  const waitForLine: ServiceProcess['waitForLine'] = (match, timeoutMs = 20_000) => {
    const seen = lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `no matching log line within ${timeoutMs} ms; stderr: ${err}; lines: ${JSON.stringify(lines.slice(-5))}`,
          ),
        );
      }, timeoutMs);
      waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`the service exited (${code}) before the expected line; stderr: ${err}`));
      });
    });
  };

  return {
    child,
    lines,
    stderr: () => err,
    waitForLine,
    exited,
    async url() {
      const line = await waitForLine(
        (l) => typeof l.msg === 'string' && l.msg.startsWith('arc-responder listening'),
      );
      return `http://127.0.0.1:${line.port as number}`;
    },
  };
}

/** The environment of a service on its own SQLite file in `dir`, posting to a fake Slack at `apiUrl`. */
export function slackServiceEnv(dir: string, apiUrl: string): Record<string, string> {
  return {
    PORT: '0',
    HOST: '127.0.0.1',
    STORE_URL: `sqlite://${path.join(dir, 'arc.db')}`,
    LOG_LEVEL: 'info',
    SLACK_BOT_TOKEN: 'xoxb-test',
    SLACK_SIGNING_SECRET: 'test',
    SLACK_ALERT_CHANNEL: 'C0TEST',
    SLACK_API_URL: apiUrl,
  };
}

/** Waits until the service at `url` says in `/readyz` that its outbox holds nothing to deliver. */
export async function waitForEmptyOutbox(url: string, timeoutMs: number, intervalMs = 100): Promise<void> {
  await vi.waitFor(
    async () => {
      const ready = (await (await fetch(`${url}/readyz`)).json()) as { outbox: { pending: number } };
      expect(ready.outbox.pending).toBe(0);
    },
    { timeout: timeoutMs, interval: intervalMs },
  );
}

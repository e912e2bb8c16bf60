/**
 * The Socket Mode supervisor over a stand-in for the client (its events and `start`): what it
 * logs when a connection that an error was logged about comes back, and what readiness blames.
 */
import { EventEmitter } from 'node:events';
import { expect, it } from 'vitest';
import { superviseSocket } from '../../src/slack/socket-supervisor.ts';

function supervised() {
  const client = Object.assign(new EventEmitter(), { start: async () => undefined });
  const lines: Array<{ level: string; msg: string }> = [];
  const logger = {
    info: (_: object, msg: string) => void lines.push({ level: 'info', msg }),
    error: (_: object, msg: string) => void lines.push({ level: 'error', msg }),
  };
  let clock = 0;
  const watch = superviseSocket(client, { logger, graceMs: 30_000, retryStepMs: 60_000, now: () => clock });
  return { client, lines, watch, advance: (ms: number) => (clock += ms) };
}

it('logs the connection coming back after an error was logged about it, even once Slack took the token and within the grace', () => {
  const { client, lines, watch } = supervised();
  watch.startFailed('An API error occurred: invalid_auth');
  expect(watch.problem()).toMatch(/invalid_auth.*check SLACK_APP_TOKEN/);
  // Slack takes the token: readiness no longer blames it.
  client.emit('authenticated');
  expect(watch.problem() ?? '').not.toContain('invalid_auth');
  client.emit('connected');
  expect(watch.problem()).toBeUndefined();
  expect(lines.at(-1)).toEqual({
    level: 'info',
    msg: 'Slack Socket Mode connected again: receiving clicks and commands',
  });
  watch.stop();
});

it('says nothing of a short drop that logged no error', () => {
  const { client, lines, watch, advance } = supervised();
  client.emit('connected');
  client.emit('disconnected');
  advance(1000);
  client.emit('connected');
  expect(lines).toEqual([]);
  watch.stop();
});

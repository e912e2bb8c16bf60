/**
 * `history audit` and `history list` read a store: one that is not there is an error, never an
 * empty answer (a scheduled SIEM export with a mistyped STORE_URL would report "no records").
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { ARC } from '../support/samples.ts';

const run = promisify(execFile);
const CLI = path.resolve(import.meta.dirname, '../../src/cli.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'arc-audit-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it.each([
  ['audit', []],
  ['list', [ARC.appId]],
])(
  'history %s with a SQLite STORE_URL naming no file fails with exit code 1, and creates nothing',
  async (command, args) => {
    const db = path.join(dir, 'missing', 'typo.db');
    const env = { ...process.env, STORE_URL: `sqlite://${db}` };
    await expect(run(process.execPath, [CLI, 'history', command, ...args], { env })).rejects.toMatchObject({
      code: 1,
      stdout: '',
      stderr: expect.stringContaining(`no store at ${db}`),
    });
    expect(existsSync(path.join(dir, 'missing'))).toBe(false);
  },
);

it.each([
  ['audit', [], 'memory://'],
  ['list', [ARC.appId], 'memory://'],
  ['audit', [], 'sqlite://:memory:'],
])(
  'history %s refuses a store in memory (%s): it could only read an empty one',
  async (command, args, url) => {
    const env = { ...process.env, STORE_URL: url };
    await expect(run(process.execPath, [CLI, 'history', command, ...args], { env })).rejects.toMatchObject({
      code: 1,
      stdout: '',
      stderr: expect.stringContaining('is private to the process that opens it'),
    });
  },
);

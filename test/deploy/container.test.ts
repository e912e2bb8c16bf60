/**
 * The container image (`Dockerfile`), checked without a container engine: its files are staged as
 * its COPY instructions place them, with the production dependencies only (what
 * `npm ci --omit=dev` installs), and its own command and health check are run on them.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { builtinModules } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startService } from '../support/http-child.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Instruction {
  op: string;
  args: string;
}

/** The Dockerfile's instructions, continuation lines joined, comments left out. */
function instructions(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const op = line.split(/\s+/, 1)[0] ?? '';
      return { op: op.toUpperCase(), args: line.slice(op.length).trim() };
    });
}

const dockerfile = instructions(read('Dockerfile'));
const all = (op: string) => dockerfile.filter((i) => i.op === op);
const only = (op: string) => {
  const found = all(op);
  expect(found, `one ${op} instruction`).toHaveLength(1);
  return found[0]!;
};
/** An exec-form argument list (`["node", …]`). */
const execForm = (args: string) => JSON.parse(args) as string[];

const pkg = JSON.parse(read('package.json')) as {
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
};
const lock = JSON.parse(read('package-lock.json')) as {
  packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }>;
};

/** The packages a production install places at the top of node_modules. */
const productionPackages = Object.entries(lock.packages)
  .filter(
    ([key, entry]) =>
      key.startsWith('node_modules/') && !key.slice(13).includes('node_modules/') && !entry.dev,
  )
  .map(([key]) => key.slice(13));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return /\.(ts|mjs|js)$/.test(entry.name) ? [full] : [];
  });
}

/** A bare module specifier's package name (`@scope/name/sub` → `@scope/name`). */
const packageOf = (specifier: string) =>
  specifier
    .split('/')
    .slice(0, specifier.startsWith('@') ? 2 : 1)
    .join('/');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('the container image', () => {
  const stage = mkdtempSync(path.join(tmpdir(), 'arc-image-'));
  afterAll(() => rmSync(stage, { recursive: true, force: true }));

  it('runs the command npm start runs, without npm in between', () => {
    const cmd = execForm(only('CMD').args);
    const start = pkg.scripts.start!.split(/\s+/);
    expect(start[0]).toBe('exec');
    expect(cmd).toEqual(start.slice(1));
  });

  it('installs exactly the production dependencies of the lockfile', () => {
    const runs = all('RUN').map((r) => r.args);
    expect(runs.some((r) => /\bnpm ci\b/.test(r) && r.includes('--omit=dev'))).toBe(true);
    // `--ignore-scripts` is safe only while no production package has an install script.
    const scripted = Object.entries(lock.packages)
      .filter(([key, entry]) => key !== '' && entry.hasInstallScript && !entry.dev)
      .map(([key]) => key);
    expect(scripted).toEqual([]);
  });

  it('needs no package at run time that a production install leaves out', () => {
    const builtins = new Set(builtinModules);
    const missing: string[] = [];
    for (const file of sourceFiles(path.join(ROOT, 'src'))) {
      const text = readFileSync(file, 'utf8');
      // Static imports and re-exports (over several lines too), bare imports, dynamic imports.
      const specifiers = [
        ...text.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+'([^']+)'/gm),
        ...text.matchAll(/^\s*import\s+'([^']+)'/gm),
        ...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g),
      ].map((m) => m[1]!);
      for (const specifier of specifiers) {
        if (specifier.startsWith('.')) continue;
        if (specifier.startsWith('node:') || builtins.has(specifier)) continue;
        const name = packageOf(specifier);
        if (!(name in pkg.dependencies)) missing.push(`${path.relative(ROOT, file)}: ${specifier}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('copies the manifest, the lockfile and the sources, and runs as the node user, who owns the data directory', () => {
    expect(all('COPY').map((c) => c.args)).toEqual(['package.json package-lock.json ./', 'src ./src']);
    const owned = dockerfile.findIndex((i) => i.op === 'RUN' && /\bchown node:node data\b/.test(i.args));
    const user = dockerfile.findIndex((i) => i.op === 'USER');
    expect(owned).toBeGreaterThan(-1);
    // After the chown; by number (the node image's node user), which runAsNonRoot can check.
    expect(user).toBeGreaterThan(owned);
    expect(dockerfile[user]!.args).toBe('1000:1000');
    expect(dockerfile.slice(user + 1).some((i) => i.op === 'RUN')).toBe(false);
  });

  it('copies nothing that .dockerignore leaves out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const copy of all('COPY')) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const source of sources) expect(ignored, `COPY ${source}`).not.toContain(source);
      for (const source of sources) expect(existsSync(path.join(ROOT, source)), source).toBe(true);
    }
  });

  it('starts on its own files and production dependencies, passes its health check and stops on SIGTERM', async () => {
    // The image's layout: each COPY as it places its files under WORKDIR, then node_modules with
    // the production packages only, then the data directory its RUN makes.
    expect(only('WORKDIR').args).toBe('/app');
    for (const copy of all('COPY')) {
      const parts = copy.args.split(/\s+/);
      const dest = parts.at(-1)!;
      for (const source of parts.slice(0, -1)) {
        // As Docker does: a directory's contents go into the destination; a file goes into a
        // destination ending in `/`, or becomes it.
        const from = path.join(ROOT, source);
        const target =
          statSync(from).isDirectory() || !dest.endsWith('/')
            ? path.join(stage, dest)
            : path.join(stage, dest, path.basename(source));
        cpSync(from, target, { recursive: true });
      }
    }
    for (const name of productionPackages) {
      const link = path.join(stage, 'node_modules', name);
      mkdirSync(path.dirname(link), { recursive: true });
      symlinkSync(path.join(ROOT, 'node_modules', name), link, 'dir');
    }
    expect(existsSync(path.join(stage, 'node_modules', 'vitest'))).toBe(false);
    expect(all('RUN').some((r) => r.args.includes('mkdir data'))).toBe(true);
    mkdirSync(path.join(stage, 'data'));
    expect(all('VOLUME').map((v) => execForm(v.args))).toEqual([['/app/data']]);

    const port = await freePort();
    const cmd = execForm(only('CMD').args);
    expect(cmd[0]).toBe('node');
    const service = startService({ PORT: String(port) }, stage, { args: cmd.slice(1) });
    try {
      const url = await service.url();
      expect(url).toBe(`http://127.0.0.1:${port}`);
      // The embedded history lands in the volume.
      expect(existsSync(path.join(stage, 'data', 'arc-responder.db'))).toBe(true);

      const health = only('HEALTHCHECK').args;
      const check = execForm(health.slice(health.indexOf('CMD') + 3).trim());
      expect(check[0]).toBe('node');
      const healthCheck = () =>
        spawnSync(process.execPath, check.slice(1), { env: { PORT: String(port) }, timeout: 10_000 }).status;
      expect(healthCheck()).toBe(0);

      service.child.kill('SIGTERM');
      expect(await service.exited).toBe(0);
      // The check fails on an answer other than 200.
      const sick = createHttpServer((_req, res) => res.writeHead(503).end());
      await new Promise<void>((resolve) => sick.listen(0, '127.0.0.1', resolve));
      const sickPort = (sick.address() as { port: number }).port;
      // Run apart from this process's event loop, which answers for the sick server.
      const sickStatus = await new Promise<number | null>((resolve) =>
        spawn(process.execPath, check.slice(1), { env: { PORT: String(sickPort) } }).on('exit', resolve),
      );
      await new Promise((resolve) => sick.close(resolve));
      expect(sickStatus).toBe(1);
    } finally {
      service.child.kill('SIGKILL');
    }
  });
});

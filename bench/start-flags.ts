import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The Node options that `npm start` gives the service (the `--` words of package.json's `start`
 * script), so that the benchmarks run the code the way it runs in production. The version check
 * it preloads (`--import=`, a path relative to the repository) is left out: it does nothing once
 * the process runs.
 */
export function startFlags(): string[] {
  const file = path.join(import.meta.dirname, '..', 'package.json');
  const pkg = JSON.parse(readFileSync(file, 'utf8')) as { scripts: { start: string } };
  return pkg.scripts.start
    .split(/\s+/)
    .filter((word) => word.startsWith('--') && !word.startsWith('--import='));
}

/**
 * `npm run bench`: runs every `bench/*.bench.ts` in turn, each in its own Node process so that one
 * benchmark's heap and open handles cannot skew the next. `npm run bench -- ingest` runs only the
 * files whose name contains "ingest". Each runs with the Node options of `npm start`. Exits
 * non-zero when any benchmark failed.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { startFlags } from './start-flags.ts';

const dir = import.meta.dirname;
const filters = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();

if (files.length === 0) {
  console.error(`no benchmark matches ${filters.join(', ') || '*.bench.ts'} in ${dir}`);
  process.exit(1);
}

const failed: string[] = [];
for (const file of files) {
  console.log(`\n=== ${file} ===`);
  const started = Date.now();
  const run = spawnSync(process.execPath, [...startFlags(), path.join(dir, file)], { stdio: 'inherit' });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (run.status !== 0) {
    failed.push(file);
    console.log(`=== ${file}: FAILED (${run.signal ?? `exit ${run.status}`}) after ${seconds} s ===`);
  } else {
    console.log(`=== ${file}: done in ${seconds} s ===`);
  }
}
if (failed.length > 0) {
  console.error(`\nfailed: ${failed.join(', ')}`);
  process.exit(1);
}

import { existsSync } from 'node:fs';
import path from 'node:path';
import { FIXTURES_DIR } from './samples.ts';

/**
 * The tests read real public samples from `../shared/fixtures`, next to the repository (README,
 * Tests). Without it, hundreds of tests would each fail on a missing file: say so once instead.
 */
export default function checkFixtures(): void {
  if (!existsSync(path.join(FIXTURES_DIR, 'PROVENANCE.md'))) {
    throw new Error(
      `The tests read real public samples from ${FIXTURES_DIR}, which is missing: put the project's shared/ directory (with fixtures/ and its PROVENANCE.md) next to the repository, then run npm test again`,
    );
  }
}

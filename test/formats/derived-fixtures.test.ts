/** The static DERIVED Arc files in test/fixtures/derived: in sync with the builders, and parsed. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { extractEvents, parseDetection } from '../../src/core/formats/index.ts';
import { DERIVED_DIR, derivedFiles } from '../fixtures/derived/derived-files.ts';
import { ARC } from '../support/samples.ts';

const read = (name: string): unknown => JSON.parse(readFileSync(path.join(DERIVED_DIR, name), 'utf8'));

describe('static DERIVED Arc fixtures', () => {
  it.each(Object.entries(derivedFiles()))(
    '%s equals what samples.ts builds (else: node test/fixtures/derived/derived-files.ts)',
    (name, built) => {
      expect(read(name)).toEqual(built);
    },
  );

  it('every file is named DERIVED and listed in the README', () => {
    const readme = readFileSync(path.join(DERIVED_DIR, 'README.md'), 'utf8');
    for (const name of Object.keys(derivedFiles())) {
      expect(name).toContain('DERIVED');
      expect(readme).toContain(`\`${name}\``);
    }
  });

  it.each([
    ['arc-eventhub-records.start-and-success.DERIVED.json', ['ignored', 'azure-activity-log-record']],
    ['arc-ecs-document.service-principal.DERIVED.json', ['elastic-ecs']],
    ['arc-ecs-document.user.DERIVED.json', ['elastic-ecs']],
    ['arc-kibana-webhook.DERIVED.json', ['elastic-alert']],
    ['arc-alert-source.flat.DERIVED.json', ['elastic-alert']],
    ['arc-activity-log-rest.DERIVED.json', ['azure-activity-log-rest']],
    ['arc-monitor-common-schema.DERIVED.json', ['azure-monitor-common']],
    ['arc-monitor-common-schema.no-ip.DERIVED.json', ['invalid']],
    ['arc-monitor-legacy.DERIVED.json', ['azure-monitor-legacy']],
  ])('%s parses to %j', (name, want) => {
    const results = extractEvents(read(name)).map(parseDetection);
    expect(results.map((r) => (r.ok ? r.detection.sourceFormat : r.kind))).toEqual(want);
    for (const r of results) {
      if (r.ok)
        expect(r.detection).toMatchObject({ appId: ARC.appId, sourceIp: ARC.ip, eventTime: ARC.timeIso });
    }
  });

  it('the user ECS document: user, AS and geo', () => {
    const [r] = extractEvents(read('arc-ecs-document.user.DERIVED.json')).map(parseDetection);
    expect(r).toMatchObject({
      ok: true,
      detection: {
        principalType: 'User',
        user: { upn: ARC.upn, name: ARC.userName },
        as: ARC.as,
        geo: ARC.geo,
      },
    });
  });
});

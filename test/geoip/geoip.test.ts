/**
 * GeoIP: the MaxMind DB reader over database files written by `test/support/mmdb.ts` (the format
 * of GeoLite2, GeoIP2 and DB-IP Lite), and the engine filling in geo and AS that events lack.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.ts';
import { createEngine } from '../../src/core/engine.ts';
import type { Outbox, StateStore } from '../../src/core/ports.ts';
import { openGeoLocator } from '../../src/geoip.ts';
import { createLogger } from '../../src/log.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { writeMmdb } from '../support/mmdb.ts';
import { ARC, arcEvent } from '../support/samples.ts';

const silent = createLogger({ level: 'silent' });
let dir: string;
let cityDb: string;
let asnDb: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'arc-geoip-'));
  cityDb = writeMmdb(path.join(dir, 'city.mmdb'), 'GeoLite2-City', {
    '81.2.69.0/24': {
      city: { names: { en: 'London', de: 'London' } },
      country: { iso_code: 'GB', names: { en: 'United Kingdom' } },
    },
    '2001:db8::/32': { country: { iso_code: 'DE', names: { en: 'Germany' } } },
  });
  asnDb = writeMmdb(path.join(dir, 'asn.mmdb'), 'GeoLite2-ASN', {
    '81.2.69.0/24': {
      autonomous_system_number: 20712,
      autonomous_system_organization: 'Andrews & Arnold Ltd',
    },
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('openGeoLocator', () => {
  it('is undefined when no database is configured', async () => {
    expect(await openGeoLocator({}, silent)).toBeUndefined();
  });

  it('answers country, city and AS from the databases, and nothing for addresses they lack', async () => {
    const geo = await openGeoLocator({ cityDb, asnDb }, silent);
    expect(geo!.locate('81.2.69.144')).toEqual({
      geo: { countryName: 'United Kingdom', countryIsoCode: 'GB', cityName: 'London' },
      as: { number: 20712, organizationName: 'Andrews & Arnold Ltd' },
    });
    expect(geo!.locate('2001:db8::7')).toEqual({ geo: { countryName: 'Germany', countryIsoCode: 'DE' } });
    expect(geo!.locate('198.51.100.1')).toEqual({});
    const cityOnly = await openGeoLocator({ cityDb }, silent);
    expect(cityOnly!.locate('81.2.69.144').as).toBeUndefined();
  });

  it('refuses a file that is missing, not a database, or another kind of database, naming the variable', async () => {
    await expect(openGeoLocator({ cityDb: path.join(dir, 'nope.mmdb') }, silent)).rejects.toThrow(
      /- GEOIP_CITY_DB: cannot open ".*nope\.mmdb" as a MaxMind DB file/,
    );
    const junk = path.join(dir, 'junk.mmdb');
    writeFileSync(junk, 'not a database');
    await expect(openGeoLocator({ asnDb: junk }, silent)).rejects.toThrow(/- GEOIP_ASN_DB: cannot open/);
    await expect(openGeoLocator({ asnDb: cityDb }, silent)).rejects.toThrow(
      /- GEOIP_ASN_DB: ".*city\.mmdb" is a GeoLite2-City database; expected an ASN database/,
    );
    // Both wrong: one configuration error names both.
    const both = await openGeoLocator({ cityDb: junk, asnDb: cityDb }, silent).catch((e: unknown) => e);
    expect(both).toBeInstanceOf(ConfigError);
    expect((both as ConfigError).problems).toEqual([
      expect.stringMatching(/^GEOIP_CITY_DB: cannot open /),
      expect.stringMatching(/^GEOIP_ASN_DB: ".*city\.mmdb" is a GeoLite2-City database/),
    ]);
  });
});

describe('a database file replaced while running', () => {
  it('is re-read; a broken or wrong replacement is logged naming the variable, and the database in use is kept', async () => {
    const lines: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: { write: (line: string) => void lines.push(line) },
    });
    const file = writeMmdb(path.join(dir, 'replaced-city.mmdb'), 'GeoLite2-City', {
      '81.2.69.0/24': { country: { iso_code: 'GB', names: { en: 'United Kingdom' } } },
    });
    const geo = await openGeoLocator({ cityDb: file }, logger);
    try {
      expect(geo!.locate('81.2.69.1').geo?.countryName).toBe('United Kingdom');
      // Node polls the file every 5 s. Its first look may come after a replacement (it then sees
      // no change), so each replacement is written again until its effect shows.
      const replaceUntil = async (write: (attempt: number) => void, seen: () => boolean) => {
        for (let attempt = 0; attempt < 4 && !seen(); attempt++) {
          write(attempt);
          for (let waited = 0; waited < 6000 && !seen(); waited += 200)
            await new Promise((r) => setTimeout(r, 200));
        }
        expect(seen()).toBe(true);
      };
      const logText = () => lines.join('');
      await replaceUntil(
        (n) => writeMmdb(file, 'GeoLite2-ASN', { '81.2.69.0/24': { autonomous_system_number: n + 1 } }),
        () => logText().includes('GEOIP_CITY_DB: \\"') && logText().includes('is a GeoLite2-ASN database'),
      );
      expect(logText()).toContain('the database read before stays in use');
      expect(geo!.locate('81.2.69.1').geo?.countryName).toBe('United Kingdom');
      // A file caught half-written is no database either.
      await replaceUntil(
        (n) => writeFileSync(file, `not a database ${n}`),
        () => logText().includes('GEOIP_CITY_DB: cannot open'),
      );
      expect(geo!.locate('81.2.69.1').geo?.countryName).toBe('United Kingdom');
      // A good replacement is taken.
      await replaceUntil(
        (n) =>
          writeMmdb(file, 'GeoLite2-City', {
            '81.2.69.0/24': { country: { iso_code: 'IE', names: { en: `Ireland${'!'.repeat(n)}` } } },
          }),
        () => geo!.locate('81.2.69.1').geo?.countryIsoCode === 'IE',
      );
    } finally {
      geo!.close?.();
    }
  }, 80_000);
});

describe('the engine with GeoIP databases', () => {
  let store: StateStore;
  const outbox: Outbox = { add: async () => {} };
  beforeAll(async () => {
    store = await openStateStore('memory://');
  });
  afterAll(async () => store.close());

  it('fills in the geo and AS a record lacks, says they were looked up, and keeps what an event carried', async () => {
    const geo = await openGeoLocator({ cityDb, asnDb }, silent);
    const engine = await createEngine({ store, windowMs: 7 * 86_400_000, outbox, geo: geo! });
    const time = new Date();
    const [record] = await engine.evaluate([
      arcEvent('azure-activity-log-record', { ip: '81.2.69.144', time }),
    ]);
    expect(record?.detection).toMatchObject({
      geo: { countryName: 'United Kingdom', cityName: 'London' },
      as: { number: 20712 },
      located: { geo: true, as: true },
    });
    // An ECS document carries Elastic's own geo and AS: those stay, and nothing is marked.
    const [ecs] = await engine.evaluate([
      arcEvent('elastic-ecs', {
        ip: '81.2.69.144',
        appId: '11111111-2222-4333-8444-555555555555',
        time,
        as: { number: 64500, organizationName: 'Transit' },
      }),
    ]);
    expect(ecs?.detection?.geo).toEqual(ARC.geo);
    expect(ecs?.detection?.as).toEqual({ number: 64500, organizationName: 'Transit' });
    expect(ecs?.detection?.located).toBeUndefined();
    // One that carries geo but no AS gets only the AS.
    const [noAs] = await engine.evaluate([
      arcEvent('elastic-ecs', { ip: '81.2.69.144', appId: '22222222-2222-4333-8444-555555555555', time }),
    ]);
    expect(noAs?.detection?.geo).toEqual(ARC.geo);
    expect(noAs?.detection?.as).toEqual({ number: 20712, organizationName: 'Andrews & Arnold Ltd' });
    expect(noAs?.detection?.located).toEqual({ as: true });
    // An address the databases do not know is left as it came.
    const [unknown] = await engine.evaluate([
      arcEvent('azure-activity-log-record', { ip: '198.51.100.9', time }),
    ]);
    expect(unknown?.detection?.geo).toBeUndefined();
    expect(unknown?.detection?.located).toBeUndefined();
  });
});

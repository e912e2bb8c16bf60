import { type AsnResponse, type CityResponse, open, type Reader } from 'maxmind';
import type { AutonomousSystem, Geo } from './core/detection.ts';
import type { GeoLocator } from './core/ports.ts';
import type { Logger } from './log.ts';

/** The GeoIP database files (MaxMind DB format: GeoLite2, GeoIP2, DB-IP Lite). */
export interface GeoIpFiles {
  /** A City or Country database: country and city. */
  cityDb?: string;
  /** An ASN database: AS number and organisation. */
  asnDb?: string;
}

/** Lookups kept per database: the same few IPs recur event after event. */
const CACHE_ENTRIES = 10_000;

type CityOrCountry = Pick<CityResponse, 'city' | 'country'>;

async function openDatabase<T extends CityOrCountry | AsnResponse>(
  variable: string,
  path: string,
  kind: RegExp,
  expected: string,
  logger: Logger,
): Promise<Reader<T>> {
  let reader: Reader<T> | undefined;
  try {
    // The file is re-read when it is replaced (geoipupdate), without keeping the process alive.
    reader = await open<T>(path, {
      cache: { max: CACHE_ENTRIES },
      watchForUpdates: true,
      watchForUpdatesNonPersistent: true,
      watchForUpdatesHook: () => {
        const now = reader?.metadata.databaseType ?? '';
        if (!kind.test(now)) {
          logger.error(
            { variable, file: path, type: now },
            `${variable}: the replaced file is a ${now} database; expected ${expected}: lookups from it find nothing until it is put right`,
          );
        }
      },
    });
  } catch (err) {
    throw new Error(`${variable}: cannot open "${path}" as a MaxMind DB file: ${(err as Error).message}`);
  }
  const type = reader.metadata.databaseType;
  if (!kind.test(type)) {
    throw new Error(`${variable}: "${path}" is a ${type} database; expected ${expected}`);
  }
  return reader;
}

function geoOf(r: CityOrCountry | null): Geo | undefined {
  if (!r) return undefined;
  const geo: Geo = {};
  const countryName = r.country?.names?.en;
  if (countryName) geo.countryName = countryName;
  if (r.country?.iso_code) geo.countryIsoCode = r.country.iso_code;
  const cityName = r.city?.names?.en;
  if (cityName) geo.cityName = cityName;
  return Object.keys(geo).length > 0 ? geo : undefined;
}

function asOf(r: AsnResponse | null): AutonomousSystem | undefined {
  if (!r) return undefined;
  const as: AutonomousSystem = {};
  if (typeof r.autonomous_system_number === 'number') as.number = r.autonomous_system_number;
  if (r.autonomous_system_organization) as.organizationName = r.autonomous_system_organization;
  return Object.keys(as).length > 0 ? as : undefined;
}

/**
 * Opens the configured databases; undefined when none is configured. Throws an error naming the
 * variable when a file cannot be opened or holds another kind of database.
 */
export async function openGeoLocator(files: GeoIpFiles, logger: Logger): Promise<GeoLocator | undefined> {
  if (!files.cityDb && !files.asnDb) return undefined;
  const city = files.cityDb
    ? await openDatabase<CityOrCountry>(
        'GEOIP_CITY_DB',
        files.cityDb,
        /city|country/i,
        'a City or Country database (GeoLite2-City, GeoIP2-City, DB-IP City Lite, ...)',
        logger,
      )
    : undefined;
  const asn = files.asnDb
    ? await openDatabase<AsnResponse>(
        'GEOIP_ASN_DB',
        files.asnDb,
        /asn/i,
        'an ASN database (GeoLite2-ASN, DB-IP ASN Lite, ...)',
        logger,
      )
    : undefined;
  logger.info(
    {
      city: city ? { file: files.cityDb, type: city.metadata.databaseType } : undefined,
      asn: asn ? { file: files.asnDb, type: asn.metadata.databaseType } : undefined,
    },
    'GeoIP databases open: events that carry no geo or AS get them from these',
  );
  return {
    locate(ip) {
      const out: { geo?: Geo; as?: AutonomousSystem } = {};
      const geo = city ? geoOf(city.get(ip)) : undefined;
      if (geo) out.geo = geo;
      const as = asn ? asOf(asn.get(ip)) : undefined;
      if (as) out.as = as;
      return out;
    },
  };
}

import { type Stats, unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { type AsnResponse, type CityResponse, Reader } from 'maxmind';
import {
  GEOIP_ASN as ASN,
  GEOIP_CITY as CITY,
  ConfigError,
  type GeoIpKind as DatabaseKind,
} from './config.ts';
import type { AutonomousSystem, Geo } from './core/detection.ts';
import { BoundedCache } from './core/formats/bounded-cache.ts';
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
/** How often a database file is checked for a replacement (geoipupdate). */
const WATCH_INTERVAL_MS = 5000;

type CityOrCountry = Pick<CityResponse, 'city' | 'country'>;

/** Reads and checks one database file; throws an error naming the variable. */
async function load<T extends CityOrCountry | AsnResponse>(
  kind: DatabaseKind,
  path: string,
): Promise<Reader<T>> {
  let reader: Reader<T>;
  try {
    reader = new Reader<T>(await readFile(path), { cache: new BoundedCache(CACHE_ENTRIES) });
  } catch (err) {
    throw new Error(
      `${kind.variable}: cannot open "${path}" as a MaxMind DB file: ${(err as Error).message}`,
    );
  }
  const type = reader.metadata.databaseType;
  if (!kind.type.test(type)) {
    throw new Error(`${kind.variable}: "${path}" is a ${type} database; expected ${kind.expected}`);
  }
  return reader;
}

/**
 * One database, re-read when its file is replaced. A replacement that cannot be read, or holds
 * another kind of database (a copy caught half-written, a wrong file), is logged and the database
 * in use is kept.
 */
async function openDatabase<T extends CityOrCountry | AsnResponse>(
  kind: DatabaseKind,
  path: string,
  logger: Logger,
): Promise<{ get(ip: string): T | null; type: string; close(): void }> {
  let reader = await load<T>(kind, path);
  let reloading = false;
  const onChange = (current: Stats, previous: Stats) => {
    const same = current.mtimeMs === previous.mtimeMs && current.size === previous.size;
    // A file of no bytes is being written (or gone): the next look finds it complete.
    if (reloading || same || current.size === 0) return;
    reloading = true;
    load<T>(kind, path)
      .then((next) => {
        reader = next;
        logger.info(
          { variable: kind.variable, file: path, type: next.metadata.databaseType },
          'GeoIP database re-read',
        );
      })
      .catch((err: Error) => {
        logger.error(
          { variable: kind.variable, file: path },
          `${err.message}; the database read before stays in use`,
        );
      })
      .finally(() => {
        reloading = false;
      });
  };
  // Housekeeping: the watch never keeps the process alive.
  watchFile(path, { persistent: false, interval: WATCH_INTERVAL_MS }, onChange);
  return {
    get: (ip) => reader.get(ip),
    get type() {
      return reader.metadata.databaseType;
    },
    close: () => unwatchFile(path, onChange),
  };
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

/** A lookup that cannot answer (an address the database cannot hold, say) knows nothing. */
function tryGet<T>(get: () => T | null): T | null {
  try {
    return get();
  } catch {
    return null;
  }
}

/**
 * Opens the configured databases; undefined when none is configured. Throws an error naming the
 * variable when a file cannot be opened or holds another kind of database.
 */
export async function openGeoLocator(files: GeoIpFiles, logger: Logger): Promise<GeoLocator | undefined> {
  if (!files.cityDb && !files.asnDb) return undefined;
  // Both are opened, so that one message names every file that cannot be used.
  const [cityOpen, asnOpen] = await Promise.allSettled([
    files.cityDb ? openDatabase<CityOrCountry>(CITY, files.cityDb, logger) : undefined,
    files.asnDb ? openDatabase<AsnResponse>(ASN, files.asnDb, logger) : undefined,
  ]);
  const problems = [cityOpen, asnOpen].flatMap((r) =>
    r.status === 'rejected' ? [(r.reason as Error).message] : [],
  );
  const city = cityOpen.status === 'fulfilled' ? cityOpen.value : undefined;
  const asn = asnOpen.status === 'fulfilled' ? asnOpen.value : undefined;
  if (problems.length > 0) {
    city?.close();
    asn?.close();
    throw new ConfigError(problems);
  }
  logger.info(
    {
      city: city ? { file: files.cityDb, type: city.type } : undefined,
      asn: asn ? { file: files.asnDb, type: asn.type } : undefined,
    },
    'GeoIP databases open: events that carry no geo or AS get them from these',
  );
  return {
    locate(ip) {
      const out: { geo?: Geo; as?: AutonomousSystem } = {};
      const geo = city ? geoOf(tryGet(() => city.get(ip))) : undefined;
      if (geo) out.geo = geo;
      const as = asn ? asOf(tryGet(() => asn.get(ip))) : undefined;
      if (as) out.as = as;
      return out;
    },
    close() {
      city?.close();
      asn?.close();
    },
  };
}

/**
 * ISO 8601 date-time as Azure and Elastic write it: `2019-10-24T00:13:46.3554259Z` (Azure, 7
 * fractional digits), `2021-11-16T08:27:36.1836909+00:00` (common alert schema),
 * `2019-10-24T00:13:46.355Z` (Elastic). A missing zone means UTC, as in Azure's own records.
 */
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/;
const MIN_MS = Date.UTC(1970, 0, 1);
const MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/**
 * The event time as ISO 8601 UTC with millisecond precision (further digits are cut, as Elastic
 * does), or undefined. Accepts ISO strings and epoch milliseconds (Elasticsearch `epoch_millis`).
 */
export function parseEventTime(v: unknown): string | undefined {
  let ms: number | undefined;
  if (typeof v === 'number') {
    ms = Number.isInteger(v) ? v : undefined;
  } else if (typeof v === 'string' && v.length <= 64) {
    ms = parseIso(v.trim());
  }
  if (ms === undefined || ms < MIN_MS || ms > MAX_MS) return undefined;
  return new Date(ms).toISOString();
}

function parseIso(s: string): number | undefined {
  const m = ISO.exec(s);
  if (!m) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const millis = m[7] === undefined ? 0 : Number(m[7].padEnd(3, '0').slice(0, 3));
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMin = 0;
  if (m[9] !== undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  return Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMin * 60_000;
}

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

import { trimmed } from './fields.ts';

/**
 * ISO 8601 date-time as Azure and Elastic write it: `2019-10-24T00:13:46.3554259Z` (Azure, 7
 * fractional digits), `2021-11-16T08:27:36.1836909+00:00` (common alert schema),
 * `2019-10-24T00:13:46.355Z` (Elastic). A missing zone means UTC, as in Azure's own records.
 */
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/;
const MIN_MS = Date.UTC(1970, 0, 1);
const MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const MIN_YEAR = 1970;
/**
 * Smallest number read as epoch milliseconds (1973-03-03). Anything smaller is far more likely
 * epoch seconds (today's are about 1.8e9) than a time in 1970: it is refused, not read as 1970.
 */
const MIN_EPOCH_MS = 1e11;

/**
 * The event time as ISO 8601 UTC with millisecond precision (further digits are cut, as Elastic
 * does), or undefined. Accepts ISO strings and epoch milliseconds (Elasticsearch `epoch_millis`).
 */
export function parseEventTime(v: unknown): string | undefined {
  let ms: number | undefined;
  if (typeof v === 'number') {
    ms = Number.isInteger(v) && v >= MIN_EPOCH_MS ? v : undefined;
  } else if (typeof v === 'string' && v.length <= 64) {
    const s = trimmed(v) ?? '';
    const utc = utcIso(s);
    if (utc !== undefined) return utc;
    ms = parseIso(s);
  }
  if (ms === undefined || ms < MIN_MS || ms > MAX_MS) return undefined;
  return new Date(ms).toISOString();
}

/** Where `utcIso` wants a digit: `YYYY-MM-DDTHH:MM:SS`. */
const DATE_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18] as const;
const DIGIT_0 = 48;
const isDigitAt = (s: string, i: number): boolean => (s.charCodeAt(i) - DIGIT_0) >>> 0 < 10;
const twoDigits = (s: string, i: number): number =>
  (s.charCodeAt(i) - DIGIT_0) * 10 + s.charCodeAt(i + 1) - DIGIT_0;

/**
 * The fast path for the forms every channel really sends, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]` then `Z`
 * or `+00:00`: they are already UTC, so the answer is the input's own digits, without a regex or a
 * Date round trip (this runs for every event). Undefined for anything else, which `parseIso` then
 * judges; years before 1970 also go there (out of range, and `Date.UTC` reads 0–99 as 19xx).
 */
function utcIso(s: string): string | undefined {
  const n = s.length;
  if (n < 20 || n > 35) return undefined;
  if (s[4] !== '-' || s[7] !== '-' || s[10] !== 'T' || s[13] !== ':' || s[16] !== ':') return undefined;
  for (const i of DATE_DIGITS) if (!isDigitAt(s, i)) return undefined;
  // Fraction: 1 to 9 digits after the dot (the regex's limit), of which the first 3 are kept.
  let end = 19;
  if (s[19] === '.') {
    end = 20;
    while (end < n && isDigitAt(s, end)) end++;
    if (end === 20 || end > 29) return undefined;
  }
  const zone = n - end;
  if (!(zone === 1 ? s[end] === 'Z' : zone === 6 && s.endsWith('+00:00'))) return undefined;

  const year = twoDigits(s, 0) * 100 + twoDigits(s, 2);
  const month = twoDigits(s, 5);
  const day = twoDigits(s, 8);
  if (year < MIN_YEAR || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return undefined;
  if (twoDigits(s, 11) > 23 || twoDigits(s, 14) > 59 || twoDigits(s, 17) > 59) return undefined;
  const fraction = end - 20;
  if (fraction === 3 && zone === 1) return s; // already `YYYY-MM-DDTHH:MM:SS.mmmZ`
  // More digits (Azure sends 7) are cut: the first 23 characters are then the answer but for the `Z`.
  if (fraction >= 3) return `${s.slice(0, 23)}Z`;
  return `${s.slice(0, 19)}.${s.slice(20, end).padEnd(3, '0')}Z`;
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

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

function daysIn(year: number, month: number): number {
  if (month !== 2) return DAYS_IN_MONTH[month - 1]!;
  if (year < 100) return new Date(Date.UTC(year, month, 0)).getUTCDate(); // Date.UTC's 19xx years
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
}

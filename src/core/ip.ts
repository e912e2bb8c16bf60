import { isIP } from 'node:net';

/** Longest input looked at: anything longer is not an address, whatever it holds. */
const MAX_INPUT = 100;
const IPV4_WITH_PORT = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/;
const BRACKETED = /^\[([^\]]+)\](?::\d{1,5})?$/;

/**
 * The canonical text form of an IP address, or undefined for anything that is not one.
 * IPv4 is dotted decimal without leading zeros; IPv6 is RFC 5952 (lower-case, no leading zeros,
 * the longest run of two or more zero groups compressed); an IPv4-mapped IPv6 address
 * (`::ffff:1.2.3.4`) becomes its IPv4 address, so one client has one key. Surrounding spaces,
 * brackets (`[2001:db8::1]`), a port (`1.2.3.4:443`, `[::1]:443`) and an IPv6 zone (`%eth0`)
 * are stripped.
 */
export function canonicalIp(raw: string): string | undefined {
  if (typeof raw !== 'string' || raw.length > MAX_INPUT) return undefined;
  let s = raw.trim();
  const bracketed = BRACKETED.exec(s);
  if (bracketed) s = bracketed[1]!;
  else {
    const withPort = IPV4_WITH_PORT.exec(s);
    if (withPort) s = withPort[1]!;
  }
  const zone = s.indexOf('%');
  if (zone > 0 && s.includes(':')) s = s.slice(0, zone);
  switch (isIP(s)) {
    case 4:
      return s;
    case 6:
      return canonicalIpv6(s);
    default:
      return undefined;
  }
}

/** `s` is a valid IPv6 address per `isIP` (so at most one `::` and well-formed groups). */
function canonicalIpv6(s: string): string {
  const groups = ipv6Groups(s.toLowerCase());
  // IPv4-mapped ::ffff:a.b.c.d
  if (
    groups[0] === 0 &&
    groups[1] === 0 &&
    groups[2] === 0 &&
    groups[3] === 0 &&
    groups[4] === 0 &&
    groups[5] === 0xffff
  ) {
    const hi = groups[6]!;
    const lo = groups[7]!;
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  // RFC 5952 §4.2: compress the longest run (first on a tie) of at least two zero groups.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function ipv6Groups(s: string): number[] {
  let text = s;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // Embedded IPv4 (`::ffff:1.2.3.4`, `64:ff9b::192.0.2.33`): rewrite as two hex groups.
    const [a, b, c, d] = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parse = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16));
  const gap = text.indexOf('::');
  if (gap < 0) return parse(text);
  const head = parse(text.slice(0, gap));
  const rest = parse(text.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
}

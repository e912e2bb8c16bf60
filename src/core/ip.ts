import { isIP } from 'node:net';

/** Longest input looked at: anything longer is not an address, whatever it holds. */
const MAX_INPUT = 100;
const IPV4_WITH_PORT = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/;
const BRACKETED = /^\[([^\]]+)\](?::(\d{1,5}))?$/;
/** A port as sent after an address: 0 to 65535; anything else makes the text no address. */
const isPort = (digits: string | undefined): boolean => digits === undefined || Number(digits) <= 65_535;

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
  if (isCanonicalIpv4(raw)) return raw; // what nearly every event carries: no trim, regex or copy
  let s = raw.trim();
  const bracketed = BRACKETED.exec(s);
  if (bracketed) {
    if (!isPort(bracketed[2])) return undefined;
    s = bracketed[1]!;
  } else {
    const withPort = IPV4_WITH_PORT.exec(s);
    if (withPort) {
      if (!isPort(withPort[2])) return undefined;
      s = withPort[1]!;
    }
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

/**
 * True for dotted-decimal IPv4 text that is already canonical: four decimal numbers of at most 255,
 * without leading zeros, signs or spaces. Exactly the text that `canonicalIp` would return as is
 * (anything else goes the long way, which judges it).
 */
function isCanonicalIpv4(s: string): boolean {
  if (s.length < 7 || s.length > 15) return false;
  let dots = 0;
  let digits = 0; // in the current number
  let value = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || ++dots > 3) return false;
      digits = 0;
      value = 0;
      continue;
    }
    const d = c - DIGIT_0;
    // A digit after a leading 0 would be a leading zero.
    if (d < 0 || d > 9 || (digits === 1 && value === 0)) return false;
    value = value * 10 + d;
    if (value > 255) return false;
    digits++;
  }
  return dots === 3 && digits > 0;
}

/** `s` is a valid IPv6 address per `isIP` (so at most one `::` and well-formed groups). */
function canonicalIpv6(s: string): string {
  const groups = ipv6Groups(s);
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
  let text = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += '::';
      i += bestLen - 1;
    } else {
      if (i > 0 && i !== bestStart + bestLen) text += ':';
      text += hex16(groups[i]!);
    }
  }
  return text;
}

/**
 * The eight 16-bit groups of a valid IPv6 address, in one pass over its text (no split, map or
 * spread: IPv6 callers are common enough that this runs often).
 */
function ipv6Groups(s: string): number[] {
  const head: number[] = [];
  const tail: number[] = [];
  let out = head;
  let i = 0;
  if (s.startsWith('::')) {
    out = tail;
    i = 2;
  }
  while (i < s.length) {
    let j = i;
    let group = 0;
    for (let c = s.charCodeAt(j); j < s.length && c !== COLON && c !== DOT; c = s.charCodeAt(++j)) {
      group = group * 16 + hexValue(c);
    }
    if (s.charCodeAt(j) === DOT) {
      // Embedded IPv4 (`::ffff:1.2.3.4`, `64:ff9b::192.0.2.33`), always last: two groups.
      const [a, b, c, d] = s.slice(i).split('.').map(Number) as [number, number, number, number];
      out.push((a << 8) | b, (c << 8) | d);
      break;
    }
    out.push(group);
    if (s.charCodeAt(j + 1) === COLON) {
      out = tail;
      j++;
    }
    i = j + 1;
  }
  const groups = head;
  for (let gap = 8 - head.length - tail.length; gap > 0; gap--) groups.push(0);
  for (const group of tail) groups.push(group);
  return groups;
}

const COLON = 58;
const DOT = 46;
const DIGIT_0 = 48;
const HEX = '0123456789abcdef';

/** `n.toString(16)` for a 16-bit group, several times faster (8 of them per address). */
function hex16(n: number): string {
  if (n < 0x10) return HEX[n]!;
  if (n < 0x100) return HEX[n >> 4]! + HEX[n & 15]!;
  if (n < 0x1000) return HEX[n >> 8]! + HEX[(n >> 4) & 15]! + HEX[n & 15]!;
  return HEX[n >> 12]! + HEX[(n >> 8) & 15]! + HEX[(n >> 4) & 15]! + HEX[n & 15]!;
}

/** The value of a hex digit (`isIP` has checked that it is one). */
function hexValue(c: number): number {
  if (c <= 57) return c - 48; // 0-9
  return (c | 0x20) - 87; // a-f, A-F
}

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * `M` alone: a month in Elastic's date math (the rule's `now-7d`), where `m` is a minute. Read
 * without letter case it would be a minute, so `1M` is refused rather than taken as 1 minute.
 */
export const MONTH_UNIT = /\dM(?![Ss])/;

/** Parses `7d`, `36h`, `90m`, `1h30m`, `45s`, `500ms` into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (MONTH_UNIT.test(text)) return undefined;
  const s = text.trim().toLowerCase();
  if (!/^(\d+(ms|s|m|h|d|w))+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+)(ms|s|m|h|d|w)/g)) total += Number(m[1]) * (UNITS[m[2]!] ?? 0);
  return total;
}

/** Formats milliseconds the way people write windows: `7d`, `36h`, `90m`. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

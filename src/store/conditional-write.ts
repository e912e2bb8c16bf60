import type { Expected } from '../core/ports.ts';

/** A conditional write as a backend receives it from `KeyvStateStore.setManyIfUnchanged`. */
export interface RawConditionalEntry {
  /** The key as the Keyv adapter gets it (Redis's adds its own prefix). */
  key: string;
  /** Keyv's envelope of the value, serialised as Keyv does. */
  text: string;
  /** Relative, whole milliseconds; undefined: never expires. */
  ttl: number | undefined;
  /** `Date.now() + ttl`, as the envelope holds it. */
  expires: number | undefined;
  /** Undefined: written whatever the key holds. */
  expect: Expected | undefined;
}

/**
 * A backend's answer for one entry: written, not written with what the key held (its serialised
 * value, undefined for none) as read in the same step, or not written and not read (`false`).
 */
export type RawConditionalResult = true | false | { text: string | undefined };

/**
 * What a backend's `writeHeld` asks of each key it holds: given its serialised value (undefined:
 * no row), the one to write and its expiry (`RawConditionalEntry`'s), or undefined for nothing.
 */
export type HeldWrite = (
  key: string,
  text: string | undefined,
) => { text: string; expires: number | undefined } | undefined;

/** How a field `rev` reads in serialised JSON (no space: Keyv's serialiser writes none). */
export const REV_FIELD = '"rev":"';

/** The text that a serialised value holding `rev` contains (`REV` keeps it unambiguous). */
export const revNeedle = (rev: string): string => `${REV_FIELD}${rev}"`;

/**
 * Whether the live serialised value `text` (undefined: none) is what `expect` wants. The `rev`
 * is found in the text itself: of our values only a pair's record and an outbox update have a
 * field of that name, at their top level.
 */
export function holdsExpected(text: string | undefined, expect: Expected | undefined): boolean {
  if (expect === undefined) return true;
  if (expect === 'absent') return text === undefined;
  if (text === undefined) return false;
  return expect.rev === null ? !text.includes(REV_FIELD) : text.includes(revNeedle(expect.rev));
}

/**
 * `expect` as one string, for a script or a statement to check: `''` nothing, `A` no value, `N` a
 * value without a `rev`, else the text a value with that `rev` contains (`revNeedle`).
 */
export function expectCode(expect: Expected | undefined): string {
  if (expect === undefined) return '';
  if (expect === 'absent') return 'A';
  return expect.rev === null ? 'N' : revNeedle(expect.rev);
}

/** Overrides for a test object: a key given `undefined` is left out of the result. */
export type Overrides<T> = { [K in keyof T]?: T[K] | undefined };

/** `base` with `over` applied; a key `over` gives as `undefined` is removed (absent, as in JSON). */
export function overridden<T extends object>(base: T, over: Overrides<T>): T {
  const out = { ...base } as Record<string, unknown>;
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) delete out[key];
    else out[key] = value;
  }
  return out as T;
}

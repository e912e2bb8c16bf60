import { randomUUID } from 'node:crypto';

/** This process's part of every `rev` it writes; a counter makes each one unique. */
const REV_PREFIX = randomUUID().slice(0, 13);
let revCounter = 0;

/** A `rev` no other write has (see `ConditionalWrites`): a pair's record or an outbox update. */
export const newRev = (): string => `${REV_PREFIX}.${(revCounter++).toString(36)}`;

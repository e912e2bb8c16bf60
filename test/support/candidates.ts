import type { Candidate } from '../../src/core/candidate.ts';
import type { SourceFormat } from '../../src/core/detection.ts';
import { parseDetection } from '../../src/core/formats/index.ts';
import { pairKey } from '../../src/core/pair.ts';
import { arcEvent } from './samples.ts';

export const DAY = 86_400_000;
export const WINDOW = 7 * DAY;
/** The judging time of these tests. */
export const NOW = Date.parse('2025-06-10T12:00:00Z');

let seq = 0;
/**
 * A batch's event, parsed from a derived Arc event in `format` (an Event Hub record unless
 * said) as the engine parses it, `agoMs` before `NOW`, from `ip`; `correlationId` repeats an event.
 */
export function candidate(
  opts: { agoMs?: number; ip?: string; correlationId?: string; index?: number; format?: SourceFormat } = {},
): Candidate {
  const time = new Date(NOW - (opts.agoMs ?? DAY));
  const r = parseDetection(
    arcEvent(opts.format ?? 'azure-activity-log-record', {
      time,
      ip: opts.ip ?? '203.0.113.7',
      correlationId: opts.correlationId ?? `c0ffee00-0000-4000-8000-${String(++seq).padStart(12, '0')}`,
    }),
  );
  if (!r.ok) throw new Error(`expected a detection, got ${r.kind}: ${r.reason}`);
  const d = r.detection;
  const eventMs = Date.parse(d.eventTime);
  return {
    index: opts.index ?? 0,
    detection: d,
    eventMs,
    at: eventMs,
    pairKey: pairKey(d.appId, d.sourceIp),
  };
}

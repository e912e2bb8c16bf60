import { describe, expect, it } from 'vitest';
import { BoundedCache } from '../../src/core/formats/bounded-cache.ts';
import { parseDetection } from '../../src/core/formats/index.ts';
import { arcEvent } from '../support/samples.ts';

describe('BoundedCache', () => {
  it('keeps at most max entries, dropping the oldest', () => {
    const cache = new BoundedCache<string, number>(3);
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, i);
    expect(cache.size).toBe(3);
    expect(cache.get('k6')).toBeUndefined();
    expect([cache.get('k7'), cache.get('k8'), cache.get('k9')]).toEqual([7, 8, 9]);
    cache.set('k9', 90); // an update is no new entry
    expect(cache.size).toBe(3);
    expect(cache.get('k7')).toBe(7);
  });

  it('parsed clusters come from it, but each detection owns its own copy', () => {
    const a = parseDetection(arcEvent('azure-activity-log-record', { correlationId: 'a' }));
    const b = parseDetection(arcEvent('azure-activity-log-record', { correlationId: 'b' }));
    if (!a.ok || !b.ok) throw new Error('expected detections');
    expect(a.detection.cluster).toEqual(b.detection.cluster);
    expect(a.detection.cluster).not.toBe(b.detection.cluster);
  });
});

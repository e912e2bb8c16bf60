import { describe, expect, it } from 'vitest';
import { RESULTS_LINK } from '../../src/core/formats/elastic-alert.ts';
import { extractEvents } from '../../src/core/formats/index.ts';
import { loadFixture } from '../support/samples.ts';

describe('extractEvents', () => {
  it('expands a JSON array', () => {
    expect(extractEvents([1, { a: 1 }])).toEqual([1, { a: 1 }]);
    expect(extractEvents([])).toEqual([]);
  });

  it('expands the REAL records envelope', () => {
    const events = extractEvents(
      loadFixture('azure-activity-log/activity-log-eventhub-records.docs-sample.json'),
    );
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ operationName: 'microsoft.support/supporttickets/write' });
  });

  it('expands a Kibana webhook body, whatever other keys it has', () => {
    const body = { rule_id: 'r', rule_name: 'n', results_link: 'https://k/x', alerts: [{ a: 1 }, { b: 2 }] };
    const events = extractEvents(body) as Array<Record<string | symbol, unknown>>;
    // Each alert carries the body's link to the rule's alerts, out of sight of its fields.
    expect(events.map((e) => e[RESULTS_LINK])).toEqual(['https://k/x', 'https://k/x']);
    expect(JSON.stringify(events)).toBe('[{"a":1},{"b":2}]');
  });

  it('keeps an action-group payload, or any other object, as one event', () => {
    const payload = loadFixture(
      'azure-monitor-alert/common-schema-activitylog-administrative.test-action-group.docs-sample.json',
    );
    expect(extractEvents(payload)).toEqual([payload]);
    expect(extractEvents({ records: 'not an array' })).toEqual([{ records: 'not an array' }]);
    expect(extractEvents({ alerts: null })).toEqual([{ alerts: null }]);
  });

  it('wraps non-objects', () => {
    for (const v of [null, undefined, 1, 'x', true]) expect(extractEvents(v)).toEqual([v]);
  });
});

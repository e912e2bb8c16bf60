import { expect, it } from 'vitest';
import { callIds } from '../../src/azure/call-log.ts';

it('keeps the ids of a call that are plain, and leaves out the others', () => {
  expect(
    callIds({
      sent: '3f2c9a1e-1b7d-4c55-9e0a-2d8f6b1c4e77',
      requestId: 'a1b2c3d4-0000-4000-8000-000000000001',
      correlationId: 'WESTEUROPE:20261128T060000Z:a1b2c3d4',
    }),
  ).toEqual({
    clientRequestId: '3f2c9a1e-1b7d-4c55-9e0a-2d8f6b1c4e77',
    requestId: 'a1b2c3d4-0000-4000-8000-000000000001',
    correlationId: 'WESTEUROPE:20261128T060000Z:a1b2c3d4',
  });
  // Absent, empty, too long or not plain (a proxy's junk, a line break that would start a log
  // line of its own in a reader): left out rather than kept.
  expect(callIds({ sent: undefined, requestId: null, correlationId: '' })).toEqual({});
  expect(callIds({ sent: 'x'.repeat(129), requestId: 'id\nforged: line', correlationId: '<b>' })).toEqual({});
});

/**
 * The Graph client's own timeout says whether the request went out: a connection whose TLS
 * handshake never ends sent nothing, so a write that times out there can have changed nothing.
 */
import { createServer, type Server } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { withCallLog } from '../../src/azure/call-log.ts';
import { mayHaveApplied } from '../../src/azure/errors.ts';
import { createGraphClient } from '../../src/azure/graph.ts';

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

it('a TLS handshake that never ends times out as "could not send", which no retry counts as a change made', async () => {
  const sockets: import('node:net').Socket[] = [];
  server = createServer((socket) => sockets.push(socket)); // accepts, never speaks TLS
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const graph = createGraphClient({
    endpoint: `https://127.0.0.1:${port}`,
    credential: {
      getToken: async () => ({ token: 'test-token', expiresOnTimestamp: Date.now() + 3_600_000 }),
    },
    retry: { maxRetries: 0 },
    requestTimeoutMs: 200,
  });
  const run = await withCallLog(() =>
    graph.call('PATCH', '/v1.0/servicePrincipals/x', { body: { accountEnabled: false } }),
  );
  for (const s of sockets) s.destroy();
  expect(run.ok).toBe(false);
  const error = (run as { error: Error }).error;
  expect(error.message).toContain('could not send the request to Graph within 200 ms');
  expect(mayHaveApplied(error)).toBe(false);
  expect(run.calls[0]?.error).toMatch(/^ETIMEDOUT: could not send/);
  // The id it was to be sent with is kept: Graph never saw it, and the audit says which attempt.
  expect(run.calls[0]?.clientRequestId).toMatch(/^[0-9a-f-]{36}$/);
  expect(run.calls[0]).not.toHaveProperty('requestId');
});

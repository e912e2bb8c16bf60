/**
 * The guard in front of Bolt on a real HTTP server: a flood of requests that look signed but hold
 * their bodies back costs bounded reads (a few at once, a short queue, then 503), an unsigned
 * request is read only as far as Slack's SSL check needs, and a signed body of a shape Bolt would
 * choke on is refused with 400 before Bolt sees it.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { guardSlackRequests } from '../../src/slack/verify.ts';
import { buttonClick, payloadBody, signSlack } from '../support/fake-slack.ts';

const SECRET = 'guard-test-signing-secret';
let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** A guard with small bounds, before a stand-in for Bolt that answers 200 and counts its calls. */
async function start(limits = { slots: 2, queue: 1, waitMs: 400, perClient: 10, deadlineMs: 1500 }) {
  const handled: string[] = [];
  const guard = guardSlackRequests({
    signingSecret: SECRET,
    inner: (req, res) => {
      handled.push(String((req as { rawBody?: Buffer }).rawBody));
      res.end('ok');
    },
    logger: pino({ level: 'silent' }),
    now: Date.now,
    limits,
  });
  server = createServer((req, res) => void guard(req, res));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, handled };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * POSTs headers and the first `sent` bytes of a body that declares `length` bytes; the rest never
 * comes. Resolves with the answer (or `undefined` when the connection closed without one).
 */
function held(port: number, headers: Record<string, string>, length: number, sent: string) {
  return new Promise<Answer | undefined>((resolve) => {
    const req = request({
      port,
      host: '127.0.0.1',
      method: 'POST',
      path: '/slack/events',
      headers: { ...headers, 'content-length': String(length) },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    req.on('error', () => resolve(undefined));
    req.write(sent);
  });
}

/** Headers that pass every check made before the body: a current timestamp, a well-formed signature. */
const signedLooking = () => ({
  'content-type': 'application/x-www-form-urlencoded',
  'x-slack-request-timestamp': String(Math.floor(Date.now() / 1000)),
  'x-slack-signature': `v0=${'0'.repeat(64)}`,
});

const post = async (port: number, body: string, headers: Record<string, string>) => {
  const res = await fetch(`http://127.0.0.1:${port}/slack/events`, { method: 'POST', headers, body });
  return { status: res.status, text: await res.text() };
};

it('reads a few signed-looking bodies at once, queues a few more, and answers 503 to the rest', async () => {
  const { port, handled } = await start();
  const stalled = [0, 1].map(() => held(port, signedLooking(), 200 * 1024, 'payload='));
  // Both read slots are taken once their reads have begun; the next one waits for a turn.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const waiting = held(port, signedLooking(), 200 * 1024, 'payload=');
  await new Promise((resolve) => setTimeout(resolve, 50));
  // The queue is full: refused at once, told when to come back.
  const refused = await held(port, signedLooking(), 200 * 1024, 'payload=');
  expect(refused?.status).toBe(503);
  expect(refused?.headers['retry-after']).toBe('1');
  expect(refused?.text).toMatch(/^too many Slack requests in progress \(2 running, 1 waiting\)/);
  // The one waiting gives up after its wait; the stalled ones at their body's deadline.
  expect((await waiting)?.status).toBe(503);
  for (const answer of await Promise.all(stalled)) expect(answer?.status).toBe(408);
  expect(handled).toEqual([]);
  // And the slots are free again: a real Slack request goes through.
  const raw = payloadBody(
    buttonClick({ actionId: 'arc_x', value: 'a', user: 'U1', responseUrl: 'http://127.0.0.1:1/r' }),
  );
  const ok = await post(port, raw, {
    'content-type': 'application/x-www-form-urlencoded',
    ...signSlack(SECRET, raw),
  });
  expect(ok.status).toBe(200);
  expect(handled).toEqual([raw]);
});

it('reads only a few bodies at once from one address: the next one from there is refused at once, others go on', async () => {
  const { port, handled } = await start({
    slots: 10,
    queue: 10,
    waitMs: 400,
    perClient: 2,
    deadlineMs: 1500,
  });
  const stalled = [0, 1].map(() => held(port, signedLooking(), 200 * 1024, 'payload='));
  await new Promise((resolve) => setTimeout(resolve, 100));
  const refused = await held(port, signedLooking(), 200 * 1024, 'payload=');
  expect(refused?.status).toBe(503);
  expect(refused?.headers['retry-after']).toBe('1');
  expect(refused?.text).toBe(
    'too many Slack requests in progress (2 Slack requests from this address are being read already): retry shortly',
  );
  for (const answer of await Promise.all(stalled)) expect(answer?.status).toBe(408);
  // Their reads over, the address may send again.
  const raw = payloadBody(
    buttonClick({ actionId: 'arc_x', value: 'a', user: 'U1', responseUrl: 'http://127.0.0.1:1/r' }),
  );
  expect(
    (
      await post(port, raw, {
        'content-type': 'application/x-www-form-urlencoded',
        ...signSlack(SECRET, raw),
      })
    ).status,
  ).toBe(200);
  expect(handled).toEqual([raw]);
});

it('refuses a request dated outside the 5 minutes on its headers, whatever its body (a large click from a skewed clock too)', async () => {
  const { port, handled } = await start();
  const raw = `payload=${encodeURIComponent(JSON.stringify({ type: 'block_actions', user: { id: 'U1' }, pad: 'x'.repeat(8000) }))}`;
  const stale = Math.floor(Date.now() / 1000) - 360;
  const answer = await post(port, raw, {
    'content-type': 'application/x-www-form-urlencoded',
    ...signSlack(SECRET, raw, stale),
  });
  expect(answer.status).toBe(401);
  // Not even read: a body that never comes is refused as soon.
  const hanging = await held(
    port,
    { ...signedLooking(), 'x-slack-request-timestamp': String(stale) },
    200 * 1024,
    '',
  );
  expect(hanging?.status).toBe(401);
  expect(handled).toEqual([]);
});

it('reads an unsigned request only as far as an SSL check, and never holds a read slot for it', async () => {
  const { port, handled } = await start({ slots: 1, queue: 0, waitMs: 400, perClient: 10, deadlineMs: 1500 });
  const unsigned = { 'content-type': 'application/x-www-form-urlencoded' };
  // Many unsigned uploads held open: none takes the one read slot, each is cut off at 4 KiB.
  const uploads = Array.from({ length: 5 }, () => held(port, unsigned, 200 * 1024, `x=${'a'.repeat(8000)}`));
  for (const answer of await Promise.all(uploads)) expect(answer?.status).toBe(413);
  expect((await post(port, 'ssl_check=1&token=t', unsigned)).status).toBe(200);
  expect((await post(port, 'payload=%7B%7D', unsigned)).status).toBe(401);
  // A malformed signature header makes a request unsigned: refused on its declared size alone.
  const forged = await held(port, { ...signedLooking(), 'x-slack-signature': 'v0=00' }, 200 * 1024, '');
  expect(forged?.status).toBe(413);
  const small = await post(port, 'payload=%7B%7D', { ...signedLooking(), 'x-slack-signature': 'v0=00' });
  expect(small.status).toBe(401);
  expect(handled).toEqual([]);
});

it('refuses with 400, before Bolt, a signed body of a shape Bolt would fail on', async () => {
  const { port, handled } = await start();
  const send = (raw: string, type = 'application/x-www-form-urlencoded') =>
    post(port, raw, { 'content-type': type, ...signSlack(SECRET, raw) });
  const click = buttonClick({
    actionId: 'arc_x',
    value: 'a',
    user: 'U1',
    responseUrl: 'http://127.0.0.1:1/r',
  });
  for (const [raw, reason] of [
    ['payload=null', 'its payload is not a JSON object with a type'],
    ['payload=%5B%5D', 'its payload is not a JSON object with a type'],
    ['payload=not-json', 'its payload is not a JSON object with a type'],
    [payloadBody({ ...click, user: null }), 'its block_actions payload names no user'],
    [payloadBody({ ...click, user: { id: 7 } }), 'its block_actions payload names no user'],
    ['command=%2Farc-history&text=x', 'its command names no user'],
    ['foo=bar', 'it is neither an interaction (a payload) nor a slash command'],
  ] as const) {
    const res = await send(raw);
    expect(res, raw).toEqual({ status: 400, text: `malformed Slack request: ${reason}` });
  }
  expect(await send('null', 'application/json')).toEqual({
    status: 400,
    text: 'malformed Slack request: the body is not a JSON object',
  });
  expect(handled).toEqual([]);
  // Well-formed ones go on to Bolt.
  const good = payloadBody(click);
  expect((await send(good)).status).toBe(200);
  const command = 'command=%2Farc-history&text=x&user_id=U1';
  expect((await send(command)).status).toBe(200);
  expect((await send('{"type":"url_verification","challenge":"c"}', 'application/json')).status).toBe(200);
  expect(handled).toHaveLength(3);
});

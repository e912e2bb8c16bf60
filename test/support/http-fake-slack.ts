/**
 * A local fake of the Slack Web API (`SLACK_API_URL`), for tests that run the real Slack adapter.
 * It records every call; while `down` it answers 503 as Slack does during an outage.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackCall {
  method: string;
  /** Form fields (Bolt's WebClient sends application/x-www-form-urlencoded). */
  params: Record<string, string>;
  raw: string;
  /** What the fake answered. */
  status: number;
}

export interface FakeSlack {
  /** Base URL to pass as SLACK_API_URL, ending in `/api/`. */
  apiUrl: string;
  calls: SlackCall[];
  /** Successful calls of one Web API method. */
  ok(method: string): SlackCall[];
  down: boolean;
  close(): Promise<void>;
}

export async function startFakeSlack(opts: { down?: boolean } = {}): Promise<FakeSlack> {
  let ts = 1_700_000_000;
  const calls: SlackCall[] = [];
  const state = { down: opts.down ?? false };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const method = (req.url ?? '').replace(/^\/api\//, '').split('?')[0] ?? '';
      const params = Object.fromEntries(new URLSearchParams(raw));
      if (state.down) {
        calls.push({ method, params, raw, status: 503 });
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('service unavailable');
        return;
      }
      calls.push({ method, params, raw, status: 200 });
      let body: Record<string, unknown> = { ok: true };
      if (method === 'auth.test') body = { ok: true, user_id: 'UBOT', bot_id: 'BBOT', team_id: 'T0TEST' };
      if (method === 'chat.postMessage') {
        ts++;
        body = { ok: true, channel: params.channel, ts: `${ts}.000100`, message: { text: params.text } };
      }
      if (method === 'chat.update') body = { ok: true, channel: params.channel, ts: params.ts };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    apiUrl: `http://127.0.0.1:${port}/api/`,
    calls,
    ok: (method) => calls.filter((c) => c.method === method && c.status === 200),
    get down() {
      return state.down;
    },
    set down(v: boolean) {
      state.down = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

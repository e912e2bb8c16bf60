import { describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { keepSecretsOut } from '../../src/secrets.ts';
import { arcRecord, freshAppId, postIngest, startTestApp } from '../support/http-app.ts';

describe('structured logs', () => {
  it('carry the incoming x-request-id (or a fresh one) and echo it in the answer', async () => {
    const t = await startTestApp();
    try {
      const res = await postIngest(t.url, 'not json', { headers: { 'x-request-id': 'kibana-run-42' } });
      expect(res.headers.get('x-request-id')).toBe('kibana-run-42');
      expect(res.body.requestId).toBe('kibana-run-42');
      const line = t.logs.find((l) => l.reqId === 'kibana-run-42' && l.status === 400);
      expect(line).toMatchObject({ level: 'info', method: 'POST', path: '/ingest', code: 'invalid_json' });

      const bad = await postIngest(t.url, [], { headers: { 'x-request-id': 'has spaces and "quotes"' } });
      const id = bad.headers.get('x-request-id');
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(t.logs.some((l) => l.reqId === id)).toBe(true);
    } finally {
      await t.close();
    }
  });

  it('never contain the bearer token, and log each alert of the log-only chat as one JSON line', async () => {
    const token = 'super-secret-ingest-token-4711';
    const t = await startTestApp({ env: { INGEST_TOKEN: token } });
    try {
      const appId = freshAppId();
      await postIngest(t.url, arcRecord({ appId, ip: '192.0.2.77' }), {
        headers: { authorization: `Bearer ${token}` },
      });
      await postIngest(t.url, arcRecord(), { headers: { authorization: `Bearer ${token}x` } });
      await t.app.outbox.drain();
      const alert = t.logs.find((l) => l.event === 'alert');
      expect(alert).toMatchObject({
        level: 'info',
        component: 'chat-log',
        alert: { appId, sourceIp: '192.0.2.77' },
      });
      expect(t.rawLogs()).not.toContain(token);
    } finally {
      await t.close();
    }
  });

  it('name what a refused request was told and where it came from, never the token it sent', async () => {
    const token = 'right-ingest-token-0815';
    const t = await startTestApp({ env: { INGEST_TOKEN: token } });
    try {
      const wrong = 'wrong-ingest-token-4711';
      const inHeader = await postIngest(t.url, arcRecord(), {
        headers: { authorization: `Bearer ${wrong}` },
      });
      expect(inHeader.status).toBe(401);
      const inUrl = await fetch(`${t.url}/ingest?token=${wrong}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(inUrl.status).toBe(401);
      const refused = t.logs.filter((l) => l.msg === 'request refused');
      expect(refused).toEqual([
        expect.objectContaining({
          status: 401,
          code: 'unauthorized',
          error: inHeader.body.error,
          client: '127.0.0.1',
        }),
        expect.objectContaining({
          path: '/ingest',
          status: 401,
          error: expect.stringMatching(/^invalid token in the URL: it matches none of INGEST_TOKEN/),
          client: '127.0.0.1',
        }),
      ]);
      expect(t.rawLogs()).not.toContain(wrong);
      expect(t.rawLogs()).not.toContain(token);
    } finally {
      await t.close();
    }
  });

  it('hold at most the first 200 characters of a long path', async () => {
    const t = await startTestApp();
    try {
      const path = `/${'a'.repeat(15_000)}`;
      expect((await fetch(`${t.url}${path}`)).status).toBe(404);
      const line = t.logs.find((l) => l.msg === 'request refused' && l.status === 404);
      expect(line?.path).toBe(`${path.slice(0, 199)}…`);
      expect(t.rawLogs().length).toBeLessThan(2000);
    } finally {
      await t.close();
    }
  });

  it('hold at most 10 refusals of a kind a minute, then one line that counts the rest', async () => {
    const t = await startTestApp({ env: { INGEST_TOKEN: 'flood-test-token' } });
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const unauthorized = () =>
        postIngest(t.url, arcRecord(), { headers: { authorization: 'Bearer not-the-token' } });
      const answers = await Promise.all(Array.from({ length: 25 }, unauthorized));
      expect(answers.map((a) => a.status)).toEqual(Array(25).fill(401));
      // Another kind of refusal has a count of its own.
      expect((await fetch(`${t.url}/nowhere`)).status).toBe(404);
      const lines = (status: number) =>
        t.logs.filter((l) => l.msg === 'request refused' && l.status === status);
      expect(lines(401)).toHaveLength(10);
      expect(lines(404)).toHaveLength(1);
      expect(t.logs.some((l) => l.more !== undefined)).toBe(false);

      vi.setSystemTime(Date.now() + 61_000);
      expect((await unauthorized()).status).toBe(401);
      expect(t.logs.filter((l) => l.more !== undefined)).toEqual([
        expect.objectContaining({
          level: 'info',
          method: 'POST',
          path: '/ingest',
          status: 401,
          code: 'unauthorized',
          more: 15,
          msg: '15 more POST /ingest requests refused with 401 (unauthorized) in the last minute (at most 10 per minute are logged one by one)',
        }),
      ]);
      // A new minute: its refusals are logged again.
      expect(lines(401)).toHaveLength(11);
    } finally {
      vi.useRealTimers();
      await t.close();
    }
  });

  it('count the refusals of a minute that a stop cuts short in one line as the service stops', async () => {
    const t = await startTestApp({ env: { INGEST_TOKEN: 'flood-test-token' } });
    let stopped = false;
    try {
      const unauthorized = () =>
        postIngest(t.url, arcRecord(), { headers: { authorization: 'Bearer not-the-token' } });
      const answers = await Promise.all(Array.from({ length: 14 }, unauthorized));
      expect(answers.map((a) => a.status)).toEqual(Array(14).fill(401));
      expect(t.logs.some((l) => l.more !== undefined)).toBe(false);
      await t.close();
      stopped = true;
      expect(t.logs.filter((l) => l.more !== undefined)).toEqual([
        expect.objectContaining({
          level: 'info',
          path: '/ingest',
          status: 401,
          code: 'unauthorized',
          more: 4,
        }),
      ]);
    } finally {
      if (!stopped) await t.close();
    }
  });

  it('hold at most 10 failures of a kind a minute too: a store that is down fails every request', async () => {
    const t = await startTestApp();
    try {
      await t.app.store.close();
      for (let i = 0; i < 12; i++) {
        expect((await postIngest(t.url, arcRecord({ appId: freshAppId() }))).status).toBe(503);
      }
      const failed = t.logs.filter((l) => l.msg === 'request failed' && l.code === 'store_unavailable');
      expect(failed).toHaveLength(10);
      expect(failed[0]).toMatchObject({
        level: 'warn',
        error: expect.stringMatching(/^the history store failed/),
      });
    } finally {
      await t.close();
    }
  });

  it('say "ingested" at info only for an alert or an invalid event, not for ignored or duplicate ones', async () => {
    const t = await startTestApp();
    try {
      const record = arcRecord({ appId: freshAppId() });
      const ingested = () => t.logs.filter((l) => l.msg === 'ingested').map((l) => l.level);
      expect((await postIngest(t.url, record)).body).toMatchObject({ counts: { alerted: 1 } });
      expect(ingested()).toEqual(['info']);
      const normal = await postIngest(t.url, [record, { ...record, resultType: 'Start' }]);
      expect(normal.body).toMatchObject({ counts: { duplicate: 1, ignored: 1 } });
      expect(ingested()).toEqual(['info', 'debug']);
      expect((await postIngest(t.url, [{ nope: 1 }])).body).toMatchObject({ counts: { invalid: 1 } });
      expect(ingested()).toEqual(['info', 'debug', 'info']);
    } finally {
      await t.close();
    }
  });

  it("never carry a configured secret, or a credential, that another's text quotes (an error, a library's line)", async () => {
    const token = 'ingest-token-quoted-9931';
    const password = 'store-pass-quoted-5521';
    const t = await startTestApp({ env: { INGEST_TOKEN: `old-token-1234,${token}` } });
    try {
      // Configured secrets are kept out by value, whatever field or message holds them.
      keepSecretsOut(loadConfig({ STORE_URL: `redis://arc:${password}@127.0.0.1:6390/0` }).secrets);
      t.app.logger.warn(
        { err: `upstream said: bad token ${token} (also "${password}")` },
        `refused ${token}`,
      );
      // Credentials by their shape, whoever's they are.
      t.app.logger.error(
        'bad token Bearer xoxb-1111-2222-abcdefABCDEF; app token xapp-1-A0-123456-abcdef; form client_secret=Zx9~q.8&x=1; jwt eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiIxMjM0NTY3OCJ9.sig',
      );
      const text = t.rawLogs();
      for (const secret of [
        token,
        password,
        '1111-2222-abcdefABCDEF',
        'A0-123456-abcdef',
        'Zx9~q.8',
        'eyJvaWQ',
      ]) {
        expect(text).not.toContain(secret);
      }
      expect(text).toContain('bad token *** (also \\"***\\")');
      expect(text).toContain('Bearer ***');
      expect(text).toContain('client_secret=***&x=1');
    } finally {
      await t.close();
    }
  });

  it('stay JSON lines when a quoted secret is taken out, and keep ordinary words and short values', () => {
    const lines: string[] = [];
    const log = createLogger({ destination: { write: (s: string) => void lines.push(s) } });
    // A value of its own, right after an escaped line break.
    keepSecretsOut(['nWithinAnEscape-5531']);
    log.warn({ err: 'answered 400 for body "grant_type=client_credentials&client_secret=abc123xyz"' }, 'x');
    log.warn({ err: 'first line\nWithinAnEscape-5531 second line' }, 'y');
    keepSecretsOut(['postgres']);
    log.info(
      { store: 'postgres' },
      'SLACK_SIGNING_SECRET is required (Basic Information > Signing Secret); the Basic SKU; bearer tokens expire',
    );
    // Each stays a line of its own, the one taken apart string by string too.
    expect(lines.every((l) => l.endsWith('\n'))).toBe(true);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed[0]!.err).toBe('answered 400 for body "grant_type=client_credentials&client_secret=***"');
    // The line's escaped break read as a secret's first letter: the text holds no secret.
    expect(parsed[1]!.err).toBe('first line\nWithinAnEscape-5531 second line');
    expect(parsed[2]).toMatchObject({
      store: 'postgres',
      msg: 'SLACK_SIGNING_SECRET is required (Basic Information > Signing Secret); the Basic SKU; bearer tokens expire',
    });
  });

  it('hide a configured secret of 12 characters, one that holds a quote or a backslash, and the whole of one that holds another', () => {
    const lines: string[] = [];
    const log = createLogger({ destination: { write: (s: string) => void lines.push(s) } });
    const shortest = 'pw-123456789';
    const quoted = 'pa"ss\\word-9931';
    const shorter = 'shared-token-4471';
    const longer = `${shorter}-and-its-tail`;
    keepSecretsOut([shortest, quoted, shorter, longer]);
    log.warn({ err: `refused ${shortest}; refused ${quoted}` }, `refused ${longer}`);
    const text = lines.join('');
    expect(text).not.toContain(shortest);
    expect(text).not.toContain('word-9931');
    expect(text).not.toContain('and-its-tail');
    const [line] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(line).toMatchObject({ err: 'refused ***; refused ***', msg: 'refused ***' });
  });

  it('hide credentials by their shape: a short Basic authorization, a password parameter, Slack user and refresh tokens', () => {
    const lines: string[] = [];
    const log = createLogger({ destination: { write: (s: string) => void lines.push(s) } });
    log.error(
      'proxy refused Authorization: Basic YXJjOnB3LTEyMzQ1; dsn host=db password=pg-Secret-77 user=arc; user token xoxp-1234-5678-abcdefabcdef; refresh xoxe-1-abcdef123456',
    );
    const text = lines.join('');
    for (const secret of ['YXJjOnB3LTEyMzQ1', 'pg-Secret-77', '1234-5678-abcdefabcdef', '1-abcdef123456']) {
      expect(text).not.toContain(secret);
    }
    expect(JSON.parse(lines[0]!)).toMatchObject({
      msg: 'proxy refused Authorization: Basic ***; dsn host=db password=*** user=arc; user token xoxp-***; refresh xoxe-***',
    });
  });

  it('redact authorization headers and secrets wherever a caller puts them', () => {
    const lines: string[] = [];
    const log = createLogger({ destination: { write: (s: string) => void lines.push(s) } });
    log.info(
      {
        req: { headers: { authorization: 'Bearer abc.def', 'x-slack-signature': 'v0=deadbeef' } },
        headers: { authorization: 'Bearer ghi' },
        config: { ingestTokens: ['t1'], slack: { botToken: 'xoxb-1', signingSecret: 's3cr3t' } },
        token: 'tok',
      },
      'request',
    );
    const text = lines.join('');
    for (const secret of ['abc.def', 'deadbeef', 'ghi', '"t1"', 'xoxb-1', 's3cr3t', '"tok"']) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain('[redacted]');
  });
});

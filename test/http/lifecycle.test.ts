import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { IngestSummary } from '../../src/http/ingest-handler.ts';
import { startFakeSlack } from '../support/fake-slack.ts';
import { arcRecord, freshAppId, postIngest, startTestApp } from '../support/http-app.ts';
import { type ServiceProcess, startService } from '../support/http-child.ts';
import { writeMmdb } from '../support/mmdb.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

describe('graceful stop', () => {
  it('finishes a request in flight, then refuses new connections and closes the store', async () => {
    const t = await startTestApp();
    const body = JSON.stringify([arcRecord({ appId: freshAppId() })]);
    const { port } = new URL(t.url);
    const answer = new Promise<{ status: number; body: IngestSummary }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/ingest',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as IngestSummary }),
          );
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 100));
      // Once the service has the request (however busy the machine), the stop begins; the rest
      // of the body arrives after that.
      t.app.server.once('request', () => {
        stopped = t.app.stop();
        setTimeout(() => req.end(body.slice(100)), 50);
      });
    });
    let stopped: Promise<void> | undefined;
    const res = await answer;
    expect(res.status).toBe(200);
    expect(res.body.counts.alerted).toBe(1);
    await stopped;
    await expect(fetch(`${t.url}/healthz`)).rejects.toThrow();
    await expect(t.app.store.ping()).rejects.toThrow();
    await t.close();
  });
});

describe('an error of the listening socket', () => {
  it('is logged with what to check, and the service keeps answering', async () => {
    const t = await startTestApp();
    try {
      // What Node emits when an accept fails in a way the runtime does not absorb.
      const failure = Object.assign(new Error('accept ENFILE'), { code: 'ENFILE', syscall: 'accept' });
      expect(t.app.server.emit('error', failure)).toBe(true);
      const line = t.logs.find((l) => l.msg?.startsWith('the HTTP server reported an error'));
      expect(line).toMatchObject({ level: 'error', code: 'ENFILE', error: 'accept ENFILE' });
      expect(line?.msg).toContain('ulimit -n');
      expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe('stopping with kept-alive connections', () => {
  it('answers a request sent on one while stopping with 503 and Connection: close, not a reset', async () => {
    const t = await startTestApp({ stopDrainMs: 1000 });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const send = () =>
      new Promise<{ status: number; connection: string | undefined; body: { code?: string } }>(
        (resolve, reject) => {
          const req = request(
            `${t.url}/ingest`,
            { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
            (res) => {
              let text = '';
              res.on('data', (c: Buffer) => {
                text += c.toString();
              });
              res.on('end', () =>
                resolve({
                  status: res.statusCode ?? 0,
                  connection: res.headers.connection,
                  body: JSON.parse(text) as { code?: string },
                }),
              );
            },
          );
          req.on('error', reject);
          req.end(JSON.stringify([arcRecord({ appId: freshAppId() })]));
        },
      );
    expect((await send()).status).toBe(200);
    // The connection is idle and kept alive; the stop begins, and a request goes out on it.
    const stopped = t.app.stop();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const during = await send();
    expect(during).toMatchObject({ status: 503, connection: 'close', body: { code: 'shutting_down' } });
    await stopped;
    agent.destroy();
    await t.close();
  });
});

describe('stopping under a large body', () => {
  it('a sender still sending a large body on a kept-alive connection while the service stops reads the 503, not a broken pipe', async () => {
    const t = await startTestApp({ stopDrainMs: 1000 });
    const small = JSON.stringify([arcRecord({ appId: freshAppId() })]);
    const first = await fetch(`${t.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: small,
    });
    expect(first.status).toBe(200);
    await first.arrayBuffer();
    const stopped = t.app.stop();
    await new Promise((resolve) => setTimeout(resolve, 100));
    // 5 MiB: more than the sockets hold, still being sent when the answer comes. A string body:
    // fetch sends it in pieces, on the connection kept alive from the first request.
    const big = JSON.stringify([{ pad: 'x'.repeat(5 * 1024 * 1024) }]);
    const during = await fetch(`${t.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: big,
    });
    expect(during.status).toBe(503);
    expect(during.headers.get('retry-after')).toBe('5');
    expect(((await during.json()) as { code: string }).code).toBe('shutting_down');
    await stopped;
    await t.close();
  });
});

describe('a learning period ended by another replica', () => {
  it('ends on a running replica too once another starts with LEARNING_PERIOD=0, which it logs', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'arc-learning-'));
    const a = await startTestApp({ dir, env: { LEARNING_PERIOD: '24h' }, learningCheckMs: 50 });
    try {
      const during = await postIngest<IngestSummary>(a.url, arcRecord({ appId: freshAppId() }));
      expect(during.body.counts).toMatchObject({ alerted: 0, known: 1 });
      const b = await startTestApp({ dir, env: { LEARNING_PERIOD: '0' } });
      try {
        expect(b.app.engine.learningEndedHere).toBe(true);
        await vi.waitFor(() => expect(a.app.engine.learningUntil).toBe(b.app.engine.learningUntil));
        expect(a.logs.map((l) => l.msg)).toContain(
          'the learning period was ended early by another start (LEARNING_PERIOD=0): new pairs alert from now on',
        );
        const after = await postIngest<IngestSummary>(a.url, arcRecord({ appId: freshAppId() }));
        expect(after.body.counts).toMatchObject({ alerted: 1 });
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('npm start (node src/main.ts)', () => {
  let dir: string;
  const children: ServiceProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts on the embedded defaults and says on one line what it runs with', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-start-'));
    const svc = startService({ PORT: '0' }, dir);
    children.push(svc);
    const url = await svc.url();
    const line = svc.lines.find((l) => String(l.msg).startsWith('arc-responder listening'))!;
    expect(line.msg).toMatch(
      /^arc-responder listening on http:\/\/127\.0\.0\.1:\d+: store sqlite:\/\/\.\/data\/arc-responder\.db, history window 7d, chat log-only, remediation dry-run from the detection's evidence \(no Azure identity configured\), ingest auth: loopback clients only \(INGEST_TOKEN unset\)$/,
    );
    expect(line).toMatchObject({
      host: '127.0.0.1',
      store: 'sqlite',
      chat: 'log-only',
      ingestAuth: 'loopback-only',
    });
    const res = await postIngest<IngestSummary>(url, arcRecord({ appId: freshAppId() }));
    expect(res.body.counts.alerted).toBe(1);
    await svc.waitForLine((l) => l.event === 'alert');
    expect(svc.lines.some((l) => String(l.msg).startsWith('HISTORY_WINDOW is'))).toBe(false);
    svc.child.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
  });

  it('warns at start of an INGEST_TOKEN shorter than 16 characters, naming its place in the list, never the token', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-start-'));
    const short = 'hunter2';
    const svc = startService(
      { PORT: '0', STORE_URL: 'memory://', INGEST_TOKEN: `${'a1'.repeat(16)},${short}`, HOST: '127.0.0.1' },
      dir,
    );
    children.push(svc);
    await svc.url();
    const line = await svc.waitForLine((l) => String(l.msg).startsWith('INGEST_TOKEN: token'));
    expect(line).toMatchObject({
      level: 'warn',
      tokens: [2],
      msg: 'INGEST_TOKEN: token 2 (by place in the list) is shorter than 16 characters and can be guessed; give senders a random one, e.g. openssl rand -hex 32',
    });
    svc.child.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
    expect(JSON.stringify(svc.lines)).not.toContain(short);
  });

  it('says at start when HISTORY_WINDOW is shorter than an hour (a unit typed wrong alerts on nearly every sighting)', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-start-'));
    const svc = startService({ PORT: '0', STORE_URL: 'memory://', HISTORY_WINDOW: '7s' }, dir);
    children.push(svc);
    await svc.url();
    const line = await svc.waitForLine((l) => String(l.msg).startsWith('HISTORY_WINDOW is'));
    expect(line).toMatchObject({
      level: 'warn',
      historyWindow: '7s',
      msg: "HISTORY_WINDOW is 7s: a pair not seen within it is new again, so nearly every sighting alerts (Elastic's rule looks back 7d); was d meant?",
    });
    svc.child.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
  });

  it('`npm start` and `npm run history` load a version check first: an older Node is told what it lacks, without a stack', async () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    for (const script of ['start', 'history'])
      expect(pkg.scripts[script]).toContain('--import=./src/require-node.mjs');
    const run = (version: string) =>
      spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '${version}' } }); await import('./src/require-node.mjs');`,
        ],
        { cwd: ROOT, encoding: 'utf8' },
      );
    for (const old of ['20.20.2', '22.12.0']) {
      const r = run(old);
      expect(r.status, old).toBe(1);
      expect(r.stderr).toContain(`arc-responder needs Node 22.18 or later`);
      expect(r.stderr).toContain(`this is Node ${old}`);
      expect(r.stderr).toContain('without --ignore-scripts');
      expect(r.stderr).not.toMatch(/\n\s+at /);
      // The same as a JSON line on stdout, for a pipeline that collects the log alone.
      expect(JSON.parse(r.stdout)).toMatchObject({
        level: 'fatal',
        code: 'node_version',
        msg: expect.stringContaining(`this is Node ${old}`),
      });
    }
    for (const fine of ['22.18.0', '24.0.0']) expect(run(fine).status, fine).toBe(0);
  });

  it('stops gracefully when `npm start` is sent SIGTERM (as a container runtime does), leaving nothing running', async () => {
    const svc = startService({ PORT: '0', STORE_URL: 'memory://' }, '', { npm: true });
    children.push(svc);
    const url = await svc.url();
    svc.child.kill('SIGTERM');
    await svc.waitForLine((l) => l.msg === 'stopped');
    expect(await svc.exited).toBe(0);
    const refused = await fetch(`${url}/healthz`).then(
      () => false,
      () => true,
    );
    expect(refused).toBe(true);
  });

  it('stops on SIGTERM when whoever read its log has gone away', async () => {
    const svc = startService({ PORT: '0', STORE_URL: 'memory://' }, tmpdir());
    children.push(svc);
    await svc.url();
    svc.child.stdout!.destroy();
    svc.child.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
  });

  it('one Ctrl-C to npm start (the signal reaches its process group) stops it gracefully, once', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-start-'));
    // On SQLite, whose closing takes long enough for npm's forwarded signal to arrive meanwhile.
    const svc = startService({ PORT: '0', STORE_URL: `sqlite://${path.join(dir, 'arc.db')}` }, '', {
      npm: true,
      group: true,
    });
    children.push(svc);
    await svc.url();
    // npm gets it and forwards it; Node gets it from the terminal as well.
    process.kill(-svc.child.pid!, 'SIGINT');
    await svc.waitForLine((l) => l.msg === 'stopped');
    expect(await svc.exited).toBe(0);
    expect(svc.lines.some((l) => String(l.msg).includes('again: exiting now'))).toBe(false);
  });

  it('a sender still sending a body several times over the limit reads the 413, not a broken pipe', async () => {
    const svc = startService({ PORT: '0', STORE_URL: 'memory://' }, tmpdir());
    children.push(svc);
    const url = await svc.url();
    // 5 MiB over the default 1 MiB: more than the sockets hold, still being sent when the answer
    // comes. A string body: fetch sends it in pieces.
    const big = JSON.stringify([{ pad: 'x'.repeat(5 * 1024 * 1024) }]);
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${url}/ingest`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: big,
      });
      expect(res.status).toBe(413);
      expect(((await res.json()) as { code: string }).code).toBe('payload_too_large');
    }
  });

  it('names the token count, never the tokens, and hides the store password', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-start-'));
    const svc = startService(
      {
        PORT: '0',
        HOST: '127.0.0.1',
        INGEST_TOKEN: 'first-secret-token,second-secret-token',
        STORE_URL: `sqlite://${dir}/x.db`,
      },
      dir,
    );
    children.push(svc);
    await svc.url();
    const text = JSON.stringify(svc.lines);
    expect(text).toContain('ingest auth: bearer token (2 configured)');
    expect(text).not.toContain('secret-token');
    svc.child.kill('SIGINT');
    expect(await svc.exited).toBe(0);
  });

  it('exits 1 with every configuration problem and no stack trace', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-start-'));
    const svc = startService({ PORT: 'http', HISTORY_WINDOW: 'a week', SLACK_BOT_TOKEN: 'xoxb-1' }, dir);
    children.push(svc);
    expect(await svc.exited).toBe(1);
    const err = svc.stderr();
    expect(err).toMatch(/PORT must be a port number/);
    expect(err).toMatch(/HISTORY_WINDOW must be a duration/);
    expect(err).toMatch(/SLACK_ALERT_CHANNEL is required/);
    expect(err).not.toMatch(/\n\s+at /);
    // The same, as a JSON line on stdout, for a pipeline that collects the log alone.
    const fatal = svc.lines.find((l) => l.level === 'fatal')!;
    expect(fatal).toMatchObject({ code: 'config' });
    expect(String(fatal.msg)).toMatch(
      /^arc-responder could not start: .*PORT must be a port number.*HISTORY_WINDOW/s,
    );
    expect(JSON.stringify(svc.lines)).not.toContain('xoxb-1');
  });

  it('says on its line whether a learning period runs: on an empty history, not on a later start with history, nor on one without LEARNING_PERIOD', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-start-'));
    const env = { PORT: '0', LEARNING_PERIOD: '24h', STORE_URL: `sqlite://${path.join(dir, 'a.db')}` };
    const startLine = async (extra: Record<string, string> = {}) => {
      const svc = startService({ ...env, ...extra }, dir!);
      children.push(svc);
      const url = await svc.url();
      const line = svc.lines.find((l) => String(l.msg).startsWith('arc-responder listening'))!;
      return { svc, url, line };
    };
    const first = await startLine();
    expect(first.line.msg).toMatch(/, learning \(sightings recorded, no alerts\) until \d{4}-\d\d-\d\dT/);
    expect(first.line.learningUntil).toEqual(expect.any(String));
    expect(first.line.msg).not.toContain('fixed at the first start');
    first.svc.child.kill('SIGTERM');
    expect(await first.svc.exited).toBe(0);
    // A restart with another LEARNING_PERIOD keeps the end, and says so.
    const restart = await startLine({ LEARNING_PERIOD: '5d' });
    expect(restart.line.learningUntil).toBe(first.line.learningUntil);
    expect(restart.line.msg).toMatch(
      /, learning \(sightings recorded, no alerts\) until \S+ \(fixed at the first start\)$/,
    );
    restart.svc.child.kill('SIGTERM');
    expect(await restart.svc.exited).toBe(0);
    // A restart without LEARNING_PERIOD alerts at once (unset: alert at once), and says that
    // replicas that set it learn on until the period's end.
    const unset = startService({ PORT: '0', STORE_URL: env.STORE_URL }, dir);
    children.push(unset);
    const unsetUrl = await unset.url();
    const unsetLine = unset.lines.find((l) => String(l.msg).startsWith('arc-responder listening'))!;
    expect(unsetLine.learningUntil).toBeUndefined();
    expect(unsetLine.msg).toContain(
      `, alerting at once (LEARNING_PERIOD unset), though replicas started with LEARNING_PERIOD learn until ${first.line.learningUntil}`,
    );
    const during = await postIngest<{ counts: Record<string, number> }>(
      unsetUrl,
      arcRecord({ appId: freshAppId() }),
    );
    expect(during.body.counts).toMatchObject({ alerted: 1, known: 0 });
    unset.child.kill('SIGTERM');
    expect(await unset.exited).toBe(0);
    // The period runs on for a start that sets it.
    const again = await startLine();
    expect(again.line.learningUntil).toBe(first.line.learningUntil);
    again.svc.child.kill('SIGTERM');
    expect(await again.svc.exited).toBe(0);
    // LEARNING_PERIOD=0 ends it now, and says so; later starts keep it ended.
    const ended = await startLine({ LEARNING_PERIOD: '0' });
    expect(ended.line.msg).toMatch(
      /, learning period ended \S+ by LEARNING_PERIOD=0 \(for every replica of this release: unset it now\)$/,
    );
    expect(Date.parse(ended.line.learningUntil as string)).toBeLessThan(
      Date.parse(first.line.learningUntil as string),
    );
    const afterEnd = await postIngest<{ counts: Record<string, number> }>(
      ended.url,
      arcRecord({ appId: freshAppId() }),
    );
    expect(afterEnd.body.counts).toMatchObject({ alerted: 1 });
    ended.svc.child.kill('SIGTERM');
    expect(await ended.svc.exited).toBe(0);
    const later = await startLine();
    expect(later.line.msg).toMatch(/, learning period ended \S+$/);
    expect(later.line.learningUntil).toBe(ended.line.learningUntil);
    later.svc.child.kill('SIGTERM');
    expect(await later.svc.exited).toBe(0);
    const zeroAgain = await startLine({ LEARNING_PERIOD: '0' });
    expect(zeroAgain.line.msg).toMatch(/, no learning period running \(LEARNING_PERIOD=0 ends one\)$/);
    zeroAgain.svc.child.kill('SIGTERM');
    expect(await zeroAgain.svc.exited).toBe(0);
    // A store that already has history at its first start never learns.
    for (const f of ['a.db', 'a.db-wal', 'a.db-shm']) rmSync(path.join(dir, f), { force: true });
    const plain = startService({ PORT: '0', STORE_URL: env.STORE_URL }, dir);
    children.push(plain);
    await postIngest(await plain.url(), arcRecord({ appId: freshAppId() }));
    plain.child.kill('SIGTERM');
    expect(await plain.exited).toBe(0);
    const second = await startLine();
    expect(second.line.msg).toMatch(
      /, learning period not applied \(LEARNING_PERIOD only opens on an empty history\)$/,
    );
    second.svc.child.kill('SIGTERM');
    expect(await second.svc.exited).toBe(0);
  }, 60_000);

  it('names GeoIP databases on its line, and stops on one it cannot open, naming the variable', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-start-'));
    const cityDb = writeMmdb(path.join(dir, 'city.mmdb'), 'GeoLite2-City', {
      '81.2.69.0/24': { country: { iso_code: 'GB', names: { en: 'United Kingdom' } } },
    });
    const svc = startService({ PORT: '0', STORE_URL: 'memory://', GEOIP_CITY_DB: cityDb }, dir);
    children.push(svc);
    await svc.url();
    const line = svc.lines.find((l) => String(l.msg).startsWith('arc-responder listening'))!;
    expect(line.msg).toMatch(/, GeoIP city database$/);
    svc.child.kill('SIGTERM');
    expect(await svc.exited).toBe(0);

    const missing = startService(
      { PORT: '0', STORE_URL: 'memory://', GEOIP_ASN_DB: path.join(dir, 'none.mmdb') },
      dir,
    );
    children.push(missing);
    expect(await missing.exited).toBe(1);
    expect(missing.stderr()).toMatch(/GEOIP_ASN_DB must be the path of a GeoIP database file/);
    // A file of the wrong kind is found out when it is opened.
    const wrong = startService({ PORT: '0', STORE_URL: 'memory://', GEOIP_ASN_DB: cityDb }, dir);
    children.push(wrong);
    expect(await wrong.exited).toBe(1);
    expect(JSON.stringify(wrong.lines)).toMatch(
      /could not start: .*GEOIP_ASN_DB: .*is a GeoLite2-City database; expected an ASN database/,
    );
    // Said as a configuration error, like the others: on stderr too, with its code.
    expect(wrong.stderr()).toMatch(/GEOIP_ASN_DB: .*is a GeoLite2-City database/);
    expect(wrong.lines.find((l) => l.level === 'fatal')).toMatchObject({ code: 'config' });
  });

  it('names the Slack channel and mode (HTTP or Socket Mode) on its line', async () => {
    const fake = await startFakeSlack();
    try {
      const slack = {
        PORT: '0',
        STORE_URL: 'memory://',
        SLACK_BOT_TOKEN: 'xoxb-start-line',
        SLACK_SIGNING_SECRET: 'start-line-secret',
        SLACK_ALERT_CHANNEL: 'C0ALERTS',
        SLACK_API_URL: fake.apiUrl,
      };
      const svc = startService(slack, tmpdir());
      children.push(svc);
      const line = await svc.waitForLine((l) => String(l.msg).startsWith('arc-responder listening'));
      expect(line.msg).toContain(', chat slack in C0ALERTS (HTTP mode: POST /slack/events), ');
      svc.child.kill('SIGTERM');
      expect(await svc.exited).toBe(0);
    } finally {
      await fake.stop();
    }
  });

  it('writes its line at LOG_LEVEL=error too', async () => {
    const svc = startService({ PORT: '0', STORE_URL: 'memory://', LOG_LEVEL: 'error' }, tmpdir());
    children.push(svc);
    const line = await svc.waitForLine((l) => String(l.msg).startsWith('arc-responder listening'));
    expect(line).toMatchObject({ level: 'error' });
    expect(line.msg).toMatch(/^arc-responder listening on http:\/\/127\.0\.0\.1:\d+: store memory:\/\//);
    const res = await fetch(`http://127.0.0.1:${line.port as number}/healthz`);
    expect(res.status).toBe(200);
    svc.child.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
  });

  it('exits 1 with a clear message when the port is taken', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-start-'));
    const first = startService({ PORT: '0', STORE_URL: 'memory://' }, dir);
    children.push(first);
    const { port } = new URL(await first.url());
    const second = startService({ PORT: port, STORE_URL: 'memory://' }, dir);
    children.push(second);
    expect(await second.exited).toBe(1);
    expect(JSON.stringify(second.lines)).toMatch(
      new RegExp(`could not start: PORT ${port} is already in use on HOST 127\\.0\\.0\\.1.*\\(EADDRINUSE\\)`),
    );
    // Said on stderr too, as a configuration error is.
    expect(second.stderr()).toMatch(
      new RegExp(`^arc-responder could not start: PORT ${port} is already in use`),
    );
  });

  it('says on stderr, without its password, why a store it cannot reach stops the start', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'arc-start-'));
    const svc = startService({ PORT: '0', STORE_URL: 'redis://:Sekr1t-pw@127.0.0.1:1/0' }, dir);
    children.push(svc);
    expect(await svc.exited).toBe(1);
    expect(svc.stderr()).toMatch(
      /^arc-responder could not start: Cannot connect to Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/,
    );
    expect(svc.stderr() + JSON.stringify(svc.lines)).not.toContain('Sekr1t-pw');
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { ACTION_IDS, CALLBACK_IDS } from '../../src/slack/ids.ts';
import { verifySlackSignature } from '../../src/slack/verify.ts';
import {
  buttonClick,
  commandBody,
  payloadBody,
  signSlack,
  slashCommand,
  viewSubmission,
} from '../support/fake-slack.ts';
import { type Harness, RESPONDER, SECRET, startHarness } from './harness.ts';
import { sampleAlert } from './sample-alert.ts';

let h: Harness;
afterEach(async () => h?.close());

const nowSec = () => Math.floor(Date.now() / 1000);

describe('Slack request verification', () => {
  const command = () =>
    commandBody(
      slashCommand({
        command: '/arc-history',
        text: '',
        user: RESPONDER,
        responseUrl: 'http://127.0.0.1:1/r',
      }),
    );

  it('accepts a correctly signed request', async () => {
    h = await startHarness();
    const res = await h.send(command());
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ response_type: 'ephemeral' });
  });

  it('answers 401 to a bad signature and does not act', async () => {
    h = await startHarness();
    await h.chat.sink.post(sampleAlert());
    h.fake.clear();
    const raw = payloadBody(
      buttonClick({
        actionId: ACTION_IDS.revoke,
        value: sampleAlert().id,
        user: RESPONDER,
        responseUrl: h.fake.responseUrl(),
      }),
    );
    const res = await h.send(raw, { secret: 'not-the-secret' });
    expect(res.status).toBe(401);
    expect(h.fake.calls).toEqual([]);
    expect(await listAudit(h.store)).toEqual([]);
  });

  it('logs at most 10 refusals a minute per cause, each with its cause and client, under a flood of forged requests', async () => {
    h = await startHarness();
    for (let i = 0; i < 25; i++) expect((await h.send(command(), { secret: 'forged' })).status).toBe(401);
    // The harness's clock stands at its start: the margin covers the requests above on a busy machine.
    expect((await h.send(command(), { timestamp: nowSec() - 330 })).status).toBe(401);
    const refusals = h.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => String(l.msg).startsWith('refused a Slack request (401)'));
    expect(refusals.filter((l) => l.code === 'signature_mismatch')).toHaveLength(10);
    expect(refusals.filter((l) => l.code === 'stale')).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ reason: 'signature does not match', client: '127.0.0.1' });
  });

  it('answers 401 to a stale timestamp and to one from the future (more than 5 minutes)', async () => {
    h = await startHarness();
    expect((await h.send(command(), { timestamp: nowSec() - 310 })).status).toBe(401);
    expect((await h.send(command(), { timestamp: nowSec() + 301 })).status).toBe(401);
    expect((await h.send(command(), { timestamp: nowSec() + 60 })).status).toBe(200);
  });

  it('answers 401 without the signature headers and when the body was altered', async () => {
    h = await startHarness();
    const raw = command();
    const noHeaders = await fetch(h.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: raw,
    });
    expect(noHeaders.status).toBe(401);
    const altered = await fetch(h.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...signSlack(SECRET, raw) },
      body: `${raw}&text=evil`,
    });
    expect(altered.status).toBe(401);
  });

  it('compares in constant time and checks the format first (unit)', () => {
    const body = 'a=1';
    const ts = String(nowSec());
    const good = signSlack(SECRET, body, Number(ts))['x-slack-signature'];
    const base = { signingSecret: SECRET, body, timestamp: ts, nowMs: Date.now() };
    expect(verifySlackSignature({ ...base, signature: good })).toEqual({ ok: true });
    expect(verifySlackSignature({ ...base, signature: 'v0=abc' })).toMatchObject({ ok: false });
    expect(verifySlackSignature({ ...base, signature: [good, good] })).toMatchObject({ ok: false });
    expect(verifySlackSignature({ ...base, timestamp: 'soon', signature: good })).toMatchObject({
      ok: false,
    });
  });

  it('handles two presses that share a trigger_id but are no retry (only Slack retries repeat a request)', async () => {
    h = await startHarness();
    await h.chat.sink.post(sampleAlert());
    for (const user of [RESPONDER, RESPONDER]) {
      const raw = payloadBody(
        buttonClick({
          actionId: ACTION_IDS.markBenign,
          value: sampleAlert().id,
          user,
          responseUrl: h.fake.responseUrl(),
          triggerId: '111.222.same',
        }),
      );
      expect((await h.send(raw)).status).toBe(200);
    }
    await h.fake.waitFor('two modals', () => h.fake.callsOf('views.open').length === 2);
  });

  it('does not act twice on a retry of the same request (X-Slack-Retry-Num)', async () => {
    h = await startHarness();
    await h.chat.sink.post(sampleAlert());
    const raw = payloadBody(
      buttonClick({
        actionId: ACTION_IDS.markBenign,
        value: sampleAlert().id,
        user: RESPONDER,
        responseUrl: h.fake.responseUrl(),
        triggerId: '111.222.retry',
      }),
    );
    expect((await h.send(raw)).status).toBe(200);
    await h.fake.waitFor('views.open', () => h.fake.callsOf('views.open').length === 1);
    const retry = await h.send(raw, {
      headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' },
    });
    expect(retry.status).toBe(200);
    // The dedupe logs before it acks, so the line is there once the 200 arrives.
    expect(h.logs.join('')).toContain('already handled (a retry)');
    expect(h.logs.join('')).toContain('"retry":1');
    expect(h.fake.callsOf('views.open')).toHaveLength(1);
  });

  it('answers Slack SSL checks (unsigned, with their token) without acting', async () => {
    h = await startHarness();
    for (const [type, body] of [
      ['application/x-www-form-urlencoded', 'ssl_check=1'],
      // What Slack sends: the legacy verification token along, and no signature headers.
      ['application/x-www-form-urlencoded', 'ssl_check=1&token=legacy-verification-token'],
      ['application/x-www-form-urlencoded; charset=utf-8', 'token=abc&ssl_check=1'],
    ]) {
      const res = await fetch(h.url, { method: 'POST', headers: { 'content-type': type! }, body: body! });
      expect(res.status, body).toBe(200);
    }
    // Anything else unsigned is still refused.
    const other = await fetch(h.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'ssl_check=0&token=abc',
    });
    expect(other.status).toBe(401);
    expect(h.fake.calls).toEqual([]);
  });

  it('acknowledges at once, and does nothing for, a button, modal or command that no handler serves', async () => {
    h = await startHarness();
    await h.chat.sink.post(sampleAlert());
    h.fake.clear();
    const timed = async (raw: string) => {
      const started = performance.now();
      const res = await h.send(raw);
      return { res, ms: performance.now() - started };
    };
    const press = (actionId: string) =>
      timed(
        payloadBody(
          buttonClick({
            actionId,
            value: sampleAlert().id,
            user: RESPONDER,
            responseUrl: h.fake.responseUrl(),
          }),
        ),
      );
    const click = await press('arc_some_retired_button');
    expect(click.res.status).toBe(200);
    // Only Remove allowlist's buttons are numbered: a numbered Revoke is no Revoke.
    const numbered = await press(`${ACTION_IDS.revoke}:3`);
    expect(numbered.res.status).toBe(200);
    const view = await timed(
      payloadBody(
        viewSubmission({ callbackId: 'another_modal', user: RESPONDER, privateMetadata: '', values: {} }),
      ),
    );
    expect(view.res.status).toBe(200);
    // A modal of this app closed: none asks to be told, so no handler serves it.
    const closed = await timed(
      payloadBody({
        ...viewSubmission({
          callbackId: CALLBACK_IDS.markBenign,
          user: RESPONDER,
          privateMetadata: '',
          values: {},
        }),
        type: 'view_closed',
        is_cleared: false,
      }),
    );
    expect(closed.res.status).toBe(200);
    const command = await timed(
      commandBody(
        slashCommand({ command: '/arc-foo', text: 'x', user: RESPONDER, responseUrl: h.fake.responseUrl() }),
      ),
    );
    expect(command.res.status).toBe(200);
    expect(command.res.json()).toEqual({
      response_type: 'ephemeral',
      text: 'arc-responder does not serve /arc-foo. It answers /arc-history &lt;appid&gt;.',
    });
    // Bolt's own answer to an unacknowledged request comes after 3 s, too late for Slack.
    for (const { ms } of [click, numbered, view, closed, command]) expect(ms).toBeLessThan(2000);
    expect(h.fake.calls).toEqual([]);
    expect(await listAudit(h.store)).toEqual([]);
    expect(h.logs.join('')).toContain('"unserved":"action arc_some_retired_button"');
  });

  it('answers 413 to a body over 256 KiB, declared or streamed, without acting', async () => {
    h = await startHarness();
    const big = `payload=${'x'.repeat(300 * 1024)}`;
    const declared = await fetch(h.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: big,
    });
    expect(declared.status).toBe(413);
    expect(await declared.text()).toBe('body too large');
    // Without Content-Length (chunked), the limit is counted as the body streams in.
    const streamed = await fetch(h.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new Blob([big]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(h.fake.calls).toEqual([]);
  });
});

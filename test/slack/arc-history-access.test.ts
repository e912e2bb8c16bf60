/**
 * Who may read an identity's history with `/arc-history <appid>` (`SLACK_HISTORY`): anyone by
 * default; with `channel`, anyone typing it in the alert channel and responders anywhere; with
 * `responders`, responders only. A refusal is private, shows nothing of the history, and is
 * audited as a refused click is; the usage help answers everyone.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { ARC } from '../support/samples.ts';
import { CHANNEL, GROUP_MEMBER, type Harness, OUTSIDER, RESPONDER, startHarness } from './harness.ts';

let h: Harness;
afterEach(async () => h?.close());

/** A direct message with the app: anywhere but the alert channel. */
const ELSEWHERE = 'D0ELSEWHERE';
const IP = '198.51.100.77';

/** A harness whose history holds one allowlist entry of the sample identity. */
async function withHistory(opts: Parameters<typeof startHarness>[0]) {
  h = await startHarness(opts);
  await h.history.allow({ appId: ARC.appId, ip: IP, by: RESPONDER, reason: 'partner VPN' });
}

const ask = async (user: string, channel: string, text: string = ARC.appId) => {
  const res = await h.command(text, user, channel);
  expect(res.status).toBe(200);
  return res.json() as { response_type: string; text: string; blocks?: unknown[] };
};

/** Whether the answer shows the identity's history (its allowlisted IP and who allowlisted it). */
const showsHistory = (reply: { text: string; blocks?: unknown[] }) => {
  const all = JSON.stringify(reply);
  return all.includes(IP) && all.includes('partner VPN');
};

/** Asks as each user from their channel: each is shown the history, and nothing is audited. */
async function expectShown(...callers: Array<[user: string, channel: string]>) {
  for (const [user, channel] of callers) expect(showsHistory(await ask(user, channel))).toBe(true);
  expect(await listAudit(h.store)).toEqual([]);
}

/** Asks as `user` from `channel`, expects the refusal `text`, and that it is audited and shows nothing. */
async function expectRefused(user: string, channel: string, text: string) {
  const reply = await ask(user, channel);
  expect(reply.response_type).toBe('ephemeral');
  expect(reply.text).toContain(text);
  expect(reply.text).toContain('Your attempt was recorded.');
  expect(showsHistory(reply)).toBe(false);
  expect(await listAudit(h.store)).toMatchObject([
    { actor: user, action: 'history', appId: ARC.appId, result: 'refused' },
  ]);
}

describe('/arc-history, by SLACK_HISTORY', () => {
  it('answers anyone anywhere by default, unaudited; the log says who read whose history', async () => {
    await withHistory({});
    await expectShown([OUTSIDER, ELSEWHERE]);
    const reads = h.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => String(l.msg).startsWith('/arc-history of'));
    expect(reads).toMatchObject([
      {
        level: 30,
        actor: OUTSIDER,
        appId: ARC.appId,
        channel: ELSEWHERE,
        msg: `/arc-history of ${ARC.appId} read by ${OUTSIDER}`,
      },
    ]);
  });

  it('with channel: answers anyone in the alert channel and responders (a user group too) anywhere; refuses others elsewhere, saying where it works', async () => {
    await withHistory({ historyAccess: 'channel' });
    await expectShown([OUTSIDER, CHANNEL], [RESPONDER, ELSEWHERE], [GROUP_MEMBER, ELSEWHERE]);
    await expectRefused(
      OUTSIDER,
      ELSEWHERE,
      `:no_entry: /arc-history works in the alert channel <#${CHANNEL}>, or anywhere for responders (SLACK_RESPONDERS).`,
    );
  });

  it('with channel and SLACK_RESPONDERS unset: answers in the alert channel only', async () => {
    await withHistory({ historyAccess: 'channel', responders: '' });
    await expectShown([RESPONDER, CHANNEL]);
    await expectRefused(
      RESPONDER,
      ELSEWHERE,
      `:no_entry: /arc-history works only in the alert channel <#${CHANNEL}>: SLACK_RESPONDERS is not set`,
    );
  });

  it('with responders: answers responders (a user group too) anywhere; refuses others, in the alert channel too', async () => {
    await withHistory({ historyAccess: 'responders' });
    await expectShown([RESPONDER, ELSEWHERE], [GROUP_MEMBER, CHANNEL]);
    await expectRefused(
      OUTSIDER,
      CHANNEL,
      ':no_entry: Only responders (SLACK_RESPONDERS) may use /arc-history.',
    );
  });

  it.each(['channel', 'responders'])(
    'with %s: answers the usage help to anyone, unaudited',
    async (access) => {
      await withHistory({ historyAccess: access });
      for (const text of ['', 'help']) {
        const reply = await ask(OUTSIDER, ELSEWHERE, text);
        expect(reply.text).toContain('Usage: `/arc-history &lt;appid&gt;`');
      }
      expect(await listAudit(h.store)).toEqual([]);
    },
  );

  it('refuses before reading what was typed: the audit names no appid that is none', async () => {
    await withHistory({ historyAccess: 'responders' });
    const reply = await ask(OUTSIDER, CHANNEL, 'not:an:appid');
    expect(reply.text).toContain('Only responders (SLACK_RESPONDERS) may use /arc-history.');
    const [record] = await listAudit(h.store);
    expect(record).toMatchObject({ actor: OUTSIDER, action: 'history', result: 'refused' });
    expect(record).not.toHaveProperty('appId');
  });
});

describe('a Remove allowlist button of a reply given before SLACK_HISTORY was tightened', () => {
  it('removes the entry for who may still remove it, without showing the history again to who may no longer read it', async () => {
    // The reply was given when anyone could read the history; the service was then restarted
    // on the same store with SLACK_HISTORY=responders.
    const dir = mkdtempSync(path.join(tmpdir(), 'arc-history-access-'));
    const file = `sqlite://${path.join(dir, 'arc.db')}`;
    await withHistory({ store: await openStateStore(file) });
    await h.history.allow({ appId: ARC.appId, ip: '198.51.100.78', by: RESPONDER, reason: 'branch office' });
    const reply = await ask(OUTSIDER, CHANNEL);
    const button = (reply.blocks as Array<{ elements?: Array<{ action_id?: string; value?: string }> }>)
      .flatMap((b) => b.elements ?? [])
      .find((e) => e.action_id?.startsWith(ACTION_IDS.removeAllow) && e.value?.includes(IP))!;
    await h.close();
    h = await startHarness({ historyAccess: 'responders', store: await openStateStore(file) });
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));

    // In the alert channel, Mark benign's rule lets the outsider remove the entry.
    const { responseId } = await h.click(ACTION_IDS.removeAllow, button.value!, OUTSIDER, {
      ephemeral: true,
      channel: CHANNEL,
    });
    await h.fake.waitFor('the answer', () => h.fake.responsesTo(responseId).length === 1);
    const [answer] = h.fake.responsesTo(responseId);
    expect(answer).toMatchObject({ replace_original: true });
    expect(String(answer!.text)).toContain('Removed: the allowlist entry');
    expect(String(answer!.text)).toContain(
      'The history is not shown again: Only responders (SLACK_RESPONDERS) may use /arc-history.',
    );
    expect(String(answer!.text)).not.toContain('recorded');
    // Nothing of the identity's other IPs or entries.
    expect(JSON.stringify(answer)).not.toContain('198.51.100.78');
    expect(JSON.stringify(answer)).not.toContain('branch office');
    expect(await h.history.getAllow(ARC.appId, IP)).toBeUndefined();
  });
});

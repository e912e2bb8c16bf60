import { afterEach, describe, expect, it, vi } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { createEngine } from '../../src/core/engine.ts';
import { loadAlertState, revokedAlertsKey, updateAlertState } from '../../src/slack/alert-state.ts';
import { HISTORY_MAX_MESSAGES } from '../../src/slack/blocks/history.ts';
import { checkMessageLimits } from '../../src/slack/blocks/limits.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import { ARC, arcEvent } from '../support/samples.ts';
import { type Harness, OUTSIDER, RESPONDER, startHarness } from './harness.ts';
import { sampleAlert } from './sample-alert.ts';

let h: Harness;
afterEach(async () => h?.close());

type Button = { action_id: string; value: string; text: { text: string } };
type Reply = {
  response_type: string;
  text: string;
  blocks?: Array<{ type: string; text?: { text: string }; elements?: Button[] }>;
};

/** The IP lines of a reply, in order (the sections after the head). */
const linesOf = (reply: Reply) =>
  (reply.blocks ?? [])
    .filter((b) => b.type === 'section')
    .slice(1)
    .flatMap((b) => b.text!.text.split('\n'));
/** The IP of each line. */
const ipsOf = (reply: Reply) => linesOf(reply).map((l) => /^`([^`]+)`/.exec(l)![1]!);
const buttonsOf = (reply: Reply) =>
  (reply.blocks ?? [])
    .flatMap((b) => b.elements ?? [])
    .filter((e) => e.action_id?.startsWith(ACTION_IDS.removeAllow));
/** `n` distinct documentation IPs (198.18.0.0/15, RFC 2544). */
const manyIps = (n: number) =>
  [...Array(n)].map((_, i) => ({ ip: `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`, minutesAgo: i + 1 }));

/** Records sightings through the real engine (silently: history only). */
async function sightings(ips: Array<{ ip: string; minutesAgo: number }>, appId: string = ARC.appId) {
  const engine = await createEngine({
    store: h.store,
    windowMs: 7 * 24 * 3600 * 1000,
    outbox: { add: async () => {} },
  });
  const events = ips.map(({ ip, minutesAgo }, i) =>
    arcEvent('elastic-ecs', {
      appId,
      ip,
      time: new Date(Date.now() - minutesAgo * 60_000),
      correlationId: `c-${ip}-${i}`,
      set: { 'event.id': `evt-${ip}-${minutesAgo}-${i}` },
    }),
  );
  const results = await engine.evaluate(events, { silent: true });
  expect(results.every((r) => r.outcome !== 'invalid' && r.outcome !== 'ignored')).toBe(true);
}

const ask = async (text: string, user = RESPONDER) => {
  const res = await h.command(text, user);
  expect(res.status).toBe(200);
  return res.json() as Reply;
};

describe('/arc-history', () => {
  it('answers usage help privately without an argument', async () => {
    h = await startHarness();
    const reply = await ask('  ');
    expect(reply.response_type).toBe('ephemeral');
    expect(reply.text).toContain('Usage: `/arc-history &lt;appid&gt;`');
    expect(reply.text).toContain('last 7 days');
  });

  it('says "no sightings in the last 7 days" for an unknown appid', async () => {
    h = await startHarness();
    const reply = await ask('11111111-2222-3333-4444-555555555555');
    expect(reply).toMatchObject({ response_type: 'ephemeral' });
    expect(reply.text).toContain('no sightings in the last 7 days');
    expect(reply.text).not.toContain('GUID');
    // An id that is no GUID may be an identity, but more likely a typo: the answer says so.
    expect((await ask('ci-deployer')).text).toContain(
      'no sightings in the last 7 days. Azure writes application ids as GUIDs: check the id.',
    );
  });

  it("answers the principal's object id or a user's UPN with where to find the appid", async () => {
    h = await startHarness();
    // The alert shows the caller's object id and UPN next to the appid: either may be pasted.
    await sightings([{ ip: '198.51.100.9', minutesAgo: 3 }]);
    const byObjectId = await ask(ARC.principalId);
    expect(byObjectId.text).toContain('no sightings');
    expect(byObjectId.text).toContain(
      "The history is kept by application id: the alert's *Identity (appid)*, not the object id",
    );
    const byUpn = await ask(ARC.upn);
    expect(byUpn.text).toContain('The history is kept by application id, not by user');
  });

  it('formats another window the same way', async () => {
    h = await startHarness({ windowMs: 36 * 3600 * 1000 });
    expect((await ask('11111111-2222-3333-4444-555555555555')).text).toContain(
      'no sightings in the last 36 hours',
    );
  });

  it('refuses something that is not an appid with usage help', async () => {
    h = await startHarness();
    for (const arg of ['urn:uuid:<script>', 'x'.repeat(129)]) {
      const reply = await ask(arg);
      expect(reply.text).toContain('is not an application id');
      expect(reply.text).not.toContain('<script>');
    }
  });

  it('lists an appid pasted with the quotes, backticks or brackets around it, or an invisible character', async () => {
    h = await startHarness();
    await sightings([{ ip: '198.51.100.9', minutesAgo: 3 }]);
    const g = ARC.appId;
    for (const typed of [
      `"${g}"`,
      `'${g.toUpperCase()}'`,
      `\`${g}\``,
      // Slack sends the `<` and `>` typed escaped.
      `&lt;${g}&gt;`,
      `“${g}”`,
      `${g},`,
      `("${g.replaceAll('-', '')}").`,
      `\u200b${g}\u200b`,
      `\u061c${g}\u180e`,
    ]) {
      const reply = await ask(typed);
      expect(reply.text, typed).not.toContain('no sightings');
      expect(ipsOf(reply), typed).toEqual(['198.51.100.9']);
    }
    for (const help of ['HELP', '--help', '-h']) {
      expect((await ask(help)).text, help).toContain('Usage: `/arc-history &lt;appid&gt;`');
    }
  });

  it('lists any identity that ingest accepts, such as one that is not a GUID', async () => {
    h = await startHarness();
    await sightings([{ ip: '198.51.100.9', minutesAgo: 3 }], 'svc@contoso.com');
    const reply = await ask('svc@contoso.com');
    expect(ipsOf(reply)).toEqual(['198.51.100.9']);
    // Slack sends `&`, `<` and `>` of the typed text escaped; `|` is no separator to the reply's buttons.
    await sightings([{ ip: '198.51.100.10', minutesAgo: 3 }], 'r&d|ops');
    await h.history.allow({ appId: 'r&d|ops', ip: '198.51.100.10', by: RESPONDER, reason: 'lab' });
    const escaped = await ask('r&amp;d|ops');
    expect(ipsOf(escaped)).toEqual(['198.51.100.10']);
    const [button] = buttonsOf(escaped);
    const { responseId } = await h.click(button!.action_id!, button!.value, RESPONDER, {
      ephemeral: true,
      channel: 'C0OTHER',
    });
    await h.fake.waitFor('the refreshed reply', () => h.fake.responsesTo(responseId).length === 1);
    expect(await h.history.getAllow('r&d|ops', '198.51.100.10')).toBeUndefined();
    // Markup typed as an id is shown as text.
    expect((await ask('<script>')).text).not.toContain('<script>');
  });

  it('lists each source IP most recent first with first/last seen, count, geo, AS and allowlist state', async () => {
    h = await startHarness();
    await sightings([
      { ip: '198.51.100.1', minutesAgo: 300 },
      { ip: '203.0.113.7', minutesAgo: 200 },
      { ip: '203.0.113.7', minutesAgo: 10 },
      { ip: '2001:db8::5', minutesAgo: 100 },
    ]);
    await h.history.allow({
      appId: ARC.appId,
      ip: '198.51.100.1',
      by: RESPONDER,
      reason: 'office VPN',
      until: Date.now() + 86_400_000,
    });
    const reply = await ask(ARC.appId.toUpperCase());
    expect(reply.response_type).toBe('ephemeral');
    // The same identity written without dashes gets the same answer.
    expect(ipsOf(await ask(ARC.appId.replaceAll('-', '')))).toEqual(ipsOf(reply));
    expect(ipsOf(await ask(`{${ARC.appId}}`))).toEqual(ipsOf(reply));
    // The reply and its buttons name the identity as the history keeps it: dashed, lower case.
    const undashed = await ask(ARC.appId.replaceAll('-', '').toUpperCase());
    expect(undashed.text + JSON.stringify(undashed.blocks)).not.toContain(
      ARC.appId.replaceAll('-', '').toUpperCase(),
    );
    expect(JSON.stringify(undashed.blocks)).toContain(ARC.appId);
    const rows = linesOf(reply);
    expect(rows).toHaveLength(3);
    expect(ipsOf(reply)).toEqual(['203.0.113.7', '2001:db8::5', '198.51.100.1']);
    const utc = (minutesAgo: number) =>
      new Date(Date.now() - minutesAgo * 60_000).toISOString().slice(0, 16).replace('T', ' ');
    // Count, first and last seen (UTC; the last one's time only when on the same day).
    expect(rows[0]).toContain('2×');
    expect(rows[0]).toMatch(/` 2× · \d{4}-\d\d-\d\d \d\d:\d\d → (\d{4}-\d\d-\d\d )?\d\d:\d\d · /);
    expect(rows[0]).toContain(utc(200).slice(0, 10));
    expect(rows[0]).toContain(utc(10).slice(11));
    expect(rows[0]).toContain('London, United Kingdom');
    expect(rows[0]).toContain('Not allowlisted');
    expect(rows[2]).toContain('1×');
    expect(rows[2]).toContain('Allowlisted until');
    expect(rows[2]).toContain('office VPN');
    // A remove button for the allowlisted pair only, for responders, and for others in the alert
    // channel only.
    expect(buttonsOf(reply).map((b) => b.value)).toEqual([`${ARC.appId}|198.51.100.1`]);
    const outsider = (await h.command(ARC.appId, OUTSIDER, 'C0OTHER')).json() as Reply;
    expect(JSON.stringify(outsider.blocks)).not.toContain(ACTION_IDS.removeAllow);
    expect(ipsOf(outsider)).toHaveLength(3);
  });

  it('lists all of 300 IPs, several per section, in the answer and follow-ups through the response_url', async () => {
    h = await startHarness();
    await sightings(manyIps(300));
    await h.history.allow({ appId: ARC.appId, ip: '198.18.1.1', by: RESPONDER, reason: 'CI pool' });
    const res = await h.command(ARC.appId, RESPONDER);
    const first = res.json() as Reply;
    // The rest arrive through the command's response_url, in order, privately.
    await h.fake.waitFor('the follow-ups', () => ipsOfAll().length === 300);
    function ipsOfAll() {
      return [first, ...(h.fake.responsesTo(res.responseId) as Reply[])].flatMap(ipsOf);
    }
    const replies = [first, ...(h.fake.responsesTo(res.responseId) as Reply[])];
    expect(replies.length).toBeGreaterThan(1);
    expect(replies.length).toBeLessThanOrEqual(HISTORY_MAX_MESSAGES);
    // Every IP once, most recent first.
    expect(ipsOfAll()).toEqual(manyIps(300).map((s) => s.ip));
    for (const r of replies) {
      expect(r.response_type).toBe('ephemeral');
      expect(checkMessageLimits({ text: r.text, blocks: r.blocks as never })).toEqual([]);
      // Packed: dozens of IPs per section, not one section per IP.
      expect(linesOf(r).length).toBeGreaterThan(
        3 * (r.blocks ?? []).filter((b) => b.type === 'section').length,
      );
    }
    expect(JSON.stringify(replies)).not.toContain('not shown');
    expect(first.text).toContain('300 source IPs');
    expect(JSON.stringify(first.blocks)).toContain(`Part 1 of ${replies.length}`);
    expect(JSON.stringify(replies.at(-1)!.blocks)).toContain(`Part ${replies.length} of ${replies.length}`);
    expect(buttonsOf(first).map((b) => b.value)).toEqual([`${ARC.appId}|198.18.1.1`]);
  });

  it('with 2,000 IPs fills five messages, then says how many it left out and how to list them', async () => {
    h = await startHarness();
    await sightings(manyIps(2000));
    const res = await h.command(ARC.appId, RESPONDER);
    const first = res.json() as Reply;
    await h.fake.waitFor(
      'four follow-ups',
      () => h.fake.responsesTo(res.responseId).length === HISTORY_MAX_MESSAGES - 1,
    );
    const replies = [first, ...(h.fake.responsesTo(res.responseId) as Reply[])];
    for (const r of replies)
      expect(checkMessageLimits({ text: r.text, blocks: r.blocks as never })).toEqual([]);
    const shown = replies.flatMap(ipsOf);
    expect(shown).toEqual(manyIps(shown.length).map((s) => s.ip));
    expect(shown.length).toBeGreaterThan(350);
    const left = 2000 - shown.length;
    const tail = JSON.stringify(replies.at(-1)!.blocks);
    expect(tail).toContain(`and ${left.toLocaleString('en-US')} older IPs not shown`);
    expect(tail).toContain(`/arc-history ${ARC.appId} ${shown.length + 1}`);
    expect(tail).toContain(`npm run history -- list ${ARC.appId}`);
    // Only the last message carries the cut.
    for (const r of replies.slice(0, -1)) expect(JSON.stringify(r.blocks)).not.toContain('not shown');

    // The command it names lists the rest from there.
    const next = await h.command(`${ARC.appId} ${shown.length + 1}`, RESPONDER);
    const rest = next.json() as Reply;
    expect(ipsOf(rest)[0]).toBe(manyIps(2000)[shown.length]!.ip);
    expect(JSON.stringify(rest.blocks)).toContain(`IPs ${(shown.length + 1).toLocaleString('en-US')}–`);
  }, 60_000);

  it('refuses a start that is not a number, and one past the end', async () => {
    h = await startHarness();
    await sightings([{ ip: '198.51.100.1', minutesAgo: 5 }]);
    expect((await ask(`${ARC.appId} first`)).text).toContain('is not the number of an IP to start at');
    expect((await ask(`${ARC.appId} 0`)).text).toContain('is not the number of an IP to start at');
    expect((await ask(`${ARC.appId} 5`)).text).toContain('start at most at 1');
  });

  it('lists allowlisted IPs with no sighting in the window, which still hold detections back, with their Remove buttons', async () => {
    h = await startHarness();
    await sightings([{ ip: '203.0.113.7', minutesAgo: 10 }]);
    await h.history.allow({ appId: ARC.appId, ip: '192.0.2.44', by: RESPONDER, reason: 'old office' });
    const reply = await ask(ARC.appId);
    const blocks = JSON.stringify(reply.blocks);
    expect(blocks).toContain('Allowlisted, with no sighting in the last 7 days');
    expect(blocks).toContain('`192.0.2.44` · :white_check_mark: Allowlisted with no expiry');
    expect(buttonsOf(reply).map((b) => b.value)).toEqual([`${ARC.appId}|192.0.2.44`]);
    expect(checkMessageLimits(reply as never)).toEqual([]);

    // An identity with no sighting in the window shows them too, and its entry can be removed.
    const other = '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f21';
    await h.history.allow({ appId: other, ip: '192.0.2.45', by: RESPONDER, reason: 'lab' });
    const alone = await ask(other);
    expect(alone.text).toContain('no sightings in the last 7 days');
    expect(alone.text).toContain('192.0.2.45');
    const [button] = buttonsOf(alone);
    const { responseId } = await h.click(ACTION_IDS.removeAllow, button!.value, RESPONDER, {
      ephemeral: true,
      channel: 'C0OTHER',
    });
    await h.fake.waitFor('the refreshed reply', () => h.fake.responsesTo(responseId).length === 1);
    const refreshed = h.fake.responsesTo(responseId)[0]!;
    expect(String(refreshed.text)).toContain('no sightings in the last 7 days');
    expect(JSON.stringify(refreshed)).not.toContain('192.0.2.45');
    expect(await h.history.getAllow(other, '192.0.2.45')).toBeUndefined();
  });

  it('audits a removal that another click made first as not-found, without an entry it did not remove', async () => {
    h = await startHarness();
    await h.history.allow({ appId: ARC.appId, ip: '192.0.2.46', by: RESPONDER, reason: 'lab' });
    const [button] = buttonsOf(await ask(ARC.appId));
    // The other click (a double click, two responders) removes it between this one's read and removal.
    const getAllow = h.history.getAllow.bind(h.history);
    h.history.getAllow = async (appId, ip) => {
      const entry = await getAllow(appId, ip);
      await h.history.unallow(appId, ip);
      return entry;
    };
    await h.click(ACTION_IDS.removeAllow, button!.value, RESPONDER, { ephemeral: true, channel: 'C0OTHER' });
    await vi.waitFor(async () => expect(await listAudit(h.store)).toHaveLength(1));
    const [record] = await listAudit(h.store);
    expect(record).toMatchObject({ action: 'remove-allowlist', result: 'not-found' });
    expect(record).not.toHaveProperty('detail');
  });

  it('gives each Remove button of a reply its own action_id (Slack refuses repeats), and each removes its pair', async () => {
    h = await startHarness();
    await sightings([
      { ip: '198.51.100.1', minutesAgo: 5 },
      { ip: '198.51.100.2', minutesAgo: 6 },
    ]);
    for (const ip of ['198.51.100.1', '198.51.100.2', '192.0.2.46']) {
      await h.history.allow({ appId: ARC.appId, ip, by: RESPONDER, reason: 'VPN' });
    }
    const reply = await ask(ARC.appId);
    const buttons = buttonsOf(reply);
    expect(buttons.map((b) => b.action_id)).toEqual([
      `${ACTION_IDS.removeAllow}:0`,
      `${ACTION_IDS.removeAllow}:1`,
      `${ACTION_IDS.removeAllow}:2`,
    ]);
    expect(checkMessageLimits(reply as never)).toEqual([]);
    // The second button, pressed with its own id, removes its own pair only.
    const { responseId } = await h.click(buttons[1]!.action_id!, buttons[1]!.value, RESPONDER, {
      ephemeral: true,
      channel: 'C0OTHER',
    });
    await h.fake.waitFor('the refreshed reply', () => h.fake.responsesTo(responseId).length === 1);
    expect(await h.history.getAllow(ARC.appId, '198.51.100.2')).toBeUndefined();
    expect(await h.history.getAllow(ARC.appId, '198.51.100.1')).toBeDefined();
    expect(await h.history.getAllow(ARC.appId, '192.0.2.46')).toBeDefined();
    const refreshed = h.fake.responsesTo(responseId)[0] as Reply;
    expect(buttonsOf(refreshed).map((b) => b.action_id)).toEqual([
      `${ACTION_IDS.removeAllow}:0`,
      `${ACTION_IDS.removeAllow}:1`,
    ]);
  });

  it('removes an allowlist entry from the reply (responders anywhere) and refreshes it; a second click finds none', async () => {
    h = await startHarness();
    await sightings([{ ip: '198.51.100.1', minutesAgo: 5 }]);
    await h.history.allow({ appId: ARC.appId, ip: '198.51.100.1', by: RESPONDER, reason: 'VPN' });
    const reply = await ask(ARC.appId);
    const button = buttonsOf(reply)[0]!;

    const refused = await h.click(ACTION_IDS.removeAllow, button.value, OUTSIDER, {
      ephemeral: true,
      channel: 'C0OTHER',
    });
    await h.fake.waitFor('the refusal', () => h.fake.responsesTo(refused.responseId).length === 1);
    expect(await h.history.getAllow(ARC.appId, '198.51.100.1')).toBeDefined();

    const { responseId } = await h.click(ACTION_IDS.removeAllow, button.value, RESPONDER, {
      ephemeral: true,
      channel: 'C0OTHER',
    });
    await h.fake.waitFor('the refreshed reply', () => h.fake.responsesTo(responseId).length === 1);
    const refreshed = h.fake.responsesTo(responseId)[0]!;
    expect(refreshed).toMatchObject({ replace_original: true, response_type: 'ephemeral' });
    expect(JSON.stringify(refreshed.blocks)).toContain('Not allowlisted');
    expect(await h.history.getAllow(ARC.appId, '198.51.100.1')).toBeUndefined();
    const audit = (await listAudit(h.store)).map((e) => [e.actor, e.action, e.result]);
    expect(audit).toEqual([
      [OUTSIDER, 'remove-allowlist', 'refused'],
      [RESPONDER, 'remove-allowlist', 'ok'],
    ]);

    // A double click: the entry is gone already, and the audit says so.
    const again = await h.click(ACTION_IDS.removeAllow, button.value, RESPONDER, {
      ephemeral: true,
      channel: 'C0OTHER',
    });
    await h.fake.waitFor('the second refresh', () => h.fake.responsesTo(again.responseId).length === 1);
    expect(JSON.stringify(h.fake.responsesTo(again.responseId)[0]!.blocks)).toContain('Not allowlisted');
    expect((await listAudit(h.store)).map((e) => [e.actor, e.action, e.result]).at(-1)).toEqual([
      RESPONDER,
      'remove-allowlist',
      'not-found',
    ]);
  });

  it("names the identity's Revokes in force first (whom, through which alert, by whom): a hand-over sees them", async () => {
    h = await startHarness();
    const revoked = async (ip: string, over: Parameters<typeof sampleAlert>[1], undone = false) => {
      const alert = sampleAlert(
        { id: `al${ip.replaceAll('.', '')}` },
        { appId: ARC.appId, sourceIp: ip, ...over },
      );
      await h.chat.sink.post(alert);
      const at = Date.now() - 60_000;
      await updateAlertState(h.store, alert.id, (s) => {
        s.revoke = { status: 'done', mode: 'live', by: RESPONDER, at, finishedAt: at + 5000 };
        if (undone) s.undo = { status: 'done', mode: 'live', by: OUTSIDER, at: at + 9000 };
      });
      await h.store.addMembers(revokedAlertsKey(ARC.appId), [alert.id]);
      return (await loadAlertState(h.store, alert.id))!;
    };
    await sightings([{ ip: '198.51.100.1', minutesAgo: 5 }]);
    const sp = await revoked('198.51.100.1', {});
    const undone = await revoked('198.51.100.2', {}, true);
    const user = await revoked('198.51.100.3', {
      principalType: 'User',
      evidence: { principalType: 'User' },
      user: { upn: 'alice@contoso.example' },
    });
    const reply = await ask(ARC.appId);
    const note = (reply.blocks ?? []).find((b) => b.type === 'context') as unknown as {
      elements: Array<{ text: string }>;
    };
    const lines = note.elements[0]!.text.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines.join('\n')).toContain(`/p${sp.ts!.replace('.', '')}|`);
    expect(lines.join('\n')).toContain(`by <@${RESPONDER}>`);
    const forAlice = lines.find((l) => l.includes('*Revoked* for alice@contoso.example through'));
    expect(forAlice).toContain(`/p${user.ts!.replace('.', '')}|`);
    // The undone one is not named.
    expect(lines.join('\n')).not.toContain(`/p${undone.ts!.replace('.', '')}|`);
    // With no sighting in the window, the reply still says so.
    const other = '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f99';
    const empty = sampleAlert({ id: 'alempty' }, { appId: other, sourceIp: '198.51.100.9' });
    await h.chat.sink.post(empty);
    await updateAlertState(h.store, empty.id, (s) => {
      s.revoke = { status: 'done', mode: 'live', by: RESPONDER, at: Date.now(), finishedAt: Date.now() };
    });
    await h.store.addMembers(revokedAlertsKey(other), [empty.id]);
    expect(JSON.stringify(await ask(other))).toContain('*Revoked* through');
  });

  it('names at most five Revokes in force, the latest first, whatever order they were listed in', async () => {
    h = await startHarness();
    await sightings([{ ip: '198.51.100.1', minutesAgo: 5 }]);
    const base = Date.now() - 3_600_000;
    // Six Revokes, finished a minute apart; listed out of order.
    const minutes = [3, 0, 5, 1, 4, 2];
    const ts = new Map<number, string>();
    for (const m of minutes) {
      const alert = sampleAlert(
        { id: `alorder${m}` },
        { appId: ARC.appId, sourceIp: `198.51.100.${10 + m}` },
      );
      await h.chat.sink.post(alert);
      const at = base + m * 60_000;
      await updateAlertState(h.store, alert.id, (st) => {
        st.revoke = { status: 'done', mode: 'live', by: RESPONDER, at, finishedAt: at + 1000 };
      });
      await h.store.addMembers(revokedAlertsKey(ARC.appId), [alert.id]);
      ts.set(m, (await loadAlertState(h.store, alert.id))!.ts!.replace('.', ''));
    }
    const reply = await ask(ARC.appId);
    const note = (reply.blocks ?? []).find((b) => b.type === 'context') as unknown as {
      elements: Array<{ text: string }>;
    };
    const lines = note.elements[0]!.text.split('\n');
    // The latest five, newest first; the oldest (minute 0) is left out.
    expect(lines.map((l) => [...ts].find(([, t]) => l.includes(`/p${t}|`))?.[0])).toEqual([5, 4, 3, 2, 1]);
  });

  it('tells the alert the entry was marked benign from, in its message and its thread', async () => {
    h = await startHarness();
    const alert = sampleAlert({}, { appId: ARC.appId, sourceIp: '198.51.100.1' });
    await h.chat.sink.post(alert);
    await sightings([{ ip: '198.51.100.1', minutesAgo: 5 }]);
    await updateAlertState(h.store, alert.id, (s) => {
      s.benign = { by: OUTSIDER, reason: 'VPN', at: Date.now() };
    });
    await h.history.allow({
      appId: ARC.appId,
      ip: '198.51.100.1',
      by: OUTSIDER,
      reason: 'VPN',
      alertId: alert.id,
    });
    const button = buttonsOf(await ask(ARC.appId))[0]!;
    await h.click(ACTION_IDS.removeAllow, button.value, RESPONDER, { ephemeral: true, channel: 'C0OTHER' });
    const thread = () => h.fake.callsOf('chat.postMessage').filter((c) => c.args.thread_ts);
    await h.fake.waitFor('the thread line', () => thread().length === 1);
    expect(String(thread()[0]!.args.text)).toContain(`allowlist entry removed by <@${RESPONDER}>`);
    const update = JSON.stringify(h.fake.callsOf('chat.update').at(-1)?.args.blocks);
    expect(update).toContain(`Allowlist entry removed by <@${RESPONDER}>`);
    expect(update).toContain('detections of this pair are no longer allowlisted');
    expect(update).not.toContain('Mark benign (change)');
    expect((await loadAlertState(h.store, alert.id))?.benign?.removed?.by).toBe(RESPONDER);
  });

  it('with SLACK_RESPONDERS not set, offers removal to anyone in the alert channel, and only there', async () => {
    h = await startHarness({ responders: '' });
    await sightings([{ ip: '198.51.100.1', minutesAgo: 5 }]);
    await h.history.allow({ appId: ARC.appId, ip: '198.51.100.1', by: RESPONDER, reason: 'VPN' });
    const elsewhere = (await h.command(ARC.appId, OUTSIDER, 'C0OTHER')).json() as Reply;
    expect(buttonsOf(elsewhere)).toEqual([]);
    expect(ipsOf(elsewhere)).toEqual(['198.51.100.1']);
    const button = buttonsOf((await h.command(ARC.appId, OUTSIDER)).json() as Reply)[0]!;

    const refused = await h.click(ACTION_IDS.removeAllow, button.value, OUTSIDER, {
      ephemeral: true,
      channel: 'C0OTHER',
    });
    await h.fake.waitFor('the refusal', () => h.fake.responsesTo(refused.responseId).length === 1);
    expect(String(h.fake.responsesTo(refused.responseId)[0]!.text)).toContain(
      'works only in the alert channel',
    );
    expect(await h.history.getAllow(ARC.appId, '198.51.100.1')).toBeDefined();

    const { responseId } = await h.click(ACTION_IDS.removeAllow, button.value, OUTSIDER, { ephemeral: true });
    await h.fake.waitFor('the refreshed reply', () => h.fake.responsesTo(responseId).length === 1);
    expect(await h.history.getAllow(ARC.appId, '198.51.100.1')).toBeUndefined();
    expect((await listAudit(h.store)).map((e) => [e.actor, e.action, e.result])).toEqual([
      [OUTSIDER, 'remove-allowlist', 'refused'],
      [OUTSIDER, 'remove-allowlist', 'ok'],
    ]);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { createEngine } from '../../src/core/engine.ts';
import { ACTION_IDS } from '../../src/slack/ids.ts';
import { ARC, arcEvent } from '../support/samples.ts';
import { type Harness, OUTSIDER, RESPONDER, startHarness } from './harness.ts';

let h: Harness;
afterEach(async () => h?.close());

type Reply = {
  response_type: string;
  text: string;
  blocks?: Array<{ type: string; accessory?: { action_id: string; value: string } }>;
};

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
    expect(reply.text).toContain('Usage: `/arc-history <appid>`');
    expect(reply.text).toContain('last 7 days');
  });

  it('says "no sightings in the last 7 days" for an unknown appid', async () => {
    h = await startHarness();
    const reply = await ask('11111111-2222-3333-4444-555555555555');
    expect(reply).toMatchObject({ response_type: 'ephemeral' });
    expect(reply.text).toContain('no sightings in the last 7 days');
  });

  it('formats another window the same way', async () => {
    h = await startHarness({ windowMs: 36 * 3600 * 1000 });
    expect((await ask('11111111-2222-3333-4444-555555555555')).text).toContain(
      'no sightings in the last 36 hours',
    );
  });

  it('refuses something that is not an appid with usage help', async () => {
    h = await startHarness();
    const reply = await ask('<script>');
    expect(reply.text).toContain('is not an application id');
    expect(reply.text).not.toContain('<script>');
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
    const rows = (reply.blocks ?? [])
      .filter((b) => b.type === 'section')
      .slice(1)
      .map((b) => JSON.stringify(b));
    expect(rows).toHaveLength(3);
    expect(rows[0]).toContain('203.0.113.7');
    expect(rows[0]).toContain('2 times');
    expect(rows[1]).toContain('2001:db8::5');
    expect(rows[2]).toContain('198.51.100.1');
    expect(rows[2]).toContain('Allowlisted until');
    expect(rows[2]).toContain('office VPN');
    expect(rows[0]).toContain('Not allowlisted');
    expect(rows[0]).toContain('First seen <!date^');
    expect(rows[0]).toContain('London, United Kingdom');
    // A remove button for the allowlisted pair, for responders only.
    expect(rows[2]).toContain(ACTION_IDS.removeAllow);
    expect(rows[0]).not.toContain(ACTION_IDS.removeAllow);
    const outsider = await ask(ARC.appId, OUTSIDER);
    expect(JSON.stringify(outsider.blocks)).not.toContain(ACTION_IDS.removeAllow);
  });

  it('cuts long histories and says how many IPs it left out', async () => {
    h = await startHarness();
    await sightings([...Array(55)].map((_, i) => ({ ip: `198.51.100.${i + 1}`, minutesAgo: i + 1 })));
    const reply = await ask(ARC.appId);
    expect((reply.blocks ?? []).length).toBeLessThanOrEqual(50);
    expect(JSON.stringify(reply.blocks)).toContain('and 15 older IPs not shown');
    expect(JSON.stringify(reply.blocks)).toContain('198.51.100.1`');
    expect(JSON.stringify(reply.blocks)).not.toContain('198.51.100.55`');
  });

  it('removes an allowlist entry from the reply (responders only) and refreshes it', async () => {
    h = await startHarness();
    await sightings([{ ip: '198.51.100.1', minutesAgo: 5 }]);
    await h.history.allow({ appId: ARC.appId, ip: '198.51.100.1', by: RESPONDER, reason: 'VPN' });
    const reply = await ask(ARC.appId);
    const button = (reply.blocks ?? []).find((b) => b.accessory?.action_id === ACTION_IDS.removeAllow)!
      .accessory!;

    const refused = await h.click(ACTION_IDS.removeAllow, button.value, OUTSIDER, { ephemeral: true });
    await h.fake.waitFor('the refusal', () => h.fake.responsesTo(refused.responseId).length === 1);
    expect(await h.history.getAllow(ARC.appId, '198.51.100.1')).toBeDefined();

    const { responseId } = await h.click(ACTION_IDS.removeAllow, button.value, RESPONDER, {
      ephemeral: true,
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
  });
});

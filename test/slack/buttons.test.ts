import { afterEach, describe, expect, it, vi } from 'vitest';
import { listAudit } from '../../src/core/audit.ts';
import { allowKey } from '../../src/core/pair.ts';
import { FAILED_NOTE, STORE_DOWN_NOTE } from '../../src/slack/app.ts';
import { ACTION_IDS, BENIGN_MODAL, CALLBACK_IDS } from '../../src/slack/ids.ts';
import { StoreError } from '../../src/store/store-error.ts';
import {
  benignValues,
  CHANNEL,
  GROUP_MEMBER,
  type Harness,
  OUTSIDER,
  RESPONDER,
  startHarness,
} from './harness.ts';
import { sampleAlert } from './sample-alert.ts';

let h: Harness;
afterEach(async () => h?.close());

const alert = sampleAlert();
const threadPosts = () => h.fake.callsOf('chat.postMessage').filter((c) => c.args.thread_ts);
const lastUpdateText = () => JSON.stringify(h.fake.callsOf('chat.update').at(-1)?.args.blocks);

async function posted(opts: Parameters<typeof startHarness>[0] = {}) {
  h = await startHarness(opts);
  await h.chat.sink.post(alert);
}

describe('who may press the buttons', () => {
  it.each([
    [ACTION_IDS.revoke, 'revoke', 'Revoke'],
    [ACTION_IDS.undoRevoke, 'undo', 'Undo'],
  ])(
    'refuses %s from someone not in SLACK_RESPONDERS, privately, with an audit entry',
    async (actionId, action, verb) => {
      await posted();
      const { status, responseId } = await h.click(actionId, alert.id, OUTSIDER);
      expect(status).toBe(200);
      await h.fake.waitFor('the refusal', () => h.fake.responsesTo(responseId).length === 1);
      const [refusal] = h.fake.responsesTo(responseId);
      expect(refusal).toMatchObject({ response_type: 'ephemeral', replace_original: false });
      expect(String(refusal!.text)).toContain(`Only responders (SLACK_RESPONDERS) may use ${verb}`);
      const audit = await listAudit(h.store, alert.id);
      expect(audit).toMatchObject([
        { actor: OUTSIDER, action, result: 'refused', appId: alert.detection.appId },
      ]);
      expect(h.fake.callsOf('views.open')).toEqual([]);
      expect(h.fake.callsOf('chat.update')).toEqual([]);
    },
  );

  it.each([
    [ACTION_IDS.revoke, 'revoke', 'Revoke'],
    [ACTION_IDS.undoRevoke, 'undo', 'Undo'],
    [ACTION_IDS.removeBroadRoles, 'remove-broad-roles', 'Remove broad roles'],
  ])(
    'refuses %s to everyone when SLACK_RESPONDERS is not set, saying so, audited',
    async (actionId, action, verb) => {
      await posted({ responders: '' });
      const { responseId } = await h.click(actionId, alert.id, RESPONDER);
      await h.fake.waitFor('the refusal', () => h.fake.responsesTo(responseId).length === 1);
      expect(String(h.fake.responsesTo(responseId)[0]!.text)).toContain(
        `Nobody may use ${verb} yet: SLACK_RESPONDERS is not set`,
      );
      expect(await listAudit(h.store, alert.id)).toMatchObject([
        { actor: RESPONDER, action, result: 'refused', detail: 'SLACK_RESPONDERS is not set' },
      ]);
      expect(h.fake.callsOf('chat.update')).toEqual([]);
    },
  );

  it('accepts members of a responder user group, looking the group up once (cached)', async () => {
    await posted();
    // Outside the alert channel, where only responders may mark benign.
    await h.click(ACTION_IDS.markBenign, alert.id, GROUP_MEMBER, { channel: 'C0ELSEWHERE' });
    await h.click(ACTION_IDS.markBenign, alert.id, GROUP_MEMBER, { channel: 'C0ELSEWHERE' });
    await h.fake.waitFor('two modals', () => h.fake.callsOf('views.open').length === 2);
    const lookups = h.fake.callsOf('usergroups.users.list');
    expect(lookups).toHaveLength(1);
    expect(lookups[0]!.args.usergroup).toBe('SRESPONDERS');
  });

  /** A group member's Revoke while the group's lookup fails with `error`: the refusal's text. */
  async function refusalWhenLookupFails(error: string): Promise<string> {
    await posted();
    h.fake.script('usergroups.users.list', { error });
    const { responseId } = await h.click(ACTION_IDS.revoke, alert.id, GROUP_MEMBER);
    await h.fake.waitFor('the refusal', () => h.fake.responsesTo(responseId).length === 1);
    return String(h.fake.responsesTo(responseId)[0]!.text);
  }

  it('refuses when the user-group lookup fails (fails closed)', async () => {
    const refusal = await refusalWhenLookupFails('missing_scope');
    expect(refusal).toContain('Only responders');
    // It says why a member of the group is refused, not merely that they are no responder.
    expect(refusal).toContain(
      'The members of <!subteam^SRESPONDERS> could not be read from Slack just now (the app lacks the usergroups:read scope)',
    );
  });

  it('names a user group Slack does not know at start, in the warnings, and logs it once however often it is looked up', async () => {
    h = await startHarness();
    h.fake.script('usergroups.users.list', { error: 'no_such_subteam' }, { error: 'no_such_subteam' });
    await h.chat.start?.();
    expect(h.fake.callsOf('usergroups.users.list')).toHaveLength(1);
    expect(h.chat.warnings?.()).toEqual([
      expect.stringMatching(
        /^SLACK_RESPONDERS names user group SRESPONDERS, which Slack does not know \(no_such_subteam\)/,
      ),
    ]);
    await h.chat.sink.post(alert);
    const { responseId } = await h.click(ACTION_IDS.revoke, alert.id, GROUP_MEMBER);
    await h.fake.waitFor('the refusal', () => h.fake.responsesTo(responseId).length === 1);
    const said = h.logs.filter((l) => l.includes('SLACK_RESPONDERS names a user group Slack does not know'));
    expect(said.map((l) => (JSON.parse(l) as { level: number }).level)).toEqual([40, 20]);
    // Once Slack lists the group (the id was corrected), the warning is gone.
    await h.click(ACTION_IDS.revoke, alert.id, GROUP_MEMBER);
    await vi.waitFor(() => expect(h.chat.warnings?.()).toEqual([]));
  });

  it.each([
    [
      'no_such_subteam',
      'SLACK_RESPONDERS names a user group that Slack does not know (SRESPONDERS: no_such_subteam)',
    ],
    ['fatal_error', 'could not be read from Slack just now (Slack answered fatal_error)'],
  ])("names Slack's answer %s in the refusal", async (error, text) => {
    expect(await refusalWhenLookupFails(error)).toContain(text);
  });
});

describe('a slow user-group lookup', () => {
  it('never delays Mark benign in the alert channel (no lookup), and refuses a group member Revoke within the budget, saying why', async () => {
    await posted({ tuning: { responderLookupBudgetMs: 200 } });
    h.fake.script('usergroups.users.list', { delayMs: 3000 });
    const started = Date.now();
    await h.click(ACTION_IDS.markBenign, alert.id, OUTSIDER, { channel: CHANNEL });
    await h.fake.waitFor('the modal', () => h.fake.callsOf('views.open').length === 1);
    expect(h.fake.callsOf('usergroups.users.list')).toHaveLength(0);

    const { responseId } = await h.click(ACTION_IDS.revoke, alert.id, GROUP_MEMBER);
    await h.fake.waitFor('the refusal', () => h.fake.responsesTo(responseId).length === 1);
    // Answered on the budget, well before the lookup's 3 s (a deadline, not a timing assertion).
    expect(Date.now() - started).toBeLessThan(2500);
    expect(String(h.fake.responsesTo(responseId)[0]!.text)).toContain(
      'The members of <!subteam^SRESPONDERS> did not arrive from Slack in time, so membership through that group could not be checked: press again in a moment.',
    );
    expect(await listAudit(h.store, alert.id)).toContainEqual(
      expect.objectContaining({
        action: 'revoke',
        result: 'refused',
        detail:
          'not in SLACK_RESPONDERS as far as could be checked: the members of SRESPONDERS did not arrive from Slack in time',
      }),
    );
    // The lookup went on: once it is in, the member is a responder.
    await h.fake.waitFor('the lookup', () => h.fake.callsOf('usergroups.users.list').length === 1);
    await new Promise((r) => setTimeout(r, 3200));
    const again = await h.click(ACTION_IDS.revoke, alert.id, GROUP_MEMBER);
    await h.fake.waitFor('the run', () => h.fake.callsOf('chat.update').length > 0);
    expect(
      h.fake
        .responsesTo(again.responseId)
        .map((r) => String(r.text))
        .join(),
    ).not.toContain('Only responders');
  });
});

describe('Mark benign by a responder in the alert channel', () => {
  it('is audited as a responder, although no lookup was needed to allow it', async () => {
    await posted();
    await h.click(ACTION_IDS.markBenign, alert.id, RESPONDER, { channel: CHANNEL });
    await h.fake.waitFor('the modal', () => h.fake.callsOf('views.open').length === 1);
    const view = h.fake.callsOf('views.open')[0]!.args.view as { private_metadata: string };
    const values = {
      [BENIGN_MODAL.reasonBlock]: {
        [BENIGN_MODAL.reasonInput]: { type: 'plain_text_input', value: 'office VPN' },
      },
      [BENIGN_MODAL.expiryBlock]: {
        [BENIGN_MODAL.expiryInput]: { type: 'static_select', selected_option: { value: '7d' } },
      },
    };
    await h.submit(CALLBACK_IDS.markBenign, RESPONDER, view.private_metadata, values);
    await vi.waitFor(async () =>
      expect(await listAudit(h.store, alert.id)).toMatchObject([
        { actor: RESPONDER, action: 'mark-benign', result: 'ok', detail: { as: 'responder' } },
      ]),
    );
    expect(h.fake.callsOf('usergroups.users.list')).toEqual([]);
  });
});

describe('Mark benign whose alert record cannot take the mark', () => {
  it('audits the entry it made and says so in the thread', async () => {
    await posted();
    await h.click(ACTION_IDS.markBenign, alert.id, RESPONDER, { channel: CHANNEL });
    await h.fake.waitFor('the modal', () => h.fake.callsOf('views.open').length === 1);
    const view = h.fake.callsOf('views.open')[0]!.args.view as { private_metadata: string };
    // From now on the store refuses the alert record's lock (a connection lost mid-submission).
    const claim = h.store.claim.bind(h.store);
    h.store.claim = async (key, ttl) => {
      if (key.startsWith('alert-state-lock:')) throw new StoreError('STORE_UNREACHABLE', 'connection lost');
      return claim(key, ttl);
    };
    await h.submit(
      CALLBACK_IDS.markBenign,
      RESPONDER,
      view.private_metadata,
      benignValues('office VPN', '7d'),
    );
    await vi.waitFor(async () =>
      expect(await listAudit(h.store, alert.id)).toMatchObject([
        { actor: RESPONDER, action: 'mark-benign', result: 'ok' },
      ]),
    );
    expect(await h.history.getAllow(alert.detection.appId, alert.detection.sourceIp)).toMatchObject({
      reason: 'office VPN',
    });
    await h.fake.waitFor('the audit line', () =>
      threadPosts().some((c) => String(c.args.text).includes('office VPN')),
    );
  });
});

describe('an audit record the store cannot take', () => {
  /** From now on the store refuses audit records (and only them). */
  function auditStoreFails() {
    const set = h.store.set.bind(h.store);
    h.store.set = (async (key: string, ...rest: unknown[]) => {
      if (key.startsWith('audit:')) throw new Error('the store is read-only');
      return (set as (...a: unknown[]) => Promise<unknown>)(key, ...rest);
    }) as typeof h.store.set;
  }

  it('still tells a refused press why, privately', async () => {
    await posted();
    auditStoreFails();
    const { status, responseId } = await h.click(ACTION_IDS.revoke, alert.id, OUTSIDER);
    expect(status).toBe(200);
    await h.fake.waitFor('the refusal', () => h.fake.responsesTo(responseId).length === 1);
    const [refusal] = h.fake.responsesTo(responseId);
    expect(refusal).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    expect(String(refusal!.text)).toContain('Only responders (SLACK_RESPONDERS) may use Revoke');
  });

  it('leaves a finished Revoke reported in its alert and thread, and the record in the log', async () => {
    await posted();
    auditStoreFails();
    await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await h.fake.waitFor('the thread audit', () => threadPosts().length === 1);
    expect(String(threadPosts()[0]!.args.text)).toContain('dry-run: nothing was changed');
    expect(lastUpdateText()).toContain('Dry-run');
    expect(h.logs.join('')).toContain('revoke by UALICE: dry-run (its audit record could not be stored)');
  });

  it('leaves a Mark benign shown in its alert and thread', async () => {
    await posted();
    await h.click(ACTION_IDS.markBenign, alert.id, RESPONDER, { channel: CHANNEL });
    await h.fake.waitFor('the modal', () => h.fake.callsOf('views.open').length === 1);
    const view = h.fake.callsOf('views.open')[0]!.args.view as { private_metadata: string };
    auditStoreFails();
    await h.submit(CALLBACK_IDS.markBenign, RESPONDER, view.private_metadata, {
      [BENIGN_MODAL.reasonBlock]: {
        [BENIGN_MODAL.reasonInput]: { type: 'plain_text_input', value: 'office VPN' },
      },
      [BENIGN_MODAL.expiryBlock]: {
        [BENIGN_MODAL.expiryInput]: { type: 'static_select', selected_option: { value: '7d' } },
      },
    });
    await h.fake.waitFor('the thread audit', () => threadPosts().length === 1);
    expect(lastUpdateText()).toContain('office VPN');
    expect(await h.history.getAllow(alert.detection.appId, alert.detection.sourceIp)).toMatchObject({
      reason: 'office VPN',
    });
  });
});

describe('Mark benign with SLACK_RESPONDERS not set', () => {
  const values = {
    [BENIGN_MODAL.reasonBlock]: {
      [BENIGN_MODAL.reasonInput]: { type: 'plain_text_input', value: 'office VPN' },
    },
    [BENIGN_MODAL.expiryBlock]: {
      [BENIGN_MODAL.expiryInput]: { type: 'static_select', selected_option: { value: '7d' } },
    },
  };

  it('lets any member of the alert channel mark it benign there, audited with who, why and until', async () => {
    await posted({ responders: '' });
    await h.click(ACTION_IDS.markBenign, alert.id, OUTSIDER, { channel: CHANNEL });
    await h.fake.waitFor('the modal', () => h.fake.callsOf('views.open').length === 1);
    const view = h.fake.callsOf('views.open')[0]!.args.view as { private_metadata: string };
    const res = await h.submit(CALLBACK_IDS.markBenign, OUTSIDER, view.private_metadata, values);
    expect(res.status).toBe(200);
    expect(res.text).toBe('');
    await h.fake.waitFor('the thread audit', () => threadPosts().length === 1);
    const entry = await h.history.getAllow(alert.detection.appId, alert.detection.sourceIp);
    expect(entry).toMatchObject({ by: OUTSIDER, reason: 'office VPN', alertId: alert.id });
    expect(entry!.until).toBeGreaterThan(Date.now());
    expect(lastUpdateText()).toContain(`Marked benign* by <@${OUTSIDER}>`);
    expect(lastUpdateText()).toContain('office VPN');
    expect(lastUpdateText()).toContain('until <!date^');
    expect(String(threadPosts()[0]!.args.text)).toContain(`<@${OUTSIDER}>`);
    expect(await listAudit(h.store, alert.id)).toMatchObject([
      {
        actor: OUTSIDER,
        action: 'mark-benign',
        result: 'ok',
        detail: { reason: 'office VPN', expiry: '7d', until: entry!.until, as: 'alert-channel' },
      },
    ]);
  });

  it('refuses a press from another channel (a copy of the alert elsewhere), privately, audited', async () => {
    await posted({ responders: '' });
    const { responseId } = await h.click(ACTION_IDS.markBenign, alert.id, OUTSIDER, { channel: 'C0OTHER' });
    await h.fake.waitFor('the refusal', () => h.fake.responsesTo(responseId).length === 1);
    const refusal = String(h.fake.responsesTo(responseId)[0]!.text);
    expect(refusal).toContain(`Mark benign works only in the alert channel <#${CHANNEL}>`);
    expect(refusal).toContain('SLACK_RESPONDERS is not set');
    expect(h.fake.callsOf('views.open')).toEqual([]);
    expect(await listAudit(h.store, alert.id)).toMatchObject([
      { actor: OUTSIDER, action: 'mark-benign', result: 'refused' },
    ]);
  });

  it('refuses a submission of a modal that was not opened from the alert channel', async () => {
    await posted({ responders: '' });
    const res = await h.submit(
      CALLBACK_IDS.markBenign,
      OUTSIDER,
      JSON.stringify({ alertId: alert.id }),
      values,
    );
    expect(res.json()).toMatchObject({ response_action: 'errors' });
    expect(await h.history.getAllow(alert.detection.appId, alert.detection.sourceIp)).toBeUndefined();
    expect((await listAudit(h.store, alert.id)).map((e) => e.result)).toEqual(['refused']);
  });

  it('with SLACK_RESPONDERS set (it guards Revoke), a channel member who is not a responder may still mark benign', async () => {
    await posted();
    await h.click(ACTION_IDS.markBenign, alert.id, OUTSIDER, { channel: CHANNEL });
    await h.fake.waitFor('the modal', () => h.fake.callsOf('views.open').length === 1);
    const view = h.fake.callsOf('views.open')[0]!.args.view as { private_metadata: string };
    const res = await h.submit(CALLBACK_IDS.markBenign, OUTSIDER, view.private_metadata, values);
    expect(res.status).toBe(200);
    expect(await h.history.getAllow(alert.detection.appId, alert.detection.sourceIp)).toMatchObject({
      by: OUTSIDER,
      reason: 'office VPN',
    });
    expect(await listAudit(h.store, alert.id)).toMatchObject([
      { actor: OUTSIDER, action: 'mark-benign', result: 'ok', detail: { as: 'alert-channel' } },
    ]);
  });

  it('with SLACK_ALLOWLIST=responders, refuses a channel member who is not a responder, and the submission too', async () => {
    await posted({ allowlist: 'responders' });
    const { responseId } = await h.click(ACTION_IDS.markBenign, alert.id, OUTSIDER, { channel: CHANNEL });
    await h.fake.waitFor('the refusal', () => h.fake.responsesTo(responseId).length === 1);
    expect(String(h.fake.responsesTo(responseId)[0]!.text)).toContain(
      'Only responders (SLACK_RESPONDERS) may use Mark benign',
    );
    expect(h.fake.callsOf('views.open')).toEqual([]);
    const metadata = JSON.stringify({ alertId: alert.id, channel: CHANNEL });
    const res = await h.submit(CALLBACK_IDS.markBenign, OUTSIDER, metadata, values);
    expect(res.json()).toMatchObject({
      response_action: 'errors',
      errors: { [BENIGN_MODAL.reasonBlock]: 'Only responders (SLACK_RESPONDERS) may mark alerts benign.' },
    });
    expect(await h.history.getAllow(alert.detection.appId, alert.detection.sourceIp)).toBeUndefined();
  });

  it('with SLACK_RESPONDERS set, refuses a non-responder pressing from another channel, saying where it works', async () => {
    await posted();
    const { responseId } = await h.click(ACTION_IDS.markBenign, alert.id, OUTSIDER, { channel: 'C0OTHER' });
    await h.fake.waitFor('the refusal', () => h.fake.responsesTo(responseId).length === 1);
    expect(String(h.fake.responsesTo(responseId)[0]!.text)).toContain(
      `Mark benign works in the alert channel <#${CHANNEL}>, or anywhere for responders (SLACK_RESPONDERS)`,
    );
    expect(h.fake.callsOf('views.open')).toEqual([]);
  });
});

describe('Revoke', () => {
  it('in dry-run: updates the alert with the calls it would make, audits in the thread, changes nothing', async () => {
    await posted();
    const { status } = await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    expect(status).toBe(200);
    await h.fake.waitFor('the thread audit', () => threadPosts().length === 1);
    const [thread] = threadPosts();
    expect(thread!.args).toMatchObject({ channel: CHANNEL, thread_ts: '1700000000.000001' });
    expect(String(thread!.args.text)).toContain('dry-run: nothing was changed');
    expect(String(thread!.args.text)).toContain('DELETE https://management.azure.com/subscriptions/');
    expect(String(thread!.args.text)).toContain('PATCH https://graph.microsoft.com/v1.0/servicePrincipals/');
    const updates = h.fake.callsOf('chat.update');
    expect(JSON.stringify(updates[0]!.args.blocks)).toContain('in progress');
    expect(lastUpdateText()).toContain('Dry-run');
    expect(lastUpdateText()).toContain('nothing was changed');
    expect(lastUpdateText()).toContain('roleAssignments/');
    const audit = await listAudit(h.store, alert.id);
    expect(audit).toMatchObject([{ actor: RESPONDER, action: 'revoke', result: 'dry-run' }]);

    // A finished dry-run holds nothing: pressing Revoke again runs it again (as live mode would).
    await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await h.fake.waitFor('the second thread audit', () => threadPosts().length === 2);
    expect(await listAudit(h.store, alert.id)).toMatchObject([
      { action: 'revoke', result: 'dry-run' },
      { action: 'revoke', result: 'dry-run' },
    ]);
  });

  it('answers an unknown alert id privately', async () => {
    await posted();
    const { responseId } = await h.click(ACTION_IDS.revoke, 'no such alert!', RESPONDER);
    await h.fake.waitFor('the note', () => h.fake.responsesTo(responseId).length === 1);
    const note = String(h.fake.responsesTo(responseId)[0]!.text);
    expect(note).toContain('no longer known');
    expect(note).toContain('restore it in Azure by hand');
    // Audited all the same: the press, by whom, on what (a value that is no alert id is not kept).
    expect(await listAudit(h.store)).toMatchObject([
      { actor: RESPONDER, action: 'revoke', result: 'refused', detail: 'the button carries no alert id' },
    ]);
    expect((await listAudit(h.store))[0]).not.toHaveProperty('alertId');
    const gone = 'a'.repeat(24);
    await h.click(ACTION_IDS.undoRevoke, gone, RESPONDER);
    await vi.waitFor(async () =>
      expect(await listAudit(h.store, gone)).toMatchObject([
        { actor: RESPONDER, action: 'undo', alertId: gone, result: 'refused', detail: 'unknown alert' },
      ]),
    );
  });
  it('answers a press on an alert whose post Slack has not clearly answered yet: being confirmed, not unknown', async () => {
    h = await startHarness();
    // Slack took the post but answered 500: the message is live, its state not yet stored.
    h.fake.script('chat.postMessage', { status: 500, created: true });
    await expect(h.chat.sink.post(alert)).rejects.toThrow();
    for (const actionId of [ACTION_IDS.revoke, ACTION_IDS.markBenign]) {
      const { responseId } = await h.click(actionId, alert.id, RESPONDER);
      await h.fake.waitFor('the note', () => h.fake.responsesTo(responseId).length === 1);
      const note = String(h.fake.responsesTo(responseId)[0]!.text);
      expect(note).toContain('still being confirmed with Slack');
      expect(note).not.toContain('no longer known');
    }
    expect(h.fake.callsOf('views.open')).toEqual([]);
    const pending = {
      actor: RESPONDER,
      alertId: alert.id,
      result: 'refused',
      detail: expect.stringContaining('pending'),
    };
    expect(await listAudit(h.store, alert.id)).toMatchObject([
      { ...pending, action: 'revoke' },
      { ...pending, action: 'mark-benign' },
    ]);
    // Once the retry has found the message, its buttons work.
    await h.store.releaseClaim(`slack-post:${alert.id}`);
    await h.chat.sink.post(alert);
    await h.click(ACTION_IDS.markBenign, alert.id, RESPONDER);
    await h.fake.waitFor('the modal', () => h.fake.callsOf('views.open').length === 1);
  });
});

describe('Mark benign', () => {
  const values = (reason: string | null, expiry: string | null) => ({
    [BENIGN_MODAL.reasonBlock]: { [BENIGN_MODAL.reasonInput]: { type: 'plain_text_input', value: reason } },
    [BENIGN_MODAL.expiryBlock]: {
      [BENIGN_MODAL.expiryInput]: {
        type: 'static_select',
        selected_option: expiry ? { value: expiry } : null,
      },
    },
  });

  async function openModal() {
    await h.click(ACTION_IDS.markBenign, alert.id, RESPONDER);
    await h.fake.waitFor('the modal', () => h.fake.callsOf('views.open').length === 1);
    const view = h.fake.callsOf('views.open')[0]!.args.view as {
      callback_id: string;
      private_metadata: string;
    };
    expect(view.callback_id).toBe(CALLBACK_IDS.markBenign);
    return view;
  }

  it('opens a modal asking a reason and an expiry', async () => {
    await posted();
    const view = await openModal();
    expect(JSON.stringify(view)).toContain('24 hours');
    expect(JSON.stringify(view)).toContain('Never');
    expect(h.fake.callsOf('views.open')[0]!.args.trigger_id).toBeTruthy();
  });

  it('audits a submission for an alert that is no longer known, as a press on one is', async () => {
    await posted();
    const gone = 'b'.repeat(24);
    const res = await h.submit(
      CALLBACK_IDS.markBenign,
      OUTSIDER,
      JSON.stringify({ alertId: gone, channel: CHANNEL }),
      values('office VPN', '7d'),
    );
    expect(res.json()).toMatchObject({
      response_action: 'errors',
      errors: { [BENIGN_MODAL.reasonBlock]: 'This alert is no longer known to arc-responder.' },
    });
    expect(await listAudit(h.store, gone)).toMatchObject([
      { actor: OUTSIDER, action: 'mark-benign', alertId: gone, result: 'refused', detail: 'unknown alert' },
    ]);
    // One whose alert's post Slack has not clearly answered yet is told to wait, not that it is unknown.
    const pending = sampleAlert({ id: 'c'.repeat(24) });
    h.fake.script('chat.postMessage', { status: 500, created: true });
    await expect(h.chat.sink.post(pending)).rejects.toThrow();
    const wait = await h.submit(
      CALLBACK_IDS.markBenign,
      RESPONDER,
      JSON.stringify({ alertId: pending.id, channel: CHANNEL }),
      values('office VPN', '7d'),
    );
    expect(JSON.stringify(wait.json())).toContain('still being confirmed with Slack');
    expect(await listAudit(h.store, pending.id)).toMatchObject([
      {
        actor: RESPONDER,
        action: 'mark-benign',
        result: 'refused',
        detail: expect.stringContaining('pending'),
      },
    ]);
    // A dialog whose metadata names no alert is audited too, without an alert id.
    await h.submit(CALLBACK_IDS.markBenign, OUTSIDER, 'not json', values('office VPN', '7d'));
    const all = await listAudit(h.store);
    expect(all.at(-1)).toMatchObject({
      actor: OUTSIDER,
      action: 'mark-benign',
      result: 'refused',
      detail: 'the dialog carries no alert id',
    });
    expect(all.at(-1)).not.toHaveProperty('alertId');
    expect(await h.history.getAllow(alert.detection.appId, alert.detection.sourceIp)).toBeUndefined();
  });

  it('keeps the modal open with an error when the reason is blank or the expiry missing', async () => {
    await posted();
    const view = await openModal();
    const res = await h.submit(
      CALLBACK_IDS.markBenign,
      RESPONDER,
      view.private_metadata,
      values('   ', null),
    );
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({
      response_action: 'errors',
      errors: {
        [BENIGN_MODAL.reasonBlock]: expect.stringContaining('reason'),
        [BENIGN_MODAL.expiryBlock]: expect.stringContaining('24 hours'),
      },
    });
    expect(await h.history.getAllow(alert.detection.appId, alert.detection.sourceIp)).toBeUndefined();
  });

  it('allowlists the pair, updates the alert (who, why, until), audits it and posts in the thread', async () => {
    await posted();
    const view = await openModal();
    const res = await h.submit(
      CALLBACK_IDS.markBenign,
      RESPONDER,
      view.private_metadata,
      values('new CI runners', '24h'),
    );
    expect(res.status).toBe(200);
    expect(res.text).toBe('');
    await h.fake.waitFor('the thread audit', () => threadPosts().length === 1);
    const entry = await h.history.getAllow(alert.detection.appId, alert.detection.sourceIp);
    expect(entry).toMatchObject({ by: RESPONDER, reason: 'new CI runners' });
    expect(entry!.until! - entry!.at).toBe(24 * 3600 * 1000);
    expect(lastUpdateText()).toContain('Marked benign');
    expect(lastUpdateText()).toContain(`<@${RESPONDER}>`);
    expect(lastUpdateText()).toContain('new CI runners');
    expect(lastUpdateText()).toContain('until <!date^');
    expect(String(threadPosts()[0]!.args.text)).toContain('Marked benign');
    const audit = await listAudit(h.store, alert.id);
    expect(audit).toMatchObject([
      { actor: RESPONDER, action: 'mark-benign', result: 'ok', detail: { expiry: '24h' } },
    ]);
  });

  it('"never" stores an entry without expiry', async () => {
    await posted();
    const view = await openModal();
    await h.submit(CALLBACK_IDS.markBenign, RESPONDER, view.private_metadata, values('lab', 'never'));
    await h.fake.waitFor('the thread audit', () => threadPosts().length === 1);
    const raw = await h.store.get<{ until?: number }>(
      allowKey(alert.detection.appId, alert.detection.sourceIp),
    );
    expect(raw).toBeDefined();
    expect(raw!.until).toBeUndefined();
    expect(lastUpdateText()).toContain('with no expiry');
  });

  it('refuses a submission from someone not in SLACK_RESPONDERS of a modal opened outside the alert channel', async () => {
    await posted();
    const metadata = JSON.stringify({ alertId: alert.id, channel: 'C0OTHER' });
    const res = await h.submit(CALLBACK_IDS.markBenign, OUTSIDER, metadata, values('x', '7d'));
    expect(res.json()).toMatchObject({ response_action: 'errors' });
    expect(await h.history.getAllow(alert.detection.appId, alert.detection.sourceIp)).toBeUndefined();
    expect((await listAudit(h.store, alert.id)).map((e) => e.result)).toEqual(['refused']);
  });

  it('answers a modal whose metadata is not ours with an error, not a crash', async () => {
    await posted();
    const res = await h.submit(CALLBACK_IDS.markBenign, RESPONDER, 'not json', values('x', '7d'));
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ response_action: 'errors' });
  });
});

describe('a click whose handler fails', () => {
  it.each([ACTION_IDS.revoke, ACTION_IDS.markBenign, ACTION_IDS.undoRevoke])(
    '%s while the store does not answer: the clicker is told privately, and the log says to check the store',
    async (actionId) => {
      await posted();
      const get = h.store.get.bind(h.store);
      h.store.get = () =>
        Promise.reject(new StoreError('STORE_UNREACHABLE', 'connect ECONNREFUSED 127.0.0.1:6379'));
      const { status, responseId } = await h.click(actionId, alert.id, RESPONDER);
      expect(status).toBe(200);
      await h.fake.waitFor('the note', () => h.fake.responsesTo(responseId).length === 1);
      expect(h.fake.responsesTo(responseId)[0]).toEqual({
        response_type: 'ephemeral',
        replace_original: false,
        text: STORE_DOWN_NOTE,
      });
      expect(h.logs.join('')).toContain('the store did not answer; check the store');
      expect(h.fake.callsOf('views.open')).toEqual([]);
      h.store.get = get;
    },
  );

  it('an unexpected failure is answered too, without its details', async () => {
    await posted();
    h.store.get = () => Promise.reject(new TypeError('cannot read properties of undefined (secret detail)'));
    const { responseId } = await h.click(ACTION_IDS.revoke, alert.id, RESPONDER);
    await h.fake.waitFor('the note', () => h.fake.responsesTo(responseId).length === 1);
    expect(h.fake.responsesTo(responseId)[0]!.text).toBe(FAILED_NOTE);
    expect(h.logs.join('')).toContain('secret detail');
  });
});

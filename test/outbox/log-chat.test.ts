import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { createLogChat } from '../../src/outbox/log-chat.ts';
import { DETECTED_AT, sampleAlert } from '../slack/sample-alert.ts';
import { ARC } from '../support/samples.ts';

/** The log-only chat, and the JSON lines it writes. */
function logChat() {
  const lines: Array<Record<string, unknown>> = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { chat: createLogChat(createLogger({ level: 'info', destination: out })), lines };
}

describe('the log-only chat', () => {
  it('says why each alert fired, as the Slack message does, with the fields to follow it up', async () => {
    const { chat, lines } = logChat();
    const day = 86_400_000;
    await chat.sink.post(
      sampleAlert({ id: 'new' }, { eventTime: new Date(DETECTED_AT - 60_000).toISOString() }),
    );
    await chat.sink.post(
      sampleAlert({ id: 'seen', reason: 'elastic-alert', seenHereAt: DETECTED_AT - 2 * day }),
    );
    await chat.sink.post(
      sampleAlert({ id: 'old' }, { eventTime: new Date(DETECTED_AT - 30 * day).toISOString() }),
    );
    const [fresh, seen, old] = lines;
    expect(fresh!.msg).toBe(`ALERT ${ARC.appId} used ${ARC.ip} for the first time in 7d`);
    expect(seen!.msg).toBe(
      `ALERT ${ARC.appId} from ${ARC.ip}: Elastic judged the IP new for this identity, but this service saw the pair within 7d (last ${new Date(DETECTED_AT - 2 * day).toISOString()})`,
    );
    expect(old!.msg).toBe(
      `ALERT ${ARC.appId} from ${ARC.ip}: an event from longer ago than 7d, so whether the IP was new then cannot be told`,
    );
    expect(fresh).toMatchObject({
      event: 'alert',
      alert: { id: 'new', appId: ARC.appId, sourceIp: ARC.ip, tenantId: ARC.tenantId, reason: 'new-pair' },
    });
    expect((fresh!.alert as Record<string, unknown>).correlationId).toBeDefined();
  });
});

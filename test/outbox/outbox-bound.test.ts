import { describe, expect, it, vi } from 'vitest';
import type { ChatAdapter } from '../../src/chat-adapter.ts';
import type { IngestSummary } from '../../src/http/ingest-handler.ts';
import { answer, arcRecord, freshAppId, postIngest, startTestApp } from '../support/http-app.ts';

/** A chat whose API is down until `up` is set. */
function flakyChat() {
  const state = { up: false, posted: 0 };
  const chat: ChatAdapter = {
    name: 'flaky-chat',
    sink: {
      async post() {
        if (!state.up) throw new Error('chat API answered 503');
        state.posted++;
        return { ref: `ref-${state.posted}` };
      },
      async repeat() {
        if (!state.up) throw new Error('chat API answered 503');
      },
    },
    problems: () => [],
  };
  return { chat, state };
}

describe('outbox bound: ingest keeps accepting while chat is down, up to a limit', () => {
  it('answers 503 with Retry-After once the outbox is full, and accepts again after delivery', async () => {
    const { chat, state } = flakyChat();
    const t = await startTestApp({
      chat,
      outbox: { maxPending: 3, pollMs: 20, baseBackoffMs: 20, maxBackoffMs: 50 },
    });
    try {
      for (let i = 0; i < 3; i++) {
        const ok = await postIngest<IngestSummary>(t.url, arcRecord({ appId: freshAppId() }));
        expect(ok.status).toBe(200);
        expect(ok.body.counts.alerted).toBe(1);
      }
      const full = await postIngest<{ error: string; code: string; pending: number }>(
        t.url,
        arcRecord({ appId: freshAppId() }),
      );
      expect(full.status).toBe(503);
      expect(full.headers.get('retry-after')).toBe('30');
      expect(full.body).toMatchObject({ code: 'outbox_full', pending: 3 });
      expect(full.body.error).toMatch(/3 alerts are waiting for chat delivery \(limit 3\)/);

      // Ingest answers 503 itself; readiness is the store's, so the outbox shows as a warning.
      const ready = await answer<{ warnings: string[] }>(await fetch(`${t.url}/readyz`));
      expect(ready.status).toBe(200);
      expect(ready.body.warnings.join()).toMatch(/outbox holds 3 undelivered alerts/);

      state.up = true;
      await vi.waitFor(() => expect(state.posted).toBe(3), { timeout: 5000 });
      await vi.waitFor(() => expect(t.app.outbox.depth()).toBe(0));
      const again = await postIngest<IngestSummary>(t.url, arcRecord({ appId: freshAppId() }));
      expect(again.status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

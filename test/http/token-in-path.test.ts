import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/http-app.ts';

describe('an ingest token in a mistyped URL never reaches the log', () => {
  const token = 'tok-in-path+Secret/42';
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { INGEST_TOKEN: `other-token-1,${token}` } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('masks the token in the logged path and reason of a 404', async () => {
    const paths = [
      `/ingest&token=${token}`, // '&' typed for '?'
      `/ingest%3Ftoken=${encodeURIComponent(token)}`, // the '?' percent-encoded by a tool
      `/ingest/${encodeURIComponent(token)}`,
    ];
    for (const p of paths) {
      const res = await fetch(`${t.url}${p}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '[]',
      });
      expect(res.status).toBe(404);
      await res.text();
    }
    const logs = t.rawLogs();
    expect(logs).toContain('"status":404');
    expect(logs).not.toContain(token);
    expect(logs).not.toContain(encodeURIComponent(token));
  });
});

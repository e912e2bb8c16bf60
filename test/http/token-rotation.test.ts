/**
 * Rotating INGEST_TOKEN: the service counts the requests each token lets in, by its place in the
 * list, so an operator sees when no sender uses the old one any more.
 */
import { expect, it } from 'vitest';
import { arcRecord, freshAppId, postIngest, startTestApp } from '../support/http-app.ts';

it('counts the requests each of INGEST_TOKEN lets in, by its place in the list, never naming the token', async () => {
  const t = await startTestApp({ env: { INGEST_TOKEN: 'old-token-4711,new-token-0815' } });
  try {
    const send = (token: string) =>
      postIngest(t.url, arcRecord({ appId: freshAppId() }), {
        headers: { authorization: `Bearer ${token}` },
      });
    expect((await send('old-token-4711')).status).toBe(200);
    expect((await send('old-token-4711')).status).toBe(200);
    expect((await send('new-token-0815')).status).toBe(200);
    // In the URL (action groups cannot send headers), as in the header.
    const viaQuery = await fetch(`${t.url}/ingest?token=new-token-0815`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(arcRecord({ appId: freshAppId() })),
    });
    expect(viaQuery.status).toBe(200);
    expect((await send('no-such-token')).status).toBe(401);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toContain('arc_ingest_token_uses_total{token="1"} 2');
    expect(metrics).toContain('arc_ingest_token_uses_total{token="2"} 2');
    expect(metrics).not.toContain('old-token-4711');
    expect(metrics).not.toContain('new-token-0815');
  } finally {
    await t.close();
  }
});

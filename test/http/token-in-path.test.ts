import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/http-app.ts';

/** Posts to each of `paths`, none of which the service serves. */
async function postEach(url: string, paths: readonly string[]): Promise<void> {
  for (const p of paths) {
    const res = await fetch(`${url}${p}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '[]',
    });
    expect(res.status).toBe(404);
    await res.text();
  }
}

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
    await postEach(t.url, paths);
    const logs = t.rawLogs();
    expect(logs).toContain('"status":404');
    expect(logs).not.toContain(token);
    expect(logs).not.toContain(encodeURIComponent(token));
  });
});

describe('an ingest token in a long or partly percent-encoded mistyped URL never reaches the log', () => {
  const token = 'Zx9/Qw+Lm3Rt7Yp==';
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { INGEST_TOKEN: token } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('masks it in the logged path and reason of a 404, whatever its place and encoding', async () => {
    const paths = [
      // Past the first 100 characters of the path: the reason's cut used to leave most of it.
      `/ingest&sender=azure-monitor-action-group-production-westeurope-01-secondary-x&token=${token}`,
      // Python's quote(), which keeps '/'.
      '/ingest&token=Zx9/Qw%2BLm3Rt7Yp%3D%3D',
      '/ingest/Zx9/Qw%2bLm3Rt7Yp%3d%3d',
      // A token the service does not know is masked too, whatever the case of the parameter.
      '/ingest&token=Old-Token-No-Longer-Configured',
      '/ingest&TOKEN=Old-Token-No-Longer-Configured',
      // Partly encoded, with a stray '%' that no decoder takes.
      '/ingest/Zx9/Qw%2BLm3Rt7Yp%3D%3D/100%',
    ];
    await postEach(t.url, paths);
    const refused = t.logs.filter((l) => l.msg === 'request refused' && l.status === 404);
    expect(refused).toHaveLength(paths.length);
    for (const line of refused) expect(String(line.error)).toMatch(/^no such endpoint: \/ingest/);
    const logs = t.rawLogs();
    expect(logs).not.toContain('Lm3Rt7');
    expect(logs).not.toContain('Old-Token');
  });
});

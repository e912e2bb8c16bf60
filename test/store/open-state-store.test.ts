import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { openStateStore } from '../../src/store/open-state-store.ts';
import { parseStoreUrl, redactUrl, scrubSecret } from '../../src/store/parse-store-url.ts';
import { openRedisStateStore } from '../../src/store/redis-state-store.ts';
import { StoreError } from '../../src/store/store-error.ts';

async function openError(url: string, namespace?: string): Promise<StoreError> {
  const error = await openStateStore(url, namespace === undefined ? {} : { namespace }).then(
    async (store) => {
      await store.close();
      throw new Error(`expected ${url} to be refused`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StoreError);
  return error as StoreError;
}

describe('parseStoreUrl', () => {
  it('reads sqlite paths as written: relative, dotted, absolute and in-memory', () => {
    expect(parseStoreUrl('sqlite://./data/arc-responder.db')).toMatchObject({
      kind: 'sqlite',
      path: './data/arc-responder.db',
    });
    expect(parseStoreUrl('sqlite://data/x.db')).toMatchObject({ kind: 'sqlite', path: 'data/x.db' });
    expect(parseStoreUrl('sqlite:///var/lib/arc/x.db')).toMatchObject({
      kind: 'sqlite',
      path: '/var/lib/arc/x.db',
    });
    expect(parseStoreUrl('SQLite://:memory:')).toMatchObject({ kind: 'sqlite', path: ':memory:' });
  });

  it('recognises memory, redis, rediss, postgres and postgresql', () => {
    expect(parseStoreUrl('memory://').kind).toBe('memory');
    expect(parseStoreUrl('redis://127.0.0.1:6379/2').kind).toBe('redis');
    expect(parseStoreUrl('rediss://cache.example:6380').kind).toBe('redis');
    expect(parseStoreUrl('postgres://u@db.example/arc').kind).toBe('postgres');
    expect(parseStoreUrl('postgresql://u@db.example/arc?sslmode=require').kind).toBe('postgres');
    // PostgreSQL over a Unix socket.
    expect(parseStoreUrl('postgres://u@/arc?host=/var/run/postgresql').kind).toBe('postgres');
  });

  it('refuses a Redis path that is no database number, and a PostgreSQL URL with neither host nor socket', () => {
    expect(parseStoreUrl('redis://127.0.0.1:6379/15').kind).toBe('redis');
    expect(parseStoreUrl('redis://127.0.0.1:6379/').kind).toBe('redis');
    for (const bad of ['redis://127.0.0.1:6379/abc', 'rediss://cache.example/0/1']) {
      expect(() => parseStoreUrl(bad), bad).toThrow(/the path of a Redis URL is a database number/);
    }
    // The Redis client reads no query: a database or password given there would be dropped.
    for (const bad of [
      'redis://127.0.0.1:6379?db=2',
      'rediss://cache.example/1?password=s3cret',
      'redis://h:1/?',
    ]) {
      expect(() => parseStoreUrl(bad), bad).toThrow(
        /a Redis URL takes no query \(\?db=, \?password= and the like are not read\); put the database number in the path/,
      );
      expect(() => parseStoreUrl(bad)).not.toThrow(/s3cret/);
    }
    for (const bad of ['postgres://u@/arc', 'postgres://u@/arc?host=relative']) {
      expect(() => parseStoreUrl(bad), bad).toThrow(/names no host/);
    }
    expect(() => parseStoreUrl('postgres:///arc')).toThrow(
      /names no host; .*for a Unix socket: postgres:\/\/user@\/db\?host=\/var\/run\/postgresql/,
    );
  });

  it('takes the schema of the PostgreSQL tables out of the URL (?schema=), public by default', () => {
    expect(parseStoreUrl('postgres://u@db.example/arc')).toMatchObject({ schema: 'public' });
    expect(parseStoreUrl('postgres://u@db.example/arc?sslmode=require&schema=arc_responder')).toMatchObject({
      url: 'postgres://u@db.example/arc?sslmode=require',
      schema: 'arc_responder',
    });
    expect(parseStoreUrl('postgres://u@db.example/arc?schema=arc&sslmode=verify-full')).toMatchObject({
      url: 'postgres://u@db.example/arc?sslmode=verify-full',
      schema: 'arc',
    });
    expect(() => parseStoreUrl('postgres://u@db.example/arc?schema=%zz')).toThrow(/one schema name/);
    for (const bad of ['Arc', 'arc-responder', '1arc', 'arc;drop', '', 'a'.repeat(64)]) {
      expect(() => parseStoreUrl(`postgres://u@db.example/arc?schema=${encodeURIComponent(bad)}`)).toThrow(
        /schema= takes one schema name in lower case/,
      );
    }
    expect(() => parseStoreUrl('postgres://u@db.example/arc?schema=a&schema=b')).toThrow(/one schema name/);
  });

  it('masks the password in what it reports', () => {
    const parsed = parseStoreUrl('postgres://arc:p%40ss-w0rd@db.example:5432/arc');
    expect(parsed).toMatchObject({
      password: 'p%40ss-w0rd',
      display: 'postgres://arc:***@db.example:5432/arc',
    });
    expect(redactUrl('redis://:hunter2@h:1/0')).toBe('redis://:***@h:1/0');
    expect(redactUrl('weird://user:pw@@host')).not.toContain('pw@');
    expect(scrubSecret('failed for p%40ss and p@ss', 'p%40ss')).toBe('failed for *** and ***');
  });

  it('masks a password given as a query parameter, which the PostgreSQL driver takes too', () => {
    const raw = 'postgres://arc@db.internal/arc?password=S3cretPw&sslmode=require&sslpassword=k3y';
    expect(redactUrl(raw)).toBe(
      'postgres://***@db.internal/arc?password=***&sslmode=require&sslpassword=***',
    );
    // A password holding an `@` is masked whole, in the query and in the user info.
    expect(redactUrl('postgres://host/db?password=p@ssw0rd')).toBe('postgres://host/db?password=***');
    expect(redactUrl('postgres://u:pw@host/db?password=se@cret&x=1')).toBe(
      'postgres://u:***@host/db?password=***&x=1',
    );
    const parsed = parseStoreUrl(raw);
    expect(parsed.display).not.toContain('S3cretPw');
    // The driver's messages are scrubbed of it, as of a password in the user info.
    expect(parsed).toMatchObject({ kind: 'postgres', password: 'S3cretPw' });
  });

  it('masks a password holding an unencoded / and says it must be percent-encoded', () => {
    const raw = 'rediss://default:Ab/cd+Ef==@cache.example:6380/0';
    expect(redactUrl(raw)).toBe('rediss://default:***@cache.example:6380/0');
    let message = '';
    try {
      parseStoreUrl(raw);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/must be percent-encoded \(\/ as %2F/);
    expect(message).not.toContain('Ab/cd');
    expect(parseStoreUrl('rediss://default:Ab%2Fcd%2BEf%3D%3D@cache.example:6380/0').display).toBe(
      'rediss://default:***@cache.example:6380/0',
    );
  });
});

describe('openStateStore refuses bad input with a message naming the problem', () => {
  it.each([
    ['', /Store URL is empty; expected sqlite:\/\/<path>/],
    ['   ', /Store URL is empty/],
    ['data/arc.db', /Store URL "data\/arc.db" has no scheme/],
    [
      'mysql://root@localhost/arc',
      /scheme "mysql:" is not supported; expected sqlite:\/\/<path>, memory:\/\//,
    ],
    ['sqlite://', /names no database file/],
    ['sqlite://./data/', /names no database file/],
    ['sqlite:./data/x.db', /must start with sqlite:\/\//],
    ['memory://somewhere', /memory:\/\/ takes no host or path/],
    ['redis://', /names no host/],
    ['postgres://:5432/arc', /is not a valid URL|names no host/],
    ['redis://[broken', /is not a valid URL/],
  ])('%j', async (url, message) => {
    const error = await openError(url);
    expect(error.code).toBe('STORE_URL_INVALID');
    expect(error.message).toMatch(message);
  });

  it('rejects a namespace that could reach into another key space', async () => {
    for (const namespace of ['a:b', '', '-x', 'x'.repeat(65), 'sp ace']) {
      const error = await openError('memory://', namespace);
      expect(error.code).toBe('STORE_BAD_INPUT');
      expect(error.message).toMatch(/Store namespace ".*" is invalid: use 1-64 letters, digits/);
    }
  });

  it('never shows the password of a malformed or unsupported URL', async () => {
    for (const url of [
      'mongodb://arc:T0p-Secret@db/arc',
      'redis://arc:T0p-Secret@[bad',
      'nope:T0p-Secret@x',
    ]) {
      const error = await openError(url);
      expect(error.message).not.toContain('T0p-Secret');
    }
  });
});

describe('openStateStore with an unreachable backend', () => {
  // Port 1 on loopback: nothing listens there, so the connection is refused at once.
  it('names Redis and its address, never the password', async () => {
    const error = await openError('redis://arc:Unreach4ble-Pw@127.0.0.1:1/0');
    expect(error.code).toBe('STORE_UNREACHABLE');
    expect(error.message).toMatch(
      /^Cannot connect to Redis at redis:\/\/arc:\*\*\*@127\.0\.0\.1:1\/0: .*ECONNREFUSED/,
    );
    expect(error.message).not.toContain('Unreach4ble-Pw');
    expect(JSON.stringify(error)).not.toContain('Unreach4ble-Pw');
    expect(String(error.stack)).not.toContain('Unreach4ble-Pw');
  });

  it('gives up on a Redis address that accepts connections and never answers, and says so', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.resume(); // reads what the client sends (its AUTH), answers nothing
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      const started = Date.now();
      const error = await openRedisStateStore({
        url: `redis://:Qu1et-Pw@127.0.0.1:${port}`,
        display: `redis://:***@127.0.0.1:${port}`,
        password: 'Qu1et-Pw',
        namespace: 'silent',
        connectTimeoutMs: 300,
      }).catch((e: unknown) => e as StoreError);
      expect(error).toBeInstanceOf(StoreError);
      expect((error as StoreError).code).toBe('STORE_UNREACHABLE');
      expect((error as StoreError).message).toMatch(
        /^Cannot connect to Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: it accepted the connection, but Redis did not answer within 300 ms/,
      );
      expect(JSON.stringify(error)).not.toContain('Qu1et-Pw');
      expect(Date.now() - started).toBeLessThan(5000);
      // The connection it opened is closed again.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect([...sockets].filter((s) => !s.destroyed && !s.readableEnded)).toEqual([]);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('names PostgreSQL and its address, never the password', async () => {
    const error = await openError('postgres://arc:Unreach4ble-Pw@127.0.0.1:1/arc');
    expect(error.code).toBe('STORE_UNREACHABLE');
    expect(error.message).toMatch(
      /^Cannot connect to PostgreSQL at postgres:\/\/arc:\*\*\*@127\.0\.0\.1:1\/arc: .*ECONNREFUSED/,
    );
    expect(error.message).not.toContain('Unreach4ble-Pw');
    expect(JSON.stringify(error)).not.toContain('Unreach4ble-Pw');
    expect(String(error.stack)).not.toContain('Unreach4ble-Pw');
  });
});

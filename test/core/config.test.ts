import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Reader } from 'maxmind';
import { describe, expect, it } from 'vitest';
import { ConfigError, listenUrl, loadConfig } from '../../src/config.ts';
import { sharedSettings } from '../../src/replicas.ts';
import { writeMmdb } from '../support/mmdb.ts';

describe('loadConfig', () => {
  it('starts on the embedded defaults with no configuration at all', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      storeUrl: 'sqlite://./data/arc-responder.db',
      historyWindowMs: 7 * 86_400_000,
      ingestTokens: [],
      ingestMaxBytes: 1_048_576,
      azure: {
        remediation: 'dry-run',
        armEndpoint: 'https://management.azure.com',
        graphEndpoint: 'https://graph.microsoft.com',
      },
      logLevel: 'info',
    });
    expect(c.slack).toBeUndefined();
    expect(c.learningPeriodMs).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('binds to every interface once ingest is protected by a token, and splits rotated tokens', () => {
    const c = loadConfig({ INGEST_TOKEN: 'old-token, new-token' });
    expect(c.host).toBe('0.0.0.0');
    expect(c.ingestTokens).toEqual(['old-token', 'new-token']);
  });

  it('reads durations and the Slack settings', () => {
    const c = loadConfig({
      HISTORY_WINDOW: '36h',
      LEARNING_PERIOD: '1d12h',
      SLACK_BOT_TOKEN: 'xoxb-1',
      SLACK_SIGNING_SECRET: 's',
      SLACK_ALERT_CHANNEL: 'C0123ABCD',
      SLACK_RESPONDERS: 'U01AAAA, S02BBBB',
    });
    expect(c.historyWindowMs).toBe(36 * 3_600_000);
    expect(c.learningPeriodMs).toBe(36 * 3_600_000);
    expect(c.slack).toMatchObject({
      alertChannel: 'C0123ABCD',
      responders: ['U01AAAA', 'S02BBBB'],
      apiUrl: 'https://slack.com/api/',
    });
  });

  it('calls Azure only when live remediation or an Azure identity or endpoint is configured', () => {
    expect(loadConfig({ AZURE_REMEDIATION: 'dry-run' }).azure.enabled).toBe(false);
    expect(loadConfig({ AZURE_REMEDIATION: 'live' }).azure.enabled).toBe(true);
    expect(loadConfig({ AZURE_CLIENT_ID: 'x' }).azure.enabled).toBe(true);
    expect(
      loadConfig({ IDENTITY_ENDPOINT: 'http://localhost:40342/metadata/identity/oauth2/token' }).azure
        .enabled,
    ).toBe(true);
    expect(() => loadConfig({ AZURE_ARM_ENDPOINT: 'http://localhost:1' })).toThrow(
      /AZURE_ARM_ENDPOINT must be an https URL/,
    );
  });

  it('refuses a GRAPH_ENDPOINT that names a Graph version, which every call adds itself', () => {
    for (const versioned of [
      'https://graph.microsoft.com/v1.0',
      'https://graph.microsoft.us/beta/',
      'https://proxy.example/graph/V1.0',
    ]) {
      expect(() => loadConfig({ GRAPH_ENDPOINT: versioned }), versioned).toThrow(
        /GRAPH_ENDPOINT must be the Microsoft Graph base without a version/,
      );
    }
    for (const base of [
      'https://graph.microsoft.com',
      'https://graph.microsoft.us/',
      'https://proxy.example/graph',
    ]) {
      expect(loadConfig({ GRAPH_ENDPOINT: base }).azure.graphEndpoint, base).toBe(base.replace(/\/+$/, ''));
    }
  });

  it('refuses an AZURE_TENANT_ID that DefaultAzureCredential would take for no tenant, naming it', () => {
    // The credential reads the variable as it is; a value it refuses makes it fall through to
    // managed identity, whose failure never names the tenant.
    for (const tenant of [
      'not a tenant!',
      ' 72f988bf-86f1-41af-91ab-2d7cd011db47',
      'contoso.onmicrosoft.com/',
    ]) {
      expect(() => loadConfig({ AZURE_TENANT_ID: tenant })).toThrow(/AZURE_TENANT_ID must be a tenant id/);
    }
    for (const tenant of [
      '72f988bf-86f1-41af-91ab-2d7cd011db47',
      'contoso.onmicrosoft.com',
      'organizations',
    ]) {
      expect(loadConfig({ AZURE_TENANT_ID: tenant }).azure.enabled).toBe(true);
    }
    expect(loadConfig({ AZURE_TENANT_ID: '' }).azure.enabled).toBe(false);
  });

  it('refuses a Slack or Azure URL that carries a user name or password, without repeating it', () => {
    // fetch refuses such a URL on every call, and its error (with the password) would reach the log.
    for (const [name, url] of [
      ['SLACK_API_URL', 'http://proxy-user:pr0xy-pa55@proxy.example.com/api/'],
      ['AZURE_ARM_ENDPOINT', 'https://u:pr0xy-pa55@management.azure.com'],
      ['GRAPH_ENDPOINT', 'https://pr0xy-pa55@graph.microsoft.com'],
      ['AZURE_AUTHORITY_HOST', 'https://u:pr0xy-pa55@login.microsoftonline.com/'],
    ] as const) {
      let error: unknown;
      try {
        loadConfig({
          SLACK_BOT_TOKEN: 'xoxb-1',
          SLACK_SIGNING_SECRET: 's',
          SLACK_ALERT_CHANNEL: 'C0123456789',
          [name]: url,
        });
      } catch (err) {
        error = err;
      }
      expect(error, name).toBeInstanceOf(ConfigError);
      const message = (error as ConfigError).message;
      expect(message).toContain(`${name} must not carry a user name or password`);
      expect(message).not.toContain('pr0xy-pa55');
    }
    // An @ in the path is no user info.
    expect(loadConfig({ SLACK_API_URL: 'https://proxy.example.com/slack@corp/api/' }).slack).toBeUndefined();
  });

  it('names every bad variable at once, with the expected form', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: 'eighty',
        HISTORY_WINDOW: 'a week',
        STORE_URL: 'mysql://x',
        AZURE_REMEDIATION: 'yes',
        SLACK_BOT_TOKEN: 'xoxb-1',
        SLACK_ALERT_CHANNEL: '#alerts',
        LOG_LEVEL: 'verbose',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    for (const name of [
      'PORT',
      'HISTORY_WINDOW',
      'STORE_URL',
      'AZURE_REMEDIATION',
      'SLACK_ALERT_CHANNEL',
      'SLACK_SIGNING_SECRET',
      'LOG_LEVEL',
    ]) {
      expect(message).toContain(name);
    }
    expect(message).not.toContain('xoxb-1');
  });

  it('bounds HISTORY_WINDOW and LEARNING_PERIOD at 366 days', () => {
    expect(loadConfig({ HISTORY_WINDOW: '366d', LEARNING_PERIOD: '52w' })).toMatchObject({
      historyWindowMs: 366 * 86_400_000,
      learningPeriodMs: 52 * 7 * 86_400_000,
    });
    for (const name of ['HISTORY_WINDOW', 'LEARNING_PERIOD']) {
      for (const bad of ['367d', '100000000d', '9999999999999999999w']) {
        expect(() => loadConfig({ [name]: bad }), bad).toThrow(`${name} must be at most 366d (got "${bad}")`);
      }
    }
  });

  it('refuses M in HISTORY_WINDOW and LEARNING_PERIOD (a month in Elastic date math) rather than reading it as minutes', () => {
    for (const name of ['HISTORY_WINDOW', 'LEARNING_PERIOD']) {
      expect(() => loadConfig({ [name]: '1M' })).toThrow(
        `${name} must be a duration like 7d, 36h, 90m (got "1M"): M is a month in Elastic date math`,
      );
      expect(loadConfig({ HISTORY_WINDOW: '90m', LEARNING_PERIOD: '2H30m' })).toMatchObject({
        historyWindowMs: 90 * 60_000,
        learningPeriodMs: 150 * 60_000,
      });
    }
  });

  it('refuses a zero HISTORY_WINDOW, saying it must be longer than zero; takes LEARNING_PERIOD=0 (which ends a running period)', () => {
    for (const zero of ['0', '0h', '0d', '0m']) {
      expect(() => loadConfig({ HISTORY_WINDOW: zero }), zero).toThrow(
        zero === '0'
          ? 'HISTORY_WINDOW must be a duration like 7d, 36h, 90m (got "0")'
          : `HISTORY_WINDOW must be longer than zero (got "${zero}")`,
      );
      expect(loadConfig({ LEARNING_PERIOD: zero }).learningPeriodMs, zero).toBe(0);
    }
    expect(() => loadConfig({ LEARNING_PERIOD: '00x' })).toThrow('LEARNING_PERIOD must be a duration like');
  });

  it('bounds INGEST_MAX_BYTES: from 1 KiB to 256 MiB (a body is one string in memory)', () => {
    expect(loadConfig({ INGEST_MAX_BYTES: '268435456' }).ingestMaxBytes).toBe(268_435_456);
    for (const bad of ['1023', '268435457', '1000000000000', '1e6', '-5']) {
      expect(() => loadConfig({ INGEST_MAX_BYTES: bad }), bad).toThrow(
        /INGEST_MAX_BYTES must be a whole number of bytes, from 1024 to 268435456 \(256 MiB\)/,
      );
    }
  });

  it('checks HOST, INGEST_TOKEN and STORE_URL with the others, naming the variable', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return '';
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).message;
      }
    };
    const all = problems({ HOST: '10.999.0.1', PORT: 'abc', INGEST_TOKEN: ' , ', STORE_URL: 'sqlite://' });
    expect(all).toContain('HOST must be an IP address');
    expect(all).toContain('PORT');
    expect(all).toContain('INGEST_TOKEN is set but holds no token');
    expect(all).toMatch(/STORE_URL: .*names no database file/);
    expect(problems({ INGEST_TOKEN: 'abc def,ghi' })).toContain('must not contain spaces');
    expect(problems({ STORE_URL: 'memory://foo' })).toContain('memory:// takes no host or path');
    expect(problems({ STORE_URL: 'redis://127.0.0.1:notaport' })).toContain('STORE_URL');
    expect(problems({ HOST: 'bad host' })).toContain('HOST');
    for (const host of [
      '127.0.0.1',
      '0.0.0.0',
      '::',
      '::1',
      'localhost',
      'arc-responder.internal',
      'ip6-localhost',
    ]) {
      expect(loadConfig({ HOST: host }).host).toBe(host);
    }
    expect(loadConfig({ INGEST_TOKEN: ' a , b ,' }).ingestTokens).toEqual(['a', 'b']);
  });

  it('reads the GeoIP database paths, which must name files; none by default', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'arc-config-'));
    try {
      const city = writeMmdb(path.join(dir, 'city.mmdb'), 'GeoLite2-City', {});
      const asn = writeMmdb(path.join(dir, 'asn.mmdb'), 'GeoLite2-ASN', {});
      const passwd = path.join(dir, 'passwd');
      writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\n');
      expect(loadConfig({}).geoip).toBeUndefined();
      expect(loadConfig({ GEOIP_CITY_DB: ' ', GEOIP_ASN_DB: '' }).geoip).toBeUndefined();
      expect(loadConfig({ GEOIP_CITY_DB: ` ${city} ` }).geoip).toEqual({ cityDb: city });
      expect(loadConfig({ GEOIP_CITY_DB: city, GEOIP_ASN_DB: asn }).geoip).toEqual({
        cityDb: city,
        asnDb: asn,
      });
      let message = '';
      try {
        loadConfig({ PORT: 'x', GEOIP_CITY_DB: path.join(dir, 'none.mmdb'), GEOIP_ASN_DB: dir });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain('PORT');
      expect(message).toMatch(/GEOIP_CITY_DB must be the path of a GeoIP database file .*none\.mmdb/);
      expect(message).toContain('GEOIP_ASN_DB must be the path of a GeoIP database file');
      // A file that is no MaxMind DB at all is named with the other bad variables.
      try {
        loadConfig({ LOG_LEVEL: 'verbose', GEOIP_ASN_DB: passwd });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain('LOG_LEVEL');
      expect(message).toMatch(
        /GEOIP_ASN_DB must be the path of a GeoIP database file .*passwd" is another kind of file/,
      );
      // So is a database of the other kind, each named with what it is.
      try {
        loadConfig({ LOG_LEVEL: 'verbose', GEOIP_CITY_DB: asn, GEOIP_ASN_DB: city });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain('LOG_LEVEL');
      expect(message).toContain(
        `GEOIP_CITY_DB: ${JSON.stringify(asn)} is a GeoLite2-ASN database; expected a City or Country database`,
      );
      expect(message).toContain(
        `GEOIP_ASN_DB: ${JSON.stringify(city)} is a GeoLite2-City database; expected an ASN database`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names a MaxMind DB file that cannot be read as one (no usable metadata, or cut short) with the other bad variables', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'arc-config-'));
    try {
      const city = writeMmdb(path.join(dir, 'city.mmdb'), 'GeoLite2-City', {});
      const marker = path.join(dir, 'marker.mmdb');
      writeFileSync(
        marker,
        Buffer.concat([Buffer.from('garbagegarbage'), Buffer.from('\xab\xcd\xefMaxMind.comXXXX', 'latin1')]),
      );
      // The start of a database, its metadata copied after it: its tree runs into the metadata.
      const whole = readFileSync(city);
      const half = path.join(dir, 'half.mmdb');
      writeFileSync(
        half,
        Buffer.concat([
          whole.subarray(0, 10),
          whole.subarray(whole.lastIndexOf(Buffer.from('\xab\xcd\xefMaxMind.com', 'latin1'))),
        ]),
      );
      const problems = (env: Record<string, string>) => {
        try {
          loadConfig(env);
        } catch (err) {
          return (err as Error).message;
        }
        return '';
      };
      const message = problems({ LOG_LEVEL: 'loud', GEOIP_CITY_DB: marker });
      expect(message).toContain('LOG_LEVEL');
      expect(message).toContain(
        `GEOIP_CITY_DB must be the path of a GeoIP database file (MaxMind DB format: an .mmdb file); ${JSON.stringify(marker)} is no usable MaxMind DB file (Unsupported record size)`,
      );
      expect(problems({ LOG_LEVEL: 'loud', GEOIP_CITY_DB: half })).toContain(
        `${JSON.stringify(half)} is cut short (its search tree runs into its metadata): a copy caught half-written?`,
      );
      // The whole file is fine, and so is one larger than the 128 KiB read at its end (its data
      // section padded), which the reader opens too.
      expect(loadConfig({ GEOIP_CITY_DB: city }).geoip).toEqual({ cityDb: city });
      const at = whole.lastIndexOf(Buffer.from('\xab\xcd\xefMaxMind.com', 'latin1'));
      const large = path.join(dir, 'large.mmdb');
      writeFileSync(
        large,
        Buffer.concat([whole.subarray(0, at), Buffer.alloc(300 * 1024), whole.subarray(at)]),
      );
      expect(new Reader(readFileSync(large)).metadata.databaseType).toBe('GeoLite2-City');
      expect(loadConfig({ GEOIP_CITY_DB: large }).geoip).toEqual({ cityDb: large });
      // A search tree itself larger than that end (real databases' are megabytes).
      const networks: Record<string, { country: { iso_code: string } }> = {};
      for (let i = 0; i < 2500; i++) {
        networks[`${(i % 200) + 11}.${(i * 101) % 256}.${(i * 211) % 256}.${(i * 7) % 256}/32`] = {
          country: { iso_code: 'DE' },
        };
      }
      const wide = writeMmdb(path.join(dir, 'wide.mmdb'), 'GeoLite2-Country', networks);
      expect(new Reader(readFileSync(wide)).metadata.searchTreeSize).toBeGreaterThan(128 * 1024);
      expect(loadConfig({ GEOIP_CITY_DB: wide }).geoip).toEqual({ cityDb: wide });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names a GeoIP file that the service cannot read, and a directory, for what they are', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'arc-config-'));
    try {
      const city = writeMmdb(path.join(dir, 'city.mmdb'), 'GeoLite2-City', {});
      chmodSync(city, 0o600);
      chmodSync(dir, 0o755);
      const env = { GEOIP_CITY_DB: city, GEOIP_ASN_DB: dir };
      // Read as a user other than the file's owner: as root, whom no permission stops, with the
      // effective user `nobody` for the call.
      const asRoot = process.getuid?.() === 0;
      if (asRoot) process.seteuid!(65534);
      else chmodSync(city, 0);
      let message = '';
      try {
        loadConfig(env);
      } catch (err) {
        message = (err as Error).message;
      } finally {
        if (asRoot) process.seteuid!(0);
      }
      expect(message).toContain(
        `GEOIP_CITY_DB must be the path of a GeoIP database file (MaxMind DB format: an .mmdb file); ${JSON.stringify(city)} cannot be read by the service's user (permission denied): give it read access`,
      );
      expect(message).toContain(
        `GEOIP_ASN_DB must be the path of a GeoIP database file (MaxMind DB format: an .mmdb file); ${JSON.stringify(dir)} is a directory`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads SLACK_ALLOWLIST (channel by default) and refuses responders without SLACK_RESPONDERS', () => {
    const slack = { SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's', SLACK_ALERT_CHANNEL: 'C0123' };
    expect(loadConfig(slack).slack?.allowlistBy).toBe('channel');
    expect(
      loadConfig({ ...slack, SLACK_RESPONDERS: 'U0AAA', SLACK_ALLOWLIST: 'responders' }).slack?.allowlistBy,
    ).toBe('responders');
    expect(() => loadConfig({ ...slack, SLACK_ALLOWLIST: 'everyone' })).toThrow(
      /SLACK_ALLOWLIST must be channel .* or responders/,
    );
    expect(() => loadConfig({ ...slack, SLACK_ALLOWLIST: 'responders' })).toThrow(
      /SLACK_ALLOWLIST=responders needs SLACK_RESPONDERS/,
    );
  });

  it('reads SLACK_HISTORY (anyone by default), refuses another value and responders without SLACK_RESPONDERS, and has replicas compare it', () => {
    const slack = { SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's', SLACK_ALERT_CHANNEL: 'C0123' };
    expect(loadConfig(slack).slack?.historyBy).toBe('anyone');
    expect(sharedSettings(loadConfig(slack)).SLACK_HISTORY).toBe('anyone');
    for (const value of ['anyone', 'channel', ' channel ']) {
      expect(loadConfig({ ...slack, SLACK_HISTORY: value }).slack?.historyBy).toBe(value.trim());
    }
    const responders = loadConfig({ ...slack, SLACK_RESPONDERS: 'U0AAA', SLACK_HISTORY: 'responders' });
    expect(responders.slack?.historyBy).toBe('responders');
    expect(sharedSettings(responders).SLACK_HISTORY).toBe('responders');
    for (const value of ['everyone', 'Responders', 'members']) {
      expect(() => loadConfig({ ...slack, SLACK_HISTORY: value })).toThrow(
        /SLACK_HISTORY must be anyone .*, channel .* or responders \(SLACK_RESPONDERS only\)/,
      );
    }
    expect(() => loadConfig({ ...slack, SLACK_HISTORY: 'responders' })).toThrow(
      /SLACK_HISTORY=responders needs SLACK_RESPONDERS: otherwise nobody could use \/arc-history/,
    );
    // Both at once are both named.
    let problems: string[] = [];
    try {
      loadConfig({ ...slack, SLACK_HISTORY: 'responders', SLACK_ALLOWLIST: 'responders' });
    } catch (err) {
      problems = (err as ConfigError).problems;
    }
    expect(problems).toEqual([
      'SLACK_ALLOWLIST=responders needs SLACK_RESPONDERS: otherwise nobody could mark benign',
      'SLACK_HISTORY=responders needs SLACK_RESPONDERS: otherwise nobody could use /arc-history',
    ]);
  });

  it('refuses a SLACK_RESPONDERS that holds no id (commas alone), as it refuses such an INGEST_TOKEN', () => {
    const slack = { SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's', SLACK_ALERT_CHANNEL: 'C0123' };
    for (const responders of [',', ' , ', ',,']) {
      expect(() => loadConfig({ ...slack, SLACK_RESPONDERS: responders })).toThrow(
        /SLACK_RESPONDERS is set but holds no id/,
      );
      expect(() =>
        loadConfig({ ...slack, SLACK_RESPONDERS: responders, SLACK_ALLOWLIST: 'responders' }),
      ).toThrow(/SLACK_RESPONDERS is set but holds no id/);
    }
    expect(loadConfig({ ...slack, SLACK_RESPONDERS: '' }).slack?.responders).toEqual([]);
    expect(loadConfig({ ...slack, SLACK_RESPONDERS: ' U0AAA , S0BBB ,' }).slack?.responders).toEqual([
      'U0AAA',
      'S0BBB',
    ]);
  });
});

describe('listenUrl', () => {
  it('brackets an IPv6 address, as a URL needs', () => {
    expect(listenUrl('127.0.0.1', 3000)).toBe('http://127.0.0.1:3000');
    expect(listenUrl('::1', 3000)).toBe('http://[::1]:3000');
    expect(listenUrl('::', 8080)).toBe('http://[::]:8080');
    expect(new URL(listenUrl('fe80::1', 1)).port).toBe('1');
  });
});

import { ClientSecretCredential } from '@azure/identity';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createArmGateway } from '../../src/azure/arm.ts';
import { createDefaultCredential } from '../../src/azure/endpoints.ts';
import {
  createGraphClient,
  describeFailure,
  GraphRequestError,
  isPublicAuthority,
  parseRetryAfter,
  scopeForEndpoint,
  withCallLog,
} from '../../src/azure/index.ts';
import { loadConfig } from '../../src/config.ts';
import { keepSecretsOut } from '../../src/secrets.ts';
import { type FakeAzure, startFakeAzure } from '../support/fake-azure.ts';
import { configFor, SP_ID, stubAzureEnv } from './helpers.ts';

const open: FakeAzure[] = [];
afterEach(async () => {
  vi.unstubAllEnvs();
  for (const f of open.splice(0)) await f.close();
});

async function graphAgainstFake(maxRetries = 2) {
  const fake = await startFakeAzure();
  open.push(fake);
  fake.servicePrincipal({ id: SP_ID, appId: '0b7e3c52-9d41-4f8a-b6e2-5a1c7d9e3f20', displayName: 'ci' });
  const credential = new ClientSecretCredential(fake.tenantId, fake.clientId, fake.clientSecret, {
    authorityHost: fake.loginUrl,
    disableInstanceDiscovery: true,
    tlsOptions: { ca: fake.ca },
  });
  const graph = createGraphClient({
    endpoint: `${fake.graphUrl}/`,
    credential,
    tlsCa: fake.ca,
    retry: { maxRetries, retryDelayMs: 5, maxRetryDelayMs: 20 },
  });
  return { fake, graph };
}

describe('endpoints and scopes', () => {
  it('derives token scopes from the configured endpoints', () => {
    expect(scopeForEndpoint('https://management.azure.com')).toBe('https://management.azure.com/.default');
    expect(scopeForEndpoint('https://management.azure.com/')).toBe('https://management.azure.com/.default');
    expect(scopeForEndpoint('https://graph.microsoft.com')).toBe('https://graph.microsoft.com/.default');
    expect(scopeForEndpoint('https://management.chinacloudapi.cn')).toBe(
      'https://management.chinacloudapi.cn/.default',
    );
    expect(scopeForEndpoint('https://graph.microsoft.us')).toBe('https://graph.microsoft.us/.default');
    expect(() => scopeForEndpoint('not a url')).toThrow(/not a URL/);
  });

  it('keeps instance discovery only for the public authority', () => {
    expect(isPublicAuthority(undefined)).toBe(true);
    expect(isPublicAuthority('https://login.microsoftonline.com/')).toBe(true);
    expect(isPublicAuthority('https://login.chinacloudapi.cn')).toBe(false);
    expect(isPublicAuthority('https://localhost:8443')).toBe(false);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-03-12T09:00:00Z');
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter('2', now)).toBe(2000);
    expect(parseRetryAfter('Thu, 12 Mar 2026 09:00:03 GMT', now)).toBe(3000);
    expect(parseRetryAfter('Thu, 12 Mar 2026 08:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('refuses to send a bearer token over plain http', () => {
    const credential = { getToken: async () => ({ token: 'x', expiresOnTimestamp: Date.now() + 60_000 }) };
    expect(() => createGraphClient({ endpoint: 'http://graph.example', credential })).toThrow(
      /must be an https URL/,
    );
  });
});

describe('Graph client', () => {
  it('sends the token for the Graph scope and records each call', async () => {
    const { fake, graph } = await graphAgainstFake();
    const run = await withCallLog(() =>
      graph.call('PATCH', `/v1.0/servicePrincipals/${SP_ID}`, { body: { accountEnabled: false } }),
    );
    expect(run.ok && run.value.status).toBe(204);
    expect(run.calls).toMatchObject([
      { method: 'PATCH', url: `${fake.graphUrl}/v1.0/servicePrincipals/${SP_ID}`, status: 204 },
    ]);
    expect(fake.calls('login', 'POST').map((r) => r.scope)).toEqual([`${fake.graphUrl}/.default`]);
    expect(fake.calls('graph')[0]).toMatchObject({
      tokenScope: `${fake.graphUrl}/.default`,
      body: { accountEnabled: false },
    });
  });

  it('waits out Retry-After given as an HTTP date', async () => {
    const { fake, graph } = await graphAgainstFake();
    fake.fail({
      service: 'graph',
      method: 'GET',
      status: 429,
      headers: { 'retry-after': new Date(Date.now() - 1000).toUTCString() },
    });
    const res = await graph.call('GET', `/v1.0/servicePrincipals/${SP_ID}`);
    expect(res.status).toBe(200);
    expect(fake.calls('graph').map((r) => r.status)).toEqual([429, 200]);
  });

  it('gives up after the retries and explains the throttling', async () => {
    const { fake, graph } = await graphAgainstFake(1);
    fake.throttle('graph', 'GET', SP_ID, 0, 5);
    const error = await graph.call('GET', `/v1.0/servicePrincipals/${SP_ID}`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GraphRequestError);
    expect((error as GraphRequestError).status).toBe(429);
    expect(describeFailure(error, { service: 'graph' }).fix).toMatch(/throttling/);
    expect(fake.calls('graph')).toHaveLength(2);
  });

  it('returns 404 to the caller instead of throwing', async () => {
    const { graph } = await graphAgainstFake();
    const res = await graph.call('GET', '/v1.0/servicePrincipals/00000000-0000-0000-0000-000000000001');
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ error: { code: 'Request_ResourceNotFound' } });
  });
});

describe('failure advice', () => {
  it("quotes Entra ID's description of a credential failure whole, without the library's wrapping or status, whichever credential wrapped it", () => {
    const description =
      `AADSTS50000: There was an error issuing a token or an issue with our sign-in service. ${'The service is temporarily unavailable. '.repeat(5)}`.trim();
    const wrapped = (name: string, message: string) =>
      Object.assign(new Error(message), { name: 'AuthenticationError', statusCode: 400, credential: name });
    const environment = describeFailure(
      wrapped(
        'EnvironmentCredential',
        `EnvironmentCredential authentication failed. To troubleshoot, visit https://aka.ms/azsdk/js/identity/environmentcredential/troubleshoot. Status code: 400 More details: server_error: Error(s): Not Available - Timestamp: Not Available - Description: ${description} - Correlation ID: Not Available - Trace ID: Not Available`,
      ),
      { service: 'arm' },
    );
    expect(environment.message).toBe(description);
    expect(environment.status).toBeUndefined();
    const managed = describeFailure(
      wrapped(
        'ManagedIdentityCredential',
        'ManagedIdentityCredential authentication failed. Message AADSTS500011: The resource principal named https://management.azure.com was not found in the tenant. Trace ID: 0b7e3c52 Correlation ID: 5d3b0f82 Timestamp: 2026-03-12 09:15:27Z',
      ),
      { service: 'arm' },
    );
    expect(managed.message).toBe(
      'AADSTS500011: The resource principal named https://management.azure.com was not found in the tenant.',
    );
  });

  it('names the expired or wrong client secret, with the AADSTS code first', async () => {
    const fake = await startFakeAzure();
    open.push(fake);
    const credential = new ClientSecretCredential(fake.tenantId, fake.clientId, 'not-the-secret', {
      authorityHost: fake.loginUrl,
      disableInstanceDiscovery: true,
      tlsOptions: { ca: fake.ca },
    });
    const graph = createGraphClient({ endpoint: fake.graphUrl, credential, tlsCa: fake.ca });
    const error = await graph.call('GET', `/v1.0/servicePrincipals/${SP_ID}`).catch((e: unknown) => e);
    const f = describeFailure(error, { service: 'graph' });
    expect(f.message).toMatch(/^AADSTS7000215: /);
    expect(f.fix).toMatch(/client secret in AZURE_CLIENT_SECRET is expired or wrong/);
    expect(fake.calls('graph')).toEqual([]);
  });

  it('tells a token endpoint failing with a bare 503 from a wrong credential, on every call it fails', async () => {
    const fake = await startFakeAzure();
    open.push(fake);
    fake.fail({
      service: 'login',
      method: 'POST',
      path: /oauth2\/v2\.0\/token$/,
      status: 503,
      rawBody: 'Service Unavailable',
      headers: { 'content-type': 'text/plain' },
      times: Number.POSITIVE_INFINITY,
    });
    // The credential the service makes: DefaultAzureCredential, with the client secret in the
    // environment.
    stubAzureEnv(fake);
    const credential = createDefaultCredential(configFor(fake, 'live').azure, fake.ca);
    const graph = createGraphClient({ endpoint: fake.graphUrl, credential, tlsCa: fake.ca });
    const arm = createArmGateway({
      endpoint: fake.armUrl,
      credential,
      tlsCa: fake.ca,
      retry: { maxRetries: 0 },
    });
    const errors: unknown[] = await Promise.all([
      graph.call('GET', `/v1.0/servicePrincipals/${SP_ID}`).catch((e: unknown) => e),
      arm
        .getAssignment(`/subscriptions/${SP_ID}/providers/Microsoft.Authorization/roleAssignments/${SP_ID}`)
        .catch((e: unknown) => e),
    ]);
    // A later call is answered from the identity library's memory of the failure, whose text no
    // longer names server_error.
    errors.push(
      await arm
        .getAssignment(`/subscriptions/${SP_ID}/providers/Microsoft.Authorization/roleAssignments/${SP_ID}`)
        .catch((e: unknown) => e),
    );
    expect(String((errors[2] as Error).message)).not.toMatch(/server_error/);
    for (const error of errors) {
      const f = describeFailure(error, { service: 'arm' });
      expect(f.fix).toMatch(/Entra ID failed to issue a token/);
      expect(f.fix).not.toMatch(/AZURE_CLIENT_SECRET/);
    }
  });

  it('never shows a client secret or a token that an endpoint quotes back in its error', async () => {
    const fake = await startFakeAzure();
    open.push(fake);
    const jwt = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhcHBpZCI6IjEyMyIsIm9pZCI6IjQ1NiJ9.c2lnbmF0dXJl';
    // A proxy in front of the token endpoint that echoes the form it refuses.
    fake.fail({
      service: 'login',
      method: 'POST',
      path: /oauth2\/v2\.0\/token$/,
      status: 400,
      body: {
        error: 'invalid_request',
        error_description: `AADSTS7000215: Invalid client secret provided: ${fake.clientSecret}. Form: client_secret=${fake.clientSecret}&grant_type=client_credentials; last token: Bearer ${jwt}`,
      },
      times: Number.POSITIVE_INFINITY,
    });
    stubAzureEnv(fake);
    // As the service does with its configuration at start.
    keepSecretsOut(loadConfig(process.env).secrets);
    const credential = createDefaultCredential(configFor(fake, 'live').azure, fake.ca);
    const graph = createGraphClient({ endpoint: fake.graphUrl, credential, tlsCa: fake.ca });
    const error = await graph.call('GET', `/v1.0/servicePrincipals/${SP_ID}`).catch((e: unknown) => e);
    expect(String((error as Error).message)).toContain(fake.clientSecret);
    const f = describeFailure(error, { service: 'graph' });
    expect(f.message).toMatch(/^AADSTS7000215: /);
    expect(f.message).toContain('Invalid client secret provided: ***.');
    expect(f.message).toContain('client_secret=***');
    expect(f.message).toContain('Bearer ***');
    expect(f.message).not.toContain(fake.clientSecret);
    expect(f.message).not.toContain(jwt.slice(0, 20));
  });

  it('says to press again when ARM finds the token expired, not to check the tenant', () => {
    const expired = Object.assign(
      new Error("The access token expiry UTC time '…' is earlier than current UTC time '…'."),
      {
        statusCode: 401,
        code: 'ExpiredAuthenticationToken',
      },
    );
    expect(describeFailure(expired, { service: 'arm' }).fix).toBe(
      'the token expired while the call waited to be retried: press again',
    );
    const wrongTenant = Object.assign(new Error('The access token is from the wrong issuer.'), {
      statusCode: 401,
      code: 'InvalidAuthenticationTokenTenant',
    });
    expect(describeFailure(wrongTenant, { service: 'arm' }).fix).toMatch(/check that AZURE_TENANT_ID/);
  });

  it('says that an HTML page answered, not Azure, and does not paste the page', async () => {
    const fake = await startFakeAzure();
    open.push(fake);
    const credential = new ClientSecretCredential(fake.tenantId, fake.clientId, fake.clientSecret, {
      authorityHost: fake.loginUrl,
      disableInstanceDiscovery: true,
      tlsOptions: { ca: fake.ca },
    });
    const arm = createArmGateway({
      endpoint: fake.armUrl,
      credential,
      tlsCa: fake.ca,
      retry: { maxRetries: 0 },
    });
    fake.fail({
      service: 'arm',
      method: 'GET',
      status: 502,
      rawBody: '<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>',
      headers: { 'content-type': 'text/html' },
    });
    const error = await arm
      .getAssignment(`/subscriptions/${SP_ID}/providers/Microsoft.Authorization/roleAssignments/${SP_ID}`)
      .catch((e: unknown) => e);
    const f = describeFailure(error, { service: 'arm' });
    expect(f.status).toBe(502);
    expect(f.message).toBe('an HTML page, not an answer of Azure (a proxy or gateway answered in its place)');
    expect(f.fix).toMatch(/Azure answered 502/);
  });

  it('tells a connection lost after sending from one never made', () => {
    const lost = describeFailure(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), {
      service: 'arm',
    });
    expect(lost.fix).toMatch(/lost after the request went out: try again/);
    const never = describeFailure(
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      {
        service: 'arm',
      },
    );
    expect(never.fix).toMatch(/could not reach Azure: check AZURE_ARM_ENDPOINT/);
  });
});

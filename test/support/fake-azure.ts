import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Local HTTPS fakes of the Entra token endpoint, Azure Resource Manager and Microsoft Graph, for
 * running the real Azure SDK clients and `@azure/identity` offline. One self-signed certificate
 * (made with openssl when first needed, private key deleted at once) serves three ports; pass
 * `fake.ca` as `tlsOptions.ca` / `tlsCa`. Every request is recorded. State is real enough:
 * assignments are listed (with paging), deleted and re-created; principals are disabled and enabled.
 * Failures are scripted fluently: `throttle`, `deny`, `fail`, `delay`.
 */

export type FakeService = 'login' | 'arm' | 'graph';

/** One request as the fake saw it. */
export interface RecordedRequest {
  service: FakeService;
  method: string;
  /** Path as sent on the wire (may start with `//` if a client got an id with a leading slash). */
  rawPath: string;
  /** Decoded path with leading slashes collapsed to one. */
  path: string;
  query: Record<string, string>;
  body: unknown;
  status: number;
  /** The token scope, for token requests. */
  scope?: string;
  /** The scope of the bearer token presented, for ARM and Graph. */
  tokenScope?: string;
  /** The bearer token presented, for ARM and Graph. */
  bearer?: string;
  /** The id headers the client sent and those answered, as the real services send them. */
  ids?: Record<string, string>;
}

/**
 * The ids ARM and Graph put on every answer: ARM its own request id and the correlation id (the
 * client's when it sent one), Graph its request id and the client's `client-request-id` echoed.
 */
function answerIds(service: FakeService, req: IncomingMessage): Record<string, string> {
  const header = (name: string) => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  if (service === 'arm') {
    return {
      'x-ms-request-id': randomUUID(),
      'x-ms-correlation-request-id': header('x-ms-correlation-request-id') ?? randomUUID(),
      ...(header('x-ms-client-request-id')
        ? { 'x-ms-client-request-id': header('x-ms-client-request-id')! }
        : {}),
    };
  }
  if (service === 'graph') {
    return {
      'request-id': randomUUID(),
      'client-request-id': header('client-request-id') ?? randomUUID(),
    };
  }
  return {};
}

/** A scripted answer, used instead of the normal one while `times` lasts. */
export interface ScriptRule {
  service: FakeService;
  method?: string;
  /** Case-insensitive substring of the decoded path, or a pattern. */
  path?: string | RegExp;
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Wait this long before answering (a slow lookup). */
  delayMs?: number;
  /** How many requests it answers; default 1. */
  times?: number;
  /** Answer normally after the delay instead of with `status`. */
  passThrough?: boolean;
  /** Do what the request asks (ARM and Graph), then answer `status`: a change whose answer was lost. */
  applied?: boolean;
  /** Sent as it is instead of `body` as JSON (a proxy's HTML page); give its content type in `headers`. */
  rawBody?: string;
}

/** A role definition in the fake. */
export interface FakeRoleDefinition {
  id: string;
  roleName: string;
  actions: string[];
  notActions?: string[];
  roleType?: 'BuiltInRole' | 'CustomRole';
}

/** A role assignment in the fake. */
export interface FakeAssignment {
  name: string;
  scope: string;
  roleDefinitionId: string;
  principalId: string;
  principalType: string;
  createdOn: string;
  condition?: string;
  conditionVersion?: string;
  /**
   * Made or activated through PIM for a set time: its role assignment schedule instance then
   * ends at `endDateTime` (one without `pim` is listed with no end, as ARM lists an assignment
   * made through the role assignments API).
   */
  pim?: { assignmentType: 'Activated' | 'Assigned'; endDateTime: string };
}

/** A service principal in the fake Graph. */
export interface FakeServicePrincipal {
  id: string;
  appId: string;
  displayName: string;
  accountEnabled: boolean;
  /** Creation time of the application registration (Graph v1.0 has none on the SP). */
  appCreatedDateTime?: string;
  /** Graph's `servicePrincipalType`: `Application` unless given (`ManagedIdentity`, `Legacy`, …). */
  servicePrincipalType?: string;
  /** The tenant its application is registered in: the fake's own unless given (Microsoft's, say). */
  appOwnerOrganizationId?: string;
}

/** A user in the fake Graph. */
export interface FakeUser {
  id: string;
  userPrincipalName: string;
  displayName: string;
  accountEnabled: boolean;
  createdDateTime?: string;
  /** A guest's address (Graph's `mail`): its userPrincipalName is then `…#EXT#@…`. */
  mail?: string;
  revokedSessions: number;
}

/** A plain resource (e.g. a connected cluster) served by id. */
export interface FakeResource {
  id: string;
  location: string;
  tags?: Record<string, string>;
  properties?: Record<string, unknown>;
}

const ASSIGNMENTS = /^(.*?)\/providers\/microsoft\.authorization\/roleassignments(?:\/([^/]+))?$/i;
const ROLE_DEFINITION = /^(.*?)\/providers\/microsoft\.authorization\/roledefinitions\/([^/]+)$/i;
const SCHEDULE_INSTANCES = /^(.*?)\/providers\/microsoft\.authorization\/roleassignmentscheduleinstances$/i;

let certPromise: { cert: string; key: string } | undefined;

/** A self-signed certificate for localhost and 127.0.0.1; the key file is removed right away. */
function testCertificate(): { cert: string; key: string } {
  if (certPromise) return certPromise;
  const dir = mkdtempSync(join(tmpdir(), 'fake-azure-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    certPromise = {
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
    };
    return certPromise;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An answer of the fake. */
interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

const reply = (status: number, body?: unknown, headers?: Record<string, string>): Reply => ({
  status,
  body,
  ...(headers ? { headers } : {}),
});

const collapse = (p: string) => `/${p.replace(/^\/+/, '')}`;

function json(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The fake; build its state fluently, then point the code under test at `loginUrl`, `armUrl`, `graphUrl`. */
export class FakeAzure {
  readonly ca: string;
  /** A customer's tenant (not one of Microsoft's, which own Microsoft's first-party applications). */
  readonly tenantId = '3c8f5a1e-7b24-4d90-9e61-0a5b2c7d4f18';
  readonly clientId = '11111111-2222-3333-4444-555555555555';
  readonly clientSecret = `secret-${randomUUID()}`;
  /** The object id of the service principal of `clientId`: the `oid` of the tokens it issues. */
  readonly clientObjectId = '6e1d4b7a-2c90-4f35-8a1e-b3c5d7f90a12';
  loginUrl = '';
  armUrl = '';
  graphUrl = '';
  readonly requests: RecordedRequest[] = [];
  /** Page size of assignment listings; nextLink pages follow. */
  pageSize = 100;
  /** What the token endpoint gives as `expires_in`; ARM and Graph refuse a token past it. */
  tokenLifetimeSeconds = 3599;
  /** The user the tokens are issued to (see `signedInAs`); unset: app-only tokens of `clientId`. */
  private tokenUser: { id: string; upn: string; appId: string } | undefined;
  readonly roleDefinitions = new Map<string, FakeRoleDefinition>();
  readonly assignmentsByName = new Map<string, FakeAssignment>();
  readonly servicePrincipals = new Map<string, FakeServicePrincipal>();
  readonly users = new Map<string, FakeUser>();
  readonly resources = new Map<string, FakeResource>();
  private readonly rules: ScriptRule[] = [];
  private readonly tokens = new Map<string, string>();
  /** Each token's expiry, epoch ms. */
  private readonly tokenExpiry = new Map<string, number>();
  private readonly servers: Server[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(ca: string) {
    this.ca = ca;
  }

  /** Starts the three servers on ephemeral loopback ports. */
  static async start(): Promise<FakeAzure> {
    const { cert, key } = testCertificate();
    const fake = new FakeAzure(cert);
    const listen = async (service: FakeService): Promise<string> => {
      const server = createServer({ cert, key }, (req, res) => {
        fake.handle(service, req, res).catch((error: unknown) => {
          if (!res.headersSent) json(res, 500, { error: { code: 'FakeError', message: String(error) } });
        });
      });
      fake.servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      return `https://localhost:${port}`;
    };
    fake.loginUrl = await listen('login');
    fake.armUrl = await listen('arm');
    fake.graphUrl = await listen('graph');
    return fake;
  }

  /** Stops the servers and drops open connections. */
  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }

  // ---- state builders -------------------------------------------------------------------------

  /** Adds a role definition (served at any scope under its GUID). */
  role(def: FakeRoleDefinition): this {
    this.roleDefinitions.set(def.id.toLowerCase(), def);
    return this;
  }

  /** Adds a role assignment and returns the fake (read the id with `assignmentId`). */
  assign(a: Omit<FakeAssignment, 'name' | 'createdOn'> & { name?: string; createdOn?: string }): this {
    const name = (a.name ?? randomUUID()).toLowerCase();
    this.assignmentsByName.set(name, {
      ...a,
      name,
      scope: collapse(a.scope),
      createdOn: a.createdOn ?? '2026-01-01T00:00:00.0000000Z',
    });
    return this;
  }

  /** Adds a service principal. */
  servicePrincipal(sp: Omit<FakeServicePrincipal, 'accountEnabled'> & { accountEnabled?: boolean }): this {
    this.servicePrincipals.set(sp.id.toLowerCase(), { accountEnabled: true, ...sp });
    return this;
  }

  /** Adds a user. */
  user(u: Omit<FakeUser, 'accountEnabled' | 'revokedSessions'> & { accountEnabled?: boolean }): this {
    this.users.set(u.id.toLowerCase(), { accountEnabled: true, revokedSessions: 0, ...u });
    return this;
  }

  /**
   * Makes the token endpoint mint user tokens from now on, as a developer login gets: delegated
   * (`scp`, `idtyp: user`), issued to the user `id` through the client application `appId` (the
   * Azure CLI's unless said otherwise).
   */
  signedInAs(user: { id: string; upn: string; appId?: string }): this {
    this.tokenUser = { appId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46', ...user };
    return this;
  }

  /** Adds a resource served by id. */
  resource(r: FakeResource): this {
    this.resources.set(collapse(r.id).toLowerCase(), r);
    return this;
  }

  // ---- scripting --------------------------------------------------------------------------------

  /** Answers the next matching request(s) with the rule's status instead. */
  fail(rule: ScriptRule): this {
    this.rules.push({ times: 1, ...rule });
    return this;
  }

  /** 429 with `Retry-After` (seconds) for the next `times` matching requests. */
  throttle(service: 'arm' | 'graph', method: string, path: string | RegExp, retryAfter = 0, times = 1): this {
    const body =
      service === 'arm'
        ? { error: { code: 'TooManyRequests', message: 'The request is being throttled.' } }
        : { error: { code: 'TooManyRequests', message: 'Too many requests.' } };
    return this.fail({
      service,
      method,
      path,
      status: 429,
      headers: { 'retry-after': String(retryAfter) },
      body,
      times,
    });
  }

  /** 403 for every matching request: ARM's AuthorizationFailed or Graph's Authorization_RequestDenied. */
  deny(service: 'arm' | 'graph', method: string, path: string | RegExp, action?: string): this {
    const rule: ScriptRule = { service, method, path, status: 403, times: Number.POSITIVE_INFINITY };
    if (service === 'graph') {
      rule.body = {
        error: {
          code: 'Authorization_RequestDenied',
          message: 'Insufficient privileges to complete the operation.',
        },
      };
    }
    // ARM's message names the action and scope; built per request in `scripted`.
    if (action) rule.headers = { 'x-fake-action': action };
    return this.fail(rule);
  }

  /** Answers matching requests normally, but only after `delayMs`. */
  delay(service: FakeService, path: string | RegExp, delayMs: number, times = 1): this {
    return this.fail({ service, path, status: 200, delayMs, times, passThrough: true });
  }

  // ---- inspection -------------------------------------------------------------------------------

  /** Full id of an assignment by name. */
  assignmentId(name: string): string {
    const a = this.assignmentsByName.get(name.toLowerCase());
    if (!a) throw new Error(`no assignment ${name}`);
    return `${a.scope === '/' ? '' : a.scope}/providers/Microsoft.Authorization/roleAssignments/${a.name}`;
  }

  /** Requests that change something (everything but GET/HEAD) to ARM or Graph. */
  mutations(): RecordedRequest[] {
    return this.requests.filter((r) => r.service !== 'login' && r.method !== 'GET' && r.method !== 'HEAD');
  }

  /** Requests to one service, optionally of one method. */
  calls(service: FakeService, method?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.service === service && (!method || r.method === method));
  }

  /** Drops every scripted answer still pending (e.g. after a permission was "granted"). */
  clearScripts(): this {
    this.rules.length = 0;
    return this;
  }

  /** Drops the scripted answers not used yet: Azure answers normally again. */
  clearRules(): this {
    this.rules.length = 0;
    return this;
  }

  /** Forgets the recorded requests. */
  clearRequests(): this {
    this.requests.length = 0;
    return this;
  }

  // ---- serving ----------------------------------------------------------------------------------

  private async handle(service: FakeService, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawPath = (req.url ?? '/').split('?')[0] ?? '/';
    const url = new URL(collapse(req.url ?? '/'), 'https://fake.invalid');
    const path = decodeURIComponent(url.pathname);
    const query = Object.fromEntries(url.searchParams);
    const text = await readBody(req);
    let body: unknown;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        body = Object.fromEntries(new URLSearchParams(text));
      }
    }
    const method = req.method ?? 'GET';
    const ids = answerIds(service, req);
    const record: RecordedRequest = { service, method, rawPath, path, query, body, status: 0, ids };
    this.requests.push(record);
    const send = (status: number, payload?: unknown, headers?: Record<string, string>) => {
      record.status = status;
      json(res, status, payload, { ...ids, ...headers });
    };

    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (bearer !== undefined && service !== 'login') record.bearer = bearer;
    const rule = this.rules.find(
      (r) =>
        (r.times ?? 1) > 0 &&
        r.service === service &&
        (!r.method || r.method === method) &&
        (!r.path ||
          (typeof r.path === 'string'
            ? path.toLowerCase().includes(r.path.toLowerCase())
            : r.path.test(path))),
    );
    if (rule) {
      rule.times = (rule.times ?? 1) - 1;
      if (rule.delayMs) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            this.timers.delete(t);
            resolve();
          }, rule.delayMs);
          this.timers.add(t);
        });
        if (res.destroyed) return;
      }
      if (rule.applied && (service === 'arm' || service === 'graph')) {
        if (service === 'arm') this.arm(method, path, query, body);
        else this.graph(method, path, query, body);
      }
      if (!rule.passThrough) {
        let payload = rule.body;
        const headers = { ...(rule.headers ?? {}) };
        if (service === 'arm' && rule.status === 403 && payload === undefined) {
          const action = headers['x-fake-action'] ?? `${method} ${path}`;
          payload = {
            error: {
              code: 'AuthorizationFailed',
              message: `The client '${this.clientId}' with object id '${this.clientId}' does not have authorization to perform action '${action}' over scope '${path}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
            },
          };
        }
        delete headers['x-fake-action'];
        if (rule.rawBody !== undefined) {
          record.status = rule.status;
          res.writeHead(rule.status, { ...ids, ...headers });
          res.end(rule.rawBody);
          return;
        }
        send(rule.status, payload, headers);
        return;
      }
    }

    const answer = (r: Reply) => send(r.status, r.body, r.headers);
    if (service === 'login') return answer(this.login(method, path, body, record));
    const auth = req.headers.authorization ?? '';
    const tokenScope = this.tokens.get(auth.replace(/^Bearer /, ''));
    if (tokenScope !== undefined) record.tokenScope = tokenScope;
    const expected = `${service === 'arm' ? this.armUrl : this.graphUrl}/.default`;
    if (tokenScope !== expected) {
      send(401, {
        error: { code: 'InvalidAuthenticationToken', message: `a token for ${expected} is required` },
      });
      return;
    }
    const expiry = this.tokenExpiry.get(auth.replace(/^Bearer /, '')) ?? 0;
    if (Date.now() >= expiry) {
      send(401, {
        error: {
          code: 'ExpiredAuthenticationToken',
          message: `The access token expiry UTC time '${new Date(expiry).toUTCString()}' is earlier than current UTC time '${new Date().toUTCString()}'.`,
        },
      });
      return;
    }
    answer(service === 'arm' ? this.arm(method, path, query, body) : this.graph(method, path, query, body));
  }

  private login(method: string, path: string, body: unknown, record: RecordedRequest): Reply {
    const tenant = this.tenantId;
    if (method === 'GET' && path.toLowerCase() === `/${tenant}/v2.0/.well-known/openid-configuration`) {
      const base = `${this.loginUrl}/${tenant}`;
      return reply(200, {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        issuer: `${base}/v2.0`,
        jwks_uri: `${base}/discovery/v2.0/keys`,
        response_types_supported: ['code', 'id_token', 'code id_token', 'token id_token', 'token'],
        token_endpoint_auth_methods_supported: [
          'client_secret_post',
          'private_key_jwt',
          'client_secret_basic',
        ],
      });
    }
    if (method === 'POST' && path.toLowerCase() === `/${tenant}/oauth2/v2.0/token`) {
      const form = (body ?? {}) as Record<string, string>;
      if (form.scope !== undefined) record.scope = form.scope;
      if (form.client_id !== this.clientId || form.client_secret !== this.clientSecret) {
        return reply(401, {
          error: 'invalid_client',
          error_description: 'AADSTS7000215: Invalid client secret provided.',
        });
      }
      const token = this.accessToken(form.scope ?? '');
      this.tokens.set(token, form.scope ?? '');
      this.tokenExpiry.set(token, Date.now() + this.tokenLifetimeSeconds * 1000);
      return reply(200, {
        token_type: 'Bearer',
        expires_in: this.tokenLifetimeSeconds,
        ext_expires_in: this.tokenLifetimeSeconds,
        access_token: token,
      });
    }
    return reply(404, { error: 'not_found' });
  }

  /**
   * An access token shaped as Entra ID's (a JWT whose payload names the audience, the tenant, the
   * client's `appid` and its service principal's `oid`, or after `signedInAs` the user's client
   * application, `oid`, `upn` and delegated `scp`), signed with nothing.
   */
  private accessToken(scope: string): string {
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const user = this.tokenUser;
    const issuedTo = user
      ? { appid: user.appId, oid: user.id, upn: user.upn, idtyp: 'user', scp: 'user_impersonation' }
      : { appid: this.clientId, oid: this.clientObjectId };
    const claims = {
      aud: scope.replace(/\/\.default$/, ''),
      iss: `${this.loginUrl}/${this.tenantId}/`,
      iat: now,
      exp: now + this.tokenLifetimeSeconds,
      tid: this.tenantId,
      ...issuedTo,
      uti: randomUUID(),
    };
    return `${part({ typ: 'JWT', alg: 'none' })}.${part(claims)}.fake`;
  }

  private assignmentBody(a: FakeAssignment) {
    const id = `${a.scope === '/' ? '' : a.scope}/providers/Microsoft.Authorization/roleAssignments/${a.name}`;
    const roleDefinitionId = a.roleDefinitionId.startsWith('/')
      ? a.roleDefinitionId
      : `${/^\/subscriptions\/[^/]+/i.exec(a.scope)?.[0] ?? ''}/providers/Microsoft.Authorization/roleDefinitions/${a.roleDefinitionId}`;
    return {
      id,
      name: a.name,
      type: 'Microsoft.Authorization/roleAssignments',
      properties: {
        roleDefinitionId,
        principalId: a.principalId,
        principalType: a.principalType,
        scope: a.scope,
        condition: a.condition ?? null,
        conditionVersion: a.conditionVersion ?? null,
        createdOn: a.createdOn,
        updatedOn: a.createdOn,
        createdBy: null,
        updatedBy: null,
        delegatedManagedIdentityResourceId: null,
        description: null,
      },
    };
  }

  private arm(method: string, path: string, query: Record<string, string>, body: unknown): Reply {
    const assignments = ASSIGNMENTS.exec(path);
    if (assignments) {
      const scope = collapse(assignments[1] ?? '');
      const name = assignments[2]?.toLowerCase();
      if (!name && method === 'GET') return this.listAssignments(scope, query);
      if (!name) return reply(405);
      const existing = this.assignmentsByName.get(name);
      const here = existing && existing.scope.toLowerCase() === scope.toLowerCase() ? existing : undefined;
      if (method === 'GET') {
        if (!here) return reply(404, { error: { code: 'RoleAssignmentNotFound', message: 'not found' } });
        return reply(200, this.assignmentBody(here));
      }
      if (method === 'DELETE') {
        if (!here) return reply(204);
        this.assignmentsByName.delete(name);
        return reply(200, this.assignmentBody(here));
      }
      if (method === 'PUT') {
        const props = ((body ?? {}) as { properties?: Record<string, string> }).properties ?? {};
        const roleDefinitionId = props.roleDefinitionId ?? '';
        const principalId = props.principalId ?? '';
        const duplicate = [...this.assignmentsByName.values()].find(
          (a) =>
            a.scope.toLowerCase() === scope.toLowerCase() &&
            a.principalId.toLowerCase() === principalId.toLowerCase() &&
            a.roleDefinitionId.split('/').pop()?.toLowerCase() ===
              roleDefinitionId.split('/').pop()?.toLowerCase(),
        );
        if (duplicate) {
          return reply(409, {
            error: { code: 'RoleAssignmentExists', message: 'The role assignment already exists.' },
          });
        }
        const created: FakeAssignment = {
          name,
          scope,
          roleDefinitionId,
          principalId,
          principalType: props.principalType ?? 'ServicePrincipal',
          createdOn: new Date().toISOString(),
        };
        if (props.condition) created.condition = props.condition;
        if (props.conditionVersion) created.conditionVersion = props.conditionVersion;
        this.assignmentsByName.set(name, created);
        return reply(201, this.assignmentBody(created));
      }
      return reply(405);
    }
    const instances = SCHEDULE_INSTANCES.exec(path);
    if (instances && method === 'GET') return this.listScheduleInstances(collapse(instances[1] ?? ''), query);
    const roleDef = ROLE_DEFINITION.exec(path);
    if (roleDef && method === 'GET') {
      const def = this.roleDefinitions.get((roleDef[2] ?? '').toLowerCase());
      if (!def) return reply(404, { error: { code: 'RoleDefinitionDoesNotExist', message: 'not found' } });
      return reply(200, {
        id: path,
        name: def.id,
        type: 'Microsoft.Authorization/roleDefinitions',
        properties: {
          roleName: def.roleName,
          type: def.roleType ?? 'BuiltInRole',
          description: def.roleName,
          assignableScopes: ['/'],
          permissions: [
            { actions: def.actions, notActions: def.notActions ?? [], dataActions: [], notDataActions: [] },
          ],
        },
      });
    }
    const resource = this.resources.get(path.toLowerCase());
    if (resource && method === 'GET') {
      const name = resource.id.split('/').pop();
      return reply(200, {
        id: resource.id,
        name,
        type: 'Microsoft.Kubernetes/connectedClusters',
        location: resource.location,
        tags: resource.tags ?? {},
        properties: resource.properties ?? {},
      });
    }
    return reply(404, {
      error: { code: 'ResourceNotFound', message: `The resource '${path}' was not found.` },
    });
  }

  /** The assignments of `principalId eq '…'` (every one without a filter) at, above or below `scope`. */
  private assignmentsAround(scope: string, query: Record<string, string>): FakeAssignment[] {
    const filter = /principalId eq '([^']+)'/i.exec(query.$filter ?? '')?.[1]?.toLowerCase();
    const s = scope.toLowerCase();
    const related = (a: FakeAssignment) => {
      const as = a.scope.toLowerCase();
      const above =
        as === '/' ||
        /^\/providers\/microsoft\.management\/managementgroups\//.test(as) ||
        s === as ||
        s.startsWith(`${as}/`);
      const below = as.startsWith(`${s}/`);
      return above || below;
    };
    return [...this.assignmentsByName.values()].filter(
      (a) => related(a) && (!filter || a.principalId.toLowerCase() === filter),
    );
  }

  /** Role assignment schedule instances (API 2020-10-01): one per active assignment, as ARM lists them. */
  private listScheduleInstances(scope: string, query: Record<string, string>): Reply {
    const value = this.assignmentsAround(scope, query).map((a) => {
      const { id, properties } = this.assignmentBody(a);
      return {
        id: `${a.scope === '/' ? '' : a.scope}/providers/Microsoft.Authorization/roleAssignmentScheduleInstances/${a.name}`,
        name: a.name,
        type: 'Microsoft.Authorization/roleAssignmentScheduleInstances',
        properties: {
          scope: a.scope,
          roleDefinitionId: properties.roleDefinitionId,
          principalId: a.principalId,
          principalType: a.principalType,
          originRoleAssignmentId: id,
          status: 'Provisioned',
          startDateTime: a.createdOn,
          endDateTime: a.pim?.endDateTime ?? null,
          assignmentType: a.pim?.assignmentType ?? 'Assigned',
          memberType: 'Direct',
          createdOn: a.createdOn,
        },
      };
    });
    return reply(200, { value });
  }

  private listAssignments(scope: string, query: Record<string, string>): Reply {
    const all = this.assignmentsAround(scope, query);
    const skip = Number(query.$skipToken ?? '0') || 0;
    const page = all.slice(skip, skip + this.pageSize);
    const out: { value: unknown[]; nextLink?: string } = { value: page.map((a) => this.assignmentBody(a)) };
    if (skip + this.pageSize < all.length) {
      const next = new URL(
        `${this.armUrl}${scope === '/' ? '' : scope}/providers/Microsoft.Authorization/roleAssignments`,
      );
      next.searchParams.set('api-version', query['api-version'] ?? '2022-04-01');
      if (query.$filter) next.searchParams.set('$filter', query.$filter);
      next.searchParams.set('$skipToken', String(skip + this.pageSize));
      out.nextLink = next.href;
    }
    return reply(200, out);
  }

  private graph(method: string, path: string, query: Record<string, string>, body: unknown): Reply {
    // As Graph does, `$select` narrows an object to the properties it names.
    const selected = (o: Record<string, unknown>) => {
      if (!query.$select) return o;
      const names = new Set(query.$select.split(',').map((n) => n.trim().toLowerCase()));
      return Object.fromEntries(Object.entries(o).filter(([k]) => names.has(k.toLowerCase())));
    };
    const notFound = (id: string) =>
      reply(404, {
        error: {
          code: 'Request_ResourceNotFound',
          message: `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`,
        },
      });
    let m = /^\/v1\.0\/servicePrincipals(?:\/([^/(]+)|\(appId='([^']+)'\))$/i.exec(path);
    if (m) {
      const key = (m[1] ?? m[2] ?? '').toLowerCase();
      const sp = m[1]
        ? this.servicePrincipals.get(key)
        : [...this.servicePrincipals.values()].find((s) => s.appId.toLowerCase() === key);
      if (!sp) return notFound(key);
      if (method === 'GET') {
        return reply(
          200,
          selected({
            id: sp.id,
            appId: sp.appId,
            displayName: sp.displayName,
            accountEnabled: sp.accountEnabled,
            servicePrincipalType: sp.servicePrincipalType ?? 'Application',
            appOwnerOrganizationId: sp.appOwnerOrganizationId ?? this.tenantId,
          }),
        );
      }
      if (method === 'PATCH') {
        const enabled = (body as { accountEnabled?: unknown } | undefined)?.accountEnabled;
        if (typeof enabled === 'boolean') sp.accountEnabled = enabled;
        return reply(204);
      }
      return reply(405);
    }
    m = /^\/v1\.0\/applications\(appId='([^']+)'\)$/i.exec(path);
    if (m && method === 'GET') {
      const key = (m[1] ?? '').toLowerCase();
      const sp = [...this.servicePrincipals.values()].find((s) => s.appId.toLowerCase() === key);
      if (!sp?.appCreatedDateTime) return notFound(key);
      return reply(200, { id: randomUUID(), appId: sp.appId, createdDateTime: sp.appCreatedDateTime });
    }
    m = /^\/v1\.0\/users\/([^/]+)(\/revokeSignInSessions)?$/i.exec(path);
    if (m) {
      const key = (m[1] ?? '').toLowerCase();
      const user =
        this.users.get(key) ??
        [...this.users.values()].find((u) => u.userPrincipalName.toLowerCase() === key);
      if (!user) return notFound(key);
      if (m[2] && method === 'POST') {
        user.revokedSessions++;
        return reply(200, {
          '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean',
          value: true,
        });
      }
      if (m[2]) return reply(405);
      if (method === 'GET') {
        return reply(
          200,
          selected({
            id: user.id,
            displayName: user.displayName,
            userPrincipalName: user.userPrincipalName,
            mail: user.mail ?? null,
            otherMails: [],
            accountEnabled: user.accountEnabled,
            createdDateTime: user.createdDateTime ?? null,
          }),
        );
      }
      if (method === 'PATCH') {
        const enabled = (body as { accountEnabled?: unknown } | undefined)?.accountEnabled;
        if (typeof enabled === 'boolean') user.accountEnabled = enabled;
        return reply(204);
      }
      return reply(405);
    }
    return reply(400, {
      error: { code: 'BadRequest', message: `Resource not found for the segment '${path}'.` },
    });
  }
}

/** Starts a fake Azure (token endpoint, ARM, Graph). */
export function startFakeAzure(): Promise<FakeAzure> {
  return FakeAzure.start();
}

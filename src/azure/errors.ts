import { cutBefore } from '../core/formats/fields.ts';
import { scrubSecrets } from '../secrets.ts';
import { type CallRecord, loggedCalls } from './call-log.ts';

/** What went wrong with an Azure call, for people: what happened and what to fix. */
export interface FailureInfo {
  status?: number;
  code?: string;
  message: string;
  /** What to change so that a retry can succeed. */
  fix?: string;
  /** 404: the target does not exist (any more). */
  gone: boolean;
}

/** `403 AuthorizationFailed: message`, or just the message when no status came back. */
export function failureText(f: FailureInfo): string {
  if (f.status === undefined) return f.message;
  const head = `${f.status}${f.code ? ` ${f.code}` : ''}`;
  return f.message ? `${head}: ${f.message}` : head;
}

/** What the failed call tried to do, so that a 403 can name the missing permission. */
export interface FailureContext {
  service: 'arm' | 'graph';
  /** ARM: the RBAC action the call needs, e.g. `Microsoft.Authorization/roleAssignments/delete`. */
  action?: string;
  /** ARM: the scope the call acts on. */
  scope?: string;
  /** Graph: the application permissions that allow the call, least privileged first. */
  graphPermissions?: string;
}

/** The Graph application permissions that allow disabling and re-enabling a service principal. */
export const SP_PERMISSIONS =
  'Application.ReadWrite.OwnedBy (arc-responder must be an owner of the service principal) or Application.ReadWrite.All';
/** Reading a service principal by appId: what the disable permissions also allow, or the read-only one. */
export const SP_READ_PERMISSIONS = `${SP_PERMISSIONS}, or Application.Read.All`;
/** The Graph application permissions that allow disabling and re-enabling a user. */
export const USER_DISABLE_PERMISSIONS =
  'User.EnableDisableAccount.All with User.Read.All (an administrator account also needs an Entra role such as Privileged Authentication Administrator)';
/** The Graph application permission that allows revoking a user's sign-in sessions. */
export const USER_SESSIONS_PERMISSIONS = 'User.RevokeSessions.All';

/** An error answer from Microsoft Graph. */
export class GraphRequestError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  readonly method: string;
  readonly path: string;
  /** The wait a throttled answer asked for (Retry-After), when it was longer than the client waits. */
  readonly retryAfterMs: number | undefined;
  constructor(
    method: string,
    path: string,
    status: number,
    code: string | undefined,
    message: string,
    retryAfterMs?: number,
  ) {
    super(message || `${method} ${path} answered ${status}`);
    this.name = 'GraphRequestError';
    this.status = status;
    this.code = code;
    this.method = method;
    this.path = path;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * An answer to a write that does not confirm it: a 2xx that is not ARM's (a proxy's page), say.
 * The write may have been made; a read settles it.
 */
export class UnconfirmedWriteError extends Error {
  /** The status of the answer (a success, so not named `status`: it is no error status). */
  readonly answerStatus: number | undefined;
  /** Read by `mayHaveApplied`: the request reached something that answered. */
  readonly mayHaveApplied = true;
  constructor(message: string, answerStatus: number | undefined) {
    super(message);
    this.name = 'UnconfirmedWriteError';
    this.answerStatus = answerStatus;
  }
}

/**
 * Where the ARM client keeps a Retry-After it would not wait for (see `capRetryAfter` in arm.ts):
 * the SDK must not see it, the failure's advice should.
 */
export const UNHONOURED_RETRY_AFTER_HEADER = 'x-arc-unhonoured-retry-after-ms';

/** The Retry-After a failed call was given and not waited for, in ms, from either client. */
function unhonouredRetryAfter(error: unknown): number | undefined {
  const e = error as {
    retryAfterMs?: unknown;
    response?: { headers?: { get?: (name: string) => string | undefined } };
  };
  if (typeof e?.retryAfterMs === 'number') return e.retryAfterMs;
  const header = e?.response?.headers?.get?.(UNHONOURED_RETRY_AFTER_HEADER);
  const ms = header === undefined ? Number.NaN : Number(header);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** The `/providers/Microsoft.Authorization/roleAssignments/<name>` end of a role assignment id. */
const ASSIGNMENT_TAIL = /\/providers\/Microsoft\.Authorization\/roleAssignments\/[^/]+$/i;

/** "30 seconds", "2 minutes", "3 hours": a wait as people say it, rounded up. */
function waitText(ms: number): string {
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (ms < 60_000) return unit(Math.ceil(ms / 1000), 'second');
  if (ms < 3_600_000) return unit(Math.ceil(ms / 60_000), 'minute');
  return unit(Math.ceil(ms / 3_600_000), 'hour');
}

/** Errors of the credential (no token): the call they were for was never sent. */
const CREDENTIAL_ERRORS: ReadonlySet<string> = new Set([
  'CredentialUnavailableError',
  'AuthenticationError',
  'AggregateAuthenticationError',
  'AuthenticationRequiredError',
]);
/** Connections lost after the request went out: Azure was reached. */
const LOST_CODES = new Set(['ECONNRESET', 'ESOCKETTIMEDOUT', 'EPIPE', 'ECONNABORTED']);
/** Connections never made: a name, a route, a firewall or TLS trust. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
]);

const CREDENTIAL_FIX =
  'arc-responder has no working Azure credential: give it a managed identity or workload identity, or set ' +
  'AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (and AZURE_AUTHORITY_HOST outside the public cloud)';

/**
 * Entra ID's answers to a token request that a person can fix, by their AADSTS code: the code is
 * the one fact worth keeping of a long message, so it leads the text shown.
 */
const ENTRA_FIXES: ReadonlyArray<[RegExp, string]> = [
  [
    /AADSTS7000222|AADSTS7000215/,
    'the client secret in AZURE_CLIENT_SECRET is expired or wrong: create a new secret for the app registration (AZURE_CLIENT_ID) and set it',
  ],
  [
    /AADSTS700016/,
    'AZURE_CLIENT_ID names no application in the tenant AZURE_TENANT_ID: check both, and that the app is consented there',
  ],
  [
    /AADSTS90002|AADSTS900023|endpoints_resolution_error/,
    'AZURE_TENANT_ID names no tenant that the authority (AZURE_AUTHORITY_HOST) knows: check the tenant id and the cloud',
  ],
  // A failure on Entra ID's side (a 5xx): the credential is fine. After one, MSAL answers every
  // token request for that scope from its throttling cache, with the same error, for about 60 s.
  [
    /\b(?:server_error|temporarily_unavailable)\b|AADSTS50000|AADSTS90033|AADSTS90024|AADSTS90006|Http status code: 5\d\d|A server error occurr?ed/i,
    'Entra ID failed to issue a token (an error on its side, not a wrong credential; after one, the identity library waits about a minute before it asks again): press again in a minute or two',
  ],
];

/** ARM's codes for a token that was valid when the call was signed and expired before an attempt. */
const EXPIRED_TOKEN = /^(?:ExpiredAuthenticationToken|InvalidAuthenticationTokenExpired)$/i;

/** A message that is an HTML or XML page (a proxy's or a gateway's), not Azure's error text. */
const PAGE = /^\s*<(!doctype|html|\?xml|head|body|title)\b/i;

function clip(text: string, max = 400): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${cutBefore(oneLine, max - 1)}…` : oneLine;
}

/**
 * A credential failure as Entra ID told it: its own description (`AADSTS50000: There was an error
 * issuing a token.`) when the identity library's text carries one, without the library's wrapping
 * (the 400 it says of every failure, its troubleshooting link, the empty correlation fields).
 */
function credentialMessage(message: string): string {
  // Up to the trailers Entra ID and MSAL put after it (its trace and correlation ids).
  const told = /AADSTS\d+: .*?(?= - (?:Correlation|Trace) ID:| Trace ID:| Correlation ID:|,\)|,$|$)/.exec(
    message,
  )?.[0];
  if (told) return told.trim();
  return message
    .replace(/ ?To troubleshoot, visit \S+\.?/g, '')
    .replace(/ ?Status code: 400\b/g, '')
    .trim();
}

/**
 * Turns an error from the Azure SDK, `@azure/identity` or the Graph client into a message and a
 * fix. A 403 names the permission (and scope) the identity lacks.
 */
export function describeFailure(error: unknown, ctx: FailureContext): FailureInfo {
  const e = (error ?? {}) as {
    name?: unknown;
    message?: unknown;
    code?: unknown;
    statusCode?: unknown;
    status?: unknown;
  };
  const name = typeof e.name === 'string' ? e.name : '';
  const rawMessage = typeof e.message === 'string' ? e.message : String(error);
  const entra = /AADSTS\d+/.exec(rawMessage)?.[0];
  // Shown in Slack and kept in the store: without a secret that an echoing endpoint quoted back.
  const message = PAGE.test(rawMessage)
    ? 'an HTML page, not an answer of Azure (a proxy or gateway answered in its place)'
    : clip(scrubSecrets(entra && !rawMessage.startsWith(entra) ? `${entra}: ${rawMessage}` : rawMessage));
  const status =
    typeof e.statusCode === 'number' ? e.statusCode : typeof e.status === 'number' ? e.status : undefined;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const base: FailureInfo = { message, gone: false };
  if (status !== undefined) base.status = status;
  if (code !== undefined) base.code = code;

  if (CREDENTIAL_ERRORS.has(name)) {
    const known = ENTRA_FIXES.find(([pattern]) => pattern.test(rawMessage));
    // Its status is not the token endpoint's: EnvironmentCredential wraps every failure of the
    // credential under it as a 400, whatever Entra ID answered (a 500, a 401, or nothing at all).
    const { status: _wrapped, ...told } = base;
    // Taken from the whole text: the library's wrapping comes first, and would be all a clip kept.
    const own = PAGE.test(rawMessage) ? message : clip(scrubSecrets(credentialMessage(rawMessage)));
    return { ...told, message: own, fix: known?.[1] ?? CREDENTIAL_FIX };
  }
  if (name === 'AbortError' || code === 'ABORT_ERR') {
    return { ...base, message: 'the call was cancelled or timed out', fix: 'try again' };
  }
  if (status === undefined) {
    if (code && LOST_CODES.has(code)) {
      return {
        ...base,
        fix: 'the connection to Azure was lost after the request went out: try again (whether a change was made is checked first)',
      };
    }
    if (code && NETWORK_CODES.has(code)) {
      const which = ctx.service === 'arm' ? 'AZURE_ARM_ENDPOINT' : 'GRAPH_ENDPOINT';
      return { ...base, fix: `could not reach Azure: check ${which}, DNS, proxy, firewall and TLS trust` };
    }
    return base;
  }
  if (status === 404) return { ...base, gone: true };
  if (status === 401 && code !== undefined && EXPIRED_TOKEN.test(code)) {
    return { ...base, fix: 'the token expired while the call waited to be retried: press again' };
  }
  if (status === 401) {
    return {
      ...base,
      fix:
        'the token was refused: check that AZURE_TENANT_ID is the tenant that owns the subscription and that ' +
        'AZURE_ARM_ENDPOINT, GRAPH_ENDPOINT and AZURE_AUTHORITY_HOST belong to the same cloud',
    };
  }
  if (status === 403) {
    if (ctx.service === 'graph') {
      return {
        ...base,
        fix: `grant arc-responder's identity the Microsoft Graph application permission ${ctx.graphPermissions ?? 'needed for this call'}, with admin consent`,
      };
    }
    const parsed = /perform action '([^']+)' over scope '([^']+)'/i.exec(rawMessage);
    const action = parsed?.[1] ?? ctx.action ?? 'the needed permission';
    // ARM names the assignment itself as the scope of a refused delete or write of one: the role
    // is granted at the scope it lives in (or above).
    const scope = (parsed?.[2] ?? ctx.scope ?? 'this scope').replace(ASSIGNMENT_TAIL, '') || '/';
    const conditional = /condition/i.test(rawMessage)
      ? ' (an ABAC condition on its role assignment refused it: the condition allows the Arc Cluster User role only)'
      : '';
    return {
      ...base,
      fix: `grant arc-responder's identity ${action} at ${scope}${conditional}; deploy/azure/arc-responder-role.json has the custom role`,
    };
  }
  // A 429, or an answer the SDK would retry at once (a 503, a gateway's 502 or 504, a 500, a 408).
  if (status === 429 || status === 408 || status >= 500) {
    const wait = unhonouredRetryAfter(error);
    if (wait !== undefined) {
      return {
        ...base,
        fix: `Azure asked to wait ${waitText(wait)} before the next call: try again after that`,
      };
    }
  }
  if (status === 429)
    return { ...base, fix: 'Azure kept throttling the calls after the retries: try again in a minute' };
  if (status >= 500) return { ...base, fix: `Azure answered ${status} after the retries: try again later` };
  return base;
}

/**
 * Connection failures after a request went out: the server may have acted on it. A bare ETIMEDOUT
 * is not among them: it also ends connections that never opened, and crediting a change this
 * service did not make would let Undo reverse what someone else did.
 */
const LOST_AFTER_SENDING =
  /ECONNRESET|ESOCKETTIMEDOUT|EPIPE|ECONNABORTED|socket hang up|aborted|no answer from (Graph|ARM) within/i;
/** Failures before a request went out: a name that does not resolve, a connection never opened. */
const NEVER_SENT =
  /\bconnect |getaddrinfo|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEOUT|EHOSTUNREACH|ENETUNREACH|certificate|CERT_|self.signed|before secure TLS connection|could not send/i;

/**
 * Whether a write that failed may have been made all the same: a server error (but 501, 503 and
 * 505, which refuse before acting) or a connection lost after the request went out (a reset, a
 * read timeout). Never when it was not sent: no token (a credential error, whatever its status), a
 * name that does not resolve, a connection never opened, TLS.
 */
export function mayHaveApplied(error: unknown): boolean {
  const e = (error ?? {}) as {
    name?: unknown;
    code?: unknown;
    statusCode?: unknown;
    status?: unknown;
    message?: unknown;
  };
  if (typeof e.name === 'string' && CREDENTIAL_ERRORS.has(e.name)) return false;
  if ((error as { mayHaveApplied?: unknown })?.mayHaveApplied === true) return true;
  const status =
    typeof e.statusCode === 'number' ? e.statusCode : typeof e.status === 'number' ? e.status : undefined;
  if (status !== undefined) return serverMayHaveActed(status);
  const text = `${typeof e.code === 'string' ? e.code : ''} ${typeof e.message === 'string' ? e.message : ''}`;
  return transportMayHaveActed(text) || e.name === 'AbortError';
}

const serverMayHaveActed = (status: number): boolean =>
  status >= 500 && status !== 501 && status !== 503 && status !== 505;

const transportMayHaveActed = (text: string): boolean =>
  !NEVER_SENT.test(text) && LOST_AFTER_SENDING.test(text);

/** The same judgement for a logged call: its status, or the transport error it ended with. */
export const callMayHaveApplied = (c: CallRecord): boolean =>
  c.status !== undefined ? serverMayHaveActed(c.status) : transportMayHaveActed(c.error ?? '');

/**
 * Whether this step's write (`method`) may have been made: its last error, or any try of it the
 * client sent before (a 500 that was applied, then a 429 on the re-send, say).
 */
export const writeMayHaveApplied = (error: unknown, method: string): boolean =>
  mayHaveApplied(error) || loggedCalls().some((c) => c.method === method && callMayHaveApplied(c));

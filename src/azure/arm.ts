import { randomUUID } from 'node:crypto';
import { AuthorizationManagementClient, type RoleAssignment } from '@azure/arm-authorization';
import { ResourceManagementClient } from '@azure/arm-resources';
import { type PipelinePolicy, type PipelineRequest, RestError } from '@azure/core-rest-pipeline';
import type { TokenCredential } from '@azure/identity';
import type { AssignmentInfo, AssignmentToRestore, RoleDefinitionInfo } from '../core/remediation-plan.ts';
import { roleGuid } from '../core/remediation-plan.ts';
import { callLogPolicy } from './call-log.ts';
import { httpsBase, scopeForEndpoint } from './endpoints.ts';
import { UNHONOURED_RETRY_AFTER_HEADER, UnconfirmedWriteError } from './errors.ts';
import { MAX_RETRY_AFTER_MS, parseRetryAfter, type RetrySettings } from './graph.ts';

/** API version used to read connected clusters by id. */
export const CONNECTED_CLUSTER_API_VERSION = '2024-01-01';

/** A resource read by id: the fields enrichment shows. */
export interface ResourceFacts {
  location?: string;
  tags?: Record<string, string>;
  properties?: Record<string, unknown>;
}

/** The ARM reads and writes the responder makes, through the Azure SDK clients. */
export interface ArmGateway {
  /** Every assignment of `principalId` at, above or below `scope` (all pages). */
  listAssignmentsForPrincipal(
    scope: string,
    principalId: string,
    signal?: AbortSignal,
  ): Promise<AssignmentInfo[]>;
  /**
   * The active assignments of `principalId` at, above or below `scope` that end at a set time: made
   * or activated through Privileged Identity Management (its role assignment schedule instances;
   * one without an end time is left out). All pages.
   */
  listTimeBoundForPrincipal(scope: string, principalId: string, signal?: AbortSignal): Promise<TimeBound[]>;
  /** A role definition by its full id; cached per gateway. */
  getRoleDefinition(roleDefinitionId: string, signal?: AbortSignal): Promise<RoleDefinitionInfo>;
  /**
   * One assignment by full id (`GET {scope}/providers/Microsoft.Authorization/roleAssignments/{name}`),
   * or undefined when it does not exist (404). Other failures throw.
   */
  getAssignment(id: string, signal?: AbortSignal): Promise<AssignmentInfo | undefined>;
  /** Deletes an assignment by full id: `already-gone` for 204 and 404. */
  deleteAssignment(id: string): Promise<'deleted' | 'already-gone'>;
  /** Re-creates an assignment under a new GUID name: `exists` when ARM already has it. */
  createAssignment(restore: AssignmentToRestore): Promise<{ result: 'created' | 'exists'; id?: string }>;
  /** Any resource by id (used for the connected cluster). */
  getResource(id: string, apiVersion: string, signal?: AbortSignal): Promise<ResourceFacts>;
}

/** An active role assignment that ends at a set time (see `ArmGateway.listTimeBoundForPrincipal`). */
export interface TimeBound {
  /** The role assignment's full ARM id, as the schedule instance names it. */
  assignmentId: string;
  /** ISO 8601. */
  endsAt: string;
  /** A PIM activation of an eligible role, rather than an active assignment with an end time. */
  activated: boolean;
}

/** What the gateway is built from. */
export interface ArmGatewayOptions {
  endpoint: string;
  credential: TokenCredential;
  tlsCa?: string;
  retry?: RetrySettings;
  /** How long one attempt of a call may wait for ARM's answer. Default 30 s, as Graph's. */
  requestTimeoutMs?: number;
}

/**
 * ARM ids come with a leading `/`; the SDK puts `scope` and ids after a `/` of its own without
 * encoding them, so a leading slash would produce `//subscriptions/...` on the wire.
 */
export const sdkId = (id: string): string => id.replace(/^\/+/, '');

const statusOf = (error: unknown): number | undefined => {
  const s = (error as { statusCode?: unknown }).statusCode;
  return typeof s === 'number' ? s : undefined;
};

function toAssignmentInfo(a: RoleAssignment): AssignmentInfo | undefined {
  if (!a.id || !a.roleDefinitionId || !a.principalId) return undefined;
  const info: AssignmentInfo = {
    id: a.id,
    scope: a.scope ?? a.id.replace(/\/providers\/Microsoft\.Authorization\/roleAssignments\/[^/]+$/i, ''),
    roleDefinitionId: a.roleDefinitionId,
    principalId: a.principalId,
  };
  if (a.principalType) info.principalType = a.principalType;
  if (a.condition) info.condition = a.condition;
  if (a.conditionVersion) info.conditionVersion = a.conditionVersion;
  if (a.description) info.description = a.description;
  if (a.createdOn instanceof Date && !Number.isNaN(a.createdOn.getTime())) {
    info.createdOn = a.createdOn.toISOString();
  }
  return info;
}

/** The part of an SDK response that `capRetryAfter` uses. */
interface RetryResponse {
  status: number;
  bodyAsText?: string | null;
  headers: {
    get(name: string): string | undefined;
    delete(name: string): void;
    set(name: string, value: string): void;
  };
}

/** The headers in which ARM asks for a wait before a retry (the SDK's retry policy reads them). */
const RETRY_AFTER_HEADERS = ['retry-after-ms', 'x-ms-retry-after-ms', 'retry-after'];

/** The statuses the SDK's retry policy retries without a Retry-After, with its own short backoff. */
const retriedAnyway = (status: number) =>
  status === 408 || (status >= 500 && status !== 501 && status !== 505);

/**
 * Gives up on a throttled call that asks for a wait longer than `maxMs`, as the Graph client does:
 * the SDK's retry policy honours any Retry-After, so an hour's wait would hold a remediation step
 * (and the alert's run) for that hour. Without the header, the SDK does not retry a 429 and the
 * step fails with it, so the next click tries again. A 503 (or another 5xx) it would retry at
 * once, against the wait asked for: that answer fails here, as an error the retry policy passes on.
 */
function capRetryAfter(maxMs: number) {
  return {
    name: 'arcCapRetryAfter',
    async sendRequest<Req, Res extends RetryResponse>(
      request: Req,
      next: (request: Req) => Promise<Res>,
    ): Promise<Res> {
      const response = await next(request);
      const waits = RETRY_AFTER_HEADERS.map((name) => {
        const value = response.headers.get(name);
        if (value === undefined) return undefined;
        return name === 'retry-after' ? parseRetryAfter(value) : Number(value);
      });
      const longest = Math.max(...waits.map((ms) => (ms === undefined || Number.isNaN(ms) ? 0 : ms)));
      if (waits.some((ms) => ms !== undefined && !(ms <= maxMs))) {
        for (const name of RETRY_AFTER_HEADERS) response.headers.delete(name);
        if (longest > maxMs && retriedAnyway(response.status)) {
          throw unhonouredWait(request, response, longest);
        }
        // Out of the SDK's sight, but kept for the failure's advice (errors.ts).
        if (longest > maxMs) response.headers.set(UNHONOURED_RETRY_AFTER_HEADER, String(longest));
      }
      return response;
    },
  };
}

/**
 * The failure of an answer whose wait is not honoured, as the SDK would raise it (ARM's error code
 * and message), with the wait for the advice. It carries no response: with one, the retry policy
 * would retry it.
 */
function unhonouredWait(request: unknown, response: RetryResponse, waitMs: number): RestError {
  let code: string | undefined;
  let message = `Azure answered ${response.status}`;
  try {
    const body = JSON.parse(response.bodyAsText ?? '') as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // no JSON body: the status says it
  }
  const error = new RestError(message, {
    statusCode: response.status,
    ...(code ? { code } : {}),
    request: request as PipelineRequest,
  });
  return Object.assign(error, { retryAfterMs: waitMs });
}

/**
 * Gives each attempt of a call `ms` to be answered. The SDK sets no timeout, so an ARM that takes
 * a request and never answers would hold a Revoke (and its alert's lock) for good. A timed-out
 * attempt fails as a lost connection (`ESOCKETTIMEDOUT`), which the SDK's retry policy retries
 * and the remediator counts as a write that may have been made.
 */
function answerDeadline(ms: number): PipelinePolicy {
  return {
    name: 'arcAnswerDeadline',
    async sendRequest(request, next) {
      const caller = request.abortSignal;
      const controller = new AbortController();
      const forward = () => controller.abort();
      if (caller?.aborted) controller.abort();
      else caller?.addEventListener('abort', forward, { once: true });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, ms);
      request.abortSignal = controller.signal;
      try {
        return await next(request);
      } catch (error) {
        if (!timedOut) throw error;
        const within = ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
        throw new RestError(`no answer from ARM within ${within} (${request.method} ${request.url})`, {
          code: 'ESOCKETTIMEDOUT',
          request,
        });
      } finally {
        clearTimeout(timer);
        caller?.removeEventListener('abort', forward);
        if (caller === undefined) delete request.abortSignal;
        else request.abortSignal = caller;
      }
    },
  };
}

/**
 * Signs each retry of a call with a token asked for again. The SDK signs a call once, before its
 * retries: after a wait that ARM asked for (up to a minute, three times), the token it signed
 * with may have expired, and ARM would refuse the retry (401 ExpiredAuthenticationToken). The
 * credential answers from its cache while its token lasts.
 */
function signEachRetry(credential: TokenCredential, scope: string): PipelinePolicy {
  const sent = new WeakSet<PipelineRequest>();
  return {
    name: 'arcSignEachRetry',
    async sendRequest(request, next) {
      if (!sent.has(request)) sent.add(request);
      else {
        // As the SDK's own signing asks (CAE), so that the credential answers from the same cache.
        const token = await credential.getToken(scope, {
          enableCae: true,
          ...(request.abortSignal ? { abortSignal: request.abortSignal } : {}),
        });
        if (token) request.headers.set('authorization', `Bearer ${token.token}`);
      }
      return next(request);
    },
  };
}

/** Creates the gateway; the ARM endpoint must be https and gives the token scope. */
export function createArmGateway(options: ArmGatewayOptions): ArmGateway {
  const endpoint = httpsBase(options.endpoint, 'AZURE_ARM_ENDPOINT');
  const scope = scopeForEndpoint(endpoint);
  const retryOptions = {
    maxRetries: options.retry?.maxRetries ?? 3,
    retryDelayInMs: options.retry?.retryDelayMs ?? 800,
    maxRetryDelayInMs: options.retry?.maxRetryDelayMs ?? 30_000,
  };
  const common = {
    endpoint,
    retryOptions,
    additionalPolicies: [
      { policy: signEachRetry(options.credential, scope), position: 'perRetry' as const },
      { policy: answerDeadline(options.requestTimeoutMs ?? 30_000), position: 'perRetry' as const },
      // Outside the call log, which so records each answer as it came (ids included).
      {
        policy: capRetryAfter(options.retry?.maxRetryAfterMs ?? MAX_RETRY_AFTER_MS),
        position: 'perRetry' as const,
      },
      { policy: callLogPolicy, position: 'perRetry' as const },
    ],
    ...(options.tlsCa ? { tlsOptions: { ca: options.tlsCa } } : {}),
  };
  // Every operation used here is addressed by scope or id; the subscription id is never sent.
  const placeholderSubscription = '00000000-0000-0000-0000-000000000000';
  const auth = new AuthorizationManagementClient(options.credential, placeholderSubscription, {
    ...common,
    credentialScopes: [scope],
  });
  const resources = new ResourceManagementClient(options.credential, placeholderSubscription, {
    ...common,
    credentials: { scopes: [scope] },
  });
  const roleCache = new Map<string, RoleDefinitionInfo>();

  return {
    async listAssignmentsForPrincipal(atScope, principalId, signal) {
      const out: AssignmentInfo[] = [];
      const pages = auth.roleAssignments.listForScope(sdkId(atScope), {
        filter: `principalId eq '${principalId}'`,
        ...(signal ? { abortSignal: signal } : {}),
      });
      for await (const a of pages) {
        const info = toAssignmentInfo(a);
        if (info) out.push(info);
      }
      return out;
    },

    async listTimeBoundForPrincipal(atScope, principalId, signal) {
      const out: TimeBound[] = [];
      const pages = auth.roleAssignmentScheduleInstances.listForScope(sdkId(atScope), {
        filter: `principalId eq '${principalId}'`,
        ...(signal ? { abortSignal: signal } : {}),
      });
      for await (const instance of pages) {
        const end = instance.endDateTime;
        const id = instance.originRoleAssignmentId;
        if (!(end instanceof Date) || Number.isNaN(end.getTime()) || typeof id !== 'string' || id === '')
          continue;
        out.push({
          assignmentId: id,
          endsAt: end.toISOString(),
          activated: instance.assignmentType?.toLowerCase() === 'activated',
        });
      }
      return out;
    },

    async getRoleDefinition(roleDefinitionId, signal) {
      const key = roleGuid(roleDefinitionId) ?? roleDefinitionId.toLowerCase();
      const cached = roleCache.get(key);
      if (cached) return cached;
      const def = await auth.roleDefinitions.getById(
        sdkId(roleDefinitionId),
        signal ? { abortSignal: signal } : {},
      );
      const info: RoleDefinitionInfo = {
        id: key,
        permissions: (def.permissions ?? []).map((p) => ({
          actions: p.actions ?? [],
          notActions: p.notActions ?? [],
        })),
      };
      if (def.roleName) info.roleName = def.roleName;
      roleCache.set(key, info);
      return info;
    },

    async getAssignment(id, signal) {
      try {
        const a = await auth.roleAssignments.getById(sdkId(id), signal ? { abortSignal: signal } : {});
        const info = toAssignmentInfo(a);
        // A record without its principal or role cannot be checked: never mistake it for "gone".
        if (!info) throw new Error(`ARM returned role assignment ${id} without its principal or role`);
        return info;
      } catch (error) {
        if (statusOf(error) === 404) return undefined;
        throw error;
      }
    },

    async deleteAssignment(id) {
      let status: number | undefined;
      let contentType: string | undefined;
      let deleted: RoleAssignment | undefined;
      try {
        deleted = await auth.roleAssignments.deleteById(sdkId(id), {
          onResponse: (raw) => {
            status = raw.status;
            contentType = raw.headers.get('content-type');
          },
        });
      } catch (error) {
        if (statusOf(error) === 404) return 'already-gone';
        throw error;
      }
      if (status === 204) return 'already-gone';
      // ARM answers a delete with the assignment it deleted; any other 2xx (a proxy's page) leaves
      // the assignment's fate unknown, and is never reported as a removal.
      const tail = (text: string) => text.slice(text.lastIndexOf('/') + 1).toLowerCase();
      if (typeof deleted?.id !== 'string' || tail(deleted.id) !== tail(id)) {
        throw new UnconfirmedWriteError(
          `ARM answered ${status ?? 'the DELETE'} (${contentType ?? 'no content type'}) with no deleted role assignment: something between arc-responder and ARM (a proxy?) answered, and whether it was removed is unknown`,
          status,
        );
      }
      return 'deleted';
    },

    async createAssignment(restore) {
      const name = randomUUID();
      try {
        const created = await auth.roleAssignments.create(sdkId(restore.scope), name, {
          roleDefinitionId: restore.roleDefinitionId,
          principalId: restore.principalId,
          ...(restore.principalType ? { principalType: restore.principalType } : {}),
          ...(restore.condition ? { condition: restore.condition } : {}),
          ...(restore.conditionVersion ? { conditionVersion: restore.conditionVersion } : {}),
          ...(restore.description ? { description: restore.description } : {}),
        });
        // ARM answers with the assignment it made; anything else (a proxy's page) confirms nothing.
        if (typeof created?.id !== 'string' || created.id === '') {
          throw new UnconfirmedWriteError(
            'ARM answered the PUT with no role assignment: something between arc-responder and ARM (a proxy?) answered, and whether it was re-created is unknown',
            undefined,
          );
        }
        return { result: 'created', id: created.id };
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (statusOf(error) === 409 && code === 'RoleAssignmentExists') return { result: 'exists' };
        throw error;
      }
    },

    async getResource(id, apiVersion, signal) {
      const r = await resources.resources.getById(
        sdkId(id),
        apiVersion,
        signal ? { abortSignal: signal } : {},
      );
      const facts: ResourceFacts = {};
      if (r.location) facts.location = r.location;
      if (r.tags) facts.tags = r.tags;
      if (r.properties) facts.properties = r.properties;
      return facts;
    },
  };
}

import type { Config } from '../config.ts';
import { dashGuid } from '../core/azure-ids.ts';
import type { Detection } from '../core/detection.ts';
import type { Enricher, Enrichment } from '../core/remediation.ts';
import { assignmentId, callerKind, claimedObjectId, isSafeScope } from '../core/remediation-plan.ts';
import { CONNECTED_CLUSTER_API_VERSION } from './arm.ts';
import { describeFailure, type FailureContext, type FailureInfo, failureText } from './errors.ts';
import { type AzureDeps, type AzureServices, createAzureServices } from './services.ts';

/** How long before the event a creation still counts as recent. */
export const RECENT_MS = 7 * 24 * 3600 * 1000;

/** Per-call options of the enricher. */
export interface EnrichOptions {
  /** Aborts the lookups still running; what finished is returned, the rest is named in `errors`. */
  signal?: AbortSignal;
  /** Aborts after this many milliseconds. */
  timeoutMs?: number;
}

/** The Azure enricher: the core port plus cancellation. */
export interface AzureEnricher extends Enricher {
  enrich(detection: Detection, options?: EnrichOptions): Promise<Enrichment>;
}

const isRecent = (createdAt: string, eventTime: string): boolean | undefined => {
  const created = Date.parse(createdAt);
  const event = Date.parse(eventTime);
  if (!Number.isFinite(created) || !Number.isFinite(event)) return undefined;
  return event - created < RECENT_MS;
};

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Creates the enricher: Graph for the principal, ARM for the evidence assignment and the cluster. */
export function createAzureEnricher(
  config: Config,
  deps: Omit<AzureDeps, 'store'> & { store?: AzureDeps['store'] },
): AzureEnricher {
  return createEnricherWith(createAzureServices(config, deps));
}

/**
 * The enricher over already-built services. Each lookup runs in parallel; a failed or cancelled
 * lookup adds a line to `errors` and never throws.
 */
export function createEnricherWith(services: AzureServices): AzureEnricher {
  const { arm, graph } = services;

  async function principal(d: Detection, out: Enrichment, signal: AbortSignal | undefined): Promise<void> {
    const principalId = claimedObjectId(d);
    const options = signal ? { signal } : {};
    if (callerKind(d) === 'user') {
      if (!principalId) throw new Error('the user has no object id in the detection');
      const res = await graph.call(
        'GET',
        `/v1.0/users/${principalId}?$select=id,displayName,userPrincipalName,createdDateTime,accountEnabled`,
        options,
      );
      if (res.status === 404) throw new Error(`user ${principalId} not found`);
      const body = res.body as Record<string, unknown>;
      const name = str(body.displayName) ?? str(body.userPrincipalName);
      if (name) out.principalDisplayName = name;
      if (body.accountEnabled === false) out.principalDisabled = true;
      const created = str(body.createdDateTime);
      if (created) out.principalCreatedAt = created;
      return;
    }
    const appId = dashGuid(d.appId);
    if (!appId) throw new Error(`appId ${d.appId} is not a GUID`);
    const res = await graph.call(
      'GET',
      `/v1.0/servicePrincipals(appId='${appId}')?$select=id,appId,displayName,servicePrincipalType,accountEnabled`,
      options,
    );
    if (res.status === 404) throw new Error(`no service principal with appId ${appId} in this tenant`);
    const sp = res.body as Record<string, unknown>;
    const name = str(sp.displayName);
    if (name) out.principalDisplayName = name;
    if (sp.accountEnabled === false) out.principalDisabled = true;
    // v1.0 servicePrincipal has no creation time; the application registration has one when it
    // lives in this tenant. A managed identity has none anywhere: nothing to look up or miss.
    let created = str(sp.createdDateTime);
    if (!created && str(sp.servicePrincipalType)?.toLowerCase() === 'managedidentity') return;
    if (!created) {
      const app = await graph.call(
        'GET',
        `/v1.0/applications(appId='${appId}')?$select=id,createdDateTime`,
        options,
      );
      if (app.status === 404) {
        throw new Error(`creation time unknown: application ${appId} is not registered in this tenant`);
      }
      created = str((app.body as Record<string, unknown>).createdDateTime);
    }
    if (created) out.principalCreatedAt = created;
  }

  async function evidenceAssignment(
    d: Detection,
    out: Enrichment,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const ev = d.evidence;
    const name = dashGuid(ev.roleAssignmentId);
    if (!name || !ev.roleAssignmentScope || !isSafeScope(ev.roleAssignmentScope)) return;
    const a = await arm.getAssignment(assignmentId(ev.roleAssignmentScope, name), signal);
    if (!a) throw new Error('the role assignment named in the evidence no longer exists');
    if (a.createdOn) out.assignmentCreatedAt = a.createdOn;
  }

  async function cluster(d: Detection, out: Enrichment, signal: AbortSignal | undefined): Promise<void> {
    const id = d.cluster?.id;
    if (!id || !isSafeScope(id)) return;
    const r = await arm.getResource(id, CONNECTED_CLUSTER_API_VERSION, signal);
    const facts: NonNullable<Enrichment['cluster']> = {};
    if (r.location) facts.location = r.location;
    if (r.tags) facts.tags = r.tags;
    const distribution = str(r.properties?.distribution);
    if (distribution) facts.distribution = distribution;
    out.cluster = facts;
  }

  async function enrich(d: Detection, options: EnrichOptions = {}): Promise<Enrichment> {
    const signals = [
      options.signal,
      options.timeoutMs !== undefined ? AbortSignal.timeout(options.timeoutMs) : undefined,
    ].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    const out: Enrichment = {};
    const errors: string[] = [];
    const lookups: Array<[string, FailureContext, (s: AbortSignal | undefined) => Promise<void>]> = [
      [
        'principal',
        {
          service: 'graph',
          graphPermissions: callerKind(d) === 'user' ? 'User.Read.All' : 'Application.Read.All',
        },
        (s) => principal(d, out, s),
      ],
      [
        'evidence assignment',
        { service: 'arm', action: 'Microsoft.Authorization/roleAssignments/read' },
        (s) => evidenceAssignment(d, out, s),
      ],
      [
        'cluster',
        { service: 'arm', action: 'Microsoft.Kubernetes/connectedClusters/read' },
        (s) => cluster(d, out, s),
      ],
    ];
    await Promise.all(
      lookups.map(async ([what, ctx, run]) => {
        try {
          await abortable(run(signal), signal);
        } catch (error) {
          const f: FailureInfo = signal?.aborted
            ? { message: 'not finished in time', gone: false }
            : describeFailure(error, ctx);
          errors.push(`${what}: ${failureText(f)}${f.fix && !signal?.aborted ? ` (${f.fix})` : ''}`);
        }
      }),
    );
    if (out.principalCreatedAt !== undefined) {
      const recent = isRecent(out.principalCreatedAt, d.eventTime);
      if (recent !== undefined) out.principalRecentlyCreated = recent;
    }
    if (out.assignmentCreatedAt !== undefined) {
      const recent = isRecent(out.assignmentCreatedAt, d.eventTime);
      if (recent !== undefined) out.assignmentRecent = recent;
    }
    if (errors.length > 0) out.errors = errors;
    return out;
  }

  return { enrich };
}

/** Settles when `work` does or when `signal` aborts, whichever comes first. */
function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      work.catch(() => {});
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      work.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

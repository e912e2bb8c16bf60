import type { Detection } from './detection.ts';

/** One change the remediation will make, in the order it makes them. */
export interface PlannedStep {
  /** Stable within a plan, e.g. `remove-assignment:<assignment id>` or `disable-principal:<id>`. */
  id: string;
  kind: 'remove-assignment' | 'disable-service-principal' | 'disable-user' | 'revoke-user-sessions';
  /** One line for people: what will change and why. */
  description: string;
  /** The API call it makes, e.g. `DELETE https://management.azure.com/subscriptions/.../roleAssignments/<id>`. */
  call: string;
  /** Target of the step: the role assignment id (full ARM id) or the principal object id / appId. */
  target: string;
  /**
   * Service principal steps: whether `target` is the principal's object id or its application's
   * appId (Graph addresses the two differently).
   */
  targetIs?: 'objectId' | 'appId';
  /** For assignments: what to re-create on undo. */
  assignment?: {
    scope: string;
    roleDefinitionId: string;
    principalId: string;
    principalType?: string;
    roleName?: string;
  };
}

/** Access the plan leaves in place on purpose (broad roles such as Owner or Contributor). */
export interface RemainingAccess {
  assignmentId: string;
  roleName: string;
  scope: string;
  /**
   * Why it stays: a broad role, a group assignment that removing would take from every member, or
   * an assignment at the tenant's root scope (`/`), left to a person.
   */
  kind?: 'broad-role' | 'group' | 'root';
  roleDefinitionId?: string;
  principalId?: string;
  principalType?: string;
}

/** What Revoke will do, shown in the confirmation and reported by dry-run. */
export interface RemediationPlan {
  appId: string;
  principalId?: string;
  principalType?: string;
  clusterId?: string;
  steps: PlannedStep[];
  /** "Still has access through ...": removed only by a separate, explicitly confirmed action. */
  stillHasAccessThrough: RemainingAccess[];
  /** Lookups that failed while planning (the plan may then be incomplete). */
  warnings: string[];
  /**
   * Reads of Azure that failed so that an assignment granting the access may be missing from
   * `steps`: a live run of such a plan ends failed, whatever its steps did, and the next click
   * plans again.
   */
  unchecked?: string[];
  /**
   * Why the PIM schedules of the principal's assignments could not be read, when so: Undo would
   * re-create a removed one that PIM made for a set time without its end. Said by the plans that
   * remove assignments (this one, when it does, and its broad removal).
   */
  timeBoundUnread?: string;
  /** The reads of Azure the plan was made from, as the audit record lists calls. */
  reads?: Array<{ method: string; url: string; status?: number; error?: string; at: string }>;
}

/**
 * A role assignment that PIM made or activated for a set time, as an earlier plan read it (the
 * alert's, made as it was posted).
 */
export interface TimeBoundSeen {
  assignmentId: string;
  endsAt: string;
  activated: boolean;
}

export interface PlanOptions {
  /**
   * What the alert's plan read of PIM: should the schedules not be readable now, the end times
   * read then are kept, so that Undo does not re-create as permanent what it knew to end.
   */
  timeBoundSeen?: readonly TimeBoundSeen[];
}

export type StepStatus = 'done' | 'already-done' | 'failed' | 'would-do' | 'skipped';

export interface StepResult {
  stepId: string;
  status: StepStatus;
  /** What happened, for people. */
  detail: string;
  /** For failures: what to fix (e.g. the missing permission). */
  fix?: string;
  /**
   * For failures: the change was sent and its answer was lost or a server error (a 5xx, no
   * answer), so Azure may have made it. A retry that then finds it made counts it as this
   * service's (Undo reverses it), not as found so.
   */
  maybeApplied?: boolean;
  /**
   * Undo of a removed assignment that PIM made for a set time: not re-created (it would be
   * permanent), left for PIM to give back. Counts as finished.
   */
  leftToPim?: boolean;
}

/** How many steps of an Undo's result left an assignment to PIM (see `StepResult.leftToPim`). */
export const leftToPim = (steps: readonly StepResult[] | undefined): number =>
  steps?.filter((s) => s.leftToPim).length ?? 0;

/** A step whose change is made, by this run or found made already. */
export const isFinished = (s: StepResult | undefined): boolean =>
  s?.status === 'done' || s?.status === 'already-done';

/**
 * How many of `steps`, results of an Undo of `plan`, are removed assignments not back: their
 * re-creation did not finish. The principal is enabled again only once there are none.
 */
export function assignmentsNotBack(plan: RemediationPlan, steps: readonly StepResult[]): number {
  const assignments = new Set(plan.steps.filter((s) => s.kind === 'remove-assignment').map((s) => s.id));
  return steps.filter((s) => assignments.has(s.stepId) && !isFinished(s)).length;
}

export interface RemediationResult {
  mode: 'dry-run' | 'live';
  ok: boolean;
  steps: StepResult[];
}

/** Who asked for a remediation, and about which alert: goes into the audit record. */
export interface RemediationContext {
  /** Chat user id, `system` when absent. */
  actor?: string;
  alertId?: string;
  ip?: string;
  /** What the run is, for the audit: Revoke (the default) or the removal of broad roles. */
  action?: 'revoke' | 'remove-broad-roles';
}

/** The remediation port: plan, then execute (or report the plan in dry-run), and undo. */
export interface Remediator {
  readonly mode: 'dry-run' | 'live';
  plan(detection: Detection, options?: PlanOptions): Promise<RemediationPlan>;
  /** Runs the plan's steps; steps already `done` in `previous` are not run again. */
  execute(
    plan: RemediationPlan,
    previous?: RemediationResult,
    context?: RemediationContext,
  ): Promise<RemediationResult>;
  /**
   * Re-creates removed assignments and re-enables the principal, only once they are all back:
   * `assignmentsNotBack` counts those of other runs undone before this one that are not.
   * `earlier`: the step results of an earlier Undo of the same run, which this one retries: a step
   * it finished is not made again (its result is carried, as an earlier attempt's), and the
   * principal it enabled is not said to stay disabled.
   */
  undo(
    plan: RemediationPlan,
    result: RemediationResult,
    context?: RemediationContext,
    options?: { assignmentsNotBack?: number; earlier?: readonly StepResult[] },
  ): Promise<RemediationResult>;
  /**
   * The separate, explicitly confirmed action: a plan removing the broad-role assignments that
   * `plan.stillHasAccessThrough` lists. Absent where the remediator cannot do it.
   */
  planBroadRemoval?(plan: RemediationPlan): RemediationPlan;
}

/** Facts looked up about a detection before a human sees it. Every field is optional. */
export interface Enrichment {
  principalDisplayName?: string;
  principalCreatedAt?: string;
  /** Created less than 7 days before the event. */
  principalRecentlyCreated?: boolean;
  /**
   * Entra ID had the caller's account disabled (`accountEnabled: false`) at the lookup: a Revoke
   * on another alert of the identity, say. Absent when enabled or not known.
   */
  principalDisabled?: boolean;
  assignmentCreatedAt?: string;
  /** Assigned less than 7 days before the event. */
  assignmentRecent?: boolean;
  cluster?: { location?: string; tags?: Record<string, string>; distribution?: string };
  /** Lookups that failed, for people. */
  errors?: string[];
}

export interface Enricher {
  /** Never throws: failed or timed-out lookups become lines in `errors`. */
  enrich(detection: Detection, opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<Enrichment>;
}

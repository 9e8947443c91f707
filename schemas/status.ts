import type { Violation } from './violation.js'

/**
 * The reconciler's status: value of KV `zonegate-status` key `reconciler`, the body of HTTP `/status`, and what
 * `zonegate status` reads. Written by the active reconciler at the end of every pass, whatever happened.
 */

/** Same shape as reconciler/core/conditions.ts `Condition` (kstatus / Flux vocabulary). */
export interface StatusCondition {
  /** `Ready`, `Reconciling`, `Stalled`, `FetchFailed`, `ValidationFailed`, `PublishFailed`. */
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason: string
  message: string
  /** RFC 3339. */
  lastTransitionTime: string
}

/** What one zone last received from the reconciler (mirrors its KV `zonegate-tables` entry). */
export interface ZoneStatus {
  zone: string
  generation: number
  digest: string
  /** Revision of the commit that produced this table. */
  revision: string
}

export interface ReconcilerStatus {
  /** Id of the reconciler that wrote this status (the lease holder). */
  reconciler: string
  /** RFC 3339 time the status was written. */
  time: string
  conditions: StatusCondition[]
  /** Last revision a pass was run on, whatever its outcome (`<branch>@sha1:<sha>`). */
  lastAttemptedRevision?: string
  /** Last revision whose tables were all published. */
  lastAppliedRevision?: string
  /** Per zone, sorted by zone. */
  zones: ZoneStatus[]
  /** Violations of the last invalid commit (the one that stalled), empty when the last attempt was valid. */
  violations: Violation[]
  /** Revision the violations belong to. */
  violationsRevision?: string
}

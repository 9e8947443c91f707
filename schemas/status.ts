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
  /** The rollout of this table to the zone's live egress instances (set by the lease holder that published it). */
  rollout?: ZoneRolloutStatus
}

/** How far a zone's last published table got (reconciler/core/rollout.ts). Instances are `<egress>/<instance>`. */
export interface ZoneRolloutStatus {
  /** `progressing` until every live instance reports the digest (`converged`) or the rollout timeout (`timeout`). */
  state: 'progressing' | 'converged' | 'timeout'
  revision: string
  generation: number
  digest: string
  /** RFC 3339: when the reconciler started following it (right after publishing). */
  startedAt: string
  /** RFC 3339: when it converged or timed out. */
  endedAt?: string
  /** Live instances that reported the digest. */
  current: string[]
  /** Live instances that have not (yet) reported it; after a timeout, the ones still missing. */
  missing: string[]
  /** Instances that appeared after the end and did not apply the digest within the rollout timeout. */
  stale: string[]
  /** Instances that rejected this table, with their reason. */
  rejected: { instance: string; reason: string }[]
}

export interface ReconcilerStatus {
  /** Id of the reconciler that wrote this status (the lease holder). */
  reconciler: string
  /** RFC 3339 time the status was written. */
  time: string
  conditions: StatusCondition[]
  /** Last revision a pass was run on, whatever its outcome (schemas/revision.ts). */
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

import type { Violation } from './violation.js'

/**
 * Event payloads on stream ZONEGATE_EVENTS (docs/design.md §3). Every event has `type`, `time` (RFC 3339) and
 * `revision` (`<branch>@sha1:<sha>`, schemas/revision.ts). Discriminated on `type`.
 */

export const CommitPhase = {
  Fetched: 'fetched',
  Invalid: 'invalid',
  Published: 'published',
  Superseded: 'superseded',
  Converged: 'converged',
  Stalled: 'stalled',
} as const
export type CommitPhase = (typeof CommitPhase)[keyof typeof CommitPhase]

export const RolloutPhase = { Published: 'published', Converged: 'converged', Timeout: 'timeout' } as const
export type RolloutPhase = (typeof RolloutPhase)[keyof typeof RolloutPhase]

interface EventBase {
  time: string
  revision: string
}

export interface CommitFetchedEvent extends EventBase {
  type: 'commit.fetched'
  sha: string
}
export interface CommitInvalidEvent extends EventBase {
  type: 'commit.invalid'
  sha: string
  violations: Violation[]
  /**
   * Why the commit was refused: absent (or `ValidationFailed`) for violations in its files; `EmptyZoneRefused`
   * or `TableTooLarge` when the files are valid but the tables they compile to cannot be published.
   */
  reason?: string
  /** The zones a refusal concerns (every one of them), with `reason`. */
  zones?: string[]
}
export interface CommitPublishedEvent extends EventBase {
  type: 'commit.published'
  sha: string
  /** Zones whose table changed, with the generation and digest published. */
  zones: { zone: string; generation: number; digest: string; change: 'added' | 'changed' | 'removed' }[]
}
export interface CommitSupersededEvent extends EventBase {
  type: 'commit.superseded'
  sha: string
  /** The revision that replaced this one. */
  by: string
}
export interface CommitConvergedEvent extends EventBase {
  type: 'commit.converged'
  sha: string
  zones: string[]
}
export interface CommitStalledEvent extends EventBase {
  type: 'commit.stalled'
  sha: string
  reason: string
  message: string
}

export interface RolloutPublishedEvent extends EventBase {
  type: 'rollout.published'
  zone: string
  generation: number
  digest: string
}
export interface RolloutConvergedEvent extends EventBase {
  type: 'rollout.converged'
  zone: string
  generation: number
  digest: string
  instances: string[]
  ms: number
}
export interface RolloutTimeoutEvent extends EventBase {
  type: 'rollout.timeout'
  zone: string
  generation: number
  digest: string
  /** Instances (`<egress>/<instance>`) that did not report the digest in time. */
  missing: string[]
}
export interface RolloutAppliedEvent extends EventBase {
  type: 'rollout.applied'
  zone: string
  egress: string
  instance: string
  generation: number
  digest: string
  swapMs: number
}
export interface RolloutRejectedEvent extends EventBase {
  type: 'rollout.rejected'
  zone: string
  egress: string
  instance: string
  generation?: number
  digest?: string
  reason: string
}

export type ZonegateEvent =
  | CommitFetchedEvent
  | CommitInvalidEvent
  | CommitPublishedEvent
  | CommitSupersededEvent
  | CommitConvergedEvent
  | CommitStalledEvent
  | RolloutPublishedEvent
  | RolloutConvergedEvent
  | RolloutTimeoutEvent
  | RolloutAppliedEvent
  | RolloutRejectedEvent

/** Heartbeat value in KV `zonegate-instances`, key `<zone>.<egress>.<instance>`. */
export interface InstanceHeartbeat {
  state: string
  generation?: number
  digest?: string
  listen?: string
  admin?: string
  /** The instance's heartbeat period (ms; `zonegate egress --heartbeat`). Absent from older egresses: 10 s. */
  heartbeatMs?: number
  time: string
}

/** Reply to a `zonegate.cmd.reconcile` request. */
export type ReconcileReply = { ok: true; revision: string } | { ok: false; error: string }

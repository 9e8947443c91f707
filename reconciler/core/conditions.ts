import { type BackoffPolicy, backoffMs } from '../../schemas/backoff.js'
import { ErrorKind, type ErrorPolicy } from './errors.js'

/**
 * The one place that turns pass outcomes and errors into status conditions and a retry decision (STYLE.md §4,
 * Flux's vocabulary). Pure: no clock (times are passed in), no randomness (a `random` function is passed in).
 *
 * - `Ready` is always present. `Reconciling`, `Stalled`, `FetchFailed`, `ValidationFailed` and `PublishFailed`
 *   exist only while true (kstatus "abnormal-true" conditions).
 * - Errors fall into two kinds: **stalled** (the commit itself is bad: wait for a new revision, never retry the
 *   same one) and **transient** (Git or NATS failed: retry with exponential backoff and jitter, capped). Each
 *   error says which, and which condition and reason it raises (ErrorPolicy in core/errors.ts).
 */

export const ConditionType = {
  Ready: 'Ready',
  Reconciling: 'Reconciling',
  Stalled: 'Stalled',
  FetchFailed: 'FetchFailed',
  ValidationFailed: 'ValidationFailed',
  PublishFailed: 'PublishFailed',
} as const
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType]

export const Reason = {
  Succeeded: 'ReconciliationSucceeded',
  Progressing: 'Progressing',
  ProgressingWithRetry: 'ProgressingWithRetry',
  FetchFailed: 'FetchFailed',
  ValidationFailed: 'ValidationFailed',
  EmptyZoneRefused: 'EmptyZoneRefused',
  PublishFailed: 'PublishFailed',
  PublishConflict: 'PublishConflict',
  ReconcileFailed: 'ReconcileFailed',
} as const
export type Reason = (typeof Reason)[keyof typeof Reason]

export interface Condition {
  type: ConditionType
  status: 'True' | 'False' | 'Unknown'
  reason: string
  message: string
  /** RFC 3339; kept from the previous condition when the status did not change. */
  lastTransitionTime: string
}

/** A condition as stored (e.g. read back from KV): `type` is any string. */
export type StoredCondition = Omit<Condition, 'type'> & { type: string }

/** What a finished pass reports to this module: a failure carries its error's policy (core/errors.ts). */
export type PassOutcome =
  | { result: 'applied'; revision: string; zonesPublished: number }
  | { result: 'unchanged'; revision: string }
  | { result: 'failed'; revision?: string; error: ErrorPolicy & { message: string } }

function setCondition(
  list: Condition[],
  prev: readonly StoredCondition[],
  c: Omit<Condition, 'lastTransitionTime'>,
  now: string,
): void {
  const old = prev.find((p) => p.type === c.type)
  list.push({ ...c, lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : now })
}

/**
 * Conditions while a pass runs on `target` (a revision, or `branch main` before it is resolved): Ready
 * Unknown, Reconciling True (ProgressingWithRetry when `attempt > 1`); failure conditions of the previous pass are kept until this pass ends. Pure.
 */
export function conditionsReconciling(
  prev: readonly StoredCondition[],
  target: string,
  attempt: number,
  now: string,
): Condition[] {
  const out: Condition[] = []
  const retry = attempt > 1
  const readyPrev = prev.find((c) => c.type === ConditionType.Ready)
  setCondition(
    out,
    prev,
    {
      type: ConditionType.Ready,
      status: 'Unknown',
      reason: retry ? Reason.ProgressingWithRetry : Reason.Progressing,
      message: `reconciliation in progress${readyPrev?.status === 'True' ? ` (last: ${readyPrev.message})` : ''}`,
    },
    now,
  )
  setCondition(
    out,
    prev,
    {
      type: ConditionType.Reconciling,
      status: 'True',
      reason: retry ? Reason.ProgressingWithRetry : Reason.Progressing,
      message: `${retry ? `attempt ${attempt}: ` : ''}reconciling ${target}`,
    },
    now,
  )
  for (const c of prev) {
    if (c.type === ConditionType.FetchFailed || c.type === ConditionType.PublishFailed) out.push(c as Condition)
  }
  return out
}

/**
 * Conditions after a pass. Success: Ready True only. Stalled error: Ready False, Stalled True and the failure
 * condition. Transient error: Ready False, Reconciling True (ProgressingWithRetry) and the failure condition.
 * Pure.
 */
export function conditionsAfter(outcome: PassOutcome, prev: readonly StoredCondition[], now: string): Condition[] {
  const out: Condition[] = []
  if (outcome.result !== 'failed') {
    setCondition(
      out,
      prev,
      {
        type: ConditionType.Ready,
        status: 'True',
        reason: Reason.Succeeded,
        message:
          outcome.result === 'applied'
            ? `applied revision ${outcome.revision} (${outcome.zonesPublished} zone(s) published)`
            : `applied revision ${outcome.revision}`,
      },
      now,
    )
    return out
  }
  const { condition: type, reason, message } = outcome.error
  setCondition(out, prev, { type: ConditionType.Ready, status: 'False', reason, message }, now)
  if (outcome.error.kind === ErrorKind.Stalled) {
    setCondition(out, prev, { type: ConditionType.Stalled, status: 'True', reason, message }, now)
  } else {
    setCondition(
      out,
      prev,
      {
        type: ConditionType.Reconciling,
        status: 'True',
        reason: Reason.ProgressingWithRetry,
        message: `retrying after ${reason}`,
      },
      now,
    )
  }
  setCondition(out, prev, { type, status: 'True', reason, message }, now)
  return out
}

/** How the pass is retried after a transient error (schemas/backoff.ts). */
export type RetryPolicy = BackoffPolicy

export const DEFAULT_RETRY_POLICY: RetryPolicy = { baseMs: 500, maxMs: 30_000, jitter: 0.2 }

export type RetryDecision =
  | { kind: 'none' }
  | { kind: 'waitForNewRevision' }
  | { kind: 'retry'; delayMs: number; attempt: number }

/**
 * What to do after a pass: nothing after a success; wait for a new revision after a stalled error (no retry of
 * the same sha); retry after `backoffMs(failures)` after a transient one. `failures` counts consecutive
 * transient failures including this one. Pure.
 */
export function retryDecision(
  outcome: PassOutcome,
  failures: number,
  policy: RetryPolicy,
  random: () => number,
): RetryDecision {
  if (outcome.result !== 'failed') return { kind: 'none' }
  if (outcome.error.kind === ErrorKind.Stalled) return { kind: 'waitForNewRevision' }
  return { kind: 'retry', delayMs: backoffMs(failures, policy, random), attempt: failures + 1 }
}

/** The condition of a type, if present. Pure. */
export function findCondition(list: readonly Condition[], type: ConditionType): Condition | undefined {
  return list.find((c) => c.type === type)
}

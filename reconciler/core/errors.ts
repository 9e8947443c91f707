import type { Violation } from '../../schemas/violation.js'

/**
 * The two kinds of error (STYLE.md §4): **stalled**, the revision itself is bad (wait for a new one, never retry
 * the same sha); **transient**, Git or NATS failed (retry with backoff and jitter; the last good tables stay).
 */
export const ErrorKind = { Stalled: 'stalled', Transient: 'transient' } as const
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind]

/** The failure conditions an error raises on the status (besides Ready, and Stalled or Reconciling). */
export const FailureCondition = {
  FetchFailed: 'FetchFailed',
  ValidationFailed: 'ValidationFailed',
  PublishFailed: 'PublishFailed',
} as const
export type FailureCondition = (typeof FailureCondition)[keyof typeof FailureCondition]

/**
 * What an error means for the status and the retry loop, carried by the error itself: its kind, the failure
 * condition it raises and that condition's reason. core/conditions.ts reads it; nothing maps codes by hand.
 */
export interface ErrorPolicy {
  readonly kind: ErrorKind
  readonly condition: FailureCondition
  readonly reason: string
}

/** The policy of anything that is not a ReconcileError (a bug, a foreign error): retried, `ReconcileFailed`. */
export const UNKNOWN_ERROR_POLICY: ErrorPolicy = {
  kind: ErrorKind.Transient,
  condition: FailureCondition.PublishFailed,
  reason: 'ReconcileFailed',
}

/**
 * Errors of the reconciler: each has a stable `code`, a structured payload (`data()`), an optional `cause`
 * (ErrorOptions), and `toJSON()` giving the same shape on /status, in events and in logs. Each class also says
 * what it does to the pass (ErrorPolicy: `kind`, `condition`, `reason`); the defaults are UNKNOWN_ERROR_POLICY's.
 * Subclasses add one class per failure (FetchFailed, PublishFailed, ... in the same style).
 */
export abstract class ReconcileError extends Error implements ErrorPolicy {
  abstract readonly code: string
  /** What an error of this class does to the pass; UNKNOWN_ERROR_POLICY unless the subclass says otherwise. */
  static readonly policy: ErrorPolicy = UNKNOWN_ERROR_POLICY

  // Read from the class, not stored on the instance: the policy is no part of the error's logged or JSON shape.
  protected get policy(): ErrorPolicy {
    return (this.constructor as typeof ReconcileError).policy
  }
  get kind(): ErrorKind {
    return this.policy.kind
  }
  get condition(): FailureCondition {
    return this.policy.condition
  }
  get reason(): string {
    return this.policy.reason
  }

  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }

  /** The structured payload of this error (without code and message). */
  data(): Record<string, unknown> {
    return {}
  }

  toJSON(): { code: string; message: string; cause?: string } & Record<string, unknown> {
    const cause =
      this.cause instanceof Error ? this.cause.message : this.cause === undefined ? undefined : String(this.cause)
    return { code: this.code, message: this.message, ...this.data(), ...(cause === undefined ? {} : { cause }) }
  }
}

/** Stalled, shown as the ValidationFailed condition with `reason`: the commit is reported invalid. */
export const invalidCommit = (reason: string): ErrorPolicy => ({
  kind: ErrorKind.Stalled,
  condition: FailureCondition.ValidationFailed,
  reason,
})

/** Transient (retried with backoff), shown as `condition` with `reason`. */
export const retried = (condition: FailureCondition, reason: string): ErrorPolicy => ({
  kind: ErrorKind.Transient,
  condition,
  reason,
})

/** The policy of an error (UNKNOWN_ERROR_POLICY unless it is a ReconcileError). Pure. */
export function errorPolicy(err: unknown): ErrorPolicy {
  if (!(err instanceof ReconcileError)) return UNKNOWN_ERROR_POLICY
  return { kind: err.kind, condition: err.condition, reason: err.reason }
}

/** `N violations in <revision>: <first violation>` */
export function summarize(revision: string, violations: readonly Violation[]): string {
  const first = violations[0]
  const head = `${violations.length} violation${violations.length === 1 ? '' : 's'} in ${revision}`
  return first
    ? `${head}: ${first.file}:${first.line}:${first.column} ${first.path ? `${first.path}: ` : ''}${first.message}`
    : head
}

/** A revision whose YAML or resources are invalid. Stalled: wait for a new revision, don't retry. */
export class ValidationFailed extends ReconcileError {
  readonly code = 'ValidationFailed'
  static override readonly policy: ErrorPolicy = invalidCommit('ValidationFailed')

  constructor(
    readonly revision: string,
    readonly violations: Violation[],
    options?: ErrorOptions,
  ) {
    super(summarize(revision, violations), options)
  }

  override data(): Record<string, unknown> {
    return { revision: this.revision, violations: this.violations }
  }
}

/**
 * A NATS write or read (KV table, event, status) failed for a reason that may go away: connection lost,
 * timeout, JetStream unavailable. Transient: retry with backoff; the last good tables keep serving.
 */
export class PublishFailed extends ReconcileError {
  readonly code = 'PublishFailed'
  static override readonly policy: ErrorPolicy = retried(FailureCondition.PublishFailed, 'PublishFailed')

  constructor(
    readonly target: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`NATS ${target}: ${message}`, options)
  }

  override data(): Record<string, unknown> {
    return { target: this.target }
  }
}

/**
 * A CAS write to KV `zonegate-tables` was refused ("wrong last sequence"): the key was written since
 * `expectedRevision` was read (another reconciler, or a stale inventory). Transient: re-read the inventory
 * and retry; never overwrite blindly.
 */
export class PublishConflict extends ReconcileError {
  readonly code = 'PublishConflict'
  static override readonly policy: ErrorPolicy = retried(FailureCondition.PublishFailed, 'PublishConflict')

  constructor(
    readonly key: string,
    readonly expectedRevision: number,
    options?: ErrorOptions,
  ) {
    super(`${key}: expected KV revision ${expectedRevision} but the key was written by someone else`, options)
  }

  override data(): Record<string, unknown> {
    return { key: this.key, expectedRevision: this.expectedRevision }
  }
}

/**
 * Reading the Git source failed (clone, fetch, ref or object read): network down, repository missing, auth
 * refused. Transient: retry with backoff; the last good tables keep serving. `source` is the repository as safe
 * to log (no credentials).
 */
export class FetchFailed extends ReconcileError {
  readonly code = 'FetchFailed'
  static override readonly policy: ErrorPolicy = retried(FailureCondition.FetchFailed, 'FetchFailed')

  constructor(
    readonly source: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`fetch ${source}: ${message}`, options)
  }

  override data(): Record<string, unknown> {
    return { source: this.source }
  }
}

/**
 * A revision would leave zones without any of the routes they had (zone removed, or every route gone) and the
 * reconciler runs without `--allow-empty`. Stalled: the whole commit is refused, nothing is published.
 */
export class EmptyZoneRefused extends ReconcileError {
  readonly code = 'EmptyZoneRefused'
  static override readonly policy: ErrorPolicy = invalidCommit('EmptyZoneRefused')

  constructor(
    readonly revision: string,
    readonly zones: { zone: string; routes: number }[],
    options?: ErrorOptions,
  ) {
    const names = zones.map((z) => `${z.zone} (${z.routes} route${z.routes === 1 ? '' : 's'})`).join(', ')
    super(
      `${revision} refused: zone${zones.length === 1 ? '' : 's'} ${names} would lose every route; ` +
        'restore them or run the reconciler with --allow-empty',
      options,
    )
  }

  override data(): Record<string, unknown> {
    return { revision: this.revision, zones: this.zones }
  }
}

/**
 * Compiling the valid resources of a revision threw (a bug, not a user error). Stalled: not retried; shown as
 * the ValidationFailed condition with reason ValidationFailed (the commit is reported as invalid).
 */
export class CompileFailed extends ReconcileError {
  readonly code = 'CompileFailed'
  static override readonly policy: ErrorPolicy = invalidCommit('ValidationFailed')

  constructor(
    readonly revision: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`compile ${revision}: ${message}`, options)
  }

  override data(): Record<string, unknown> {
    return { revision: this.revision }
  }
}

/**
 * A zone's table is larger than zonegate publishes (`MAX_TABLE_BODY_BYTES`, 256 MiB of JSON; tables over the
 * server's max_payload travel through the object store, decision 008). Stalled: retrying the same revision
 * cannot help (split the zone).
 */
export class TableTooLarge extends ReconcileError {
  readonly code = 'TableTooLarge'
  static override readonly policy: ErrorPolicy = invalidCommit('TableTooLarge')
  /** Every zone of the revision whose table is too large (the first one is `zone`/`bytes`). */
  readonly zones: { zone: string; bytes: number }[]

  constructor(
    readonly zone: string,
    readonly bytes: number,
    /** The largest table published, in bytes of envelope JSON. */
    readonly limit: number,
    options?: ErrorOptions & { more?: { zone: string; bytes: number }[] },
  ) {
    const zones = [{ zone, bytes }, ...(options?.more ?? [])]
    super(
      zones.length === 1
        ? `zone ${zone}: table is ${bytes} bytes, over the largest table zonegate publishes (${limit} bytes)`
        : `zones ${zones.map((z) => `${z.zone} (${z.bytes} bytes)`).join(', ')}: tables over the largest table ` +
            `zonegate publishes (${limit} bytes)`,
      options,
    )
    this.zones = zones
  }

  override data(): Record<string, unknown> {
    return { zone: this.zone, bytes: this.bytes, limit: this.limit, zones: this.zones }
  }
}

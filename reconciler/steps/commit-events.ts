import type { Violation } from '../../schemas/violation.js'
import {
  EmptyZoneRefused,
  PublishFailed,
  ReconcileError,
  type TableTooLarge,
  ValidationFailed,
} from '../core/errors.js'
import { type BuiltEvent, commitInvalidEvent, passPublication } from '../core/events.js'
import type { PassState } from '../pass-state.js'
import type { PassContext, PassDeps, Step } from './types.js'

/**
 * Commit events of the pass, and the two ways a step turns a revision down: `rejectRevision` (invalid files) and
 * `refuseRevision` (valid files whose tables cannot be published). Both send `commit.<sha>.invalid` and return
 * the stalled error; the pass (reconciler/reconcile.ts) then stalls the sha. If the event cannot be sent, the
 * transient PublishFailed is returned instead: the sha is retried, so the event is not lost.
 */

/** Wraps anything thrown by an effect into a ReconcileError (`wrap` picks the class for foreign errors). */
export function asReconcileError(
  err: unknown,
  wrap: (message: string, cause: unknown) => ReconcileError,
): ReconcileError {
  if (err instanceof ReconcileError) return err
  return wrap(err instanceof Error ? err.message : String(err), err)
}

/** Sends events queued by earlier passes; stops at the first failure (the rest stay queued). */
export async function flushEvents(deps: PassDeps, state: PassState): Promise<Step<void>> {
  while (state.pendingEvents.length > 0) {
    const ev = state.pendingEvents[0] as BuiltEvent
    try {
      await deps.bus.emit(ev)
    } catch (err) {
      return { error: asReconcileError(err, (m, cause) => new PublishFailed(ev.subject, m, { cause })) }
    }
    state.pendingEvents.shift()
  }
  return { value: undefined }
}

/** Queues events (once per msg id) without sending them. */
export function queueEvents(state: PassState, events: readonly BuiltEvent[]): void {
  for (const e of events) if (!state.pendingEvents.some((p) => p.msgId === e.msgId)) state.pendingEvents.push(e)
}

/** Queues events (once per msg id) and sends every pending one. */
export async function emitAll(deps: PassDeps, state: PassState, events: BuiltEvent[]): Promise<Step<void>> {
  queueEvents(state, events)
  return flushEvents(deps, state)
}

/** A violation standing for a problem that is not in one file (a bug, an unusable source revision). */
export function revisionViolation(rule: string, message: string): Violation {
  return { file: '', line: 1, column: 1, kind: '', name: '', path: '', rule, message }
}

/** A violation standing for an exception of the validator or compiler (a bug), so the commit is still reported. */
export function internalViolation(step: 'validate' | 'compile', err: unknown): Violation {
  const why = err instanceof Error ? err.message : String(err)
  return revisionViolation(`internal.${step}`, `internal error in ${step}: ${why}`)
}

/** Emits `commit.<sha>.invalid` with every violation and returns ValidationFailed (stalled). */
export async function rejectRevision(
  ctx: PassContext,
  revision: string,
  violations: Violation[],
): Promise<{ error: ReconcileError }> {
  const error = new ValidationFailed(revision, violations)
  ctx.log.error({ err: error, violations: violations.length }, 'revision rejected')
  const publication = passPublication(ctx.state.passStart)
  const event = commitInvalidEvent({ revision, time: ctx.deps.now(), violations, publication })
  const sent = await emitAll(ctx.deps, ctx.state, [event])
  return 'error' in sent ? sent : { error }
}

/**
 * A refusal as violations, one per refused zone (`kind: 'Zone'`, no file: the files are valid, the zone's
 * compiled table is not); rules `zone.empty-refused` and `zone.table-too-large`. Pure.
 */
export function refusalViolations(error: EmptyZoneRefused | TableTooLarge): Violation[] {
  const v = (zone: string, rule: string, message: string): Violation => ({
    ...revisionViolation(rule, message),
    kind: 'Zone',
    name: zone,
  })
  if (error instanceof EmptyZoneRefused)
    return error.zones.map((z) =>
      v(z.zone, 'zone.empty-refused', `would lose all ${z.routes} route(s); --allow-empty allows it`),
    )
  return error.zones.map((z) =>
    v(z.zone, 'zone.table-too-large', `table is ${z.bytes} bytes, over the limit of ${error.limit} bytes`),
  )
}

/**
 * Refuses a valid revision whose tables cannot be published (EmptyZoneRefused, TableTooLarge): emits
 * `commit.<sha>.invalid` with `reason`, every refused zone and one violation per zone, and returns the error.
 */
export async function refuseRevision(
  ctx: PassContext,
  revision: string,
  error: EmptyZoneRefused | TableTooLarge,
): Promise<{ error: ReconcileError }> {
  ctx.log.error({ err: error }, 'revision refused')
  const violations = refusalViolations(error)
  const zones = violations.map((v) => v.name)
  const event = commitInvalidEvent({
    revision,
    time: ctx.deps.now(),
    violations,
    publication: passPublication(ctx.state.passStart),
    reason: error.code,
    zones,
  })
  const sent = await emitAll(ctx.deps, ctx.state, [event])
  return 'error' in sent ? sent : { error }
}

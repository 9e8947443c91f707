import { gitRevision } from '../../schemas/revision.js'
import { tableEnvelopeJson } from '../../schemas/table-transport.js'
import {
  CompileFailed,
  EmptyZoneRefused,
  ErrorKind,
  FetchFailed,
  PublishFailed,
  TableTooLarge,
} from '../core/errors.js'
import { commitFetchedEvent, commitSupersededEvent, passPublication } from '../core/events.js'
import type { Snapshot } from '../core/model.js'
import type { PassReport } from '../pass-state.js'
import {
  asReconcileError,
  emitAll,
  flushEvents,
  internalViolation,
  refuseRevision,
  rejectRevision,
  revisionViolation,
} from './commit-events.js'
import { emptiedZones, planZoneChanges } from './plan.js'
import type { PassContext, Step } from './types.js'

/**
 * The steps of one pass before publishing (the list is in reconciler/reconcile.ts). Each takes the pass context,
 * fills in what it produced and returns `{ value }` or `{ error }` (a ReconcileError with a stable code); none
 * throws. A step that turns the revision down sends `commit.<sha>.invalid` first (steps/commit-events.ts).
 */

type StepResult = Promise<Step<PassReport | undefined>>
const next = { value: undefined }

/**
 * Fetch: resolves the branch tip. The applied sha ends the pass (`unchanged`, after sending pending events), the
 * stalled sha too (`skipped`); otherwise reads the snapshot and emits `commit.<sha>.fetched`. FetchFailed on Git
 * errors; a revision the source cannot use (path missing, too many files) is rejected like an invalid commit.
 */
export async function fetchStep(ctx: PassContext): StepResult {
  const { deps, state } = ctx
  let sha: string
  try {
    sha = await deps.source.resolve()
  } catch (err) {
    return { error: asReconcileError(err, (m, cause) => new FetchFailed(deps.branch, m, { cause })) }
  }
  const revision = gitRevision(deps.branch, sha)
  ctx.sha = sha
  ctx.revision = revision
  ctx.log = deps.log.child({ component: 'reconcile', revision })
  ctx.hooks.fetched(sha)
  if (sha === state.lastAppliedSha && state.inventory) {
    const flushed = await flushEvents(deps, state)
    return 'error' in flushed ? flushed : { value: { result: 'unchanged', revision, sha } }
  }
  if (sha === state.stalledSha && state.stalledError)
    return { value: { result: 'skipped', revision, sha, error: state.stalledError } }
  let snapshot: Snapshot
  try {
    snapshot = await deps.source.fetch(sha)
  } catch (err) {
    const error = asReconcileError(err, (m, cause) => new FetchFailed(deps.branch, m, { cause }))
    if (error.kind === ErrorKind.Transient) return { error }
    return rejectRevision(ctx, revision, [revisionViolation(`source.${error.code}`, error.message)])
  }
  ctx.log.info({ files: snapshot.files.size }, 'revision fetched')
  if (sha !== state.lastAppliedSha) {
    const publication = passPublication(state.passStart)
    const sent = await emitAll(deps, state, [commitFetchedEvent({ revision, time: deps.now(), publication })])
    if ('error' in sent) return sent
  }
  ctx.snapshot = snapshot
  return next
}

/**
 * Parse + validate: every violation of the snapshot. Invalid: rejected with all violations (ValidationFailed).
 * A validator that throws (a bug) rejects the commit too, with an `internal.validate` violation: it is reported
 * once and stalled, never retried on every poll.
 */
export async function validateStep(ctx: PassContext): StepResult {
  const snapshot = ctx.snapshot as Snapshot
  let outcome: ReturnType<PassContext['deps']['validate']>
  try {
    outcome = ctx.deps.validate(snapshot)
  } catch (err) {
    return rejectRevision(ctx, snapshot.revision, [internalViolation('validate', err)])
  }
  if (outcome.warnings.length > 0) ctx.log.warn({ warnings: outcome.warnings.length }, 'revision has warnings')
  if (!outcome.valid) return rejectRevision(ctx, snapshot.revision, outcome.violations)
  ctx.resources = outcome.resources
  return next
}

/**
 * Aborted through `hooks.signal` (a newer commit)? Ends the pass as `superseded`, after emitting
 * `commit.<sha>.superseded` with `by` when the newer sha is known (best effort: logged when not delivered).
 * Runs before the CA step and before publishing; once publishing started the pass runs to the end.
 */
export async function supersedeStep(ctx: PassContext): StepResult {
  const { deps, state, hooks } = ctx
  if (!hooks.signal.aborted) return next
  const revision = ctx.revision as string
  const sha = ctx.sha as string
  const reason = hooks.signal.reason as { by?: string } | undefined
  if (!reason?.by) return { value: { result: 'superseded', revision, sha, by: '' } }
  const by = gitRevision(deps.branch, reason.by)
  ctx.log.info({ by }, 'revision superseded')
  const publication = passPublication(state.passStart)
  await deps.bus.emit(commitSupersededEvent({ revision, time: deps.now(), by, publication })).catch((err) => {
    ctx.log.warn({ err }, 'superseded event not delivered')
  })
  return { value: { result: 'superseded', revision, sha, by } }
}

/**
 * Compile: one table per zone (with the builtin CA certificates of the CA step). An exception (a bug) is logged
 * as CompileFailed and the commit is rejected like an invalid one, with an `internal.compile` violation.
 */
export async function compileStep(ctx: PassContext): StepResult {
  const { deps } = ctx
  const revision = ctx.revision as string
  const resources = ctx.resources as NonNullable<PassContext['resources']>
  const builtinCaCerts = ctx.caPlan?.builtinCaCerts
  try {
    ctx.tables = builtinCaCerts ? deps.compile(resources, { builtinCaCerts }) : deps.compile(resources)
    return next
  } catch (err) {
    const error = asReconcileError(err, (m, cause) => new CompileFailed(revision, m, { cause }))
    ctx.log.error({ err: error }, 'compile failed')
    return rejectRevision(ctx, revision, [internalViolation('compile', err)])
  }
}

/**
 * Diff: reads the inventory from KV when unknown, plans the writes by digest (steps/plan.ts) and refuses a plan
 * that leaves a zone without routes it had (EmptyZoneRefused) unless `allowEmpty`, or a table larger than the
 * publisher writes (TableTooLarge: over `maxTableBytes`, 256 MiB; tables over the server's max_payload are
 * published through the object store). PublishFailed when the inventory cannot be read.
 */
export async function diffStep(ctx: PassContext): StepResult {
  const { deps, state } = ctx
  const revision = ctx.revision as string
  const tables = ctx.tables ?? []
  if (!state.inventory) {
    try {
      state.inventory = await deps.bus.readInventory()
      for (const [zone, e] of state.inventory)
        state.lastGenerations.set(zone, Math.max(e.table.generation, state.lastGenerations.get(zone) ?? 0))
    } catch (err) {
      return { error: asReconcileError(err, (m, cause) => new PublishFailed('zonegate-tables', m, { cause })) }
    }
  }
  const plan = planZoneChanges(state.inventory, tables, revision, state.lastGenerations, deps.signer)
  const emptied = emptiedZones(plan)
  if (emptied.length > 0 && !deps.allowEmpty)
    return refuseRevision(ctx, revision, new EmptyZoneRefused(revision, emptied))
  const max = deps.bus.maxTableBytes?.()
  if (max) {
    // measured on the very string the publisher writes, which goes on with the change (serialised once a pass)
    for (const c of plan) if (c.change !== 'removed') c.json = tableEnvelopeJson(c.table)
    const big = plan.flatMap((c) => {
      const bytes = c.change === 'removed' ? 0 : Buffer.byteLength(c.json as string)
      return bytes > max ? [{ zone: c.zone, bytes }] : []
    })
    if (big.length > 0) {
      const [first, ...more] = big as [{ zone: string; bytes: number }, ...{ zone: string; bytes: number }[]]
      return refuseRevision(ctx, revision, new TableTooLarge(first.zone, first.bytes, max, { more }))
    }
  }
  ctx.log.debug({ zones: tables.length, changes: plan.length }, 'diffed')
  ctx.plan = plan
  return next
}

import type { Logger } from 'pino'
import type { CommitPublishedEvent } from '../../schemas/events.js'
import { gitRevision } from '../../schemas/revision.js'
import type { ZoneTable } from '../../schemas/table.js'
import type { Violation } from '../../schemas/violation.js'
import {
  CompileFailed,
  EmptyZoneRefused,
  ErrorKind,
  FetchFailed,
  PublishFailed,
  ReconcileError,
  TableTooLarge,
  ValidationFailed,
} from '../core/errors.js'
import {
  type BuiltEvent,
  commitFetchedEvent,
  commitInvalidEvent,
  commitPublication,
  commitPublishedEvent,
  passPublication,
  rolloutPublishedEvent,
} from '../core/events.js'
import type { Resources, Snapshot } from '../core/model.js'
import type { PassState } from '../reconcile.js'
import type { PassHooks } from '../triggers.js'
import { emptiedZones, planZoneChanges, type ZoneChange } from './plan.js'
import type { Inventory, PassDeps, Step } from './types.js'

/**
 * The steps of one pass, in order (see reconciler/reconcile.ts). Each returns `{ value }` or `{ error }`
 * (a ReconcileError with a stable code); none throws.
 */

/** Wraps anything thrown by an effect into a ReconcileError (`wrap` picks the class for foreign errors). */
function asReconcileError(err: unknown, wrap: (message: string, cause: unknown) => ReconcileError): ReconcileError {
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

/** Queues events (once per msg id) and sends every pending one. */
async function emitAll(deps: PassDeps, state: PassState, events: BuiltEvent[]): Promise<Step<void>> {
  for (const e of events) if (!state.pendingEvents.some((p) => p.msgId === e.msgId)) state.pendingEvents.push(e)
  return flushEvents(deps, state)
}

export type Fetched =
  | { kind: 'unchanged'; sha: string; revision: string }
  | { kind: 'stalled'; sha: string; revision: string }
  | { kind: 'new'; sha: string; revision: string; snapshot: Snapshot }

/**
 * Step 1, fetch: resolves the branch tip; stops early when it is the applied sha (`unchanged`) or the sha that
 * stalled (`stalled`); otherwise reads the snapshot and emits `commit.<sha>.fetched`. FetchFailed on Git errors.
 */
export async function fetchStep(deps: PassDeps, state: PassState, hooks: PassHooks): Promise<Step<Fetched>> {
  let sha: string
  try {
    sha = await deps.source.resolve()
  } catch (err) {
    return { error: asReconcileError(err, (m, cause) => new FetchFailed(deps.branch, m, { cause })) }
  }
  const revision = gitRevision(deps.branch, sha)
  hooks.fetched(sha)
  if (sha === state.lastAppliedSha && state.inventory) return { value: { kind: 'unchanged', sha, revision } }
  if (sha === state.stalledSha) return { value: { kind: 'stalled', sha, revision } }
  let snapshot: Snapshot
  try {
    snapshot = await deps.source.fetch(sha)
  } catch (err) {
    const error = asReconcileError(err, (m, cause) => new FetchFailed(deps.branch, m, { cause }))
    if (error.kind === ErrorKind.Transient) return { error }
    // The revision itself is unusable (path missing, file too large): report it like any invalid commit.
    const violation = { file: '', line: 1, column: 1, kind: '', name: '', path: '', rule: `source.${error.code}` }
    return rejectRevision(deps, state, revision, sha, [{ ...violation, message: error.message }], deps.log)
  }
  deps.log.child({ component: 'reconcile', revision }).info({ files: snapshot.files.size }, 'revision fetched')
  if (sha !== state.lastAppliedSha) {
    const sent = await emitAll(deps, state, [
      commitFetchedEvent({ revision, time: deps.now(), publication: passPublication(state.passStart) }),
    ])
    if ('error' in sent) return sent
  }
  return { value: { kind: 'new', sha, revision, snapshot } }
}

/**
 * Step 2, parse + validate: every violation of the snapshot. Invalid: emits `commit.<sha>.invalid` with all
 * violations, marks the sha stalled and returns ValidationFailed. If the event cannot be sent the error is the
 * transient PublishFailed instead (the sha is retried, so the event is not lost).
 */
export async function validateStep(
  deps: PassDeps,
  state: PassState,
  snapshot: Snapshot,
  sha: string,
  log: Logger,
): Promise<Step<Resources>> {
  let outcome: ReturnType<PassDeps['validate']>
  try {
    outcome = deps.validate(snapshot)
  } catch (err) {
    // A validator bug: the commit is still reported as invalid (event + stall), never retried on every poll.
    return rejectRevision(deps, state, snapshot.revision, sha, [internalViolation('validate', err)], log)
  }
  if (outcome.warnings.length > 0) log.warn({ warnings: outcome.warnings.length }, 'revision has warnings')
  if (outcome.valid) return { value: outcome.resources }
  return rejectRevision(deps, state, snapshot.revision, sha, outcome.violations, log)
}

/** Emits `commit.<sha>.invalid` with every violation, stalls the sha, returns ValidationFailed. */
export async function rejectRevision(
  deps: PassDeps,
  state: PassState,
  revision: string,
  sha: string,
  violations: Violation[],
  log: Logger,
): Promise<{ error: ReconcileError }> {
  const error = new ValidationFailed(revision, violations)
  log.error({ err: error, violations: violations.length }, 'revision rejected')
  const sent = await emitAll(deps, state, [
    commitInvalidEvent({
      revision,
      time: deps.now(),
      violations,
      publication: passPublication(state.passStart),
    }),
  ])
  if ('error' in sent) return sent
  state.stalledSha = sha
  state.stalledError = error
  return { error }
}

/** A violation standing for an exception of the validator or compiler (a bug), so the commit is still reported. */
function internalViolation(step: 'validate' | 'compile', err: unknown): Violation {
  const why = err instanceof Error ? err.message : String(err)
  return {
    ...{ file: '', line: 1, column: 1, kind: '', name: '', path: '' },
    rule: `internal.${step}`,
    message: `internal error in ${step}: ${why}`,
  }
}

/**
 * Step 3, compile: one table per zone. An exception (a bug) is logged as CompileFailed and the commit is rejected
 * like an invalid one (`commit.<sha>.invalid` with an `internal.compile` violation, sha stalled).
 */
export async function compileStep(
  deps: PassDeps,
  state: PassState,
  resources: Resources,
  revision: string,
  sha: string,
  log: Logger,
  builtinCaCerts?: ReadonlyMap<string, readonly string[]>,
): Promise<Step<ZoneTable[]>> {
  try {
    return { value: builtinCaCerts ? deps.compile(resources, { builtinCaCerts }) : deps.compile(resources) }
  } catch (err) {
    const error = asReconcileError(err, (m, cause) => new CompileFailed(revision, m, { cause }))
    log.error({ err: error }, 'compile failed')
    return rejectRevision(deps, state, revision, sha, [internalViolation('compile', err)], log)
  }
}

/**
 * Step 4, diff: reads the inventory from KV when unknown, plans the writes by digest and refuses a plan that
 * leaves a zone without routes it had (EmptyZoneRefused, stalled) unless `allowEmpty`.
 */
export async function diffStep(
  deps: PassDeps,
  state: PassState,
  tables: ZoneTable[],
  revision: string,
  sha: string,
  log: Logger,
): Promise<Step<ZoneChange[]>> {
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
  if (emptied.length > 0 && !deps.allowEmpty) {
    const error = new EmptyZoneRefused(revision, emptied)
    return refuseRevision(deps, state, { revision, sha, error }, log)
  }
  const max = deps.bus.maxPayload?.()
  if (max) {
    const big = plan.flatMap((c) => {
      const bytes = c.change === 'removed' ? 0 : Buffer.byteLength(JSON.stringify(c.table))
      return bytes > max - 1024 ? [{ zone: c.zone, bytes }] : []
    })
    if (big.length > 0) {
      const [first, ...more] = big as [{ zone: string; bytes: number }, ...{ zone: string; bytes: number }[]]
      const error = new TableTooLarge(first.zone, first.bytes, max, { more })
      return refuseRevision(deps, state, { revision, sha, error }, log)
    }
  }
  log.debug({ zones: tables.length, changes: plan.length }, 'diffed')
  return { value: plan }
}

/**
 * A refusal as violations, one per refused zone (`kind: 'Zone'`, no file: the files are valid, the zone's
 * compiled table is not); rules `zone.empty-refused` and `zone.table-too-large`. Pure.
 */
export function refusalViolations(error: EmptyZoneRefused | TableTooLarge): Violation[] {
  const v = (zone: string, rule: string, message: string): Violation => ({
    file: '',
    line: 1,
    column: 1,
    kind: 'Zone',
    name: zone,
    path: '',
    rule,
    message,
  })
  if (error instanceof EmptyZoneRefused)
    return error.zones.map((z) =>
      v(z.zone, 'zone.empty-refused', `would lose all ${z.routes} route(s); --allow-empty allows it`),
    )
  return error.zones.map((z) =>
    v(z.zone, 'zone.table-too-large', `table is ${z.bytes} bytes, over max_payload ${error.maxPayload}`),
  )
}

/**
 * Refuses a valid revision whose tables cannot be published (EmptyZoneRefused, TableTooLarge): emits
 * `commit.<sha>.invalid` with `reason`, every refused zone and one violation per zone, and stalls the sha. If
 * the event cannot be sent, the transient PublishFailed is returned instead (the sha is retried, so the event
 * is not lost).
 */
async function refuseRevision(
  deps: PassDeps,
  state: PassState,
  r: { revision: string; sha: string; error: EmptyZoneRefused | TableTooLarge },
  log: Logger,
): Promise<{ error: ReconcileError }> {
  log.error({ err: r.error }, 'revision refused')
  const violations = refusalViolations(r.error)
  const zones = violations.map((v) => v.name)
  const event = commitInvalidEvent({
    revision: r.revision,
    time: deps.now(),
    violations,
    publication: passPublication(state.passStart),
    reason: r.error.code,
    zones,
  })
  const sent = await emitAll(deps, state, [event])
  if ('error' in sent) return sent
  state.stalledSha = r.sha
  state.stalledError = r.error
  return { error: r.error }
}

/**
 * Zones a previous attempt at this revision already wrote (issue #16.4): tables in the inventory carrying this
 * revision that the plan does not write again, because a reconciler killed mid-publish (or a pass that failed
 * midway) wrote them and no `commit.<sha>.published` followed. They belong to this commit's publication: their
 * `rollout.<zone>.published` events are sent (again: the msg id of a zone's event is per generation, so one the
 * previous holder did send is stored once) and they are listed in `commit.<sha>.published`. Pure.
 */
export function alreadyPublished(
  inventory: Inventory,
  plan: readonly ZoneChange[],
  revision: string,
): { zone: string; generation: number; digest: string; change: 'added' | 'changed' }[] {
  const planned = new Set(plan.map((c) => c.zone))
  return [...inventory.entries()]
    .filter(([zone, e]) => !planned.has(zone) && e.table.revision === revision)
    .map(([zone, e]) => ({
      zone,
      generation: e.table.generation,
      digest: e.table.digest,
      change: e.table.generation > 1 ? ('changed' as const) : ('added' as const),
    }))
}

/**
 * Step 5, publish: writes each changed zone with CAS (generation = previous + 1), deletes removed zones, updates
 * the inventory as each write lands, then emits `rollout.<zone>.published` per zone and `commit.<sha>.published`.
 * A new sha that changes nothing still gets `commit.<sha>.published` with no zones. A revision found
 * half-published (`alreadyPublished`) gets the events of the zones written before as well. PublishFailed /
 * PublishConflict (the inventory is then re-read by the next pass) on NATS errors.
 */
export async function publishStep(
  deps: PassDeps,
  state: PassState,
  plan: ZoneChange[],
  revision: string,
  sha: string,
  log: Logger,
): Promise<Step<CommitPublishedEvent['zones']>> {
  const inventory = state.inventory as NonNullable<PassState['inventory']>
  const zones: CommitPublishedEvent['zones'] = []
  const time = deps.now()
  const events: BuiltEvent[] = []
  const isNew = sha !== state.lastAppliedSha
  if (isNew) {
    const earlier = alreadyPublished(inventory, plan, revision)
    if (earlier.length > 0)
      log.info({ zones: earlier.map((z) => z.zone) }, 'revision found half-published: sending its missing events')
    for (const z of earlier) {
      zones.push(z)
      events.push(rolloutPublishedEvent({ revision, time, zone: z.zone, generation: z.generation, digest: z.digest }))
    }
  }
  for (const c of plan) {
    try {
      if (c.change === 'removed') {
        await deps.bus.removeTable(c.zone, c.expectedKvRevision)
        inventory.delete(c.zone)
        state.lastGenerations.set(c.zone, c.previousGeneration)
        zones.push({ zone: c.zone, generation: c.previousGeneration, digest: '', change: 'removed' })
        log.child({ zone: c.zone }).info('zone removed')
      } else {
        const kvRevision = await deps.bus.publishTable(c.table, c.expectedKvRevision)
        inventory.set(c.zone, { table: c.table, kvRevision })
        state.lastGenerations.set(c.zone, c.table.generation)
        zones.push({ zone: c.zone, generation: c.table.generation, digest: c.table.digest, change: c.change })
        const { generation, digest } = c.table
        events.push(rolloutPublishedEvent({ revision, time, zone: c.zone, generation, digest }))
        log.child({ zone: c.zone }).info({ generation, digest, routes: c.table.routes.length }, 'zone published')
      }
    } catch (err) {
      const error = asReconcileError(
        err,
        (m, cause) => new PublishFailed(`zonegate-tables/${c.zone}.table`, m, { cause }),
      )
      if (error.code === 'PublishConflict') state.inventory = undefined
      // Zones already written stay written; their events are queued so the retry announces them.
      for (const e of events) if (!state.pendingEvents.some((p) => p.msgId === e.msgId)) state.pendingEvents.push(e)
      return { error }
    }
  }
  state.lastAppliedSha = sha
  if (state.stalledSha === sha) state.stalledSha = undefined
  zones.sort((a, b) => (a.zone < b.zone ? -1 : a.zone > b.zone ? 1 : 0))
  if (isNew || zones.length > 0)
    events.push(commitPublishedEvent({ revision, time, zones, publication: commitPublication(zones) }))
  const sent = await emitAll(deps, state, events)
  if ('error' in sent) return sent
  return { value: zones }
}

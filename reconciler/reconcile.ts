import type { CommitPublishedEvent } from '../schemas/events.js'
import { gitRevision, shaOfRevision } from '../schemas/revision.js'
import type { Violation } from '../schemas/violation.js'
import type { AppliedMtls } from './core/ca-change.js'
import type { ActiveMeshCa } from './core/cert-service.js'
import { EmptyZoneRefused, type ReconcileError, TableTooLarge } from './core/errors.js'
import { type BuiltEvent, commitSupersededEvent, passPublication } from './core/events.js'
import { caStep, commitCaPlan } from './steps/ca-step.js'
import {
  compileStep,
  diffStep,
  fetchStep,
  flushEvents,
  publishStep,
  refusalViolations,
  validateStep,
} from './steps/steps.js'
import type { Inventory, PassDeps } from './steps/types.js'
import type { PassHooks } from './triggers.js'

export type { Inventory, InventoryEntry, PassBus, PassDeps, PassSource } from './steps/types.js'

/**
 * One reconcile pass, always the same steps in the same order (STYLE.md §3):
 *
 *   fetch → parse + validate → mesh CAs → compile → diff → publish
 *
 * Each step (reconciler/steps/steps.ts) returns `{ value }` or `{ error }` and the pass stops at the first
 * error. Writing the status is the caller's job (main.ts), whatever the pass returns.
 *
 * - Unchanged branch tip already applied: stops after `resolve()` (result `unchanged`, nothing read).
 * - A sha that stalled (invalid, empty zone refused) is not retried: result `skipped` until the tip moves.
 * - Invalid commit: publishes nothing, emits `commit.<sha>.invalid` with every violation (result `invalid`).
 * - Aborted through `hooks.signal` before publishing (a newer commit): emits `commit.<sha>.superseded` with
 *   `by`, result `superseded`. Once publishing started the pass runs to the end.
 * - Git/NATS failures: result `failed` with FetchFailed/PublishFailed/PublishConflict; the last good tables
 *   stay; events not yet delivered are kept in `state.pendingEvents` and sent by the next pass.
 */
export interface PassState {
  /** What each zone last received; undefined = read it from KV before diffing (start-up, takeover, conflict). */
  inventory?: Inventory
  /**
   * Last generation this reconciler wrote or removed per zone: a zone that comes back continues its generation,
   * and a lower generation found in KV (written by somebody else) does not pull the next one down.
   */
  lastGenerations: Map<string, number>
  /** Sha whose tables are all published (or that changed nothing). */
  lastAppliedSha?: string
  /** Sha that stalled: not retried until the branch moves. */
  stalledSha?: string
  stalledError?: ReconcileError
  /** Events built but not yet acknowledged by the stream (sent first by the next pass). */
  pendingEvents: BuiltEvent[]
  /** mTLS state of the last applied revision (the CA-change rule's reference); read from KV when undefined. */
  appliedMtls?: AppliedMtls
  /** The applied state was not written to KV yet. */
  appliedMtlsDirty?: boolean
  /** Signing CAs of the meshes with mTLS on in the last applied revision (the certificate service reads them). */
  meshCas?: Map<string, ActiveMeshCa>
  /** When the current pass started (the `p<ms>` publication part of its pre-publish commit events). */
  passStart: Date
}

export const initialPassState = (): PassState => ({
  lastGenerations: new Map(),
  pendingEvents: [],
  passStart: new Date(0),
})

/**
 * After the NATS server lost its store (issue #16.1): nothing this process published is there any more. The
 * next pass must publish every zone again, so the inventory becomes empty and the applied sha unknown; each
 * zone's last generation is kept in `lastGenerations`, so the republished tables continue their generation
 * (an egress still serving generation N admits N + 1 without having to notice the recreated bucket).
 */
export function forgetPublished(state: PassState): void {
  rememberGenerations(state)
  state.inventory = new Map()
  state.lastAppliedSha = undefined
  state.stalledSha = undefined
  state.stalledError = undefined
}

/**
 * Folds each zone's generation in the inventory into `lastGenerations` (used only for a zone absent from KV),
 * before the inventory is dropped (lease takeover, lost store), so generations continue whatever happens in
 * between. Updates `state` in place.
 */
export function rememberGenerations(state: PassState): void {
  for (const [zone, e] of state.inventory ?? [])
    state.lastGenerations.set(zone, Math.max(e.table.generation, state.lastGenerations.get(zone) ?? 0))
}

export type PassReport =
  | {
      result: 'applied'
      revision: string
      sha: string
      zones: CommitPublishedEvent['zones']
      /** Milliseconds spent in each step (fetch, validate, compile, diff, publish). */
      timings: Record<string, number>
    }
  | { result: 'unchanged'; revision: string; sha: string }
  | { result: 'skipped'; revision: string; sha: string; error: ReconcileError }
  | { result: 'invalid'; revision: string; sha: string; error: ReconcileError; violations: Violation[] }
  | { result: 'failed'; revision?: string; sha?: string; error: ReconcileError }
  | { result: 'superseded'; revision: string; sha: string; by: string }

/** Runs one pass; never throws (unexpected exceptions become `failed`). Updates `state` in place. */
export async function reconcileOnce(deps: PassDeps, state: PassState, hooks: PassHooks): Promise<PassReport> {
  const log = deps.log
  const started = performance.now()
  state.passStart = deps.now()
  const fetched = await fetchStep(deps, state, hooks)
  if ('error' in fetched) {
    const e = fetched.error as ReconcileError & { revision?: string; violations?: Violation[] }
    if (e.code === 'ValidationFailed' && e.revision) {
      const sha = shaOfRevision(e.revision) ?? ''
      return { result: 'invalid', revision: e.revision, sha, error: e, violations: e.violations ?? [] }
    }
    return { result: 'failed', error: fetched.error }
  }
  const { sha, revision } = fetched.value
  const passLog = log.child({ component: 'reconcile', revision })

  const f = fetched.value
  if (f.kind === 'unchanged') {
    const flushed = await flushEvents(deps, state)
    if ('error' in flushed) return { result: 'failed', revision, sha, error: flushed.error }
    return { result: 'unchanged', revision, sha }
  }
  if (f.kind === 'stalled') {
    return { result: 'skipped', revision, sha, error: state.stalledError as ReconcileError }
  }
  const snapshot = f.snapshot

  const superseded = async (): Promise<PassReport | undefined> => {
    if (!hooks.signal.aborted) return undefined
    const reason = hooks.signal.reason as { by?: string } | undefined
    if (!reason?.by) return { result: 'superseded', revision, sha, by: '' }
    const by = gitRevision(deps.branch, reason.by)
    passLog.info({ by }, 'revision superseded')
    await deps.bus
      .emit(commitSupersededEvent({ revision, time: deps.now(), by, publication: passPublication(state.passStart) }))
      .catch((err) => {
        passLog.warn({ err }, 'superseded event not delivered')
      })
    return { result: 'superseded', revision, sha, by }
  }

  const timings: Record<string, number> = {}
  let t = performance.now()
  const mark = (step: string) => {
    const now = performance.now()
    timings[step] = Math.round((now - t) * 10) / 10
    t = now
  }
  timings.fetch = Math.round((t - started) * 10) / 10

  const validated = await validateStep(deps, state, snapshot, sha, passLog)
  mark('validate')
  if ('error' in validated) {
    const violations = (validated.error as { violations?: Violation[] }).violations ?? []
    if (validated.error.code === 'ValidationFailed')
      return { result: 'invalid', revision, sha, error: validated.error, violations }
    return { result: 'failed', revision, sha, error: validated.error }
  }
  const aborted1 = await superseded()
  if (aborted1) return aborted1

  const cas = await caStep(deps, state, validated.value, revision, sha, passLog)
  mark('ca')
  if ('error' in cas) {
    const violations = (cas.error as { violations?: Violation[] }).violations ?? []
    if (cas.error.code === 'ValidationFailed') return { result: 'invalid', revision, sha, error: cas.error, violations }
    return { result: 'failed', revision, sha, error: cas.error }
  }

  const compiled = await compileStep(deps, state, validated.value, revision, sha, passLog, cas.value.builtinCaCerts)
  mark('compile')
  if ('error' in compiled) {
    const violations = (compiled.error as { violations?: Violation[] }).violations ?? []
    if (compiled.error.code === 'ValidationFailed')
      return { result: 'invalid', revision, sha, error: compiled.error, violations }
    return { result: 'failed', revision, sha, error: compiled.error }
  }

  const planned = await diffStep(deps, state, compiled.value, revision, sha, passLog)
  mark('diff')
  if ('error' in planned) {
    if (planned.error instanceof EmptyZoneRefused || planned.error instanceof TableTooLarge)
      return { result: 'invalid', revision, sha, error: planned.error, violations: refusalViolations(planned.error) }
    return { result: 'failed', revision, sha, error: planned.error }
  }
  const aborted2 = await superseded()
  if (aborted2) return aborted2

  hooks.publishing()
  const published = await publishStep(deps, state, planned.value, revision, sha, passLog)
  mark('publish')
  if ('error' in published) return { result: 'failed', revision, sha, error: published.error }
  await commitCaPlan(deps, state, cas.value, passLog)
  if (published.value.length === 0) return { result: 'unchanged', revision, sha }
  passLog.info({ zones: published.value.length, timings }, 'revision applied')
  return { result: 'applied', revision, sha, zones: published.value, timings }
}

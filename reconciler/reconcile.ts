import { shaOfRevision } from '../schemas/revision.js'
import { EmptyZoneRefused, type ReconcileError, TableTooLarge, ValidationFailed } from './core/errors.js'
import { applyError, type PassReport, type PassState } from './pass-state.js'
import { caCommitStep, caStep } from './steps/ca-step.js'
import { refusalViolations } from './steps/commit-events.js'
import { publishStep } from './steps/publish-step.js'
import { compileStep, diffStep, fetchStep, supersedeStep, validateStep } from './steps/steps.js'
import type { PassContext, PassDeps, PassStep } from './steps/types.js'
import type { PassHooks } from './triggers.js'

/**
 * One reconcile pass: always the same steps in the same order (STYLE.md §3), run from one list by one loop, as
 * Flux's source-controller runs its `reconcilers` list:
 *
 *   fetch → validate → (superseded?) → mesh CAs → compile → diff → (superseded?) → publish → apply the CA plan
 *
 * Every step shares one signature over the pass context (steps/types.ts) and returns `{ value }` or `{ error }`;
 * the pass stops at the first error, applies its policy to the state (`applyError`: a stalled error stalls the
 * sha) and reports it. Writing the status is the caller's job (main.ts), whatever the pass returns.
 *
 * - Unchanged branch tip already applied: stops after `resolve()` (result `unchanged`, nothing read).
 * - A sha that stalled (invalid, empty zone refused) is not retried: result `skipped` until the tip moves.
 * - Invalid commit: publishes nothing, emits `commit.<sha>.invalid` with every violation (result `invalid`).
 * - Aborted through `hooks.signal` before publishing (a newer commit): emits `commit.<sha>.superseded` with
 *   `by`, result `superseded`. Once publishing started the pass runs to the end.
 * - Git/NATS failures: result `failed` with FetchFailed/PublishFailed/PublishConflict; the last good tables
 *   stay; events not yet delivered are kept in `state.pendingEvents` and sent by the next pass.
 */
export const PASS_STEPS: readonly PassStep[] = [
  { name: 'fetch', timed: true, run: fetchStep },
  { name: 'validate', timed: true, run: validateStep },
  { name: 'superseded', timed: false, run: supersedeStep },
  { name: 'ca', timed: true, run: caStep },
  { name: 'compile', timed: true, run: compileStep },
  { name: 'diff', timed: true, run: diffStep },
  { name: 'superseded', timed: false, run: supersedeStep },
  { name: 'publish', timed: true, run: publishStep },
  { name: 'ca-commit', timed: false, run: caCommitStep },
]

/** Runs one pass; never throws (unexpected exceptions become `failed`). Updates `state` in place. */
export async function reconcileOnce(
  deps: PassDeps,
  state: PassState,
  hooks: PassHooks,
  steps: readonly PassStep[] = PASS_STEPS,
): Promise<PassReport> {
  state.passStart = deps.now()
  const ctx: PassContext = { deps, state, hooks, log: deps.log }
  const timings: Record<string, number> = {}
  for (const step of steps) {
    const started = performance.now()
    const r = await step.run(ctx)
    if (step.timed) timings[step.name] = Math.round((performance.now() - started) * 10) / 10
    if ('error' in r) return failedPass(ctx, r.error)
    if (r.value) return r.value
  }
  const revision = ctx.revision as string
  const sha = ctx.sha as string
  const zones = ctx.zones ?? []
  if (zones.length === 0) return { result: 'unchanged', revision, sha }
  ctx.log.info({ zones: zones.length, timings }, 'revision applied')
  return { result: 'applied', revision, sha, zones, timings }
}

/**
 * The report of a pass stopped by `error`, after applying the error to the state: `invalid` (with its
 * violations) when the revision was turned down, `failed` otherwise (with the revision once it is known).
 */
function failedPass(ctx: PassContext, error: ReconcileError): PassReport {
  const revision = ctx.revision ?? (error instanceof ValidationFailed ? error.revision : undefined)
  const sha = ctx.sha ?? shaOfRevision(revision)
  applyError(ctx.state, error, sha)
  const violations =
    error instanceof ValidationFailed
      ? error.violations
      : error instanceof EmptyZoneRefused || error instanceof TableTooLarge
        ? refusalViolations(error)
        : undefined
  if (violations && revision !== undefined) return { result: 'invalid', revision, sha: sha ?? '', error, violations }
  return {
    result: 'failed',
    ...(revision === undefined ? {} : { revision }),
    ...(sha === undefined ? {} : { sha }),
    error,
  }
}

import type { ZonegateEvent } from '../../schemas/events.js'
import { shaOfEvent, shaOfRevision } from '../../schemas/revision.js'
import { formatViolation } from '../../schemas/violation.js'

/**
 * The pure half of `zonegate rollout watch`: which events concern the watched commit, when the watch is done
 * (and with which outcome), and how an event, the summary and a JSON result look. No I/O, no clock: the CLI
 * (reconciler/cli/rollout.ts) feeds events in stream order and passes elapsed time in.
 *
 * Target selection:
 * - `--commit SHA` (full or a prefix): the events of that commit; rollout events are matched through the
 *   sha of their `revision`. A `commit.superseded` event moves the target to the commit that replaced it
 *   (its tables contain this commit's changes in a linear history), so the watch ends on the newer commit.
 * - no `--commit` with `--until converged`: the next commit that the reconciler reports (the first
 *   `commit.fetched`, `commit.invalid` or `commit.published` seen); earlier rollout events are only printed.
 * - no `--commit` and no `--until`: every event is printed (filtered by `--zone`) until interrupted.
 */

export const Outcome = {
  Converged: 'converged',
  Invalid: 'invalid',
  Stalled: 'stalled',
  Timeout: 'timeout',
  /** `--zone` names a zone the commit's publication does not touch: nothing to wait for there (exit 1). */
  Untouched: 'untouched',
} as const
export type Outcome = (typeof Outcome)[keyof typeof Outcome]

export interface WatchOptions {
  /** Full sha or prefix of the commit to watch; undefined = adopt the next commit that appears. */
  commit?: string
  /** Zones to watch (`--zone`, repeatable); empty = all zones of the commit. */
  zones: readonly string[]
  /** true with `--until converged`: stop at the target's converged event. */
  untilConverged: boolean
}

export interface ZoneProgress {
  generation?: number
  applied: number
  converged?: { instances: number; ms: number }
}

export interface WatchState {
  readonly options: WatchOptions
  /** The commit followed now (full sha once an event named it), or undefined. */
  readonly sha?: string
  /** Revision string of the target, once seen. */
  readonly revision?: string
  /** Earlier targets that were superseded, oldest first. */
  readonly superseded: readonly string[]
  /** Zones published by the target commit (set at `commit.published`). */
  readonly publishedZones?: readonly string[]
  readonly zones: Readonly<Record<string, ZoneProgress>>
  readonly violations: number
  readonly outcome?: Outcome
  /** Why the watch ended, one line (empty until an outcome is set). */
  readonly reason: string
}

/** The state before any event. Pure. */
export function initialWatchState(options: WatchOptions): WatchState {
  return { options, sha: options.commit, superseded: [], zones: {}, violations: 0, reason: '' }
}

/** First 7 characters of a sha. Pure. */
export const shortSha = (sha: string | undefined): string => (sha ?? '?').slice(0, 7)

const isCommitEvent = (e: ZonegateEvent) => e.type.startsWith('commit.')
const ADOPTING = new Set(['commit.fetched', 'commit.invalid', 'commit.published'])

function zoneOf(event: ZonegateEvent): string | undefined {
  return 'zone' in event && typeof event.zone === 'string' ? event.zone : undefined
}

/** True when `sha` is the target: equal, or the target is a prefix given on the command line. */
function matches(target: string | undefined, sha: string | undefined): boolean {
  return target !== undefined && sha?.startsWith(target) === true
}

/**
 * Whether an event should be shown and counted for this watch, before `stepWatch` adopts a target.
 * Rollout events of zones outside `--zone` are never relevant. Pure.
 */
export function isRelevant(state: WatchState, event: ZonegateEvent): boolean {
  const zone = zoneOf(event)
  if (zone !== undefined && state.options.zones.length > 0 && !state.options.zones.includes(zone)) return false
  const sha = shaOfEvent(event)
  if (state.sha === undefined) {
    // no target yet: in follow mode everything is shown; in "next commit" mode, a starting commit event adopts
    if (!state.options.untilConverged) return true
    return ADOPTING.has(event.type)
  }
  return matches(state.sha, sha)
}

/**
 * Folds one event into the state (call only with events for which `isRelevant` is true, in stream order).
 * Sets `outcome` when the watch is decided: `converged` (commit converged; or, with `--zone`, every watched
 * zone converged or untouched by the commit; or the commit changed no zone), `invalid`, `stalled`
 * (`commit.stalled`, or a watched zone's `rollout.timeout`). An outcome is never changed once set. Pure.
 */
export function stepWatch(state: WatchState, event: ZonegateEvent): WatchState {
  if (state.outcome) return state
  let s: WatchState = state
  const sha = shaOfEvent(event)
  if (s.sha === undefined && s.options.untilConverged && ADOPTING.has(event.type)) s = { ...s, sha }
  if (!matches(s.sha, sha)) return s
  // a prefix given by the user becomes the full sha at the first matching event
  if (sha && s.sha !== sha && isCommitEvent(event)) s = { ...s, sha }
  if (!s.revision && event.revision) s = { ...s, revision: event.revision }
  const progress = (z: string): ZoneProgress => s.zones[z] ?? { applied: 0 }
  const withZone = (z: string, p: ZoneProgress): WatchState => ({ ...s, zones: { ...s.zones, [z]: p } })

  switch (event.type) {
    case 'commit.invalid':
      return finish(
        { ...s, violations: event.violations.length },
        Outcome.Invalid,
        `${event.violations.length} violation(s)`,
      )
    case 'commit.stalled':
      return finish(s, Outcome.Stalled, `${event.reason}: ${event.message}`)
    case 'commit.converged':
      return finish(s, Outcome.Converged, `zones: ${event.zones.join(', ') || 'none'}`)
    case 'commit.superseded': {
      const next = shaOfRevision(event.by) ?? event.by
      return {
        ...s,
        superseded: [...s.superseded, s.sha ?? event.sha],
        sha: next,
        revision: event.by,
        publishedZones: undefined,
        zones: {},
      }
    }
    case 'commit.published': {
      const zones = event.zones.map((z) => z.zone)
      const next: Record<string, ZoneProgress> = { ...s.zones }
      for (const z of event.zones) next[z.zone] = { ...(next[z.zone] ?? { applied: 0 }), generation: z.generation }
      s = { ...s, publishedZones: zones, zones: next }
      break
    }
    case 'rollout.published':
      s = withZone(event.zone, { ...progress(event.zone), generation: event.generation })
      break
    case 'rollout.applied':
      s = withZone(event.zone, { ...progress(event.zone), applied: progress(event.zone).applied + 1 })
      break
    case 'rollout.converged':
      s = withZone(event.zone, {
        ...progress(event.zone),
        generation: event.generation,
        converged: { instances: event.instances.length, ms: event.ms },
      })
      break
    case 'rollout.timeout':
      return finish(s, Outcome.Stalled, `zone ${event.zone} timed out, missing: ${event.missing.join(', ') || '?'}`)
    default:
      break
  }
  return checkConverged(s)
}

function finish(s: WatchState, outcome: Outcome, reason: string): WatchState {
  return { ...s, outcome, reason }
}

/**
 * Once the commit is published: without `--zone`, a commit that changed no zone is converged; with `--zone`, a
 * watched zone the commit does not touch ends the watch as `untouched` (said, exit 1: there is no rollout to
 * wait for, and "converged" would claim a change that was never made), else converged once every watched zone
 * converged.
 */
function checkConverged(s: WatchState): WatchState {
  const published = s.publishedZones
  if (!published) return s
  const watched = s.options.zones
  const untouched = watched.filter((z) => !published.includes(z))
  if (untouched.length > 0) {
    const what = published.length === 0 ? 'it changed no zone' : `it changed ${published.join(', ')}`
    return finish(
      s,
      Outcome.Untouched,
      `commit ${shortSha(s.sha)} does not touch zone ${untouched.join(', ')} (${what}): nothing to roll out there`,
    )
  }
  if (published.length === 0) return finish(s, Outcome.Converged, 'no zone changed')
  if (watched.length === 0) return s
  const pending = watched.filter((z) => !s.zones[z]?.converged)
  return pending.length === 0 ? finish(s, Outcome.Converged, `zones: ${watched.join(', ')}`) : s
}

/** The state when `--timeout` expires before an outcome: `timeout`, saying what was still awaited. Pure. */
export function timeoutWatch(state: WatchState, timeoutMs: number): WatchState {
  if (state.outcome) return state
  const after = `no outcome after ${formatMs(timeoutMs)}`
  if (!state.sha) return finish(state, Outcome.Timeout, `${after}: no commit seen`)
  const waiting = (state.publishedZones ?? []).filter((z) => !state.zones[z]?.converged)
  const what = state.publishedZones
    ? `published, waiting for ${waiting.join(', ') || 'commit converged'}`
    : 'not published yet'
  return finish(state, Outcome.Timeout, `${after}: commit ${shortSha(state.sha)} ${what}`)
}

/** `3 ms`, `1.2 s`, `60 s`. Pure. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`
}

/**
 * The readable lines for one event (docs/design.md §5 `rollout watch`): `zone-a  applied  ze-a/2  gen 8  3 ms`,
 * `commit 1a2b3c4  published  zones: zone-a(gen 8)`; `commit.invalid` is followed by one indented
 * `file:line:col kind/name path: message` line per violation. Pure.
 */
export function formatEvent(event: ZonegateEvent): string[] {
  const c = (sha: string) => `commit ${shortSha(sha)}`
  const gen = (g: number | undefined) => (g === undefined ? 'gen ?' : `gen ${g}`)
  switch (event.type) {
    case 'commit.fetched':
      return [`${c(event.sha)}  fetched  ${event.revision}`]
    case 'commit.invalid':
      return [
        `${c(event.sha)}  invalid  ${event.violations.length} violation(s)`,
        ...event.violations.map((v) => `  ${formatViolation(v)}`),
      ]
    case 'commit.published': {
      const zones = event.zones.map(
        (z) => `${z.zone}(${gen(z.generation)}${z.change === 'changed' ? '' : `, ${z.change}`})`,
      )
      return [`${c(event.sha)}  published  zones: ${zones.join(', ') || 'none changed'}`]
    }
    case 'commit.superseded':
      return [`${c(event.sha)}  superseded  by ${shortSha(shaOfRevision(event.by) ?? event.by)}`]
    case 'commit.converged':
      return [`${c(event.sha)}  converged  zones: ${event.zones.join(', ') || 'none'}`]
    case 'commit.stalled':
      return [`${c(event.sha)}  stalled  ${event.reason}: ${event.message}`]
    case 'rollout.published':
      return [`${event.zone}  published  ${gen(event.generation)}  ${event.digest.slice(0, 19)}`]
    case 'rollout.converged':
      return [
        `${event.zone}  converged  ${gen(event.generation)}  ${event.instances.length} instance(s)  ${formatMs(event.ms)}`,
      ]
    case 'rollout.timeout':
      return [`${event.zone}  timeout  ${gen(event.generation)}  missing: ${event.missing.join(', ') || '?'}`]
    case 'rollout.applied':
      return [
        `${event.zone}  applied  ${event.egress}/${event.instance}  ${gen(event.generation)}  ${formatMs(event.swapMs)}`,
      ]
    case 'rollout.rejected':
      return [`${event.zone}  rejected  ${event.egress}/${event.instance}  ${gen(event.generation)}  ${event.reason}`]
    default: {
      const unknown = event as { type?: unknown }
      return [`event  ${String(unknown.type)}`]
    }
  }
}

/** The final line: `converged  commit 1a2b3c4  zone-a(gen 8, 3 instances, 12 ms)  in 0.4 s`. Pure. */
export function formatSummary(state: WatchState, elapsedMs: number): string {
  const outcome = state.outcome ?? 'interrupted'
  const commit = state.sha ? `commit ${shortSha(state.sha)}` : 'no commit'
  const via = state.superseded.length > 0 ? ` (after superseded ${state.superseded.map(shortSha).join(', ')})` : ''
  const zones = Object.entries(state.zones)
    .filter(([z]) => state.options.zones.length === 0 || state.options.zones.includes(z))
    .map(([z, p]) =>
      p.converged
        ? `${z}(gen ${p.generation ?? '?'}, ${p.converged.instances} instance(s), ${formatMs(p.converged.ms)})`
        : `${z}(gen ${p.generation ?? '?'}, ${p.applied} applied)`,
    )
  const detail = state.reason ? `  ${state.reason}` : ''
  return `${outcome}  ${commit}${via}${zones.length ? `  ${zones.join(' ')}` : ''}${detail}  in ${formatMs(elapsedMs)}`
}

/** The last line of `--output json`: `{ type: 'watch.result', outcome, sha, revision, reason, zones, ms }`. Pure. */
export function watchResult(state: WatchState, elapsedMs: number): Record<string, unknown> {
  return {
    type: 'watch.result',
    outcome: state.outcome ?? 'interrupted',
    sha: state.sha ?? null,
    revision: state.revision ?? null,
    superseded: state.superseded,
    reason: state.reason,
    zones: state.zones,
    ms: Math.round(elapsedMs),
  }
}

/**
 * True when the watch has a target to decide (`--commit` or `--until converged`); false in plain follow mode,
 * which prints events until interrupted or `--timeout` and exits 0. Pure.
 */
export const hasTarget = (options: WatchOptions): boolean => options.untilConverged || options.commit !== undefined

/** Exit code: 0 converged (or a plain follow that was interrupted), 1 invalid/stalled/timeout/undecided. Pure. */
export function exitCodeFor(state: WatchState): 0 | 1 {
  if (!state.outcome) return hasTarget(state.options) ? 1 : 0
  return state.outcome === Outcome.Converged ? 0 : 1
}

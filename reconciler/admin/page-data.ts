import type { ZonegateEvent } from '../../schemas/events.js'
import { shaOfEvent } from '../../schemas/revision.js'
import type { StatusView } from '../cli/status-view.js'

/**
 * The data of the status page (`GET /api/view`): what `zonegate status` shows, a rollout timeline per commit
 * drawn from the events' times, and the zones × instances grid. Pure.
 */

export interface TimelineStep {
  /** `fetched`, `invalid`, `published`, `applied`, `rejected`, `converged`, `timeout`, `superseded`, `stalled`. */
  phase: string
  time: string
  /** Milliseconds after the commit's first event. */
  at: number
  /** Zone, and `egress/instance` for applied/rejected. */
  zone?: string
  instance?: string
  detail?: string
}

export interface CommitTimeline {
  sha: string
  revision: string
  /** `converged`, `invalid`, `timeout`, `superseded`, `stalled`, or `progressing`. */
  outcome: string
  steps: TimelineStep[]
}

export type CellState = 'current' | 'stale' | 'rejected' | 'none'

export interface GridRow {
  zone: string
  cells: { instance: string; state: CellState; generation?: number; title: string }[]
}

export interface PageData {
  time: string
  ready: boolean
  reason: string
  view: StatusView
  timelines: CommitTimeline[]
  grid: GridRow[]
}

const OUTCOMES = new Set(['converged', 'invalid', 'superseded', 'stalled'])

/** Timelines of the commits seen in `events` (newest first, at most `limit`). Pure. */
export function buildTimelines(events: readonly ZonegateEvent[], limit = 5): CommitTimeline[] {
  const bySha = new Map<string, CommitTimeline & { t0: number }>()
  for (const e of events) {
    const sha = shaOfEvent(e)
    if (!sha) continue
    const t = Date.parse(e.time)
    let tl = bySha.get(sha)
    if (!tl) {
      tl = { sha, revision: e.revision, outcome: 'progressing', steps: [], t0: t }
      bySha.set(sha, tl)
    }
    tl.t0 = Math.min(tl.t0, t)
    const phase = e.type.split('.')[1] as string
    const step: TimelineStep = { phase, time: e.time, at: 0 }
    if ('zone' in e) step.zone = e.zone
    if (e.type === 'rollout.applied' || e.type === 'rollout.rejected') step.instance = `${e.egress}/${e.instance}`
    if (e.type === 'rollout.rejected') step.detail = e.reason
    if (e.type === 'rollout.timeout') step.detail = `missing ${e.missing.join(', ')}`
    if (e.type === 'commit.invalid') step.detail = `${e.violations.length} violation(s)`
    if (e.type === 'commit.published') step.detail = e.zones.map((z) => `${z.zone} gen ${z.generation}`).join(', ')
    if (e.type.startsWith('commit.') && OUTCOMES.has(phase)) tl.outcome = phase
    if (e.type === 'rollout.timeout' && tl.outcome === 'progressing') tl.outcome = 'timeout'
    tl.steps.push(step)
  }
  const out = [...bySha.values()]
  for (const tl of out) {
    tl.steps.sort((a, b) => Date.parse(a.time) - Date.parse(b.time))
    for (const s of tl.steps) s.at = Date.parse(s.time) - tl.t0
  }
  out.sort((a, b) => b.t0 - a.t0)
  return out.slice(0, limit).map(({ t0: _t0, ...tl }) => tl)
}

/**
 * The zones × instances grid: `current` (serves the zone's published digest), `stale` (another one), `rejected`
 * (its last event for the zone's current generation is a rejection), `none` (no table yet). Pure.
 */
export function buildGrid(view: StatusView, events: readonly ZonegateEvent[]): GridRow[] {
  const rejected = new Map<string, string>()
  for (const e of events) {
    if (e.type === 'rollout.rejected') rejected.set(`${e.zone}|${e.egress}/${e.instance}|${e.digest ?? ''}`, e.reason)
    if (e.type === 'rollout.applied') rejected.delete(`${e.zone}|${e.egress}/${e.instance}|${e.digest}`)
  }
  return view.zones.map((z) => ({
    zone: z.zone,
    cells: z.instances.map((i) => {
      const id = `${i.egress}/${i.instance}`
      const why = z.digest ? rejected.get(`${z.zone}|${id}|${z.digest}`) : undefined
      const state: CellState = i.serving === 'current' ? 'current' : why !== undefined ? 'rejected' : i.serving
      const gen = i.generation === undefined ? 'no table' : `gen ${i.generation}`
      return {
        instance: id,
        state,
        ...(i.generation === undefined ? {} : { generation: i.generation }),
        title: `${id} ${i.state}, ${gen}${why ? `, rejected: ${why}` : ''}`,
      }
    }),
  }))
}

import type { ZonegateEvent } from '../../schemas/events.js'
import { shaOfEvent } from '../../schemas/revision.js'
import { formatViolation } from '../../schemas/violation.js'
import { formatMs } from './rollout-watch.js'

/**
 * What `zonegate events` shows (like `flux events`): one row per event of stream ZONEGATE_EVENTS, filtered by
 * commit and zone. Pure.
 */

export interface EventFilter {
  /** Full sha or prefix (lower case). */
  commit?: string
  zones: readonly string[]
}

/** The zones an event concerns (none for commit events that name no zone). Pure. */
export function eventZones(e: ZonegateEvent): string[] {
  if ('zone' in e) return [e.zone]
  if (e.type === 'commit.published') return e.zones.map((z) => z.zone)
  if (e.type === 'commit.converged') return e.zones
  return []
}

/** Whether an event passes the filter. Pure. */
export function matchesFilter(e: ZonegateEvent, f: EventFilter): boolean {
  if (f.commit && !(shaOfEvent(e) ?? '').startsWith(f.commit)) return false
  if (f.zones.length > 0 && !eventZones(e).some((z) => f.zones.includes(z))) return false
  return true
}

const WARNING = new Set(['commit.invalid', 'commit.stalled', 'rollout.timeout', 'rollout.rejected'])

/** A row: time, Normal/Warning, object, reason, message. Pure. */
export function eventRow(e: ZonegateEvent): {
  time: string
  type: string
  object: string
  reason: string
  message: string
} {
  const [kind = '', phase = ''] = e.type.split('.')
  const short = (sha: string | undefined) => (sha ?? '?').slice(0, 7)
  const gen = (g: number | undefined) => (g === undefined ? 'gen ?' : `gen ${g}`)
  let object = kind === 'commit' ? `commit/${short(shaOfEvent(e))}` : `zone/${eventZones(e)[0] ?? '?'}`
  let message: string
  switch (e.type) {
    case 'commit.fetched':
      message = e.revision
      break
    case 'commit.invalid':
      message = `${e.violations.length} violation(s): ${e.violations.slice(0, 3).map(formatViolation).join('; ')}${e.violations.length > 3 ? '; …' : ''}`
      break
    case 'commit.published':
      message = `zones: ${e.zones.map((z) => `${z.zone}(${gen(z.generation)}, ${z.change})`).join(', ') || 'none changed'}`
      break
    case 'commit.superseded':
      message = `by ${e.by}`
      break
    case 'commit.converged':
      message = `zones: ${e.zones.join(', ') || 'none'}`
      break
    case 'commit.stalled':
      message = `${e.reason}: ${e.message}`
      break
    case 'rollout.published':
      message = `${gen(e.generation)} ${e.digest.slice(0, 19)} (${short(shaOfEvent(e))})`
      break
    case 'rollout.converged':
      message = `${gen(e.generation)} on ${e.instances.length} instance(s) in ${formatMs(e.ms)}`
      break
    case 'rollout.timeout':
      message = `${gen(e.generation)} missing: ${e.missing.join(', ') || '?'}`
      break
    case 'rollout.applied':
      object = `egress/${e.zone}/${e.egress}/${e.instance}`
      message = `${gen(e.generation)} swapped in ${formatMs(e.swapMs)}`
      break
    case 'rollout.rejected':
      object = `egress/${e.zone}/${e.egress}/${e.instance}`
      message = `${gen(e.generation)} ${e.reason}`
      break
    default:
      message = ''
  }
  return { time: e.time, type: WARNING.has(e.type) ? 'Warning' : 'Normal', object, reason: phase, message }
}

const WIDTHS = [24, 7, 30, 10] as const

/** The header line of the text output. Pure. */
export function eventHeader(): string {
  return textRow(['TIME', 'TYPE', 'OBJECT', 'REASON', 'MESSAGE'])
}

/** One text line for an event (fixed columns, so `--watch` lines align). Pure. */
export function formatEventRow(e: ZonegateEvent): string {
  const r = eventRow(e)
  return textRow([r.time, r.type, r.object, r.reason, r.message])
}

function textRow(cells: readonly string[]): string {
  return cells
    .map((c, i) => (i < WIDTHS.length ? c.padEnd(WIDTHS[i] as number) : c))
    .join('  ')
    .trimEnd()
}

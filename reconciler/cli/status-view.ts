import type { ReconcilerStatus, StatusCondition, ZoneRolloutStatus } from '../../schemas/status.js'
import { unknownAfterMs } from '../../schemas/subjects.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import { formatViolation, type Violation } from '../../schemas/violation.js'
import type { InstanceRecord } from '../transport/status-store.js'

/**
 * What `zonegate status` shows, built from what it read on NATS: the reconciler status (KV zonegate-status),
 * the published tables (KV zonegate-tables) and the live instances (KV zonegate-instances). Pure: the JSON
 * of `--output json` is this view; `formatStatusText` renders it like `flux get`.
 */

export interface InstanceView {
  egress: string
  instance: string
  state: string
  generation?: number
  digest?: string
  listen?: string
  admin?: string
  /** Heartbeat time. */
  time: string
  /** `current`: serves the zone's published digest; `stale`: another digest; `none`: no table yet. */
  serving: 'current' | 'stale' | 'none'
  /**
   * Set when `state` is `unknown`: the state its last heartbeat reported (the heartbeat is older than two of
   * its periods, so the instance was killed, hangs or is cut off from NATS).
   */
  lastState?: string
}

export interface ZoneView {
  zone: string
  /** Absent when instances heartbeat for a zone that has no published table. */
  generation?: number
  digest?: string
  revision?: string
  kvRevision?: number
  instances: InstanceView[]
  /** The rollout of the zone's table, as the reconciler last wrote it (absent when it did not follow one). */
  rollout?: ZoneRolloutStatus
}

export interface StatusView {
  reconciler: {
    id: string
    time: string
    conditions: StatusCondition[]
    lastAttemptedRevision?: string
    lastAppliedRevision?: string
    stalled: boolean
    violations: Violation[]
    violationsRevision?: string
  } | null
  zones: ZoneView[]
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/**
 * Builds the view; zones and instances sorted by name. With `now` (ms), an instance whose heartbeat `time` is
 * older than two of its heartbeat periods shows `state: unknown` (and `lastState`). Pure.
 */
export function buildStatusView(
  status: ReconcilerStatus | null,
  tables: ReadonlyMap<string, { table: PublishedZoneTable; kvRevision: number }>,
  instances: readonly InstanceRecord[],
  now?: number,
): StatusView {
  const zones = new Map<string, ZoneView>()
  for (const [zone, { table, kvRevision }] of tables) {
    const rollout = status?.zones.find((z) => z.zone === zone && z.digest === table.digest)?.rollout
    zones.set(zone, {
      zone,
      generation: table.generation,
      digest: table.digest,
      revision: table.revision,
      kvRevision,
      instances: [],
      ...(rollout ? { rollout } : {}),
    })
  }
  for (const r of instances) {
    let z = zones.get(r.zone)
    if (!z) {
      z = { zone: r.zone, instances: [] }
      zones.set(r.zone, z)
    }
    const hb = r.heartbeat
    const serving = !hb.digest ? 'none' : hb.digest === z.digest ? 'current' : 'stale'
    const v: InstanceView = { egress: r.egress, instance: r.instance, state: hb.state, time: hb.time, serving }
    const age = now === undefined ? Number.NaN : now - Date.parse(hb.time)
    if (age > unknownAfterMs(hb.heartbeatMs)) {
      v.state = 'unknown'
      v.lastState = hb.state
    }
    if (hb.generation !== undefined) v.generation = hb.generation
    if (hb.digest !== undefined) v.digest = hb.digest
    if (hb.listen !== undefined) v.listen = hb.listen
    if (hb.admin !== undefined) v.admin = hb.admin
    z.instances.push(v)
  }
  const zoneList = [...zones.values()].sort((a, b) => byName(a.zone, b.zone))
  for (const z of zoneList) z.instances.sort((a, b) => byName(`${a.egress}/${a.instance}`, `${b.egress}/${b.instance}`))
  const reconciler = status && {
    id: status.reconciler,
    time: status.time,
    conditions: status.conditions,
    ...(status.lastAttemptedRevision ? { lastAttemptedRevision: status.lastAttemptedRevision } : {}),
    ...(status.lastAppliedRevision ? { lastAppliedRevision: status.lastAppliedRevision } : {}),
    stalled: status.conditions.some((c) => c.type === 'Stalled' && c.status === 'True'),
    violations: status.violations,
    ...(status.violationsRevision ? { violationsRevision: status.violationsRevision } : {}),
  }
  return { reconciler, zones: zoneList }
}

/** Left-aligned columns separated by two spaces (the last column is not padded). Pure. */
export function formatColumns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = []
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length)
    })
  }
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n')
}

const short = (digest: string | undefined) => (digest ? digest.slice(0, 19) : '-')

/** Renders the view as text in the style of `flux get`. Pure. */
export function formatStatusText(v: StatusView): string {
  const out: string[] = []
  const r = v.reconciler
  if (!r) out.push('RECONCILER: no status written yet (no reconciler has completed a pass)')
  else {
    const ready = r.conditions.find((c) => c.type === 'Ready')
    out.push(
      formatColumns([
        ['RECONCILER', 'READY', 'LAST APPLIED', 'LAST ATTEMPTED', 'UPDATED'],
        [r.id, ready?.status ?? 'Unknown', r.lastAppliedRevision ?? '-', r.lastAttemptedRevision ?? '-', r.time],
      ]),
    )
    out.push('', 'CONDITIONS')
    out.push(
      indent(
        formatColumns([
          ['TYPE', 'STATUS', 'REASON', 'SINCE', 'MESSAGE'],
          ...r.conditions.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime, c.message]),
        ]),
      ),
    )
  }
  out.push('')
  if (v.zones.length === 0) out.push('ZONES: none published')
  else {
    out.push(
      formatColumns([
        ['ZONE', 'GENERATION', 'DIGEST', 'REVISION', 'INSTANCES', 'ROLLOUT'],
        ...v.zones.map((z) => {
          const current = z.instances.filter((i) => i.serving === 'current').length
          return [
            z.zone,
            z.generation === undefined ? '-' : String(z.generation),
            short(z.digest),
            z.revision ?? '(no table)',
            `${current}/${z.instances.length} current`,
            formatRollout(z.rollout),
          ]
        }),
      ]),
    )
    const inst = v.zones.flatMap((z) => z.instances.map((i) => ({ zone: z.zone, ...i })))
    if (inst.length > 0) {
      out.push('')
      out.push(
        formatColumns([
          ['INSTANCE', 'ZONE', 'STATE', 'GENERATION', 'DIGEST', 'SERVES', 'LISTEN'],
          ...inst.map((i) => [
            `${i.egress}/${i.instance}`,
            i.zone,
            i.state,
            i.generation === undefined ? '-' : String(i.generation),
            short(i.digest),
            i.serving === 'stale' ? 'stale (digest mismatch)' : i.serving,
            i.listen ?? '-',
          ]),
        ]),
      )
    }
  }
  if (r && r.violations.length > 0) {
    out.push(
      '',
      `VIOLATIONS${r.violationsRevision ? ` in ${r.violationsRevision}` : ''}${r.stalled ? ' (stalled)' : ''}`,
    )
    for (const x of r.violations) out.push(`  ${formatViolation(x)}`)
  }
  return `${out.join('\n')}\n`
}

/** `converged`, `progressing, waiting for ze-a/2`, `timeout, missing: ze-a/2; rejected by ze-a/2`. Pure. */
export function formatRollout(r: ZoneRolloutStatus | undefined): string {
  if (!r) return '-'
  const parts: string[] = [r.state]
  if (r.state === 'progressing')
    parts.push(r.missing.length > 0 ? `waiting for ${r.missing.join(' ')}` : 'no live instance yet')
  else if (r.missing.length > 0) parts.push(`missing: ${r.missing.join(' ')}`)
  else if (r.state === 'timeout' && r.current.length === 0) parts.push('no live instance')
  if (r.stale.length > 0) parts.push(`stale: ${r.stale.join(' ')}`)
  const rejected = r.rejected.map((x) => `rejected by ${x.instance}: ${x.reason}`)
  return [parts.join(', '), ...rejected].join('; ')
}

const indent = (s: string) =>
  s
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')

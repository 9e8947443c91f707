import type { ReconcilerStatus, ZoneRolloutStatus, ZoneStatus } from '../../schemas/status.js'
import { conditionsAfter, conditionsReconciling, type PassOutcome } from '../core/conditions.js'
import type { Inventory, PassReport } from '../pass-state.js'

/**
 * Status bookkeeping of the pass: ReconcilerStatus (schemas/status.ts) from the previous status, a pass report
 * and the inventory. Pure (time passed in).
 */

/** The per-zone part of the status, sorted by zone. Pure. */
export function zoneStatuses(inventory: Inventory | undefined, fallback: ZoneStatus[]): ZoneStatus[] {
  if (!inventory) return fallback
  return [...inventory.entries()]
    .map(([zone, e]) => ({ zone, generation: e.table.generation, digest: e.table.digest, revision: e.table.revision }))
    .sort((a, b) => (a.zone < b.zone ? -1 : a.zone > b.zone ? 1 : 0))
}

/** The conditions outcome of a report; undefined when the report leaves conditions as they are. Pure. */
export function passOutcome(report: PassReport): PassOutcome | undefined {
  switch (report.result) {
    case 'applied':
      return { result: 'applied', revision: report.revision, zonesPublished: report.zones.length }
    case 'unchanged':
      return { result: 'unchanged', revision: report.revision }
    case 'invalid':
    case 'failed':
    case 'skipped': // the sha that stalled, seen again: still stalled
      return { result: 'failed', revision: report.revision, error: report.error }
    default:
      return undefined
  }
}

/** Status while a pass runs on `revision` (attempt > 1 for retries). Pure. */
export function statusReconciling(
  prev: ReconcilerStatus,
  revision: string,
  attempt: number,
  now: Date,
): ReconcilerStatus {
  const time = now.toISOString()
  return { ...prev, time, conditions: conditionsReconciling(prev.conditions, revision, attempt, time) }
}

/**
 * Status after a pass. `beforePass` is the status before `statusReconciling`: a pass that only saw the stalled
 * sha again (`skipped`) derives its conditions from it, so `Stalled` keeps its transition time and never flips
 * to `Reconciling` between polls. Pure.
 */
export function statusAfter(
  prev: ReconcilerStatus,
  report: PassReport,
  inventory: Inventory | undefined,
  now: Date,
  beforePass?: ReconcilerStatus,
): ReconcilerStatus {
  const time = now.toISOString()
  const outcome = passOutcome(report)
  const base = report.result === 'skipped' && beforePass ? beforePass.conditions : prev.conditions
  const next: ReconcilerStatus = {
    ...prev,
    time,
    zones: zoneStatuses(inventory, prev.zones),
    conditions: outcome ? conditionsAfter(outcome, base, time) : prev.conditions,
  }
  if (report.revision && report.result !== 'superseded') next.lastAttemptedRevision = report.revision
  if (report.result === 'applied' || report.result === 'unchanged') {
    next.lastAppliedRevision = report.revision
    next.violations = []
    delete next.violationsRevision
  }
  if (report.result === 'invalid') {
    next.violations = report.violations
    next.violationsRevision = report.revision
  }
  return next
}

/**
 * Attaches to each zone the rollout of its table (from the rollout tracker), when the rollout is of the digest
 * the zone holds; other zones keep no `rollout`. `rollouts` undefined (no tracker: a standby) leaves the
 * status as it is. Pure.
 */
export function statusWithRollouts(
  status: ReconcilerStatus,
  rollouts: Readonly<Record<string, ZoneRolloutStatus>> | undefined,
): ReconcilerStatus {
  if (!rollouts) return status
  const zones = status.zones.map((z) => {
    const { rollout: _old, ...rest } = z
    const r = rollouts[z.zone]
    return r && r.digest === z.digest ? { ...rest, rollout: r } : rest
  })
  return { ...status, zones }
}

/** The status of a reconciler that has not run a pass yet (or a stored one, re-owned). Pure. */
export function initialStatus(id: string, now: Date, stored?: ReconcilerStatus | null): ReconcilerStatus {
  if (stored) return { ...stored, reconciler: id, time: now.toISOString() }
  return {
    reconciler: id,
    time: now.toISOString(),
    conditions: [
      {
        type: 'Ready',
        status: 'Unknown',
        reason: 'Progressing',
        message: 'waiting for the first pass',
        lastTransitionTime: now.toISOString(),
      },
    ],
    zones: [],
    violations: [],
  }
}

/**
 * The status of a standby (issue #12.3): the stored status (the lease holder's zones and revisions) with
 * `Ready=Unknown` reason `Standby`, because this process never read those revisions itself: a standby must
 * not report `Ready=True` for a revision it never read. Its first pass as lease holder sets the real
 * conditions. Pure.
 */
export function statusStandby(prev: ReconcilerStatus, now: Date): ReconcilerStatus {
  const time = now.toISOString()
  return {
    ...prev,
    time,
    conditions: [
      {
        type: 'Ready',
        status: 'Unknown',
        reason: 'Standby',
        message: 'standby: another reconciler holds the lease; this one has not read any revision',
        lastTransitionTime: time,
      },
    ],
  }
}

/**
 * The status after the NATS layout had to be recreated (a wiped store): `Ready=False` reason `LayoutLost`
 * until the next pass republishes every zone. Pure.
 */
export function statusLayoutLost(prev: ReconcilerStatus, created: readonly string[], now: Date): ReconcilerStatus {
  const time = now.toISOString()
  const ready = prev.conditions.find((c) => c.type === 'Ready')
  return {
    ...prev,
    time,
    conditions: [
      ...prev.conditions.filter((c) => c.type !== 'Ready'),
      {
        type: 'Ready',
        status: 'False',
        reason: 'LayoutLost',
        message: `NATS lost zonegate's layout (${created.join(', ')} recreated): republishing every zone`,
        lastTransitionTime: ready?.status === 'False' ? ready.lastTransitionTime : time,
      },
    ],
  }
}

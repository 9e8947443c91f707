import type { StatusView } from './status-view.js'

/**
 * Whether `zonegate status` reports Ready (exit 0) or not (exit 1), and why. Ready means: a reconciler holds
 * the lease (an active one exists), its `Ready` condition is True, and no zone's rollout has timed out.
 * Pure.
 */
export function statusReadiness(view: StatusView, activeReconciler: string | null): { ready: boolean; reason: string } {
  const r = view.reconciler
  if (!r) return { ready: false, reason: 'no reconciler has written a status yet' }
  if (activeReconciler === null) return { ready: false, reason: 'no active reconciler (nobody holds the lease)' }
  const ready = r.conditions.find((c) => c.type === 'Ready')
  if (ready?.status !== 'True')
    return {
      ready: false,
      reason: `reconciler ${r.id} is not Ready${ready ? ` (${ready.reason}: ${ready.message})` : ''}`,
    }
  const timedOut = view.zones.filter((z) => z.rollout?.state === 'timeout').map((z) => z.zone)
  if (timedOut.length > 0) return { ready: false, reason: `rollout timed out in ${timedOut.join(', ')}` }
  return { ready: true, reason: `Ready at ${r.lastAppliedRevision ?? '(no revision applied yet)'}` }
}

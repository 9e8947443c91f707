import { describe, expect, it } from 'vitest'
import { statusReadiness } from './status-ready.js'
import type { StatusView } from './status-view.js'

const cond = (status: 'True' | 'False') => ({
  type: 'Ready',
  status,
  reason: status === 'True' ? 'ReconciliationSucceeded' : 'ValidationFailed',
  message: status === 'True' ? 'applied' : '1 violation',
  lastTransitionTime: '2026-01-01T00:00:00.000Z',
})
const view = (ready: 'True' | 'False' | null, rollout?: 'timeout' | 'converged'): StatusView => ({
  reconciler:
    ready === null
      ? null
      : {
          id: 'r1',
          time: 't',
          conditions: [cond(ready)],
          stalled: false,
          violations: [],
          lastAppliedRevision: 'main@sha1:a',
        },
  zones: [{ zone: 'zone-a', instances: [], ...(rollout ? { rollout: { state: rollout } as never } : {}) }],
})

describe('status readiness', () => {
  it.each([
    ['no status', view(null), 'r1', false, /no reconciler has written/],
    ['no lease holder', view('True'), null, false, /no active reconciler/],
    ['Ready False', view('False'), 'r1', false, /not Ready \(ValidationFailed: 1 violation\)/],
    ['rollout timed out', view('True', 'timeout'), 'r1', false, /rollout timed out in zone-a/],
    ['Ready', view('True', 'converged'), 'r1', true, /Ready at main@sha1:a/],
  ] as const)('status readiness - %s', (_name, v, active, ready, reason) => {
    const r = statusReadiness(v, active)
    expect(r.ready).toBe(ready)
    expect(r.reason).toMatch(reason)
  })
})

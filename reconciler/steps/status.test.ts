import { describe, expect, it } from 'vitest'
import type { PublishedZoneTable } from '../../schemas/table.js'
import { ValidationFailed } from '../core/errors.js'
import type { Inventory, PassReport } from '../pass-state.js'
import { initialStatus, statusAfter, statusReconciling, statusWithRollouts } from './status.js'

const T = new Date('2026-01-01T00:00:00Z')
const R1 = `main@sha1:${'1'.repeat(40)}`
const R2 = `main@sha1:${'2'.repeat(40)}`
const inventory: Inventory = new Map([
  [
    'zone-b',
    { table: { zone: 'zone-b', generation: 2, digest: 'db', revision: R1 } as PublishedZoneTable, kvRevision: 5 },
  ],
  [
    'zone-a',
    { table: { zone: 'zone-a', generation: 1, digest: 'da', revision: R1 } as PublishedZoneTable, kvRevision: 4 },
  ],
])
const violation = {
  file: 'a.yaml',
  line: 3,
  column: 5,
  kind: 'Mesh',
  name: 'm',
  path: 'mtls',
  rule: 'x',
  message: 'bad',
}

describe('status', () => {
  it('status - an applied pass sets both revisions, sorted zones and Ready', () => {
    const report: PassReport = { result: 'applied', revision: R1, sha: '1'.repeat(40), zones: [], timings: {} }
    const s = statusAfter(initialStatus('r1', T), report, inventory, T)
    expect(s).toMatchObject({ reconciler: 'r1', lastAttemptedRevision: R1, lastAppliedRevision: R1, violations: [] })
    expect(s.zones.map((z) => z.zone)).toEqual(['zone-a', 'zone-b'])
    expect(s.conditions.map((c) => `${c.type}=${c.status}`)).toEqual(['Ready=True'])
  })

  it('status - an invalid pass keeps the applied revision and records the violations', () => {
    const applied = statusAfter(
      initialStatus('r1', T),
      { result: 'unchanged', revision: R1, sha: '1'.repeat(40) },
      inventory,
      T,
    )
    const report: PassReport = {
      result: 'invalid',
      revision: R2,
      sha: '2'.repeat(40),
      error: new ValidationFailed(R2, [violation]),
      violations: [violation],
    }
    const s = statusAfter(statusReconciling(applied, 'branch main', 1, T), report, inventory, T)
    expect(s).toMatchObject({ lastAttemptedRevision: R2, lastAppliedRevision: R1, violationsRevision: R2 })
    expect(s.violations).toEqual([violation])
    expect(s.conditions.map((c) => `${c.type}=${c.status}`).sort()).toEqual([
      'Ready=False',
      'Stalled=True',
      'ValidationFailed=True',
    ])
  })

  it('status - a superseded pass changes neither revisions nor conditions', () => {
    const base = initialStatus('r1', T)
    const s = statusAfter(base, { result: 'superseded', revision: R2, sha: '2'.repeat(40), by: R1 }, undefined, T)
    expect(s.lastAttemptedRevision).toBeUndefined()
    expect(s.conditions).toEqual(base.conditions)
  })
  it('status - rollouts attach to zones holding their digest; other zones lose a stale one', () => {
    const report: PassReport = { result: 'applied', revision: R1, sha: '1'.repeat(40), zones: [], timings: {} }
    const s = statusAfter(initialStatus('r1', T), report, inventory, T)
    const r = (digest: string) => ({
      state: 'converged' as const,
      revision: R1,
      generation: 1,
      digest,
      startedAt: T.toISOString(),
      current: ['ze/1'],
      missing: [],
      stale: [],
      rejected: [],
    })
    const withA = statusWithRollouts(s, { 'zone-a': r('da'), 'zone-b': r('old') })
    expect(withA.zones.map((z) => [z.zone, z.rollout?.state])).toEqual([
      ['zone-a', 'converged'],
      ['zone-b', undefined],
    ])
    expect(statusWithRollouts(withA, {}).zones.every((z) => !('rollout' in z))).toBe(true)
    expect(statusWithRollouts(withA, undefined)).toBe(withA)
  })
})

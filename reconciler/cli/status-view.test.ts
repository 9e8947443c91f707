import { describe, expect, it } from 'vitest'
import type { ReconcilerStatus } from '../../schemas/status.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import type { InstanceRecord } from '../transport/status-store.js'
import { buildStatusView, formatColumns, formatRollout, formatStatusText } from './status-view.js'

const REV = `main@sha1:${'a'.repeat(40)}`
const table = (zone: string, generation: number, digest: string): PublishedZoneTable => ({
  apiVersion: 'zonegate.io/v1',
  kind: 'ZoneEgressTable',
  zone,
  generation,
  revision: REV,
  digest,
  egresses: [],
  routes: [],
})
const inst = (zone: string, instance: string, digest?: string): InstanceRecord => ({
  zone,
  egress: 'ze-1',
  instance,
  kvRevision: 1,
  heartbeat: { state: digest ? 'serving' : 'awaitingTable', time: 't', ...(digest ? { digest, generation: 1 } : {}) },
})
const status: ReconcilerStatus = {
  reconciler: 'r1',
  time: 't0',
  conditions: [
    { type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: 'ok', lastTransitionTime: 't0' },
  ],
  lastAttemptedRevision: REV,
  lastAppliedRevision: REV,
  zones: [],
  violations: [],
}

describe('status view', () => {
  const cases: {
    name: string
    tables: [string, number, string][]
    instances: InstanceRecord[]
    expected: [string, [string, string][]][]
  }[] = [
    { name: 'no tables, no instances', tables: [], instances: [], expected: [] },
    {
      name: 'instances serving the published digest are current, others stale, none without a table',
      tables: [['zone-a', 2, 'sha256:a2']],
      instances: [inst('zone-a', '2', 'sha256:a1'), inst('zone-a', '1', 'sha256:a2'), inst('zone-a', '3')],
      expected: [
        [
          'zone-a',
          [
            ['1', 'current'],
            ['2', 'stale'],
            ['3', 'none'],
          ],
        ],
      ],
    },
    {
      name: 'an instance of a zone with no table gets a zone entry of its own; zones sorted',
      tables: [['zone-b', 1, 'sha256:b']],
      instances: [inst('zone-a', '1', 'sha256:x')],
      expected: [
        ['zone-a', [['1', 'stale']]],
        ['zone-b', []],
      ],
    },
  ]
  for (const c of cases) {
    it(`status view - ${c.name}`, () => {
      const tables = new Map(c.tables.map(([z, g, d]) => [z, { table: table(z, g, d), kvRevision: g }]))
      const v = buildStatusView(status, tables, c.instances)
      expect(v.zones.map((z) => [z.zone, z.instances.map((i) => [i.instance, i.serving])])).toEqual(c.expected)
    })
  }

  it('status view - stalled flag and violations come from the status; no status gives null', () => {
    const stalled: ReconcilerStatus = {
      ...status,
      conditions: [
        ...status.conditions,
        { type: 'Stalled', status: 'True', reason: 'ValidationFailed', message: 'x', lastTransitionTime: 't' },
      ],
      violations: [
        { file: 'a.yaml', line: 1, column: 2, kind: 'Mesh', name: 'm', path: 'mtls', rule: 'r', message: 'bad' },
      ],
      violationsRevision: REV,
    }
    const v = buildStatusView(stalled, new Map(), [])
    expect(v.reconciler?.stalled).toBe(true)
    expect(formatStatusText(v)).toContain(`VIOLATIONS in ${REV} (stalled)\n  a.yaml:1:2 Mesh/m mtls: bad`)
    expect(buildStatusView(null, new Map(), []).reconciler).toBeNull()
    expect(formatStatusText(buildStatusView(null, new Map(), []))).toContain('no status written yet')
  })

  it('status view - text lists zones with current/total instances', () => {
    const v = buildStatusView(status, new Map([['zone-a', { table: table('zone-a', 7, 'sha256:a'), kvRevision: 3 }]]), [
      inst('zone-a', '1', 'sha256:a'),
      inst('zone-a', '2', 'sha256:b'),
    ])
    const text = formatStatusText(v)
    expect(text).toMatch(/zone-a\s+7\s+sha256:a\s+main@sha1:a+\s+1\/2 current/)
    expect(text).toContain('stale (digest mismatch)')
  })

  it('status view - formatColumns pads every column but the last', () => {
    expect(
      formatColumns([
        ['A', 'BB', 'C'],
        ['long', 'x', 'tail'],
      ]),
    ).toBe('A     BB  C\nlong  x   tail')
  })
  it('status view - the rollout of the published digest is shown per zone', () => {
    const rollout = {
      state: 'timeout' as const,
      revision: REV,
      generation: 7,
      digest: 'sha256:a',
      startedAt: 't0',
      endedAt: 't1',
      current: ['ze-1/1'],
      missing: ['ze-1/2'],
      stale: [],
      rejected: [],
    }
    const withRollout = {
      ...status,
      zones: [{ zone: 'zone-a', generation: 7, digest: 'sha256:a', revision: REV, rollout }],
    }
    const tables = new Map([['zone-a', { table: table('zone-a', 7, 'sha256:a'), kvRevision: 3 }]])
    const v = buildStatusView(withRollout, tables, [])
    expect(v.zones[0]?.rollout).toEqual(rollout)
    expect(formatStatusText(v)).toMatch(/zone-a\s+7\s+.*0\/0 current\s+timeout, missing: ze-1\/2/)
    // a rollout of another digest (an older table) is not shown
    const older = new Map([['zone-a', { table: table('zone-a', 8, 'sha256:b'), kvRevision: 4 }]])
    expect(buildStatusView(withRollout, older, []).zones[0]?.rollout).toBeUndefined()
  })

  it('status view - rollout column', () => {
    const base = {
      revision: REV,
      generation: 1,
      digest: 'd',
      startedAt: 't',
      current: [],
      missing: [],
      stale: [],
      rejected: [],
    }
    const cases: [Parameters<typeof formatRollout>[0], string][] = [
      [undefined, '-'],
      [{ ...base, state: 'progressing', missing: ['e/1', 'e/2'] }, 'progressing, waiting for e/1 e/2'],
      [{ ...base, state: 'progressing' }, 'progressing, no live instance yet'],
      [{ ...base, state: 'converged', current: ['e/1'] }, 'converged'],
      [
        { ...base, state: 'converged', current: ['e/1'], missing: ['e/2'], stale: ['e/2'] },
        'converged, missing: e/2, stale: e/2',
      ],
      [{ ...base, state: 'timeout' }, 'timeout, no live instance'],
      [
        { ...base, state: 'timeout', missing: ['e/2'], rejected: [{ instance: 'e/2', reason: 'bad signature' }] },
        'timeout, missing: e/2; rejected by e/2: bad signature',
      ],
    ]
    for (const [r, text] of cases) expect(formatRollout(r)).toBe(text)
  })
})

describe('status view - unknown instances (issue #16.5)', () => {
  it('status view - a heartbeat older than two of its periods shows as unknown, with the state it last reported', () => {
    const at = (ms: number) => new Date(ms).toISOString()
    const rec = (instance: string, time: string, heartbeatMs?: number): InstanceRecord => ({
      zone: 'zone-a',
      egress: 'ze-1',
      instance,
      kvRevision: 1,
      heartbeat: { state: 'serving', digest: 'sha256:a', time, ...(heartbeatMs ? { heartbeatMs } : {}) },
    })
    const now = 100_000
    const v = buildStatusView(
      status,
      new Map(),
      [rec('fresh', at(now - 900), 500), rec('dead', at(now - 1001), 500), rec('old-egress', at(now - 20_001))],
      now,
    )
    const got = v.zones[0]?.instances.map((i) => [i.instance, i.state, i.lastState])
    expect(got).toEqual([
      ['dead', 'unknown', 'serving'],
      ['fresh', 'serving', undefined],
      ['old-egress', 'unknown', 'serving'],
    ])
    // without `now` nothing is judged (callers that only render)
    expect(buildStatusView(status, new Map(), [rec('dead', at(0), 500)]).zones[0]?.instances[0]?.state).toBe('serving')
  })
})

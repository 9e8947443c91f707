import { describe, expect, it } from 'vitest'
import type { ZonegateEvent } from '../../schemas/events.js'
import type { StatusView } from '../cli/status-view.js'
import { buildGrid, buildTimelines } from './page-data.js'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const rev = (sha: string) => `main@sha1:${sha}`
const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString()
const applied = (ms: number, instance: string, digest = 'sha256:2'): ZonegateEvent => ({
  type: 'rollout.applied',
  time: at(ms),
  revision: rev(A),
  zone: 'zone-a',
  egress: 'ze-a',
  instance,
  generation: 2,
  digest,
  swapMs: 1,
})
const events: ZonegateEvent[] = [
  { type: 'commit.fetched', time: at(0), revision: rev(A), sha: A },
  {
    type: 'commit.published',
    time: at(20),
    revision: rev(A),
    sha: A,
    zones: [{ zone: 'zone-a', generation: 2, digest: 'sha256:2', change: 'changed' }],
  },
  applied(50, 'i1'),
  {
    type: 'rollout.rejected',
    time: at(60),
    revision: rev(A),
    zone: 'zone-a',
    egress: 'ze-a',
    instance: 'i2',
    generation: 2,
    digest: 'sha256:2',
    reason: 'invalid',
  },
  { type: 'commit.fetched', time: at(1000), revision: rev(B), sha: B },
  { type: 'commit.invalid', time: at(1010), revision: rev(B), sha: B, violations: [] },
]

describe('status page data', () => {
  it('page data - one timeline per commit, newest first, steps in time order with offsets and outcome', () => {
    const t = buildTimelines(events)
    expect(t.map((x) => [x.sha, x.outcome])).toEqual([
      [B, 'invalid'],
      [A, 'progressing'],
    ])
    expect(t[1]?.steps.map((s) => [s.phase, s.at, s.instance ?? ''])).toEqual([
      ['fetched', 0, ''],
      ['published', 20, ''],
      ['applied', 50, 'ze-a/i1'],
      ['rejected', 60, 'ze-a/i2'],
    ])
    const converged = buildTimelines([
      ...events,
      { type: 'commit.converged', time: at(90), revision: rev(A), sha: A, zones: ['zone-a'] },
    ])
    expect(converged.find((x) => x.sha === A)?.outcome).toBe('converged')
    expect(buildTimelines(events, 1)).toHaveLength(1)
  })

  it('page data - grid cells are current, stale, rejected (for the zone digest) or none', () => {
    const inst = (instance: string, digest?: string, serving: 'current' | 'stale' | 'none' = 'current') => ({
      egress: 'ze-a',
      instance,
      state: 'serving',
      time: at(0),
      serving,
      ...(digest ? { digest, generation: digest === 'sha256:2' ? 2 : 1 } : {}),
    })
    const view: StatusView = {
      reconciler: null,
      zones: [
        {
          zone: 'zone-a',
          digest: 'sha256:2',
          generation: 2,
          instances: [
            inst('i1', 'sha256:2'),
            inst('i2', 'sha256:1', 'stale'),
            inst('i3', 'sha256:1', 'stale'),
            inst('i4', undefined, 'none'),
          ],
        },
      ],
    }
    const grid = buildGrid(view, events)
    expect(grid[0]?.cells.map((c) => [c.instance, c.state])).toEqual([
      ['ze-a/i1', 'current'],
      ['ze-a/i2', 'rejected'],
      ['ze-a/i3', 'stale'],
      ['ze-a/i4', 'none'],
    ])
    expect(grid[0]?.cells[1]?.title).toContain('rejected: invalid')
  })
})

import { describe, expect, it } from 'vitest'
import type { ZonegateEvent } from '../../schemas/events.js'
import { eventHeader, formatEventRow, matchesFilter } from './events-view.js'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const T = '2026-01-01T00:00:01.000Z'
const events: ZonegateEvent[] = [
  { type: 'commit.fetched', time: T, revision: `main@sha1:${A}`, sha: A },
  {
    type: 'commit.published',
    time: T,
    revision: `main@sha1:${A}`,
    sha: A,
    zones: [{ zone: 'zone-a', generation: 2, digest: 'sha256:1', change: 'changed' }],
  },
  {
    type: 'rollout.applied',
    time: T,
    revision: `main@sha1:${A}`,
    zone: 'zone-a',
    egress: 'ze-a',
    instance: 'i1',
    generation: 2,
    digest: 'sha256:1',
    swapMs: 1,
  },
  {
    type: 'rollout.timeout',
    time: T,
    revision: `main@sha1:${B}`,
    zone: 'zone-b',
    generation: 3,
    digest: 'sha256:2',
    missing: ['ze-b/i2'],
  },
]

describe('events view', () => {
  it.each([
    [{ zones: [] }, [0, 1, 2, 3]],
    [{ commit: 'aaaa', zones: [] }, [0, 1, 2]],
    [{ zones: ['zone-a'] }, [1, 2]],
    [{ commit: 'bbbb', zones: ['zone-a'] }, []],
    [{ zones: ['zone-b'] }, [3]],
  ])('events view - filter %j keeps %j', (filter, kept) => {
    expect(events.flatMap((e, i) => (matchesFilter(e, filter) ? [i] : []))).toEqual(kept)
  })

  it('events view - rows: time, Normal/Warning, object, reason, message in fixed columns', () => {
    expect(eventHeader()).toMatch(/^TIME {22}TYPE {5}OBJECT {26}REASON {6}MESSAGE$/)
    expect(formatEventRow(events[2] as ZonegateEvent)).toBe(
      `${T}  Normal   ${'egress/zone-a/ze-a/i1'.padEnd(30)}  ${'applied'.padEnd(10)}  gen 2 swapped in 1 ms`,
    )
    expect(formatEventRow(events[3] as ZonegateEvent)).toMatch(
      /Warning +zone\/zone-b +timeout +gen 3 missing: ze-b\/i2$/,
    )
    expect(formatEventRow(events[1] as ZonegateEvent)).toMatch(
      /commit\/aaaaaaa +published +zones: zone-a\(gen 2, changed\)/,
    )
  })
})

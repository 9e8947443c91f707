import { describe, expect, it } from 'vitest'
import {
  initialRolloutBook,
  nextWakeupMs,
  observeApplied,
  observeHeartbeat,
  observeInstanceGone,
  observeRejected,
  type RolloutBook,
  type RolloutOutput,
  resumeRollouts,
  startCommitRollout,
  tickRollouts,
  zoneRolloutStatuses,
} from './rollout.js'
import { liveForMs } from './rollout-book.js'

const TIMEOUT = 1000
const TTL = 3000
const sha = (n: number) => String(n).repeat(40)
const rev = (n: number) => `main@sha1:${sha(n)}`
const D1 = 'sha256:one'
const D2 = 'sha256:two'

/** One input of a scenario, applied at time `at` (ms). */
type Step =
  | { at: number; hb: string; digest?: string; state?: string }
  | { at: number; publish: number; zones: [string, number, string, ('added' | 'changed' | 'removed')?][] }
  | { at: number; applied: string; digest: string }
  | { at: number; rejected: string; digest?: string; reason: string }
  | { at: number; gone: string }
  | { at: number; tick: true }

/** `zone-a/ze-a/1` → its parts. */
function parts(id: string) {
  const [zone, egress, instance] = id.split('/') as [string, string, string]
  return { zone, egress, instance }
}

function run(steps: Step[]): { book: RolloutBook; outputs: RolloutOutput[]; at: number } {
  let book = initialRolloutBook({ timeoutMs: TIMEOUT, liveTtlMs: TTL })
  const outputs: RolloutOutput[] = []
  let at = 0
  for (const s of steps) {
    at = s.at
    const before = structuredClone(book)
    const r =
      'hb' in s
        ? observeHeartbeat(
            book,
            { ...parts(s.hb), heartbeat: { state: s.state ?? 'serving', digest: s.digest, time: '' }, seenMs: s.at },
            s.at,
          )
        : 'publish' in s
          ? startCommitRollout(
              book,
              {
                revision: rev(s.publish),
                sha: sha(s.publish),
                zones: s.zones.map(([zone, generation, digest, change]) => ({
                  zone,
                  generation,
                  digest,
                  change: change ?? 'changed',
                })),
              },
              s.at,
            )
          : 'applied' in s
            ? observeApplied(book, { ...parts(s.applied), digest: s.digest }, s.at)
            : 'rejected' in s
              ? observeRejected(book, { ...parts(s.rejected), digest: s.digest, reason: s.reason }, s.at)
              : 'gone' in s
                ? observeInstanceGone(book, parts(s.gone), s.at)
                : tickRollouts(book, s.at)
    expect(book, 'inputs are never mutated').toEqual(before)
    book = r.book
    outputs.push(...r.outputs)
  }
  return { book, outputs, at }
}

/** Outputs as short strings: `zone.converged zone-a [ze-a/1]`, `commit.stalled 111… RolloutTimeout`. */
function summarize(o: RolloutOutput): string {
  switch (o.type) {
    case 'zone.converged':
      return `zone.converged ${o.zone} gen ${o.generation} [${o.instances.join(' ')}]`
    case 'zone.timeout':
      return `zone.timeout ${o.zone} gen ${o.generation} missing [${o.missing.join(' ')}]`
    case 'zone.superseded':
      return `zone.superseded ${o.zone} gen ${o.generation}`
    case 'commit.converged':
      return `commit.converged ${o.sha.slice(0, 1)} [${o.zones.join(' ')}]`
    case 'commit.stalled':
      return `commit.stalled ${o.sha.slice(0, 1)} ${o.reason}`
    case 'commit.superseded':
      return `commit.superseded ${o.sha.slice(0, 1)} by ${o.by}`
    default:
      return `${o.type} ${o.zone} ${o.instance}`
  }
}

const A1 = 'zone-a/ze-a/1'
const A2 = 'zone-a/ze-a/2'
const B1 = 'zone-b/ze-b/1'

describe('rollout core', () => {
  const cases: { name: string; steps: Step[]; outputs: string[] }[] = [
    {
      name: 'every live instance applies the digest → zone and commit converge',
      steps: [
        { at: 0, hb: A1 },
        { at: 0, hb: A2 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 20, applied: A1, digest: D1 },
        { at: 30, applied: A2, digest: D1 },
      ],
      outputs: ['zone.converged zone-a gen 2 [ze-a/1 ze-a/2]', 'commit.converged 1 [zone-a]'],
    },
    {
      name: 'a heartbeat carrying the digest counts as a report',
      steps: [
        { at: 0, hb: A1 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 50, hb: A1, digest: D1 },
      ],
      outputs: ['zone.converged zone-a gen 2 [ze-a/1]', 'commit.converged 1 [zone-a]'],
    },
    {
      name: 'an applied event that arrives before the rollout starts is counted',
      steps: [
        { at: 0, hb: A1 },
        { at: 5, applied: A1, digest: D1 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
      ],
      outputs: ['zone.converged zone-a gen 2 [ze-a/1]', 'commit.converged 1 [zone-a]'],
    },
    {
      name: 'a report stays counted when an older heartbeat arrives after it',
      steps: [
        { at: 0, hb: A1 },
        { at: 0, hb: A2 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 20, applied: A1, digest: D1 },
        { at: 25, hb: A1, digest: D2 },
        { at: 30, applied: A2, digest: D1 },
      ],
      outputs: ['zone.converged zone-a gen 2 [ze-a/1 ze-a/2]', 'commit.converged 1 [zone-a]'],
    },
    {
      name: 'an instance that never applies → timeout naming it, commit stalled',
      steps: [
        { at: 0, hb: A1 },
        { at: 0, hb: A2 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 20, applied: A1, digest: D1 },
        { at: 1009, tick: true },
        { at: 1010, tick: true },
      ],
      outputs: ['zone.timeout zone-a gen 2 missing [ze-a/2]', 'commit.stalled 1 RolloutTimeout'],
    },
    {
      name: 'zero live instances: waits, and an instance that starts in time converges the zone',
      steps: [
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 500, tick: true },
        { at: 600, hb: A1, digest: D1 },
      ],
      outputs: ['zone.converged zone-a gen 2 [ze-a/1]', 'commit.converged 1 [zone-a]'],
    },
    {
      name: 'zero live instances until the deadline → timeout with missing []',
      steps: [
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 1010, tick: true },
      ],
      outputs: ['zone.timeout zone-a gen 2 missing []', 'commit.stalled 1 RolloutTimeout'],
    },
    {
      name: 'an instance whose heartbeat ages out no longer blocks convergence',
      steps: [
        { at: 0, hb: A1 },
        { at: 0, hb: A2 },
        { at: 2400, hb: A1 },
        { at: 2500, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 2510, applied: A1, digest: D1 },
        { at: 3000, tick: true },
        { at: 3001, tick: true },
      ],
      outputs: ['zone.converged zone-a gen 2 [ze-a/1]', 'commit.converged 1 [zone-a]'],
    },
    {
      name: 'a deleted instance key (graceful stop) no longer blocks convergence',
      steps: [
        { at: 0, hb: A1 },
        { at: 0, hb: A2 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 20, applied: A1, digest: D1 },
        { at: 40, gone: A2 },
      ],
      outputs: ['zone.converged zone-a gen 2 [ze-a/1]', 'commit.converged 1 [zone-a]'],
    },
    {
      name: 'a draining instance is not live',
      steps: [
        { at: 0, hb: A1 },
        { at: 0, hb: A2 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 20, applied: A1, digest: D1 },
        { at: 40, hb: A2, state: 'draining' },
      ],
      outputs: ['zone.converged zone-a gen 2 [ze-a/1]', 'commit.converged 1 [zone-a]'],
    },
    {
      name: 'the commit converges only when all its zones converged',
      steps: [
        { at: 0, hb: A1 },
        { at: 0, hb: B1 },
        {
          at: 10,
          publish: 1,
          zones: [
            ['zone-a', 2, D1],
            ['zone-b', 5, D2],
          ],
        },
        { at: 20, applied: A1, digest: D1 },
        { at: 30, applied: B1, digest: D2 },
      ],
      outputs: [
        'zone.converged zone-a gen 2 [ze-a/1]',
        'zone.converged zone-b gen 5 [ze-b/1]',
        'commit.converged 1 [zone-a zone-b]',
      ],
    },
    {
      name: 'a newer generation before convergence supersedes the zone and the commit, no timeout',
      steps: [
        { at: 0, hb: A1 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 100, publish: 2, zones: [['zone-a', 3, D2]] },
        { at: 120, applied: A1, digest: D2 },
        { at: 2000, tick: true },
      ],
      outputs: [
        'zone.superseded zone-a gen 2',
        `commit.superseded 1 by ${rev(2)}`,
        'zone.converged zone-a gen 3 [ze-a/1]',
        'commit.converged 2 [zone-a]',
      ],
    },
    {
      name: 'a superseded zone leaves the old commit decided; its other zone still converges',
      steps: [
        { at: 0, hb: A1 },
        { at: 0, hb: B1 },
        {
          at: 10,
          publish: 1,
          zones: [
            ['zone-a', 2, D1],
            ['zone-b', 5, D1],
          ],
        },
        { at: 100, publish: 2, zones: [['zone-a', 3, D2]] },
        { at: 120, applied: B1, digest: D1 },
        { at: 130, applied: A1, digest: D2 },
      ],
      outputs: [
        'zone.superseded zone-a gen 2',
        `commit.superseded 1 by ${rev(2)}`,
        'zone.converged zone-b gen 5 [ze-b/1]',
        'zone.converged zone-a gen 3 [ze-a/1]',
        'commit.converged 2 [zone-a]',
      ],
    },
    {
      name: 'a commit that only removes zones converges at once; a removed zone stops its rollout',
      steps: [
        { at: 0, hb: A1 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 20, publish: 2, zones: [['zone-a', 2, '', 'removed']] },
        { at: 2000, tick: true },
      ],
      outputs: ['zone.superseded zone-a gen 2', `commit.superseded 1 by ${rev(2)}`, 'commit.converged 2 []'],
    },
    {
      name: 'a rejection of the table stalls the commit at once; the zone still times out later',
      steps: [
        { at: 0, hb: A1 },
        { at: 0, hb: A2 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 20, applied: A1, digest: D1 },
        { at: 30, rejected: A2, digest: D1, reason: 'signature invalid' },
        { at: 1010, tick: true },
      ],
      outputs: [
        'instance.rejected zone-a ze-a/2',
        'commit.stalled 1 RolloutRejected',
        'zone.timeout zone-a gen 2 missing [ze-a/2]',
      ],
    },
    {
      name: 'a rejection of another digest is ignored',
      steps: [
        { at: 0, hb: A1 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 30, rejected: A1, digest: D2, reason: 'older' },
        { at: 40, applied: A1, digest: D1 },
      ],
      outputs: ['zone.converged zone-a gen 2 [ze-a/1]', 'commit.converged 1 [zone-a]'],
    },
    {
      name: 'after convergence a new instance that applies the digest converges by itself',
      steps: [
        { at: 0, hb: A1 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 20, applied: A1, digest: D1 },
        { at: 500, hb: A2, digest: D2 },
        { at: 700, applied: A2, digest: D1 },
      ],
      outputs: [
        'zone.converged zone-a gen 2 [ze-a/1]',
        'commit.converged 1 [zone-a]',
        'instance.converged zone-a ze-a/2',
      ],
    },
    {
      name: 'after convergence a new instance with an old digest is reported stale after the timeout, once',
      steps: [
        { at: 0, hb: A1 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 20, applied: A1, digest: D1 },
        { at: 500, hb: A2, digest: D2 },
        { at: 1499, tick: true },
        { at: 1500, tick: true },
        { at: 1600, hb: A2, digest: D2 },
      ],
      outputs: ['zone.converged zone-a gen 2 [ze-a/1]', 'commit.converged 1 [zone-a]', 'instance.stale zone-a ze-a/2'],
    },
    {
      name: 'an instance missing at the timeout that applies later is reported, not warned again',
      steps: [
        { at: 0, hb: A1 },
        { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
        { at: 1010, tick: true },
        { at: 2500, tick: true },
        { at: 2600, applied: A1, digest: D1 },
      ],
      outputs: [
        'zone.timeout zone-a gen 2 missing [ze-a/1]',
        'commit.stalled 1 RolloutTimeout',
        'instance.converged zone-a ze-a/1',
      ],
    },
  ]

  for (const c of cases) {
    it(`rollout - ${c.name}`, () => {
      expect(run(c.steps).outputs.map(summarize)).toEqual(c.outputs)
    })
  }

  it('rollout - converged event carries the elapsed ms and the commit stall message names instances', () => {
    const { outputs } = run([
      { at: 0, hb: A1 },
      { at: 0, hb: A2 },
      { at: 100, publish: 1, zones: [['zone-a', 2, D1]] },
      { at: 150, rejected: A2, digest: D1, reason: 'generation not newer' },
      { at: 1100, tick: true },
    ])
    expect(outputs).toContainEqual(
      expect.objectContaining({
        type: 'commit.stalled',
        message: 'zone zone-a gen 2: ze-a/2 rejected the table: generation not newer',
      }),
    )
    const timeout = outputs.find((o) => o.type === 'zone.timeout')
    expect(timeout).toMatchObject({ missing: ['ze-a/1', 'ze-a/2'], rejected: { 'ze-a/2': 'generation not newer' } })
    const ok = run([
      { at: 0, hb: A1 },
      { at: 100, publish: 1, zones: [['zone-a', 2, D1]] },
      { at: 342, applied: A1, digest: D1 },
    ])
    expect(ok.outputs[0]).toMatchObject({ type: 'zone.converged', ms: 242, revision: rev(1), digest: D1 })
    const stalled = run([
      { at: 0, hb: A2 },
      { at: 0, publish: 1, zones: [['zone-a', 2, D1]] },
      { at: 1000, tick: true },
    ])
    expect(stalled.outputs[1]).toMatchObject({
      type: 'commit.stalled',
      message: 'zone zone-a gen 2: no report from ze-a/2 within 1 s',
    })
  })

  it('rollout - status lists current, missing, stale and rejected instances', () => {
    const { book, at } = run([
      { at: 0, hb: A1 },
      { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
      { at: 20, applied: A1, digest: D1 },
      { at: 30, hb: A2, digest: D2 },
      { at: 40, rejected: A2, digest: D1, reason: 'bad' },
      { at: 1100, hb: A1, digest: D1 },
    ])
    expect(zoneRolloutStatuses(book, at)['zone-a']).toEqual({
      state: 'converged',
      revision: rev(1),
      generation: 2,
      digest: D1,
      startedAt: new Date(10).toISOString(),
      endedAt: new Date(20).toISOString(),
      current: ['ze-a/1'],
      missing: ['ze-a/2'],
      stale: ['ze-a/2'],
      rejected: [{ instance: 'ze-a/2', reason: 'bad' }],
    })
  })

  it('rollout - next wakeup is the earliest deadline, liveness expiry or late-instance deadline', () => {
    const cases: { steps: Step[]; wakeup: number | undefined }[] = [
      { steps: [], wakeup: undefined },
      { steps: [{ at: 0, hb: A1 }], wakeup: TTL + 1 },
      { steps: [{ at: 10, publish: 1, zones: [['zone-a', 2, D1]] }], wakeup: 10 + TIMEOUT },
      {
        steps: [
          { at: 0, hb: A1, digest: D1 },
          { at: 10, publish: 1, zones: [['zone-a', 2, D1]] },
          { at: 2500, hb: A1, digest: D1 },
          { at: 2600, hb: A2, digest: D2 },
        ],
        wakeup: 2600 + TIMEOUT,
      },
    ]
    for (const c of cases) expect(nextWakeupMs(run(c.steps).book)).toBe(c.wakeup)
  })
})

describe('rollout - dead instances (issue #16.5)', () => {
  it('rollout - an instance that missed two of its heartbeat periods is not waited for (converges on the others)', () => {
    let book = initialRolloutBook({ timeoutMs: 60_000, liveTtlMs: 30_000 })
    const hb = (instance: string, at: number, digest = 'sha256:old') =>
      observeHeartbeat(
        book,
        {
          zone: 'zone-a',
          egress: 'ze-a',
          instance,
          heartbeat: { state: 'serving', digest, heartbeatMs: 500, time: '' },
          seenMs: at,
        },
        at,
      ).book
    book = hb('live', 0)
    book = hb('dead', 0) // then killed: no more heartbeats
    book = startCommitRollout(
      book,
      {
        revision: 'main@sha1:aa',
        sha: 'aa',
        zones: [{ zone: 'zone-a', generation: 2, digest: 'sha256:new', change: 'changed' }],
      },
      100,
    ).book
    book = hb('live', 200, 'sha256:new')
    // 'dead' is still within two periods (1 s): the zone waits for it
    expect(book.zones['zone-a']?.state).toBe('progressing')
    expect(nextWakeupMs(book)).toBe(1001) // when 'dead' becomes unknown
    const later = tickRollouts(book, 1001)
    expect(later.book.zones['zone-a']?.state).toBe('converged')
    expect(later.outputs).toContainEqual(expect.objectContaining({ type: 'zone.converged', instances: ['ze-a/live'] }))
  })

  it('rollout - without a period in the heartbeat (older egress) two default periods (20 s) apply, capped by the TTL', () => {
    const book = initialRolloutBook({ timeoutMs: 60_000, liveTtlMs: 30_000 })
    const i = { zone: 'z', egress: 'e', instance: 'i', lastSeenMs: 0 }
    expect(liveForMs(book, i)).toBe(20_000)
    expect(liveForMs({ ...book, liveTtlMs: 1500 }, i)).toBe(1500)
    expect(liveForMs(book, { ...i, periodMs: 2000 })).toBe(4000)
  })
})

describe('rollout - resumed after a failover (issue #12.4)', () => {
  const CC = 'c'.repeat(40)
  const status = (zone: string, state: 'progressing' | 'converged' | 'timeout', current: string[] = []) => ({
    zone,
    digest: `sha256:${zone}`,
    rollout: {
      state,
      revision: `main@sha1:${CC}`,
      generation: 3,
      digest: `sha256:${zone}`,
      startedAt: new Date(1000).toISOString(),
      current,
      missing: [],
      stale: [],
      rejected: [],
    },
  })
  it('rollout - progressing zones are followed again with their deadline; the commit converges with the same msg id part', () => {
    let book = initialRolloutBook({ timeoutMs: 60_000, liveTtlMs: 30_000 })
    const step = resumeRollouts(
      book,
      [status('zone-a', 'progressing', ['ze-a/1']), status('zone-b', 'converged', ['ze-b/1'])],
      5000,
    )
    book = step.book
    expect(book.commits[CC]).toEqual({
      sha: CC,
      revision: `main@sha1:${CC}`,
      publication: 'g3',
      zones: ['zone-a', 'zone-b'],
    })
    expect(book.zones['zone-a']).toMatchObject({
      state: 'progressing',
      startedMs: 1000,
      deadlineMs: 61_000,
      reported: ['ze-a/1'],
    })
    const hb = (instance: string, digest: string) =>
      observeHeartbeat(
        book,
        { zone: 'zone-a', egress: 'ze-a', instance, heartbeat: { state: 'serving', digest, time: '' }, seenMs: 6000 },
        6000,
      )
    // ze-a/2 (live, not reported yet) holds the zone; once it serves the digest, zone and commit converge
    book = hb('2', 'sha256:old').book
    expect(book.zones['zone-a']?.state).toBe('progressing')
    const done = hb('2', 'sha256:zone-a')
    expect(done.outputs).toContainEqual(
      expect.objectContaining({ type: 'commit.converged', sha: CC, publication: 'g3', zones: ['zone-a', 'zone-b'] }),
    )
  })

  it('rollout - a commit already stalled (a zone timed out) or fully converged is not resumed', () => {
    const book = initialRolloutBook({ timeoutMs: 60_000, liveTtlMs: 30_000 })
    expect(
      resumeRollouts(book, [status('zone-a', 'progressing'), status('zone-b', 'timeout')], 5000).book.commits,
    ).toEqual({})
    expect(resumeRollouts(book, [status('zone-a', 'converged')], 5000).book.commits).toEqual({})
    // a rollout of another digest than the zone holds (superseded) is not resumed
    const other = { ...status('zone-a', 'progressing'), digest: 'sha256:newer' }
    expect(resumeRollouts(book, [other], 5000).book.zones).toEqual({})
  })
})

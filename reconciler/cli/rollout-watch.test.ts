import { describe, expect, it } from 'vitest'
import type { ZonegateEvent } from '../../schemas/events.js'
import {
  exitCodeFor,
  formatEvent,
  formatSummary,
  initialWatchState,
  isRelevant,
  Outcome,
  stepWatch,
  timeoutWatch,
  type WatchOptions,
  type WatchState,
  watchResult,
} from './rollout-watch.js'

const A = '1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b'
const B = '9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c'
const rev = (sha: string) => `main@sha1:${sha}`
const time = '2025-01-01T00:00:00.000Z'

const ev = {
  fetched: (sha: string): ZonegateEvent => ({ type: 'commit.fetched', time, revision: rev(sha), sha }),
  invalid: (sha: string): ZonegateEvent => ({
    type: 'commit.invalid',
    time,
    revision: rev(sha),
    sha,
    violations: [
      {
        file: 'meshes/default.yaml',
        line: 12,
        column: 7,
        kind: 'Mesh',
        name: 'default',
        path: 'mtls',
        rule: 'mesh.zone-egress-requires-mtls',
        message: 'has to be set when zoneEgress enabled',
      },
    ],
  }),
  published: (sha: string, zones: [string, number][]): ZonegateEvent => ({
    type: 'commit.published',
    time,
    revision: rev(sha),
    sha,
    zones: zones.map(([zone, generation]) => ({ zone, generation, digest: 'sha256:ab', change: 'changed' as const })),
  }),
  superseded: (sha: string, by: string): ZonegateEvent => ({
    type: 'commit.superseded',
    time,
    revision: rev(sha),
    sha,
    by: rev(by),
  }),
  converged: (sha: string, zones: string[]): ZonegateEvent => ({
    type: 'commit.converged',
    time,
    revision: rev(sha),
    sha,
    zones,
  }),
  stalled: (sha: string): ZonegateEvent => ({
    type: 'commit.stalled',
    time,
    revision: rev(sha),
    sha,
    reason: 'RolloutTimeout',
    message: 'zone-a: 1 instance missing',
  }),
  zonePublished: (sha: string, zone: string, generation: number): ZonegateEvent => ({
    type: 'rollout.published',
    time,
    revision: rev(sha),
    zone,
    generation,
    digest: 'sha256:0123456789abcdef0123',
  }),
  applied: (sha: string, zone: string, instance: string, generation: number): ZonegateEvent => ({
    type: 'rollout.applied',
    time,
    revision: rev(sha),
    zone,
    egress: 'ze-a',
    instance,
    generation,
    digest: 'sha256:ab',
    swapMs: 3,
  }),
  zoneConverged: (sha: string, zone: string, generation: number): ZonegateEvent => ({
    type: 'rollout.converged',
    time,
    revision: rev(sha),
    zone,
    generation,
    digest: 'sha256:ab',
    instances: ['ze-a/1', 'ze-a/2'],
    ms: 120,
  }),
  zoneTimeout: (sha: string, zone: string): ZonegateEvent => ({
    type: 'rollout.timeout',
    time,
    revision: rev(sha),
    zone,
    generation: 8,
    digest: 'sha256:ab',
    missing: ['ze-a/3'],
  }),
}

/** Feeds events through isRelevant + stepWatch like the CLI does; returns the final state. */
function run(options: WatchOptions, events: ZonegateEvent[]): WatchState {
  let s = initialWatchState(options)
  for (const e of events) {
    if (s.outcome) break
    if (isRelevant(s, e)) s = stepWatch(s, e)
  }
  return s
}

describe('rollout-watch', () => {
  it.each([
    ['applied', ev.applied(A, 'zone-a', '2', 8), ['zone-a  applied  ze-a/2  gen 8  3 ms']],
    ['commit published', ev.published(A, [['zone-a', 8]]), ['commit 1a2b3c4  published  zones: zone-a(gen 8)']],
    ['commit published nothing', ev.published(A, []), ['commit 1a2b3c4  published  zones: none changed']],
    ['zone published', ev.zonePublished(A, 'zone-b', 3), ['zone-b  published  gen 3  sha256:0123456789ab']],
    ['zone converged', ev.zoneConverged(A, 'zone-a', 8), ['zone-a  converged  gen 8  2 instance(s)  120 ms']],
    ['zone timeout', ev.zoneTimeout(A, 'zone-a'), ['zone-a  timeout  gen 8  missing: ze-a/3']],
    ['superseded', ev.superseded(A, B), ['commit 1a2b3c4  superseded  by 9f8e7d6']],
    ['stalled', ev.stalled(A), ['commit 1a2b3c4  stalled  RolloutTimeout: zone-a: 1 instance missing']],
    [
      'invalid with violations',
      ev.invalid(A),
      [
        'commit 1a2b3c4  invalid  1 violation(s)',
        '  meshes/default.yaml:12:7 Mesh/default mtls: has to be set when zoneEgress enabled',
      ],
    ],
  ])('rollout-watch - formats %s', (_name, event, lines) => {
    expect(formatEvent(event)).toEqual(lines)
  })

  const commitA: WatchOptions = { commit: A, zones: [], untilConverged: true }
  it.each<[string, WatchOptions, ZonegateEvent[], Outcome | undefined]>([
    [
      'commit converged ends converged',
      commitA,
      [ev.fetched(A), ev.published(A, [['zone-a', 8]]), ev.zoneConverged(A, 'zone-a', 8), ev.converged(A, ['zone-a'])],
      Outcome.Converged,
    ],
    ['zone converged alone is not enough without --zone', commitA, [ev.zoneConverged(A, 'zone-a', 8)], undefined],
    ['invalid ends invalid', commitA, [ev.fetched(A), ev.invalid(A)], Outcome.Invalid],
    ['stalled ends stalled', commitA, [ev.published(A, [['zone-a', 8]]), ev.stalled(A)], Outcome.Stalled],
    ['zone timeout ends stalled', commitA, [ev.published(A, [['zone-a', 8]]), ev.zoneTimeout(A, 'zone-a')], 'stalled'],
    ['nothing published converges at once', commitA, [ev.published(A, [])], Outcome.Converged],
    ['events of another commit are ignored', commitA, [ev.invalid(B), ev.converged(B, [])], undefined],
    [
      'sha prefix matches',
      { commit: A.slice(0, 7), zones: [], untilConverged: true },
      [ev.converged(A, [])],
      Outcome.Converged,
    ],
    [
      '--zone converges when its zone converged',
      { commit: A, zones: ['zone-a'], untilConverged: true },
      [
        ev.published(A, [
          ['zone-a', 8],
          ['zone-b', 2],
        ]),
        ev.zoneConverged(A, 'zone-a', 8),
      ],
      Outcome.Converged,
    ],
    [
      '--zone untouched by the commit ends as untouched at published (exit 1, said)',
      { commit: A, zones: ['zone-c'], untilConverged: true },
      [ev.published(A, [['zone-a', 8]])],
      Outcome.Untouched,
    ],
    [
      '--zone of a commit that changed no zone is untouched, not converged',
      { commit: A, zones: ['zone-a'], untilConverged: false },
      [ev.published(A, [])],
      Outcome.Untouched,
    ],
    [
      '--zone ignores the timeout of another zone',
      { commit: A, zones: ['zone-b'], untilConverged: true },
      [
        ev.published(A, [
          ['zone-a', 8],
          ['zone-b', 2],
        ]),
        ev.zoneTimeout(A, 'zone-a'),
      ],
      undefined,
    ],
    [
      'superseded follows the newer commit',
      commitA,
      [ev.superseded(A, B), ev.converged(A, []), ev.published(B, [['zone-a', 9]]), ev.converged(B, ['zone-a'])],
      Outcome.Converged,
    ],
    [
      'next commit: adopts the first starting commit event',
      { zones: [], untilConverged: true },
      [ev.applied(B, 'zone-a', '1', 7), ev.converged(B, []), ev.fetched(A), ev.invalid(A)],
      Outcome.Invalid,
    ],
    [
      'plain follow never decides',
      { zones: [], untilConverged: false },
      [ev.fetched(A), ev.converged(A, [])],
      undefined,
    ],
  ])('rollout-watch - %s', (_name, options, events, outcome) => {
    expect(run(options, events).outcome).toBe(outcome)
  })

  it('rollout-watch - relevance filters zones and other commits', () => {
    const s = initialWatchState({ commit: A, zones: ['zone-a'], untilConverged: true })
    expect(isRelevant(s, ev.applied(A, 'zone-a', '1', 8))).toBe(true)
    expect(isRelevant(s, ev.applied(A, 'zone-b', '1', 8))).toBe(false)
    expect(isRelevant(s, ev.applied(B, 'zone-a', '1', 8))).toBe(false)
    expect(isRelevant(s, ev.published(A, []))).toBe(true)
  })

  it('rollout-watch - prefix becomes the full sha and revision is kept', () => {
    const s = run({ commit: '1a2b3c4', zones: [], untilConverged: true }, [ev.fetched(A)])
    expect(s.sha).toBe(A)
    expect(s.revision).toBe(rev(A))
  })

  it.each<[string, WatchOptions, ZonegateEvent[], 0 | 1]>([
    ['converged', commitA, [ev.converged(A, [])], 0],
    ['invalid', commitA, [ev.invalid(A)], 1],
    ['undecided target', commitA, [ev.fetched(A)], 1],
    ['interrupted follow', { zones: [], untilConverged: false }, [ev.fetched(A)], 0],
    [
      '--zone untouched by the commit',
      { commit: A, zones: ['zone-c'], untilConverged: false },
      [ev.published(A, [['zone-a', 8]])],
      1,
    ],
  ])('rollout-watch - exit code when %s', (_name, options, events, code) => {
    expect(exitCodeFor(run(options, events))).toBe(code)
  })

  it('rollout-watch - an untouched --zone says which zones the commit did change', () => {
    const s = run({ commit: A, zones: ['zone-c'], untilConverged: true }, [ev.published(A, [['zone-a', 8]])])
    expect(s.reason).toBe('commit 1a2b3c4 does not touch zone zone-c (it changed zone-a): nothing to roll out there')
  })

  it('rollout-watch - timeout says what was awaited', () => {
    const published = run(commitA, [
      ev.published(A, [
        ['zone-a', 8],
        ['zone-b', 2],
      ]),
      ev.zoneConverged(A, 'zone-b', 2),
    ])
    const t = timeoutWatch(published, 60_000)
    expect(t.outcome).toBe(Outcome.Timeout)
    expect(t.reason).toBe('no outcome after 60 s: commit 1a2b3c4 published, waiting for zone-a')
    expect(timeoutWatch(initialWatchState({ zones: [], untilConverged: true }), 1500).reason).toBe(
      'no outcome after 1.5 s: no commit seen',
    )
    expect(exitCodeFor(t)).toBe(1)
    // an outcome is final
    const done = run(commitA, [ev.converged(A, [])])
    expect(timeoutWatch(done, 10).outcome).toBe(Outcome.Converged)
  })

  it('rollout-watch - summary and json result', () => {
    const s = run(commitA, [
      ev.published(A, [['zone-a', 8]]),
      ev.applied(A, 'zone-a', '1', 8),
      ev.zoneConverged(A, 'zone-a', 8),
      ev.converged(A, ['zone-a']),
    ])
    expect(formatSummary(s, 412)).toBe(
      'converged  commit 1a2b3c4  zone-a(gen 8, 2 instance(s), 120 ms)  zones: zone-a  in 412 ms',
    )
    expect(watchResult(s, 412)).toMatchObject({ type: 'watch.result', outcome: 'converged', sha: A, ms: 412 })
    const invalid = run(commitA, [ev.invalid(A)])
    expect(formatSummary(invalid, 2000)).toBe('invalid  commit 1a2b3c4  1 violation(s)  in 2 s')
  })
})

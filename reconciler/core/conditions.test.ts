import { describe, expect, it } from 'vitest'
import { backoffMs } from '../../schemas/backoff.js'
import {
  type Condition,
  conditionsAfter,
  conditionsReconciling,
  DEFAULT_RETRY_POLICY,
  type PassOutcome,
  retryDecision,
} from './conditions.js'
import {
  CompileFailed,
  EmptyZoneRefused,
  ErrorKind,
  errorPolicy,
  FetchFailed,
  PublishConflict,
  PublishFailed,
  TableTooLarge,
  ValidationFailed,
} from './errors.js'

const T0 = '2026-01-01T00:00:00.000Z'
const T1 = '2026-01-01T00:01:00.000Z'
const REV = 'main@sha1:1111111111111111111111111111111111111111'

const summary = (list: Condition[]) => list.map((c) => `${c.type}=${c.status}/${c.reason}`).sort()

describe('conditions', () => {
  const fetchFailed = new FetchFailed('repo', 'ECONNREFUSED')
  const publishFailed = new PublishFailed('zonegate-tables', 'timeout')
  const invalid = new ValidationFailed(REV, [])
  it.each([
    [invalid, 'stalled', 'ValidationFailed/ValidationFailed'],
    [new EmptyZoneRefused(REV, [{ zone: 'zone-a', routes: 1 }]), 'stalled', 'ValidationFailed/EmptyZoneRefused'],
    [new CompileFailed(REV, 'bug'), 'stalled', 'ValidationFailed/ValidationFailed'],
    [new TableTooLarge('zone-a', 2, 1), 'stalled', 'ValidationFailed/TableTooLarge'],
    [new PublishConflict('zone-a.table', 3), 'transient', 'PublishFailed/PublishConflict'],
    [fetchFailed, 'transient', 'FetchFailed/FetchFailed'],
    [publishFailed, 'transient', 'PublishFailed/PublishFailed'],
    [new Error('a bug'), 'transient', 'PublishFailed/ReconcileFailed'],
  ])('conditions - %s is %s and raises %s', (err, kind, condition) => {
    const p = errorPolicy(err)
    expect(p.kind).toBe(kind)
    expect(`${p.condition}/${p.reason}`).toBe(condition)
  })

  it("conditions - the policy is no part of an error's JSON or logged shape", () => {
    expect(Object.keys(invalid)).not.toContain('kind')
    expect(JSON.parse(JSON.stringify(invalid))).not.toHaveProperty('kind')
    expect(invalid.kind).toBe(ErrorKind.Stalled)
  })

  const cases: [string, PassOutcome, string[]][] = [
    ['applied', { result: 'applied', revision: REV, zonesPublished: 2 }, ['Ready=True/ReconciliationSucceeded']],
    ['unchanged', { result: 'unchanged', revision: REV }, ['Ready=True/ReconciliationSucceeded']],
    [
      'validation failure stalls',
      { result: 'failed', revision: REV, error: invalid },
      ['Ready=False/ValidationFailed', 'Stalled=True/ValidationFailed', 'ValidationFailed=True/ValidationFailed'],
    ],
    [
      'empty zone refused stalls',
      { result: 'failed', revision: REV, error: new EmptyZoneRefused(REV, [{ zone: 'zone-a', routes: 2 }]) },
      ['Ready=False/EmptyZoneRefused', 'Stalled=True/EmptyZoneRefused', 'ValidationFailed=True/EmptyZoneRefused'],
    ],
    [
      'fetch failure retries',
      { result: 'failed', error: fetchFailed },
      ['FetchFailed=True/FetchFailed', 'Ready=False/FetchFailed', 'Reconciling=True/ProgressingWithRetry'],
    ],
    [
      'publish failure retries',
      { result: 'failed', revision: REV, error: publishFailed },
      ['PublishFailed=True/PublishFailed', 'Ready=False/PublishFailed', 'Reconciling=True/ProgressingWithRetry'],
    ],
  ]
  it.each(cases)('conditions - after %s', (_name, outcome, expected) => {
    expect(summary(conditionsAfter(outcome, [], T0))).toEqual(expected)
  })

  it('conditions - failure conditions vanish after a success', () => {
    const failed = conditionsAfter({ result: 'failed', error: fetchFailed }, [], T0)
    const ok = conditionsAfter({ result: 'applied', revision: REV, zonesPublished: 1 }, failed, T1)
    expect(summary(ok)).toEqual(['Ready=True/ReconciliationSucceeded'])
    expect(ok[0]?.lastTransitionTime).toBe(T1)
  })

  it('conditions - lastTransitionTime is kept while the status does not change', () => {
    const a = conditionsAfter({ result: 'applied', revision: REV, zonesPublished: 1 }, [], T0)
    const b = conditionsAfter({ result: 'unchanged', revision: REV }, a, T1)
    expect(b[0]?.lastTransitionTime).toBe(T0)
  })

  it('conditions - reconciling keeps transient failure conditions and marks retries', () => {
    const failed = conditionsAfter({ result: 'failed', error: publishFailed }, [], T0)
    const running = conditionsReconciling(failed, REV, 2, T1)
    expect(summary(running)).toEqual([
      'PublishFailed=True/PublishFailed',
      'Ready=Unknown/ProgressingWithRetry',
      'Reconciling=True/ProgressingWithRetry',
    ])
    expect(summary(conditionsReconciling([], REV, 1, T1))).toEqual([
      'Ready=Unknown/Progressing',
      'Reconciling=True/Progressing',
    ])
  })

  it.each([
    [1, 0.5, 500],
    [2, 0.5, 1000],
    [3, 0.5, 2000],
    [10, 0.5, 30_000],
    [50, 0.5, 30_000],
    [1, 0, 400],
    [1, 0.999999, 600],
  ])('conditions - backoff for attempt %i with random %f is %i ms', (attempt, r, ms) => {
    expect(backoffMs(attempt, DEFAULT_RETRY_POLICY, () => r)).toBe(ms)
  })

  it('conditions - retry decision: none, wait for new revision, or backoff', () => {
    const rnd = () => 0.5
    expect(retryDecision({ result: 'unchanged', revision: REV }, 0, DEFAULT_RETRY_POLICY, rnd)).toEqual({
      kind: 'none',
    })
    expect(retryDecision({ result: 'failed', error: invalid }, 1, DEFAULT_RETRY_POLICY, rnd)).toEqual({
      kind: 'waitForNewRevision',
    })
    expect(retryDecision({ result: 'failed', error: fetchFailed }, 3, DEFAULT_RETRY_POLICY, rnd)).toEqual({
      kind: 'retry',
      delayMs: 2000,
      attempt: 4,
    })
  })
})

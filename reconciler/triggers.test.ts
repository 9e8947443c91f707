import { describe, expect, it } from 'vitest'
import {
  createTriggerLoop,
  hubSignature,
  initialSchedulerState,
  type PassHooks,
  pollDelayMs,
  type SchedulerAction,
  type SchedulerEvent,
  type SchedulerState,
  scheduleEvent,
  verifyHubSignature,
} from './triggers.js'

function run(events: SchedulerEvent[]): { state: SchedulerState; actions: SchedulerAction[] } {
  let state = initialSchedulerState()
  const actions: SchedulerAction[] = []
  for (const e of events) {
    const out = scheduleEvent(state, e)
    state = out.state
    actions.push(...out.actions)
  }
  return { state, actions }
}

const kinds = (actions: SchedulerAction[]) => actions.map((a) => a.type)

describe('triggers', () => {
  const cases: [string, SchedulerEvent[], string[], Partial<SchedulerState>][] = [
    ['idle trigger starts a pass', [{ type: 'trigger' }], ['start'], { running: true, queued: false }],
    [
      'triggers during a pass queue exactly one more',
      [{ type: 'trigger' }, { type: 'trigger' }, { type: 'trigger' }, { type: 'trigger' }, { type: 'pass.done' }],
      ['start', 'start'],
      { running: true, queued: false },
    ],
    ['pass done without queue goes idle', [{ type: 'trigger' }, { type: 'pass.done' }], ['start'], { running: false }],
    [
      'trigger after fetch asks for the tip',
      [{ type: 'trigger' }, { type: 'pass.fetched', sha: 'a' }, { type: 'trigger' }],
      ['start', 'resolveTip'],
      { queued: true, inflightSha: 'a' },
    ],
    [
      'newer tip aborts the pass in flight',
      [{ type: 'trigger' }, { type: 'pass.fetched', sha: 'a' }, { type: 'trigger' }, { type: 'tip', sha: 'b' }],
      ['start', 'resolveTip', 'abort'],
      { aborting: true, queued: true },
    ],
    [
      'same tip does not abort',
      [{ type: 'trigger' }, { type: 'pass.fetched', sha: 'a' }, { type: 'trigger' }, { type: 'tip', sha: 'a' }],
      ['start', 'resolveTip'],
      { aborting: false },
    ],
    [
      'a publishing pass is never superseded',
      [
        { type: 'trigger' },
        { type: 'pass.fetched', sha: 'a' },
        { type: 'pass.publishing' },
        { type: 'trigger' },
        { type: 'tip', sha: 'b' },
      ],
      ['start'],
      { queued: true, aborting: false },
    ],
  ]
  it.each(cases)('triggers - %s', (_name, events, actions, partial) => {
    const out = run(events)
    expect(kinds(out.actions)).toEqual(actions)
    expect(out.state).toMatchObject(partial)
  })

  it('triggers - waiters are answered by the pass that ran after they arrived', () => {
    const out = run([
      { type: 'trigger', waiter: 1 },
      { type: 'trigger', waiter: 2 },
      { type: 'trigger', waiter: 3 },
      { type: 'pass.done' },
      { type: 'pass.done' },
    ])
    expect(out.actions).toEqual([
      { type: 'start' },
      { type: 'answer', waiters: [1] },
      { type: 'start' },
      { type: 'answer', waiters: [2, 3] },
    ])
  })

  it('triggers - abort names the superseded sha and the new one', () => {
    const out = run([{ type: 'trigger' }, { type: 'pass.fetched', sha: 'old' }, { type: 'tip', sha: 'new' }])
    expect(out.actions).toContainEqual({ type: 'abort', sha: 'old', by: 'new' })
  })

  it.each([
    [10_000, 0, 9000],
    [10_000, 0.5, 10_000],
    [10_000, 0.999999, 11_000],
  ])('triggers - poll delay of %i ms with random %f is %i ms', (interval, r, ms) => {
    expect(pollDelayMs(interval, () => r)).toBe(ms)
  })

  it.each([
    ['good', (b: Buffer) => hubSignature('s3cret', b), true],
    ['wrong secret', (b: Buffer) => hubSignature('other', b), false],
    ['missing', () => undefined, false],
    ['no prefix', (b: Buffer) => hubSignature('s3cret', b).slice(7), false],
    ['truncated', (b: Buffer) => hubSignature('s3cret', b).slice(0, 20), false],
    ['sha1', () => 'sha1=0000', false],
  ])('triggers - webhook signature %s', (_name, sign, ok) => {
    const body = Buffer.from('{"ref":"refs/heads/main"}')
    expect(verifyHubSignature('s3cret', body, sign(body))).toBe(ok)
  })

  it('triggers - loop runs one extra pass for a burst and supersedes an older commit', async () => {
    const log: string[] = []
    let tip = 'a'
    let release: (() => void) | undefined
    const loop = createTriggerLoop<string>({
      async runPass(hooks: PassHooks) {
        const sha = tip
        log.push(`start ${sha}`)
        hooks.fetched(sha)
        await new Promise<void>((r) => {
          release = r
          hooks.signal.addEventListener('abort', () => r())
        })
        if (hooks.signal.aborted) {
          log.push(`aborted ${sha}`)
          return { result: `superseded ${sha}`, nextDelayMs: 60_000 }
        }
        log.push(`done ${sha}`)
        return { result: sha, nextDelayMs: 60_000 }
      },
      resolveTip: async () => tip,
      onSuperseded: (sha, by) => log.push(`superseded ${sha} by ${by}`),
    })
    const first = loop.trigger()
    await new Promise((r) => setTimeout(r, 5))
    tip = 'b'
    const second = loop.trigger()
    const third = loop.trigger()
    expect(await first).toBe('superseded a')
    await new Promise((r) => setTimeout(r, 5))
    release?.()
    expect(await second).toBe('b')
    expect(await third).toBe('b')
    expect(log).toEqual(['start a', 'superseded a by b', 'aborted a', 'start b', 'done b'])
    await loop.stop()
    expect(loop.running).toBe(false)
  })
})

import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Triggers and the pass scheduler. The rules live in a pure reducer (`scheduleEvent`), the timers and the pass
 * function in a thin loop (`createTriggerLoop`), so the rules are unit-tested without clocks:
 *
 * - a trigger (poll tick, webhook, NATS request, retry) while idle starts a pass;
 * - a trigger during a pass queues exactly one more pass (however many triggers arrive);
 * - a trigger during a pass whose commit is known and not yet publishing asks for the branch tip; if the tip is
 *   a newer commit, the pass in flight is aborted (superseded `by` the new sha) and the queued pass takes it;
 * - waiters (NATS requests) are answered with the result of the pass that ran after they arrived.
 */

export interface SchedulerState {
  running: boolean
  /** Sha of the pass in flight, once fetched. */
  inflightSha?: string
  /** The pass in flight started publishing: it can no longer be superseded. */
  publishing: boolean
  aborting: boolean
  queued: boolean
  /** Waiters answered when the pass in flight ends. */
  current: number[]
  /** Waiters of the queued pass. */
  next: number[]
}

export type SchedulerEvent =
  | { type: 'trigger'; waiter?: number }
  | { type: 'pass.fetched'; sha: string }
  | { type: 'pass.publishing' }
  | { type: 'pass.done' }
  | { type: 'tip'; sha: string }

export type SchedulerAction =
  | { type: 'start' }
  | { type: 'resolveTip' }
  | { type: 'abort'; sha: string; by: string }
  | { type: 'answer'; waiters: number[] }

export const initialSchedulerState = (): SchedulerState => ({
  running: false,
  publishing: false,
  aborting: false,
  queued: false,
  current: [],
  next: [],
})

const supersedable = (s: SchedulerState) => s.running && s.inflightSha !== undefined && !s.publishing && !s.aborting

/** The scheduler's rules: (state, event) → (state, actions). Pure. */
export function scheduleEvent(
  state: SchedulerState,
  event: SchedulerEvent,
): { state: SchedulerState; actions: SchedulerAction[] } {
  const waiters = (w?: number) => (w === undefined ? [] : [w])
  switch (event.type) {
    case 'trigger':
      if (!state.running) {
        return {
          state: { ...initialSchedulerState(), running: true, current: waiters(event.waiter) },
          actions: [{ type: 'start' }],
        }
      }
      return {
        state: { ...state, queued: true, next: [...state.next, ...waiters(event.waiter)] },
        actions: supersedable(state) ? [{ type: 'resolveTip' }] : [],
      }
    case 'pass.fetched':
      return { state: state.running ? { ...state, inflightSha: event.sha } : state, actions: [] }
    case 'pass.publishing':
      return { state: state.running ? { ...state, publishing: true } : state, actions: [] }
    case 'tip':
      if (supersedable(state) && event.sha !== state.inflightSha) {
        return {
          state: { ...state, aborting: true, queued: true },
          actions: [{ type: 'abort', sha: state.inflightSha as string, by: event.sha }],
        }
      }
      return { state, actions: [] }
    case 'pass.done': {
      const answer: SchedulerAction[] = state.current.length > 0 ? [{ type: 'answer', waiters: state.current }] : []
      if (!state.running) return { state, actions: [] }
      if (state.queued) {
        return {
          state: { ...initialSchedulerState(), running: true, current: state.next },
          actions: [...answer, { type: 'start' }],
        }
      }
      return { state: initialSchedulerState(), actions: answer }
    }
  }
}

/** Poll delay: `intervalMs` scaled by a factor in [0.9, 1.1) from `random()`. Pure. */
export function pollDelayMs(intervalMs: number, random: () => number): number {
  return Math.max(1, Math.round(intervalMs * (1 + 0.1 * (2 * random() - 1))))
}

/**
 * Checks GitHub's `X-Hub-Signature-256: sha256=<hex>` header against HMAC-SHA256(secret, body), in constant
 * time. False for a missing, malformed or wrong signature.
 */
export function verifyHubSignature(secret: string | Buffer, body: Buffer, header: string | undefined): boolean {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false
  const given = Buffer.from(header.slice('sha256='.length), 'hex')
  const expected = createHmac('sha256', secret).update(body).digest()
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/** The signature header value for a body (for clients and tests). */
export function hubSignature(secret: string | Buffer, body: Buffer | string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
}

/** Hooks the running pass calls so the scheduler can supersede it. */
export interface PassHooks {
  signal: AbortSignal
  fetched(sha: string): void
  publishing(): void
}

export interface TriggerLoopOptions<R> {
  /** One pass. Should return (not throw) when `hooks.signal` aborts. The delay it returns arms the next timer. */
  runPass(hooks: PassHooks): Promise<{ result: R; nextDelayMs: number }>
  /** Cheap: the sha at the branch tip. */
  resolveTip(): Promise<string>
  /** Called when a pass in flight is superseded (before it is aborted). */
  onSuperseded?(sha: string, by: string): void
  onError?(err: unknown): void
  setTimer?: (fn: () => void, ms: number) => unknown
  clearTimer?: (handle: unknown) => void
}

export interface TriggerLoop<R> {
  /** Asks for a pass now; resolves with the result of the pass that ran after this call. */
  trigger(): Promise<R>
  /** Asks for a pass and does not wait. */
  poke(): void
  /** Stops timers, aborts the pass in flight and waits for it to end. */
  stop(): Promise<void>
  readonly running: boolean
}

/**
 * Wires `scheduleEvent` to timers and a pass function. Nothing runs until the first `trigger()`/`poke()`; after
 * each pass a timer is armed with the pass's `nextDelayMs` (poll interval or retry backoff) and fires a trigger.
 */
export function createTriggerLoop<R>(opts: TriggerLoopOptions<R>): TriggerLoop<R> {
  const setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms))
  const clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout))
  let state = initialSchedulerState()
  let timer: unknown
  let stopped = false
  let nextWaiter = 0
  const waiters = new Map<number, { resolve(r: R): void; reject(e: unknown): void }>()
  let controller: AbortController | undefined
  let passDone: Promise<void> = Promise.resolve()
  let lastResult: R | undefined

  const dispatch = (event: SchedulerEvent) => {
    const out = scheduleEvent(state, event)
    state = out.state
    for (const a of out.actions) perform(a)
  }

  const perform = (a: SchedulerAction) => {
    switch (a.type) {
      case 'start':
        start()
        break
      case 'resolveTip':
        opts.resolveTip().then(
          (sha) => dispatch({ type: 'tip', sha }),
          (err) => opts.onError?.(err),
        )
        break
      case 'abort':
        opts.onSuperseded?.(a.sha, a.by)
        controller?.abort({ by: a.by })
        break
      case 'answer':
        for (const id of a.waiters) {
          waiters.get(id)?.resolve(lastResult as R)
          waiters.delete(id)
        }
        break
    }
  }

  const start = () => {
    if (timer !== undefined) clearTimer(timer)
    timer = undefined
    const c = new AbortController()
    controller = c
    const hooks: PassHooks = {
      signal: c.signal,
      fetched: (sha) => controller === c && dispatch({ type: 'pass.fetched', sha }),
      publishing: () => controller === c && dispatch({ type: 'pass.publishing' }),
    }
    passDone = (async () => {
      let delay: number | undefined
      try {
        const { result, nextDelayMs } = await opts.runPass(hooks)
        lastResult = result
        delay = nextDelayMs
      } catch (err) {
        opts.onError?.(err)
      }
      controller = undefined
      if (!stopped && delay !== undefined) {
        if (timer !== undefined) clearTimer(timer)
        timer = setTimer(() => {
          timer = undefined
          if (!stopped) dispatch({ type: 'trigger' })
        }, delay)
      }
      if (stopped) {
        for (const w of waiters.values()) w.reject(new Error('reconciler stopped'))
        waiters.clear()
        state = initialSchedulerState()
        return
      }
      dispatch({ type: 'pass.done' })
    })()
  }

  return {
    trigger() {
      if (stopped) return Promise.reject(new Error('reconciler stopped'))
      const id = nextWaiter++
      const p = new Promise<R>((resolve, reject) => waiters.set(id, { resolve, reject }))
      dispatch({ type: 'trigger', waiter: id })
      return p
    },
    poke() {
      if (!stopped) dispatch({ type: 'trigger' })
    },
    async stop() {
      stopped = true
      if (timer !== undefined) clearTimer(timer)
      timer = undefined
      controller?.abort({ shutdown: true })
      await passDone
      for (const w of waiters.values()) w.reject(new Error('reconciler stopped'))
      waiters.clear()
    },
    get running() {
      return state.running
    },
  }
}

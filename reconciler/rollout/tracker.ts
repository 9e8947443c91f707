import type { KvWatchEntry } from '@nats-io/kv'
import type { QueuedIterator } from '@nats-io/transport-node'
import type { Logger } from 'pino'
import type { InstanceHeartbeat, ZonegateEvent } from '../../schemas/events.js'
import { decodeEvent, decodeHeartbeat } from '../../schemas/messages.js'
import type { ZoneRolloutStatus } from '../../schemas/status.js'
import { decodeToken, EVENTS_STREAM, INSTANCES_TTL_MS, rolloutSubjects, zoneOfToken } from '../../schemas/subjects.js'
import {
  type BuiltEvent,
  commitConvergedEvent,
  commitStalledEvent,
  commitSupersededEvent,
  rolloutConvergedEvent,
  rolloutTimeoutEvent,
} from '../core/events.js'
import {
  initialRolloutBook,
  nextWakeupMs,
  observeApplied,
  observeHeartbeat,
  observeInstanceGone,
  observeRejected,
  type RolloutOutput,
  type RolloutStep,
  resumeRollouts,
  startCommitRollout,
  tickRollouts,
  zoneRolloutStatuses,
} from '../core/rollout.js'
import type { Bus } from '../transport/nats-bus.js'
import { emitEvent } from '../transport/nats-publisher.js'

/**
 * Follows rollouts on NATS for the lease holder (the rules are in reconciler/core/rollout.ts): one KV watch on
 * `zonegate-instances` (key `>`, one string filter, fine on 2.9) for the live instances (recreated after every
 * reconnect), one ordered consumer on the events stream filtered to `zonegate.events.rollout.*.>` for
 * `applied`/`rejected` events (it survives a NATS node loss, a core subscription does not), and a timer at the
 * core's next wakeup.
 * Runs beside the pass loop: `track()` returns at once, so a new pass never waits for a rollout.
 * Emits `rollout.<zone>.converged|timeout` and `commit.<sha>.converged|stalled|superseded` with the builders
 * of core/events.ts (msg ids dedupe retries; events that fail are retried every second, in order).
 */
export interface RolloutTracker {
  /** Starts following the zones an applied pass published (`PassReport` with result `applied`). */
  track(c: {
    revision: string
    sha: string
    zones: { zone: string; generation: number; digest: string; change: string }[]
  }): void
  /** Follows again the rollouts a previous lease holder left progressing (its status's zones). */
  resume(zones: readonly { zone: string; digest: string; rollout?: ZoneRolloutStatus }[]): void
  /** Per zone, the rollout of its last published table, for the status. */
  statuses(): Record<string, ZoneRolloutStatus>
  /** Resolves once the instance watch and the event subscription are set up. */
  ready: Promise<void>
  /** Stops watching (state is dropped: a new lease holder starts afresh); sends what it can of pending events. */
  stop(): Promise<void>
}

export interface RolloutTrackerOptions {
  bus: Bus
  log: Logger
  /** `--rollout-timeout` (default 60 s). */
  timeoutMs: number
  /** Called after the statuses changed (the caller rewrites the status). */
  onChange?: () => void
  /** Called when every changed zone of a commit converged (for the commit-to-converged histogram). */
  onCommitConverged?: (revision: string) => void
  /** Instance liveness; default the TTL of bucket `zonegate-instances` (30 s, docs/design.md §3). */
  liveTtlMs?: number
  now?: () => number
}

const RETRY_MS = 1000
/** How often the instance watch is checked for a stall (see `checkWatch`). */
const WATCH_CHECK_MS = 3000
/**
 * How long the bucket's last sequence may stay undelivered before the watch counts as stalled. The server places
 * the watch's consumer on any replica; when that node is lost the watch is silent, and the client would notice only
 * after two missed idle heartbeats (about a minute), longer than a rollout timeout.
 */
const WATCH_CONFIRM_MS = 1000

/** Starts the tracker; never throws (watch errors are logged and the watch is recreated). */
export function startRolloutTracker(o: RolloutTrackerOptions): RolloutTracker {
  const log = o.log.child({ component: 'rollout' })
  const now = o.now ?? Date.now
  let book = initialRolloutBook({ timeoutMs: o.timeoutMs, liveTtlMs: o.liveTtlMs ?? INSTANCES_TTL_MS })
  let lastStatus = '{}'
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  let watcher: QueuedIterator<KvWatchEntry> | undefined
  let events: { stop(): void } | undefined
  const pending: BuiltEvent[] = []
  let flushing: Promise<void> | undefined
  let retryTimer: NodeJS.Timeout | undefined

  const flush = (): Promise<void> => {
    flushing ??= (async () => {
      while (pending.length > 0) {
        try {
          await emitEvent(o.bus, pending[0] as BuiltEvent)
          pending.shift()
        } catch (err) {
          log.warn({ err, events: pending.length }, 'rollout events not delivered; retrying')
          if (!stopped)
            retryTimer ??= setTimeout(() => {
              retryTimer = undefined
              void flush()
            }, RETRY_MS).unref()
          break
        }
      }
    })().finally(() => {
      flushing = undefined
    })
    return flushing
  }

  const apply = (step: RolloutStep) => {
    if (stopped) return
    book = step.book
    for (const out of step.outputs) report(out)
    if (pending.length > 0) void flush()
    schedule()
    const status = JSON.stringify(zoneRolloutStatuses(book, now()))
    if (status !== lastStatus) {
      lastStatus = status
      o.onChange?.()
    }
  }

  const report = (x: RolloutOutput) => {
    const time = new Date(now())
    const zlog = 'zone' in x ? log.child({ zone: x.zone, revision: x.revision }) : log.child({ revision: x.revision })
    switch (x.type) {
      case 'zone.converged':
        zlog.info({ generation: x.generation, instances: x.instances, ms: x.ms }, 'rollout converged')
        pending.push(rolloutConvergedEvent({ ...x, time }))
        break
      case 'zone.timeout':
        zlog.warn({ generation: x.generation, missing: x.missing, rejected: x.rejected }, 'rollout timed out')
        pending.push(rolloutTimeoutEvent({ ...x, time }))
        break
      case 'zone.superseded':
        zlog.info({ generation: x.generation, by: x.by }, 'rollout superseded')
        break
      case 'commit.converged':
        zlog.info({ zones: x.zones }, 'commit converged')
        o.onCommitConverged?.(x.revision)
        pending.push(commitConvergedEvent({ ...x, time }))
        break
      case 'commit.stalled':
        zlog.warn({ reason: x.reason, detail: x.message }, 'commit stalled')
        pending.push(commitStalledEvent({ ...x, time }))
        break
      case 'commit.superseded':
        zlog.info({ by: x.by }, 'commit superseded before it converged')
        pending.push(commitSupersededEvent({ ...x, time }))
        break
      case 'instance.converged':
        zlog.info({ instance: x.instance, generation: x.generation }, 'instance converged after the rollout')
        break
      case 'instance.stale':
        zlog.warn(
          { instance: x.instance, generation: x.generation, serving: x.serving ?? null },
          'instance has not applied the current table',
        )
        break
      case 'instance.rejected':
        zlog.warn({ instance: x.instance, generation: x.generation, reason: x.reason }, 'instance rejected the table')
        break
    }
  }

  const schedule = () => {
    if (timer) clearTimeout(timer)
    timer = undefined
    const at = nextWakeupMs(book)
    if (at === undefined || stopped) return
    timer = setTimeout(() => apply(tickRollouts(book, now())), Math.max(5, at - now())).unref()
  }

  const onEntry = (e: KvWatchEntry) => {
    delivered = Math.max(delivered, e.revision)
    const parts = e.key.split('.')
    if (parts.length !== 3) return
    const [zoneTok, egressToken, instanceToken] = parts as [string, string, string]
    const zone = zoneOfToken(zoneTok)
    const id = { zone, egress: decodeToken(egressToken), instance: decodeToken(instanceToken) }
    if (e.operation !== 'PUT') return apply(observeInstanceGone(book, id, now()))
    const decoded = decodeHeartbeat(e.value)
    if (!decoded.ok) {
      log.debug({ zone, problem: decoded.problem }, 'invalid heartbeat ignored')
      return
    }
    const heartbeat: InstanceHeartbeat = decoded.value
    apply(observeHeartbeat(book, { ...id, heartbeat, seenMs: e.created.getTime() }, now()))
  }

  const onEvent = (ev: ZonegateEvent) => {
    if (ev.type !== 'rollout.applied' && ev.type !== 'rollout.rejected') return
    if (typeof ev.zone !== 'string' || typeof ev.egress !== 'string' || typeof ev.instance !== 'string') return
    if (ev.type === 'rollout.applied') {
      if (typeof ev.digest !== 'string') return
      apply(observeApplied(book, ev, now()))
    } else apply(observeRejected(book, { ...ev, reason: String(ev.reason) }, now()))
  }

  const watchLoop = async (onReady: () => void) => {
    while (!stopped) {
      try {
        if (o.liveTtlMs === undefined) {
          // Liveness follows the bucket's real TTL (whoever created it), not our constant.
          const ttl = (await o.bus.kv.instances.status()).ttl
          if (ttl > 0 && ttl !== book.liveTtlMs) book = { ...book, liveTtlMs: ttl }
        }
        const w = await o.bus.kv.instances.watch({ key: '>' })
        watcher = w
        onReady()
        if (stopped) w.stop()
        for await (const e of w) onEntry(e)
      } catch (err) {
        log.warn({ err }, 'instance watch failed; recreating')
        onReady()
      }
      if (!stopped) await new Promise((r) => setTimeout(r, RETRY_MS))
    }
  }

  /**
   * `applied`/`rejected` events are read from the events stream with an ordered consumer, not a core
   * subscription: a core subscription misses every event published while this process's connection moves to
   * another NATS node (a node lost, a leader moved), and the rollout then waits for its timeout although every
   * egress applied. The consumer resumes after the last stream sequence it delivered, whatever happened to the
   * connection. It starts a few seconds back (replayed events of rollouts not followed are ignored by the book).
   */
  const eventLoop = async (onReady: () => void) => {
    let lastSeq = 0
    while (!stopped) {
      try {
        const { DeliverPolicy } = await import('@nats-io/jetstream')
        const consumer = await o.bus.js.consumers.get(EVENTS_STREAM, {
          filter_subjects: rolloutSubjects('*'),
          ...(lastSeq > 0
            ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastSeq + 1 }
            : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(now() - 5000).toISOString() }),
        })
        const msgs = await consumer.consume()
        events = msgs
        onReady()
        if (stopped) msgs.stop()
        for await (const m of msgs) {
          lastSeq = m.seq
          if (stopped) break
          const decoded = decodeEvent(m.data)
          if (decoded.ok) onEvent(decoded.value)
          else log.debug({ subject: m.subject, problem: decoded.problem }, 'invalid rollout event ignored')
        }
      } catch (err) {
        log.warn({ err }, 'rollout event consumer failed; recreating')
        onReady()
      }
      if (!stopped) await new Promise((r) => setTimeout(r, RETRY_MS).unref())
    }
  }

  /**
   * The instance watch's liveness check: an ordered watcher can stay silent, without an error, after the stream
   * leader of `zonegate-instances` moved to another node while this connection never dropped (nats-server 2.9);
   * every instance then looks dead and rollouts stall although every egress applied. Heartbeats keep the bucket
   * moving, so a bucket whose last sequence is ahead of what the watch delivered, at two checks in a row with
   * nothing delivered in between, means the watch stalled: it is recreated.
   */
  let delivered = 0
  let behindAt = -1
  const checkWatch = async () => {
    if (stopped || watcher === undefined) return
    const last = (await o.bus.kv.instances.status()).streamInfo.state.last_seq
    if (last <= delivered) {
      behindAt = -1
      return
    }
    if (behindAt === delivered) {
      log.warn({ delivered, last }, 'instance watch stalled; recreating it')
      behindAt = -1
      watcher?.stop()
      return
    }
    behindAt = delivered
    // and sooner: a live watch delivers `last` within milliseconds
    const w = watcher
    setTimeout(() => {
      if (stopped || watcher !== w || delivered >= last) return
      log.warn({ delivered, last }, 'instance watch stalled; recreating it')
      behindAt = -1
      watcher?.stop()
    }, WATCH_CONFIRM_MS).unref()
  }
  const watchCheck = setInterval(() => {
    checkWatch().catch((err: unknown) => log.debug({ err }, 'instance watch check failed'))
  }, WATCH_CHECK_MS)
  watchCheck.unref()

  // After a reconnect (possibly to another node), recreate the instance watch: an ordered watcher can stay
  // silent after its stream's leader moved, and heartbeats are how instances count as live and applied.
  void (async () => {
    for await (const st of o.bus.nc.status()) {
      if (stopped) break
      if (st.type === 'reconnect') {
        log.info({ server: st.server }, 'nats reconnected: recreating the instance watch')
        watcher?.stop()
      }
    }
  })().catch(() => {})

  const ready = Promise.all([
    new Promise<void>((resolve) => void eventLoop(resolve)),
    new Promise<void>((resolve) => void watchLoop(resolve)),
  ]).then(() => {})

  return {
    track(c) {
      apply(startCommitRollout(book, c, now()))
    },
    resume(zones) {
      const step = resumeRollouts(book, zones, now())
      const resumed = Object.keys(step.book.commits).filter((sha) => !book.commits[sha])
      if (resumed.length > 0) log.info({ commits: resumed }, 'following the rollouts the previous lease holder left')
      apply(step)
    },
    statuses: () => zoneRolloutStatuses(book, now()),
    ready,
    async stop() {
      if (stopped) return
      stopped = true
      if (timer) clearTimeout(timer)
      if (retryTimer) clearTimeout(retryTimer)
      clearInterval(watchCheck)
      events?.stop()
      watcher?.stop()
      if (pending.length > 0) await flush().catch(() => {})
    },
  }
}

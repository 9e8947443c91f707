import type { Logger } from 'pino'
import type { ZonegateEvent } from '../../schemas/events.js'
import { parseEvent } from '../../schemas/messages.js'
import { EVENTS_STREAM, EVENTS_SUBJECTS } from '../../schemas/subjects.js'
import type { Bus } from '../transport/nats-bus.js'

/**
 * The recent events of stream ZONEGATE_EVENTS, kept in memory for the status page: one ordered consumer from
 * `now - sinceMs` that keeps following, the last `max` events in arrival order. Recreated when the consumer
 * ends (stream not there yet, NATS lost).
 */
export interface EventLog {
  events(): readonly ZonegateEvent[]
  stop(): void
}

/** Starts following; never throws. */
export function startEventLog(bus: Bus, log: Logger, opts: { max?: number; sinceMs?: number } = {}): EventLog {
  const max = opts.max ?? 500
  const sinceMs = opts.sinceMs ?? 3_600_000
  const kept: ZonegateEvent[] = []
  let stopped = false
  let stopCurrent: (() => void) | undefined
  let lastSeq = 0
  const run = async () => {
    while (!stopped) {
      try {
        const { DeliverPolicy } = await import('@nats-io/jetstream')
        const consumer = await bus.js.consumers.get(EVENTS_STREAM, {
          filter_subjects: EVENTS_SUBJECTS,
          ...(lastSeq > 0
            ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastSeq + 1 }
            : {
                deliver_policy: DeliverPolicy.StartTime,
                opt_start_time: new Date(Date.now() - sinceMs).toISOString(),
              }),
        })
        const msgs = await consumer.consume()
        stopCurrent = () => msgs.stop()
        if (stopped) msgs.stop()
        for await (const m of msgs) {
          lastSeq = m.seq
          const e = parseEvent(m.string())
          if (!e) continue
          kept.push(e)
          if (kept.length > max) kept.splice(0, kept.length - max)
        }
      } catch (err) {
        log.debug({ err }, 'event log: consumer ended; retrying')
      }
      if (!stopped) await new Promise((r) => setTimeout(r, 1000).unref())
    }
  }
  void run()
  return {
    events: () => kept,
    stop() {
      stopped = true
      stopCurrent?.()
    },
  }
}

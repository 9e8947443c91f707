import type { KV } from '@nats-io/kv'
import type { Logger } from 'pino'
import type { InstanceHeartbeat } from '../../schemas/events.js'
import { HEARTBEAT_INTERVAL_MS } from '../../schemas/subjects.js'

/**
 * Heartbeats of one egress instance in KV `zonegate-instances`, key `<zone>.<egress>.<instance>`
 * (`instanceKey`): the value says what the instance serves, for the reconciler's rollout tracking and
 * `zonegate status`. Written every interval (10 s; the bucket's TTL of 30 s forgets dead instances) and at
 * once on every state change; writes never overlap (a change during a write is written right after).
 */

/**
 * The instance id: `--instance`, else the process manager's process name (foreman's `PS=egress.1`,
 * node-foreman's `FOREMAN_WORKER_NAME`), else `<hostname>-<pid>`. Pure.
 */
export function defaultInstanceId(env: NodeJS.ProcessEnv, hostname: string, pid: number, flag?: string): string {
  if (flag) return flag
  if (env.PS) return env.PS
  if (env.FOREMAN_WORKER_NAME) return env.FOREMAN_WORKER_NAME
  return `${hostname}-${pid}`
}

/** What the heartbeat reports, read at each write. */
export type HeartbeatSource = () => Omit<InstanceHeartbeat, 'time'>

export interface Heartbeat {
  /** Writes now (coalesced with a write in flight). */
  beat(): void
  /** Stops the timer; with `remove`, deletes the key so the instance leaves the rollout at once. */
  stop(opts?: { remove?: boolean }): Promise<void>
}

/**
 * Starts heartbeating `key` into `kv` every `intervalMs` (default HEARTBEAT_INTERVAL_MS). A failed write
 * (NATS lost, bucket missing) is logged at debug and retried at the next beat. Never throws.
 */
export function startHeartbeat(
  kv: () => KV | undefined,
  key: string,
  source: HeartbeatSource,
  log: Logger,
  intervalMs = HEARTBEAT_INTERVAL_MS,
): Heartbeat {
  let writing: Promise<void> | undefined
  let again = false
  let stopped = false

  const write = async () => {
    const bucket = kv()
    if (bucket === undefined) return
    const value: InstanceHeartbeat = { ...source(), heartbeatMs: intervalMs, time: new Date().toISOString() }
    try {
      await bucket.put(key, JSON.stringify(value))
    } catch (err) {
      log.debug({ err }, 'heartbeat not written')
    }
  }
  const beat = () => {
    if (stopped) return
    if (writing) {
      again = true
      return
    }
    writing = (async () => {
      do {
        again = false
        await write()
      } while (again && !stopped)
    })().finally(() => {
      writing = undefined
    })
  }
  const timer = setInterval(beat, intervalMs)
  timer.unref()
  return {
    beat,
    async stop(opts = {}) {
      stopped = true
      clearInterval(timer)
      await writing
      if (opts.remove) {
        try {
          await kv()?.delete(key)
        } catch (err) {
          log.debug({ err }, 'heartbeat key not removed')
        }
      }
    },
  }
}

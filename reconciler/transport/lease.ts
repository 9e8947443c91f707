import type { KV } from '@nats-io/kv'
import type { Logger } from 'pino'
import { LEASE_KEY, LEASES_TTL_MS } from '../../schemas/subjects.js'
import { isCasMismatch, isLayoutMissing } from './nats-errors.js'

/**
 * Active/standby lease in KV `zonegate-leases`, key `reconciler` (value = the holder's id), on nats-server 2.9:
 * - acquire with `kv.create` (succeeds only when the key is absent, deleted or aged out by the bucket TTL);
 * - the holder renews every `renewMs` (ttl/3) with `kv.update(key, id, rev)`; a CAS failure ("wrong last
 *   sequence") means someone else holds it now: step down at once;
 * - a holder that cannot renew (NATS down) steps down by itself half a renew period before its key can
 *   expire on the server (each renew times out after `renewMs`), so two holders never both believe they
 *   lead (single server; see docs/nats-cluster.md for the clustered 2.9.10 CAS caveat);
 * - standbys poll `create()` every `pollMs` (2.9 emits no event when MaxAge removes a key) and also watch the
 *   key, so a released lease (DEL) is taken over at once;
 * - `stop({ release: true })` deletes the key (CAS on our revision) so a standby takes over immediately.
 * The bucket TTL must equal `ttlMs` (`ensureNatsLayout(bus, { leasesTtlMs })`): per-key TTL is ignored on 2.9.
 */
export interface Lease {
  /** True while this process holds the lease. */
  isLeader(): boolean
  /** Called with `true` on acquire and `false` on loss/stop; returns an unsubscribe function. */
  onChange(cb: (leader: boolean) => void): () => void
  /** Stops renewing and polling; with `release` (default true) deletes the key if we hold it. */
  stop(opts?: { release?: boolean }): Promise<void>
  /**
   * The leases bucket was recreated (a wiped store): a holder takes its lease again at once with `create`
   * (its CAS renewals can only fail on the empty bucket); if another process was faster it steps down.
   */
  reclaim(): Promise<void>
  /** The id this keeper writes. */
  readonly id: string
}

export interface LeaseOptions {
  /** The bucket (normally `bus.kv.leases`). */
  kv: KV
  /** Unique per process (e.g. `<host>-<pid>-<random>`). */
  id: string
  log: Logger
  /** Bucket TTL (ms); default 15 s (docs/design.md §3). */
  ttlMs?: number
  /** Renew period (ms); default ttl/3. */
  renewMs?: number
  /** Standby poll period (ms); default ttl/5. */
  pollMs?: number
  /** Clock, for tests. */
  now?: () => number
  /**
   * Called when a lease write failed because the bucket is gone (a wiped NATS store): the caller recreates the
   * layout; the next tick then takes the lease again with `create`.
   */
  onLayoutMissing?: (err: unknown) => void
}

/**
 * Starts a lease keeper: tries to acquire at once, then renews or polls on timers until `stop()`. Never
 * throws: NATS errors are logged and retried on the next tick. Resolves after the first acquire attempt, so
 * `isLeader()` is meaningful on return.
 */
export async function startLease(opts: LeaseOptions): Promise<Lease> {
  const ttlMs = opts.ttlMs ?? LEASES_TTL_MS
  const renewMs = opts.renewMs ?? Math.max(1, Math.floor(ttlMs / 3))
  const pollMs = opts.pollMs ?? Math.max(1, Math.floor(ttlMs / 5))
  const now = opts.now ?? Date.now
  const log = opts.log.child({ component: 'lease' })
  const { kv, id } = opts
  const listeners = new Set<(leader: boolean) => void>()
  let leader = false
  let rev = 0
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  let fence: NodeJS.Timeout | undefined
  let busy: Promise<void> = Promise.resolve()

  const setLeader = (value: boolean, why: string) => {
    if (leader === value) return
    leader = value
    if (!value && fence) clearTimeout(fence)
    if (value) log.info({ id, rev }, `lease acquired (${why})`)
    else log.warn({ id }, `lease lost (${why})`)
    for (const cb of listeners) {
      try {
        cb(value)
      } catch (err) {
        log.error({ err }, 'lease listener threw')
      }
    }
  }

  /**
   * Self-fencing: the server expires the key `ttlMs` after our last successful write, which happened after
   * `sent`; step down half a renew period before that unless a later renewal re-arms the fence.
   */
  const armFence = (sent: number) => {
    if (fence) clearTimeout(fence)
    const left = ttlMs - renewMs / 2 - (now() - sent)
    fence = setTimeout(() => setLeader(false, 'could not renew in time'), Math.max(0, left))
  }

  const tryAcquire = async () => {
    const sent = now()
    try {
      rev = await kv.create(LEASE_KEY, id)
      armFence(sent)
      setLeader(true, 'created')
    } catch (err) {
      if (isLayoutMissing(err)) opts.onLayoutMissing?.(err)
      if (!isCasMismatch(err)) log.debug({ err }, 'lease acquire failed')
    }
  }

  const renew = async () => {
    const sent = now()
    try {
      const next = await kv.update(LEASE_KEY, id, rev, renewMs)
      if (!leader) return // fenced while the write was in flight: let the key lapse, then compete again
      rev = next
      armFence(sent)
    } catch (err) {
      if (isCasMismatch(err)) setLeader(false, 'taken by another reconciler or expired')
      else {
        if (isLayoutMissing(err)) opts.onLayoutMissing?.(err)
        log.warn({ err }, 'lease renew failed; retrying')
      }
    }
  }

  const tick = async () => {
    if (stopped) return
    if (leader) await renew()
    else await tryAcquire()
  }

  const schedule = () => {
    if (stopped) return
    timer = setTimeout(
      () => {
        busy = busy.then(tick).finally(schedule)
      },
      leader ? renewMs : pollMs,
    )
  }

  // Watch the key: a DEL/PURGE (release) lets a standby try at once instead of waiting for the next poll.
  const watcher = await kv.watch({ key: LEASE_KEY }).catch(() => undefined)
  if (watcher) {
    void (async () => {
      for await (const e of watcher) {
        if (stopped) break
        if (!leader && (e.operation === 'DEL' || e.operation === 'PURGE')) {
          busy = busy.then(() => tick())
        }
      }
    })().catch(() => {})
  }

  busy = tick()
  await busy
  schedule()

  return {
    id,
    isLeader: () => leader,
    onChange(cb) {
      listeners.add(cb)
      return () => listeners.delete(cb)
    },
    reclaim() {
      busy = busy.then(async () => {
        if (stopped || !leader) return
        const sent = now()
        try {
          rev = await kv.create(LEASE_KEY, id)
          armFence(sent)
          log.info({ id, rev }, 'lease taken again in the recreated bucket')
        } catch (err) {
          if (!isCasMismatch(err)) {
            log.warn({ err }, 'lease not retaken; retrying on the next renewal')
            return
          }
          // The key exists: this keeper's own acquire (a tick after its fence) may have created it in the new
          // bucket before the layout check told about the loss. Ours: keep leading; another id: step down.
          const e = await kv.get(LEASE_KEY).catch(() => null)
          if (e?.operation === 'PUT' && e.string() === id) {
            rev = Math.max(rev, e.revision)
            log.info({ id, rev }, 'lease already ours in the recreated bucket')
          } else setLeader(false, 'another reconciler took the recreated lease')
        }
      })
      return busy
    },
    async stop(o = {}) {
      if (stopped) return
      stopped = true
      if (timer) clearTimeout(timer)
      if (fence) clearTimeout(fence)
      watcher?.stop()
      await busy.catch(() => {})
      if (leader && (o.release ?? true)) {
        await kv.delete(LEASE_KEY, { previousSeq: rev }).catch((err) => log.warn({ err }, 'lease release failed'))
      }
      setLeader(false, 'stopped')
    },
  }
}

import { type Conn, expire } from './connection.js'
import { expireLean, LeanConn } from './lean.js'

/**
 * The proxy's only per-connection clock: one unref'd interval, running only while connections are open or
 * upstreams linger, that checks every connection's phase deadline (`Conn.deadline`: hello, connect, idle,
 * linger) on each tick. A deadline therefore fires up to one period late, and nothing is allocated, armed or
 * refreshed per connection, read or write (idleness is read from the sockets' byte counters at each tick).
 */
export class DeadlineSweep {
  /** Upstreams left to flush after their client closed (their Conn has left the open set), until `deadline`. */
  private readonly lingering = new Set<Conn>()
  private timer: NodeJS.Timeout | undefined

  /** `conns` is the proxy's live set of open connections (read on each tick, never modified here). */
  constructor(
    private readonly conns: ReadonlySet<Conn | LeanConn>,
    readonly periodMs: number,
    private readonly idleTimeoutMs: number,
  ) {}

  /** Period for these timeouts: a quarter of the shortest, within 5..500 ms. Pure. */
  static periodFor(timeoutsMs: number[]): number {
    return Math.max(5, Math.min(500, Math.floor(Math.min(...timeoutsMs) / 4)))
  }

  /** Makes sure the interval runs (call after adding an open connection). */
  arm(): void {
    if (this.timer !== undefined) return
    this.timer = setInterval(() => this.tick(), this.periodMs)
    this.timer.unref()
  }

  /** Watches `c.upstream` (closing after its client) until `c.deadline`, then destroys it if still open. */
  linger(c: Conn): void {
    this.lingering.add(c)
    this.arm()
  }

  /** Destroys every lingering upstream now and stops the interval. */
  close(): void {
    for (const c of this.lingering) c.upstream?.destroy()
    this.lingering.clear()
    clearInterval(this.timer)
    this.timer = undefined
  }

  private tick(): void {
    const now = performance.now()
    for (const c of this.conns) {
      if (c instanceof LeanConn) expireLean(c, now, this.idleTimeoutMs)
      else expire(c, now, this.idleTimeoutMs)
    }
    for (const c of this.lingering) {
      const up = c.upstream
      if (up !== null && !up.destroyed && now < c.deadline) continue
      up?.destroy()
      this.lingering.delete(c)
    }
    if (this.conns.size === 0 && this.lingering.size === 0) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }
}

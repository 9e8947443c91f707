import { type OpenConnection, openTls } from '../e2e/system.js'

/**
 * Steady TLS traffic through egresses for fault tests: one loop per target port opening a connection with
 * `sni` and closing it once the upstream completed the handshake, plus connections held open for the whole
 * run. `stop()` ends the loops and reports what happened per port, and how many held connections were lost.
 */
export interface Traffic {
  /** Stops the loops (held connections stay open until `release()`). */
  stop(): Promise<TrafficReport>
  /** Held connections that closed before `release()`. */
  lost(): number
  release(): void
}

export interface TrafficReport {
  ok: Record<number, number>
  failed: Record<number, number>
  errors: string[]
}

export async function startTraffic(ports: number[], sni: string, o: { held?: number } = {}): Promise<Traffic> {
  let running = true
  const report: TrafficReport = { ok: {}, failed: {}, errors: [] }
  const loops = ports.map(async (port) => {
    report.ok[port] = 0
    report.failed[port] = 0
    while (running) {
      try {
        const c = await openTls(port, sni)
        c.socket.destroy()
        report.ok[port]!++
      } catch (err) {
        report.failed[port]!++
        if (report.errors.length < 10) report.errors.push(`${port}: ${(err as Error).message}`)
      }
      await new Promise((r) => setTimeout(r, 25))
    }
  })
  const held: OpenConnection[] = []
  for (let i = 0; i < (o.held ?? 0); i++) held.push(await openTls(ports[i % ports.length]!, sni))
  let lost = 0
  let released = false
  for (const h of held) void h.closed.then(() => !released && lost++)
  return {
    async stop() {
      running = false
      await Promise.all(loops)
      return report
    },
    lost: () => lost,
    release() {
      released = true
      for (const h of held) h.socket.destroy()
    },
  }
}

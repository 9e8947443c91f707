import { readFile } from 'node:fs/promises'
import type { SecureContext } from 'node:tls'
import type { LogFormat } from '../../lib/common.js'
import { createLogger } from '../../lib/logging.js'
import { createWorkerMetrics } from '../admin/metrics.js'
import { CompactZoneTable, releaseTable } from '../core/compact-table.js'
import { RoutingTable } from '../core/routing-table.js'
import { meshSecureContext } from '../identity/egress-identity.js'
import { TcpProxy } from '../proxy/tcp-proxy.js'
import { compactFromFile, type FromWorker, snapshotOf, type ToWorker, tableFromWire } from './protocol.js'

/**
 * One data-plane worker of an egress with `--workers N` (forked by egress/workers/pool.ts; decision 015): a
 * TcpProxy on the listening socket it shares with its siblings, fed by the primary over the IPC channel with the
 * admitted table (compact form), the mesh identities, and stats / drain / close requests. It has no NATS
 * connection, no admin server and no lifecycle of its own. Signals are the primary's business (a Ctrl-C reaches
 * the whole process group): a worker drains when the primary asks, or by itself when the primary is gone.
 */

const send = (m: FromWorker) => {
  if (process.connected) process.send?.(m)
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => {})

let proxy: TcpProxy | undefined
let graceMs = 30_000
let registry: ReturnType<typeof createWorkerMetrics> | undefined
const contexts = new Map<string, SecureContext>()
let closing = false

function setIdentity(mesh: string, material: Parameters<typeof meshSecureContext>[0] | null, log?: TcpProxy['log']) {
  if (material === null) {
    contexts.delete(mesh)
    return
  }
  try {
    contexts.set(mesh, meshSecureContext(material))
  } catch (err) {
    // OpenSSL's message names the problem, never the key bytes
    log?.error({ mesh, err: new Error((err as Error).message) }, 'identity certificate unusable in worker')
  }
}

async function exit(code: number): Promise<void> {
  closing = true
  await proxy?.close()
  process.exit(code)
}

/** Swaps to `compact` (sent as `seq`) and acknowledges; a table the proxy refuses is not acknowledged. */
function swap(p: TcpProxy, seq: number, compact: CompactZoneTable): void {
  // never back to an older table than one already served (the primary sends in order; this holds it here too)
  if (seq <= appliedSeq) return
  const t0 = performance.now()
  const table = new RoutingTable(compact)
  const prev = p.current
  try {
    p.setTable(table)
  } catch (err) {
    // not acknowledged: the primary replaces this worker, which then starts on the current table
    p.log.error({ err, seq }, 'table refused by worker')
    return
  }
  const ms = performance.now() - t0
  appliedSeq = seq
  send({ t: 'swapped', seq, generation: table.generation ?? null, ms })
  // nothing reads the replaced table any more: open connections hold their built routes, not the table
  if (prev !== undefined) releaseTable(prev.envelope)
}

/** Tables are applied in the order they were sent, those read from a file included. */
let tables: Promise<void> = Promise.resolve()
/** The `seq` of the table served (from init or the last swap). */
let appliedSeq = 0

process.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'init': {
      if (proxy !== undefined) return
      const s = m.settings
      graceMs = s.graceMs
      const log = createLogger({
        name: 'egress',
        ...(s.logLevel ? { level: s.logLevel } : {}),
        ...(s.logFormat ? { format: s.logFormat as LogFormat } : {}),
      }).child({
        component: 'proxy',
        worker: m.slot,
        ...(s.zone ? { zone: s.zone } : {}),
        ...(s.name ? { egress: s.name } : {}),
      })
      const p = new TcpProxy(log, s.proxy)
      registry = createWorkerMetrics(p, m.slot)
      proxy = p
      for (const [mesh, material] of m.identities) setIdentity(mesh, material, log)
      p.identities = { contextFor: (mesh) => contexts.get(mesh) }
      const table = new RoutingTable(tableFromWire(m.table))
      p.setTable(table)
      appliedSeq = m.seq
      p.listen(m.listen.host, m.listen.port).then(
        (address) =>
          send({
            t: 'listening',
            seq: m.seq,
            generation: table.generation ?? null,
            address: { address: address.address, family: address.family, port: address.port },
          }),
        (err: Error) => send({ t: 'listen-error', error: err.message }),
      )
      return
    }
    case 'table': {
      const p = proxy
      if (p === undefined) return
      tables = tables.then(() => swap(p, m.seq, tableFromWire(m.table)))
      return
    }
    case 'table-file': {
      const p = proxy
      if (p === undefined) return
      const t = m.table
      tables = tables.then(async () => {
        try {
          const compact = compactFromFile(t, await readFile(t.file))
          swap(p, m.seq, new CompactZoneTable(t.meta, compact, t.checkedWith))
        } catch (err) {
          // not acknowledged: the primary replaces this worker, which then starts on the current table
          p.log.error({ err, seq: m.seq }, 'table file unreadable in worker')
        }
      })
      return
    }
    case 'identity':
      setIdentity(m.mesh, m.material, proxy?.log)
      return
    case 'stats': {
      if (proxy === undefined) return
      const snap = snapshotOf(proxy)
      if (!m.metrics || registry === undefined) {
        send({ t: 'stats', id: m.id, snap })
        return
      }
      registry.getMetricsAsJSON().then(
        (metrics) => send({ t: 'stats', id: m.id, snap, metrics }),
        () => send({ t: 'stats', id: m.id, snap }),
      )
      return
    }
    case 'drain':
      if (proxy === undefined) {
        send({ t: 'stopped', active: 0 })
        send({ t: 'drained', destroyed: 0 })
        return
      }
      // Closing the listener sends the cluster module's own `close` for the shared socket first, on the same
      // channel: when the primary reads `stopped`, it has dropped this worker from the socket.
      proxy.stopAccepting()
      send({ t: 'stopped', active: proxy.activeConnections })
      proxy.drain(m.graceMs).then((destroyed) => send({ t: 'drained', destroyed }))
      return
    case 'close':
      void exit(0)
      return
  }
})

// The primary is gone (killed, crashed): stop accepting at once, let open connections finish, then exit.
process.on('disconnect', () => {
  if (closing) return
  closing = true
  proxy?.log.warn({ graceMs }, 'egress primary gone; worker draining and exiting')
  const p = proxy
  if (p === undefined) process.exit(1)
  p.drain(graceMs).then(
    () => process.exit(0),
    () => process.exit(1),
  )
})

send({ t: 'hello' })

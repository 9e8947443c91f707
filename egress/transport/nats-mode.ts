import type { Logger } from 'pino'
import type { NatsAuthOptions } from '../../lib/nats-connect.js'
import { admittedValue, fileProblem } from '../core/admission.js'
import type { TableSource } from '../lifecycle/egress-context.js'
import type { HeartbeatSource } from './heartbeat.js'
import { type BusEvent, type NatsSubscriber, startNatsSubscriber } from './nats-subscriber.js'
import { readSavedTable, stateFilePath } from './state-store.js'
import { startTableAdmitter } from './table-admitter.js'

/**
 * Start-up of NATS mode, imported lazily by egress/main.ts (so `--static` never loads the NATS client):
 * first the `--state-dir` table goes to the lifecycle (so the egress serves while NATS is down), then the
 * subscriber starts connecting.
 */
export interface NatsModeDeps {
  servers: string[]
  auth?: NatsAuthOptions
  zone: string
  egress: string
  instance: string
  stateDir?: string
  heartbeatMs?: number
  watchCheckMs?: number
  trustedKeys?: readonly string[]
  log: Logger
  /** Into the lifecycle machine (ignored once it stopped). */
  send(event: BusEvent | { type: 'table.received'; table: unknown; source: TableSource }): void
  heartbeat: HeartbeatSource
  onConnected(): void
  /** True once the egress is stopping: no subscriber is started then. */
  stopping(): boolean
}

/**
 * Hands in the saved table (an unreadable file is a warning) and starts the subscriber. Resolves with it, or
 * undefined when the egress stopped meanwhile. Never rejects for a missing or bad state file.
 */
export async function startNatsMode(d: NatsModeDeps): Promise<NatsSubscriber | undefined> {
  const admitter = startTableAdmitter(d.log.child({ component: 'admission' }))
  if (d.stateDir) {
    try {
      const bytes = await readSavedTable(d.stateDir, d.zone)
      if (bytes !== undefined) {
        const { out } = await admitter.admit({
          kind: 'json',
          from: 'file',
          bytes,
          zone: d.zone,
          trustedKeys: d.trustedKeys ?? [],
        })
        if (!out.ok && out.stage === 'json') throw new Error(fileProblem(stateFilePath(d.stateDir, d.zone), out))
        d.send({ type: 'table.received', table: admittedValue(out), source: 'file' })
      }
    } catch (err) {
      d.log.warn({ err }, 'saved table unreadable; waiting for NATS')
    }
  }
  if (d.stopping()) {
    await admitter.close()
    return undefined
  }
  return startNatsSubscriber({
    admitter,
    servers: d.servers,
    ...(d.auth ? { auth: d.auth } : {}),
    zone: d.zone,
    egress: d.egress,
    instance: d.instance,
    log: d.log,
    send: d.send,
    heartbeat: d.heartbeat,
    ...(d.heartbeatMs ? { heartbeatMs: d.heartbeatMs } : {}),
    ...(d.watchCheckMs ? { watchCheckMs: d.watchCheckMs } : {}),
    ...(d.stateDir ? { stateDir: d.stateDir } : {}),
    ...(d.trustedKeys ? { trustedKeys: d.trustedKeys } : {}),
    onConnected: d.onConnected,
  })
}

import type { Subscription } from '@nats-io/transport-node'
import { CERT_QUEUE, CERT_SUBJECTS } from '../../schemas/subjects.js'
import { type CertRequestContext, handleCertRequest } from '../core/cert-service.js'
import type { Bus } from './nats-bus.js'

/**
 * The certificate service on NATS (docs/design.md §3, docs/mtls.md): the active reconciler subscribes to
 * `zonegate.cmd.cert.*` in queue group `zonegate-reconciler` and answers each egress CSR with
 * `handleCertRequest`. Standbys must not serve: start it when the lease is acquired, stop it when lost.
 */
export interface CertServer {
  stop(): Promise<void>
}

/** Subscribes and serves until `stop()`. Requests are handled concurrently; a reply is always sent. */
export function serveCertRequests(bus: Bus, ctx: CertRequestContext): CertServer {
  const log = bus.log.child({ component: 'cert-service' })
  const sub: Subscription = bus.nc.subscribe(CERT_SUBJECTS, { queue: CERT_QUEUE })
  const inflight = new Set<Promise<void>>()
  const done = (async () => {
    for await (const m of sub) {
      const p = (async () => {
        const { reply, request } = await handleCertRequest(m.subject, m.data, ctx)
        const who = request ? { zone: request.zone, egress: request.egress, mesh: request.mesh } : {}
        if (reply.ok)
          log.info(
            { request: { ...who, instance: request?.instance }, notAfter: reply.notAfter },
            'egress certificate issued',
          )
        else log.warn({ request: who, error: reply.error }, 'egress certificate refused')
        if (m.reply) m.respond(JSON.stringify(reply))
      })().catch((err) => log.error({ err }, 'certificate request failed'))
      inflight.add(p)
      void p.finally(() => inflight.delete(p))
    }
  })().catch((err) => log.error({ err }, 'certificate subscription ended'))
  return {
    async stop() {
      if (!sub.isClosed()) sub.unsubscribe()
      await done
      await Promise.all(inflight)
    },
  }
}

import type { HelloRefusal } from '../core/client-hello.js'
import type { MtlsRefusal } from '../core/mesh-mtls.js'

/**
 * Plain counters the proxy bumps on its hot path (a property increment, no label lookups); the admin server
 * reads them when /stats or /stats/prometheus is scraped.
 */

/** Why a connection was closed without being relayed. */
export const RejectReason = {
  UnknownSni: 'unknown-sni',
  HelloTimeout: 'hello-timeout',
  ClientClosed: 'client-closed',
  NoTable: 'no-table',
  OverCapacity: 'over-capacity',
  UpstreamUnavailable: 'upstream-unavailable',
} as const
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason] | HelloRefusal | MtlsRefusal

/** Connections of one route (by SNI). */
export interface RouteStats {
  total: number
  active: number
}

export class ProxyStats {
  /** Connections accepted by the listener. */
  accepted = 0
  /** Connections relayed to an upstream. */
  routed = 0
  /** terminate-mtls: caller handshakes that verified and were allowed. */
  terminated = 0
  /** Connections of removed routes closed after the drain period. */
  drainedClosed = 0
  /** Bytes of connections already closed (open ones are added on read). */
  closedBytesIn = 0
  closedBytesOut = 0
  /** Refused connections by reason. */
  readonly rejected = new Map<string, number>()
  /** Failed connect attempts by upstream `address:port`. */
  readonly connectFailures = new Map<string, number>()
  /** Relayed connections by route SNI. */
  readonly routes = new Map<string, RouteStats>()

  reject(reason: string): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1)
  }

  connectFailed(upstream: string): void {
    this.connectFailures.set(upstream, (this.connectFailures.get(upstream) ?? 0) + 1)
  }

  /** Counts one relayed connection of `sni` and returns its route counters (the caller decrements `active`). */
  route(sni: string): RouteStats {
    let r = this.routes.get(sni)
    if (r === undefined) {
      r = { total: 0, active: 0 }
      this.routes.set(sni, r)
    }
    r.total++
    r.active++
    this.routed++
    return r
  }
}

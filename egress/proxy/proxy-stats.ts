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

/** Upper bounds (seconds) of `zonegate_egress_client_hello_duration_seconds`. */
export const HELLO_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5]

/**
 * A Prometheus histogram kept as plain numbers: observing is a bound scan and two additions, with nothing allocated
 * (prom-client's `Histogram.observe` builds a closure and label objects on each call, once per connection here).
 * The metrics registry turns it into the histogram's series at scrape time.
 */
export class PlainHistogram {
  /** Non-cumulative counts per bucket; the last one is +Inf. */
  readonly counts: Float64Array
  sum = 0
  count = 0
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(v: number): void {
    const b = this.bounds
    let i = 0
    while (i < b.length && v > b[i]!) i++
    this.counts[i]!++
    this.sum += v
    this.count++
  }
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
  /** Seconds from accept to a decision on the ClientHello. */
  readonly helloSeconds = new PlainHistogram(HELLO_BUCKETS)

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

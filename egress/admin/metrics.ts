import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { processRegistry } from '../../lib/metrics.js'
import type { PlainHistogram } from '../proxy/proxy-stats.js'
import type { TcpProxy } from '../proxy/tcp-proxy.js'

/**
 * The egress's Prometheus metrics, in a registry of its own (never prom-client's global one, so tests and
 * several egresses in one process do not collide). Connection counters are read from the proxy's plain
 * counters at scrape time; the two histograms are observed as events happen.
 */
export interface EgressMetrics {
  registry: Registry
  swapSeconds: Histogram
  tableRejections: Counter<'reason'>
}

/** Process facts for `zonegate_build_info` and the readiness / NATS gauges, read at scrape time. */
export interface EgressProcessInfo {
  version: string
  ready(): boolean
  /** undefined in `--static` mode (no NATS). */
  natsConnected?(): boolean
}

/**
 * Creates the registry and metrics; `generation()` gives the served table's generation (-1 if none). Names follow
 * Prometheus conventions (unit suffixes, `_total` counters); prom-client's default process metrics are included.
 * The `sni` and `upstream` label values come only from served tables (docs/operations.md: bounded labels).
 * `proxy` undefined: the primary of an egress with `--workers` (the connection metrics live in the workers'
 * registries, `createWorkerMetrics`, and the admin scrape adds them up).
 */
export function createEgressMetrics(
  proxy: TcpProxy | undefined,
  generation: () => number,
  info: EgressProcessInfo = { version: 'unknown', ready: () => false },
): EgressMetrics {
  const { registry, registers } = processRegistry(info.version)
  new Gauge({
    name: 'zonegate_egress_ready',
    help: '1 while /ready answers 200 (serving a table), else 0',
    registers,
    collect() {
      this.set(info.ready() ? 1 : 0)
    },
  })
  if (info.natsConnected) {
    const connected = info.natsConnected
    new Gauge({
      name: 'zonegate_egress_nats_connected',
      help: '1 while connected to NATS, else 0',
      registers,
      collect() {
        this.set(connected() ? 1 : 0)
      },
    })
  }
  new Gauge({
    name: 'zonegate_egress_table_generation',
    help: 'Generation of the table being served (-1 when none or unversioned)',
    registers,
    collect() {
      this.set(generation())
    },
  })
  if (proxy !== undefined) proxyMetrics(registry, proxy)
  const swapSeconds = new Histogram({
    name: 'zonegate_egress_table_swap_duration_seconds',
    help: 'Time to build and install a routing table',
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
    registers,
  })
  const tableRejections = new Counter({
    name: 'zonegate_egress_table_rejections_total',
    help: 'Tables refused (invalid, stale, unreadable), by reason',
    labelNames: ['reason'] as const,
    registers,
  })
  return { registry, swapSeconds, tableRejections }
}

/**
 * The registry of one data-plane worker of an egress with `--workers`: prom-client's process metrics, the
 * connection metrics of its proxy, and `zonegate_egress_worker_connections_total{worker}` (its slot, 1..N), so
 * that the sum the primary serves still shows how accepts were spread over the workers.
 */
export function createWorkerMetrics(proxy: TcpProxy, slot: number): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  proxyMetrics(registry, proxy)
  const stats = proxy.stats
  new Counter({
    name: 'zonegate_egress_worker_connections_total',
    help: 'Connections accepted, by data-plane worker (--workers > 1)',
    labelNames: ['worker'],
    registers: [registry],
    collect() {
      this.reset()
      this.labels(String(slot)).inc(stats.accepted)
    },
  })
  return registry
}

/** The metrics read from a proxy's counters at scrape time. */
function proxyMetrics(registry: Registry, proxy: TcpProxy): void {
  const registers = [registry]
  const stats = proxy.stats
  new Counter({
    name: 'zonegate_egress_connections_total',
    help: 'Connections accepted by the listener',
    registers,
    collect() {
      this.reset()
      this.inc(stats.accepted)
    },
  })
  new Gauge({
    name: 'zonegate_egress_connections_active',
    help: 'Open client connections',
    registers,
    collect() {
      this.set(proxy.activeConnections)
    },
  })
  new Counter({
    name: 'zonegate_egress_connections_rejected_total',
    help: 'Connections closed without being relayed, by reason',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset()
      for (const [reason, n] of stats.rejected) this.labels(reason).inc(n)
    },
  })
  new Counter({
    name: 'zonegate_egress_mtls_terminated_total',
    help: 'terminate-mtls connections whose caller certificate verified and whose service was allowed',
    registers,
    collect() {
      this.reset()
      this.inc(stats.terminated)
    },
  })
  new Counter({
    name: 'zonegate_egress_route_connections_total',
    help: 'Connections relayed, by route SNI',
    labelNames: ['sni'],
    registers,
    collect() {
      this.reset()
      for (const [sni, r] of stats.routes) this.labels(sni).inc(r.total)
    },
  })
  new Gauge({
    name: 'zonegate_egress_route_connections_active',
    help: 'Open relayed connections, by route SNI',
    labelNames: ['sni'],
    registers,
    collect() {
      this.reset()
      for (const [sni, r] of stats.routes) this.labels(sni).set(r.active)
    },
  })
  new Counter({
    name: 'zonegate_egress_upstream_connect_failures_total',
    help: 'Failed upstream connect attempts (refused, unreachable, timed out), by upstream',
    labelNames: ['upstream'],
    registers,
    collect() {
      this.reset()
      for (const [u, n] of stats.connectFailures) this.labels(u).inc(n)
    },
  })
  new Counter({
    name: 'zonegate_egress_received_bytes_total',
    help: 'Bytes received from clients',
    registers,
    collect() {
      this.reset()
      this.inc(proxy.bytes().in)
    },
  })
  new Counter({
    name: 'zonegate_egress_sent_bytes_total',
    help: 'Bytes sent to clients',
    registers,
    collect() {
      this.reset()
      this.inc(proxy.bytes().out)
    },
  })
  registry.registerMetric(
    plainHistogram(
      'zonegate_egress_client_hello_duration_seconds',
      'Time from accept to a decision on the ClientHello',
      stats.helloSeconds,
    ) as unknown as Parameters<Registry['registerMetric']>[0],
  )
}

/**
 * A metric object for the registry that reads a PlainHistogram at scrape time, in the shape prom-client's own
 * histograms give (`_bucket` series with cumulative counts and `le`, then `_sum` and `_count`), so the text format
 * and the cluster aggregation (summed by `le`) are the same.
 */
export function plainHistogram(name: string, help: string, h: PlainHistogram) {
  const metric = { name, help, type: 'histogram' as const, aggregator: 'sum' as const }
  return {
    ...metric,
    get: async () => {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = []
      let acc = 0
      for (let i = 0; i <= h.bounds.length; i++) {
        acc += h.counts[i]!
        values.push({
          labels: { le: i < h.bounds.length ? h.bounds[i]! : '+Inf' },
          value: acc,
          metricName: `${name}_bucket`,
        })
      }
      values.push({ labels: {}, value: h.sum, metricName: `${name}_sum` })
      values.push({ labels: {}, value: h.count, metricName: `${name}_count` })
      return { ...metric, values }
    },
  }
}

import type { ProxySnapshot } from './protocol.js'

/**
 * The primary's sums over its workers that stay monotonic when a worker dies (docs/decisions/015-egress-workers.md,
 * "Metrics"). A counter in `/stats/prometheus` or `/stats` is the sum over the live workers; when one dies and is
 * forked again, its replacement counts from 0, so the sum would drop, which Prometheus reads as a counter reset of
 * the whole egress. The primary therefore keeps what it last saw of each worker and, when a worker exits, adds
 * that worker's counters (and histograms, whose buckets, sum and count are counters too) to a "retired" set that
 * every later sum includes. Gauges (open connections, heap, event-loop lag) are not carried over: they describe a
 * process that is gone. A worker that does not answer a scrape in time is counted with its last answer's counters.
 * What a worker counted after its last answer and before it died is lost (as it is across a process restart).
 * Pure.
 */

/** One metric as prom-client's `registry.getMetricsAsJSON()` gives it and `AggregatorRegistry.aggregate` takes it. */
export interface MetricJson {
  name: string
  help: string
  type: string
  aggregator?: string
  values: { labels: Record<string, string | number>; value: number; metricName?: string }[]
}

/** Metric types whose values only grow within a process: carried over from a dead worker. */
const CARRIED = new Set(['counter', 'histogram'])

const valueKey = (v: MetricJson['values'][number]) =>
  `${v.metricName ?? ''}\u0000${JSON.stringify(
    Object.keys(v.labels)
      .sort()
      .map((k) => [k, v.labels[k]]),
  )}`

const carried = (m: MetricJson) => CARRIED.has(m.type) && (m.aggregator ?? 'sum') === 'sum'

/**
 * `retired` plus the counters and histograms of `dead` (a worker's last registry seen), value by value (same
 * metric name, series name and labels); gauges and anything prom-client does not sum are left out. Returns a new
 * list; neither argument is changed. Pure.
 */
export function retireMetrics(retired: readonly MetricJson[], dead: readonly MetricJson[]): MetricJson[] {
  const byName = new Map<string, { metric: MetricJson; values: Map<string, MetricJson['values'][number]> }>()
  const addAll = (list: readonly MetricJson[]) => {
    for (const m of list) {
      if (!carried(m)) continue
      let e = byName.get(m.name)
      if (e === undefined) {
        e = { metric: { name: m.name, help: m.help, type: m.type, aggregator: 'sum', values: [] }, values: new Map() }
        byName.set(m.name, e)
      }
      for (const v of m.values) {
        const k = valueKey(v)
        const have = e.values.get(k)
        if (have) have.value += v.value
        else
          e.values.set(k, {
            labels: { ...v.labels },
            value: v.value,
            ...(v.metricName === undefined ? {} : { metricName: v.metricName }),
          })
      }
    }
  }
  addAll(retired)
  addAll(dead)
  return [...byName.values()].map((e) => ({ ...e.metric, values: [...e.values.values()] }))
}

/**
 * The registries `/stats/prometheus` sums (with `AggregatorRegistry.aggregate`, which takes each metric's
 * aggregator from its first occurrence): the primary's, each live worker's (`null`: it did not answer in time, its
 * last answer's counters are used), and the retired counters. Metrics prom-client leaves out of a cluster sum
 * (`aggregator: 'omit'`, i.e. `process_start_time_seconds`) are the primary's own: the egress started when its
 * primary did, whatever its workers did since (and Prometheus takes a change of start time for a restart). Pure.
 */
export function metricsToSum(
  primary: readonly MetricJson[],
  workers: readonly { fresh: readonly MetricJson[] | null; last: readonly MetricJson[] | null }[],
  retired: readonly MetricJson[],
): MetricJson[][] {
  const own = new Set(primary.filter((m) => m.aggregator === 'omit').map((m) => m.name))
  return [
    primary.map((m) => (m.aggregator === 'omit' ? { ...m, aggregator: 'first' } : m)),
    ...workers.map((w) =>
      w.fresh !== null
        ? w.fresh.filter((m) => !own.has(m.name) && m.aggregator !== 'omit')
        : retireMetrics([], w.last ?? []),
    ),
    [...retired],
  ]
}

/**
 * `into` plus the counters of `from`: every count and byte total, each route's `total`, rejections and connect
 * failures; `into`'s open connections (its own and per route) and generation are kept. New object. Pure.
 */
export function addCounters(into: ProxySnapshot, from: ProxySnapshot): ProxySnapshot {
  const out: ProxySnapshot = {
    ...into,
    accepted: into.accepted + from.accepted,
    routed: into.routed + from.routed,
    terminated: into.terminated + from.terminated,
    drainedClosed: into.drainedClosed + from.drainedClosed,
    bytesIn: into.bytesIn + from.bytesIn,
    bytesOut: into.bytesOut + from.bytesOut,
    rejected: { ...into.rejected },
    connectFailures: { ...into.connectFailures },
    routes: Object.fromEntries(Object.entries(into.routes).map(([sni, r]) => [sni, { ...r }])),
  }
  for (const [k, v] of Object.entries(from.rejected)) out.rejected[k] = (out.rejected[k] ?? 0) + v
  for (const [k, v] of Object.entries(from.connectFailures)) out.connectFailures[k] = (out.connectFailures[k] ?? 0) + v
  for (const [sni, r] of Object.entries(from.routes)) {
    const m = out.routes[sni]
    if (m === undefined) out.routes[sni] = { total: r.total, active: 0 }
    else m.total += r.total
  }
  return out
}

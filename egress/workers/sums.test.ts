import { AggregatorRegistry, Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { emptySnapshot, mergeSnapshots, type ProxySnapshot } from './protocol.js'
import { addCounters, type MetricJson, metricsToSum, retireMetrics } from './sums.js'

/** A worker-like registry: a counter with labels, a gauge and a histogram, as prom-client serialises them. */
async function workerMetrics(o: { accepted: number; bySni: Record<string, number>; active: number; hellos: number[] }) {
  const registry = new Registry()
  new Counter({ name: 'conns_total', help: 'c', registers: [registry] }).inc(o.accepted)
  const bySni = new Counter({ name: 'route_total', help: 'r', labelNames: ['sni'], registers: [registry] })
  for (const [sni, n] of Object.entries(o.bySni)) bySni.labels(sni).inc(n)
  new Gauge({ name: 'conns_active', help: 'a', registers: [registry] }).set(o.active)
  const h = new Histogram({ name: 'hello_seconds', help: 'h', buckets: [0.01, 0.1], registers: [registry] })
  for (const v of o.hellos) h.observe(v)
  return (await registry.getMetricsAsJSON()) as unknown as MetricJson[]
}

/** `name{labels} value` lines of the Prometheus text of summed registries. */
async function sumText(lists: MetricJson[][]): Promise<Map<string, number>> {
  const text = await AggregatorRegistry.aggregate(
    lists as unknown as Parameters<typeof AggregatorRegistry.aggregate>[0],
  ).metrics()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

describe('worker sums - metrics', () => {
  it('worker sums - a dead worker counters and histograms are kept, value by value; its gauges are not', async () => {
    const dead = await workerMetrics({
      accepted: 5,
      bySni: { 'a.test': 3, 'b.test': 2 },
      active: 4,
      hellos: [0.005, 0.5],
    })
    const retired = retireMetrics([], dead)
    expect(retired.map((m) => m.name).sort()).toEqual(['conns_total', 'hello_seconds', 'route_total'])
    const again = retireMetrics(
      retired,
      await workerMetrics({ accepted: 7, bySni: { 'a.test': 1, 'c.test': 6 }, active: 9, hellos: [0.05] }),
    )
    const live = await workerMetrics({ accepted: 1, bySni: { 'a.test': 1 }, active: 2, hellos: [0.005] })
    const sum = await sumText(metricsToSum([], [{ fresh: live, last: null }], again))
    expect(sum.get('conns_total')).toBe(13)
    expect(sum.get('route_total{sni="a.test"}')).toBe(5)
    expect(sum.get('route_total{sni="b.test"}')).toBe(2)
    expect(sum.get('route_total{sni="c.test"}')).toBe(6)
    expect(sum.get('conns_active')).toBe(2) // the live worker's only
    expect(sum.get('hello_seconds_count')).toBe(4)
    expect(sum.get('hello_seconds_bucket{le="0.01"}')).toBe(2)
    expect(sum.get('hello_seconds_bucket{le="0.1"}')).toBe(3)
    expect(sum.get('hello_seconds_bucket{le="+Inf"}')).toBe(4)
    expect(sum.get('hello_seconds_sum')).toBeCloseTo(0.56, 6)
    // neither input was changed
    expect(retired.find((m) => m.name === 'conns_total')?.values[0]?.value).toBe(5)
  })

  it('worker sums - a live worker that did not answer counts with its last answer, counters only', async () => {
    const last = await workerMetrics({ accepted: 8, bySni: {}, active: 3, hellos: [] })
    const sum = await sumText(metricsToSum([], [{ fresh: null, last }], []))
    expect(sum.get('conns_total')).toBe(8)
    expect(sum.has('conns_active')).toBe(false)
  })

  it("worker sums - process_start_time_seconds is the primary's (prom-client leaves it out of a cluster sum)", async () => {
    const primary = new Registry()
    collectDefaultMetrics({ register: primary })
    const worker = new Registry()
    collectDefaultMetrics({ register: worker })
    const p = (await primary.getMetricsAsJSON()) as unknown as MetricJson[]
    const w = (await worker.getMetricsAsJSON()) as unknown as MetricJson[]
    const mine = p.find((m) => m.name === 'process_start_time_seconds')!.values[0]!.value
    const plain = await sumText([p, w])
    expect(plain.has('process_start_time_seconds')).toBe(false) // what prom-client does alone
    const sum = await sumText(
      metricsToSum(
        p,
        [
          { fresh: w, last: null },
          { fresh: null, last: w },
        ],
        retireMetrics([], w),
      ),
    )
    expect(sum.get('process_start_time_seconds')).toBe(mine)
    // the process CPU counters of the primary, the live worker, the silent one and the retired one are summed
    const cpu = (l: MetricJson[]) => l.find((m) => m.name === 'process_cpu_seconds_total')!.values[0]!.value
    expect(sum.get('process_cpu_seconds_total')).toBeCloseTo(cpu(p) + 3 * cpu(w), 6)
  })
})

describe('worker sums - /stats snapshots', () => {
  const snap = (o: Partial<ProxySnapshot>): ProxySnapshot => ({ ...emptySnapshot(), ...o })

  it('worker sums - addCounters adds every counter and keeps the open connections and generation of the sum', () => {
    const sum = mergeSnapshots([
      snap({ accepted: 2, active: 1, generation: 4, routes: { 'a.test': { total: 2, active: 1 } } }),
    ])
    const dead = snap({
      accepted: 10,
      routed: 9,
      terminated: 1,
      drainedClosed: 2,
      active: 5,
      bytesIn: 100,
      bytesOut: 200,
      rejected: { 'unknown-sni': 1 },
      connectFailures: { '127.0.0.1:1': 3 },
      routes: { 'a.test': { total: 6, active: 4 }, 'b.test': { total: 3, active: 1 } },
      generation: 3,
    })
    expect(addCounters(sum, dead)).toEqual({
      accepted: 12,
      routed: 9,
      terminated: 1,
      drainedClosed: 2,
      active: 1,
      bytesIn: 100,
      bytesOut: 200,
      rejected: { 'unknown-sni': 1 },
      connectFailures: { '127.0.0.1:1': 3 },
      routes: { 'a.test': { total: 8, active: 1 }, 'b.test': { total: 3, active: 0 } },
      generation: 4,
    })
    expect(sum.routes['a.test']).toEqual({ total: 2, active: 1 }) // not changed
  })
})

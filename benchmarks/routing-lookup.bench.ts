import { RoutingTable } from '../egress/core/routing-table.js'
import { tableDigest } from '../schemas/digest.js'
import type { ZoneTable } from '../schemas/table.js'
import type { BenchContext } from './run.js'

/**
 * Routing on the egress hot path: SNI lookup (hit, mixed-case hit, miss) in a table of 10 000 routes, a smooth
 * weighted round-robin pick, and the cost of building a table (what a swap costs before the reference
 * assignment).
 */
function table(routes: number): ZoneTable {
  const body = {
    zone: 'zone-a',
    egresses: [{ name: 'ze-a', port: 10002 }],
    routes: Array.from({ length: routes }, (_, i) => ({
      sni: `svc-${String(i).padStart(5, '0')}{mesh=default}`,
      mesh: 'default',
      service: `svc-${i}`,
      kind: 'cross-zone' as const,
      mode: 'passthrough' as const,
      upstreams: [
        { address: '10.0.0.1', port: 10001, weight: 5 },
        { address: '10.0.0.2', port: 10001, weight: 1 },
        { address: '10.0.0.3', port: 10001, weight: 1 },
      ],
    })),
  }
  return { apiVersion: 'zonegate.io/v1', kind: 'ZoneEgressTable', generation: 1, digest: tableDigest(body), ...body }
}

function nsPerOp(iterations: number, fn: (i: number) => unknown): number {
  for (let i = 0; i < Math.min(iterations, 20_000); i++) fn(i)
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) fn(i)
  return Number(process.hrtime.bigint() - t0) / iterations
}

export default async function bench(ctx: BenchContext): Promise<void> {
  const n = ctx.smoke ? 1000 : 2_000_000
  const envelope = table(ctx.smoke ? 100 : 10_000)
  const t = new RoutingTable(envelope)
  const names = envelope.routes.map((r) => r.sni)
  const upper = names.map((s) => s.toUpperCase())
  const mask = 1023
  const misses = Array.from({ length: mask + 1 }, (_, i) => `nope-${i}.test`)
  ctx.report(
    'lookup hit (lower-case SNI)',
    nsPerOp(n, (i) => t.lookup(names[i & mask]!)),
    'ns/op',
  )
  ctx.report(
    'lookup hit (upper-case SNI)',
    nsPerOp(n, (i) => t.lookup(upper[i & mask]!)),
    'ns/op',
  )
  ctx.report(
    'lookup miss',
    nsPerOp(n, (i) => t.lookup(misses[i & mask]!)),
    'ns/op',
  )
  const route = t.lookup(names[0]!)!
  ctx.report(
    'WRR pick (weights 5/1/1)',
    nsPerOp(n, () => route.pick()),
    'ns/op',
  )
  // Locality-aware balancing (issue 10): upstreams in two priorities; only priority 0 is picked while it has one left
  const tiered = new RoutingTable({
    ...envelope,
    routes: [
      {
        ...envelope.routes[0]!,
        upstreams: [
          { address: '10.0.0.1', port: 10001, weight: 5, priority: 0 },
          { address: '10.0.0.2', port: 10001, weight: 1, priority: 0 },
          { address: '10.0.0.3', port: 10001, weight: 1, priority: 1 },
        ],
      },
    ],
  }).lookup(names[0]!)!
  ctx.report(
    'WRR pick with locality priorities (0/0/1)',
    nsPerOp(n, () => tiered.pick()),
    'ns/op',
  )
  const tried = new Set([0, 1])
  ctx.report(
    'WRR pick, priority 0 all tried (falls to 1)',
    nsPerOp(n, () => tiered.pick(tried)),
    'ns/op',
  )
  const builds = ctx.smoke ? 3 : 30
  const ms = nsPerOp(builds, () => new RoutingTable(envelope)) / 1e6
  ctx.report(`build RoutingTable (${envelope.routes.length} routes)`, ms, 'ms')
}

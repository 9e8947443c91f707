import { performance } from 'node:perf_hooks'
import { compileZoneTables } from '../reconciler/core/compile.js'
import type { Located, Resources } from '../reconciler/core/model.js'
import type { ExternalService, Mesh, ZoneEgress, ZoneIngress } from '../schemas/resources.js'
import type { BenchContext } from './run.js'

/**
 * compile: `compileZoneTables` over 10,000 ExternalServices in 3 meshes for 20 zones (target < 500 ms).
 * Resources are generated in memory: 3 mTLS meshes (2 with zoneEgress), every 4th ExternalService shares its
 * service tag with the previous one (merged routes), every 10th is pinned to a zone, half originate TLS; each
 * zone has 2 ZoneEgresses and 1 ZoneIngress advertising 30 services per zone-egress mesh.
 */
export interface BenchSnapshotSize {
  externalServices: number
  meshes: number
  zones: number
}

const at = <T>(resource: T, i: number): Located<T> => ({
  resource,
  location: { file: `gen/${i}.yaml`, line: 1, column: 1 },
  positions: new Map(),
})

/** Builds the benchmark's resources in memory. Deterministic. */
export function generateResources(size: BenchSnapshotSize): Resources {
  const zones = Array.from({ length: size.zones }, (_, z) => `zone-${z}`)
  const meshes: Mesh[] = Array.from({ length: size.meshes }, (_, m) => ({
    type: 'Mesh',
    name: `mesh-${m}`,
    mtls: { enabledBackend: 'ca', backends: [{ name: 'ca', type: 'builtin' }] },
    routing: { zoneEgress: m % 3 !== 2 },
  }))
  const zoneEgresses: ZoneEgress[] = zones.flatMap((zone, z) =>
    [1, 2].map((n) => ({
      type: 'ZoneEgress' as const,
      name: `ze-${n}`,
      zone,
      networking: { address: `10.${z}.0.${n}`, port: 10002, admin: { port: 9901 } },
    })),
  )
  const zoneIngresses: ZoneIngress[] = zones.map((zone, z) => ({
    type: 'ZoneIngress',
    name: `zi-${zone}`,
    zone,
    networking: { port: 10001, advertisedAddress: `198.51.${z}.1`, advertisedPort: 10001 },
    availableServices: meshes
      .filter((m) => m.routing?.zoneEgress)
      .flatMap((m) =>
        Array.from({ length: 30 }, (_, s) => ({
          tags: { 'kuma.io/service': `svc-${s}`, 'kuma.io/zone': zone },
          instances: 1 + ((s + z) % 4),
          mesh: m.name,
        })),
      ),
  }))
  const externalServices: ExternalService[] = Array.from({ length: size.externalServices }, (_, i) => {
    const service = `ext-${i - (i % 4 === 3 ? 1 : 0)}`
    const tags: Record<string, string> = { 'kuma.io/service': service, 'kuma.io/protocol': 'tcp' }
    if (i % 10 === 0) tags['kuma.io/zone'] = zones[(i / 10) % zones.length] as string
    return {
      type: 'ExternalService',
      name: `es-${i}`,
      mesh: `mesh-${i % size.meshes}`,
      tags,
      networking: {
        address: `host-${i}.example.com:${i % 2 === 0 ? 443 : 80}`,
        ...(i % 2 === 0 ? { tls: { enabled: true } } : {}),
      },
    }
  })
  let n = 0
  return {
    meshes: meshes.map((r) => at(r, n++)),
    zoneEgresses: zoneEgresses.map((r) => at(r, n++)),
    zoneIngresses: zoneIngresses.map((r) => at(r, n++)),
    externalServices: externalServices.map((r) => at(r, n++)),
  }
}

export const FULL_SIZE: BenchSnapshotSize = { externalServices: 10_000, meshes: 3, zones: 20 }
export const SMOKE_SIZE: BenchSnapshotSize = { externalServices: 200, meshes: 3, zones: 3 }

/**
 * Median wall time of `runs` calls of `fn` in ms, after `warmup` untimed calls; `cpu` is the median CPU time of
 * this process over the same calls (user + system, all threads: GC helpers included). On a shared machine the CPU
 * figure is the steadier one.
 */
export function measure(fn: () => void, runs: number, warmup = 2): { wall: number; cpu: number } {
  for (let i = 0; i < warmup; i++) fn()
  const walls: number[] = []
  const cpus: number[] = []
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    fn()
    walls.push(performance.now() - t0)
    const c = process.cpuUsage(c0)
    cpus.push((c.user + c.system) / 1000)
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
  return { wall: median(walls), cpu: median(cpus) }
}

/** Median wall time of `runs` calls of `fn` in ms, after `warmup` untimed calls. */
export const medianMs = (fn: () => void, runs: number, warmup = 2): number => measure(fn, runs, warmup).wall

export default async function bench(ctx: BenchContext): Promise<void> {
  const size = ctx.smoke ? SMOKE_SIZE : FULL_SIZE
  const resources = generateResources(size)
  let routes = 0
  const { wall, cpu } = measure(
    () => {
      routes = 0
      for (const t of compileZoneTables(resources).values()) routes += t.routes.length
    },
    ctx.smoke ? 1 : 15,
    ctx.smoke ? 0 : 3,
  )
  ctx.report(`compile ${size.externalServices} ES × ${size.meshes} meshes × ${size.zones} zones (median)`, wall, 'ms', {
    target: 500,
    note: `${routes} routes in all tables; process CPU ${cpu.toFixed(0)} ms`,
  })
}

import { validateSnapshot } from '../reconciler/core/validate/index.js'
import type { BenchContext } from './run.js'

/**
 * validateSnapshot (parse + schema + Kuma rules + cross-resource rules) on a generated snapshot of 10,000
 * resources: 3 meshes, 20 zones with one ZoneEgress and one ZoneIngress each, the rest ExternalServices,
 * 100 documents per file. Reports the median of several runs. Target: under 1 s.
 */
export function generateSnapshot(total: number): { revision: string; files: Map<string, string> } {
  const docs: string[] = []
  for (let m = 0; m < 3; m++)
    docs.push(
      `type: Mesh\nname: mesh-${m}\nmtls:\n  enabledBackend: ca-1\n  backends:\n    - name: ca-1\n      type: builtin\n      dpCert:\n        rotation:\n          expiration: 1d\nrouting:\n  zoneEgress: true\n`,
    )
  for (let z = 0; z < 20; z++) {
    docs.push(
      `type: ZoneEgress\nname: ze-${z}\nzone: zone-${z}\nnetworking:\n  address: 127.0.0.1\n  port: ${10002 + z * 10}\n  admin:\n    port: ${9901 + z * 10}\n`,
    )
    docs.push(
      `type: ZoneIngress\nname: zi-${z}\nzone: zone-${z}\nnetworking:\n  address: 127.0.0.1\n  port: ${10001 + z * 10}\n  advertisedAddress: 127.0.0.1\n  advertisedPort: ${10001 + z * 10}\navailableServices:\n  - mesh: mesh-${z % 3}\n    instances: 2\n    tags:\n      kuma.io/service: svc-${z}\n      kuma.io/protocol: http\n      kuma.io/zone: zone-${z}\n`,
    )
  }
  for (let i = 0; docs.length < total; i++) {
    const pin = i % 10 === 0 ? `  kuma.io/zone: zone-${i % 20}\n` : ''
    docs.push(
      `type: ExternalService\nname: es-${i}\nmesh: mesh-${i % 3}\ntags:\n  kuma.io/service: ext-${i % 500}\n  kuma.io/protocol: http\n${pin}networking:\n  address: 127.0.${(i >> 8) & 255}.${i & 255}:${1024 + (i % 60000)}\n  tls:\n    enabled: ${i % 2 === 0}\n`,
    )
  }
  const files = new Map<string, string>()
  for (let f = 0; f * 100 < docs.length; f++)
    files.set(`resources/part-${String(f).padStart(4, '0')}.yaml`, docs.slice(f * 100, f * 100 + 100).join('---\n'))
  return { revision: 'bench', files }
}

export default async function bench(ctx: BenchContext): Promise<void> {
  const total = ctx.smoke ? 200 : 10_000
  const snapshot = generateSnapshot(total)
  const runs = ctx.smoke ? 1 : 5
  const times: number[] = []
  const cpuTimes: number[] = []
  for (let r = 0; r < runs + 1; r++) {
    const started = performance.now()
    const cpu = process.cpuUsage()
    const result = validateSnapshot(snapshot)
    const ms = performance.now() - started
    const used = process.cpuUsage(cpu)
    if (r > 0 || ctx.smoke) cpuTimes.push((used.user + used.system) / 1000)
    if (!result.valid || result.warnings.length > 0)
      throw new Error(
        `generated snapshot should be clean: ${result.violations.length} violations, ${result.warnings.length} warnings`,
      )
    if (r > 0 || ctx.smoke) times.push(ms) // the first run warms up the JIT
  }
  times.sort((a, b) => a - b)
  cpuTimes.sort((a, b) => a - b)
  const median = times[Math.floor(times.length / 2)]!
  ctx.report(`validateSnapshot ${total} resources (median of ${times.length})`, median, 'ms', { target: 1000 })
  // CPU time of this process: closer to the uncontended figure when other work shares the cores.
  ctx.report('  CPU time (median)', cpuTimes[Math.floor(cpuTimes.length / 2)]!, 'ms')
  ctx.report(`  per resource`, (median * 1000) / total, 'µs')
}

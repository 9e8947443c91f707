import { tableDigest } from '../../schemas/digest.js'
import type { PublishedZoneTable, TableRoute } from '../../schemas/table.js'

/**
 * A published-looking table of `n` routes for zone `zone` (`svc-000000{mesh=default}` ... external routes to
 * 10.x.y.z:443), plus `extra` routes (for example one to a real test upstream), sorted by SNI as the compiler
 * sorts them. Used by the large-table tests and benchmarks/large-table.bench.ts.
 */
export function largeTable(
  n: number,
  o: { zone?: string; generation?: number; extra?: TableRoute[]; salt?: string } = {},
): PublishedZoneTable {
  const routes: TableRoute[] = []
  for (let i = 0; i < n; i++) {
    const id = String(i).padStart(6, '0')
    routes.push({
      sni: `svc-${id}${o.salt ?? ''}{mesh=default}`,
      mesh: 'default',
      service: `svc-${id}${o.salt ?? ''}`,
      kind: 'external',
      mode: 'passthrough',
      upstreams: [{ address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 443, weight: 1 }],
    })
  }
  routes.push(...(o.extra ?? []))
  routes.sort((a, b) => (a.sni < b.sni ? -1 : a.sni > b.sni ? 1 : 0))
  const body = { zone: o.zone ?? 'zone-a', egresses: [{ name: 'ze-a', address: '127.0.0.1', port: 10002 }], routes }
  const generation = o.generation ?? 1
  return {
    apiVersion: 'zonegate.io/v1',
    kind: 'ZoneEgressTable',
    generation,
    revision: `main@sha1:${generation.toString(16).padStart(40, '0')}`,
    digest: tableDigest(body),
    ...body,
  }
}

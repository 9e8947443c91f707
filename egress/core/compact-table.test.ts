import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson, tableDigest } from '../../schemas/digest.js'
import type { TableRoute, ZoneTable } from '../../schemas/table.js'
import {
  CompactZoneTable,
  compactFromCanonical,
  compactRoutes,
  findRoute,
  routeAt,
  routeCount,
  tableJsonParts,
} from './compact-table.js'
import { lowerAscii, RoutingTable } from './routing-table.js'

function table(routes: TableRoute[]): ZoneTable {
  const body = { zone: 'zone-a', egresses: [{ name: 'ze-a', port: 10002 }], routes }
  return { apiVersion: 'zonegate.io/v1', kind: 'ZoneEgressTable', generation: 3, digest: tableDigest(body), ...body }
}
const route = (sni: string, extra: Partial<TableRoute> = {}): TableRoute => ({
  sni,
  mesh: 'default',
  service: 's',
  kind: 'external',
  mode: 'passthrough',
  upstreams: [{ address: '10.0.0.1', port: 443, weight: 1 }],
  ...extra,
})
const compactOf = (t: ZoneTable) => {
  const { routes, ...meta } = t
  return new CompactZoneTable(meta, compactRoutes(routes))
}

describe('compact table', () => {
  it('compact table - the routing table over the compact form answers as over the route objects (property)', () => {
    const sni = fc.stringMatching(/^[a-zA-Z0-9.{}=\u00e9\u212a-]{1,12}$/)
    fc.assert(
      fc.property(
        fc.uniqueArray(sni, { selector: (s) => lowerAscii(s), maxLength: 40 }),
        fc.array(sni),
        (snis, probes) => {
          const t = table(snis.map((s, i) => route(s, { service: `s${i}` })))
          const plain = new RoutingTable(t)
          const compact = new RoutingTable(compactOf(t))
          expect(compact.size).toBe(plain.size)
          for (const p of [...snis, ...snis.map((s) => s.toUpperCase()), ...probes]) {
            expect(compact.lookup(p)?.sni).toBe(plain.lookup(p)?.sni)
            expect(compact.lookup(p)?.upstreams).toEqual(plain.lookup(p)?.upstreams)
            expect(compact.has(lowerAscii(p))).toBe(plain.has(lowerAscii(p)))
          }
          expect(compact.list().map((r) => r.sni)).toEqual(plain.list().map((r) => r.sni))
        },
      ),
      { numRuns: 200 },
    )
  })

  it('compact table - a route is built once per table and keeps its balancer', () => {
    const t = new RoutingTable(
      compactOf(
        table([route('a.test', { upstreams: [1, 1].map((w, i) => ({ address: 'x', port: i + 1, weight: w })) })]),
      ),
    )
    const r = t.lookup('A.TEST')!
    expect(t.lookup('a.test')).toBe(r)
    expect([r.pick(), r.pick(), r.pick()]).toEqual([0, 1, 0])
  })

  it('compact table - routes, the state-file JSON and JSON.stringify give the envelope back', () => {
    const t = table([
      route('b.test', {
        allow: ['spiffe://default/x'],
        upstreams: [{ address: 'é.test', port: 1, weight: 2, priority: 1 }],
      }),
      route('a.test'),
    ])
    const c = compactOf(t)
    expect(c.routes).toEqual(t.routes)
    expect(routeCount(c)).toBe(2)
    expect(Object.keys(c)).not.toContain('compact')
    const parts = tableJsonParts(c).map((p) => (typeof p === 'string' ? p : Buffer.from(p).toString('utf8')))
    expect(JSON.parse(parts.join(''))).toEqual(t)
    expect(JSON.parse(JSON.stringify(c))).toEqual(t)
    expect(tableDigest(c)).toBe(t.digest)
    const empty = compactOf(table([]))
    expect(
      JSON.parse(
        tableJsonParts(empty)
          .map((p) => (typeof p === 'string' ? p : Buffer.from(p).toString()))
          .join(''),
      ),
    ).toEqual(table([]))
  })

  it('compact table - the index is at most half full and finds every SNI exactly', () => {
    const snis = Array.from({ length: 1000 }, (_, i) => `svc-${i}.test`)
    const c = compactRoutes(snis.map((s) => route(s)))
    expect(c.slots.length).toBeGreaterThanOrEqual(2000)
    expect(snis.map((s) => findRoute(c, s))).toEqual(snis.map((_, i) => i))
    expect(findRoute(c, 'svc-1000.test')).toBe(-1)
    expect(findRoute(c, 'svc-1.tes')).toBe(-1)
  })

  it('compact table - built from the canonical JSON of the routes, route boundaries are found whatever the strings hold', () => {
    const tricky = ['a},{"kind":"x', '},{"allow":[', 'é},{"deny":"😀', 'plain', '\\"},{"kind":']
    const routes = tricky.map((s, i) =>
      route(`${s}-${i}`, {
        service: s,
        allow: [s, `${s}!`],
        ...(i % 2 ? { deny: [s] } : {}),
        upstreams: [
          { address: s, port: 1, weight: 1 },
          { address: 'b', port: 2, weight: 0, tls: { enabled: true, serverName: s } },
        ],
      }),
    )
    const keys = routes.map((r) => lowerAscii(r.sni))
    const c = compactFromCanonical(keys, canonicalJson(routes), false)!
    expect(c.count).toBe(routes.length)
    for (const [i, r] of routes.entries()) {
      expect(routeAt(c, i)).toEqual(r)
      expect(findRoute(c, keys[i]!)).toBe(i)
    }
    expect(`[${Buffer.from(c.json).toString('utf8')}]`).toBe(canonicalJson(routes))
    expect(compactFromCanonical([], '[]', false)!.count).toBe(0)
    // boundaries that do not make one route per key: not built
    expect(compactFromCanonical(keys.slice(1), canonicalJson(routes), false)).toBeUndefined()
  })
})

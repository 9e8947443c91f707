import { deserialize, serialize } from 'node:v8'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson, tableDigest } from '../../schemas/digest.js'
import type { TableRoute, ZoneTable } from '../../schemas/table.js'
import {
  CompactZoneTable,
  compactFromCanonical,
  compactRoutes,
  findRoute,
  holdCompact,
  releaseCompact,
  releaseTable,
  routeAt,
  routeCount,
  sniAt,
  TableReleasedError,
  tableJsonParts,
  transferList,
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

  it('release - the buffers of a replaced table are detached at once, the new table still answers, the old one refuses every read', async () => {
    const snis = Array.from({ length: 20_000 }, (_, i) => `svc-${i}.test`)
    const oldTable = compactOf(table(snis.map((s) => route(s))))
    const newTable = compactOf(table(snis.map((s) => route(s, { service: 'new' }))))
    const oldRouting = new RoutingTable(oldTable)
    const newRouting = new RoutingTable(newTable)
    const built = oldRouting.lookup('svc-1.test')!
    const c = oldTable.compact
    const bytes = transferList(c).reduce((n, b) => n + b.byteLength, 0)
    const external = process.memoryUsage().arrayBuffers
    expect(releaseCompact(c)).toBe(bytes)
    // detached at once; their memory is freed when the message port closes (the end of this event-loop turn), not
    // at the next major GC
    for (const b of [c.sni, c.sniOff, c.json, c.jsonOff, c.slots]) expect(b.buffer.byteLength).toBe(0)
    for (let i = 0; i < 50 && external - process.memoryUsage().arrayBuffers < bytes * 0.9; i++)
      await new Promise((r) => setTimeout(r, 10))
    expect(external - process.memoryUsage().arrayBuffers).toBeGreaterThanOrEqual(bytes * 0.9)
    expect(c.released).toBe(true)
    expect(oldRouting.released).toBe(true)
    expect(newRouting.released).toBe(false)
    expect(newRouting.lookup('SVC-19999.test')?.sni).toBe('svc-19999.test')
    expect(newRouting.has('svc-7.test')).toBe(true)
    expect(routeAt(newTable.compact, 3).service).toBe('new')
    // every reader of the released table fails with the same clear error, none loops or answers
    const refusals: (() => unknown)[] = [
      () => findRoute(c, 'svc-2.test'),
      () => sniAt(c, 0),
      () => routeAt(c, 0),
      () => oldRouting.lookup('svc-2.test'),
      () => oldRouting.has('svc-2.test'),
      () => oldRouting.list(),
      () => oldTable.routes,
      () => JSON.stringify(oldTable),
      () => tableJsonParts(oldTable),
      () => transferList(c),
      () => holdCompact(c),
    ]
    for (const read of refusals) expect(read).toThrow(TableReleasedError)
    expect(() => findRoute(c, 'svc-2.test')).toThrow(/already released .*lookup of "svc-2.test" refused/)
    // a route built before the release is an object of its own: still the same answer
    expect(oldRouting.lookup('svc-1.test')).toBe(built)
    // the envelope's other fields stay; a second release does nothing
    expect(routeCount(oldTable)).toBe(20_000)
    expect(oldTable.generation).toBe(3)
    expect(releaseCompact(c)).toBe(0)
    expect(releaseTable(table([route('a.test')]))).toBe(0)
  })

  it('release - waits for the holds of readers that read across awaits (the state-file writer)', () => {
    const t = compactOf(table([route('a.test'), route('b.test')]))
    const c = t.compact
    const first = holdCompact(c)
    const second = holdCompact(c)
    expect(releaseTable(t)).toBe(0)
    expect(c.released).toBe(false)
    expect(routeAt(c, 1).sni).toBe('b.test')
    first()
    first() // giving a hold back twice counts once
    expect(c.released).toBe(false)
    expect(Buffer.from(c.json).toString()).toContain('a.test')
    second()
    expect(c.released).toBe(true)
    expect(c.json.buffer.byteLength).toBe(0)
    expect(() => routeAt(c, 0)).toThrow(TableReleasedError)
  })

  it('release - arrays that are views into a larger buffer (a table received over the IPC channel) are marked, not detached', () => {
    const c = compactRoutes(Array.from({ length: 300 }, (_, i) => route(`s${i}.test`)))
    const message = serialize({ t: 'table', compact: c })
    const received = (deserialize(message) as { compact: typeof c }).compact
    const shared = [received.sni, received.sniOff, received.json, received.jsonOff, received.slots].filter(
      (v) => v.byteLength !== v.buffer.byteLength,
    )
    expect(shared.length).toBeGreaterThan(0) // what Node's deserializer gives: views into the message
    expect(findRoute(received, 's7.test')).toBe(7)
    releaseCompact(received)
    expect(received.released).toBe(true)
    expect(() => findRoute(received, 's7.test')).toThrow(TableReleasedError)
    // the message buffer (which Node may share with the next message) is untouched
    for (const v of shared) expect(v.buffer.byteLength).toBeGreaterThan(v.byteLength)
    expect(Buffer.from(shared[0]!.buffer).length).toBeGreaterThan(0)
  })
})

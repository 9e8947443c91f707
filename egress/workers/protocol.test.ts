import { deserialize, serialize } from 'node:v8'
import { describe, expect, it } from 'vitest'
import { tableDigest } from '../../schemas/digest.js'
import type { ZoneTable } from '../../schemas/table.js'
import { CompactZoneTable, compactRoutes } from '../core/compact-table.js'
import { RoutingTable } from '../core/routing-table.js'
import {
  compactFromFile,
  emptySnapshot,
  type FileTable,
  fileTableOf,
  mergeSnapshots,
  type ProxySnapshot,
  perWorkerCap,
  tableFromWire,
  wireTable,
} from './protocol.js'

function table(n: number, generation = 7): ZoneTable {
  const body = {
    zone: 'zone-a',
    egresses: [{ name: 'ze-a', port: 10002 }],
    routes: Array.from({ length: n }, (_, i) => ({
      sni: `svc-${String(i).padStart(4, '0')}.test`,
      mesh: 'default',
      service: `svc-${i}`,
      kind: 'external' as const,
      mode: 'passthrough' as const,
      upstreams: [{ address: '127.0.0.1', port: 20000 + i, weight: 1 }],
    })),
  }
  return { apiVersion: 'zonegate.io/v1', kind: 'ZoneEgressTable', generation, digest: tableDigest(body), ...body }
}

/** What the cluster channel does to a message with `serialization: 'advanced'`. */
const overTheChannel = <T>(v: T): T => deserialize(serialize(v)) as T

const snap = (over: Partial<ProxySnapshot>): ProxySnapshot => ({ ...emptySnapshot(), ...over })

describe('workers protocol - tables over the channel', () => {
  it('workers protocol - a plain table is made compact once and routes the same after the channel', () => {
    const t = table(50)
    const w = overTheChannel(wireTable(t))
    const served = new RoutingTable(tableFromWire(w))
    expect(served.generation).toBe(7)
    expect(served.digest).toBe(t.digest)
    expect(served.size).toBe(50)
    expect(served.lookup('SVC-0042.test')?.upstreams[0]?.port).toBe(20042)
    expect(served.lookup('svc-9999.test')).toBeUndefined()
    expect(tableFromWire(w).toJSON()).toEqual(t)
  })

  it('workers protocol - a compact table crosses as it is, with the keys it was checked with', () => {
    const t = table(3)
    const { routes, ...meta } = t
    const compact = new CompactZoneTable(meta, compactRoutes(routes), ['NKEY'])
    const w = wireTable(compact)
    expect(w.compact).toBe(compact.compact)
    const back = tableFromWire(overTheChannel(w))
    expect(back.checkedWith).toEqual(['NKEY'])
    expect(back.routes).toEqual(routes)
  })
})

describe('workers protocol - sums', () => {
  it('workers protocol - counters, reasons, routes and bytes add up; the generation is the lowest served', () => {
    const m = mergeSnapshots([
      snap({
        accepted: 3,
        routed: 2,
        active: 1,
        bytesIn: 10,
        bytesOut: 20,
        rejected: { 'unknown-sni': 1 },
        routes: { 'a.test': { total: 2, active: 1 } },
        connectFailures: { '127.0.0.1:1': 2 },
        generation: 5,
      }),
      snap({
        accepted: 4,
        routed: 4,
        terminated: 1,
        drainedClosed: 1,
        bytesIn: 1,
        bytesOut: 2,
        rejected: { 'unknown-sni': 2, 'hello-timeout': 1 },
        routes: { 'a.test': { total: 3, active: 0 }, 'b.test': { total: 1, active: 1 } },
        generation: 4,
      }),
    ])
    expect(m).toEqual({
      accepted: 7,
      routed: 6,
      terminated: 1,
      drainedClosed: 1,
      active: 1,
      bytesIn: 11,
      bytesOut: 22,
      rejected: { 'unknown-sni': 3, 'hello-timeout': 1 },
      connectFailures: { '127.0.0.1:1': 2 },
      routes: { 'a.test': { total: 5, active: 1 }, 'b.test': { total: 1, active: 1 } },
      generation: 4,
    })
    expect(mergeSnapshots([snap({ generation: 3 }), snap({ generation: null })]).generation).toBeNull()
    expect(mergeSnapshots([])).toMatchObject({ accepted: 0, generation: null })
  })

  it('workers protocol - the connection cap is shared out so that the workers together hold the cap', () => {
    expect(perWorkerCap(10_000, 1)).toBe(10_000)
    expect(perWorkerCap(10_000, 2)).toBe(5000)
    expect(perWorkerCap(10_000, 3)).toBe(3334)
    expect(perWorkerCap(1, 4)).toBe(1)
  })
})

describe('workers protocol - a table through a file', () => {
  const fileTable = (t: ZoneTable): { ft: FileTable; bytes: Buffer } => {
    const { table, views } = fileTableOf(wireTable(t), '/nowhere/table-1.bin')
    return { ft: table, bytes: Buffer.concat(views) }
  }

  it('every part starts on 8 bytes and the file reads back as the same routes', () => {
    const t = table(301)
    const { ft, bytes } = fileTable(t)
    expect(bytes.byteLength).toBe(ft.size)
    for (const [off] of ft.parts) expect(off % 8).toBe(0)
    const back = new CompactZoneTable(ft.meta, compactFromFile(ft, new Uint8Array(bytes)), ft.checkedWith)
    expect(back.routes).toEqual(t.routes)
    expect(new RoutingTable(back).lookup('svc-0300.test')?.upstreams[0]?.port).toBe(20300)
  })

  it('bytes that do not start on 8 bytes are copied, not misread', () => {
    const { ft, bytes } = fileTable(table(5))
    const shifted = new Uint8Array(bytes.byteLength + 3)
    shifted.set(bytes, 3)
    const view = shifted.subarray(3)
    const back = new CompactZoneTable(ft.meta, compactFromFile(ft, view), ft.checkedWith)
    expect(back.routes).toEqual(table(5).routes)
  })

  it('a short file, or parts that do not fit, are refused naming the file', () => {
    const { ft, bytes } = fileTable(table(5))
    expect(() => compactFromFile(ft, new Uint8Array(bytes.subarray(0, bytes.byteLength - 1)))).toThrow(
      /table file \/nowhere\/table-1.bin: \d+ bytes, expected/,
    )
    const bad = { ...ft, parts: ft.parts.map(([o, l], i) => (i === 4 ? ([o + 8, l] as [number, number]) : [o, l])) }
    expect(() => compactFromFile(bad as FileTable, new Uint8Array(bytes))).toThrow(/part slots .* does not fit/)
  })
})

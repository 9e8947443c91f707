import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CompactZoneTable, compactRoutes } from '../../egress/core/compact-table.js'
import { DEFAULT_PROXY_OPTIONS } from '../../egress/proxy/proxy-options.js'
import { WorkerPool } from '../../egress/workers/pool.js'
import type { WireTable } from '../../egress/workers/protocol.js'
import type { ZoneTable } from '../../schemas/table.js'
import { startUpstream, tableOf, tlsConnect, type Upstream } from '../helpers/egress-fixtures.js'

/**
 * The workers' pool (real cluster workers on a real listener) releases the compact routes it built itself (a
 * `--static` table, admitted as route objects) once every worker has swapped to the next table, and never the
 * routes of a compact table, which belong to the egress that holds it (released there after the swap).
 */
const silent = pino({ level: 'silent' })
let a: Upstream
let b: Upstream
let pool: WorkerPool

const plain = (g: number, port: number): ZoneTable => tableOf([{ sni: 'svc.test', upstreams: [{ port }] }], g)
const compact = (g: number, port: number): CompactZoneTable => {
  const { routes, ...meta } = plain(g, port)
  return new CompactZoneTable(meta, compactRoutes(routes))
}
/** The table the pool hands to workers now (private: read for this test only). */
const current = () => (pool as unknown as { current: WireTable }).current

beforeAll(async () => {
  ;[a, b] = await Promise.all([startUpstream('A'), startUpstream('B')])
  pool = new WorkerPool({
    workers: 2,
    log: silent,
    registry: new Registry(),
    settings: { proxy: { ...DEFAULT_PROXY_OPTIONS, maxConnections: 100 }, instance: 'release', graceMs: 500 },
  })
})

afterAll(async () => {
  await pool?.close()
  await Promise.all([a?.close(), b?.close()])
})

describe('egress workers release', () => {
  it('egress workers - the compact routes the pool built are released once every worker swapped; a compact table is not its to release', async () => {
    const { port } = await pool.start(plain(1, a.port), { host: '127.0.0.1', port: 0 })
    const first = current()
    expect((await tlsConnect(port, 'svc.test')).upstream).toBe('A')

    await pool.setTable(plain(2, b.port))
    expect(first.compact.released).toBe(true)
    expect(first.compact.json.buffer.byteLength).toBe(0)
    for (let i = 0; i < 4; i++) expect((await tlsConnect(port, 'svc.test')).upstream).toBe('B')

    const second = current()
    const egressOwned = compact(3, a.port)
    await pool.setTable(egressOwned)
    expect(second.compact.released).toBe(true)
    for (let i = 0; i < 4; i++) expect((await tlsConnect(port, 'svc.test')).upstream).toBe('A')

    await pool.setTable(plain(4, b.port))
    expect(egressOwned.compact.released).toBe(false)
    expect(egressOwned.routes).toHaveLength(1)
    for (let i = 0; i < 4; i++) expect((await tlsConnect(port, 'svc.test')).upstream).toBe('B')
  })
})

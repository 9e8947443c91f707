import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startUpstream, tableOf, tlsConnect, type Upstream } from '../../test/helpers/egress-fixtures.js'
import { CompactZoneTable, compactRoutes, releaseTable, TableReleasedError } from '../core/compact-table.js'
import { RoutingTable } from '../core/routing-table.js'
import { RejectReason, TcpProxy } from './tcp-proxy.js'

/**
 * The proxy over a released table (docs/decisions/012-off-loop-admission.md, "Releasing a replaced table"): only a
 * replaced table is released, so the served one never is; should a bug release it anyway, connections are refused
 * as with no table (never routed from freed memory, never a crash), and a released table is never swapped in.
 */
const silent = pino({ level: 'silent' })

let up: Upstream
let proxy: TcpProxy
let port: number

const compactTable = (generation: number) => {
  const { routes, ...meta } = tableOf(
    [
      { sni: 'a.test', upstreams: [{ port: up.port }] },
      { sni: 'b.test', upstreams: [{ port: up.port }] },
    ],
    generation,
  )
  return new CompactZoneTable(meta, compactRoutes(routes))
}

beforeAll(async () => {
  up = await startUpstream('U')
  proxy = new TcpProxy(silent)
  port = (await proxy.listen('127.0.0.1', 0)).port
})

afterAll(async () => {
  await proxy?.close()
  await up?.close()
})

describe('tcp proxy and released tables', () => {
  it('tcp proxy - a released served table refuses connections as no table; a released table is never swapped in', async () => {
    const first = compactTable(1)
    proxy.setTable(new RoutingTable(first))
    expect((await tlsConnect(port, 'a.test')).upstream).toBe('U')

    releaseTable(first) // a bug: the served table released
    const accepts = up.accepts
    for (const sni of ['a.test', 'b.test']) expect((await tlsConnect(port, sni)).upstream).toBeUndefined()
    expect(proxy.stats.rejected.get(RejectReason.NoTable)).toBe(2)
    expect(up.accepts).toBe(accepts)

    const released = new RoutingTable(first)
    const second = new RoutingTable(compactTable(2))
    proxy.setTable(second)
    expect(() => proxy.setTable(released)).toThrow(TableReleasedError)
    expect(proxy.current).toBe(second)
    expect((await tlsConnect(port, 'b.test')).upstream).toBe('U')
  })
})

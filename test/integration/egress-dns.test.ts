import net, { type AddressInfo } from 'node:net'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildHello, toRecords } from '../../egress/core/hello-builder.js'
import { RoutingTable } from '../../egress/core/routing-table.js'
import { TcpProxy } from '../../egress/proxy/tcp-proxy.js'
import { tableOf } from '../helpers/egress-fixtures.js'

/**
 * Upstreams given by host name (ExternalServices such as `api.example.com:443`): a real TcpProxy resolves the
 * name once per `dnsTtlMs` (proxy/dns-cache.ts), not once per connection; with 0 it looks it up every time.
 * `localhost` comes from /etc/hosts: no query leaves the machine.
 */
let upstream: net.Server
let upstreamPort: number

beforeAll(async () => {
  upstream = net.createServer((s) => {
    s.on('error', () => {})
    s.resume().end(Buffer.alloc(1024, 120))
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  upstreamPort = (upstream.address() as AddressInfo).port
})
afterAll(async () => {
  await new Promise((r) => upstream.close(r))
})

function fetchOnce(port: number): Promise<number> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' })
    let got = 0
    s.on('error', () => resolve(-1))
    s.on('connect', () => s.write(toRecords(buildHello({ sni: ['named.test'] }))))
    s.on('data', (d: Buffer) => {
      got += d.length
    })
    s.on('close', () => resolve(got))
  })
}

async function withProxy(dnsTtlMs: number, run: (p: TcpProxy, port: number) => Promise<void>, address = 'localhost') {
  const p = new TcpProxy(pino({ level: 'silent' }), { dnsTtlMs })
  const table = tableOf([{ sni: 'named.test', upstreams: [{ port: upstreamPort }] }])
  table.routes[0]!.upstreams[0]!.address = address
  p.setTable(new RoutingTable(table))
  try {
    await run(p, (await p.listen('127.0.0.1', 0)).port)
  } finally {
    await p.close()
  }
}

describe('egress upstream host names', () => {
  it('dns - a named upstream is looked up once for many connections, and every connection is relayed', async () => {
    await withProxy(10_000, async (p, port) => {
      const got = []
      for (let i = 0; i < 5; i++) got.push(await fetchOnce(port))
      expect(got).toEqual([1024, 1024, 1024, 1024, 1024])
      expect(p.dns).toMatchObject({ misses: 1, hits: 4 })
    })
  })

  it('dns - an upstream given as an IP address is connected to without a lookup', async () => {
    await withProxy(
      10_000,
      async (p, port) => {
        expect([await fetchOnce(port), await fetchOnce(port)]).toEqual([1024, 1024])
        expect(p.dns).toMatchObject({ misses: 0, hits: 0 })
      },
      '127.0.0.1',
    )
  })

  it('dns - --dns-ttl 0 looks the name up per connection (no cache)', async () => {
    await withProxy(0, async (p, port) => {
      expect(p.dns).toBeUndefined()
      expect([await fetchOnce(port), await fetchOnce(port)]).toEqual([1024, 1024])
    })
  })
})

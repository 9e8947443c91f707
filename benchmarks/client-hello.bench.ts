import { Duplex } from 'node:stream'
import tls from 'node:tls'
import { ClientHelloReader, parseClientHello } from '../egress/core/client-hello.js'
import { buildHello, toRecords } from '../egress/core/hello-builder.js'
import type { BenchContext } from './run.js'

/**
 * ClientHello reader on the egress hot path: ns per decision for a real ClientHello (captured from node's
 * tls.connect, no network), one built with 1.5 KiB of extensions, the same split over 3 TCP chunks, and a
 * refusal of plain HTTP.
 */
async function captureNodeHello(servername: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const sink = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        resolve(Buffer.from(chunk))
        cb()
      },
    })
    const s = tls.connect({ socket: sink, servername, rejectUnauthorized: false })
    s.on('error', () => {})
    setTimeout(() => s.destroy(), 50)
  })
}

function nsPerOp(iterations: number, fn: () => unknown): number {
  for (let i = 0; i < Math.min(iterations, 20_000); i++) fn() // warm-up
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) fn()
  return Number(process.hrtime.bigint() - t0) / iterations
}

export default async function bench(ctx: BenchContext): Promise<void> {
  const n = ctx.smoke ? 1000 : 1_000_000
  const real = await captureNodeHello('orders{mesh=default}')
  const big = toRecords(buildHello({ sni: ['orders{mesh=default}'], exts: [[21, Buffer.alloc(1500)]] }))
  const http = Buffer.from('GET / HTTP/1.1\r\nHost: orders\r\n\r\n')
  const check = parseClientHello(real)
  if (check.ok !== true || check.serverName !== 'orders{mesh=default}') throw new Error('captured hello not parsed')

  ctx.report(
    `parse node tls.connect hello (${real.length} B)`,
    nsPerOp(n, () => parseClientHello(real)),
    'ns/op',
  )
  ctx.report(
    `parse built hello (${big.length} B)`,
    nsPerOp(n, () => parseClientHello(big)),
    'ns/op',
  )
  const thirds = [big.subarray(0, 400), big.subarray(400, 1200), big.subarray(1200)]
  ctx.report(
    'reader, hello over 3 chunks',
    nsPerOp(n / 4, () => {
      const r = new ClientHelloReader()
      r.push(thirds[0]!)
      r.push(thirds[1]!)
      return r.push(thirds[2]!)
    }),
    'ns/op',
  )
  const frag = toRecords(buildHello({ sni: ['orders{mesh=default}'], exts: [[21, Buffer.alloc(1500)]] }), 512)
  ctx.report(
    'parse hello in 512-byte records',
    nsPerOp(n / 4, () => parseClientHello(frag)),
    'ns/op',
  )
  ctx.report(
    'refuse plain HTTP',
    nsPerOp(n, () => parseClientHello(http)),
    'ns/op',
  )
}

import { createHook } from 'node:async_hooks'
import { createHash, randomBytes } from 'node:crypto'
import net, { type AddressInfo } from 'node:net'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildHello, toRecords } from '../../egress/core/hello-builder.js'
import { RoutingTable } from '../../egress/core/routing-table.js'
import { TcpProxy } from '../../egress/proxy/tcp-proxy.js'
import { closedPort, tableOf } from '../helpers/egress-fixtures.js'

/**
 * Per-connection leftovers: after many short connections through a real TcpProxy (real sockets on 127.0.0.1,
 * the close patterns of the `connraw` benchmark and their variants), nothing of them may remain: no tracked
 * connection, no active route gauge, no socket handle and no timer. Timers are counted with an async hook
 * (init minus destroy): `process.getActiveResourcesInfo()` does not list unref'd timers such as socket timeouts.
 */

type Upstreams = { raw: number; silent: number; echo: number; dead: number }
/** Every case runs on both data paths (proxy/lean.ts and net sockets). */
const DATA_PATHS = ['lean', 'net'] as const
type DataPath = (typeof DATA_PATHS)[number]
const proxies = new Map<DataPath, { proxy: TcpProxy; port: number }>()
let up: Upstreams
const servers: net.Server[] = []
const upSockets = new Set<net.Socket>()

/** A server of `kind`, tracking its sockets so a leaked upstream connection is visible as a live handle. */
async function serve(kind: 'raw' | 'silent' | 'echo'): Promise<number> {
  const server = net.createServer({ allowHalfOpen: kind === 'echo' }, (s) => {
    upSockets.add(s)
    s.on('close', () => upSockets.delete(s))
    s.on('error', () => {})
    // Every server reads, so it sees the egress's FIN and closes: a socket left open here is one the egress leaked.
    if (kind === 'raw')
      s.resume().end(Buffer.alloc(1024, 120)) // nginx `return`: 1 KiB then FIN, like the benchmark
    else if (kind === 'echo') s.pipe(s)
    else s.resume() // never answers
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  servers.push(server)
  return (server.address() as AddressInfo).port
}

const hello = (sni: string) => toRecords(buildHello({ sni: [sni] }))

/** One client connection: sends `bytes`, then reacts as `how`; resolves with the bytes it read. */
function client(
  port: number,
  bytes: Buffer,
  how: 'read-then-close' | 'close-at-once' | 'reset' | 'half-close' | 'wait-close',
  want = 1024,
): Promise<number> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: how === 'half-close' })
    let got = 0
    const timer = setTimeout(() => s.destroy(), 5000)
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(timer)
      resolve(got)
    })
    s.on('data', (d: Buffer) => {
      got += d.length
      if (how === 'read-then-close' && got >= want) s.destroy()
      if (how === 'half-close' && got >= want) s.end()
    })
    s.on('end', () => {
      if (how === 'half-close') s.end()
    })
    s.on('connect', () => {
      s.write(bytes)
      if (how === 'close-at-once') s.end()
      else if (how === 'reset') setImmediate(() => s.resetAndDestroy())
      else if (how === 'half-close') s.write(Buffer.alloc(want, 1))
    })
  })
}

/** Live timers (ref'd or not) of this process since the hook was enabled. */
const liveTimers = new Set<number>()
const timerHook = createHook({
  init(id, type) {
    if (type === 'Timeout') liveTimers.add(id)
  },
  destroy(id) {
    liveTimers.delete(id)
  },
})

/** Counts of live socket handles (getActiveResourcesInfo) and timers (async hook). */
function resources(): { sockets: number; timers: number } {
  let sockets = 0
  for (const r of process.getActiveResourcesInfo()) if (r === 'TCPSocketWrap') sockets++
  return { sockets, timers: liveTimers.size }
}

/** Polls `check` until it holds or `ms` passed; returns its last value. */
async function settle<T>(check: () => T, ok: (v: T) => boolean, ms = 4000): Promise<T> {
  const end = Date.now() + ms
  let v = check()
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 25))
    // Destroy hooks run from the immediate queue: let them count this poll timer as gone.
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
    v = check()
  }
  return v
}

beforeAll(async () => {
  timerHook.enable()
  up = { raw: await serve('raw'), silent: await serve('silent'), echo: await serve('echo'), dead: await closedPort() }
  for (const dataPath of DATA_PATHS) {
    const options = { helloTimeoutMs: 100, connectTimeoutMs: 500, closeLingerMs: 200, dataPath }
    const proxy = new TcpProxy(pino({ level: 'silent' }), options)
    proxy.setTable(
      new RoutingTable(
        tableOf([
          { sni: 'raw.test', upstreams: [{ port: up.raw }] },
          { sni: 'silent.test', upstreams: [{ port: up.silent }] },
          { sni: 'echo.test', upstreams: [{ port: up.echo }] },
          { sni: 'dead.test', upstreams: [{ port: up.dead }] },
        ]),
      ),
    )
    proxies.set(dataPath, { proxy, port: (await proxy.listen('127.0.0.1', 0)).port })
  }
})

afterAll(async () => {
  timerHook.disable()
  for (const { proxy } of proxies.values()) await proxy.close()
  for (const s of upSockets) s.destroy()
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
})

describe('egress proxy cleanup', () => {
  it.each(DATA_PATHS)(
    'egress proxy - many short connections leave no connection, route gauge, socket or timer behind (%s)',
    async (dataPath) => {
      const { proxy, port } = proxies.get(dataPath)!
      expect(proxy.dataPath).toBe(dataPath)
      const baseline = resources()
      const patterns: [Buffer, Parameters<typeof client>[2]][] = [
        [hello('raw.test'), 'read-then-close'], // the connraw workload
        [hello('raw.test'), 'wait-close'], // the upstream closes first, the client reads to EOF
        [hello('silent.test'), 'close-at-once'], // the client half-closes while the upstream says nothing
        [hello('silent.test'), 'reset'], // RST from the client
        [hello('echo.test'), 'half-close'], // FIN both ways after an echo
        [hello('unknown.test'), 'wait-close'], // refused with an alert
        [hello('dead.test'), 'wait-close'], // no upstream reachable
        [Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'wait-close'], // not TLS
        [hello('raw.test').subarray(0, 20), 'wait-close'], // a hello that never completes: hello deadline
      ]
      const rounds = 25
      for (let i = 0; i < rounds; i++) {
        const got = await Promise.all(patterns.map(([bytes, how]) => client(port, bytes, how)))
        expect(got[0]).toBeGreaterThanOrEqual(1024)
        expect(got[1]).toBe(1024)
      }
      expect(proxy.stats.accepted).toBe(rounds * patterns.length)

      const active = await settle(
        () => proxy.activeConnections,
        (n) => n === 0,
      )
      expect(active).toBe(0)
      for (const [sni, r] of proxy.stats.routes) expect({ sni, active: r.active }).toEqual({ sni, active: 0 })
      const upstreamSockets = await settle(
        () => upSockets.size,
        (n) => n === 0,
      )
      expect(upstreamSockets).toBe(0)
      const left = await settle(resources, (r) => r.sockets <= baseline.sockets && r.timers <= baseline.timers)
      expect(left.sockets).toBe(baseline.sockets)
      expect(left.timers).toBeLessThanOrEqual(baseline.timers)
    },
    30_000,
  )
})

describe('egress proxy deadlines', () => {
  /**
   * Opens a connection through port `p` with `sni` (writing a byte every `trickleMs` if given) and resolves with
   * the ms until the proxy ended it (a FIN), or 3000 when the test's own cap closes it first.
   */
  function timeToEnd(p: number, sni: string, trickleMs?: number): Promise<number> {
    return new Promise((resolve) => {
      const t0 = performance.now()
      const s = net.connect({ port: p, host: '127.0.0.1', allowHalfOpen: true })
      const trickle = trickleMs ? setInterval(() => s.write('.'), trickleMs) : undefined
      const done = (ms: number) => {
        clearInterval(trickle)
        clearTimeout(cap)
        s.destroy()
        resolve(ms)
      }
      const cap = setTimeout(() => done(3000), 3000)
      s.on('error', () => {})
      s.on('data', () => {})
      s.on('end', () => done(performance.now() - t0))
      s.on('connect', () => s.write(hello(sni)))
    })
  }

  it.each(DATA_PATHS)(
    'egress proxy - idle relays and lingering refused clients are closed by the shared sweep, active ones are not (%s)',
    async (dataPath) => {
      const p = new TcpProxy(pino({ level: 'silent' }), { idleTimeoutMs: 300, closeLingerMs: 200, dataPath })
      p.setTable(new RoutingTable(tableOf([{ sni: 'echo.test', upstreams: [{ port: up.echo }] }])))
      const pp = (await p.listen('127.0.0.1', 0)).port
      try {
        expect(p.deadlines.periodMs).toBe(50)
        // Refused with an alert and a FIN; the client keeps its side open: the proxy drops it after the linger.
        const s = net.connect({ port: pp, host: '127.0.0.1', allowHalfOpen: true })
        s.on('error', () => {})
        s.on('connect', () => s.write(hello('nope.test')))
        const t0 = performance.now()
        await settle(
          () => p.stats.rejected.get('unknown-sni') === 1 && p.activeConnections === 0,
          (gone) => gone,
          2000,
        )
        const lingered = performance.now() - t0
        s.destroy()
        expect(lingered).toBeGreaterThanOrEqual(180)
        expect(lingered).toBeLessThan(900)

        const [idle, busy] = await Promise.all([
          timeToEnd(pp, 'echo.test'), // the hello comes back once, then silence: idle timeout
          timeToEnd(pp, 'echo.test', 60), // a byte every 60 ms: never idle, only the test's cap ends it
        ])
        expect(idle).toBeGreaterThanOrEqual(280)
        expect(idle).toBeLessThan(1000)
        expect(busy).toBe(3000)
      } finally {
        await p.close()
      }
    },
    10_000,
  )
})

describe('egress proxy backpressure', () => {
  it.each(DATA_PATHS)(
    'egress proxy - a reader that stalls pauses the other side, and the relay resumes on drain both ways (%s)',
    async (dataPath) => {
      const size = 16 * 1024 * 1024
      const down = randomBytes(size) // random bytes: a read buffer reused too early would show as a wrong digest
      let upstreamGot = 0
      const sink = net.createServer((s) => {
        s.on('error', () => {})
        s.pause() // stalls 300 ms before reading: the client's side must pause, then resume
        setTimeout(() => s.resume(), 300)
        s.on('data', (d: Buffer) => {
          upstreamGot += d.length
        })
        s.end(down)
      })
      await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r))
      const p = new TcpProxy(pino({ level: 'silent' }), { dataPath })
      p.setTable(
        new RoutingTable(tableOf([{ sni: 'sink.test', upstreams: [{ port: (sink.address() as AddressInfo).port }] }])),
      )
      const pp = (await p.listen('127.0.0.1', 0)).port
      try {
        const hi = hello('sink.test')
        const digest = createHash('sha256')
        const clientGot = await new Promise<number>((resolve) => {
          const s = net.connect({ port: pp, host: '127.0.0.1' })
          let got = 0
          s.on('error', () => resolve(-1))
          s.on('connect', () => {
            s.write(hi)
            s.end(Buffer.alloc(size, 9))
            s.pause() // stalls too: the upstream's side must pause, then resume
            setTimeout(() => s.resume(), 300)
          })
          s.on('data', (d: Buffer) => {
            got += d.length
            digest.update(d)
          })
          s.on('close', () => resolve(got))
        })
        expect(clientGot).toBe(size)
        expect(digest.digest('hex')).toBe(createHash('sha256').update(down).digest('hex'))
        expect(
          await settle(
            () => upstreamGot,
            (n) => n === hi.length + size,
          ),
        ).toBe(hi.length + size)
      } finally {
        await p.close()
        await new Promise((r) => sink.close(r))
      }
    },
    15_000,
  )
})

import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import {
  closedPort,
  rawExchange,
  startUpstream,
  tableOf,
  tlsConnect,
  type Upstream,
  writeTable,
} from '../helpers/egress-fixtures.js'

/** Every case runs on both data paths (proxy/lean.ts and net sockets). */
const DATA_PATHS = ['lean', 'net'] as const

describe.each(DATA_PATHS)('data path %s', (dataPath) => {
  /** The egress started in-process on a table file, real TLS clients and upstreams on 127.0.0.1. */
  let dir: string
  let a: Upstream
  let b: Upstream
  let deadPort: number
  let egress: EgressHandle
  let port: number
  let adminUrl: string

  const routes = () => [
    { sni: 'a.test', upstreams: [{ port: a.port }] },
    { sni: 'b.test', upstreams: [{ port: b.port }] },
    {
      sni: 'w.test',
      upstreams: [
        { port: a.port, weight: 3 },
        { port: b.port, weight: 1 },
      ],
    },
    {
      sni: 'f.test',
      upstreams: [
        { port: deadPort, weight: 5 },
        { port: b.port, weight: 1 },
      ],
    },
    { sni: 'm.test', upstreams: [{ port: a.port }], mode: 'terminate-mtls' as const },
  ]
  const accepts = () => a.accepts + b.accepts

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'egress-proxy-'))
    ;[a, b, deadPort] = await Promise.all([startUpstream('A'), startUpstream('B'), closedPort()])
    await writeTable(join(dir, 'table.json'), tableOf(routes(), 1))
    egress = runEgress({
      staticFile: join(dir, 'table.json'),
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      proxy: { helloTimeoutMs: 300, drainPeriodMs: 300, dataPath },
      logger: pino({ level: 'silent' }),
    })
    const ready = await egress.ready
    port = ready.listen.port
    // the path asked for is the one relaying (the lean one falls back to net only on a Node without its bindings)
    expect(egress.proxy!.dataPath).toBe(dataPath)
    adminUrl = `http://127.0.0.1:${ready.admin!.port}`
  })

  afterAll(async () => {
    await egress?.shutdown()
    await Promise.all([a?.close(), b?.close()])
    await rm(dir, { recursive: true, force: true })
  })

  describe('egress proxy', () => {
    it('egress proxy - each SNI reaches its upstream, matched case-insensitively', async () => {
      expect(await tlsConnect(port, 'a.test')).toEqual({ upstream: 'A' })
      expect(await tlsConnect(port, 'b.test')).toEqual({ upstream: 'B' })
      expect(await tlsConnect(port, 'B.TeSt')).toEqual({ upstream: 'B' })
      expect(b.snis.at(-1)).toBe('B.TeSt') // the ClientHello was forwarded unchanged
    })

    it('egress proxy - a terminate-mtls route without a mesh identity is refused, never relayed', async () => {
      const before = a.accepts
      expect((await tlsConnect(port, 'm.test')).upstream).toBeUndefined()
      expect(a.accepts).toBe(before)
      const prom = await (await fetch(`${adminUrl}/stats/prometheus`)).text()
      expect(prom).toMatch(/zonegate_egress_connections_rejected_total\{reason="mtls-no-identity"\} [1-9]/)
    })

    it('egress proxy - bulk data crosses intact both ways and a half-close still gets the reply', async () => {
      const c = await tlsConnect(port, 'b.test', true)
      const payload = randomBytes(4 * 1024 * 1024)
      const received: Buffer[] = []
      const ended = new Promise<void>((r) => c.socket!.once('end', () => r()))
      c.socket!.on('data', (d: Buffer) => received.push(d))
      c.socket!.end(payload) // FIN right after the data: the echo must still come back
      await ended
      const back = Buffer.concat(received)
      expect(back.length).toBe(payload.length)
      expect(back.equals(payload)).toBe(true)
      c.socket!.destroy()
    })

    it('egress proxy - weights are honoured over many connections', async () => {
      const seen: string[] = []
      for (let i = 0; i < 40; i++) seen.push((await tlsConnect(port, 'w.test')).upstream ?? 'failed')
      expect(seen.filter((s) => s === 'A').length).toBe(30)
      expect(seen.filter((s) => s === 'B').length).toBe(10)
    })

    it('egress proxy - a refusing upstream fails over to the next one', async () => {
      for (let i = 0; i < 3; i++) expect(await tlsConnect(port, 'f.test')).toEqual({ upstream: 'B' })
      const stats = (await (await fetch(`${adminUrl}/stats`)).json()) as {
        upstreamConnectFailures: Record<string, number>
      }
      expect(stats.upstreamConnectFailures[`127.0.0.1:${deadPort}`]).toBeGreaterThanOrEqual(1)
    })

    it('egress proxy - unknown SNI, no SNI, plain HTTP and silence are closed without an upstream connection', async () => {
      const before = accepts()
      expect(await tlsConnect(port, 'nope.test')).toEqual({ error: 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME' })
      expect(await tlsConnect(port, undefined)).toEqual({ error: 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME' })
      const http = await rawExchange(port, Buffer.from('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n'))
      expect(http).toEqual({ received: Buffer.alloc(0), closed: true })
      const t0 = performance.now()
      const silent = await rawExchange(port, undefined)
      expect(silent).toEqual({ received: Buffer.alloc(0), closed: true })
      expect(performance.now() - t0).toBeLessThan(2000)
      expect(accepts()).toBe(before)
      const prom = await (await fetch(`${adminUrl}/stats/prometheus`)).text()
      for (const reason of ['unknown-sni', 'no-sni', 'not-tls', 'hello-timeout']) {
        expect(prom).toMatch(new RegExp(`zonegate_egress_connections_rejected_total\\{reason="${reason}"\\} [1-9]`))
      }
    })

    it('egress proxy - admin reports readiness, config and metrics', async () => {
      const ready = await fetch(`${adminUrl}/ready`)
      expect(ready.status).toBe(200)
      const dump = (await (await fetch(`${adminUrl}/config_dump`)).json()) as Record<string, unknown>
      expect(dump).toMatchObject({ state: 'serving', generation: 1 })
      const prom = await (await fetch(`${adminUrl}/stats/prometheus`)).text()
      for (const name of [
        'zonegate_egress_connections_total',
        'zonegate_egress_connections_active',
        'zonegate_egress_received_bytes_total',
        'zonegate_egress_sent_bytes_total',
        'zonegate_egress_route_connections_total{sni="a.test"}',
        'zonegate_egress_client_hello_duration_seconds_bucket',
        'zonegate_egress_table_swap_duration_seconds_count',
        'zonegate_egress_table_generation 1',
      ]) {
        expect(prom).toContain(name)
      }
      expect((await fetch(`${adminUrl}/quitquitquit`)).status).toBe(405)
    })

    it('egress proxy - a removed route keeps its connections for the drain period, then closes them', async () => {
      const kept = await tlsConnect(port, 'a.test', true)
      const other = await tlsConnect(port, 'b.test', true)
      expect(kept.upstream).toBe('A')
      const closedAt = new Promise<number>((r) => kept.socket!.once('close', () => r(performance.now())))
      await writeTable(
        join(dir, 'table.json'),
        tableOf(
          routes().filter((r) => r.sni !== 'a.test'),
          2,
        ),
      )
      const swappedAt = performance.now()
      egress.reload()
      await waitFor(egress.actor, (s) => s.context.table?.generation === 2)
      expect(await tlsConnect(port, 'a.test')).toEqual({ error: 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME' })
      kept.socket!.write('still here\n')
      const echoed = await new Promise<string>((r) => kept.socket!.once('data', (d) => r(d.toString())))
      expect(echoed).toBe('still here\n')
      const elapsed = (await closedAt) - swappedAt
      expect(elapsed).toBeGreaterThanOrEqual(250)
      expect(elapsed).toBeLessThan(3000)
      expect(other.socket!.destroyed).toBe(false)
      other.socket!.destroy()
    })
  })

  describe('egress proxy limits', () => {
    it('egress proxy - connections over the cap are closed without an upstream connection', async () => {
      const capped = runEgress({
        staticFile: join(dir, 'table.json'),
        listen: { host: '127.0.0.1', port: 0 },
        admin: false,
        proxy: { maxConnections: 1, dataPath },
        logger: pino({ level: 'silent' }),
      })
      try {
        const p = (await capped.ready).listen.port
        const held = await tlsConnect(p, 'b.test', true)
        expect(held.upstream).toBe('B')
        const before = accepts()
        const over = await tlsConnect(p, 'b.test')
        expect(over.upstream).toBeUndefined()
        expect(accepts()).toBe(before)
        expect(capped.proxy!.stats.rejected.get('over-capacity')).toBe(1)
        held.socket!.destroy()
      } finally {
        await capped.shutdown()
      }
    })
  })

  describe('egress proxy admin drain', () => {
    it('egress proxy - /drain_listeners stops accepting but keeps open connections; /quitquitquit exits', async () => {
      const e = runEgress({
        staticFile: join(dir, 'table.json'),
        listen: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        graceMs: 20_000,
        proxy: { dataPath },
        logger: pino({ level: 'silent' }),
      })
      const ready = await e.ready
      const url = `http://127.0.0.1:${ready.admin!.port}`
      const open = await tlsConnect(ready.listen.port, 'b.test', true)
      expect((await fetch(`${url}/drain_listeners`, { method: 'POST' })).status).toBe(200)
      await waitFor(e.actor, (s) => s.matches('draining'))
      expect((await fetch(`${url}/ready`)).status).toBe(503)
      expect((await tlsConnect(ready.listen.port, 'b.test')).error).toBe('ECONNREFUSED')
      open.socket!.write('ping\n')
      expect(await new Promise<string>((r) => open.socket!.once('data', (d) => r(d.toString())))).toBe('ping\n')
      open.socket!.destroy()
      await waitFor(e.actor, (s) => s.matches('drained'))
      expect((await fetch(`${url}/quitquitquit`, { method: 'POST' })).status).toBe(200)
      expect(await e.done).toEqual({ code: 0 })
    })
  })
})

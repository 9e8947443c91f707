import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import { publishZoneTable, readCurrentTable } from '../../reconciler/transport/nats-publisher.js'
import { Bucket, tableKey } from '../../schemas/subjects.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'

/**
 * A table write whose reply is lost (issue #12): the write lands on the (real) nats-server, but its
 * acknowledgement reaches the client only after the client gave up. Between the client and the server, a TCP
 * relay holds back everything the server sends from the moment the client's KV write goes out until a moment after
 * the publish timed out, then delivers it. publishZoneTable must find its write there and return its revision
 * (instead of failing, which made the pass write the same table again).
 */
const log = pino({ level: 'silent' })
const API_TIMEOUT_MS = 500
const HOLD_MS = API_TIMEOUT_MS + 300

/** A relay to `port` that can hold back the server's bytes after the client's next KV table write. */
async function startRelay(
  port: number,
): Promise<{ url: string; holdAfterNextTableWrite(ms?: number): void; close(): void }> {
  let armed = false
  let holdMs = HOLD_MS
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.1')
    sockets.add(client).add(upstream)
    let held: Buffer[] | undefined
    client.on('data', (d) => {
      upstream.write(d)
      if (armed && d.includes(`$KV.${Bucket.Tables}.`)) {
        armed = false
        held = []
        if (Number.isFinite(holdMs))
          setTimeout(() => {
            for (const b of held ?? []) client.write(b)
            held = undefined
          }, holdMs)
      }
    })
    upstream.on('data', (d) => {
      if (held) held.push(d)
      else client.write(d)
    })
    const end = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const addr = server.address()
  const relayPort = typeof addr === 'object' && addr ? addr.port : 0
  return {
    url: `nats://127.0.0.1:${relayPort}`,
    holdAfterNextTableWrite: (ms = HOLD_MS) => {
      armed = true
      holdMs = ms
    },
    close: () => {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

const table = (generation: number, digest: string): PublishedZoneTable => ({
  apiVersion: 'zonegate.io/v1',
  kind: 'ZoneEgressTable',
  zone: 'zone-l',
  generation,
  revision: `main@sha1:${String(generation).repeat(40).slice(0, 40)}`,
  digest,
  egresses: [{ name: 'ze-l', port: 10002 }],
  routes: [],
})

describe('reconciler NATS publisher: a write whose reply is lost', () => {
  let server: NatsServer
  let relay: Awaited<ReturnType<typeof startRelay>>
  let bus: Bus
  beforeAll(async () => {
    server = await startNatsServer()
    relay = await startRelay(server.port)
    bus = await connectBus({ servers: [relay.url], name: 'lost-reply', log, apiTimeoutMs: API_TIMEOUT_MS })
    await ensureNatsLayout(bus)
  })
  afterAll(async () => {
    await bus?.close()
    relay?.close()
    await server?.stop()
  })

  it('publish - a CAS update that landed while its reply was lost resolves to the revision it got, written once', async () => {
    const r1 = await publishZoneTable(bus, table(1, 'sha256:l1'), 0)
    relay.holdAfterNextTableWrite()
    const t0 = Date.now()
    const r2 = await publishZoneTable(bus, table(2, 'sha256:l2'), r1)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(API_TIMEOUT_MS - 50) // the reply was really late
    expect(r2).toBeGreaterThan(r1)
    const history = []
    for await (const e of await bus.kv.tables.history({ key: tableKey('zone-l') })) history.push(e)
    expect(history.map((e) => [e.revision, e.json<PublishedZoneTable>().generation])).toEqual([
      [r1, 1],
      [r2, 2],
    ])
    expect(await readCurrentTable(bus, 'zone-l')).toEqual({
      generation: 2,
      revision: table(2, '').revision,
      digest: 'sha256:l2',
      kvRevision: r2,
    })
  })

  it('publish - a create (expected revision 0) that landed while its reply was lost resolves to its revision', async () => {
    relay.holdAfterNextTableWrite()
    const r = await publishZoneTable(bus, { ...table(1, 'sha256:m1'), zone: 'zone-m' }, 0)
    expect((await bus.kv.tables.get(tableKey('zone-m')))?.revision).toBe(r)
  })

  it('publish - a write refused while its reply was lost still fails, and the key keeps what it had', async () => {
    const cur = await readCurrentTable(bus, 'zone-l')
    relay.holdAfterNextTableWrite()
    // a stale expected revision: the server refuses it (wrong last sequence), and that answer is late too
    await expect(publishZoneTable(bus, table(3, 'sha256:l3'), (cur?.kvRevision ?? 1) - 1)).rejects.toMatchObject({
      code: 'PublishFailed',
    })
    expect(await readCurrentTable(bus, 'zone-l')).toEqual(cur)
  })
  it('publish - a server that stops answering: PublishFailed after the write timeout and at most 1 s of read-back', async () => {
    const slow = await connectBus({ servers: [relay.url], name: 'lost-reply-slow', log, apiTimeoutMs: 3000 })
    try {
      const cur = await readCurrentTable(slow, 'zone-l')
      relay.holdAfterNextTableWrite(Number.POSITIVE_INFINITY)
      const t0 = Date.now()
      await expect(publishZoneTable(slow, table(9, 'sha256:l9'), cur?.kvRevision ?? 0)).rejects.toMatchObject({
        code: 'PublishFailed',
      })
      const ms = Date.now() - t0
      expect(ms).toBeGreaterThanOrEqual(2900)
      expect(ms).toBeLessThan(3000 + 1500) // not a second API timeout for the read-back
    } finally {
      // not drained: the relay never answers this connection again (its socket is destroyed in afterAll)
      void slow.nc.close().catch(() => {})
    }
  })
})

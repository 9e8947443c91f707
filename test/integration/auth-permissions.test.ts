import { readFile, writeFile } from 'node:fs/promises'
import { jetstream } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type NatsAuthOptions, natsConnectOptions } from '../../lib/nats-connect.js'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import { Bucket, certSubject, LEASE_KEY, rolloutInstanceSubject, tableKey } from '../../schemas/subjects.js'
import { type AuthNats, startAuthNats } from '../helpers/nats-auth.js'

/**
 * Zone tokens against a real nats-server 2.9 running the configuration `zonegate auth init` writes
 * (operator, account with a signing key, memory resolver): what each scope may and may not do, expiry at
 * connect, revocation applied by a reload. Every refusal has a matching allowed call (same client, own zone),
 * so a test cannot pass because nothing works at all.
 */
let nats: AuthNats
let rc: Bus
const silent = pino({ level: 'silent' })
const open: NatsConnection[] = []

async function client(auth: NatsAuthOptions, name = 'test'): Promise<NatsConnection> {
  const nc = await connect({ ...auth, servers: nats.url, name, maxReconnectAttempts: 0, timeout: 3000 })
  open.push(nc)
  return nc
}

/** A JetStream/KV client of `nc` with short API timeouts (a refused request may only time out). */
const js = (nc: NatsConnection) => jetstream(nc, { timeout: 1500 })
const tableOf = (zone: string) => JSON.stringify({ zone, generation: 1, routes: [] })

beforeAll(async () => {
  nats = await startAuthNats()
  const r = await nats.token('reconciler')
  rc = await connectBus({ servers: [nats.url], name: 'reconciler', log: silent, auth: r.auth, apiTimeoutMs: 3000 })
  await ensureNatsLayout(rc)
  await rc.kv.tables.put(tableKey('zone-a'), tableOf('zone-a'))
  await rc.kv.tables.put(tableKey('zone-b'), tableOf('zone-b'))
}, 30_000)

afterAll(async () => {
  for (const nc of open) await nc.close().catch(() => {})
  // (the rotation test ends rc's token: close, not drain)
  await rc?.nc.close().catch(() => {})
  await nats?.stop()
})

describe('auth - zone tokens on a real nats-server', () => {
  it('auth - no token, no connection', async () => {
    await expect(connect({ servers: nats.url, maxReconnectAttempts: 0, timeout: 3000 })).rejects.toThrow(
      /Authorization/i,
    )
  })

  it("auth - zone-a's token reads its own table but not zone-b's", async () => {
    const a = await nats.token('egress', { zone: 'zone-a' })
    const nc = await client(a.auth)
    const tables = await new Kvm(js(nc)).open(Bucket.Tables, { allow_direct: true })
    expect((await tables.get(tableKey('zone-a')))?.json()).toMatchObject({ zone: 'zone-a' })
    await expect(tables.get(tableKey('zone-b'))).rejects.toThrow()
    // a watch of zone-b's key (consumer filtered on it) is refused too; zone-a's is not
    const own = await tables.watch({ key: tableKey('zone-a') })
    for await (const e of own) {
      expect(e.key).toBe(tableKey('zone-a'))
      break
    }
    await expect(
      (async () => {
        const w = await tables.watch({ key: tableKey('zone-b') })
        for await (const _ of w) return 'got a value'
      })(),
    ).rejects.toThrow()
    // listing every key (a consumer on the whole bucket) is refused
    await expect(
      (async () => {
        for await (const _ of await tables.keys()) return 'listed'
      })(),
    ).rejects.toThrow()
  })

  it("auth - zone-a's token publishes its own rollout events, not zone-b's", async () => {
    const a = await nats.token('egress', { zone: 'zone-a' })
    const j = js(await client(a.auth))
    const ack = await j.publish(rolloutInstanceSubject('zone-a', 'applied', 'ze-a', 'i1'), '{}')
    expect(ack.stream).toBe('ZONEGATE_EVENTS')
    await expect(j.publish(rolloutInstanceSubject('zone-b', 'applied', 'ze-b', 'i1'), '{}')).rejects.toThrow()
    await expect(j.publish('zonegate.events.rollout.zone-a.converged', '{}')).rejects.toThrow()
    await expect(j.publish('zonegate.events.commit.abc.published', '{}')).rejects.toThrow()
  })

  it("auth - zone-a's token writes its heartbeats but cannot write any table or take the lease", async () => {
    const a = await nats.token('egress', { zone: 'zone-a' })
    const kvm = new Kvm(js(await client(a.auth)))
    const instances = await kvm.open(Bucket.Instances)
    expect(await instances.put('zone-a.ze-a.i1', '{}')).toBeGreaterThan(0)
    await expect(instances.put('zone-b.ze-b.i1', '{}')).rejects.toThrow()
    const tables = await kvm.open(Bucket.Tables)
    await expect(tables.put(tableKey('zone-a'), tableOf('zone-a'))).rejects.toThrow()
    await expect(tables.put(tableKey('zone-b'), tableOf('zone-b'))).rejects.toThrow()
    await expect(tables.delete(tableKey('zone-b'))).rejects.toThrow()
    const leases = await kvm.open(Bucket.Leases)
    await rc.kv.leases.delete(LEASE_KEY).catch(() => {})
    await expect(leases.create(LEASE_KEY, 'intruder')).rejects.toThrow()
    // the tables are untouched and nobody holds the lease
    expect((await rc.kv.tables.get(tableKey('zone-b')))?.json()).toMatchObject({ zone: 'zone-b' })
    const lease = await rc.kv.leases.get(LEASE_KEY)
    expect(lease === null || lease.operation !== 'PUT').toBe(true)
  })

  it("auth - zone-a's token requests certificates for zone-a only", async () => {
    const a = await nats.token('egress', { zone: 'zone-a' })
    const nc = await client(a.auth)
    // the reconciler side answers every zone's requests
    const sub = rc.nc.subscribe('zonegate.cmd.cert.*')
    void (async () => {
      for await (const m of sub) m.respond(`ok ${m.subject}`)
    })()
    await rc.nc.flush()
    expect((await nc.request(certSubject('zone-a'), 'csr', { timeout: 2000 })).string()).toBe(
      'ok zonegate.cmd.cert.zone-a',
    )
    await expect(nc.request(certSubject('zone-b'), 'csr', { timeout: 1500 })).rejects.toThrow()
    sub.unsubscribe()
  })

  it('auth - a viewer reads status and events but cannot write, trigger or read CA keys', async () => {
    await rc.kv.status.put('reconciler', '{"ok":true}')
    await rc.kv.ca.put('default.ca', '{"key":"secret"}')
    const v = await nats.token('viewer')
    const nc = await client(v.auth)
    const kvm = new Kvm(js(nc))
    const status = await kvm.open(Bucket.Status)
    expect((await status.get('reconciler'))?.json()).toEqual({ ok: true })
    await expect(status.put('reconciler', '{}')).rejects.toThrow()
    const tables = await kvm.open(Bucket.Tables)
    expect((await tables.get(tableKey('zone-b')))?.json()).toMatchObject({ zone: 'zone-b' })
    await expect(tables.put(tableKey('zone-b'), '{}')).rejects.toThrow()
    await expect((await kvm.open(Bucket.Leases)).create(LEASE_KEY, 'viewer')).rejects.toThrow()
    await expect((await kvm.open(Bucket.Ca)).get('default.ca')).rejects.toThrow()
    await expect(js(nc).publish('zonegate.events.commit.abc.published', '{}')).rejects.toThrow()
    await expect(nc.request('zonegate.cmd.reconcile', '{}', { timeout: 1500 })).rejects.toThrow()
  })

  it('auth - an expired token is refused at connect', async () => {
    const t = await nats.token('egress', { zone: 'zone-a', validForMs: 4000 }) // exp has 1 s granularity: under load 1 s could expire before the options are built
    await new Promise((r) => setTimeout(r, 5100))
    await expect(connect({ ...t.auth, servers: nats.url, maxReconnectAttempts: 0, timeout: 3000 })).rejects.toThrow(
      /expired|Authorization/i,
    )
  })

  it('auth - a revoked token is refused after the reload (its open connection dropped); others keep working', async () => {
    const bad = await nats.token('egress', { zone: 'zone-a' })
    const good = await nats.token('egress', { zone: 'zone-a' })
    const held = await connect({ ...bad.auth, servers: nats.url, maxReconnectAttempts: 0, timeout: 3000 })
    await nats.revoke(bad.user)
    // nats-server 2.9.10 also drops the revoked user's open connection when the account JWT is updated
    const dropped = await Promise.race([
      held.closed().then(() => 'closed'),
      new Promise((r) => setTimeout(() => r('still open'), 3000)),
    ])
    expect(dropped).toBe('closed')
    await expect(connect({ ...bad.auth, servers: nats.url, maxReconnectAttempts: 0, timeout: 3000 })).rejects.toThrow(
      /revoked|Authorization/i,
    )
    const ok = await client(good.auth)
    const tables = await new Kvm(js(ok)).open(Bucket.Tables, { allow_direct: true })
    expect((await tables.get(tableKey('zone-a')))?.json()).toMatchObject({ zone: 'zone-a' })
  })

  it('auth - a renewed .creds file is used at the reconnect after the old token expired', async () => {
    const short = await nats.token('egress', { zone: 'zone-a', validForMs: 2000 })
    const longer = await nats.token('egress', { zone: 'zone-a' })
    // the command's options read short.file: replace its content before the token expires
    const auth = await natsConnectOptions({ creds: short.file })
    const nc = await connect({ ...auth, servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
    open.push(nc)
    await writeFile(short.file, await readFile(longer.file))
    const reconnected = (async () => {
      for await (const s of nc.status()) if (s.type === 'reconnect') return true
      return false
    })()
    expect(await Promise.race([reconnected, new Promise((r) => setTimeout(() => r('no reconnect'), 8000))])).toBe(true)
    const tables = await new Kvm(js(nc)).open(Bucket.Tables, { allow_direct: true })
    expect((await tables.get(tableKey('zone-a')))?.json()).toMatchObject({ zone: 'zone-a' })
  })

  it('auth - signing key rotation: old tokens work until --finish, then only new ones', async () => {
    const old = await nats.token('viewer')
    await nats.rotate(false)
    const fresh = await nats.token('viewer')
    const readStatus = async (auth: NatsAuthOptions) => {
      const nc = await connect({ ...auth, servers: nats.url, maxReconnectAttempts: 0, timeout: 3000 })
      try {
        return (await (await new Kvm(js(nc)).open(Bucket.Tables)).get(tableKey('zone-a')))?.json()
      } finally {
        await nc.close()
      }
    }
    expect(await readStatus(old.auth)).toMatchObject({ zone: 'zone-a' })
    expect(await readStatus(fresh.auth)).toMatchObject({ zone: 'zone-a' })
    await nats.rotate(true)
    await expect(readStatus(old.auth)).rejects.toThrow(/Authorization/i)
    expect(await readStatus(fresh.auth)).toMatchObject({ zone: 'zone-a' })
  })
})

import { Kvm } from '@nats-io/kv'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import { layoutStreams } from '../../reconciler/transport/nats-migrate.js'
import { Bucket, EVENTS_STREAM } from '../../schemas/subjects.js'
import { runCli } from '../helpers/cli.js'
import { type NatsCluster, startNatsCluster } from '../helpers/nats-cluster.js'

const log = pino({ level: 'silent' })

const streamsOf = () => [...Object.values(Bucket).map((b) => `KV_${b}`), EVENTS_STREAM]

/**
 * The layout on a real 3-node nats-server 2.9 cluster: default R3, the report of a layout created with other
 * replicas, `zonegate nats migrate` scaling it in place, and data surviving the loss of a node's store.
 */
describe('nats cluster layout', () => {
  let cluster: NatsCluster
  let bus: Bus
  beforeAll(async () => {
    cluster = await startNatsCluster()
    bus = await connectBus({ servers: cluster.urls, name: 'test', log })
  })
  afterAll(async () => {
    await bus?.close()
    await cluster?.stop()
  })

  it('nats cluster - the helper runs three JetStream nodes that see each other', async () => {
    expect(cluster.nodes).toHaveLength(3)
    expect(new Set(cluster.nodes.map((n) => n.pid)).size).toBe(3)
    expect(bus.nc.info?.cluster).toBeTruthy()
    const res = await fetch(`http://127.0.0.1:${cluster.nodes[0]!.monitorPort}/routez`)
    expect(((await res.json()) as { num_routes: number }).num_routes).toBeGreaterThanOrEqual(2)
  })

  it('nats cluster - ensureNatsLayout creates every bucket and the stream with R3 by default', async () => {
    const report = await ensureNatsLayout(bus)
    expect(report.mismatches).toEqual([])
    for (const name of streamsOf()) {
      const info = await bus.jsm.streams.info(name)
      expect(info.config.num_replicas, name).toBe(3)
      await vi.waitFor(
        async () => {
          const c = (await bus.jsm.streams.info(name)).cluster
          expect(c?.leader, name).toBeTruthy()
          expect(c?.replicas?.length, name).toBe(2)
        },
        { timeout: 15_000, interval: 200 },
      )
    }
    expect(await ensureNatsLayout(bus)).toEqual({ created: [], mismatches: [] })
  })

  it('nats cluster - an R1 layout is reported and `zonegate nats migrate` scales it to R3 in place', async () => {
    // a bucket created R1 by an older version, holding a value
    const kv = await new Kvm(bus.js).create('zonegate-r1-check', { history: 1, replicas: 1 })
    await kv.put('k', 'kept')
    for (const s of streamsOf()) await bus.jsm.streams.update(s, { num_replicas: 1 }).catch(() => {})
    const report = await ensureNatsLayout(bus)
    expect(report.mismatches).toContain(
      `${Bucket.Tables}: replicas 1 (asked 3; \`zonegate nats migrate --replicas 3\` changes it)`,
    )
    expect(report.mismatches.some((m) => m.startsWith(`${EVENTS_STREAM}: replicas 1`))).toBe(true)
    await bus.kv.tables.put('zone-a.table', '{"kept":true}')

    const out = await runCli(['nats', 'migrate', ...cluster.urls.flatMap((u) => ['--nats', u])])
    expect(out.stderr).toBe('')
    expect(out.code).toBe(0)
    expect(out.stdout).toContain(`KV_${Bucket.Tables}: replicas 1 → 3`)
    expect(out.stdout).toContain(`${EVENTS_STREAM}: replicas 1 → 3`)
    for (const s of layoutStreams()) expect((await bus.jsm.streams.info(s)).config.num_replicas, s).toBe(3)
    expect(await ensureNatsLayout(bus)).toEqual({ created: [], mismatches: [] })
    expect((await bus.kv.tables.get('zone-a.table'))?.string()).toBe('{"kept":true}')

    const again = await runCli(['nats', 'migrate', '--nats', cluster.urls.join(',')])
    expect(again.code).toBe(0)
    expect(again.stdout).toContain(`KV_${Bucket.Tables}: replicas 3 (unchanged)`)
    const bad = await runCli(['nats', 'migrate', '--replicas', '9', '--nats', cluster.urls[0]!])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--replicas: expected 1 to 5')
  })

  it('nats cluster - an R3 table survives a node killed and restarted with a wiped store', async () => {
    await vi.waitFor(
      async () => {
        const c = (await bus.jsm.streams.info(`KV_${Bucket.Tables}`)).cluster
        expect(c?.replicas?.every((r) => r.current)).toBe(true)
      },
      { timeout: 20_000, interval: 200 },
    )
    const leader = await cluster.streamLeader(`KV_${Bucket.Tables}`)
    await cluster.kill(leader)
    expect(cluster.nodes[leader]!.running).toBe(false)
    await vi.waitFor(async () => expect((await bus.kv.tables.get('zone-a.table'))?.string()).toBe('{"kept":true}'), {
      timeout: 20_000,
      interval: 250,
    })
    await cluster.restart(leader, { wipe: true })
    expect(cluster.nodes[leader]!.running).toBe(true)
    // the wiped node catches up from its peers: the table is back on all three
    await vi.waitFor(
      async () => {
        const c = (await bus.jsm.streams.info(`KV_${Bucket.Tables}`)).cluster
        expect(c?.replicas?.length).toBe(2)
        expect(c?.replicas?.every((r) => r.current)).toBe(true)
      },
      { timeout: 30_000, interval: 300 },
    )
    expect((await bus.kv.tables.get('zone-a.table'))?.string()).toBe('{"kept":true}')
  })
})

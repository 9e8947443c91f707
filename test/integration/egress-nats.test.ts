import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import { loadSavedTable } from '../../egress/transport/state-store.js'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import type { InstanceHeartbeat, RolloutAppliedEvent, RolloutRejectedEvent } from '../../schemas/events.js'
import { instanceKey, rolloutSubjects, tableKey } from '../../schemas/subjects.js'
import type { ZoneTable } from '../../schemas/table.js'
import { startUpstream, tableOf, tlsConnect, type Upstream } from '../helpers/egress-fixtures.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { waitFor } from '../helpers/procfile.js'

/**
 * Egress NATS mode against a real nats-server and real TLS upstreams: tables are written to KV the way the
 * reconciler writes them (create/update with CAS), events and heartbeats are read back from NATS.
 */
let nats: NatsServer
let bus: Bus
let watcher: NatsConnection
let events: Subscription
const seen: (RolloutAppliedEvent | RolloutRejectedEvent)[] = []
let a: Upstream
let b: Upstream
let stateDir: string
let egress: EgressHandle
let proxyPort: number
let adminUrl: string
let kvRev = 0
const running: EgressHandle[] = []
const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })

const table = (g: number, port: number): ZoneTable => ({
  ...tableOf([{ sni: 'svc.test', upstreams: [{ port }] }], g),
  revision: `main@sha1:${g.toString(16).padStart(40, '0')}`,
})

/** Writes like the reconciler: create for the first value, update with the last KV revision after. */
async function publish(value: ZoneTable | string): Promise<void> {
  const text = typeof value === 'string' ? value : JSON.stringify(value)
  kvRev =
    kvRev === 0
      ? await bus.kv.tables.create(tableKey('zone-a'), text)
      : await bus.kv.tables.update(tableKey('zone-a'), text, kvRev)
}

function start(instance: string, opts: { listen?: number } = {}): EgressHandle {
  const e = runEgress({
    nats: { servers: [nats.url], stateDir, heartbeatMs: 300 },
    zone: 'zone-a',
    name: 'ze-a',
    instance,
    listen: { host: '127.0.0.1', port: opts.listen ?? 0 },
    admin: { host: '127.0.0.1', port: 0 },
    logger: silent,
    graceMs: 500,
  })
  running.push(e)
  return e
}

const dump = async (url: string) =>
  (await (await fetch(`${url}/config_dump`)).json()) as {
    state: string
    generation: number | null
    nats: { connected: boolean; kvRevision: number; zoneRemoved: unknown }
  }
const answer = async (port: number) => (await tlsConnect(port, 'svc.test')).upstream

async function heartbeat(instance: string): Promise<InstanceHeartbeat | undefined> {
  const e = await bus.kv.instances.get(instanceKey('zone-a', 'ze-a', instance))
  return e?.operation === 'PUT' ? e.json<InstanceHeartbeat>() : undefined
}

beforeAll(async () => {
  ;[a, b, nats] = await Promise.all([startUpstream('A'), startUpstream('B'), startNatsServer()])
  stateDir = await mkdtemp(join(tmpdir(), 'egress-nats-state-'))
  bus = await connectBus({ servers: [nats.url], name: 'test-writer', log: silent })
  await ensureNatsLayout(bus)
  watcher = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
  events = watcher.subscribe(rolloutSubjects('zone-a'), {
    callback: (_err, m) => {
      seen.push(m.json())
    },
  })
})

afterAll(async () => {
  for (const e of running) await e.shutdown()
  events?.unsubscribe()
  await watcher?.close()
  await bus?.close()
  await nats?.stop()
  await Promise.all([a?.close(), b?.close()])
  await rm(stateDir, { recursive: true, force: true })
})

describe('egress NATS mode', () => {
  it('egress nats - applies the KV table before /ready is 200, routes, heartbeats and reports applied', async () => {
    await publish(table(1, a.port))
    egress = start('e1')
    const { listen, admin } = await egress.ready
    proxyPort = listen.port
    adminUrl = `http://127.0.0.1:${admin!.port}`
    expect((await fetch(`${adminUrl}/ready`)).status).toBe(200)
    const d = await dump(adminUrl)
    expect(d).toMatchObject({ state: 'serving', generation: 1, nats: { connected: true, kvRevision: kvRev } })
    expect(await answer(proxyPort)).toBe('A')
    await waitFor('applied gen 1', () => seen.some((e) => e.type === 'rollout.applied' && e.generation === 1), 5000)
    await waitFor('heartbeat', async () => (await heartbeat('e1'))?.generation === 1, 5000)
    const hb = await heartbeat('e1')
    expect(hb).toMatchObject({ state: 'serving', digest: table(1, a.port).digest, listen: `127.0.0.1:${proxyPort}` })
    // the state file is written after the swap, asynchronously
    await waitFor(
      'gen 1 saved',
      async () => ((await loadSavedTable(stateDir, 'zone-a')) as ZoneTable | undefined)?.generation === 1,
      5000,
    )
    const saved = (await loadSavedTable(stateDir, 'zone-a')) as ZoneTable
    expect(saved.generation).toBe(1)
  })

  it('egress nats - an update swaps the table, publishes applied and heartbeats the new digest', async () => {
    const t2 = table(2, b.port)
    await publish(t2)
    await waitFor('route to B', async () => (await answer(proxyPort)) === 'B', 5000)
    await waitFor('applied gen 2', () => seen.some((e) => e.type === 'rollout.applied' && e.generation === 2), 5000)
    const ev = seen.find((e) => e.type === 'rollout.applied' && e.generation === 2) as RolloutAppliedEvent
    expect(ev).toMatchObject({ zone: 'zone-a', egress: 'ze-a', instance: 'e1', digest: t2.digest })
    expect(ev.swapMs).toBeGreaterThanOrEqual(0)
    await waitFor('heartbeat gen 2', async () => (await heartbeat('e1'))?.digest === t2.digest, 5000)
  })

  it('egress nats - an invalid table is rejected with an event; the old one keeps serving', async () => {
    await publish({ ...table(3, a.port), digest: `sha256:${'0'.repeat(64)}` })
    await waitFor('rejected', () => seen.some((e) => e.type === 'rollout.rejected'), 5000)
    const ev = seen.find((e) => e.type === 'rollout.rejected') as RolloutRejectedEvent
    expect(ev).toMatchObject({ instance: 'e1', generation: 3 })
    expect(ev.reason).toMatch(/^digest-mismatch/)
    expect(await answer(proxyPort)).toBe('B')
    expect((await dump(adminUrl)).generation).toBe(2)
  })

  it('egress nats - NATS killed: degraded, still serving; a table written after the restart is applied', async () => {
    await nats.kill()
    await waitFor('degraded', async () => (await dump(adminUrl)).state === 'degraded', 5000)
    expect((await fetch(`${adminUrl}/ready`)).status).toBe(200)
    expect(await answer(proxyPort)).toBe('B')
    await nats.restart()
    await waitFor('serving again', async () => (await dump(adminUrl)).state === 'serving', 10_000)
    await waitFor('writer reconnected', () => !bus.nc.isClosed() && bus.nc.getServer() !== '', 5000)
    await waitFor('write after restart', () => publish(table(4, a.port)).then(() => true), 10_000)
    await waitFor('route to A', async () => (await answer(proxyPort)) === 'A', 10_000)
    expect((await dump(adminUrl)).generation).toBe(4)
    // the state file is written after the swap, asynchronously: the next test starts an egress from it
    await waitFor(
      'gen 4 saved',
      async () => ((await loadSavedTable(stateDir, 'zone-a')) as ZoneTable | undefined)?.generation === 4,
      5000,
    )
  })

  it('egress nats - started while NATS is down, it serves its saved table (degraded), then resyncs', async () => {
    await nats.kill()
    const late = start('e2')
    const { listen, admin } = await late.ready
    const url = `http://127.0.0.1:${admin!.port}`
    expect(await dump(url)).toMatchObject({ state: 'degraded', generation: 4, nats: { connected: false } })
    expect(await answer(listen.port)).toBe('A')
    await nats.restart()
    await waitFor('late egress connected', async () => (await dump(url)).state === 'serving', 10_000)
    await waitFor('write', () => publish(table(5, b.port)).then(() => true), 10_000)
    await waitFor('both on B', async () => (await answer(listen.port)) === 'B' && (await answer(proxyPort)) === 'B')
    await late.shutdown()
    await waitFor('heartbeat removed on stop', async () => (await heartbeat('e2')) === undefined, 5000)
  })

  it('egress nats - a deleted zone key keeps the table; the re-created zone starts again at generation 1', async () => {
    await bus.kv.tables.delete(tableKey('zone-a'), { previousSeq: kvRev })
    await waitFor('zoneRemoved', async () => (await dump(adminUrl)).nats.zoneRemoved !== null, 5000)
    expect(await answer(proxyPort)).toBe('B')
    kvRev = 0
    await publish(table(1, a.port))
    await waitFor('re-created zone applied', async () => (await answer(proxyPort)) === 'A', 5000)
    expect(await dump(adminUrl)).toMatchObject({ generation: 1, nats: { zoneRemoved: null } })
  })

  it('egress nats - a server restarted with a wiped store: the watch is recreated and generation 1 is applied', async () => {
    const t = table(2, b.port)
    await publish(t)
    await waitFor('on B', async () => (await answer(proxyPort)) === 'B', 5000)
    await nats.kill()
    await rm(nats.storeDir, { recursive: true, force: true })
    await nats.restart()
    await waitFor('writer reconnected', () => ensureNatsLayout(bus).then(() => true), 10_000)
    kvRev = 0
    await publish(table(1, a.port))
    await waitFor('generation 1 after the wipe', async () => (await answer(proxyPort)) === 'A', 10_000)
    expect(await dump(adminUrl)).toMatchObject({ state: 'serving', generation: 1, nats: { kvRevision: kvRev } })
  })
})

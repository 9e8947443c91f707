import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Objm } from '@nats-io/obj'
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { CompactZoneTable, TableReleasedError } from '../../egress/core/compact-table.js'
import { admitTable } from '../../egress/lifecycle/egress-context.js'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import { stateFilePath } from '../../egress/transport/state-store.js'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import { publishZoneTable, readPublishedTables } from '../../reconciler/transport/nats-publisher.js'
import type { RolloutAppliedEvent, RolloutRejectedEvent } from '../../schemas/events.js'
import { rolloutSubjects, TABLE_BODIES_BUCKET, tableKey, tableObjectName } from '../../schemas/subjects.js'
import { encodeTableBody, type TableHead } from '../../schemas/table-transport.js'
import { startUpstream, tlsConnect, type Upstream } from '../helpers/egress-fixtures.js'
import { largeTable } from '../helpers/large-table.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'

/**
 * Tables larger than one NATS message (max_payload, 1 MiB by default): the reconciler's publisher stores the
 * body in the object store and a head in KV; a real egress fetches, verifies and serves it; a body that does not
 * match its head is rejected while the last table keeps serving; an egress that only knows envelopes rejects a
 * head instead of misreading it.
 */
const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })
const N = 20_000 // ≈3.5 MB of JSON: well over max_payload, quick on a loaded machine

let nats: NatsServer
let bus: Bus
let up: Upstream
let egress: EgressHandle
let stateDir: string
let watcher: NatsConnection
let sub: Subscription
const seen: (RolloutAppliedEvent | RolloutRejectedEvent)[] = []
const svc = (port: number) => ({
  sni: 'svc.test',
  mesh: 'default',
  service: 'svc',
  kind: 'cross-zone' as const,
  mode: 'passthrough' as const,
  upstreams: [{ address: '127.0.0.1', port, weight: 1 }],
})
const dump = async (url: string) =>
  (await (await fetch(`${url}/config_dump`)).json()) as { state: string; generation: number | null }

beforeAll(async () => {
  ;[up, nats] = await Promise.all([startUpstream('U'), startNatsServer()])
  stateDir = await mkdtemp(join(tmpdir(), 'large-table-state-'))
  bus = await connectBus({ servers: [nats.url], name: 'test-writer', log: silent })
  await ensureNatsLayout(bus)
  watcher = await connect({ servers: nats.url })
  sub = watcher.subscribe(rolloutSubjects('zone-a'), {
    callback: (_e, m) => {
      seen.push(m.json())
    },
  })
})

afterAll(async () => {
  await egress?.shutdown()
  sub?.unsubscribe()
  await watcher?.close()
  await bus?.close()
  await nats?.stop()
  await up?.close()
  await rm(stateDir, { recursive: true, force: true })
})

describe('large tables', () => {
  it('large table - over max_payload: body in the object store, head in KV, served by a real egress', async () => {
    const t1 = largeTable(N, { extra: [svc(up.port)] })
    expect(JSON.stringify(t1).length).toBeGreaterThan(bus.nc.info!.max_payload)
    const rev = await publishZoneTable(bus, t1, 0)
    const head = (await bus.kv.tables.get(tableKey('zone-a')))!.json<TableHead>()
    expect(head).toMatchObject({
      kind: 'ZoneEgressTableRef',
      zone: 'zone-a',
      generation: 1,
      digest: t1.digest,
      object: { bucket: TABLE_BODIES_BUCKET, name: tableObjectName('zone-a', 1), encoding: 'gzip' },
    })
    expect(head.object.storedSize).toBeLessThan(head.object.size / 4)
    // the reconciler's inventory sees the envelope, not the head
    const inv = await readPublishedTables(bus)
    expect(inv.get('zone-a')).toMatchObject({ kvRevision: rev, table: { digest: t1.digest, generation: 1 } })
    expect(inv.get('zone-a')?.table.routes).toHaveLength(N + 1)

    egress = runEgress({
      nats: { servers: [nats.url], stateDir, heartbeatMs: 500 },
      zone: 'zone-a',
      name: 'ze-a',
      instance: 'e1',
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      logger: silent,
      graceMs: 500,
    })
    const { listen, admin } = await egress.ready
    const adminUrl = `http://127.0.0.1:${admin!.port}`
    expect(await dump(adminUrl)).toMatchObject({ state: 'serving', generation: 1 })
    expect((await tlsConnect(listen.port, 'svc.test')).upstream).toBe('U')
    await vi.waitFor(() => expect(seen.some((e) => e.type === 'rollout.applied' && e.generation === 1)).toBe(true), {
      timeout: 10_000,
    })
  })

  it('large table - a body that does not match its head is rejected; the last table keeps serving', async () => {
    const t2 = largeTable(N, { generation: 2, extra: [svc(up.port)], salt: 'x' })
    const name = tableObjectName('zone-a', 2)
    const { head } = encodeTableBody(JSON.stringify(t2), t2, { bucket: TABLE_BODIES_BUCKET, name })
    // a different (valid gzip) body under the name the head gives
    const other = largeTable(10, { generation: 2 })
    const store = await new Objm(bus.js).open(TABLE_BODIES_BUCKET)
    await store.putBlob(
      { name },
      encodeTableBody(JSON.stringify(other), other, { bucket: TABLE_BODIES_BUCKET, name }).body,
    )
    const e = (await bus.kv.tables.get(tableKey('zone-a')))!
    await bus.kv.tables.update(tableKey('zone-a'), JSON.stringify(head), e.revision)
    await vi.waitFor(
      () => {
        const r = seen.find((x) => x.type === 'rollout.rejected' && x.generation === 2) as RolloutRejectedEvent
        expect(r?.reason).toMatch(/^body-mismatch: zone-a.table.2: \d+ bytes stored, head says \d+/)
      },
      { timeout: 15_000 },
    )
    expect(seen.some((x) => x.type === 'rollout.applied' && x.generation === 2)).toBe(false)
    const { admin, listen } = await egress.ready
    expect(await dump(`http://127.0.0.1:${admin!.port}`)).toMatchObject({ state: 'serving', generation: 1 })
    expect((await tlsConnect(listen.port, 'svc.test')).upstream).toBe('U')

    // the real publisher overwrites generation 2's body: applied
    const gen1 = egress.actor.getSnapshot().context.table
    expect(gen1).toBeInstanceOf(CompactZoneTable)
    const e2 = (await bus.kv.tables.get(tableKey('zone-a')))!
    await publishZoneTable(bus, t2, e2.revision)
    await vi.waitFor(() => expect(seen.some((x) => x.type === 'rollout.applied' && x.generation === 2)).toBe(true), {
      timeout: 15_000,
    })
    // the replaced table's buffers are released (decision 012); the new one serves, and is the one saved whole
    const old = (gen1 as CompactZoneTable).compact
    expect(old.released).toBe(true)
    expect(old.json.buffer.byteLength).toBe(0)
    expect(() => (gen1 as CompactZoneTable).routes).toThrow(TableReleasedError)
    expect(await dump(`http://127.0.0.1:${admin!.port}`)).toMatchObject({ state: 'serving', generation: 2 })
    expect((await tlsConnect(listen.port, 'svc.test')).upstream).toBe('U')
    await vi.waitFor(
      async () => {
        const saved = JSON.parse(await readFile(stateFilePath(stateDir, 'zone-a'), 'utf8')) as typeof t2
        expect(saved.generation).toBe(2)
        expect(saved.digest).toBe(t2.digest)
        expect(saved.routes).toEqual(t2.routes)
      },
      { timeout: 10_000 },
    )
  })

  it('large table - an egress that only knows envelopes rejects a head cleanly', () => {
    const t = largeTable(3)
    const { head } = encodeTableBody(JSON.stringify(t), t, { bucket: TABLE_BODIES_BUCKET, name: 'x' })
    const a = admitTable(undefined, head, 'nats', 'zone-a')
    expect(a.ok).toBe(false)
    expect(a).toMatchObject({ reason: 'invalid', generation: 1, digest: t.digest })
  })

  it('large table - bodies older than three generations are deleted; small tables go back inline', async () => {
    let rev = (await bus.kv.tables.get(tableKey('zone-a')))!.revision
    for (let g = 3; g <= 5; g++) rev = await publishZoneTable(bus, largeTable(N, { generation: g, salt: `${g}` }), rev)
    const store = await new Objm(bus.js).open(TABLE_BODIES_BUCKET)
    const names = (await store.list()).filter((o) => !o.deleted).map((o) => o.name)
    expect(names.sort()).toEqual([3, 4, 5].map((g) => tableObjectName('zone-a', g)))
    const small = largeTable(5, { generation: 6, extra: [svc(up.port)] })
    await publishZoneTable(bus, small, rev)
    expect((await bus.kv.tables.get(tableKey('zone-a')))!.json<{ kind: string }>().kind).toBe('ZoneEgressTable')
    await vi.waitFor(() => expect(seen.some((x) => x.type === 'rollout.applied' && x.generation === 6)).toBe(true), {
      timeout: 15_000,
    })
  })
})

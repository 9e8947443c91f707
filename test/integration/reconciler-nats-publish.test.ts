import { gunzipSync } from 'node:zlib'
import { StorageType } from '@nats-io/jetstream'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PublishConflict, PublishFailed } from '../../reconciler/core/errors.js'
import { commitFetchedEvent, commitPublishedEvent } from '../../reconciler/core/events.js'
import { createPassDeps } from '../../reconciler/pass-deps.js'
import { initialPassState } from '../../reconciler/pass-state.js'
import { publishStep } from '../../reconciler/steps/publish-step.js'
import { diffStep } from '../../reconciler/steps/steps.js'
import type { PassContext } from '../../reconciler/steps/types.js'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import {
  emitEvent,
  publishEvent,
  publishZoneTable,
  readPublishedTables,
  removeZoneTable,
} from '../../reconciler/transport/nats-publisher.js'
import { generateSigningKey, loadSigningKey } from '../../schemas/signing.js'
import { Bucket, EVENTS_STREAM, tableKey } from '../../schemas/subjects.js'
import type { PublishedZoneTable, ZoneTable } from '../../schemas/table.js'
import { type TableHead, tableEnvelopeJson } from '../../schemas/table-transport.js'
import { largeTable } from '../helpers/large-table.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'

const log = pino({ level: 'silent' })
const SHA = 'a'.repeat(40)
const REV = `main@sha1:${SHA}`

function table(zone: string, generation: number, digest = `sha256:${generation}`): PublishedZoneTable {
  return {
    apiVersion: 'zonegate.io/v1',
    kind: 'ZoneEgressTable',
    zone,
    generation,
    revision: REV,
    digest,
    egresses: [{ name: 'ze-1', port: 10002 }],
    routes: [],
  }
}

describe('reconciler NATS publisher', () => {
  let server: NatsServer
  let bus: Bus
  beforeAll(async () => {
    server = await startNatsServer()
    bus = await connectBus({ servers: [server.url], name: 'test', log })
    await ensureNatsLayout(bus)
  })
  afterAll(async () => {
    await bus?.close()
    await server?.stop()
  })

  it('nats layout - creation is idempotent and has the settings of docs/design.md §3', async () => {
    const again = await ensureNatsLayout(bus)
    expect(again).toEqual({ created: [], mismatches: [] })
    const cfg = async (name: string) => (await bus.jsm.streams.info(name)).config
    const tables = await cfg(`KV_${Bucket.Tables}`)
    expect(tables.max_msgs_per_subject).toBe(10)
    expect(tables.storage).toBe(StorageType.File)
    expect((await cfg(`KV_${Bucket.Instances}`)).max_age).toBe(30e9)
    const leases = await cfg(`KV_${Bucket.Leases}`)
    expect(leases.max_age).toBe(15e9)
    expect(leases.max_msgs_per_subject).toBe(1)
    expect((await cfg(`KV_${Bucket.Status}`)).max_msgs_per_subject).toBeGreaterThanOrEqual(1)
    const events = await cfg(EVENTS_STREAM)
    expect(events.subjects).toEqual(['zonegate.events.>'])
    expect(events.max_age).toBe(7 * 24 * 3600 * 1e9)
    expect(events.duplicate_window).toBe(120e9)
  })

  it('nats layout - a second process sees existing buckets as created, with no mismatch', async () => {
    const other = await connectBus({ servers: [server.url], name: 'test-2', log })
    try {
      expect(await ensureNatsLayout(other)).toEqual({ created: [], mismatches: [] })
      expect(await ensureNatsLayout(other, { leasesTtlMs: 1000 })).toEqual({
        created: [],
        mismatches: [`${Bucket.Leases}: ttl 15000ms`],
      })
    } finally {
      await other.close()
    }
  })

  it('publish - create, CAS update, and conflict on a stale revision', async () => {
    expect((await readPublishedTables(bus)).size).toBe(0) // empty bucket: returns at once, no fetch timeout
    const r1 = await publishZoneTable(bus, table('zone-a', 1), 0)
    expect(r1).toBeGreaterThan(0)
    const r2 = await publishZoneTable(bus, table('zone-a', 2), r1)
    expect(r2).toBeGreaterThan(r1)
    const stale = publishZoneTable(bus, table('zone-a', 3), r1)
    await expect(stale).rejects.toBeInstanceOf(PublishConflict)
    await expect(publishZoneTable(bus, table('zone-a', 3), 0)).rejects.toMatchObject({
      code: 'PublishConflict',
      key: tableKey('zone-a'),
      expectedRevision: 0,
    })
    const e = await bus.kv.tables.get(tableKey('zone-a'))
    expect(e?.json<PublishedZoneTable>().generation).toBe(2)
    expect(e?.revision).toBe(r2)
  })

  it('publish - a table over max_payload is written to the object store with a head in KV (no TableTooLarge)', async () => {
    const max = bus.nc.info?.max_payload ?? 0
    expect(max).toBeGreaterThan(0)
    const big = { ...table('zone-big', 1, `sha256:${'b'.repeat(64)}`), routes: [] as PublishedZoneTable['routes'] }
    big.egresses = Array.from({ length: Math.ceil(max / 20) }, (_, i) => ({ name: `egress-${i}`, port: 1 }))
    await publishZoneTable(bus, big, 0)
    const head = (await bus.kv.tables.get(tableKey('zone-big')))?.json<{ kind: string; object: { name: string } }>()
    expect(head).toMatchObject({ kind: 'ZoneEgressTableRef', object: { name: 'zone-big.table.1' } })
    expect((await readPublishedTables(bus)).get('zone-big')?.table.egresses).toHaveLength(big.egresses.length)
    await bus.kv.tables.purge(tableKey('zone-big'))
  })

  it('publish - the pass serialises a table once (diff measures, publish writes that string): the bytes are tableEnvelopeJson, as before', async () => {
    const signer = loadSigningKey(generateSigningKey().seed)
    const deps = createPassDeps({
      opts: { branch: 'main', allowEmpty: false, defaultZone: 'default' },
      signer,
      source: undefined as never, // not read by diff and publish
      bus,
      log,
    })
    const unpublished = (t: PublishedZoneTable): ZoneTable => {
      const { generation: _g, revision: _r, ...rest } = t
      return rest
    }
    // one inline table, one over max_payload (object store body)
    const tables = [largeTable(20, { zone: 'zone-once-small' }), largeTable(20_000, { zone: 'zone-once-large' })]
    const ctx: PassContext = {
      deps,
      state: { ...initialPassState(), inventory: new Map() }, // only these two zones: the others stay as they are
      hooks: { signal: new AbortController().signal, fetched: () => {}, publishing: () => {} },
      log,
      sha: SHA,
      revision: REV,
      tables: tables.map(unpublished),
    }
    expect(await diffStep(ctx)).toEqual({ value: undefined })
    const plan = ctx.plan!
    expect(plan.map((c) => c.change)).toEqual(['added', 'added'])
    for (const c of plan)
      expect(c.change !== 'removed' && c.json).toBe(tableEnvelopeJson((c as { table: ZoneTable }).table))
    expect(await publishStep(ctx)).toEqual({ value: undefined })
    for (const c of plan) {
      if (c.change === 'removed') throw new Error('no zone removed here')
      expect(c.json).toBeUndefined() // not kept once written
      // what the publisher wrote before it was handed the string: tableEnvelopeJson of the (signed) envelope
      const before = tableEnvelopeJson(c.table)
      expect(c.table.signature).toBeDefined()
      const raw = Buffer.from((await bus.kv.tables.get(tableKey(c.zone)))!.value).toString('utf8')
      if (c.zone === 'zone-once-small') expect(raw).toBe(before)
      else {
        const head = JSON.parse(raw) as TableHead
        expect(head.kind).toBe('ZoneEgressTableRef')
        const body = await (await bus.tableBodies()).getBlob(head.object.name)
        expect(gunzipSync(body!).toString('utf8')).toBe(before)
      }
      await bus.kv.tables.purge(tableKey(c.zone)) // the tests below count the zones in the bucket
    }
  })

  it('inventory - read back with KV revisions; removed zones are excluded and can be re-created', async () => {
    const rb = await publishZoneTable(bus, table('zone-b', 1, 'sha256:b'), 0)
    const rc = await publishZoneTable(bus, table('zone-c', 4, 'sha256:c'), 0)
    await expect(removeZoneTable(bus, 'zone-c', rc - 1)).rejects.toBeInstanceOf(PublishConflict)
    await removeZoneTable(bus, 'zone-c', rc)
    const inv = await readPublishedTables(bus)
    expect(inv.has('zone-c')).toBe(false)
    expect(inv.get('zone-b')).toEqual({ table: table('zone-b', 1, 'sha256:b'), kvRevision: rb })
    expect(inv.get('zone-a')?.table.generation).toBe(2)
    const again = await publishZoneTable(bus, table('zone-c', 5, 'sha256:c2'), 0)
    expect((await readPublishedTables(bus)).get('zone-c')).toEqual({
      table: table('zone-c', 5, 'sha256:c2'),
      kvRevision: again,
    })
  })

  it('events - the same msg id twice is stored once', async () => {
    const before = (await bus.jsm.streams.info(EVENTS_STREAM)).state.messages
    const ev = commitFetchedEvent({ revision: REV, time: new Date(0) })
    const a1 = await emitEvent(bus, ev)
    const a2 = await publishEvent(bus, ev.subject, ev.payload, ev.msgId)
    expect(a1.duplicate).toBe(false)
    expect(a2).toEqual({ seq: a1.seq, duplicate: true })
    const other = commitPublishedEvent({ revision: REV, time: new Date(0), zones: [] })
    expect((await emitEvent(bus, other)).duplicate).toBe(false)
    expect((await bus.jsm.streams.info(EVENTS_STREAM)).state.messages).toBe(before + 2)
    const stored = await bus.jsm.streams.getMessage(EVENTS_STREAM, { seq: a1.seq })
    expect(stored?.subject).toBe(`zonegate.events.commit.${SHA}.fetched`)
    expect(stored?.header.get('Nats-Msg-Id')).toBe(`${SHA}:-:-:fetched`)
    expect(stored?.json()).toMatchObject({ type: 'commit.fetched', revision: REV, sha: SHA })
  })

  it('publish - a closed connection fails with PublishFailed (transient), not a conflict', async () => {
    const dead = await connectBus({ servers: [server.url], name: 'dead', log })
    await dead.close()
    await expect(publishZoneTable(dead, table('zone-z', 1), 0)).rejects.toBeInstanceOf(PublishFailed)
    await expect(emitEvent(dead, commitFetchedEvent({ revision: REV, time: new Date(0) }))).rejects.toMatchObject({
      code: 'PublishFailed',
    })
  })

  it('publish - NATS down gives PublishFailed within the API timeout; the same bus publishes once it is back', async () => {
    const b = await connectBus({ servers: [server.url], name: 'outage', log, apiTimeoutMs: 500 })
    try {
      const inv = await readPublishedTables(b)
      const rev = inv.get('zone-b')?.kvRevision ?? 0
      await server.kill()
      const t0 = Date.now()
      await expect(publishZoneTable(b, table('zone-b', 2, 'sha256:b2'), rev)).rejects.toBeInstanceOf(PublishFailed)
      expect(Date.now() - t0).toBeLessThan(3000)
      await server.restart()
      const deadline = Date.now() + 5000
      let next = 0
      while (!next && Date.now() < deadline) {
        next = await publishZoneTable(b, table('zone-b', 2, 'sha256:b2'), rev).catch((err) => {
          if (!(err instanceof PublishFailed)) throw err
          return 0
        })
      }
      expect(next).toBeGreaterThan(rev)
      expect((await readPublishedTables(b)).get('zone-b')?.table.generation).toBe(2)
    } finally {
      await b.close()
    }
  })
})
